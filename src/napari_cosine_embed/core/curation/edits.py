"""Edits of tracks and lineage: break, join, divide, undo a division, delete, swap.

A tracked movie is a label movie, where a track is one label over consecutive frames, and its
parents, ``{child: parent}`` by label, the Cell Tracking Challenge way: a division gives its
two daughters the mother as parent, and a track continued after a gap of missing frames starts
a new label whose parent is the label before the gap.

Each edit is computed from a :class:`~.index.TrackIndex` of the movie, reading only the boxes
of the tracks it changes, and returned as a :class:`TrackEdit`: the pixels it changes (one
:class:`~..editing.Change` per frame) and the parents before and after. Nothing is written
until :meth:`TrackEdit.apply`, and :meth:`TrackEdit.revert` takes it back. An edit that would
leave a lineage the CTC format rejects (a label in frames that are not consecutive, a child
that starts before its parent ends) is refused with the reason, before anything is written.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..editing import Change
from ..errors import InputError
from .index import TrackIndex

__all__ = [
    "TrackEdit",
    "break_track",
    "children_of",
    "delete_track",
    "join_tracks",
    "make_division",
    "remove_division",
    "swap_tracks",
]

#: Relabels of an edit: ``(frame, old label) -> new label`` (0 deletes).
Plan = dict[tuple[int, int], int]


@dataclass(frozen=True, eq=False)
class TrackEdit:
    """One edit of a tracked movie: the pixels it changes and the lineage before and after.

    Attributes
    ----------
    what : str
        What the edit does, in words (for a status line or an undo list).
    changes : tuple of Change
        One per frame whose pixels change (``Change.t`` is the frame).
    parents_before, parents_after : dict of int to int
        ``{child: parent}`` before and after.
    """

    what: str
    changes: tuple[Change, ...]
    parents_before: dict[int, int]
    parents_after: dict[int, int] = field(default_factory=dict)

    def apply(self, movie, index: TrackIndex) -> dict[int, int]:
        """Write the edit into ``movie`` (in place), update ``index``; the new parents."""
        for change in self.changes:
            change.apply(movie)
        self.refresh(movie, index)
        return dict(self.parents_after)

    def revert(self, movie, index: TrackIndex) -> dict[int, int]:
        """Take the edit back out of ``movie`` (in place), update ``index``; the old parents."""
        for change in self.changes:
            change.revert(movie)
        self.refresh(movie, index)
        return dict(self.parents_before)

    def refresh(self, movie, index: TrackIndex) -> None:
        """Bring ``index`` up to date after the changes were written (or reverted) some way."""
        for change in self.changes:
            if len(change):
                labels = set(np.unique(change.old).tolist()) | set(np.unique(change.new).tolist())
                index.refresh(movie, change.t, labels, change.box)

    @property
    def n_pixels(self) -> int:
        return sum(len(change) for change in self.changes)

    def indices(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(t, rows, cols)`` of every changed pixel, for one write into a (T, Y, X) array."""
        if not self.changes:
            empty = np.zeros(0, np.intp)
            return empty, empty, empty
        return tuple(
            np.concatenate(parts)
            for parts in zip(*(c.indices(3) for c in self.changes), strict=True)
        )

    def values(self, *, new: bool = True) -> np.ndarray:
        """The new (or old) values of every changed pixel, in the order of :meth:`indices`."""
        parts = [c.new if new else c.old for c in self.changes]
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def children_of(parents: Mapping[int, int], label: int) -> list[int]:
    """The labels whose parent is ``label``, ascending."""
    return sorted(child for child, parent in parents.items() if parent == label)


# --- the edits --------------------------------------------------------------------------------


def break_track(movie, index: TrackIndex, parents: Mapping[int, int], track: int, t: int):
    """Break ``track`` before frame ``t``: from ``t`` on it is a new track with a new label.

    The new track has no parent and takes over the old one's children.

    Parameters
    ----------
    movie : array of shape (T, Y, X), int
        The tracked label movie (numpy, or a napari layer's data), read in the track's boxes.
    index : TrackIndex
        The index of ``movie``.
    parents : mapping of int to int
        ``{child: parent}``.
    track : int
    t : int
        The first frame of the new track; ``track`` must be in frames ``t - 1`` and ``t``.

    Returns
    -------
    TrackEdit

    Examples
    --------
    >>> movie = np.zeros((3, 2, 2), dtype=np.uint16)
    >>> movie[:, 0, 0] = 1
    >>> index = TrackIndex.of(movie)
    >>> edit = break_track(movie, index, {}, 1, 2)
    >>> parents = edit.apply(movie, index)
    >>> movie[:, 0, 0].tolist(), index.span(2)
    ([1, 1, 2], (2, 2))
    """
    track, t = _present(index, track, t, "break"), int(t)
    if t <= 0 or not index.has(track, t - 1):
        raise InputError(f"track {track} starts in frame {t}: there is nothing to break off")
    new = index.next_free()
    plan = {(s, track): new for s in index.frames_of(track) if s >= t}
    after = dict(parents)
    _move_children(after, track, new)
    last = index.span(track)[1]
    what = f"broke track {track} at frame {t}: frames {t}-{last} are now track {new}"
    return _edit(movie, index, parents, after, plan, what)


