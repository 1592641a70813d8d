"""Tracking: link instances over time into tracks with divisions, the CTC way.

Two layers share one track builder, so the segmentation of a frame may come from anywhere:

- :func:`link_labels` links per-frame instance labels by overlap alone: a one-to-one
  assignment (Hungarian) on the IoU of the instances of frames ``t`` and ``t + 1``, and a
  division where two instances of ``t + 1`` both lie mostly inside one of ``t``.
- :func:`track_pairs` is the tracking of Payer et al. (2018): pixels of two consecutive
  frames are clustered together (embeddings plus scaled coordinates), so an instance seen in
  both frames is one cluster; a cluster of frame ``t`` whose pixels in ``t + 1`` form two
  separate pieces is a division. Pair ``(t, t + 1)`` is joined to pair ``(t + 1, t + 2)`` by the
  highest-IoU instance on the frame they share. Instances a pair leaves unlinked (a daughter
  whose embedding differs from her mother's, say) fall back to the overlap linking.

The overlap linking can also move a division seen late back in time (``split_back``):
daughters that still touch after mitosis are often one instance for a few frames, so the
mother is cut along her daughters' masks, frame by frame backwards, while the cut runs
through a neck; two nuclei that touched for a while and part again are separated the same way.

Both then clean up the tracks: a division whose child is much smaller than its sibling, or
whose child ends (without children) within ``min_split_frames`` frames, is merged back into
one track; tracks shorter than ``min_track_length`` are dropped; a track that ends and one
that starts near it at most ``max_gap`` frames later are joined. A CTC label covers
consecutive frames only, so a bridged gap keeps the continuation's own label and records the
earlier piece as its parent (as :func:`~.io.lineage.split_track_gaps` does); the gap frames
are not filled.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
from scipy import ndimage as ndi
from scipy.optimize import linear_sum_assignment

from .errors import InputError
from .grouping import HDBSCANGrouper, postprocess, relabel_consecutive
from .io.lineage import tracks_from_labels

__all__ = ["TrackingResult", "link_labels", "track_pairs"]


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
    """

    labels: np.ndarray
    lineage: np.ndarray
    tracks: np.ndarray
    graph: dict[int, list[int]]


def _overlaps(a: np.ndarray, b: np.ndarray, na: int, nb: int) -> np.ndarray:
    """Pixel counts of every pair of ids, shape (na + 1, nb + 1) (row/column 0: background)."""
    fg = (a > 0) | (b > 0)
    pair = a[fg].astype(np.int64) * (nb + 1) + b[fg]
    inter = np.bincount(pair, minlength=(na + 1) * (nb + 1)).reshape(na + 1, nb + 1)
    inter[0, 0] = np.count_nonzero(~fg)
    return inter


def _link_pair(
    a: np.ndarray,
    b: np.ndarray,
    *,
    min_iou: float,
    min_child_overlap: float,
    free_a: np.ndarray | None = None,
    free_b: np.ndarray | None = None,
) -> dict[int, list[int]]:
    """Overlap links ``{i: [j, ...]}`` from ids of frame ``a`` (1..na) to those of ``b``.

    ``free_a``/``free_b`` (boolean, indexed by id) restrict linking to those instances.
    """
    na, nb = int(a.max(initial=0)), int(b.max(initial=0))
    if na == 0 or nb == 0:
        return {}
    inter = _overlaps(a, b, na, nb)
    area_a, area_b = inter.sum(1)[1:], inter.sum(0)[1:]
    inter = inter[1:, 1:].astype(np.float64)
    if free_a is not None:
        inter[~free_a[1:]] = 0
    if free_b is not None:
        inter[:, ~free_b[1:]] = 0
    iou = inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1)
    rows, cols = linear_sum_assignment(iou, maximize=True)
    good = iou[rows, cols] >= min_iou
    children = {int(i): [int(j)] for i, j in zip(rows[good], cols[good], strict=True)}
    parent_of = {j[0]: i for i, j in children.items()}
    # A division: two instances of b that both lie mostly inside one instance of a.
    inside = inter / np.maximum(area_b[None, :], 1) >= min_child_overlap
    for i in np.flatnonzero(inside.sum(1) >= 2):
        cand = [int(j) for j in np.flatnonzero(inside[i]) if parent_of.get(int(j), i) == i]
        if len(cand) < 2:
            continue
        pair = sorted(cand, key=lambda j: -inter[i, j])[:2]
        for j in children.get(int(i), []):
            parent_of.pop(j, None)
        children[int(i)] = pair
        parent_of.update(dict.fromkeys(pair, int(i)))
    return {i + 1: [j + 1 for j in js] for i, js in children.items()}


