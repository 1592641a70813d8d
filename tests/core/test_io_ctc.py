"""Cell Tracking Challenge folders: real sequences and ground truth, round trips, bad input."""

from __future__ import annotations

import warnings

import dask.array as da
import numpy as np
import pytest
import tifffile
from _helpers import division_movie

from napari_cosine_embed.core.errors import InputError, OutputExistsError
from napari_cosine_embed.core.io import (
    check_lineage,
    ctc,
    find_gt_folder,
    lineage_from_labels,
    read_ctc_gt,
    read_ctc_result,
    read_ctc_sequence,
    write_ctc_gt,
    write_ctc_result,
    write_ctc_sequence,
)

# --- real data ------------------------------------------------------------------------------


def test_sim_plus_sequence_reads_lazily(sim_plus):
    movie = read_ctc_sequence(sim_plus, lazy=True)
    assert isinstance(movie, da.Array)
    assert movie.shape == (150, 773, 739)
    assert movie.dtype == np.uint16
    frame = movie[149].compute()
    np.testing.assert_array_equal(frame, tifffile.imread(sim_plus / "t149.tif"))


def test_gowt1_sequence_reads_eagerly(gowt1):
    movie = read_ctc_sequence(gowt1)
    assert isinstance(movie, np.ndarray)
    assert movie.shape == (92, 1024, 1024)
    assert movie.dtype == np.uint8
    np.testing.assert_array_equal(movie[91], tifffile.imread(gowt1 / "t091.tif"))


@pytest.fixture(scope="module")
def sim_plus_gt(sim_plus):
    return read_ctc_gt(sim_plus.with_name("02_GT"))


@pytest.fixture(scope="module")
def gowt1_gt(gowt1):
    return read_ctc_gt(gowt1.with_name("02_GT"))


def test_sim_plus_ground_truth_is_complete(sim_plus, sim_plus_gt):
    assert find_gt_folder(sim_plus) == sim_plus.with_name("02_GT")
    gt = sim_plus_gt
    assert gt.shape == (150, 773, 739)
    assert sorted(gt.seg) == list(range(150))
    assert gt.seg[0].dtype == np.uint16
    assert gt.tra.shape == gt.shape
    assert gt.lineage.shape == (107, 4)
    assert gt.lineage.dtype == np.int64
    assert np.all(np.diff(gt.lineage[:, 0]) > 0)


def test_gowt1_ground_truth_has_sparse_seg(gowt1, gowt1_gt):
    assert find_gt_folder(gowt1) == gowt1.with_name("02_GT")
    gt = gowt1_gt
    assert isinstance(gt.tra, np.ndarray)
    assert gt.tra.dtype == np.uint16
    assert gt.shape == (92, 1024, 1024)
    assert len(gt.seg) == 20
    assert min(gt.seg) == 1
    assert max(gt.seg) == 91
    assert all(frame.shape == (1024, 1024) for frame in gt.seg.values())
    assert gt.lineage.shape == (50, 4)
    # Markers are labelled per track; every track in the lineage appears in its first frame.
    first = int(gt.lineage[0, 1])
    assert int(gt.lineage[0, 0]) in np.unique(gt.tra[first])


def test_real_ground_truth_lineage_matches_its_markers(sim_plus_gt, gowt1_gt):
    for gt in (sim_plus_gt, gowt1_gt):
        check_lineage(gt.tra, gt.lineage)
        parents = {int(r[0]): int(r[3]) for r in gt.lineage}
        np.testing.assert_array_equal(lineage_from_labels(gt.tra, parents=parents), gt.lineage)
    # In the simulated set the SEG masks carry the track labels too.
    seg = np.stack([sim_plus_gt.seg[t] for t in range(150)])
    check_lineage(seg, sim_plus_gt.lineage)


def test_find_gt_folder_is_none_without_sibling(tmp_path):
    (tmp_path / "01").mkdir()
    assert find_gt_folder(tmp_path / "01") is None


# --- round trips ----------------------------------------------------------------------------


def test_result_round_trip_is_identical(tmp_path):
    movie, lineage = division_movie()
    folder = write_ctc_result(tmp_path / "02_RES", movie.astype(np.int32), lineage)
    names = sorted(p.name for p in folder.iterdir())
    assert names == [f"mask{t:03d}.tif" for t in range(6)] + ["res_track.txt"]
    labels, lineage_back = read_ctc_result(folder)
    assert labels.dtype == np.uint16
    np.testing.assert_array_equal(labels, movie)
    np.testing.assert_array_equal(lineage_back, lineage)


