"""Curation of tracks and lineage: edits that keep a valid CTC lineage, and an index that
makes them fast on long, large movies.

- :mod:`.index`: :class:`TrackIndex`, the box, area and centroid of every label in every
  frame, refreshed only where an edit wrote.
- :mod:`.edits`: break, join, divide, undo a division, delete from a frame on, swap from a
  frame on; each returned as a :class:`TrackEdit` that can be applied and reverted.
- :mod:`.review`: the places that most often need a look (divisions, tracks that appear or
  vanish away from the border, short tracks, jumps, abrupt size changes).
"""

from .edits import (
    TrackEdit,
    break_track,
    children_of,
    delete_track,
    join_tracks,
    make_division,
    remove_division,
    swap_tracks,
)
from .index import Box, TrackIndex
from .review import ReviewItem, review_items

__all__ = [
    "Box",
    "ReviewItem",
    "TrackEdit",
    "TrackIndex",
    "break_track",
    "children_of",
    "delete_track",
    "join_tracks",
    "make_division",
    "remove_division",
    "review_items",
    "swap_tracks",
]
