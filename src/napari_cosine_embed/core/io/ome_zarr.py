"""An OME-Zarr (NGFF 0.4) image with label movies, written one frame at a time.

Layout, readable by any OME-Zarr reader (napari-ome-zarr, Fiji's N5/Zarr, ome-zarr-py)::

    movie.zarr/                 the input movie, axes (t, y, x), level "0"
    movie.zarr/labels/          {"labels": ["segmentation", "tracked"]}
    movie.zarr/labels/segmentation/0    each frame's objects, ids per frame (grouping's output)
    movie.zarr/labels/tracked/0         the same objects with track ids (the final result)

Each label movie is chunked one frame per chunk, and zarr writes every chunk to a temporary
file that it then renames: a frame is either all there or not there. A frame counts as done
only once its ``source`` entry (one chunk per frame) holds the hash of the input frame it was
computed from, written after the frame itself; so a run killed at any moment leaves frames that
are whole and marked, or unmarked, and a resumed run redoes exactly the unmarked ones. The
hashes also catch an input that changed between the runs.

The run's identity (input, model fingerprint, parameters) is kept in the group's attributes:
:meth:`LabelMovieStore.open` refuses to resume a store made with anything else.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, OutputExistsError

__all__ = ["LABEL_NAMES", "LabelMovieStore", "read_tracked_labels"]

#: The label movies a ``segment`` store holds, in the order they are written.
LABEL_NAMES = ("segmentation", "tracked")
_OURS = "napari-cosine-embed"
_NGFF = "0.4"


def _axes(pixel_size: float | None) -> list[dict[str, str]]:
    space = {"type": "space"} | ({"unit": "micrometer"} if pixel_size else {})
    return [{"name": "t", "type": "time"}, {"name": "y", **space}, {"name": "x", **space}]


def _multiscales(name: str, pixel_size: float | None) -> list[dict[str, Any]]:
    step = float(pixel_size) if pixel_size else 1.0
    return [
        {
            "version": _NGFF,
            "name": name,
            "axes": _axes(pixel_size),
            "datasets": [
                {
                    "path": "0",
                    "coordinateTransformations": [{"type": "scale", "scale": [1.0, step, step]}],
                }
            ],
        }
    ]


def _differences(saved: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """The keys of two run identities that differ, for a message."""
    return sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))


class LabelMovieStore:
    """The label movies of one ``segment`` run, frame by frame, in an OME-Zarr image.

    Create one with :meth:`create` or reopen a stopped run's with :meth:`open`; then
    :meth:`put` each frame as it is computed, :meth:`done` says which are there.
    """

    def __init__(self, path: Path, group: Any) -> None:
        self.path, self._group = path, group
        meta = dict(group.attrs[_OURS])
        self.n_frames = int(meta["n_frames"])
        self.shape = tuple(int(s) for s in meta["shape"])
        self.identity: dict[str, Any] = dict(meta["identity"])

    # -- making and opening ------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        path: str | os.PathLike,
        n_frames: int,
        shape: Sequence[int],
        *,
        identity: Mapping[str, Any],
        image_dtype: Any = None,
        pixel_size: float | None = None,
        name: str | None = None,
    ) -> LabelMovieStore:
        """A new, empty store at ``path`` (which must not exist).

        Parameters
        ----------
        n_frames, shape : int, (Y, X)
            The movie's frame count and frame shape.
        identity : mapping
            What makes two runs the same (JSON-able): checked by :meth:`open`.
        image_dtype : dtype, optional
            The input movie's dtype, when it is copied in (:meth:`put_image`); else the image
            array is made as uint8 and stays empty (fill value 0).
        pixel_size : float, optional
            Microns per pixel, written as the spatial scale.
        """
        import zarr

        path = Path(path)
        if path.exists():
            raise OutputExistsError(f"{path} already exists")
        if n_frames < 1 or len(shape) != 2 or min(shape) < 1:
            raise InputError(f"a label movie needs frames of (Y, X), got {n_frames} x {shape}")
        identity = json.loads(json.dumps(dict(identity), default=str))  # as it will read back
        name = name or path.stem
        root = zarr.open_group(str(path), mode="w-", zarr_format=2)
        frame_chunks = (1, *(int(s) for s in shape))
        root.create_array(
            "0",
            shape=(n_frames, *shape),
            chunks=frame_chunks,
            dtype=np.dtype(image_dtype) if image_dtype is not None else np.uint8,
            fill_value=0,
        )
        root.attrs["multiscales"] = _multiscales(name, pixel_size)
        labels = root.create_group("labels")
        for label in LABEL_NAMES:
            group = labels.create_group(label)
            group.create_array(
                "0", shape=(n_frames, *shape), chunks=frame_chunks, dtype=np.uint32, fill_value=0
            )
            # the hash of the input frame each label frame came from; 0: not there yet
            group.create_array(
                "source", shape=(n_frames,), chunks=(1,), dtype=np.uint64, fill_value=0
            )
            group.attrs["multiscales"] = _multiscales(label, pixel_size)
            group.attrs["image-label"] = {"version": _NGFF, "source": {"image": "../../"}}
        labels.attrs["labels"] = list(LABEL_NAMES)
        root.attrs[_OURS] = {
            "n_frames": int(n_frames),
            "shape": [int(s) for s in shape],
            "identity": identity,
        }
        return cls(path, root)

    @classmethod
    def open(
        cls, path: str | os.PathLike, *, identity: Mapping[str, Any] | None = None
    ) -> LabelMovieStore:
        """Reopen a store, refusing one made by another run when ``identity`` is given.

        Raises
        ------
        InputError
            Not such a store, or made with another input, model or parameters.
        """
        import zarr

        path = Path(path)
        try:
            root = zarr.open_group(str(path), mode="r+")
            store = cls(path, root)
        except (KeyError, ValueError, TypeError, OSError, zarr.errors.GroupNotFoundError) as exc:
            raise InputError(
                f"{path}: not a segment store that can be resumed ({type(exc).__name__}: {exc})"
            ) from None
        if identity is not None:
            now = json.loads(json.dumps(dict(identity), default=str))
            changed = _differences(store.identity, now)
            if changed:
                raise InputError(
                    f"{path} was made by a run with another {', '.join(changed)}; it cannot be "
                    "resumed with these settings (rerun as before, or pass --overwrite to start "
                    "over)"
                )
        return store

    # -- frames --------------------------------------------------------------------------------
    def _label(self, name: str) -> Any:
        if name not in LABEL_NAMES:
            raise KeyError(f"no label movie {name!r}; there are {LABEL_NAMES}")
        return self._group["labels"][name]

    def sources(self, name: str) -> np.ndarray:
        """The input frame hash behind each frame of ``name`` (uint64; 0: not written)."""
        return np.asarray(self._label(name)["source"][:])

    def done(self, name: str) -> np.ndarray:
        """Which frames of ``name`` are written (bool per frame)."""
        return self.sources(name) != 0

    def put(self, name: str, t: int, frame: np.ndarray, *, source: int) -> None:
        """Write frame ``t`` of ``name``, then mark it done with its input frame's hash."""
        frame = np.asarray(frame)
        if frame.shape != self.shape:
            raise InputError(f"frame {t} is {frame.shape}, the store holds {self.shape}")
        if frame.size and (frame.min() < 0 or frame.max() > np.iinfo(np.uint32).max):
            raise InputError(f"frame {t} holds ids outside uint32")
        if int(source) == 0:
            raise ValueError("source must be a frame hash, never 0")
        group = self._label(name)
        group["0"][t] = frame.astype(np.uint32, copy=False)
        group["source"][t] = np.uint64(source)  # last: the frame is there before it counts

    def get(self, name: str, t: int) -> np.ndarray:
        """Frame ``t`` of ``name`` (uint32); zeros if it was never written."""
        return np.asarray(self._label(name)["0"][t])

    def forget(self, name: str, frames: Sequence[int]) -> None:
        """Unmark ``frames`` of ``name`` (they will be recomputed)."""
        source = self._label(name)["source"]
        for t in frames:
            source[int(t)] = np.uint64(0)

    def set_lineage(self, lineage: np.ndarray) -> None:
        """Keep the tracked labels' lineage (CTC rows ``[label, first, last, parent]``)."""
        rows = np.asarray(lineage, np.int64).reshape(-1, 4).tolist()
        self._label("tracked").attrs[_OURS] = {"lineage": rows}

    def put_image(self, t: int, frame: np.ndarray) -> None:
        """Copy frame ``t`` of the input movie in, as the image the labels belong to."""
        self._group["0"][t] = np.asarray(frame)

    def __repr__(self) -> str:
        done = {name: int(self.done(name).sum()) for name in LABEL_NAMES}
        return f"LabelMovieStore({str(self.path)!r}, {self.n_frames} frames, done {done})"


def read_tracked_labels(path: str | os.PathLike) -> tuple[Any, np.ndarray] | None:
    """The tracked labels (lazy) and lineage of a finished ``segment --zarr`` store, or None
    when ``path`` is not one (any other OME-Zarr, or a run not finished)."""
    import zarr

    from .zarr_store import read_zarr

    try:
        root = zarr.open_group(str(path), mode="r")
        if _OURS not in root.attrs:
            return None
        group = root["labels"]["tracked"]
        lineage = group.attrs[_OURS]["lineage"]
        if not np.all(np.asarray(group["source"][:])):
            return None
    except (KeyError, TypeError, ValueError, OSError, zarr.errors.GroupNotFoundError):
        return None
    labels = read_zarr(Path(path) / "labels" / "tracked")
    return labels, np.asarray(lineage, np.int64).reshape(-1, 4)
