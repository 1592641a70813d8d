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

from ._frames import Change, next_free_label
from .labels import add_label, carry_track, delete_labels, fill_label_holes, merge_labels, relabel
from .pieces import broken_apart, count_pieces
from .shapes import cut_labels, seed_region, split_label

__all__ = [
    "Change",
    "add_label",
    "broken_apart",
    "carry_track",
    "count_pieces",
    "cut_labels",
    "delete_labels",
    "fill_label_holes",
    "merge_labels",
    "next_free_label",
    "relabel",
    "seed_region",
    "split_label",
]
