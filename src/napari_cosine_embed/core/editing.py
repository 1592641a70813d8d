"""Corrections of instance labels: merge, delete, relabel, fill, split, cut, add, carry a track.

Every edit is a plain function on one label frame of shape (Y, X) (or, for
:func:`carry_track`, on a movie of shape (T, Y, X)) that returns a **new** frame of the same
dtype and leaves its input untouched. :class:`Change` turns a before/after pair into the small
record a GUI needs to apply the edit in place and undo it: the changed pixels, their old and
their new values (napari's ``Labels.data_setitem`` takes exactly these and records them in the
layer's undo history).

New ids never collide: functions that create objects take ``new_id`` (default: one more than
the frame's largest id); a caller editing a movie passes :func:`next_free_label` of the whole
movie, so a new object cannot take the id of a track that lives in another frame.

Examples
--------
>>> lab = np.array([[1, 1, 0, 2, 2]], dtype=np.uint16)
>>> merged = merge_labels(lab, [1, 2])
>>> merged
array([[1, 1, 0, 1, 1]], dtype=uint16)
>>> change = Change.between(lab, merged)
>>> change.cols, change.old, change.new
(array([3, 4]), array([2, 2], dtype=uint16), array([1, 1], dtype=uint16))
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from .errors import InputError
from .grouping.postprocess import fill_holes
from .grouping.seeds import seed_mask

__all__ = [
    "Change",
    "add_label",
    "carry_track",
    "cut_labels",
    "delete_labels",
    "fill_label_holes",
    "merge_labels",
    "next_free_label",
    "relabel",
    "seed_region",
    "split_label",
]

_COLLISIONS = ("refuse", "swap", "merge")


# --- the edit record ------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Change:
    """The pixels of one frame that an edit changes, with their old and new values.

    Attributes
    ----------
    t : int or None
        Frame of a (T, Y, X) movie, or None for a single (Y, X) image.
    rows, cols : ndarray of shape (N,), intp
        Indices of the changed pixels within the frame.
    old, new : ndarray of shape (N,)
        Their values before and after the edit.
    """

    t: int | None
    rows: np.ndarray
    cols: np.ndarray
    old: np.ndarray
    new: np.ndarray

    @classmethod
    def between(cls, before, after, *, t: int | None = None) -> Change:
        """The change that turns frame ``before`` into frame ``after`` (same shape)."""
        before, after = np.asarray(before), np.asarray(after)
        if before.shape != after.shape or before.ndim != 2:
            raise InputError(
                f"frames must both have the same shape (Y, X), got {before.shape} and {after.shape}"
            )
        rows, cols = np.nonzero(before != after)
        return cls(t, rows, cols, before[rows, cols], after[rows, cols])

    def __len__(self) -> int:
        return int(self.rows.size)

    @property
    def box(self) -> tuple[slice, slice] | None:
        """Bounding box of the changed pixels within the frame (None when nothing changes)."""
        if not len(self):
            return None
        return (
            slice(int(self.rows.min()), int(self.rows.max()) + 1),
            slice(int(self.cols.min()), int(self.cols.max()) + 1),
        )

    def indices(self, ndim: int) -> tuple[np.ndarray, ...]:
        """Fancy indices of the changed pixels into an array of ``ndim`` (2 or 3) dimensions."""
        if ndim == 2:
            return (self.rows, self.cols)
        if ndim == 3 and self.t is not None:
            return (np.full(self.rows.shape, self.t, np.intp), self.rows, self.cols)
        raise InputError(f"a change of frame t={self.t} cannot index a {ndim}-D array")

    def apply(self, data: np.ndarray) -> None:
        """Write the new values into ``data`` (the frame or the movie) in place."""
        data[self.indices(data.ndim)] = self.new

    def revert(self, data: np.ndarray) -> None:
        """Write the old values back into ``data`` in place."""
        data[self.indices(data.ndim)] = self.old


# --- checks -----------------------------------------------------------------------------------


def _check_frame(labels: Any) -> np.ndarray:
    lab = np.asarray(labels)
    if lab.ndim != 2:
        raise InputError(f"a label frame must have shape (Y, X), got {lab.shape}")
    if not np.issubdtype(lab.dtype, np.integer):
        raise InputError(f"labels must be integers, got dtype {lab.dtype}")
    return lab


def _check_id(lab: np.ndarray, value: int, what: str = "label") -> int:
    value = int(value)
    if value <= 0:
        raise InputError(f"{what} ids are positive (0 is the background), got {value}")
    if value > np.iinfo(lab.dtype).max:
        raise InputError(f"{what} {value} does not fit the labels' dtype {lab.dtype}")
    return value


def _present(lab: np.ndarray, ids: Iterable[int]) -> list[int]:
    ids = sorted({int(i) for i in np.atleast_1d(np.asarray(list(ids), dtype=np.int64))})
    if not ids:
        raise InputError("no label ids given")
    for i in ids:
        _check_id(lab, i)
    missing = [i for i in ids if not np.any(lab == i)]
    if missing:
        raise InputError(f"label(s) {missing} are not in this frame")
    return ids


def _structure(connectivity: int) -> np.ndarray:
    if connectivity not in (1, 2):
        raise InputError(f"connectivity must be 1 or 2, got {connectivity}")
    return ndi.generate_binary_structure(2, connectivity)


def _bbox(mask: np.ndarray, pad: int = 0) -> tuple[slice, slice]:
    rows, cols = np.nonzero(mask)
    height, width = mask.shape
    return (
        slice(max(int(rows.min()) - pad, 0), min(int(rows.max()) + pad + 1, height)),
        slice(max(int(cols.min()) - pad, 0), min(int(cols.max()) + pad + 1, width)),
    )


def next_free_label(labels) -> int:
    """One more than the largest id of a frame or movie (1 for an empty one).

    Parameters
    ----------
    labels : array_like of int, any shape
        numpy or dask; a whole movie, so that the id is free in every frame.

    Examples
    --------
    >>> next_free_label(np.array([[0, 4], [2, 0]]))
    5
    """
    if getattr(labels, "size", 1) == 0:
        return 1
    return max(int(labels.max()), 0) + 1


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


# --- split --------------------------------------------------------------------------------------


def _two_means(points: np.ndarray, iterations: int = 50) -> np.ndarray:
    """Lloyd's k-means with k = 2 from a deterministic far-apart start; returns 0/1 per point."""
    first = points[np.argmax(((points - points.mean(0)) ** 2).sum(1))]
    second = points[np.argmax(((points - first) ** 2).sum(1))]
    centres = np.stack([first, second])
    assign = np.full(len(points), -1, np.intp)
    for _ in range(iterations):
        dist = ((points[:, None, :] - centres[None]) ** 2).sum(-1)
        new = np.argmin(dist, axis=1)
        if (new == assign).all():
            break
        assign = new
        for k in (0, 1):
            if np.any(assign == k):
                centres[k] = points[assign == k].mean(0)
    return assign


