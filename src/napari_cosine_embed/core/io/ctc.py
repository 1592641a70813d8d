"""Cell Tracking Challenge (CTC) folders: raw sequences, ground truth, results, lineage files.

The layout (the CTC "naming and file content conventions"):

* a sequence ``NN/`` holds one 2D TIFF per frame, ``t000.tif``, ``t001.tif``, ...
* its ground truth ``NN_GT/`` holds ``SEG/man_segNNN.tif`` (full segmentations, possibly on
  a few frames only and of a few objects only) and ``TRA/man_trackNNN.tif`` (markers on every
  frame, one label per track) with ``TRA/man_track.txt``;
* a result ``NN_RES/`` holds ``maskNNN.tif`` (uint16, one per frame) and ``res_track.txt``.

Lineage files have one line ``L B E P`` per track (label, first frame, last frame, parent
label or 0), see :mod:`.lineage`. Frame numbers have 3 digits, 4 when a sequence has more than
999 frames; readers accept any number of digits.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile

from ..errors import InputError
from ._atomic import atomic_folder
from .lineage import _as_lineage, check_lineage, lineage_from_labels, read_lineage, write_lineage
from .tiff import check_label_dtype, parallel_map, read_label_frame, read_tiff_frames

__all__ = [
    "CTCGroundTruth",
    "find_gt_folder",
    "list_frames",
    "read_ctc_gt",
    "read_ctc_result",
    "read_ctc_sequence",
    "read_label_frames",
    "read_lineage",
    "write_ctc_gt",
    "write_ctc_result",
    "write_ctc_sequence",
    "write_lineage",
]

_UINT16_MAX = int(np.iinfo(np.uint16).max)


def _digits(n_frames: int) -> int:
    return 4 if n_frames > 999 else 3


def list_frames(folder: str | os.PathLike, prefix: str) -> dict[int, Path]:
    """Frame files ``<prefix><number>.tif`` in a folder, by frame number.

    Parameters
    ----------
    folder : path-like
        Folder to list (not recursive).
    prefix : str
        File name prefix, e.g. ``"t"``, ``"mask"``, ``"man_seg"``, ``"man_track"``.

    Returns
    -------
    dict of int to Path
        Sorted by frame number; empty when there are none.
    """
    pattern = re.compile(rf"^{re.escape(prefix)}(\d+)\.tiff?$")
    found: dict[int, Path] = {}
    try:
        entries = list(Path(folder).iterdir())
    except OSError as exc:
        raise InputError(f"{folder}: cannot be read ({exc.strerror or exc})") from exc
    for entry in entries:
        match = pattern.match(entry.name)
        if match and entry.is_file():
            frame = int(match.group(1))
            if frame in found:
                raise InputError(
                    f"{folder}: frame {frame} is stored twice ({found[frame].name} and "
                    f"{entry.name})"
                )
            found[frame] = entry
    return dict(sorted(found.items()))


def _require_movie(array, what: str) -> None:
    if getattr(array, "ndim", None) != 3:
        raise InputError(
            f"{what} must be a (T, Y, X) movie, got shape {getattr(array, 'shape', None)}"
        )


def _consecutive(folder: Path, frames: dict[int, Path], what: str) -> list[Path]:
    if not frames:
        raise InputError(f"{folder}: no {what} files found")
    numbers = list(frames)
    expected = list(range(len(numbers)))
    if numbers != expected:
        missing = sorted(set(range(max(numbers) + 1)) - set(numbers))
        raise InputError(
            f"{folder}: {what} frames must be numbered consecutively from 0; found "
            f"{len(numbers)} files numbered {numbers[0]}..{numbers[-1]}, missing "
            f"{missing[:10]}{' ...' if len(missing) > 10 else ''}"
        )
    return list(frames.values())


def read_ctc_sequence(folder: str | os.PathLike, *, lazy: bool = False):
    """Read a CTC raw image sequence (``t000.tif``, ``t001.tif``, ...).

    Parameters
    ----------
    folder : path-like
        The sequence folder, e.g. ``Fluo-N2DH-SIM+/02``.
    lazy : bool, optional
        Return a dask array that reads each frame when it is first computed.

    Returns
    -------
    ndarray or dask.array.Array of shape (T, Y, X)
        Frames in their stored dtype.

    Raises
    ------
    InputError
        The folder is missing or has no frame files, frames are not numbered 0..T-1, or
        frames differ in shape or dtype.
    """
    folder = _existing_folder(folder)
    paths = _consecutive(folder, list_frames(folder, "t"), "tNNN.tif")
    return read_tiff_frames(paths, lazy=lazy)


def _existing_folder(folder: str | os.PathLike) -> Path:
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: no such folder")
    return folder


def _require_integer(labels, what: str) -> None:
    """Reject label arrays that are not integer (or boolean)."""
    dtype = np.dtype(labels.dtype)
    if not (np.issubdtype(dtype, np.integer) or dtype == np.bool_):
        raise InputError(f"{what} must be integer labels, got dtype {dtype}")


def _write_uint16_frames(folder: Path, frames, prefix: str, n_frames: int, what: str) -> None:
    """Write ``<prefix>NNN.tif`` files from ``(t, frame)`` pairs, checking the label range."""
    width = _digits(n_frames)

    def write(item: tuple) -> None:
        t, frame = item
        frame = np.asarray(frame)
        if frame.ndim != 2:
            raise InputError(f"{what} frame {t} must be 2D (Y, X), got shape {frame.shape}")
        _require_integer(frame, what)
        if frame.size:
            lo, hi = int(frame.min()), int(frame.max())
            if lo < 0 or hi > _UINT16_MAX:
                raise InputError(
                    f"{what} frame {t} has labels {lo}..{hi}; CTC masks are uint16, so "
                    f"labels must lie in 0..{_UINT16_MAX}"
                )
        tifffile.imwrite(
            folder / f"{prefix}{t:0{width}d}.tif",
            frame.astype(np.uint16, copy=False),
            compression="lzw",
            photometric="minisblack",
        )

    parallel_map(write, frames)


def write_ctc_result(
    folder: str | os.PathLike,
    labels,
    lineage: np.ndarray | None = None,
    *,
    overwrite: bool = False,
    extra_files: Mapping[str, str] | None = None,
) -> Path:
    """Write a tracking result as a CTC result folder (``maskNNN.tif`` + ``res_track.txt``).

    Parameters
    ----------
    folder : path-like
        Destination folder, conventionally ``NN_RES``; built in a temporary sibling and moved
        into place only when complete.
    labels : array of shape (T, Y, X)
        Integer label movie (numpy or dask), labels 0..65535, one label per track.
    lineage : array-like of shape (N, 4), optional
        Rows ``[label, first, last, parent]``; derived from ``labels`` (no parents) when
        omitted. Checked against ``labels`` with :func:`.lineage.check_lineage`.
    overwrite : bool, optional
        Replace an existing folder.
    extra_files : mapping of str to str, optional
        Text files written into the folder with the masks (e.g. the settings of the run), so
        they appear atomically with them.

    Returns
    -------
    Path
        The result folder.
    """
    _require_movie(labels, "labels")
    _require_integer(labels, "labels")
    lineage = lineage_from_labels(labels) if lineage is None else _as_lineage(lineage)
    check_lineage(labels, lineage)
    if lineage.size and lineage[:, 0].max() > _UINT16_MAX:
        raise InputError(
            f"label {lineage[:, 0].max()} does not fit in a CTC uint16 mask (max {_UINT16_MAX})"
        )
    n_frames = labels.shape[0]
    with atomic_folder(folder, overwrite=overwrite) as tmp:
        frames = ((t, labels[t]) for t in range(n_frames))
        _write_uint16_frames(tmp, frames, "mask", n_frames, "labels")
        write_lineage(tmp / "res_track.txt", lineage)
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text)
    return Path(folder)


def read_ctc_result(folder: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a CTC result folder (``maskNNN.tif`` + ``res_track.txt``).

    Parameters
    ----------
    folder : path-like
        The result folder.

    Returns
    -------
    labels : ndarray of shape (T, Y, X)
        The masks, in their stored dtype (uint16 when written by :func:`write_ctc_result`).
    lineage : ndarray of shape (N, 4), int64
        The lineage rows, sorted by label.

    Raises
    ------
    InputError
        Naming the folder or file: no masks, masks not numbered 0..T-1, a mask unreadable,
        of another shape or not of an integer dtype, ``res_track.txt`` missing or malformed.
        Whether the lineage describes the masks is not checked here (see
        :func:`.lineage.validate_ctc_lineage`).
    """
    folder = _existing_folder(folder)
    paths = _consecutive(folder, list_frames(folder, "mask"), "maskNNN.tif")
    labels = read_label_frames(paths)
    return labels, read_lineage(folder / "res_track.txt")


