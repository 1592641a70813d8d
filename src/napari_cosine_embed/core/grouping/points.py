"""Pixels as points for clustering: embedding plus scaled coordinates, and a bounded subsample.

A cosine embedding lets instances that are far apart share a direction (Payer et al. 2018), so
each foreground pixel becomes the point ``(e, t * time_weight, y * c, x * c)`` with ``e`` its
embedding vector and ``c = coord_weight / object_size``. With unit embeddings two different
instances lie ``sqrt(2)`` apart when orthogonal and 2 apart when opposite, and moving by one
typical object diameter (``object_size`` pixels) costs ``coord_weight``: ``coord_weight=0``
clusters on the embedding alone, ``coord_weight=1`` makes one diameter about as costly as a
change of instance direction.

:func:`choose_blocks` and :func:`block_means` implement the bounded route used for large
frames: average the points of each ``s x s`` block of pixels (superpixels on a regular grid,
embedding renormalised), cluster the block means, then give every pixel the cluster of the block
mean nearest to it in the full feature space among its own and the 8 surrounding blocks.
"""

from __future__ import annotations

import numbers

import numpy as np

from ..errors import InputError

__all__ = ["block_means", "choose_blocks", "embedding_points"]


def embedding_points(
    embedding: np.ndarray,
    foreground: np.ndarray | None = None,
    coord_weight: float = 0.0,
    *,
    object_size: float = 32.0,
    time_weight: float = 0.0,
) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """Foreground pixels as points: embedding vector plus scaled pixel coordinates.

    Parameters
    ----------
    embedding : ndarray of shape (D, Y, X) or (D, T, Y, X)
        Pixel embeddings (unit vectors along axis 0), any float dtype; ``T`` is typically 2
        (two consecutive frames stacked for tracking).
    foreground : ndarray of shape (Y, X) or (T, Y, X), optional
        Pixels to cluster (nonzero = foreground); all pixels when omitted.
    coord_weight : float
        Distance added by moving one ``object_size`` in ``y`` or ``x``; 0 ignores position.
    object_size : float
        Typical object diameter in pixels, the unit of ``coord_weight``.
    time_weight : float
        Distance added between the two frames of a ``(D, T, Y, X)`` stack: the column
        ``t * time_weight``. The default 0 links frames by embedding and position alone.

    Returns
    -------
    points : ndarray of shape (N, D + 2) or (N, D + 3), float64
        Columns ``e_0 .. e_{D-1}, [t * time_weight,] y * c, x * c`` with
        ``c = coord_weight / object_size``, in C order of the pixels.
    index : tuple of ndarray
        ``(y, x)`` or ``(t, y, x)`` integer indices of the points, as from ``np.nonzero``, so
        ``out[index] = values`` writes point values into an image.

    Examples
    --------
    >>> e = np.zeros((3, 4, 5), np.float32); e[0] = 1
    >>> fg = np.zeros((4, 5), bool); fg[1:3, 1:3] = True
    >>> points, (y, x) = embedding_points(e, fg, 1.0, object_size=2.0)
    >>> points.shape, points[0].tolist()
    ((4, 5), [1.0, 0.0, 0.0, 0.5, 0.5])
    """
    embedding = np.asarray(embedding)
    if embedding.ndim not in (3, 4) or embedding.shape[0] < 1:
        raise InputError(
            f"embedding must have shape (D, Y, X) or (D, T, Y, X), got shape {embedding.shape}"
        )
    if not np.issubdtype(embedding.dtype, np.number) or np.iscomplexobj(embedding):
        raise InputError(f"embedding must be real numbers, got dtype {embedding.dtype}")
    spatial = embedding.shape[1:]
    if foreground is None:
        foreground = np.ones(spatial, bool)
    else:
        foreground = np.asarray(foreground)
        if foreground.shape != spatial:
            raise InputError(
                f"foreground must have the embedding's pixel shape {spatial}, "
                f"got {foreground.shape}"
            )
        foreground = foreground.astype(bool, copy=False)
    for name, value in (("coord_weight", coord_weight), ("time_weight", time_weight)):
        if not (isinstance(value, numbers.Real) and np.isfinite(value) and value >= 0):
            raise InputError(f"{name} must be a finite number >= 0, got {value!r}")
    if not (isinstance(object_size, numbers.Real) and np.isfinite(object_size) and object_size > 0):
        raise InputError(f"object_size must be a number of pixels > 0, got {object_size!r}")

    index = np.nonzero(foreground)
    d = embedding.shape[0]
    points = np.empty((len(index[0]), d + len(spatial)), np.float64)
    points[:, :d] = embedding[(slice(None), *index)].T
    if not np.isfinite(points[:, :d]).all():
        raise InputError("embedding has NaN or infinite values at foreground pixels")
    scale = float(coord_weight) / float(object_size)
    if len(spatial) == 3:
        points[:, d] = index[0] * float(time_weight)
    points[:, -2] = index[-2] * scale
    points[:, -1] = index[-1] * scale
    return points, index


