"""Payer et al.'s tracking: cluster the pixels of two consecutive frames together."""

from __future__ import annotations

from collections.abc import Generator, Iterable, Sequence
from functools import partial

import numpy as np

from ..errors import InputError
from ..grouping import HDBSCANGrouper, postprocess
from ._table import _CLEANUP_DOC, TrackingResult, _finish, _overlaps
from .overlap import _link_pair
from .pins import Pin, apply_pins, pair_pins, pins_by_frame


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
    pins: Iterable[Pin] = (),
) -> Generator[tuple[int, int], None, TrackingResult]:
    """Segment and track a movie by clustering pairs of consecutive frames (Payer et al.).

    Streams the movie: two frames of embeddings are in memory at a time. Each frame's
    instances are its part of the pair clustering (noise given to the nearest cluster), cleaned
    up as :func:`~..grouping.postprocess` does for single frames (``min_size``, ``fill_holes``,
    ``split_depth``), so both trackings segment alike.

    Parameters
    ----------
    embeddings : sequence of T arrays of shape (D, Y, X)
        Unit pixel embeddings, indexed by frame (a list, or an array of shape (T, D, Y, X)).
    foregrounds : sequence of T arrays of shape (Y, X)
        Foreground masks, indexed by frame.
    min_samples, min_cluster_size, coord_weight, object_size, cluster_selection_epsilon, \
max_points
        HDBSCAN parameters, as in :class:`~..grouping.HDBSCANGrouper`; ``min_cluster_size``
        counts pixels of both frames.
    min_iou, min_child_overlap
        Overlap linking of instances the pair clustering leaves unlinked, as in
        :func:`link_labels`; ``min_child_overlap`` is also the fraction of an instance that
        must lie in one cluster of the pair for that cluster to link it.
    min_child_size : int
        Instances smaller than this (pixels) are linked by overlap only, not by the clusters.
    min_size, fill_holes, split_depth
        Clean-up of each frame's instances, as in :func:`~..grouping.postprocess`.
    pins : iterable of Pin
        Links to keep, as in :func:`link_labels`.
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

    grouped = pins_by_frame(pins)
    pinned: list[dict[int, list[int]]] = []
    missed = [p for t, ps in grouped.items() if not 0 <= t < n - 1 for p in ps]

    def pinned_edges(pair: np.ndarray, a: np.ndarray, b: np.ndarray) -> dict[int, list[int]]:
        links, lost = pair_pins(a, b, grouped.get(len(pinned), ()))
        pinned.append(links)
        missed.extend(lost)
        return apply_pins(
            link(pair, a, b),
            links,
            lambda free_a, free_b: _link_pair(
                a,
                b,
                min_iou=min_iou,
                min_child_overlap=min_child_overlap,
                free_a=free_a,
                free_b=free_b,
            ),
            int(a.max(initial=0)),
            int(b.max(initial=0)),
        )

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
                edges.append(pinned_edges(pairs[-2], frames[-2], frames[-1]))
                pairs[-2] = None  # only the last pair's labels are still needed
            yield t + 1, total
        frames.append(clean(pairs[-1][1]))
        edges.append(pinned_edges(pairs[-1], frames[-2], frames[-1]))
    return _finish(
        frames,
        edges,
        min_track_length=min_track_length,
        min_split_frames=min_split_frames,
        min_child_ratio=min_child_ratio,
        max_gap=max_gap,
        max_gap_distance=max_gap_distance,
        pinned=pinned,
        missed_pins=missed,
    )


track_pairs.__doc__ = track_pairs.__doc__.replace("{cleanup}", _CLEANUP_DOC)