def _split_by_seeds(
    mask: np.ndarray, seed_a: np.ndarray, seed_b: np.ndarray, *, depth: float, min_ratio: float
) -> np.ndarray | None:
    """Cut ``mask`` in two along the watershed of its distance transform between two seeds.

    Returns the part grown from ``seed_a`` (the rest grew from ``seed_b``), or None unless
    both seeds touch the mask, the smaller part holds at least ``min_ratio`` of the larger,
    and the cut runs through a neck: each part's highest distance to the edge rises above
    the highest distance on the cut by at least ``depth`` times the mask's highest distance
    (the depth of :func:`~.grouping.postprocess.split_necks`).
    """
    from skimage.segmentation import watershed

    a, b = seed_a & mask, seed_b & mask
    if not a.any() or not b.any():
        return None
    box = ndi.find_objects(mask.astype(np.uint8))[0]
    box = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in box)
    m = mask[box]
    dist = ndi.distance_transform_edt(np.pad(m, 1))[1:-1, 1:-1]
    markers = a[box].astype(np.int32) + 2 * (b[box] & ~a[box])
    parts = watershed(-dist, markers, mask=m)
    part_a = parts == 1
    size_a, size_b = int(part_a.sum()), int((parts == 2).sum())
    if min(size_a, size_b) < min_ratio * max(size_a, size_b) or min(size_a, size_b) == 0:
        return None
    cut = part_a & ndi.binary_dilation(parts == 2)
    saddle = dist[cut].max() if cut.any() else 0.0
    rise = min(dist[part_a].max(), dist[parts == 2].max()) - saddle
    if rise < depth * dist.max():
        return None
    out = np.zeros_like(mask)
    out[box] = part_a
    return out


def _split_back(
    frames: list[np.ndarray],
    edges: list[dict[int, list[int]]],
    t: int,
    *,
    max_frames: int,
    depth: float,
    min_ratio: float,
    link: Callable[[np.ndarray, np.ndarray], dict[int, list[int]]],
) -> None:
    """Move the divisions of ``edges[t]`` (frame t -> t + 1) back while the mother looks like two.

    Daughters often touch for a few frames after mitosis and are segmented as one, so the
    division is seen late. Here the mother of a division at ``t -> t + 1`` is cut in frame
    ``t`` along her daughters (:func:`_split_by_seeds`); if that works the frame's links are
    rebuilt, and the same is tried one frame earlier, at most ``max_frames`` frames back.
    ``frames`` and ``edges`` are changed in place.
    """
    for mother, kids in list(edges[t].items()):
        if len(kids) != 2:
            continue
        k, node, pair = t, mother, kids
        for _ in range(max_frames):
            nxt = frames[k + 1]
            mask = frames[k] == node
            part = _split_by_seeds(
                mask, nxt == pair[0], nxt == pair[1], depth=depth, min_ratio=min_ratio
            )
            if part is None:
                break
            new = int(frames[k].max()) + 1
            frames[k][mask & ~part] = new
            edges[k][node] = [pair[0]]
            edges[k][new] = [pair[1]]
            if k == 0:
                break
            edges[k - 1] = link(frames[k - 1], frames[k])
            before = [p for p, js in edges[k - 1].items() if sorted(js) == sorted([node, new])]
            if not before:
                break
            k, node, pair = k - 1, before[0], edges[k - 1][before[0]]


