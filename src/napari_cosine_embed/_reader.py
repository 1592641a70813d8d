"""napari reader: turns what :func:`core.io.read_any` reads into layer data tuples.

All parsing lives in the core; this module only decides layer names and display options.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .core.errors import InputError
from .core.io import READABLE_SUFFIXES, ReadResult, is_ctc_sequence_folder, read_any
from .core.io.lineage import tracks_from_labels
from .core.io.tiff import TiffFrames
from .core.io.tracked import is_tracked

LayerData = tuple[Any, dict[str, Any], str]

#: Lazily read data up to this size is loaded into memory on open (zarr always stays lazy).
EAGER_LIMIT_BYTES = 2 * 2**30
PathLike = str | os.PathLike


def _claims(path: Path) -> bool:
    name = path.name.lower()
    if path.is_dir():
        try:
            return (
                name.endswith((".zarr", ".geff"))
                or is_ctc_sequence_folder(path)
                or is_tracked(path)
            )
        except InputError:
            # A folder that cannot be listed: claim it, so reading it says why it fails
            # instead of napari reporting that no plugin knows the path.
            return True
    return any(name.endswith(s) for s in READABLE_SUFFIXES)


def get_reader(path: PathLike | Sequence[PathLike]) -> Callable[..., list[LayerData]] | None:
    """Return a reader function for ``path`` if this plugin can read it, else ``None``.

    A list of paths is accepted when every path is readable; each becomes its own layers.
    """
    paths = [Path(p) for p in ([path] if isinstance(path, str | os.PathLike) else path)]
    if not paths or not all(_claims(p) for p in paths):
        return None
    return read_layers


#: Display range: these percentiles of a few frames, so a dim movie (GOWT1: 99.8 % of its
#: 8-bit pixels under 50) opens visible instead of almost black in its dtype's full range.
CONTRAST_PERCENTILES = (0.5, 99.8)


def _contrast_limits(image: Any, frames: int = 3) -> list[float]:
    """Contrast limits from robust percentiles of up to ``frames`` evenly spaced frames (every
    fourth pixel of each); never the whole movie, which may be lazy and large."""
    stack = image[None] if image.ndim == 2 else image
    picks = sorted({round(t) for t in np.linspace(0, stack.shape[0] - 1, frames)})
    sample = np.concatenate([np.asarray(stack[t])[::2, ::2].ravel() for t in picks])
    sample = sample[np.isfinite(sample)] if sample.dtype.kind == "f" else sample
    if not sample.size:
        return [0.0, 1.0]
    lo, hi = (float(v) for v in np.percentile(sample, CONTRAST_PERCENTILES))
    return [lo, hi if hi > lo else lo + 1.0]


def axis_labels(ndim: int) -> tuple[str, ...]:
    """Names for the axes of a grayscale image (y, x) or movie (t, y, x): the frame slider
    then reads "t" instead of napari's "-3"."""
    return ("t", "y", "x")[-ndim:] if ndim in (2, 3) else tuple(str(i - ndim) for i in range(ndim))


def result_to_layers(result: ReadResult, path: PathLike) -> list[LayerData]:
    """Layer data tuples (image, then optional labels and tracks) for one read result.

    A tracked movie read without its images (another tool's result, a GEFF) gives labels named
    after it and its tracks; ground truth is named "... GT".
    """
    meta = {"source_path": str(path), "source_kind": result.source_kind}
    layers: list[LayerData] = []
    if result.image is not None:
        image_kwargs: dict[str, Any] = {"name": result.name, "metadata": meta}
        if getattr(result.image, "ndim", 0) in (2, 3):  # grayscale; RGB keeps napari's range
            image_kwargs["contrast_limits"] = _contrast_limits(result.image)
            image_kwargs["axis_labels"] = axis_labels(result.image.ndim)
        layers.append((result.image, image_kwargs, "image"))
    truth = result.source_kind in ("ctc", "ctc-gt")
    labels_name = f"{result.name} GT" if truth else result.name
    if result.source_kind == "zarr":  # a segment --zarr result: the movie and its tracks
        labels_name = f"{result.name} tracked"
    if result.labels is not None:
        labels_meta = {**meta, "notes": list(result.notes or [])}
        labels_kwargs = {"name": labels_name, "metadata": labels_meta}
        labels_kwargs["axis_labels"] = axis_labels(result.labels.ndim)
        layers.append((result.labels, labels_kwargs, "labels"))
    if result.labels is not None and result.lineage is not None:
        # lineage.tracks_from_labels reads lazy labels frame by frame, so this stays bounded
        data, graph = tracks_from_labels(result.labels, result.lineage)
        layers.append(
            (
                data,
                {
                    "name": f"{labels_name} tracks",
                    "graph": graph,
                    "tail_length": 10,
                    "axis_labels": axis_labels(data.shape[1] - 1),
                },
                "tracks",
            )
        )
    return layers


def read_layers(path: PathLike | Sequence[PathLike]) -> list[LayerData]:
    """Read one path or several into napari layer data tuples."""
    paths = [path] if isinstance(path, str | os.PathLike) else list(path)
    layers: list[LayerData] = []
    for p in paths:
        result = read_any(p, lazy=True)
        # Movies that fit comfortably in memory are loaded, so they can be edited and browsed
        # without disk reads; larger ones stay lazy and napari reads only the frames shown.
        for field in ("image", "labels"):
            value = getattr(result, field)
            if isinstance(value, TiffFrames):  # napari slices dask arrays every way it needs
                import dask.array as da

                meta = np.empty((0, 0, 0), value.dtype)
                value = da.from_array(value, chunks=(1, *value.shape[1:]), meta=meta)
                setattr(result, field, value)
            lazy = value is not None and not isinstance(value, np.ndarray)
            if lazy and value.nbytes <= EAGER_LIMIT_BYTES and result.source_kind != "zarr":
                setattr(result, field, np.asarray(value))
        for note in result.notes or []:
            warnings.warn(f"{Path(p).name}: {note}", stacklevel=2)  # napari shows it
        layers.extend(result_to_layers(result, p))
    return layers
