"""Readers and writers for microscopy time-lapses and their labels.

:func:`read_any` picks the reader from the path:

* ``.tif`` / ``.tiff`` / ``.ome.tif`` file -> :func:`read_tiff`;
* video file (:data:`VIDEO_SUFFIXES`) -> :func:`read_video`;
* ``.zarr`` folder, or any folder with Zarr metadata -> :func:`read_zarr` (lazy);
* folder of ``tNNN.tif`` frames -> a Cell Tracking Challenge sequence,
  :func:`read_ctc_sequence`. When the sibling ``NN_GT`` folder exists its ground truth comes
  along: the labels are the SEG masks when every frame has one, else the TRA markers (the
  only labels that cover every frame when SEG is sparse). The TRA lineage comes with the
  TRA markers, and with SEG masks only when they carry the same track labels;
* a tracked movie without its images (:mod:`.tracked`): a CTC result folder
  (``maskNNN.tif`` + ``res_track.txt``), CTC ground truth (``NN_GT`` with ``TRA/``) or a GEFF
  store, checked before a plain Zarr store -> labels and lineage, no image.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .ctc import (
    CTCGroundTruth,
    find_gt_folder,
    list_frames,
    read_ctc_gt,
    read_ctc_result,
    read_ctc_sequence,
    write_ctc_gt,
    write_ctc_result,
    write_ctc_sequence,
)
from .lineage import (
    check_lineage,
    lineage_from_labels,
    read_lineage,
    split_track_gaps,
    tracks_from_labels,
    write_lineage,
)
from .tiff import TIFF_SUFFIXES, read_tiff, read_tiff_frames, rgb_to_gray, write_labels_tiff
from .tracked import read_tracked, tracked_kind
from .video import VIDEO_SUFFIXES, read_video
from .zarr_store import ZARR_METADATA, ZARR_SUFFIXES, read_zarr

__all__ = [
    "READABLE_SUFFIXES",
    "TIFF_SUFFIXES",
    "VIDEO_SUFFIXES",
    "ZARR_SUFFIXES",
    "CTCGroundTruth",
    "ReadResult",
    "check_lineage",
    "find_gt_folder",
    "is_ctc_sequence_folder",
    "lineage_from_labels",
    "read_any",
    "read_ctc_gt",
    "read_ctc_result",
    "read_ctc_sequence",
    "read_lineage",
    "read_tiff",
    "read_tiff_frames",
    "read_video",
    "read_zarr",
    "rgb_to_gray",
    "split_track_gaps",
    "tracks_from_labels",
    "write_ctc_gt",
    "write_ctc_result",
    "write_ctc_sequence",
    "write_labels_tiff",
    "write_lineage",
]

#: File and folder name endings :func:`read_any` knows (a CTC sequence folder has none).
READABLE_SUFFIXES = (*TIFF_SUFFIXES, *VIDEO_SUFFIXES, *ZARR_SUFFIXES)


@dataclass
class ReadResult:
    """What :func:`read_any` found at a path.

    Attributes
    ----------
    image : ndarray or dask.array.Array of shape (Y, X) or (T, Y, X), or None
        The grayscale image or movie; None for a tracked movie read without its images.
    labels : ndarray or dask.array.Array of shape like ``image``, or None
        Instance labels shipped with the image (a CTC sequence's ground truth).
    lineage : ndarray of shape (N, 4), int64, or None
        ``[label, first, last, parent]`` rows for ``labels`` when they are tracks.
    name : str
        A short name for display, e.g. a layer name.
    source_kind : str
        ``"tiff"``, ``"ctc"``, ``"video"``, ``"zarr"``, or for a tracked movie
        ``"ctc-result"``, ``"ctc-gt"`` or ``"geff"``.
    ground_truth : CTCGroundTruth or None
        The full CTC ground truth (sparse SEG frames included), for evaluation.
    notes : list of str
        What the reader had to adapt, for the user to know.
    """

    image: Any
    labels: Any = None
    lineage: np.ndarray | None = None
    name: str = ""
    source_kind: str = ""
    ground_truth: CTCGroundTruth | None = None
    notes: list[str] | None = None


def is_ctc_sequence_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder holding CTC raw frames ``tNNN.tif``."""
    path = Path(path)
    return path.is_dir() and bool(list_frames(path, "t"))


def _is_zarr(path: Path) -> bool:
    if path.name.lower().endswith(ZARR_SUFFIXES):
        return True
    return path.is_dir() and any((path / m).is_file() for m in ZARR_METADATA)


def _tiff_stem(path: Path) -> str:
    name = path.name
    for ending in (".ome.tiff", ".ome.tif", ".tiff", ".tif"):
        if name.lower().endswith(ending):
            return name[: -len(ending)]
    return path.stem


def _read_ctc(folder: Path, *, lazy: bool) -> ReadResult:
    image = read_ctc_sequence(folder, lazy=lazy)
    name = f"{folder.parent.name}/{folder.name}" if folder.parent.name else folder.name
    gt_folder = find_gt_folder(folder)
    if gt_folder is None:
        return ReadResult(image=image, name=name, source_kind="ctc")
    gt = read_ctc_gt(gt_folder, lazy=lazy)
    if tuple(gt.shape) != tuple(image.shape):
        raise InputError(
            f"{gt_folder}: ground truth of shape {gt.shape} does not match the sequence "
            f"{folder} of shape {tuple(image.shape)}"
        )
    labels, lineage = gt.tra, gt.lineage
    if len(gt.seg) == image.shape[0]:
        labels = np.stack([gt.seg[t] for t in range(image.shape[0])])
        # SEG labels are independent of TRA labels in general; keep the lineage only when
        # the masks carry the track labels (as in the simulated CTC sets).
        if lineage is not None:
            try:
                check_lineage(labels, lineage)
            except InputError:
                lineage = None
    return ReadResult(
        image=image,
        labels=labels,
        lineage=lineage,
        name=name,
        source_kind="ctc",
        ground_truth=gt,
    )


def read_any(path: str | os.PathLike, *, lazy: bool = False) -> ReadResult:
    """Read an image, a movie or a CTC sequence, choosing the reader from the path.

    Parameters
    ----------
    path : path-like
        A TIFF / OME-TIFF file, a video file, a Zarr store or a CTC sequence folder; see
        the module notes for the rules.
    lazy : bool, optional
        Read CTC frames on demand (dask). Zarr stores are always lazy; TIFF and video files
        are always read whole.

    Returns
    -------
    ReadResult

    Raises
    ------
    InputError
        The path does not exist or is of no known kind, or the chosen reader rejects it.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    lower = path.name.lower()
    kind = tracked_kind(path)
    if kind is not None:
        tracked = read_tracked(path)
        if tracked.labels is None:
            raise InputError(
                f"{tracked.source}: the GEFF holds no segmentation, so there are no labels to "
                f"open and curate"
            )
        name = path.name.removesuffix(".zarr").removesuffix(".geff") or path.name
        return ReadResult(
            image=None,
            labels=tracked.labels,
            lineage=tracked.lineage,
            name=name,
            source_kind=kind,
            notes=tracked.notes,
        )
    if _is_zarr(path):
        from .ome_zarr import read_tracked_labels

        name = path.name.removesuffix(".zarr").removesuffix(".ome") or path.name
        tracked = read_tracked_labels(path)  # a segment --zarr result: with its tracks
        labels, lineage = tracked if tracked is not None else (None, None)
        return ReadResult(
            image=read_zarr(path), labels=labels, lineage=lineage, name=name, source_kind="zarr"
        )
    if path.is_dir():
        if is_ctc_sequence_folder(path):
            return _read_ctc(path, lazy=lazy)
        raise InputError(
            f"{path}: folder is neither a Zarr store nor a Cell Tracking Challenge sequence "
            f"(no tNNN.tif frames found)"
        )
    if lower.endswith(TIFF_SUFFIXES):
        image = read_tiff(path, lazy=lazy)
        return ReadResult(image=image, name=_tiff_stem(path), source_kind="tiff")
    if lower.endswith(VIDEO_SUFFIXES):
        return ReadResult(image=read_video(path), name=path.stem, source_kind="video")
    raise InputError(
        f"{path}: unknown file type {path.suffix!r}; readable: {', '.join(READABLE_SUFFIXES)} "
        f"and folders of CTC tNNN.tif frames"
    )