class _TrackTable:
    """Per-frame instances (nodes), the track each belongs to, and the tracks' lineage."""

    def __init__(self, frames: list[np.ndarray], edges: list[dict[int, list[int]]]) -> None:
        self.frames = frames  # (Y, X) int32 node ids 1..n_t per frame
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

    def drop(self, tid: int) -> None:
        first, last, _ = self.table.pop(tid)
        for t in range(first, last + 1):
            self.track_of[t][self.track_of[t] == tid] = 0
        for row in self.table.values():
            if row[2] == tid:
                row[2] = 0

    def merge_false_splits(self, min_split_frames: int, min_child_ratio: float) -> None:
        changed = True
        while changed:
            changed = False
            kids = self.children()
            for parent, pair in kids.items():
                if len(pair) != 2:
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
        for parent, kids in self.children().items():
            if len(kids) == 1 and self.table[kids[0]][0] == self.table[parent][1] + 1:
                self.merge(kids[0], parent)

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
) -> TrackingResult:
    table = _TrackTable(frames, edges)
    table.merge_false_splits(min_split_frames, min_child_ratio)
    for tid in [k for k in table.table if table.length(k) < min_track_length]:
        table.drop(tid)
    table.join_single_children()
    if max_gap > 0:
        table.bridge_gaps(max_gap, max_gap_distance)
    return table.result()


