"""What both trackings share: the result, the track table built from per-frame links, and the
clean-up of tracks (false divisions, short tracks, gaps)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..io.lineage import tracks_from_labels


@dataclass
class TrackingResult:
    """Tracks of a movie.

    Attributes
    ----------
    labels : ndarray of shape (T, Y, X), uint16 or uint32
        Track ids ``1 .. N``, 0 for background.
    lineage : ndarray of shape (N, 4), int64
        CTC rows ``[label, first_frame, last_frame, parent]``, sorted by label.
    tracks : ndarray of shape (M, 4), float64
        napari Tracks data ``[track_id, t, y, x]`` (centroids).
    graph : dict of int to list of int
        napari Tracks graph ``{child: [parent]}``.
    missed_pins : list of Pin
        Pinned links (:mod:`.pins`) that no object of this segmentation holds.
    """

    labels: np.ndarray
    lineage: np.ndarray
    tracks: np.ndarray
    graph: dict[int, list[int]]
    missed_pins: list = field(default_factory=list)


def _overlaps(a: np.ndarray, b: np.ndarray, na: int, nb: int) -> np.ndarray:
    """Pixel counts of every pair of ids, shape (na + 1, nb + 1) (row/column 0: background)."""
    fg = (a > 0) | (b > 0)
    pair = a[fg].astype(np.int64) * (nb + 1) + b[fg]
    inter = np.bincount(pair, minlength=(na + 1) * (nb + 1)).reshape(na + 1, nb + 1)
    inter[0, 0] = np.count_nonzero(~fg)
    return inter


class _TrackTable:
    """Per-frame instances (nodes), the track each belongs to, and the tracks' lineage."""

    def __init__(
        self,
        frames: list[np.ndarray],
        edges: list[dict[int, list[int]]],
        pinned: list[dict[int, list[int]]] | None = None,
    ) -> None:
        self.frames = frames  # (Y, X) int32 node ids 1..n_t per frame
        # (frame, node) of every object a pinned link holds: their tracks are not cleaned up
        self.pinned_nodes = [
            *((t, i) for t, links in enumerate(pinned or []) for i in links),
            *(
                (t + 1, j)
                for t, links in enumerate(pinned or [])
                for js in links.values()
                for j in js
            ),
        ]
        self.n_frames = len(frames)
        yy, xx = np.indices(frames[0].shape) if frames else (None, None)
        self.area, self.cy, self.cx, self.track_of = [], [], [], []
        for f in frames:
            n = int(f.max(initial=0)) + 1
            area = np.bincount(f.ravel(), minlength=n).astype(np.float64)
            self.area.append(area)
            self.cy.append(np.bincount(f.ravel(), yy.ravel(), n) / np.maximum(area, 1))
            self.cx.append(np.bincount(f.ravel(), xx.ravel(), n) / np.maximum(area, 1))
            self.track_of.append(np.zeros(n, np.int64))
        self.table: dict[int, list[int]] = {}  # track -> [first, last, parent]
        for t in range(self.n_frames):
            parent = np.zeros(len(self.track_of[t]), np.int64)
            single = np.zeros(len(self.track_of[t]), bool)
            if t > 0:
                for i, js in edges[t - 1].items():
                    for j in js:
                        parent[j] = self.track_of[t - 1][i]
                        single[j] = len(js) == 1
            for j in range(1, len(parent)):
                if single[j]:
                    self.track_of[t][j] = parent[j]
                    self.table[parent[j]][1] = t
                else:
                    new = len(self.table) + 1
                    self.table[new] = [t, t, int(parent[j])]
                    self.track_of[t][j] = new

    def children(self) -> dict[int, list[int]]:
        kids: dict[int, list[int]] = {}
        for tid, (_, _, parent) in sorted(self.table.items()):
            if parent:
                kids.setdefault(parent, []).append(tid)
        return kids

    def pinned_tracks(self) -> set[int]:
        """Tracks that hold a pinned link (as they are now, after any merges)."""
        return {int(self.track_of[t][i]) for t, i in self.pinned_nodes}

    def length(self, tid: int) -> int:
        return self.table[tid][1] - self.table[tid][0] + 1

    def area_at(self, tid: int, t: int) -> float:
        return float(self.area[t][self.track_of[t] == tid].sum())

    def centroid_at(self, tid: int, t: int) -> np.ndarray:
        mask = self.track_of[t] == tid
        w = self.area[t][mask]
        return np.array([self.cy[t][mask] @ w, self.cx[t][mask] @ w]) / max(w.sum(), 1)

    def merge(self, src: int, dst: int) -> None:
        """Give track ``src``'s instances to ``dst``; ``src``'s children become ``dst``'s."""
        first, last, _ = self.table.pop(src)
        for t in range(first, last + 1):
            self.track_of[t][self.track_of[t] == src] = dst
        self.table[dst][0] = min(self.table[dst][0], first)
        self.table[dst][1] = max(self.table[dst][1], last)
        for row in self.table.values():
            if row[2] == src:
                row[2] = dst

    def nodes_at(self, tid: int, t: int) -> np.ndarray:
        return np.flatnonzero(self.track_of[t] == tid)

    def absorb_short_tracks(
        self, min_length: int, min_share: float = 0.5, keep_share: float = 0.5
    ) -> None:
        """Tracks present in fewer than ``min_length`` frames: pieces of a neighbour, or noise.

        In each frame of such a track, when at least ``min_share`` of its pixels lie where one
        other track, present in that frame, was the frame before or is the frame after, it is
        a piece cut off that object for a frame or two (large, faint cells are often cut
        differently from frame to frame) and joins it there. Pixels that are no one's piece
        are dropped, as are short tracks with children.
        """
        kids = self.children()
        sizes = [a[1:][a[1:] > 0] for a in self.area]
        typical = float(np.median(np.concatenate(sizes))) if any(len(a) for a in sizes) else 0.0
        pinned = self.pinned_tracks()
        for tid in [k for k in self.table if self.length(k) < min_length and k not in pinned]:
            first, last, _ = self.table[tid]
            if (
                tid not in kids
                and np.median([self.area_at(tid, t) for t in range(first, last + 1)])
                >= keep_share * typical
            ):
                continue  # a whole object whose track broke, not noise: kept
            for t in range(first, last + 1):
                nodes = self.nodes_at(tid, t)
                target = 0 if tid in kids else self._covering_track(tid, t, nodes, min_share)
                self.track_of[t][nodes] = target
            self.table.pop(tid)
            for row in self.table.values():
                if row[2] == tid:
                    row[2] = 0

    def _covering_track(self, tid: int, t: int, nodes: np.ndarray, min_share: float) -> int:
        """The track present at ``t`` over most of these nodes' pixels at ``t -+ 1``, or 0."""
        mask = np.isin(self.frames[t], nodes)
        area = np.count_nonzero(mask)
        best, best_share = 0, min_share
        for u in (t - 1, t + 1):
            if not 0 <= u < self.n_frames or not area:
                continue
            under = self.track_of[u][self.frames[u][mask]]
            ids, counts = np.unique(under[(under > 0) & (under != tid)], return_counts=True)
            for other, count in zip(ids.tolist(), counts.tolist(), strict=True):
                row = self.table.get(other)
                if row is None or not row[0] <= t <= row[1] or count / area < best_share:
                    continue
                best, best_share = other, count / area
        return best

    def merge_false_splits(self, min_split_frames: int, min_child_ratio: float) -> None:
        changed = True
        while changed:
            changed = False
            kids = self.children()
            pinned = self.pinned_tracks()
            for parent, pair in kids.items():
                if len(pair) != 2 or pinned & {parent, *pair}:
                    continue
                first = self.table[pair[0]][0]
                size = {k: self.area_at(k, first) for k in pair}
                bad = [
                    k
                    for k in pair
                    if size[k] < min_child_ratio * max(size.values())
                    or (
                        k not in kids
                        and self.length(k) < min_split_frames
                        and self.table[k][1] < self.n_frames - 1
                    )
                ]
                if not bad:
                    continue
                gone = min(bad, key=lambda k: (self.length(k), size[k]))
                kept = pair[1] if gone == pair[0] else pair[0]
                end = max(self.table[gone][1], self.table[kept][1])
                grandkids = kids.get(gone, []) + kids.get(kept, [])
                if any(self.table[k][0] <= end for k in grandkids):
                    continue  # the merged track would outlive its own children's start
                self.merge(gone, kept)
                self.merge(kept, parent)
                changed = True
                break

    def join_single_children(self) -> None:
        """A track whose only child starts right after it ends continues as that child.

        Chains (a child that itself has one child) collapse into one track: parents are
        visited earliest first, and each takes its new only child again after a merge.
        """
        kids = self.children()
        for parent in sorted(kids, key=lambda k: self.table[k][0]):
            if parent not in self.table:
                continue  # merged into its own parent already
            while len(kids.get(parent, ())) == 1:
                (kid,) = kids.pop(parent)
                if self.table[kid][0] != self.table[parent][1] + 1:
                    break
                self.merge(kid, parent)
                if kid in kids:  # its children are now the parent's
                    kids[parent] = kids.pop(kid)

    def bridge_gaps(self, max_gap: int, max_distance: float) -> None:
        kids = self.children()
        ends = [k for k, r in self.table.items() if k not in kids and r[1] < self.n_frames - 2]
        starts = [k for k, r in self.table.items() if r[2] == 0 and r[0] >= 2]
        if not ends or not starts:
            return
        cost = np.full((len(ends), len(starts)), np.inf)
        for a, e in enumerate(ends):
            last = self.table[e][1]
            here = self.centroid_at(e, last)
            for b, s in enumerate(starts):
                first = self.table[s][0]
                if 1 <= first - last - 1 <= max_gap:
                    d = float(np.linalg.norm(self.centroid_at(s, first) - here))
                    cost[a, b] = d if d <= max_distance else np.inf
        finite = np.isfinite(cost)
        rows, cols = linear_sum_assignment(np.where(finite, cost, 1e12))
        for a, b in zip(rows, cols, strict=True):
            if finite[a, b]:
                self.table[starts[b]][2] = ends[a]

    def result(self) -> TrackingResult:
        # a CTC parent ends before its children start; a link that cannot be kept is cut
        for row in self.table.values():
            if row[2] and self.table[row[2]][1] >= row[0]:
                row[2] = 0
        ids = sorted(self.table)
        new = {old: n for n, old in enumerate(ids, start=1)}
        new[0] = 0
        dtype = np.uint16 if len(ids) < 1 << 16 else np.uint32
        lut_of = [np.array([new[int(v)] for v in tof], dtype) for tof in self.track_of]
        labels = np.stack([lut[f] for lut, f in zip(lut_of, self.frames, strict=True)])
        lineage = np.array(
            [[new[k], *self.table[k][:2], new[self.table[k][2]]] for k in ids], np.int64
        ).reshape(-1, 4)
        tracks, graph = tracks_from_labels(labels, lineage)
        return TrackingResult(labels, lineage, tracks, graph)


