"""Read Zarr arrays (plain or OME-Zarr) lazily, as dask arrays.

A path may point at

* an array: used as it is;
* an OME-Zarr image group (``multiscales`` metadata, OME-Zarr 0.4 or 0.5): its first,
  full-resolution level is used, and its axis names decide what is time and what is channel;
* any other group holding exactly one array among its direct children: that array.

Without OME axis names an array is taken as (Y, X) or (T, Y, X); leading axes of length 1 are
dropped. Nothing is read from the chunks until the returned dask array is computed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import InputError

__all__ = ["ZARR_METADATA", "ZARR_SUFFIXES", "read_zarr"]

ZARR_SUFFIXES = (".zarr",)
#: Files at the top of every Zarr array or group: Zarr v3, then v2 array and group.
ZARR_METADATA = ("zarr.json", ".zarray", ".zgroup")


class _ReportingReads:
    """A Zarr array whose reads name the store when a chunk cannot be decoded.

    The store is opened lazily, so a damaged chunk only shows when a frame is computed, deep
    in a later step; this turns the codec's bare error into one that names the store.
    """

    def __init__(self, array, path: Path) -> None:
        self.array, self.path = array, path
        self.shape, self.dtype, self.ndim = array.shape, array.dtype, array.ndim

    def __getitem__(self, key):
        try:
            return self.array[key]
        except (RuntimeError, ValueError, OSError, EOFError) as exc:
            raise InputError(
                f"{self.path}: corrupt Zarr chunk: the data cannot be decoded "
                f"({type(exc).__name__}: {exc})"
            ) from exc


def _multiscales(attrs) -> list | None:
    attrs = dict(attrs)
    if "ome" in attrs and isinstance(attrs["ome"], dict):
        attrs = attrs["ome"]
    value = attrs.get("multiscales")
    return value if isinstance(value, list) and value else None


def _axis_names(meta: dict, ndim: int) -> list[str] | None:
    axes = meta.get("axes")
    if not isinstance(axes, list) or len(axes) != ndim:
        return None
    names = [a.get("name") if isinstance(a, dict) else a for a in axes]
    return [str(n).lower() for n in names] if all(names) else None


def _pick_array(path: Path, node):
    """The array to read and its OME axis names (or None), from an array or a group."""
    import zarr

    if isinstance(node, zarr.Array):
        return node, None
    multiscales = _multiscales(node.attrs)
    if multiscales is not None:
        meta = multiscales[0]
        try:
            level0 = meta["datasets"][0]["path"]
            array = node[level0]
        except (KeyError, IndexError, TypeError) as exc:
            raise InputError(
                f"{path}: OME-Zarr multiscales metadata does not name a readable first "
                f"level ({exc})"
            ) from exc
        return array, _axis_names(meta, array.ndim)
    arrays = [name for name, _ in node.arrays()]
    if not arrays:
        raise InputError(
            f"{path}: this Zarr group holds no array (is an array's metadata file missing?); "
            f"expected a Zarr array, an OME-Zarr image or a group with exactly one array"
        )
    if len(arrays) != 1:
        raise InputError(
            f"{path}: expected a Zarr array, an OME-Zarr image or a group with exactly one "
            f"array; this group holds {len(arrays)} arrays {sorted(arrays)[:10]}"
        )
    return node[arrays[0]], None


def read_zarr(path: str | os.PathLike):
    """Open a Zarr array as a lazy grayscale image or movie.

    Parameters
    ----------
    path : path-like
        A Zarr array, an OME-Zarr image group, or a group holding exactly one array.

    Returns
    -------
    dask.array.Array of shape (Y, X) or (T, Y, X)
        Chunked like the store; computing a frame reads only that frame's chunks.

    Raises
    ------
    InputError
        The path is not a Zarr store, its metadata is missing or corrupt, the group holds no
        single array, or the array has several channels, both time and Z, or more than three
        axes of length above 1. A chunk that cannot be decoded raises it too, when the
        frames that need it are computed.

    Examples
    --------
    >>> import tempfile, zarr
    >>> store = Path(tempfile.mkdtemp()) / "movie.zarr"
    >>> _ = zarr.create_array(store, shape=(4, 8, 8), chunks=(1, 8, 8), dtype="uint8")
    >>> read_zarr(store).shape
    (4, 8, 8)
    """
    import dask.array as da
    import zarr

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such Zarr store")
    if not path.is_dir():
        raise InputError(f"{path}: is a file, but a Zarr store is a folder")
    if not any((path / name).is_file() for name in ZARR_METADATA):
        raise InputError(
            f"{path}: not a readable Zarr store: it has no Zarr metadata file "
            f"({', '.join(ZARR_METADATA)}); the store is incomplete or was not written by Zarr"
        )
    try:
        node = zarr.open(store=str(path), mode="r")
        array, names = _pick_array(path, node)
    except InputError:
        raise  # already says what is wrong (it is a ValueError too, caught below otherwise)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: corrupt Zarr metadata: not valid JSON ({exc})") from exc
    except KeyError as exc:
        raise InputError(f"{path}: incomplete Zarr metadata: the entry {exc} is missing") from exc
    except (FileNotFoundError, ValueError, TypeError, OSError) as exc:
        raise InputError(f"{path}: not a readable Zarr array or group ({exc})") from exc
    # A random dask name: the wrapper has no stable token, and each call reads afresh anyway.
    data = da.from_array(_ReportingReads(array, path), chunks=array.chunks, name=False)
    shape = tuple(data.shape)
    if names is not None:
        keep = [
            i for i, (n, s) in enumerate(zip(names, shape, strict=True)) if s > 1 or n in ("y", "x")
        ]
        kept = [names[i] for i in keep]
        if "c" in kept:
            raise InputError(
                f"{path}: multichannel data (axes {''.join(names)}, shape {shape}) is not "
                f"supported yet; this package reads 2D images and 2D time-lapses"
            )
        if "t" in kept and "z" in kept:
            raise InputError(
                f"{path}: 3D+t data (axes {''.join(names)}, shape {shape}) is not supported "
                f"yet; this package reads 2D images and 2D time-lapses"
            )
        data = data[tuple(slice(None) if i in keep else 0 for i in range(len(shape)))]
    else:
        while data.ndim > 3 and data.shape[0] == 1:
            data = data[0]
    if data.ndim not in (2, 3):
        raise InputError(
            f"{path}: expected a (Y, X) image or a (T, Y, X) movie, got an array of shape {shape}"
        )
    return data
