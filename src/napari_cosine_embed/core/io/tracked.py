"""Tracked label movies on disk, whatever tool wrote them: CTC result folders, CTC ground truth
(TRA markers) and GEFF stores, read into one form and written back in either format.

This is what opening another tool's result for curation, and ``napari-cosine-embed convert``,
rest on. Conversions are lossless both ways: the masks, the labels and the lineage of a CTC
result survive a trip through GEFF unchanged, and a GEFF written here comes back with the same
graph.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from .ctc import list_frames, read_ctc_gt, read_ctc_result, write_ctc_result
from .geff_store import GEFF_SUFFIXES, find_geff_group, read_geff, write_geff
from .lineage import split_track_gaps, validate_ctc_lineage

__all__ = ["Tracked", "is_tracked", "read_tracked", "tracked_kind", "write_tracked"]


@dataclass
class Tracked:
    """A tracked label movie read from disk.

    Attributes
    ----------
    labels : ndarray of shape (T, Y, X) or None
        One label per track; None for a GEFF that holds no segmentation.
    lineage : ndarray of shape (N, 4), int64
        Rows ``[label, first_frame, last_frame, parent]``.
    kind : str
        ``"ctc-result"``, ``"ctc-gt"`` or ``"geff"``.
    source : Path
        What was read (the GEFF group, the result or TRA folder).
    notes : list of str
        What had to be adapted on reading.
    """

    labels: np.ndarray | None
    lineage: np.ndarray
    kind: str
    source: Path
    notes: list[str] = field(default_factory=list)


def tracked_kind(path: str | os.PathLike) -> str | None:
    """``"geff"``, ``"ctc-result"`` or ``"ctc-gt"`` for a tracked movie at ``path``, else None.

    A CTC result folder holds ``maskNNN.tif`` and ``res_track.txt``; a CTC ground-truth folder
    (``NN_GT``) holds ``TRA/man_trackNNN.tif`` and ``TRA/man_track.txt`` (its TRA folder
    itself is accepted too).
    """
    path = Path(path)
    if not path.is_dir():
        return None
    if find_geff_group(path) is not None:
        return "geff"
    if (path / "res_track.txt").is_file() and list_frames(path, "mask"):
        return "ctc-result"
    tra = path / "TRA" if (path / "TRA").is_dir() else path
    if (tra / "man_track.txt").is_file() and list_frames(tra, "man_track"):
        return "ctc-gt"
    return None


def is_tracked(path: str | os.PathLike) -> bool:
    """Whether ``path`` holds a tracked movie :func:`read_tracked` can open."""
    return tracked_kind(path) is not None


def read_tracked(path: str | os.PathLike) -> Tracked:
    """Read the tracked label movie at ``path`` (a CTC result or ground truth, or a GEFF).

    Parameters
    ----------
    path : path-like

    Returns
    -------
    Tracked

    Raises
    ------
    InputError
        Nothing tracked there, or files that contradict each other (a lineage that does not
        describe its masks, a GEFF that is no lineage).
    """
    path = Path(path)
    kind = tracked_kind(path)
    if kind is None:
        raise InputError(
            f"{path}: neither a CTC result folder (maskNNN.tif + res_track.txt), a CTC ground "
            f"truth folder (TRA/man_trackNNN.tif + man_track.txt) nor a GEFF store"
        )
    if kind == "geff":
        found = read_geff(path)
        return Tracked(found.labels, found.lineage, kind, found.source, found.notes)
    if kind == "ctc-result":
        labels, lineage = read_ctc_result(path)
        validate_ctc_lineage(labels, lineage, track_file=path / "res_track.txt")
        return Tracked(np.asarray(labels), lineage, kind, path)
    folder = path.parent if path.name == "TRA" else path
    gt = read_ctc_gt(folder)
    labels, lineage = np.asarray(gt.tra), gt.lineage
    validate_ctc_lineage(
        labels, lineage, track_file=folder / "TRA" / "man_track.txt", allow_gaps=True
    )
    notes = []
    parents = {int(c): int(p) for c, _, _, p in lineage if p}
    split, split_lineage = split_track_gaps(labels, parents=parents)
    if len(split_lineage) != len(lineage):
        notes.append(
            f"{len(split_lineage) - len(lineage)} gap(s) in ground-truth tracks now start a "
            f"new label linked to the one before, as a CTC result requires"
        )
    return Tracked(split, split_lineage, kind, folder / "TRA", notes)


def write_tracked(path: str | os.PathLike, labels, lineage, *, overwrite: bool = False) -> Path:
    """Write a tracked movie as a GEFF (``*.geff``, ``*.zarr``) or else a CTC result folder.

    Parameters
    ----------
    path : path-like
        The suffix chooses the format.
    labels : array of shape (T, Y, X), int
    lineage : array-like of shape (N, 4)
    overwrite : bool

    Returns
    -------
    Path
        What was written (for a ``*.zarr`` container, its GEFF group).
    """
    path = Path(path)
    if path.name.lower().endswith(GEFF_SUFFIXES):
        return write_geff(path, labels, lineage, overwrite=overwrite)
    return write_ctc_result(path, labels, lineage, overwrite=overwrite)