def _finish(
    frames: list[np.ndarray],
    edges: list[dict[int, list[int]]],
    *,
    min_track_length: int,
    min_split_frames: int,
    min_child_ratio: float,
    max_gap: int,
    max_gap_distance: float,
    pinned: list[dict[int, list[int]]] | None = None,
    missed_pins: list | None = None,
) -> TrackingResult:
    table = _TrackTable(frames, edges, pinned)
    table.merge_false_splits(min_split_frames, min_child_ratio)
    table.absorb_short_tracks(min_track_length)
    table.join_single_children()
    if max_gap > 0:
        table.bridge_gaps(max_gap, max_gap_distance)
    result = table.result()
    result.missed_pins = list(missed_pins or [])
    return result


_CLEANUP_DOC = """min_track_length : int
        Tracks present in fewer frames are pieces of another object or noise: where most of
        such a track's pixels lie under one other track of the frame before or after (that
        track present in the same frame), they join it; otherwise they are dropped (and
        children of a dropped track lose their parent).
    min_split_frames : int
        A division whose child has no children and ends within this many frames (before the
        last frame of the movie) is not real: the child joins its sibling, which continues
        the parent's track. 1 keeps every division.
    min_child_ratio : float
        A division whose child, in its first frame, is smaller than this fraction of its
        sibling is merged back the same way.
    max_gap : int
        Join a track that ends to one that starts (without parent) after at most this many
        missing frames, nearest centroids first; the later one keeps its label and gets the
        earlier one as parent (CTC). 0 bridges nothing.
    max_gap_distance : float
        Largest centroid distance, in pixels, between the last and the first masks joined."""
