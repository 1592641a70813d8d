"""Zarr stores: arrays, groups, OME-Zarr, read lazily."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

from napari_cosine_embed.core.errors import InputError
from napari_cosine_embed.core.io import read_zarr

zarr = pytest.importorskip("zarr")


def chunk_files(store) -> list:
    """Chunk files of a Zarr store (every file that is not metadata)."""
    metadata = {"zarr.json", ".zarray", ".zattrs", ".zgroup", ".zmetadata"}
    return [p for p in store.rglob("*") if p.is_file() and p.name not in metadata]


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_chunked_movie_stays_lazy(tmp_path, zarr_format):
    store = tmp_path / "movie.zarr"
    movie = (np.arange(5, dtype=np.uint16)[:, None, None] + 1) * np.ones((5, 12, 10), np.uint16)
    array = zarr.create_array(
        store, shape=movie.shape, chunks=(1, 12, 10), dtype="uint16", zarr_format=zarr_format
    )
    array[:] = movie
    chunks = chunk_files(store)
    assert len(chunks) == 5
    # Break every chunk but frame 0's: opening must not decode them, frame 0 must still work.
    for path in chunks:
        index = path.relative_to(store).as_posix()
        if index not in ("c/0/0/0", "0.0.0"):
            path.write_bytes(b"\x00garbage")
    lazy = read_zarr(store)
    assert isinstance(lazy, da.Array)
    assert lazy.shape == (5, 12, 10)
    assert lazy.dtype == np.uint16
    np.testing.assert_array_equal(lazy[0].compute(), movie[0])
    with pytest.raises(InputError, match=r"movie\.zarr: corrupt Zarr chunk.*decompression"):
        lazy[1].compute()


def test_group_with_one_array(tmp_path):
    group = zarr.open_group(tmp_path / "g.zarr", mode="w")
    group.create_array("frames", shape=(3, 4, 5), dtype="float32")[:] = 1.5
    got = read_zarr(tmp_path / "g.zarr")
    assert got.shape == (3, 4, 5)
    np.testing.assert_array_equal(got.compute(), 1.5)


def test_group_with_several_arrays_is_rejected(tmp_path):
    group = zarr.open_group(tmp_path / "g.zarr", mode="w")
    group.create_array("a", shape=(4, 4), dtype="uint8")
    group.create_array("b", shape=(4, 4), dtype="uint8")
    with pytest.raises(
        InputError, match=r"exactly one array; this group holds 2 arrays \['a', 'b'\]"
    ):
        read_zarr(tmp_path / "g.zarr")


def _ome_group(path, shape, axes):
    group = zarr.open_group(path, mode="w")
    group.attrs["multiscales"] = [
        {
            "version": "0.4",
            "axes": [{"name": a} for a in axes],
            "datasets": [{"path": "0"}, {"path": "1"}],
        }
    ]
    level0 = group.create_array("0", shape=shape, chunks=shape, dtype="uint8")
    level0[:] = 7
    group.create_array("1", shape=(*shape[:-2], shape[-2] // 2, shape[-1] // 2), dtype="uint8")
    return group


def test_ome_zarr_takes_full_resolution_and_drops_singletons(tmp_path):
    _ome_group(tmp_path / "img.ome.zarr", (6, 1, 1, 16, 12), "tczyx")
    got = read_zarr(tmp_path / "img.ome.zarr")
    assert got.shape == (6, 16, 12)
    assert int(got[5, 15, 11].compute()) == 7


def test_ome_zarr_multichannel_is_rejected(tmp_path):
    _ome_group(tmp_path / "mc.zarr", (2, 3, 1, 8, 8), "tczyx")
    with pytest.raises(
        InputError, match=r"multichannel data \(axes tczyx, shape \(2, 3, 1, 8, 8\)\)"
    ):
        read_zarr(tmp_path / "mc.zarr")


def test_bad_ndim_and_missing_store_are_rejected(tmp_path):
    zarr.create_array(tmp_path / "v.zarr", shape=(2, 3, 4, 5), dtype="uint8")
    with pytest.raises(InputError, match=r"array of shape \(2, 3, 4, 5\)"):
        read_zarr(tmp_path / "v.zarr")
    zarr.create_array(tmp_path / "line.zarr", shape=(7,), dtype="uint8")
    with pytest.raises(InputError, match=r"shape \(7,\)"):
        read_zarr(tmp_path / "line.zarr")
    with pytest.raises(InputError, match="no such Zarr store"):
        read_zarr(tmp_path / "missing.zarr")
    (tmp_path / "empty.zarr").mkdir()
    with pytest.raises(InputError, match="not a readable Zarr"):
        read_zarr(tmp_path / "empty.zarr")


def test_leading_singletons_are_dropped_without_metadata(tmp_path):
    zarr.create_array(tmp_path / "s.zarr", shape=(1, 1, 3, 4, 5), dtype="uint8")
    assert read_zarr(tmp_path / "s.zarr").shape == (3, 4, 5)
