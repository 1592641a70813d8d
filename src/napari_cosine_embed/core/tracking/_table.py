"""What both trackings share: the result, the track table built from per-frame links, and the
clean-up of tracks (false divisions, short tracks, gaps)."""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from ..io.lineage import tracks_from_labels
from .frames import RelabelledFrames


@dataclass
class TrackingResult:
    """Tracks of a movie.

    Attributes
    ----------
    labels : ndarray of shape (T, Y, X), uint16 or uint32
        Track ids ``1 .. N``, 0 for background (a :class:`~.frames.RelabelledFrames`, read
        frame by frame, from ``link_labels(..., lazy=True)``).
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
    """Per-frame instances (nodes), the track each belongs to, and the tracks' lineage.

    Every clean-up step is near-linear in the number of instances: each track keeps its nodes
    per frame (``members``) and each parent its children (``_kids``), so a track's area or
    centroid in a frame, a merge, or a change of parent touch only the nodes concerned; the
    overlap of two consecutive frames is counted once (``_overlap``), not read from the pixels
    for every short track. (On a dense movie the clean-up used to rescan all tracks after each
    merge and whole frames per short track: minutes for a few hundred objects per frame.)
    """

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
        width = frames[0].shape[1] if frames else 1
        self.area, self.cy, self.cx, self.track_of = [], [], [], []
        for f in frames:
            n = int(f.max(initial=0)) + 1
            flat = f.ravel()
            area = np.bincount(flat, minlength=n).astype(np.float64)
            self.area.append(area)
            # centroids from the object pixels only (nodes are 1..n; node 0 is never asked)
            inside = np.flatnonzero(flat)
            ids = flat[inside]
            yy, xx = np.divmod(inside, width)
            self.cy.append(np.bincount(ids, yy, n) / np.maximum(area, 1))
            self.cx.append(np.bincount(ids, xx, n) / np.maximum(area, 1))
            self.track_of.append(np.zeros(n, np.int64))
        self.table: dict[int, list[int]] = {}  # track -> [first, last, parent]
        self.members: dict[int, dict[int, list[int]]] = {}  # track -> {frame: [nodes]}
        self._kids: dict[int, set[int]] = {}  # parent -> its children
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
                    tid = int(parent[j])
                    self.table[tid][1] = t
                else:
                    tid = len(self.table) + 1
                    self.table[tid] = [t, t, int(parent[j])]
                    if parent[j]:
                        self._kids.setdefault(int(parent[j]), set()).add(tid)
                self.track_of[t][j] = tid
                self.members.setdefault(tid, {}).setdefault(t, []).append(j)
        self._overlaps: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    # -- reading -----------------------------------------------------------------------------
    def children(self) -> dict[int, list[int]]:
        """``{parent: [children, ascending]}``, parents in order of their first child's id."""
        kids = [(min(ks), p, sorted(ks)) for p, ks in self._kids.items() if ks]
        return {p: ks for _, p, ks in sorted(kids)}

    def pinned_tracks(self) -> set[int]:
        """Tracks that hold a pinned link (as they are now, after any merges)."""
        return {int(self.track_of[t][i]) for t, i in self.pinned_nodes}

    def length(self, tid: int) -> int:
        return self.table[tid][1] - self.table[tid][0] + 1

    def nodes_at(self, tid: int, t: int) -> np.ndarray:
        """The track's nodes in frame ``t``, ascending (empty when it is not there)."""
        return np.sort(np.asarray(self.members.get(tid, {}).get(t, []), dtype=np.intp))

    def area_at(self, tid: int, t: int) -> float:
        return float(self.area[t][self.nodes_at(tid, t)].sum())

    def centroid_at(self, tid: int, t: int) -> np.ndarray:
        nodes = self.nodes_at(tid, t)
        w = self.area[t][nodes]
        return np.array([self.cy[t][nodes] @ w, self.cx[t][nodes] @ w]) / max(w.sum(), 1)

    # -- changing ----------------------------------------------------------------------------
    def _set_parent(self, child: int, parent: int) -> None:
        old = self.table[child][2]
        if old:
            self._kids.get(old, set()).discard(child)
        self.table[child][2] = parent
        if parent:
            self._kids.setdefault(parent, set()).add(child)

    def _move_nodes(self, src: int, t: int, nodes: np.ndarray, dst: int) -> None:
        """Give ``nodes`` of frame ``t`` from track ``src`` to ``dst`` (0: to no track)."""
        self.track_of[t][nodes] = dst
        left = self.members[src]
        moved = set(nodes.tolist())
        keep = [n for n in left.get(t, []) if n not in moved]
        if keep:
            left[t] = keep
        else:
            left.pop(t, None)
        if dst:
            self.members.setdefault(dst, {}).setdefault(t, []).extend(nodes.tolist())

    def _drop(self, tid: int) -> None:
        """Remove a track that holds no node any more; its children lose their parent."""
        self._set_parent(tid, 0)
        self.table.pop(tid)
        self.members.pop(tid, None)
        for child in list(self._kids.pop(tid, ())):
            self.table[child][2] = 0

    def merge(self, src: int, dst: int) -> None:
        """Give track ``src``'s instances to ``dst``; ``src``'s children become ``dst``'s."""
        first, last, _ = self.table[src]
        self._set_parent(src, 0)
        for t, nodes in self.members.pop(src, {}).items():
            self.track_of[t][nodes] = dst
            self.members.setdefault(dst, {}).setdefault(t, []).extend(nodes)
        self.table.pop(src)
        self.table[dst][0] = min(self.table[dst][0], first)
        self.table[dst][1] = max(self.table[dst][1], last)
        for child in list(self._kids.pop(src, ())):
            self._set_parent(child, dst)

    # -- clean-up ----------------------------------------------------------------------------
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
                self._move_nodes(tid, t, nodes, target)
            self._drop(tid)

    def _overlap(self, t: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Pixels shared by node ``i`` of frame ``t`` and node ``j`` of ``t + 1``: (i, j, n)."""
        if t not in self._overlaps:
            a, b = self.frames[t], self.frames[t + 1]
            both = (a > 0) & (b > 0)
            nb = int(b.max(initial=0)) + 1
            codes, counts = np.unique(a[both].astype(np.int64) * nb + b[both], return_counts=True)
            self._overlaps[t] = (codes // nb, codes % nb, counts)
        return self._overlaps[t]

    def _covering_track(self, tid: int, t: int, nodes: np.ndarray, min_share: float) -> int:
        """The track present at ``t`` over most of these nodes' pixels at ``t -+ 1``, or 0."""
        area = int(self.area[t][nodes].sum())
        best, best_share = 0, min_share
        for u in (t - 1, t + 1):
            if not 0 <= u < self.n_frames or not area:
                continue
            # the nodes' pixels over the nodes of frame u, from the pair's overlap counts
            if u < t:
                other, mine, counts = self._overlap(u)
            else:
                mine, other, counts = self._overlap(t)
            here = np.isin(mine, nodes)
            under = self.track_of[u][other[here]]
            weights = counts[here]
            keep = (under > 0) & (under != tid)
            ids, inverse = np.unique(under[keep], return_inverse=True)
            totals = np.bincount(inverse, weights=weights[keep], minlength=ids.size)
            for other_track, count in zip(ids.tolist(), totals.tolist(), strict=True):
                row = self.table.get(other_track)
                if row is None or not row[0] <= t <= row[1] or count / area < best_share:
                    continue
                best, best_share = other_track, count / area
        return best

    def merge_false_splits(self, min_split_frames: int, min_child_ratio: float) -> None:
        """Merge back the divisions whose child is too small or too short-lived.

        Divisions are visited in the order of their first child's id, and after each merge
        the first one that is now false is merged next, as if the whole list were scanned
        again; only the divisions a merge can change (of the merged parent, and of its own
        parent) are looked at again, so the pass is near-linear in the number of divisions.
        """
        pinned = self.pinned_tracks()
        heap = [(min(ks), p) for p, ks in self._kids.items() if ks]
        heapq.heapify(heap)
        while heap:
            key, parent = heapq.heappop(heap)
            kids = self._kids.get(parent)
            if parent not in self.table or not kids or min(kids) != key:
                continue  # gone, or queued again under its new first child
            pair = sorted(kids)
            if len(pair) != 2 or pinned & {parent, *pair}:
                continue
            first = self.table[pair[0]][0]
            size = {k: self.area_at(k, first) for k in pair}
            bad = [
                k
                for k in pair
                if size[k] < min_child_ratio * max(size.values())
                or (
                    not self._kids.get(k)
                    and self.length(k) < min_split_frames
                    and self.table[k][1] < self.n_frames - 1
                )
            ]
            if not bad:
                continue
            gone = min(bad, key=lambda k: (self.length(k), size[k]))
            kept = pair[1] if gone == pair[0] else pair[0]
            end = max(self.table[gone][1], self.table[kept][1])
            grandkids = [*self._kids.get(gone, ()), *self._kids.get(kept, ())]
            if any(self.table[k][0] <= end for k in grandkids):
                continue  # the merged track would outlive its own children's start
            self.merge(gone, kept)
            self.merge(kept, parent)
            pinned = self.pinned_tracks()
            for again in (parent, self.table[parent][2]):
                if again and self._kids.get(again):
                    heapq.heappush(heap, (min(self._kids[again]), again))

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
        last = np.array([self.table[e][1] for e in ends])
        first = np.array([self.table[s][0] for s in starts])
        gap = first[None, :] - last[:, None] - 1
        near = (gap >= 1) & (gap <= max_gap)
        rows, cols = np.nonzero(near)
        if not rows.size:
            return
        here = {a: self.centroid_at(ends[a], last[a]) for a in np.unique(rows).tolist()}
        there = {b: self.centroid_at(starts[b], first[b]) for b in np.unique(cols).tolist()}
        d = np.array(
            [float(np.linalg.norm(there[b] - here[a])) for a, b in zip(rows, cols, strict=True)]
        )
        close = d <= max_distance
        rows, cols, d = rows[close], cols[close], d[close]
        if not rows.size:
            return
        # The assignment is solved per connected group of candidate pairs: the same optimum as
        # one assignment over all ends and starts, without its cubic cost on a dense movie.
        graph = coo_matrix(
            (np.ones(rows.size), (rows, len(ends) + cols)),
            shape=(len(ends) + len(starts),) * 2,
        )
        _, group = connected_components(graph, directed=False)
        for g in np.unique(group[rows]).tolist():
            sel = group[rows] == g
            a_ids, a_at = np.unique(rows[sel], return_inverse=True)
            b_ids, b_at = np.unique(cols[sel], return_inverse=True)
            cost = np.full((a_ids.size, b_ids.size), 1e12)
            cost[a_at, b_at] = d[sel]
            for i, j in zip(*linear_sum_assignment(cost), strict=True):
                if cost[i, j] < 1e12:
                    self._set_parent(starts[b_ids[j]], ends[a_ids[i]])

    def result(self) -> TrackingResult:
        # a CTC parent ends before its children start; a link that cannot be kept is cut
        for tid, row in self.table.items():
            if row[2] and self.table[row[2]][1] >= row[0]:
                self._set_parent(tid, 0)
        ids = sorted(self.table)
        new = {old: n for n, old in enumerate(ids, start=1)}
        new[0] = 0
        dtype = np.uint16 if len(ids) < 1 << 16 else np.uint32
        lut_of = [np.array([new[int(v)] for v in tof], dtype) for tof in self.track_of]
        if getattr(self.frames, "compressed", False):  # relabelled as read: memory stays flat
            labels = RelabelledFrames(self.frames, lut_of, dtype)
        else:
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