def _by_embedding(mask: np.ndarray, embedding: np.ndarray, coord_weight: float) -> np.ndarray:
    rows, cols = np.nonzero(mask)
    emb = embedding[:, rows, cols].T.astype(np.float64)
    emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    # coord_weight is the distance added by moving one object diameter (sqrt of the area)
    scale = coord_weight / max(np.sqrt(rows.size), 1.0)
    points = np.column_stack([emb, rows * scale, cols * scale])
    return _two_means(points) + 1


def _by_shape(mask: np.ndarray) -> np.ndarray:
    from skimage.feature import peak_local_max
    from skimage.segmentation import watershed

    dist = ndi.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    size = np.sqrt(mask.sum())
    peaks = peak_local_max(
        dist,
        min_distance=max(1, int(0.25 * size)),
        num_peaks=2,
        labels=mask.astype(np.int32),
        exclude_border=False,
    )
    rows, cols = np.nonzero(mask)
    if len(peaks) == 2:
        markers = np.zeros(mask.shape, np.int32)
        markers[tuple(peaks.T)] = (1, 2)
        return watershed(-dist, markers, mask=mask)[rows, cols]
    # One centre (a convex blob): cut across its longest axis, through the centroid.
    coords = np.column_stack([rows, cols]).astype(np.float64)
    coords -= coords.mean(0)
    axis = np.linalg.svd(coords, full_matrices=False)[2][0]
    return np.where(coords @ axis > 0, 2, 1)


def _keep_connected(mask: np.ndarray, groups: np.ndarray, structure: np.ndarray) -> np.ndarray:
    """Each group keeps its largest connected piece; stray pieces join the nearest core."""
    cores = np.zeros(mask.shape, np.int32)
    for k in (1, 2):
        pieces, n = ndi.label(groups == k, structure=structure)
        if n:
            sizes = np.bincount(pieces.ravel())[1:]
            cores[pieces == np.argmax(sizes) + 1] = k
    _, (near_r, near_c) = ndi.distance_transform_edt(cores == 0, return_indices=True)
    out = cores[near_r, near_c]
    out[~mask] = 0
    return out


