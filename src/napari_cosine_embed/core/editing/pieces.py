"""Whether an edit leaves a label in pieces that do not touch.

Merging two objects that do not touch (or giving an id to a region away from the object that
holds it) makes one label of two pieces. That is sometimes meant (a cell seen in two parts) and
often a slip (the wrong id picked), so an editor asks before such an edit:
:func:`broken_apart` says which labels an edit would leave in more pieces than they had.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ._frames import _bbox, _structure

__all__ = ["broken_apart", "count_pieces"]


def count_pieces(labels: np.ndarray, label_id: int, *, connectivity: int = 1) -> int:
    """How many connected pieces label ``label_id`` has in a (Y, X) frame (0 when absent)."""
    mask = np.asarray(labels) == label_id
    if not mask.any():
        return 0
    box = _bbox(mask)
    return int(ndi.label(mask[box], structure=_structure(connectivity))[1])


def broken_apart(before: np.ndarray, after: np.ndarray, *, connectivity: int = 1) -> dict[int, int]:
    """The labels an edit of a (Y, X) frame leaves in more pieces than before, and how many.

    Only labels the edit gave pixels to are checked (taking pixels away, as delete does,
    cannot join anything). Pieces touch along an edge with ``connectivity`` 1 (as napari's
    fill and our clean-up count them), or also at a corner with 2.

    Examples
    --------
    >>> before = np.array([[1, 0, 2]], dtype=np.uint16)
    >>> broken_apart(before, np.array([[1, 0, 1]], dtype=np.uint16))
    {1: 2}
    >>> broken_apart(before, np.array([[1, 1, 1]], dtype=np.uint16))
    {}
    """
    before, after = np.asarray(before), np.asarray(after)
    gained = np.unique(after[(after != before) & (after != 0)])
    found = {}
    for label_id in gained.tolist():
        now = count_pieces(after, label_id, connectivity=connectivity)
        if now > max(1, count_pieces(before, label_id, connectivity=connectivity)):
            found[int(label_id)] = now
    return found
