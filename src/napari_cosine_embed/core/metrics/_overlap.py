"""Pixel overlaps between two label images, shared by the CTC and the instance measures.

A frame costs two passes over its pixels to find the foreground; the counting itself
(``np.bincount`` on compact object indices) touches foreground pixels only.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..errors import InputError

# Above this many (reference x computed) cells the overlap table is built sparsely, so a
# result with tens of thousands of tiny labels cannot exhaust memory.
_DENSE_LIMIT = 1 << 22
# Objects with label values below this are counted with bincount instead of a sort.
_LUT_LIMIT = 1 << 24


class Overlap(NamedTuple):
    """Overlap of the objects of a reference and a computed label image.

    Attributes
    ----------
    ref_labels, comp_labels : ndarray of shape (R,) and (C,)
        Sorted non-zero labels present in each image.
    ref_area, comp_area : ndarray of shape (R,) and (C,)
        Pixel count of each object.
    ref_index, comp_index : ndarray of shape (K,)
        Indices (into ``ref_labels`` and ``comp_labels``) of the K object pairs that share
        at least one pixel.
    intersection : ndarray of shape (K,)
        Number of shared pixels of each pair.
    """

    ref_labels: np.ndarray
    comp_labels: np.ndarray
    ref_area: np.ndarray
    comp_area: np.ndarray
    ref_index: np.ndarray
    comp_index: np.ndarray
    intersection: np.ndarray

    def iou(self) -> np.ndarray:
        """Intersection over union of each overlapping pair, shape (K,)."""
        union = self.ref_area[self.ref_index] + self.comp_area[self.comp_index]
        return self.intersection / (union - self.intersection)


def _as_labels(image: np.ndarray) -> np.ndarray:
    """Flatten a label image to non-negative integers (bool images count as one object)."""
    flat = np.ravel(np.asarray(image))
    if flat.dtype.kind == "b":
        return flat.astype(np.uint8)
    if flat.dtype.kind == "f":
        if not np.all(np.isfinite(flat)) or np.any(flat != np.round(flat)):
            raise InputError("a label image holds non-integer values")
        flat = flat.astype(np.int64)
    elif flat.dtype.kind not in "iu":
        raise InputError(f"a label image must hold integers, not {flat.dtype}")
    if flat.dtype.kind == "i" and flat.size and flat.min() < 0:
        raise InputError("a label image holds negative labels")
    return flat


def _objects(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted non-zero labels of a flat label image and their pixel counts."""
    values = flat[flat != 0]
    if values.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    if int(values.max()) < _LUT_LIMIT:
        counts = np.bincount(values.astype(np.intp, copy=False))
        labels = np.flatnonzero(counts)
        return labels, counts[labels]
    labels, counts = np.unique(values, return_counts=True)
    return labels.astype(np.int64), counts


def overlap(ref: np.ndarray, comp: np.ndarray) -> Overlap:
    """Count the shared pixels of every reference/computed object pair.

    Parameters
    ----------
    ref, comp : ndarray of the same shape, e.g. (Y, X) or (Z, Y, X)
        Label images, 0 = background.

    Returns
    -------
    Overlap
        Labels, areas and the sparse intersection table.
    """
    ref = np.asarray(ref)
    comp = np.asarray(comp)
    if ref.shape != comp.shape:
        raise InputError(f"label images differ in shape: {ref.shape} vs {comp.shape}")
    ref_flat, comp_flat = _as_labels(ref), _as_labels(comp)
    ref_labels, ref_area = _objects(ref_flat)
    comp_labels, comp_area = _objects(comp_flat)
    # Only pixels inside both a reference and a computed object add to an intersection;
    # objects usually cover a small part of a frame, so everything after this is cheap.
    both = (ref_flat != 0) & (comp_flat != 0)
    ri = np.searchsorted(ref_labels, ref_flat[both])
    ci = np.searchsorted(comp_labels, comp_flat[both])
    n_comp = comp_labels.size
    code = ri * n_comp + ci
    n_cells = ref_labels.size * n_comp
    if n_cells <= _DENSE_LIMIT:
        table = np.bincount(code, minlength=n_cells)
        cells = np.flatnonzero(table)
        counts = table[cells]
    else:
        cells, counts = np.unique(code, return_counts=True)
    ri, ci = np.divmod(cells, max(n_comp, 1))
    return Overlap(ref_labels, comp_labels, ref_area, comp_area, ri, ci, counts)
