"""TIFF / OME-TIFF reading (axes, RGB, unsupported layouts, corrupt files) and label writing."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_cosine_embed.core.errors import InputError, OutputExistsError
from napari_cosine_embed.core.io import (
    read_tiff,
    read_tiff_frames,
    rgb_to_gray,
    write_labels_tiff,
)


def test_dsb_images_read_as_2d(dsb):
    paths = sorted((dsb / "images").glob("*.tif"))[:5]
    assert len(paths) == 5
    for path in paths:
        image = read_tiff(path)
        assert image.ndim == 2
        assert image.dtype == np.uint8
        mask = read_tiff(dsb / "masks" / path.name)
        assert mask.shape == image.shape
        assert mask.dtype == np.uint16


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"metadata": None},
        {"metadata": {"axes": "TYX"}},
        {"imagej": True, "metadata": {"axes": "TYX"}},
    ],
    ids=["shaped", "plain-pages", "tyx-metadata", "imagej"],
)
def test_stacks_read_as_movies(tmp_path, kwargs):
    # Five frames: tifffile stores a (3 or 4, Y, X) array as planar RGB(A) unless told not to.
    movie = np.random.default_rng(1).integers(0, 255, size=(5, 6, 8), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "m.tif", movie, **kwargs)
    np.testing.assert_array_equal(read_tiff(tmp_path / "m.tif"), movie)


def test_ome_z_stack_is_read_as_time_with_a_warning(tmp_path):
    stack = np.arange(3 * 4 * 5, dtype=np.uint16).reshape(3, 4, 5)
    tifffile.imwrite(tmp_path / "z.ome.tif", stack, metadata={"axes": "ZYX"})
    with pytest.warns(UserWarning, match="3 Z slices; they are read as 3 time points"):
        got = read_tiff(tmp_path / "z.ome.tif")
    np.testing.assert_array_equal(got, stack)


def test_rgb_image_becomes_grayscale_with_a_warning(tmp_path):
    rgb = np.zeros((4, 5, 3), dtype=np.uint8)
    rgb[..., 0] = 255  # pure red
    rgb[1, 1] = 255  # one white pixel
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    with pytest.warns(UserWarning, match="RGB image converted to grayscale"):
        gray = read_tiff(tmp_path / "rgb.tif")
    assert gray.shape == (4, 5)
    assert gray.dtype == np.uint8
    assert gray[0, 0] == round(0.2126 * 255)
    assert gray[1, 1] == 255


def test_rgba_movie_drops_alpha(tmp_path):
    rgba = np.full((2, 4, 4, 4), 1000, dtype=np.uint16)
    rgba[..., 3] = 0
    tifffile.imwrite(tmp_path / "rgba.tif", rgba, photometric="rgb", extrasamples=["unassalpha"])
    with pytest.warns(UserWarning, match="RGBA image converted to grayscale.*alpha dropped"):
        gray = read_tiff(tmp_path / "rgba.tif")
    assert gray.shape == (2, 4, 4)
    assert gray.dtype == np.uint16
    np.testing.assert_array_equal(gray, 1000)


def test_rgb_to_gray_float_and_bad_shape():
    out = rgb_to_gray(np.ones((2, 2, 3), dtype=np.float64))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, 1.0, rtol=1e-6)
    with pytest.raises(InputError, match=r"shape \(2, 2, 2\)"):
        rgb_to_gray(np.ones((2, 2, 2)))


def test_ome_multichannel_movie_is_rejected(tmp_path):
    data = np.zeros((3, 2, 8, 8), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "tc.ome.tif", data, metadata={"axes": "TCYX"})
    with pytest.raises(
        InputError,
        match=r"multichannel data \(axes 'TCYX', shape \(3, 2, 8, 8\)\) is not supported yet",
    ):
        read_tiff(tmp_path / "tc.ome.tif")


def test_ome_3d_plus_time_is_rejected(tmp_path):
    tifffile.imwrite(
        tmp_path / "tz.ome.tif", np.zeros((2, 3, 8, 8), np.uint8), metadata={"axes": "TZYX"}
    )
    with pytest.raises(InputError, match="3D\\+t data"):
        read_tiff(tmp_path / "tz.ome.tif")


def test_ambiguous_4d_stack_is_rejected(tmp_path):
    tifffile.imwrite(tmp_path / "q.tif", np.zeros((3, 2, 8, 8), np.uint8))
    with pytest.raises(InputError, match=r"4D \(axes of unknown meaning\).*'QQYX'"):
        read_tiff(tmp_path / "q.tif")


def test_single_channel_axis_is_rejected(tmp_path):
    tifffile.imwrite(
        tmp_path / "c.ome.tif", np.zeros((2, 8, 8), np.uint8), metadata={"axes": "CYX"}
    )
    with pytest.raises(InputError, match=r"multichannel \(2 channels\)"):
        read_tiff(tmp_path / "c.ome.tif")


def test_two_sample_image_is_rejected(tmp_path):
    tifffile.imwrite(
        tmp_path / "s.tif",
        np.zeros((8, 8, 2), np.uint8),
        photometric="minisblack",
        planarconfig="contig",
    )
    with pytest.raises(InputError, match="2 samples per pixel"):
        read_tiff(tmp_path / "s.tif")


def test_non_tiff_file_is_rejected(tmp_path):
    path = tmp_path / "notes.tif"
    path.write_text("not an image")
    with pytest.raises(InputError, match=r"notes\.tif: not a readable TIFF file"):
        read_tiff(path)
    with pytest.raises(InputError, match="no such file"):
        read_tiff(tmp_path / "missing.tif")


def test_truncated_stack_is_rejected_not_read_in_part(tmp_path):
    path = tmp_path / "cut.tif"
    movie = np.random.default_rng(2).integers(0, 255, size=(5, 64, 64), dtype=np.uint8)
    tifffile.imwrite(path, movie, compression="zlib")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"cut\.tif: corrupt or truncated"):
        read_tiff(path)


def test_labels_round_trip_uint16_and_uint32(tmp_path):
    small = np.zeros((3, 6, 7), dtype=np.int64)
    small[:, 1:3, 1:3] = 65535
    path = write_labels_tiff(tmp_path / "small.tif", small)
    back = read_tiff(path)
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, small)
    with tifffile.TiffFile(path) as tif:
        assert tif.pages[0].compression != tifffile.COMPRESSION.NONE
    large = np.zeros((6, 7), dtype=np.int64)
    large[0, 0] = 70000
    back = read_tiff(write_labels_tiff(tmp_path / "large.tif", large))
    assert back.dtype == np.uint32
    np.testing.assert_array_equal(back, large)


def test_write_labels_respects_overwrite_and_rejects_bad_labels(tmp_path):
    path = write_labels_tiff(tmp_path / "l.tif", np.ones((4, 4), np.uint8))
    before = path.read_bytes()
    with pytest.raises(OutputExistsError):
        write_labels_tiff(path, np.zeros((4, 4), np.uint8))
    assert path.read_bytes() == before
    write_labels_tiff(path, np.full((4, 4), 3, np.uint8), overwrite=True)
    np.testing.assert_array_equal(read_tiff(path), 3)
    with pytest.raises(InputError, match="integers, got dtype float32"):
        write_labels_tiff(tmp_path / "f.tif", np.ones((4, 4), np.float32))
    with pytest.raises(InputError, match="found -1"):
        write_labels_tiff(tmp_path / "n.tif", np.full((4, 4), -1))
    with pytest.raises(InputError, match=r"got shape \(4,\)"):
        write_labels_tiff(tmp_path / "v.tif", np.ones(4, np.uint8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["l.tif"]


def test_frame_files_stack_eagerly_and_lazily(tmp_path):
    frames = np.random.default_rng(3).integers(0, 60000, size=(3, 5, 6), dtype=np.uint16)
    paths = []
    for t, frame in enumerate(frames):
        paths.append(tmp_path / f"f{t}.tif")
        tifffile.imwrite(paths[-1], frame, compression="lzw")
    np.testing.assert_array_equal(read_tiff_frames(paths), frames)
    lazy = read_tiff_frames(paths, lazy=True)
    assert lazy.shape == frames.shape
    np.testing.assert_array_equal(lazy[1].compute(), frames[1])
    with pytest.raises(InputError, match="no frame files"):
        read_tiff_frames([])
    tifffile.imwrite(paths[2], frames[2].astype(np.float32))
    with pytest.raises(InputError, match=r"f2\.tif is \(5, 6\) float32"):
        read_tiff_frames(paths)


def test_a_lazy_stack_reads_a_frame_at_a_time(tmp_path):
    from napari_cosine_embed.core.io.tiff import TiffFrames

    movie = np.random.default_rng(0).integers(0, 4000, (6, 40, 50)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "m.tif", movie)
    lazy = read_tiff(tmp_path / "m.tif", lazy=True)
    assert isinstance(lazy, TiffFrames)
    assert (lazy.shape, lazy.dtype, lazy.ndim, lazy.nbytes) == (
        movie.shape,
        movie.dtype,
        3,
        movie.nbytes,
    )
    np.testing.assert_array_equal(lazy[3], movie[3])
    np.testing.assert_array_equal(lazy[-1], movie[-1])
    np.testing.assert_array_equal(lazy[1:4], movie[1:4])
    np.testing.assert_array_equal(lazy[2, 5:9, ::3], movie[2, 5:9, ::3])
    np.testing.assert_array_equal(np.asarray(lazy), movie)
    with pytest.raises(IndexError):
        lazy[6]
    np.testing.assert_array_equal(read_tiff(tmp_path / "m.tif"), movie)  # eager as before


def test_a_truncated_stack_is_refused_when_opened_lazily(tmp_path):
    movie = np.arange(6 * 64 * 64, dtype=np.uint16).reshape(6, 64, 64)
    tifffile.imwrite(tmp_path / "m.tif", movie)
    data = (tmp_path / "m.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(data[: len(data) - 3000])
    with pytest.raises(InputError, match="corrupt or truncated"):
        read_tiff(tmp_path / "cut.tif", lazy=True)


def test_the_reader_gives_napari_a_large_lazy_stack_as_dask(tmp_path, monkeypatch):
    import dask.array as da

    from napari_cosine_embed import _reader

    movie = np.random.default_rng(1).integers(0, 255, (5, 30, 40)).astype(np.uint8)
    tifffile.imwrite(tmp_path / "m.tif", movie)
    monkeypatch.setattr(_reader, "EAGER_LIMIT_BYTES", 100)  # as if the movie were huge
    (data, _, kind), *_ = _reader.read_layers(tmp_path / "m.tif")
    assert kind == "image"
    assert isinstance(data, da.Array)
    np.testing.assert_array_equal(data[3].compute(), movie[3])
    np.testing.assert_array_equal(data[1:4, ::2, 5].compute(), movie[1:4, ::2, 5])
    monkeypatch.setattr(_reader, "EAGER_LIMIT_BYTES", 2**30)
    (data, _, _), *_ = _reader.read_layers(tmp_path / "m.tif")
    assert isinstance(data, np.ndarray)  # a movie that fits is loaded
