"""Edits by shape and embedding: split an object in two, cut along a line, seed a new object."""

from __future__ import annotations

import itertools

import numpy as np
from scipy import ndimage as ndi

from ..errors import InputError
from ..grouping.seeds import seed_mask
from ._frames import _bbox, _check_frame, _check_id, _present, _structure, next_free_label

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
