"""HDBSCAN grouping of pixel embeddings, split so that a live preview re-clusters in milliseconds.

Payer et al. (2018) group cosine embeddings with HDBSCAN on the embedding vectors plus scaled
pixel coordinates (see :mod:`.points` for the scaling: ``coord_weight`` is the distance added by
moving one ``object_size``).

What depends on what
--------------------
HDBSCAN has two stages and only the first is expensive:

1. *Structure* (points, ``min_samples``): core distances (distance to the ``min_samples``-th
   neighbour, **not** counting the point itself, as ``hdbscan.HDBSCAN`` does: it queries
   ``k = min_samples + 1`` and takes the last), the minimum spanning tree of the mutual
   reachability graph, and the single-linkage tree. :class:`HDBSCANGrouper` computes it once,
   when it is created; a new ``min_samples``, ``coord_weight`` or frame needs a new grouper.
2. *Flat clustering* (``min_cluster_size``, ``cluster_selection_epsilon``, ``method``):
   condense the cached single-linkage tree, compute stabilities and select clusters.
   :meth:`HDBSCANGrouper.labels` does only this, keeps the condensed trees of the last few
   ``min_cluster_size`` values (a new epsilon or method skips condensing) and the last few
   label images.

Both stages call the compiled (Cython) internals of the ``hdbscan`` package, the reference the
results must match: sklearn's ``KDTree`` with ``hdbscan``'s ``KDTreeBoruvkaAlgorithm`` (exact
MST, ``approx_min_span_tree=False``; one process, since forking workers costs more than it saves
on a 2-core machine), ``label`` for the single-linkage tree, and ``condense_tree`` /
``compute_stability`` / ``get_clusters`` for stage 2. Reusing them, rather than writing numba
code, keeps the labels identical to ``hdbscan.HDBSCAN`` with the same parameters (up to ties
in the MST, and the package's default *approximate* Borůvka tree), adds no JIT compile time to
the first slider move and no dependency. ``allow_single_cluster`` is False, as in the package,
except where selection finds no cluster at all: the tree never splits into two parts of
``min_cluster_size`` (a frame, or a pair of frames, holding one nucleus and perhaps a few specks).
The package then calls every point noise and a one-cell image comes out empty; we select again
with ``allow_single_cluster=True``, which keeps the root's densest points as one cluster (the
rest is noise, which ``assign_noise`` gives to it). Selecting with it always would also mend a
crop around one large nucleus, which eom cuts into its inner parts (a known limitation, see
``tests/core/test_pipeline.py``), but on the exact route the root can out-score its children
with many nuclei too: on the 79,088-pixel frame of ``benchmarks/bench_grouping.py`` it took the
whole frame as one cluster (ARI 0 against the truth, where it is 0.98 without).

Bounded route for large frames
------------------------------
An exact tree costs seconds beyond ~10,000 points in 18 dimensions (the package takes ~5-20 s
for the ~80,000 foreground pixels of a 512 x 512 frame on 2 cores). When there are more than
``max_points`` points (default 10,000), the frame is cut into ``stride x stride`` blocks, the
smallest stride leaving at most ``max_points`` non-empty blocks, and the tree is built on the
block means (superpixels on a regular grid: mean embedding renormalised, centroid coordinates;
:func:`.points.block_means`). Every pixel then takes the cluster of the block mean nearest to it
in the full feature space among its own and the 8 surrounding blocks, which puts pixels of
blocks that straddle two objects on the right side; that assignment is computed once at build
time, so :meth:`HDBSCANGrouper.labels` stays a gather.

Parameters keep their pixel meaning. ``min_cluster_size`` is divided by ``stride**2`` (rounded,
at least 2), the blocks an object of that area covers. ``min_samples`` is *not* divided: it is
the number of points the density estimate averages over, and dividing it (``10 / 9 -> 1`` at
stride 3) leaves so noisy a density that ``"leaf"`` selection shatters objects (ARI vs truth
0.00-0.10 instead of 0.10-1.00 with 3 x 3 blocks, ``min_samples=10``, ``min_cluster_size``
30-100, before the floor below). It is only capped at a quarter of the blocks of one object of
diameter ``object_size``, ``pi / 16 * (object_size / stride)**2``, so the density of a block stays
that of its own object (with the defaults the cap binds from 5 x 5 blocks on, e.g. 3 for the
8 x 8 blocks of a 1024 x 1024 frame). Averaging also removes most of the pixel noise, so
distances between block means are smaller than between pixels and ``cluster_selection_epsilon``,
used as is, merges less than on the exact route. Block means are cleaner than a subsample of
single pixels, which with the same budget agreed less with the truth (``"eom"`` 0.48-0.94
against 0.99-1.0 at noise 0.25).

``"leaf"`` selection is the one that departs: on lattice-like block means it finds leaves of a
few blocks inside objects and leaves the pixels between them as noise. The block count of a
cluster is therefore also floored at ``tree_min_samples`` (HDBSCAN's usual advice,
``min_cluster_size >= min_samples``), which cures it for ``min_samples >= 10`` (ARI vs truth
0.36 -> 0.99 with 4 x 4 blocks at ``min_cluster_size=50``) but not for smaller ones (0.3-0.8 at
``min_samples=5``), and costs objects smaller than ``tree_min_samples * stride**2`` pixels. Use
``"eom"`` for the preview, or ``max_points=None`` when leaf clusters matter.

So **the default for the live preview of a 512 x 512 frame (~80,000 foreground pixels) is this
bounded route**, not the exact clustering; ``max_points=None`` gives the exact one.
``benchmarks/bench_grouping.py`` measures the departure (adjusted Rand index against the exact
result and against the package).

Noise
-----
Points HDBSCAN leaves unclustered get label 0, like background. ``assign_noise=True`` gives each
of them the cluster of its nearest clustered point in feature space instead (a KD-tree query
per call, so slower than a plain re-extraction).
"""