def join_tracks(
    movie,
    index: TrackIndex,
    parents: Mapping[int, int],
    first: int,
    second: int,
    *,
    max_gap: int = 3,
):
    """Make ``second`` the continuation of ``first``, which ends before ``second`` starts.

    When ``second`` starts in the frame after ``first`` ends, its pixels take ``first``'s label
    and its children become ``first``'s. Across a gap of missing frames (at most ``max_gap``),
    ``second`` keeps its label and gets ``first`` as its parent, the CTC way of continuing a
    track; the missing frames are not drawn. ``first`` must not divide (undo that division
    first); ``second`` loses the parent it had.

    Parameters
    ----------
    movie, index, parents
        As for :func:`break_track`.
    first, second : int
        Labels of the track that ends and of the one that continues it.
    max_gap : int
        Most frames that may be missing between the two.

    Returns
    -------
    TrackEdit
    """
    first, second = _known(index, first), _known(index, second)
    if first == second:
        raise InputError(f"cannot join track {first} to itself")
    (_, end), (start, last) = index.span(first), index.span(second)
    if start <= end:
        raise InputError(
            f"track {second} starts in frame {start}, before track {first} ends in frame {end}: "
            f"only a track that starts later can continue it (break track {first} first, or "
            f"swap the two from frame {start})"
        )
    gap = start - end - 1
    if gap > max(int(max_gap), 0):
        raise InputError(
            f"{gap} frames lie between the end of track {first} (frame {end}) and the start of "
            f"track {second} (frame {start}), more than the {max_gap} allowed"
        )
    others = [c for c in children_of(parents, first) if c != second]
    if others:
        raise InputError(
            f"track {first} divides into {others} after frame {end}; undo that division before "
            f"joining another track to it"
        )
    after = dict(parents)
    if gap == 0:
        after.pop(second, None)
        _move_children(after, second, first)
        plan = {(s, second): first for s in index.frames_of(second)}
        what = f"joined track {second} to track {first} (frames {start}-{last} are now {first})"
    else:
        after[second] = first
        plan = {}
        what = f"linked track {second} to track {first} across {gap} missing frame(s)"
    return _edit(movie, index, parents, after, plan, what)


def make_division(
    movie,
    index: TrackIndex,
    parents: Mapping[int, int],
    mother: int,
    daughters: Sequence[int],
    t: int,
):
    """Let ``mother``, in frame ``t - 1``, divide into the two ``daughters`` of frame ``t``.

    Whatever is needed to make that a valid lineage is done in the same edit: a mother that
    goes on past ``t - 1`` is broken there (when ``mother`` is one of the daughters, its part
    from ``t`` on is that daughter, under a new label; otherwise that part becomes a track of
    its own); a daughter whose track began before ``t`` is broken there too, and the daughter
    is its part from ``t`` on. The daughters' old parents, and the mother's other children, are
    unlinked.

    Parameters
    ----------
    movie, index, parents
        As for :func:`break_track`.
    mother : int
        Label of the mother in frame ``t - 1``.
    daughters : pair of int
        Labels of the daughters in frame ``t``.
    t : int
        The first frame of the daughters.

    Returns
    -------
    TrackEdit
    """
    t = int(t)
    if t < 1:
        raise InputError("a division needs a frame before the daughters' first frame")
    mother = _present(index, mother, t - 1, "divide")
    daughters = [int(d) for d in daughters]
    if len(daughters) != 2 or daughters[0] == daughters[1]:
        raise InputError(f"a division has two different daughters, got {daughters}")
    for d in daughters:
        _present(index, d, t, "be a daughter")
    after = dict(parents)
    plan: Plan = {}
    free = index.next_free()
    final = []
    broken = []
    for label in dict.fromkeys([mother, *daughters]):  # the mother first, each label once
        frames = index.frames_of(label)
        if label != mother and frames[0] >= t:
            final.append(label)
            continue
        if frames[-1] < t:  # the mother ends right before the division
            continue
        new, free = free, free + 1
        plan.update({(s, label): new for s in frames if s >= t})
        _move_children(after, label, new)
        broken.append(f"{label} -> {new}")
        if label in daughters:
            final.append(new)
    for child in children_of(after, mother):
        del after[child]
    for d in final:
        after[d] = mother
    what = f"track {mother} divides into {final[0]} and {final[1]} at frame {t}"
    if broken:
        what += f" (from frame {t} on: {', '.join(broken)})"
    return _edit(movie, index, parents, after, plan, what)