_CLEANUP_DOC = """min_track_length : int
        Tracks present in fewer frames are dropped (their children lose their parent).
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


def link_labels(
    labels,
    *,
    min_iou: float = 0.3,
    min_child_overlap: float = 0.5,
    min_track_length: int = 1,
    min_split_frames: int = 1,
    min_child_ratio: float = 0.0,
    max_gap: int = 0,
    max_gap_distance: float = 20.0,
    split_back: int = 0,
    split_back_depth: float = 0.05,
) -> TrackingResult:
    """Link per-frame instance labels into tracks by overlap.

    Parameters
    ----------
    labels : array of shape (T, Y, X)
        Integer instance labels per frame (numpy or dask); ids need not agree across frames.
        0 is background; an id counts as one instance even if its pixels are not connected.
    min_iou : float
        Smallest IoU of a continuation (one-to-one Hungarian assignment on IoU).
    min_child_overlap : float
        A division is two instances of ``t + 1`` with at least this fraction of their pixels
        inside one instance of ``t`` (and not continuing another instance).
    split_back : int
        Daughters that still touch after mitosis are often segmented as one for a few
        frames, so their division is seen late. At most this many frames before a division,
        the mother is cut along her daughters' masks while the cut runs through a neck (see
        ``split_back_depth``), moving the division back to where she first looks like two
        nuclei. Two nuclei that touched for a while and part again are separated the same way
        (then linked to their own tracks, with no division). 0 cuts nothing.
    split_back_depth : float
        Smallest neck of such a cut, in [0, 1): each part's largest distance to the edge must
        exceed the largest on the cut by this fraction of the mother's largest distance.
    {cleanup}

    Returns
    -------
    TrackingResult

    Examples
    --------
    >>> movie = np.zeros((3, 8, 8), np.uint8)
    >>> movie[0, 1:7, 1:5], movie[1, 1:7, 1:5] = 5, 9
    >>> movie[2, 1:4, 1:5], movie[2, 4:7, 1:5] = 1, 2
    >>> link_labels(movie).lineage.tolist()
    [[1, 0, 1, 0], [2, 2, 2, 1], [3, 2, 2, 1]]
    """
    if getattr(labels, "ndim", None) != 3:
        raise InputError(f"labels must have shape (T, Y, X), got {getattr(labels, 'shape', None)}")
    if split_back < 0 or not 0.0 <= split_back_depth < 1.0:
        raise InputError(
            f"split_back must be >= 0 and split_back_depth in [0, 1), got {split_back} and "
            f"{split_back_depth}"
        )
    frames = [
        relabel_consecutive(np.asarray(labels[t])).astype(np.int32, copy=False)
        for t in range(labels.shape[0])
    ]
    link = partial(_link_pair, min_iou=min_iou, min_child_overlap=min_child_overlap)
    edges = []
    for t, (a, b) in enumerate(itertools.pairwise(frames)):
        edges.append(link(a, b))
        if split_back > 0:
            _split_back(
                frames,
                edges,
                t,
                max_frames=split_back,
                depth=split_back_depth,
                min_ratio=min_child_ratio,
                link=link,
            )
    return _finish(
        frames,
        edges,
        min_track_length=min_track_length,
        min_split_frames=min_split_frames,
        min_child_ratio=min_child_ratio,
        max_gap=max_gap,
        max_gap_distance=max_gap_distance,
    )


def _pair_edges(
    pair: np.ndarray,
    seg: np.ndarray,
    seg_next: np.ndarray,
    *,
    min_iou: float,
    min_child_overlap: float,
    min_child_size: int,
) -> dict[int, list[int]]:
    """Links from ``seg`` (frame t) to ``seg_next`` (t + 1) given the pair clustering (2, Y, X).

    Every instance of either frame belongs to the cluster that holds at least
    ``min_child_overlap`` of it. A cluster holding one instance of frame t and one or two of
    frame t + 1 links them (two: a division). A cluster that holds several instances of frame
    t (neighbours the clustering merged, which the clean-up cut apart) links nothing itself:
    those, and every instance left unlinked, go to the overlap linking of :func:`_link_pair`.
    """
    n_clusters = int(pair.max(initial=0))
    n_seg, n_next = int(seg.max(initial=0)), int(seg_next.max(initial=0))
    edges: dict[int, list[int]] = {}
    if n_clusters and n_seg and n_next:

        def owner(frame: np.ndarray, labels: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
            inter = _overlaps(labels, frame, n, n_clusters)  # instances x clusters
            size = inter.sum(1)
            inter[:, 0] = 0
            best = inter.argmax(1)
            held = inter[np.arange(n + 1), best]
            ok = (held >= min_child_overlap * size) & (size >= min_child_size)
            ok[0] = False
            return np.where(ok, best, 0), held

        cluster_of, _ = owner(pair[0], seg, n_seg)
        cluster_next, held_next = owner(pair[1], seg_next, n_next)
        mothers = np.bincount(cluster_of, minlength=n_clusters + 1)
        mother = np.zeros(n_clusters + 1, np.int64)
        single = np.flatnonzero((cluster_of > 0) & (mothers[cluster_of] == 1))
        mother[cluster_of[single]] = single
        for j in np.flatnonzero(cluster_next):
            i = int(mother[cluster_next[j]])
            if i:
                edges.setdefault(i, []).append(int(j))
        for i, js in edges.items():
            edges[i] = sorted(js, key=lambda j: -held_next[j])[:2]
    free_a = np.ones(n_seg + 1, bool)
    free_b = np.ones(n_next + 1, bool)
    free_a[list(edges)] = False
    free_b[[j for js in edges.values() for j in js]] = False
    links = {
        **edges,
        **_link_pair(
            seg,
            seg_next,
            min_iou=min_iou,
            min_child_overlap=min_child_overlap,
            free_a=free_a,
            free_b=free_b,
        ),
    }
    # A daughter whose embedding left her mother's cluster: an unlinked instance lying mostly
    # inside a mother that has one child so far is that child's sister.
    if n_seg and n_next:
        inter = _overlaps(seg, seg_next, n_seg, n_next)
        area_next = inter.sum(0)
        taken = np.zeros(n_next + 1, bool)
        taken[[j for js in links.values() for j in js]] = True
        for i, js in links.items():
            if len(js) == 1:
                inside = (inter[i] >= min_child_overlap * area_next) & ~taken
                inside[0] = False
                if inside.any():
                    j = int(np.argmax(np.where(inside, inter[i], -1)))
                    js.append(j)
                    taken[j] = True
    return links


def track_pairs(
    embeddings: Sequence,
    foregrounds: Sequence,
    *,
    min_samples: int,
    min_cluster_size: int,
    coord_weight: float,
    object_size: float = 32.0,
    cluster_selection_epsilon: float = 0.0,
    max_points: int | None = 10_000,
    min_iou: float = 0.3,
    min_child_overlap: float = 0.5,
    min_child_size: int = 10,
    min_track_length: int = 1,
    min_split_frames: int = 1,
    min_child_ratio: float = 0.0,
    max_gap: int = 0,
    max_gap_distance: float = 20.0,
    min_size: int = 0,
    fill_holes: bool = False,
    split_depth: float = 0.0,
) -> Generator[tuple[int, int], None, TrackingResult]:
    """Segment and track a movie by clustering pairs of consecutive frames (Payer et al.).

    Streams the movie: two frames of embeddings are in memory at a time. Each frame's
    instances are its part of the pair clustering (noise given to the nearest cluster), cleaned
    up as :func:`~.grouping.postprocess` does for single frames (``min_size``, ``fill_holes``,
    ``split_depth``), so both trackings segment alike.

    Parameters
    ----------
    embeddings : sequence of T arrays of shape (D, Y, X)
        Unit pixel embeddings, indexed by frame (a list, or an array of shape (T, D, Y, X)).
    foregrounds : sequence of T arrays of shape (Y, X)
        Foreground masks, indexed by frame.
    min_samples, min_cluster_size, coord_weight, object_size, cluster_selection_epsilon, \
