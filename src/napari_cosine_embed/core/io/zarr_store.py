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

import os
from pathlib import Path

from ..errors import InputError

__all__ = ["ZARR_SUFFIXES", "read_zarr"]

ZARR_SUFFIXES = (".zarr",)


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
        The path is not a Zarr store, the group holds no single array, or the array has
        several channels, both time and Z, or more than three axes of length above 1.

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
    try:
        node = zarr.open(store=str(path), mode="r")
    except (FileNotFoundError, ValueError, KeyError, TypeError, OSError) as exc:
        raise InputError(f"{path}: not a readable Zarr array or group ({exc})") from exc
    array, names = _pick_array(path, node)
    data = da.from_zarr(array)
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