def read_label_frames(paths, *, lazy: bool = False):
    """Stack single-frame label TIFF files (CTC masks or markers) into a label movie.

    Parameters
    ----------
    paths : sequence of path-like
        One 2D label TIFF per frame, in time order (at least one).
    lazy : bool, optional
        Return a dask array; the dtype is still checked up front, from the file headers.

    Returns
    -------
    ndarray or dask.array.Array of shape (T, Y, X)
        Labels in their stored integer dtype.

    Raises
    ------
    InputError
        Naming the file: unreadable, not 2D, frames of different shapes or dtypes, a dtype
        that is not integer, or (when read at once) negative labels.
    """
    paths = [Path(p) for p in paths]
    labels = read_tiff_frames(paths, lazy=lazy)
    # Every frame shares the first one's dtype (read_tiff_frames checks), so one check will do.
    check_label_dtype(paths[0], labels.dtype)
    eager_signed = isinstance(labels, np.ndarray) and labels.dtype.kind == "i" and labels.size
    if eager_signed and labels.min() < 0:
        t = int(np.flatnonzero(labels.min(axis=(1, 2)) < 0)[0])
        raise InputError(
            f"{paths[t]}: labels must be >= 0 (0 is the background), found {labels[t].min()}"
        )
    return labels


@dataclass
class CTCGroundTruth:
    """The ground truth of one CTC sequence.

    Attributes
    ----------
    seg : dict of int to ndarray of shape (Y, X)
        Reference segmentations by frame number; only the annotated frames are present, and
        an annotated frame may label only some of its objects. SEG labels are unrelated to
        TRA labels.
    tra : ndarray or dask.array.Array of shape (T, Y, X), or None
        Tracking markers, one label per track, on every frame; None without a ``TRA`` folder.
    lineage : ndarray of shape (N, 4), int64, or None
        ``man_track.txt`` rows ``[label, first, last, parent]``; None without a ``TRA`` folder.
    shape : tuple of int
        (T, Y, X) of the sequence: from ``TRA`` when present, else up to the last SEG frame.
    """

    seg: dict[int, np.ndarray]
    tra: np.ndarray | None
    lineage: np.ndarray | None
    shape: tuple