max_points
        HDBSCAN parameters, as in :class:`~.grouping.HDBSCANGrouper`; ``min_cluster_size``
        counts pixels of both frames.
    min_iou, min_child_overlap
        Overlap linking of instances the pair clustering leaves unlinked, as in
        :func:`link_labels`; ``min_child_overlap`` is also the fraction of an instance that
        must lie in one cluster of the pair for that cluster to link it.
    min_child_size : int
        Instances smaller than this (pixels) are linked by overlap only, not by the clusters.
    min_size, fill_holes, split_depth
        Clean-up of each frame's instances, as in :func:`~.grouping.postprocess`.
    {cleanup}

    Yields
    ------
    (done, total) : tuple of int
        Frame pairs clustered so far, and in all.

    Returns
    -------
    TrackingResult
        As the generator's return value (``StopIteration.value``).
    """
    n = len(embeddings)
    if n == 0 or len(foregrounds) != n:
        raise InputError(f"need as many foregrounds as embeddings (>= 1), got {len(foregrounds)}")

    def cluster(emb, fg) -> np.ndarray:
        grouper = HDBSCANGrouper(
            emb,
            foreground=fg,
            min_samples=min_samples,
            coord_weight=coord_weight,
            object_size=object_size,
            max_points=max_points,
        )
        return np.asarray(
            grouper.labels(min_cluster_size, cluster_selection_epsilon, assign_noise=True)
        )

    def clean(labels: np.ndarray) -> np.ndarray:
        return postprocess(labels, min_size=min_size, fill=fill_holes, split_depth=split_depth)

    total = max(n - 1, 1)
    if n == 1:
        seg = clean(cluster(np.asarray(embeddings[0]), np.asarray(foregrounds[0]) > 0))
        yield 1, total
        frames, edges = [seg], []
    else:
        link = partial(
            _pair_edges,
            min_iou=min_iou,
            min_child_overlap=min_child_overlap,
            min_child_size=min_child_size,
        )
        frames, edges, pairs = [], [], []
        emb, fg = np.asarray(embeddings[0]), np.asarray(foregrounds[0]) > 0
        for t in range(n - 1):
            emb_next, fg_next = np.asarray(embeddings[t + 1]), np.asarray(foregrounds[t + 1]) > 0
            pairs.append(cluster(np.stack([emb, emb_next], axis=1), np.stack([fg, fg_next])))
            frames.append(clean(pairs[-1][0]))
            emb, fg = emb_next, fg_next
            if t > 0:
                edges.append(link(pairs[-2], frames[-2], frames[-1]))
                pairs[-2] = None  # only the last pair's labels are still needed
            yield t + 1, total
        frames.append(clean(pairs[-1][1]))
        edges.append(link(pairs[-1], frames[-2], frames[-1]))
    return _finish(
        frames,
        edges,
        min_track_length=min_track_length,
        min_split_frames=min_split_frames,
        min_child_ratio=min_child_ratio,
        max_gap=max_gap,
        max_gap_distance=max_gap_distance,
    )


link_labels.__doc__ = link_labels.__doc__.replace("{cleanup}", _CLEANUP_DOC)
track_pairs.__doc__ = track_pairs.__doc__.replace("{cleanup}", _CLEANUP_DOC)
