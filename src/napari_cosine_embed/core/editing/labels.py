"""Edits by label id: merge, delete, relabel, fill holes, add a painted object, carry a track."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ..errors import InputError
from ..grouping.postprocess import fill_holes
from ._frames import _bbox, _check_frame, _check_id, _present

_COLLISIONS = ("refuse", "swap", "merge")


# --- simple edits -------------------------------------------------------------------------------


def merge_labels(labels, ids: Iterable[int], *, into: int | None = None) -> np.ndarray:
    """Make several objects one: every pixel of ``ids`` takes the id ``into``.

    Parameters
    ----------
    labels : array_like of shape (Y, X), int
    ids : iterable of int
        At least two ids present in the frame.
    into : int, optional
        The id of the merged object; default the smallest of ``ids``.

    Examples
    --------
    >>> merge_labels(np.array([[1, 2, 0, 3]]), [3, 2])
    array([[1, 2, 0, 2]])
    """
    lab = _check_frame(labels)
    ids = _present(lab, ids)
    if len(ids) < 2:
        raise InputError(f"merging needs at least two different labels, got {ids}")
    into = ids[0] if into is None else _check_id(lab, into)
    out = lab.copy()
    out[np.isin(lab, ids)] = into
    return out


def delete_labels(labels, ids: Iterable[int]) -> np.ndarray:
    """Set the pixels of ``ids`` to background.

    Examples
    --------
    >>> delete_labels(np.array([[1, 2, 0, 3]]), [1, 3])
    array([[0, 2, 0, 0]])
    """
    lab = _check_frame(labels)
    out = lab.copy()
    out[np.isin(lab, _present(lab, ids))] = 0
    return out


def relabel(labels, old: int, new: int, *, collision: str = "refuse") -> np.ndarray:
    """Give object ``old`` the id ``new``.

    Parameters
    ----------
    labels : array_like of shape (Y, X), int
    old, new : int
        ``old`` must be in the frame.
    collision : {"refuse", "swap", "merge"}
        What to do when ``new`` is already in the frame: raise :class:`InputError`, exchange
        the two ids, or merge the two objects under ``new``.

    Examples
    --------
    >>> relabel(np.array([[1, 2, 0]]), 1, 2, collision="swap")
    array([[2, 1, 0]])
    """
    lab = _check_frame(labels)
    (old,) = _present(lab, [old])
    new = _check_id(lab, new)
    if collision not in _COLLISIONS:
        raise InputError(f"collision must be one of {_COLLISIONS}, got {collision!r}")
    out = lab.copy()
    if new == old:
        return out
    taken = lab == new
    if taken.any():
        if collision == "refuse":
            raise InputError(
                f"label {new} is already in this frame; choose another id, or swap or merge"
            )
        if collision == "swap":
            out[taken] = old
    out[lab == old] = new
    return out


def fill_label_holes(labels, label_id: int) -> np.ndarray:
    """Fill the holes of one object: background enclosed by it alone takes its id.

    The holes are those of :func:`~.grouping.fill_holes` (4-connected background regions that
    do not touch the border and whose only neighbour is this object); other objects, and
    background around objects nested inside this one, are left as they are.

    Examples
    --------
    >>> lab = np.array([[1, 1, 1, 2, 2, 2],
    ...                 [1, 0, 1, 2, 0, 2],
    ...                 [1, 1, 1, 2, 2, 2]])
    >>> fill_label_holes(lab, 1)[1]
    array([1, 1, 1, 2, 0, 2])
    """
    lab = _check_frame(labels)
    (label_id,) = _present(lab, [label_id])
    # Holes of the object lie inside its bounding box, and a region touching the box's
    # one-pixel margin is not enclosed by it alone, so the box suffices.
    box = _bbox(lab == label_id, pad=1)
    crop = lab[box]
    filled = fill_holes(crop.astype(np.int32, copy=False))
    out = lab.copy()
    out[box][(filled == label_id) & (crop == 0)] = label_id
    return out


def add_label(labels, mask, new_id: int) -> np.ndarray:
    """Paint ``mask`` with ``new_id`` where the frame is background; objects are kept.

    Examples
    --------
    >>> add_label(np.array([[0, 1, 0]]), np.array([[True, True, False]]), 2)
    array([[2, 1, 0]])
    """
    lab = _check_frame(labels)
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != lab.shape:
        raise InputError(f"mask has shape {mask.shape}, the labels {lab.shape}")
    new_id = _check_id(lab, new_id, "new")
    out = lab.copy()
    out[mask & (lab == 0)] = new_id
    return out


# --- tracks -------------------------------------------------------------------------------------


def carry_track(
    movie, t: int, label_id: int, *, frames: int = 1, min_iou: float = 0.0
) -> dict[int, np.ndarray]:
    """Give the object that continues ``label_id`` in the next frames the same id.

    From frame ``t`` on, the object with the best intersection over union with the previous
    frame's ``label_id`` object takes ``label_id``; an object that already had ``label_id``
    there takes the id the match gave up (the two ids are swapped), so no id is duplicated.
    Stops at the first frame where nothing overlaps by more than ``min_iou``.

    Parameters
    ----------
    movie : array_like of shape (T, Y, X), int
        numpy, dask or a napari layer's data; only frames ``t .. t + frames`` are read.
    t : int
        The frame whose ``label_id`` is right.
    label_id : int
    frames : int
        How many frames after ``t`` to carry the id to.
    min_iou : float
        Least overlap (intersection over union) of a match.

    Returns
    -------
    dict of int to ndarray of shape (Y, X)
        The new content of each frame that changed.

    Examples
    --------
    >>> movie = np.array([[[1, 1, 0, 2]], [[0, 3, 3, 1]], [[0, 0, 2, 2]]])
    >>> carry_track(movie, 0, 1, frames=2)
    {1: array([[0, 1, 1, 3]]), 2: array([[0, 0, 1, 1]])}
    """
    if len(movie.shape) != 3:
        raise InputError(f"a movie must have shape (T, Y, X), got {tuple(movie.shape)}")
    n_frames = movie.shape[0]
    if not 0 <= t < n_frames:
        raise InputError(f"frame {t} is outside the movie's {n_frames} frames")
    if frames < 1:
        raise InputError(f"frames must be >= 1, got {frames}")
    first = _check_frame(np.asarray(movie[t]))
    (label_id,) = _present(first, [label_id])
    previous = first == label_id
    changed: dict[int, np.ndarray] = {}
    for s in range(t + 1, min(t + frames, n_frames - 1) + 1):
        frame = _check_frame(np.asarray(movie[s]))
        under = frame[previous]
        under = under[under > 0]
        if not under.size:
            break
        ids, inter = np.unique(under, return_counts=True)
        areas = np.array([np.count_nonzero(frame == i) for i in ids])
        iou = inter / (previous.sum() + areas - inter)
        best = int(np.argmax(iou))
        if iou[best] <= min_iou:
            break
        match = int(ids[best])
        if match != label_id:
            _check_id(frame, label_id)
            new = frame.copy()
            new[frame == label_id] = match
            new[frame == match] = label_id
            changed[s] = new
            frame = new
        previous = frame == label_id
    return changed