def _block_ids(index: tuple[np.ndarray, ...], stride: int, offset: tuple[int, int]) -> tuple:
    t = index[0] if len(index) == 3 else np.zeros(len(index[-1]), np.intp)
    by = (index[-2] + offset[0]) // stride
    bx = (index[-1] + offset[1]) // stride
    return t, by, bx


def choose_blocks(
    index: tuple[np.ndarray, ...], max_points: int, *, seed: int = 0
) -> tuple[int, tuple[int, int]]:
    """The smallest block size whose non-empty blocks number at most ``max_points``.

    Parameters
    ----------
    index : tuple of ndarray
        ``(y, x)`` or ``(t, y, x)`` pixel indices of the N points.
    max_points : int
        Upper bound on the number of blocks that contain a point.
    seed : int
        Draws the offset ``(oy, ox)`` in ``[0, stride)`` of the block grid: block ``(by, bx)``
        holds the pixels with ``(y + oy) // stride == by`` and ``(x + ox) // stride == bx``.

    Returns
    -------
    stride : int
        Block side in pixels, 1 when there are at most ``max_points`` points.
    offset : tuple of int
    """
    n = len(index[-1])
    if n <= max_points:
        return 1, (0, 0)
    rng = np.random.default_rng(seed)
    stride = max(2, int(np.sqrt(n / max_points)))
    while True:  # ends: a stride beyond the image extent leaves one block per frame
        offset = tuple(int(v) for v in rng.integers(0, stride, 2))
        t, by, bx = _block_ids(index, stride, offset)
        if len(np.unique((t * (by.max() + 1) + by) * (bx.max() + 1) + bx)) <= max_points:
            return stride, offset
        stride += 1


def block_means(
    points: np.ndarray,
    index: tuple[np.ndarray, ...],
    stride: int,
    offset: tuple[int, int],
    n_embedding: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Superpixels on a regular grid: the mean point of each ``stride x stride`` block.

    Parameters
    ----------
    points : ndarray of shape (N, F)
        Features, the first ``n_embedding`` columns the embedding.
    index : tuple of ndarray
        ``(y, x)`` or ``(t, y, x)`` pixel indices of the points.
    stride, offset
        The block grid, as from :func:`choose_blocks`.
    n_embedding : int
        Number of embedding columns D.

    Returns
    -------
    means : ndarray of shape (M, F), float64
        Mean of the points of each non-empty block (blocks never span two frames), with the
        embedding part renormalised to unit length (to the mean direction) and the coordinates
        at the centroid of the block's points.
    nearest : ndarray of shape (N,), int64
        For every point, the block mean nearest to it in feature space among its own block and
        the 8 blocks around it, in any frame of a stack.
    """
    t, by, bx = _block_ids(index, stride, offset)
    n_t, n_y, n_x = int(t.max()) + 1, int(by.max()) + 1, int(bx.max()) + 1
    flat = (t * n_y + by) * n_x + bx
    blocks, inverse = np.unique(flat, return_inverse=True)
    counts = np.bincount(inverse, minlength=len(blocks)).astype(np.float64)
    means = np.stack(
        [np.bincount(inverse, points[:, j], minlength=len(blocks)) for j in range(points.shape[1])],
        axis=1,
    )
    means /= counts[:, None]
    norms = np.linalg.norm(means[:, :n_embedding], axis=1, keepdims=True)
    means[:, :n_embedding] /= np.where(norms > 0, norms, 1.0)

    grid = np.full((n_t, n_y + 2, n_x + 2), -1, np.int64)  # 1-block border: no bound checks
    bt, rest = np.divmod(blocks, n_y * n_x)
    grid[bt, rest // n_x + 1, rest % n_x + 1] = np.arange(len(blocks))
    feats, block_feats = points.astype(np.float32), means.astype(np.float32)
    best = np.full(len(points), np.inf, np.float32)
    nearest = inverse.astype(np.int64)  # the own block is always a candidate
    for frame in range(n_t):
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                cand = grid[frame, by + 1 + dy, bx + 1 + dx]
                ok = np.flatnonzero(cand >= 0)
                diff = feats[ok] - block_feats[cand[ok]]
                dist = np.einsum("ij,ij->i", diff, diff)
                better = dist < best[ok]
                best[ok[better]] = dist[better]
                nearest[ok[better]] = cand[ok[better]]
    return means, nearest