def split_label(
    labels,
    label_id: int,
    *,
    embedding=None,
    new_id: int | None = None,
    coord_weight: float = 0.5,
    connectivity: int = 1,
) -> np.ndarray:
    """Split one object in two by re-grouping its pixels.

    With an embedding the pixels are split by 2-means on their unit embedding vectors plus
    their coordinates (moving one object diameter, the square root of its area, adds
    ``coord_weight``). Without, the object is cut by a watershed of its distance transform
    from its two highest centres (two touching nuclei), or across its longest axis when it has
    only one centre. Either way each part is made connected (stray pixels join the nearest
    part). An object already in several pieces is split into its pieces instead.

    Parameters
    ----------
    labels : array_like of shape (Y, X), int
    label_id : int
        The object to split.
    embedding : array_like of shape (D, Y, X), optional
        Pixel embeddings of the frame.
    new_id : int, optional
        Id of the new part (the larger part keeps ``label_id``); further pieces of an
        object already in pieces take ``new_id + 1``, ... Default: one more than the frame's
        largest id.
    coord_weight : float
        Weight of position against embedding, see above.
    connectivity : {1, 2}
        Which pixels count as touching (edges only, or corners too).

    Returns
    -------
    ndarray of shape (Y, X)
        Same dtype as ``labels``.

    Examples
    --------
    >>> lab = np.zeros((5, 9), int); lab[1:4, 1:4] = 7; lab[1:4, 5:8] = 7; lab[2, 4] = 7
    >>> split_label(lab, 7, new_id=9)[2]
    array([0, 7, 7, 7, 7, 9, 9, 9, 0])
    """
    lab = _check_frame(labels)
    (label_id,) = _present(lab, [label_id])
    structure = _structure(connectivity)
    new_id = _check_id(lab, next_free_label(lab) if new_id is None else new_id, "new")
    box = _bbox(lab == label_id)
    mask = lab[box] == label_id
    pieces, n = ndi.label(mask, structure=structure)
    if n >= 2:
        parts = pieces
    else:
        if mask.sum() < 2:
            raise InputError(f"label {label_id} has a single pixel; nothing to split")
        rows, cols = np.nonzero(mask)
        if embedding is None:
            groups = _by_shape(mask)
        else:
            emb = np.asarray(embedding)
            if emb.ndim != 3 or emb.shape[1:] != lab.shape:
                raise InputError(
                    f"embedding must have shape (D, {lab.shape[0]}, {lab.shape[1]}), "
                    f"got {emb.shape}"
                )
            groups = _by_embedding(mask, emb[(slice(None), *box)], coord_weight)
        grid = np.zeros(mask.shape, np.int32)
        grid[rows, cols] = groups
        parts = _keep_connected(mask, grid, structure)
    sizes = np.bincount(parts.ravel())[1:]
    if np.count_nonzero(sizes) < 2:
        raise InputError(f"label {label_id} could not be split in two")
    order = np.argsort(-sizes, kind="stable") + 1  # part numbers, largest first
    ids = np.zeros(parts.max() + 1, np.int64)
    ids[order[0]] = label_id
    ids[order[1:]] = new_id + np.arange(len(order) - 1)
    _check_id(lab, int(ids.max()), "new")
    out = lab.copy()
    out[box][mask] = ids[parts[mask]].astype(lab.dtype)
    return out


# --- cut along a line ---------------------------------------------------------------------------