def find_gt_folder(sequence_folder: str | os.PathLike) -> Path | None:
    """The ground-truth folder of a CTC sequence: the sibling ``NN_GT`` of ``NN``, if any."""
    folder = Path(sequence_folder)
    gt = folder.with_name(f"{folder.name}_GT")
    return gt if gt.is_dir() else None


def read_ctc_gt(folder: str | os.PathLike, *, lazy: bool = False) -> CTCGroundTruth:
    """Read a CTC ground-truth folder (``SEG/`` and/or ``TRA/``).

    Parameters
    ----------
    folder : path-like
        The ``NN_GT`` folder.
    lazy : bool, optional
        Return ``tra`` as a dask array that reads frames on demand (SEG frames, usually few,
        are read at once either way).

    Returns
    -------
    CTCGroundTruth

    Raises
    ------
    InputError
        Neither ``SEG`` nor ``TRA`` holds frame files; TRA frames are not numbered 0..T-1 or
        differ in shape; a frame is unreadable or not of an integer dtype; ``man_track.txt``
        is missing or malformed; SEG and TRA frames differ in size.
    """
    folder = _existing_folder(folder)
    seg_dir, tra_dir = folder / "SEG", folder / "TRA"
    seg_paths = list_frames(seg_dir, "man_seg") if seg_dir.is_dir() else {}
    tra_paths = list_frames(tra_dir, "man_track") if tra_dir.is_dir() else {}
    if not seg_paths and not tra_paths:
        raise InputError(
            f"{folder}: no ground truth found (expected SEG/man_segNNN.tif or "
            f"TRA/man_trackNNN.tif files)"
        )
    seg = dict(zip(seg_paths, parallel_map(read_label_frame, seg_paths.values()), strict=True))
    tra = lineage = None
    if tra_paths:
        tra = read_label_frames(_consecutive(tra_dir, tra_paths, "man_trackNNN.tif"), lazy=lazy)
        lineage = read_lineage(tra_dir / "man_track.txt")
        shape = tuple(tra.shape)
    else:
        first = next(iter(seg.values()))
        shape = (max(seg) + 1, *first.shape)
    for t, frame in seg.items():
        if frame.shape != shape[1:] or t >= shape[0]:
            raise InputError(
                f"{seg_paths[t]}: SEG frame {t} of shape {frame.shape} does not fit the "
                f"sequence of shape {shape}"
            )
    return CTCGroundTruth(seg=seg, tra=tra, lineage=lineage, shape=shape)