def remove_division(
    movie, index: TrackIndex, parents: Mapping[int, int], mother: int, *, keep: int | None = None
):
    """Undo the division of ``mother``: its children lose it as their parent.

    With ``keep``, that child is instead the mother's continuation: joined to it as
    :func:`join_tracks` joins (its label becomes the mother's when it starts right after the
    mother ends, else it stays linked across the gap).

    Parameters
    ----------
    movie, index, parents
        As for :func:`break_track`.
    mother : int
    keep : int, optional
        A child that continues the mother.

    Returns
    -------
    TrackEdit
    """
    mother = _known(index, mother)
    children = children_of(parents, mother)
    if not children:
        raise InputError(f"track {mother} has no children: there is no division to undo")
    if keep is not None and int(keep) not in children:
        raise InputError(
            f"track {keep} is not a child of track {mother} (its children: {children})"
        )
    after = dict(parents)
    for child in children:
        del after[child]
    plan: Plan = {}
    what = f"undid the division of track {mother} ({', '.join(map(str, children))} unlinked)"
    if keep is not None:
        keep = int(keep)
        end, start = index.span(mother)[1], index.span(keep)[0]
        if start == end + 1:
            _move_children(after, keep, mother)
            plan = {(s, keep): mother for s in index.frames_of(keep)}
            what = f"undid the division of track {mother}; track {keep} continues it as {mother}"
        else:
            after[keep] = mother
            what = f"undid the division of track {mother}; track {keep} continues it"
    return _edit(movie, index, parents, after, plan, what)


def delete_track(movie, index: TrackIndex, parents: Mapping[int, int], track: int, t: int = 0):
    """Delete ``track`` from frame ``t`` on (all of it when it starts at or after ``t``).

    A track deleted whole is unlinked from its parent and its children. Cut short, it keeps
    its children: they still start after it ends, as the CTC format requires.

    Parameters
    ----------
    movie, index, parents
        As for :func:`break_track`.
    track : int
    t : int
        The first frame deleted.

    Returns
    -------
    TrackEdit
    """
    track, t = _known(index, track), int(t)
    frames = [s for s in index.frames_of(track) if s >= t]
    if not frames:
        raise InputError(f"track {track} ends in frame {index.span(track)[1]}, before frame {t}")
    after = dict(parents)
    whole = frames[0] == index.span(track)[0]
    if whole:
        after.pop(track, None)
        for child in children_of(after, track):
            del after[child]
    plan = {(s, track): 0 for s in frames}
    what = f"deleted track {track}" if whole else f"deleted track {track} from frame {frames[0]} on"
    return _edit(movie, index, parents, after, plan, what)


def swap_tracks(movie, index: TrackIndex, parents: Mapping[int, int], a: int, b: int, t: int):
    """Swap the labels of tracks ``a`` and ``b`` from frame ``t`` on (both must be in ``t``).

    The children go with the tails they follow. A track that starts in ``t`` takes its
    parent along; one that started earlier keeps its own.

    Parameters
    ----------
    movie, index, parents
        As for :func:`break_track`.
    a, b : int
    t : int

    Returns
    -------
    TrackEdit
    """
    t = int(t)
    a, b = _present(index, a, t, "swap"), _present(index, b, t, "swap")
    if a == b:
        raise InputError(f"cannot swap track {a} with itself")
    first_a, first_b = index.span(a)[0], index.span(b)[0]
    plan = {(s, a): b for s in index.frames_of(a) if s >= t}
    plan.update({(s, b): a for s in index.frames_of(b) if s >= t})
    after = {c: p for c, p in parents.items() if c not in (a, b) and p not in (a, b)}
    for child in children_of(parents, a):
        if child != b:
            after[child] = b
    for child in children_of(parents, b):
        if child != a:
            after[child] = a
    # A track's parent belongs to its first frame: whose first frame does each label keep?
    for label, other, first, first_other in ((a, b, first_a, first_b), (b, a, first_b, first_a)):
        source = label if first < t else (other if first_other == t else None)
        if source is not None and source in parents:
            after[label] = parents[source]
    what = f"swapped tracks {a} and {b} from frame {t} on"
    return _edit(movie, index, parents, after, plan, what)