def _rasterise(polyline: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    from skimage.draw import line

    points = np.rint(np.asarray(polyline, dtype=np.float64)).astype(np.int64)
    if points.ndim != 2 or points.shape[1] != 2 or len(points) < 2:
        raise InputError(f"a cut line needs at least two (y, x) points, got shape {points.shape}")
    rows, cols = [], []
    for (r0, c0), (r1, c1) in itertools.pairwise(points):
        rr, cc = line(r0, c0, r1, c1)
        rows.append(rr)
        cols.append(cc)
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    inside = (rows >= 0) & (rows < shape[0]) & (cols >= 0) & (cols < shape[1])
    return rows[inside], cols[inside]


def cut_labels(
    labels,
    polyline,
    *,
    label_id: int | None = None,
    next_id: int | None = None,
    min_size: int = 5,
) -> np.ndarray:
    """Cut objects along a polyline: its pixels become background, pieces become objects.

    The line is rasterised 8-connected, which separates 4-connected pieces. Of each object
    the line crosses, the largest remaining piece keeps the object's id and every other piece
    gets a new id (``next_id``, ``next_id + 1``, ... by object id, then by size); pieces of
    fewer than ``min_size`` pixels (slivers where the line grazes an edge) become background.

    Parameters
    ----------
    labels : array_like of shape (Y, X), int
    polyline : array_like of shape (N, 2)
        ``(y, x)`` vertices in pixel coordinates, N >= 2; rounded to the nearest pixel, and
        the parts outside the frame are ignored.
    label_id : int, optional
        Cut only this object; default every object the line crosses.
    next_id : int, optional
        First new id; default one more than the frame's largest id.
    min_size : int
        Smallest piece kept.

    Returns
    -------
    ndarray of shape (Y, X)
        Same dtype as ``labels``; equal to it when the line crosses no object.

    Examples
    --------
    >>> lab = np.zeros((3, 7), int); lab[:, 1:6] = 4
    >>> cut_labels(lab, [(0, 3), (2, 3)], next_id=5, min_size=1)
    array([[0, 4, 4, 0, 5, 5, 0],
           [0, 4, 4, 0, 5, 5, 0],
           [0, 4, 4, 0, 5, 5, 0]])
    """
    from skimage.measure import label as label_regions

    lab = _check_frame(labels)
    rows, cols = _rasterise(polyline, lab.shape)
    hit = np.unique(lab[rows, cols])
    hit = hit[hit > 0]
    if label_id is not None:
        hit = hit[hit == int(label_id)]
    out = lab.copy()
    if not hit.size:
        return out
    next_id = next_free_label(lab) if next_id is None else int(next_id)
    on_line = np.zeros(lab.shape, bool)
    on_line[rows, cols] = True
    touched = np.isin(lab, hit)
    out[on_line & touched] = 0
    box = _bbox(touched)
    crop = np.where(touched[box], out[box], 0)
    pieces = label_regions(crop, background=0, connectivity=1)
    sizes = np.bincount(pieces.ravel())
    piece_id = np.zeros(sizes.size, np.int64)  # the object each piece belongs to
    piece_id[pieces.ravel()] = crop.ravel()
    new_ids = np.zeros(sizes.size, np.int64)
    for obj in hit.tolist():
        mine = np.flatnonzero(piece_id == obj)
        mine = mine[mine > 0]
        mine = mine[np.argsort(-sizes[mine], kind="stable")]
        if not mine.size:
            continue
        new_ids[mine[0]] = obj if sizes[mine[0]] >= min_size else 0
        for p in mine[1:]:
            if sizes[p] >= min_size:
                new_ids[p] = next_id
                next_id += 1
    _check_id(lab, max(int(new_ids.max()), 1), "new")
    region = out[box]
    inside = pieces > 0
    region[inside] = new_ids[pieces[inside]].astype(lab.dtype)
    return out


# --- add an object from a click ---------------------------------------------------------------


def seed_region(
    labels,
    embedding,
    seed_yx: tuple[int, int],
    *,
    threshold: float,
    foreground=None,
    min_foreground: float = 0.5,
    connectivity: int = 1,
) -> np.ndarray:
    """The unlabelled pixels a click at ``seed_yx`` would add as a new object.

    The seed's object of :func:`~.grouping.seed_mask` (connected pixels whose embedding has
    cosine similarity >= ``threshold`` to the seed's), restricted to background pixels and,
    with ``foreground``, to pixels of foreground probability >= ``min_foreground``; then only
    the piece connected to the seed is kept.

    Parameters
    ----------
    labels : array_like of shape (Y, X), int
        Existing objects; they are never part of the mask.
    embedding : array_like of shape (D, Y, X)
    seed_yx : tuple of int
        The clicked pixel, ``(y, x)``.
    threshold : float
        Least cosine similarity to the seed, in [-1, 1].
    foreground : array_like of shape (Y, X), optional
        Foreground probability of each pixel.
    min_foreground : float
        Least foreground probability of a pixel of the mask.
    connectivity : {1, 2}

    Returns
    -------
    ndarray of shape (Y, X), bool

    Raises
    ------
    InputError
        When the seed is outside the frame, already labelled or background.

    Examples
    --------
    >>> emb = np.zeros((2, 3, 4)); emb[0] = 1; emb[1, :, 3] = 5
    >>> lab = np.zeros((3, 4), int); lab[0, 0] = 1
    >>> seed_region(lab, emb, (1, 1), threshold=0.9).astype(int)
    array([[0, 1, 1, 0],
           [1, 1, 1, 0],
           [1, 1, 1, 0]])
    """
    lab = _check_frame(labels)
    structure = _structure(connectivity)
    mask = seed_mask(embedding, seed_yx, threshold=threshold, connectivity=connectivity)
    if mask.shape != lab.shape:
        raise InputError(f"the embedding's frame {mask.shape} is not the labels' {lab.shape}")
    y, x = (int(v) for v in seed_yx)
    if lab[y, x] != 0:
        raise InputError(f"pixel {(y, x)} already belongs to label {int(lab[y, x])}")
    allowed = lab == 0
    if foreground is not None:
        fg = np.asarray(foreground)
        if fg.shape != lab.shape:
            raise InputError(f"foreground has shape {fg.shape}, the labels {lab.shape}")
        if fg[y, x] < min_foreground:
            raise InputError(
                f"pixel {(y, x)} is background (foreground {float(fg[y, x]):.2f} < "
                f"{min_foreground})"
            )
        allowed &= fg >= min_foreground
    pieces, _ = ndi.label(mask & allowed, structure=structure)
    return pieces == pieces[y, x]


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
