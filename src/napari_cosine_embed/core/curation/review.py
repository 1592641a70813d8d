"""What most often needs a look in a tracked movie, as a list a user can walk through.

From a :class:`~.index.TrackIndex` and the parents, without reading the movie again:

- every division;
- tracks that start after the first frame, or end before the last, away from the frame's
  border (a cell does not appear or vanish in the middle of the field: a missed link, a missed
  division or a false object);
- short tracks;
- large jumps between consecutive frames (more than ``jump`` object diameters);
- objects that change size abruptly (area more than ``size_change`` times larger or smaller
  than in the frame before).

Each row has a stable key (kind, frame, track), so the rows a user marked reviewed stay marked
when the list is computed again after an edit.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .edits import children_of
from .index import TrackIndex

__all__ = ["ReviewItem", "review_items"]

KINDS = ("division", "appears", "vanishes", "short", "jump", "size")


@dataclass(frozen=True)
class ReviewItem:
    """One row of the review list.

    Attributes
    ----------
    kind : str
        One of ``division``, ``appears``, ``vanishes``, ``short``, ``jump``, ``size``.
    t : int
        The frame to look at.
    track : int
        The track concerned (the mother, for a division).
    y, x : float
        Where, in pixels (the object's centroid in frame ``t``).
    text : str
        What was found, in words.
    """

    kind: str
    t: int
    track: int
    y: float
    x: float
    text: str

    @property
    def key(self) -> str:
        """Stable identity of the row, for remembering it as reviewed."""
        return f"{self.kind}:{self.t}:{self.track}"


def review_items(
    index: TrackIndex,
    parents: Mapping[int, int],
    *,
    border: float = 0.5,
    short: int = 3,
    jump: float = 1.0,
    size_change: float = 2.0,
) -> list[ReviewItem]:
    """The rows of the review list, in frame order.

    Parameters
    ----------
    index : TrackIndex
    parents : mapping of int to int
        ``{child: parent}``.
    border : float
        An object whose box comes within this many object diameters of the frame's edge is at
        the border (it may enter or leave the field there).
    short : int
        Tracks present in fewer frames are listed (not those at the movie's start or end).
    jump : float
        Centroid moves of more than this many object diameters between frames are listed.
    size_change : float
        Area ratios between consecutive frames above this (or below its inverse) are listed.

    Returns
    -------
    list of ReviewItem
    """
    n_frames, height, width = index.shape
    labels = index.labels()
    areas = [b.area for t in range(n_frames) for b in index.labels_at(t).values()]
    diameter = 2 * np.sqrt(np.median(areas) / np.pi) if areas else 0.0
    margin = border * diameter
    items: list[ReviewItem] = []

    def add(kind: str, t: int, track: int, text: str) -> None:
        box = index.box(t, track)
        items.append(ReviewItem(kind, t, track, box.y, box.x, text))

    def at_border(t: int, track: int) -> bool:
        box = index.box(t, track)
        return (
            box.rows.start <= margin
            or box.cols.start <= margin
            or box.rows.stop >= height - margin
            or box.cols.stop >= width - margin
        )

    has_children = {p for p in parents.values()}
    for track in labels:
        frames = index.frames_of(track)
        first, last = frames[0], frames[-1]
        kids = children_of(parents, track) if track in has_children else []
        if len(kids) >= 2:
            add("division", last, track, f"track {track} divides into {kids} after frame {last}")
        if first > 0 and track not in parents and not at_border(first, track):
            add("appears", first, track, f"track {track} appears in frame {first}, no parent")
        if last < n_frames - 1 and not kids and not at_border(last, track):
            add("vanishes", last, track, f"track {track} ends in frame {last}, no children")
        if len(frames) < short and first > 0 and last < n_frames - 1:
            add("short", first, track, f"track {track} lasts {len(frames)} frame(s)")
        for a, b in itertools.pairwise(frames):
            before, after = index.box(a, track), index.box(b, track)
            moved = float(np.hypot(after.y - before.y, after.x - before.x))
            if diameter and moved > jump * diameter:
                add("jump", b, track, f"track {track} moves {moved:.0f} px into frame {b}")
            ratio = after.area / max(before.area, 1)
            if ratio > size_change or ratio < 1 / size_change:
                add("size", b, track, f"track {track} changes area x{ratio:.2f} in frame {b}")
    items.sort(key=lambda item: (item.t, KINDS.index(item.kind), item.track))
    return items
