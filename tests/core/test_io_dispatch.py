"""read_any: the reader chosen from the path, and what comes with the image."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import tifffile

from napari_cosine_embed.core.errors import InputError
from napari_cosine_embed.core.io import (
    READABLE_SUFFIXES,
    ReadResult,
    is_ctc_sequence_folder,
    read_any,
    write_ctc_gt,
    write_ctc_sequence,
)


def test_sim_plus_comes_with_complete_seg_and_lineage(sim_plus):
    result = read_any(sim_plus, lazy=True)
    assert isinstance(result, ReadResult)
    assert result.source_kind == "ctc"
    assert result.name == "Fluo-N2DH-SIM+/02"
    assert isinstance(result.image, da.Array)
    assert result.image.shape == (150, 773, 739)
    # SEG covers every frame, so it is the label movie; its labels are the track labels.
    assert isinstance(result.labels, np.ndarray)
    assert result.labels.shape == (150, 773, 739)
    np.testing.assert_array_equal(result.labels[0], result.ground_truth.seg[0])
    assert result.lineage.shape == (107, 4)


def test_gowt1_falls_back_to_tra_markers(gowt1):
    result = read_any(gowt1, lazy=True)
    assert result.image.shape == (92, 1024, 1024)
    assert result.image.dtype == np.uint8
    assert result.labels is result.ground_truth.tra
    assert len(result.ground_truth.seg) == 20
    assert result.lineage.shape == (50, 4)


def test_dsb_tiff_reads_as_2d(dsb):
    path = sorted((dsb / "images").glob("*.tif"))[0]
    result = read_any(path)
    assert result.source_kind == "tiff"
    assert result.image.ndim == 2
    assert result.labels is None
    assert result.name == path.stem


def test_ctc_folder_without_gt(tmp_path):
    images = np.ones((3, 4, 5), np.uint8)
    write_ctc_sequence(tmp_path / "01", images)
    assert is_ctc_sequence_folder(tmp_path / "01")
    result = read_any(tmp_path / "01")
    assert result.labels is None
    assert result.ground_truth is None
    np.testing.assert_array_equal(result.image, images)


def test_ctc_gt_of_another_shape_is_rejected(tmp_path):
    write_ctc_sequence(tmp_path / "01", np.ones((3, 4, 5), np.uint8))
    markers = np.zeros((2, 4, 5), np.uint16)
    markers[:, 0, 0] = 1
    write_ctc_gt(tmp_path / "01_GT", tra=markers, lineage=[[1, 0, 1, 0]])
    with pytest.raises(InputError, match=r"01_GT: ground truth of shape \(2, 4, 5\)"):
        read_any(tmp_path / "01")


def test_sparse_synthetic_gt_gives_tra_labels(tmp_path):
    write_ctc_sequence(tmp_path / "01", np.ones((2, 4, 5), np.uint8))
    markers = np.zeros((2, 4, 5), np.uint16)
    markers[:, 1, 1] = 3
    seg = {1: (markers[1] > 0).astype(np.uint16) * 9}
    write_ctc_gt(tmp_path / "01_GT", tra=markers, lineage=[[3, 0, 1, 0]], seg=seg)
    result = read_any(tmp_path / "01")
    np.testing.assert_array_equal(result.labels, markers)
    np.testing.assert_array_equal(result.lineage, [[3, 0, 1, 0]])


def test_complete_seg_with_other_labels_drops_the_lineage(tmp_path):
    write_ctc_sequence(tmp_path / "01", np.ones((2, 4, 5), np.uint8))
    markers = np.zeros((2, 4, 5), np.uint16)
    markers[:, 1, 1] = 3
    seg = {0: markers[0] * 2, 1: markers[1] * 2}
    write_ctc_gt(tmp_path / "01_GT", tra=markers, lineage=[[3, 0, 1, 0]], seg=seg)
    result = read_any(tmp_path / "01")
    np.testing.assert_array_equal(result.labels, markers * 2)
    assert result.lineage is None


def test_tiff_zarr_and_video_are_dispatched(tmp_path):
    tifffile.imwrite(
        tmp_path / "a.ome.tif", np.zeros((5, 6, 7), np.uint16), metadata={"axes": "TYX"}
    )
    result = read_any(tmp_path / "a.ome.tif")
    assert (result.source_kind, result.name, result.image.shape) == ("tiff", "a", (5, 6, 7))

    zarr = pytest.importorskip("zarr")
    zarr.create_array(tmp_path / "b.ome.zarr", shape=(2, 4, 4), dtype="uint8")
    result = read_any(tmp_path / "b.ome.zarr")
    assert (result.source_kind, result.name) == ("zarr", "b")
    assert isinstance(result.image, da.Array)

    iio = pytest.importorskip("imageio.v3")
    iio.imwrite(tmp_path / "c.mp4", np.zeros((3, 32, 32, 3), np.uint8), plugin="FFMPEG", fps=3)
    with pytest.warns(UserWarning, match="grayscale"):
        result = read_any(tmp_path / "c.mp4")
    assert (result.source_kind, result.image.shape) == ("video", (3, 32, 32))
    assert {".tif", ".tiff", ".zarr", ".mp4"} <= set(READABLE_SUFFIXES)


def test_unknown_inputs_are_rejected(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InputError, match=r"unknown file type '\.txt'"):
        read_any(tmp_path / "notes.txt")
    (tmp_path / "folder").mkdir()
    assert not is_ctc_sequence_folder(tmp_path / "folder")
    with pytest.raises(InputError, match="neither a Zarr store nor a Cell Tracking"):
        read_any(tmp_path / "folder")
    with pytest.raises(InputError, match="no such file or folder"):
        read_any(tmp_path / "missing.tif")