from __future__ import annotations

import numbers
import time
from collections import OrderedDict

import numpy as np
from hdbscan._hdbscan_boruvka import KDTreeBoruvkaAlgorithm
from hdbscan._hdbscan_linkage import label as _label_mst
from hdbscan._hdbscan_tree import compute_stability, condense_tree, get_clusters
from sklearn.neighbors import KDTree

from ..errors import InputError
from .points import block_means, choose_blocks, embedding_points

__all__ = ["HDBSCANGrouper", "hdbscan_labels", "single_linkage_tree"]

_METHODS = ("eom", "leaf")
_LEAF_SIZE = 40  # hdbscan.HDBSCAN's default; the Borůvka tree uses a third of it, as there


def _check_int(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise InputError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def single_linkage_tree(points: np.ndarray, min_samples: int) -> np.ndarray:
    """Single-linkage tree of the mutual reachability graph, as ``hdbscan`` builds it.

    Parameters
    ----------
    points : ndarray of shape (N, F)
        Feature vectors, N >= 2.
    min_samples : int
        Core distance = distance to the ``min_samples``-th nearest other point; clipped to
        ``N - 1`` as in ``hdbscan.HDBSCAN``.

    Returns
    -------
    ndarray of shape (N - 1, 4), float64
        scipy-style linkage ``(left, right, distance, size)``, merges by increasing distance.
    """
    points = np.ascontiguousarray(points, np.float64)
    min_samples = max(1, min(int(min_samples), len(points) - 1))
    tree = KDTree(points, leaf_size=_LEAF_SIZE)
    mst = KDTreeBoruvkaAlgorithm(
        tree, min_samples, leaf_size=_LEAF_SIZE // 3, approx_min_span_tree=False, n_jobs=1
    ).spanning_tree()
    mst = mst[np.argsort(mst[:, 2], kind="stable")]
    return _label_mst(mst)


class HDBSCANGrouper:
    """HDBSCAN on one frame's embeddings: build the tree once, re-cluster in milliseconds.

    Parameters
    ----------
    embedding : ndarray of shape (D, Y, X) or (D, T, Y, X)
        Unit pixel embeddings of one frame (or of two frames stacked, ``T = 2``, for tracking).
    foreground : ndarray of shape (Y, X) or (T, Y, X), optional
        Pixels to cluster; all pixels when omitted (background then forms clusters of its own,
        so pass a mask whenever one exists).
    min_samples : int
        HDBSCAN's ``min_samples`` (>= 1): the core distance is the distance to the
        ``min_samples``-th nearest other point (pixel on the exact route, block mean on the
        bounded route, see ``tree_min_samples``). Required: it never follows
        ``min_cluster_size``.
    coord_weight : float
        Weight of pixel position, in distance per ``object_size`` pixels (see :mod:`.points`).
    max_points : int or None
        Above this many foreground pixels, cluster the means of square blocks (at most this
        many) and assign every pixel to a nearby block (see the module docstring); ``None``
        always clusters every pixel exactly.
    seed : int
        Draws the offset of the block grid.
    object_size : float
        Typical object diameter in pixels.
    time_weight : float
        Scale of the frame index in a ``(D, 2, Y, X)`` stack; 0 ignores it.
    cache_size : int
        How many condensed trees and label images to keep.

    Attributes
    ----------
    n_points : int
        Foreground pixels.
    n_clustered : int
        Points the tree was built on (``n_points`` on the exact route).
    stride : int
        Block side in pixels, 1 on the exact route.
    tree_min_samples : int
        ``min_samples`` used for the tree: ``min_samples``, capped on the bounded route at
        ``pi / 16 * (object_size / stride)**2``.
    build_seconds : float
        Wall time of building the structure (points, blocks and assignment, tree).
    timings : dict
        That time by stage, and ``"labels"``, the time of the last :meth:`labels` call.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> e = np.zeros((2, 16, 16), np.float32); e[0, :, :8] = 1; e[1, :, 8:] = 1
    >>> e += rng.normal(0, 0.05, e.shape).astype(np.float32)
    >>> grouper = HDBSCANGrouper(e / np.linalg.norm(e, axis=0), min_samples=5, coord_weight=0.0)
    >>> labels = grouper.labels(min_cluster_size=20)
    >>> labels.shape, labels.dtype.name, np.unique(labels).tolist()
    ((16, 16), 'int32', [1, 2])
    """

    def __init__(
        self,
        embedding: np.ndarray,
        *,
        foreground: np.ndarray | None = None,
        min_samples: int,
        coord_weight: float,
        max_points: int | None = 10_000,
        seed: int = 0,
        object_size: float = 32.0,
        time_weight: float = 0.0,
        cache_size: int = 8,
    ) -> None:
        self.min_samples = _check_int("min_samples", min_samples, 1)
        if max_points is not None:
            max_points = _check_int("max_points", max_points, 2)
        self.cache_size = _check_int("cache_size", cache_size, 1)
        self.coord_weight = coord_weight
        self.max_points = max_points
        start = time.perf_counter()
        points, self._index = embedding_points(
            embedding,
            foreground,
            coord_weight,
            object_size=object_size,
            time_weight=time_weight,
        )
        self.shape = tuple(np.shape(embedding)[1:])
        self.n_points = len(points)
        self.timings = {"points": time.perf_counter() - start}

        tic = time.perf_counter()
        self.stride, self._nearest = 1, None
        clustered = points
        if max_points is not None and self.n_points > max_points:
            self.stride, offset = choose_blocks(self._index, max_points, seed=seed)
            d = np.shape(embedding)[0]
            clustered, self._nearest = block_means(points, self._index, self.stride, offset, d)
        self.n_clustered = len(clustered)
        self.timings["blocks"] = time.perf_counter() - tic

        tic = time.perf_counter()
        self.tree_min_samples = self.min_samples
        if self.stride > 1:
            cap = round(np.pi / 16 * (object_size / self.stride) ** 2)
            self.tree_min_samples = max(1, min(self.min_samples, cap))
        self._tree = (
            single_linkage_tree(clustered, self.tree_min_samples) if self.n_clustered >= 2 else None
        )
        self.timings["tree"] = time.perf_counter() - tic
        self._points, self._clustered = points, clustered
        self.build_seconds = time.perf_counter() - start
        self.timings["labels"] = 0.0
        self._condensed: OrderedDict[int, tuple[np.ndarray, dict]] = OrderedDict()
        self._results: OrderedDict[tuple, np.ndarray] = OrderedDict()

    def __repr__(self) -> str:
        return (
            f"HDBSCANGrouper(shape={self.shape}, n_points={self.n_points}, "
            f"n_clustered={self.n_clustered}, stride={self.stride}, "
            f"min_samples={self.min_samples}, coord_weight={self.coord_weight}, "
            f"build_seconds={self.build_seconds:.3f})"
        )

    @property
    def single_linkage_tree(self) -> np.ndarray | None:
        """The cached ``(n_clustered - 1, 4)`` linkage; None with fewer than 2 points."""
        return None if self._tree is None else self._tree.copy()

    def point_labels(
        self,
        min_cluster_size: int,
        cluster_selection_epsilon: float = 0.0,
        method: str = "eom",
    ) -> np.ndarray:
        """HDBSCAN labels of the clustered points (the block means on the bounded route).

        Returns
        -------
        ndarray of shape (n_clustered,), int64
            ``-1`` for noise, clusters ``0 .. K-1``, exactly as ``hdbscan.HDBSCAN.labels_``
            where that finds a cluster (else as with ``allow_single_cluster=True``).
        """
        min_cluster_size = _check_int("min_cluster_size", min_cluster_size, 2)
        eps = cluster_selection_epsilon
        if not (isinstance(eps, numbers.Real) and np.isfinite(eps) and eps >= 0):
            raise InputError(f"cluster_selection_epsilon must be a number >= 0, got {eps!r}")
        if method not in _METHODS:
            raise InputError(f"method must be one of {_METHODS}, got {method!r}")
        if self._tree is None:
            return np.full(self.n_clustered, -1, np.int64)
        size = max(2, round(min_cluster_size / self.stride**2))
        if self.stride > 1:  # fewer blocks than the density averages over make spurious leaves
            size = max(size, self.tree_min_samples)
        if size in self._condensed:
            self._condensed.move_to_end(size)
        else:
            condensed = condense_tree(self._tree, size)
            self._condensed[size] = (condensed, compute_stability(condensed))
            if len(self._condensed) > self.cache_size:
                self._condensed.popitem(last=False)
        condensed, stability = self._condensed[size]
        # get_clusters overwrites stabilities while it selects, hence the copy
        labels, _, _ = get_clusters(
            condensed, dict(stability), method, False, False, float(eps), 0, float("inf")
        )
        if labels.max() < 0 and len(condensed):  # the tree never splits: one object
            labels, _, _ = get_clusters(
                condensed, dict(stability), method, True, False, float(eps), 0, float("inf")
            )
        return labels

    def labels(
        self,
        min_cluster_size: int,
        cluster_selection_epsilon: float = 0.0,
        method: str = "eom",
        *,
        assign_noise: bool = False,
    ) -> np.ndarray:
        """Instance labels for a flat cut of the cached tree.

        Parameters
        ----------
        min_cluster_size : int
            Smallest cluster, in pixels (>= 2); on the bounded route at least
        ``tree_min_samples`` blocks.
        cluster_selection_epsilon : float
            Clusters closer than this (mutual reachability distance) are not split.
        method : {"eom", "leaf"}
            Excess of mass (most stable clusters) or the leaves of the condensed tree.
        assign_noise : bool
            Give noise pixels the cluster of their nearest clustered point in feature space
            instead of 0.

        Returns
        -------
        ndarray of shape (Y, X) or (T, Y, X), int32
            0 for background and noise, instances ``1 .. N`` without gaps. Cached: do not
            modify in place (it is read-only).
        """
        key = (min_cluster_size, cluster_selection_epsilon, method, bool(assign_noise))
        tic = time.perf_counter()
        if key in self._results:
            self._results.move_to_end(key)
            self.timings["labels"] = time.perf_counter() - tic
            return self._results[key]
        own = self.point_labels(min_cluster_size, cluster_selection_epsilon, method)
        flat = own if self._nearest is None else own[self._nearest]
        if assign_noise and (noise := np.flatnonzero(flat < 0)).size and (flat >= 0).any():
            clustered = np.flatnonzero(own >= 0)  # pixels, or block means on the bounded route
            tree = KDTree(self._clustered[clustered])
            nearest = tree.query(self._points[noise], k=1, return_distance=False)[:, 0]
            flat = flat.copy()
            flat[noise] = own[clustered[nearest]]
        # a block's cluster can lose all its pixels to neighbouring blocks: renumber densely
        used = np.bincount(flat + 1, minlength=1) > 0
        used[0] = False
        ids = np.cumsum(used, dtype=np.int32)
        out = np.zeros(self.shape, np.int32)
        out[self._index] = ids[flat + 1]
        out.flags.writeable = False
        self._results[key] = out
        if len(self._results) > self.cache_size:
            self._results.popitem(last=False)
        self.timings["labels"] = time.perf_counter() - tic
        return out


def hdbscan_labels(
    embedding: np.ndarray,
    *,
    foreground: np.ndarray | None = None,
    min_samples: int,
    min_cluster_size: int,
    coord_weight: float,
    cluster_selection_epsilon: float = 0.0,
    method: str = "eom",
    assign_noise: bool = False,
    max_points: int | None = 10_000,
    object_size: float = 32.0,
    time_weight: float = 0.0,
    seed: int = 0,
) -> np.ndarray:
    """Instance labels of one frame by HDBSCAN on embeddings plus scaled coordinates.

    A one-shot :class:`HDBSCANGrouper`; keep the grouper instead when the parameters of the flat
    clustering change interactively. Parameters are those of :class:`HDBSCANGrouper` and
    :meth:`HDBSCANGrouper.labels`.

    Returns
    -------
    ndarray of shape (Y, X) or (T, Y, X), int32
        0 for background and noise, instances ``1 .. N``.

    Examples
    --------
    >>> e = np.zeros((2, 8, 8), np.float32); e[0, :, :4] = 1; e[1, :, 4:] = 1
    >>> labels = hdbscan_labels(e, min_samples=3, min_cluster_size=5, coord_weight=0.0)
    >>> np.unique(labels).tolist()
    [1, 2]
    """
    grouper = HDBSCANGrouper(
        embedding,
        foreground=foreground,
        min_samples=min_samples,
        coord_weight=coord_weight,
        max_points=max_points,
        seed=seed,
        object_size=object_size,
        time_weight=time_weight,
        cache_size=1,
    )
    labels = grouper.labels(
        min_cluster_size, cluster_selection_epsilon, method, assign_noise=assign_noise
    )
    return np.array(labels)
