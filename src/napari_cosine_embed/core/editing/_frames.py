"""What every edit shares: the record of a change, input checks, and free ids."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from ..errors import InputError

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