def write_ctc_gt(
    folder: str | os.PathLike,
    *,
    tra,
    lineage: np.ndarray,
    seg=None,
    overwrite: bool = False,
) -> Path:
    """Write a CTC ground-truth folder (``SEG/``, ``TRA/``), atomically.

    Parameters
    ----------
    folder : path-like
        Destination ``NN_GT`` folder.
    tra : array of shape (T, Y, X)
        Tracking markers (or full masks), one label per track, labels 0..65535.
    lineage : array-like of shape (N, 4)
        Rows ``[label, first, last, parent]``, checked against ``tra``.
    seg : array of shape (T, Y, X) or dict of int to array of shape (Y, X), optional
        Reference segmentations: every frame, or only the curated frames by frame number.
        Without it no ``SEG`` folder is written.
    overwrite : bool, optional
        Replace an existing folder.

    Returns
    -------
    Path
        The ground-truth folder; :func:`read_ctc_gt` reads it back.
    """
    _require_movie(tra, "tra")
    _require_integer(tra, "tra")
    lineage = _as_lineage(lineage)
    check_lineage(tra, lineage)
    n_frames = tra.shape[0]
    if seg is None:
        seg_items = []
    elif isinstance(seg, dict):
        seg_items = sorted(seg.items())
        bad = [t for t, _ in seg_items if not 0 <= t < n_frames]
        if bad:
            raise InputError(f"seg frames {bad} are outside the movie's frames 0..{n_frames - 1}")
    else:
        if getattr(seg, "shape", None) != tuple(tra.shape):
            raise InputError(
                f"seg must be a dict of frames or an array of shape {tuple(tra.shape)} like "
                f"tra, got shape {getattr(seg, 'shape', None)}"
            )
        seg_items = [(t, seg[t]) for t in range(n_frames)]
    for t, frame in seg_items:
        if np.shape(frame) != tuple(tra.shape[1:]):
            raise InputError(
                f"seg frame {t} has shape {np.shape(frame)}, expected {tuple(tra.shape[1:])}"
            )
    with atomic_folder(folder, overwrite=overwrite) as tmp:
        (tmp / "TRA").mkdir()
        frames = ((t, tra[t]) for t in range(n_frames))
        _write_uint16_frames(tmp / "TRA", frames, "man_track", n_frames, "tra")
        write_lineage(tmp / "TRA" / "man_track.txt", lineage)
        if seg_items:
            (tmp / "SEG").mkdir()
            _write_uint16_frames(tmp / "SEG", seg_items, "man_seg", n_frames, "seg")
    return Path(folder)


def write_ctc_sequence(folder: str | os.PathLike, images, *, overwrite: bool = False) -> Path:
    """Write a raw image sequence as CTC frames ``t000.tif``, ``t001.tif``, ..., atomically.

    Parameters
    ----------
    folder : path-like
        Destination sequence folder (``NN``).
    images : array of shape (T, Y, X)
        Grayscale frames (numpy or dask), stored in their own dtype.
    overwrite : bool, optional
        Replace an existing folder.

    Returns
    -------
    Path
        The sequence folder; :func:`read_ctc_sequence` reads it back.
    """
    _require_movie(images, "images")
    width = _digits(images.shape[0])
    with atomic_folder(folder, overwrite=overwrite) as tmp:

        def write(t: int) -> None:
            tifffile.imwrite(
                tmp / f"t{t:0{width}d}.tif",
                np.asarray(images[t]),
                compression="lzw",
                photometric="minisblack",
            )

        parallel_map(write, range(images.shape[0]))
    return Path(folder)