# --- shared machinery -------------------------------------------------------------------------


def _known(index: TrackIndex, label: int) -> int:
    label = int(label)
    if label <= 0:
        raise InputError(f"track ids are positive (0 is the background), got {label}")
    index.span(label)  # raises when absent
    return label


def _present(index: TrackIndex, label: int, t: int, action: str) -> int:
    label = _known(index, label)
    if not index.has(label, t):
        first, last = index.span(label)
        raise InputError(
            f"cannot {action}: track {label} is not in frame {t} (it is in frames {first}-{last})"
        )
    return label


def _move_children(parents: dict[int, int], old: int, new: int) -> None:
    for child in children_of(parents, old):
        parents[child] = new


def _frames_after(index: TrackIndex, plan: Plan) -> dict[int, set[int]]:
    """Frames of every label the plan touches, as they will be after it."""
    touched = {label for _, label in plan} | {new for new in plan.values() if new}
    frames = {label: set(index.frames_of(label)) for label in touched}
    for t, old in plan:
        frames[old].discard(t)
    for (t, _), new in plan.items():
        if new:
            frames[new].add(t)
    return frames


def _check(index: TrackIndex, before: Mapping[int, int], after: dict[int, int], plan: Plan):
    """Refuse an edit whose lineage the CTC format would reject."""
    frames = _frames_after(index, plan)

    def span(label: int) -> tuple[int, int] | None:
        present = frames[label] if label in frames else set(index.frames_of(label))
        return (min(present), max(present)) if present else None

    for label, present in frames.items():
        if present and len(present) != max(present) - min(present) + 1:
            missing = sorted(set(range(min(present), max(present) + 1)) - present)
            raise InputError(
                f"this edit would leave track {label} missing from frame(s) {missing[:5]} "
                f"inside its frames {min(present)}-{max(present)}"
            )
    for label in [label for label, present in frames.items() if not present]:
        after.pop(label, None)
        for child in children_of(after, label):
            del after[child]
    changed = set(frames) | {c for c in after if after.get(c) != before.get(c)}
    changed |= {c for c in before if c not in after}
    changed |= {p for c, p in after.items() if c in changed}
    changed |= {c for c, p in after.items() if p in changed}
    for child, parent in after.items():
        if child not in changed:
            continue
        child_span, parent_span = span(child), span(parent)
        if child_span is None or parent_span is None:
            raise InputError(f"track {child} or its parent {parent} would be in no frame")
        if parent_span[1] >= child_span[0]:
            raise InputError(
                f"this edit would make track {child} (from frame {child_span[0]}) a child of "
                f"track {parent}, which goes on to frame {parent_span[1]}: a parent must end "
                f"before its child starts"
            )


def _changes(movie, index: TrackIndex, plan: Plan) -> Iterator[Change]:
    by_frame: dict[int, dict[int, int]] = {}
    for (t, old), new in plan.items():
        by_frame.setdefault(t, {})[old] = new
    for t in sorted(by_frame):
        mapping = by_frame[t]
        boxes = [index.box(t, old) for old in mapping]
        r0, r1 = min(b.rows.start for b in boxes), max(b.rows.stop for b in boxes)
        c0, c1 = min(b.cols.start for b in boxes), max(b.cols.stop for b in boxes)
        crop = np.asarray(movie[t, r0:r1, c0:c1])
        new = crop.copy()
        for old, value in mapping.items():
            new[crop == old] = value
        rows, cols = np.nonzero(crop != new)
        yield Change(t, rows + r0, cols + c0, crop[rows, cols], new[rows, cols])


def _edit(movie, index, before, after, plan, what) -> TrackEdit:
    if plan:
        top = max(plan.values())
        dtype = np.dtype(movie.dtype)
        if np.issubdtype(dtype, np.integer) and top > np.iinfo(dtype).max:
            raise InputError(f"track {top} does not fit the labels' dtype {dtype}")
    _check(index, before, after, plan)
    return TrackEdit(what, tuple(_changes(movie, index, plan)), dict(before), after)