def test_result_lineage_is_derived_when_omitted(tmp_path):
    movie, lineage = division_movie()
    write_ctc_result(tmp_path / "res", da.from_array(movie, chunks=(1, 16, 16)))
    _, lineage_back = read_ctc_result(tmp_path / "res")
    expected = lineage.copy()
    expected[:, 3] = 0
    np.testing.assert_array_equal(lineage_back, expected)


def test_written_result_passes_py_ctcmetrics_validation(tmp_path):
    validate = pytest.importorskip("ctc_metrics.scripts.validate")
    movie, lineage = division_movie()
    folder = write_ctc_result(tmp_path / "02_RES", movie, lineage)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = validate.validate_sequence(str(folder), threads=1)
    assert result["Valid"] == 1, [str(w.message) for w in caught]
    # The validator does catch a broken result: drop a label from one mask.
    broken = tmp_path / "broken"
    write_ctc_result(broken, movie, lineage)
    frame = tifffile.imread(broken / "mask004.tif")
    frame[frame == 4] = 0
    tifffile.imwrite(broken / "mask004.tif", frame)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert validate.validate_sequence(str(broken), threads=1)["Valid"] == 0


def test_ground_truth_round_trip_with_sparse_seg(tmp_path):
    movie, lineage = division_movie()
    seg = {1: movie[1] * 7, 4: movie[4]}
    write_ctc_gt(tmp_path / "02_GT", tra=movie, lineage=lineage, seg=seg)
    assert (tmp_path / "02_GT" / "SEG" / "man_seg004.tif").is_file()
    gt = read_ctc_gt(tmp_path / "02_GT")
    assert gt.shape == movie.shape
    assert sorted(gt.seg) == [1, 4]
    np.testing.assert_array_equal(gt.seg[1], movie[1] * 7)
    np.testing.assert_array_equal(gt.tra, movie)
    np.testing.assert_array_equal(gt.lineage, lineage)


def test_ground_truth_round_trip_with_full_seg(tmp_path):
    movie, lineage = division_movie()
    write_ctc_gt(tmp_path / "gt", tra=movie, lineage=lineage, seg=movie)
    gt = read_ctc_gt(tmp_path / "gt")
    assert sorted(gt.seg) == list(range(6))
    np.testing.assert_array_equal(np.stack([gt.seg[t] for t in range(6)]), movie)


def test_ground_truth_without_tra_takes_shape_from_seg(tmp_path):
    (tmp_path / "gt" / "SEG").mkdir(parents=True)
    tifffile.imwrite(tmp_path / "gt" / "SEG" / "man_seg003.tif", np.ones((5, 7), np.uint16))
    gt = read_ctc_gt(tmp_path / "gt")
    assert gt.tra is None
    assert gt.lineage is None
    assert gt.shape == (4, 5, 7)


def test_sequence_round_trip_and_lazy_read(tmp_path):
    images = np.random.default_rng(0).integers(0, 4000, size=(4, 9, 11), dtype=np.uint16)
    write_ctc_sequence(tmp_path / "01", images)
    np.testing.assert_array_equal(read_ctc_sequence(tmp_path / "01"), images)
    np.testing.assert_array_equal(read_ctc_sequence(tmp_path / "01", lazy=True)[2], images[2])


def test_more_than_999_frames_use_four_digits(tmp_path):
    images = np.arange(1000, dtype=np.uint16).reshape(1000, 1, 1)
    write_ctc_sequence(tmp_path / "01", images)
    assert (tmp_path / "01" / "t0999.tif").is_file()
    assert not (tmp_path / "01" / "t999.tif").exists()
    np.testing.assert_array_equal(read_ctc_sequence(tmp_path / "01", lazy=True)[999], [[999]])


# --- bad input ------------------------------------------------------------------------------


def test_empty_folder_is_rejected(tmp_path):
    with pytest.raises(InputError, match=r"no tNNN\.tif files found"):
        read_ctc_sequence(tmp_path)
    with pytest.raises(InputError, match="no such folder"):
        read_ctc_sequence(tmp_path / "missing")


def test_non_consecutive_frames_are_rejected(tmp_path):
    for t in (0, 1, 3):
        tifffile.imwrite(tmp_path / f"t{t:03d}.tif", np.zeros((4, 4), np.uint8))
    with pytest.raises(InputError, match=r"consecutively from 0.*missing \[2\]"):
        read_ctc_sequence(tmp_path, lazy=True)


def test_frames_of_different_shape_are_rejected(tmp_path):
    tifffile.imwrite(tmp_path / "t000.tif", np.zeros((4, 4), np.uint8))
    tifffile.imwrite(tmp_path / "t001.tif", np.zeros((4, 5), np.uint8))
    for lazy in (False, True):
        with pytest.raises(InputError, match=r"t001\.tif is \(4, 5\) uint8"):
            read_ctc_sequence(tmp_path, lazy=lazy)


def test_labels_beyond_uint16_are_rejected(tmp_path):
    movie = np.zeros((2, 4, 4), np.int64)
    movie[:, 0, 0] = 70000
    with pytest.raises(InputError, match="70000"):
        write_ctc_result(tmp_path / "res", movie)
    assert not (tmp_path / "res").exists()


def test_inconsistent_lineage_is_rejected_before_writing(tmp_path):
    movie, lineage = division_movie()
    lineage[0, 2] = 1
    with pytest.raises(InputError, match="label 1 is present in frame 2"):
        write_ctc_result(tmp_path / "res", movie, lineage)
    with pytest.raises(InputError, match="label 1 is present in frame 2"):
        write_ctc_gt(tmp_path / "gt", tra=movie, lineage=lineage)
    assert list(tmp_path.iterdir()) == []


def test_existing_folder_is_left_untouched_without_overwrite(tmp_path):
    movie, lineage = division_movie()
    folder = write_ctc_result(tmp_path / "res", movie, lineage)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    with pytest.raises(OutputExistsError):
        write_ctc_result(folder, movie[:, ::-1], lineage)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    write_ctc_result(folder, movie[:, ::-1], lineage, overwrite=True)
    np.testing.assert_array_equal(read_ctc_result(folder)[0], movie[:, ::-1])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["res"]


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    movie, lineage = division_movie()
    real_imwrite = tifffile.imwrite
    calls = []

    def failing_imwrite(path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt
        real_imwrite(path, *args, **kwargs)

    monkeypatch.setattr(ctc.tifffile, "imwrite", failing_imwrite)
    with pytest.raises(KeyboardInterrupt):
        write_ctc_result(tmp_path / "res", movie, lineage)
    assert len(calls) >= 3  # frames are written on a few threads
    assert list(tmp_path.iterdir()) == []


def test_sparse_seg_outside_the_movie_is_rejected(tmp_path):
    movie, lineage = division_movie()
    with pytest.raises(InputError, match=r"seg frames \[6\]"):
        write_ctc_gt(tmp_path / "gt", tra=movie, lineage=lineage, seg={6: movie[0]})
    with pytest.raises(InputError, match=r"seg frame 2 has shape \(3, 3\)"):
        write_ctc_gt(tmp_path / "gt", tra=movie, lineage=lineage, seg={2: np.ones((3, 3))})
    assert not (tmp_path / "gt").exists()


def test_result_without_lineage_file_is_rejected(tmp_path):
    movie, lineage = division_movie()
    folder = write_ctc_result(tmp_path / "res", movie, lineage)
    (folder / "res_track.txt").unlink()
    with pytest.raises(InputError, match=r"res_track\.txt: no such lineage file"):
        read_ctc_result(folder)


def test_read_ctc_gt_needs_seg_or_tra(tmp_path):
    with pytest.raises(InputError, match="no ground truth found"):
        read_ctc_gt(tmp_path)


def test_real_gt_subset_round_trip(tmp_path, gowt1_gt):
    gt = gowt1_gt
    tra = gt.tra[:10]
    keep = gt.lineage[gt.lineage[:, 1] < 10].copy()
    keep[:, 2] = np.minimum(keep[:, 2], 9)
    keep[~np.isin(keep[:, 3], keep[:, 0]), 3] = 0
    check_lineage(tra, keep)
    write_ctc_gt(tmp_path / "02_GT", tra=tra, lineage=keep, seg={1: gt.seg[1]})
    back = read_ctc_gt(tmp_path / "02_GT")
    np.testing.assert_array_equal(back.tra, tra)
    np.testing.assert_array_equal(back.seg[1], gt.seg[1])
