"""How well an embedding separates the instances of a labelled image: the validation score.

Grouping works when (a) the pixels of one nucleus point the same way and (b) touching or nearby
nuclei point in clearly different directions (far-apart nuclei may share one, which is how D
dimensions serve many more than D nuclei). :func:`embedding_quality` measures exactly that:

``within_cosine``
    Mean over instances of the mean cosine between a pixel and its instance's mean direction
    (1: every instance is a single point on the sphere).
``neighbour_separation``
    Fraction of neighbouring instance pairs (some pixels within ``neighbour_radius``, Euclidean;
    touching pairs always count) whose mean directions have cosine below ``threshold`` (0.5,
    i.e. more than 60 degrees apart).
``score``
    ``within_cosine * neighbour_separation``: 1 for a perfect embedding, 0 for a collapsed one,
    and low for noise too (noise separates neighbours but has no within-instance agreement).

These are the numbers reported in ``docs/models.md`` and used to keep the best model while
training. Background (label 0) takes no part.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

__all__ = ["aggregate_quality", "embedding_quality", "neighbour_pairs"]


def _offsets(radius: float) -> list[tuple[int, int]]:
    """Half of the integer offsets o != 0 with |o| <= radius (one of each pair o, -o)."""
    reach = math.floor(radius)
    span = range(-reach, reach + 1)
    return [
        o
        for o in itertools.product(span, span)
        if 0 < o[0] ** 2 + o[1] ** 2 <= radius**2 and o > (0, 0)
    ]


def neighbour_pairs(labels: np.ndarray, *, neighbour_radius: float = 5.0) -> np.ndarray:
    """Pairs of distinct instances with pixels at most ``neighbour_radius`` apart.

    Parameters
    ----------
    labels : ndarray of shape (Y, X), integer
        Instance ids, 0 = background.
    neighbour_radius : float
        Euclidean distance in pixels; at least 1 so that 4-connected touching pairs count.

    Returns
    -------
    ndarray of shape (P, 2), int64
        Sorted ``(a, b)`` label pairs with ``a < b``.

    Examples
    --------
    >>> labels = np.zeros((8, 8), int); labels[:, :3], labels[:, 4:6] = 1, 2
    >>> neighbour_pairs(labels, neighbour_radius=1).tolist(), neighbour_pairs(labels).tolist()
    ([], [[1, 2]])
    """
    labels = np.asarray(labels).astype(np.int64, copy=False)
    height, width = labels.shape
    keys = []
    for dy, dx in _offsets(max(float(neighbour_radius), 1.0)):
        if abs(dy) >= height or abs(dx) >= width:
            continue
        a = labels[max(0, -dy) : height - max(0, dy), max(0, -dx) : width - max(0, dx)]
        b = labels[max(0, dy) : height - max(0, -dy), max(0, dx) : width - max(0, -dx)]
        hit = (a != b) & (a > 0) & (b > 0)
        lo, hi = np.minimum(a[hit], b[hit]), np.maximum(a[hit], b[hit])
        keys.append(np.unique(lo * (int(labels.max()) + 1) + hi))
    if not keys:
        return np.zeros((0, 2), np.int64)
    unique = np.unique(np.concatenate(keys))
    stride = int(labels.max()) + 1
    return np.stack([unique // stride, unique % stride], axis=1).astype(np.int64)


def _to_numpy(embedding: Any) -> np.ndarray:
    if hasattr(embedding, "detach"):  # a torch tensor, without importing torch here
        embedding = embedding.detach().float().cpu().numpy()
    return np.asarray(embedding, dtype=np.float32)


def embedding_quality(
    embedding: Any,
    labels: np.ndarray,
    *,
    neighbour_radius: float = 5.0,
    threshold: float = 0.5,
) -> dict[str, float | int]:
    """Score how well an embedding separates the labelled instances of one image.

    Parameters
    ----------
    embedding : ndarray or torch.Tensor of shape (D, Y, X)
        Pixel embeddings; normalised to unit length here (raw network output is fine).
    labels : ndarray of shape (Y, X), integer
        Instance ids, 0 = background (ignored).
    neighbour_radius : float, keyword-only
        Instances with pixels this close (Euclidean, pixels) are neighbours.
    threshold : float, keyword-only
        Neighbours count as separated when their mean directions have cosine below this.

    Returns
    -------
    dict
        ``score``, ``neighbour_separation``, ``within_cosine`` (NaN when undefined), and the
        counts ``n_pairs``, ``n_separated``, ``n_instances`` that :func:`aggregate_quality`
        combines.

    Examples
    --------
    >>> labels = np.zeros((16, 16), int); labels[2:8, 2:8], labels[8:14, 2:8] = 1, 2
    >>> emb = np.zeros((2, 16, 16)); emb[0][labels == 1] = 1; emb[1][labels != 1] = 1
    >>> q = embedding_quality(emb, labels)
    >>> q["neighbour_separation"], q["within_cosine"], q["n_pairs"]
    (1.0, 1.0, 1)
    """
    emb = _to_numpy(embedding)
    labels = np.asarray(labels)
    if emb.ndim != 3 or emb.shape[1:] != labels.shape:
        raise ValueError(
            f"embedding of shape {emb.shape} does not match labels of shape {labels.shape}: "
            "expected (D, Y, X) and (Y, X)"
        )
    flat = labels.reshape(-1).astype(np.int64)
    fg = flat > 0
    ids, index = np.unique(flat[fg], return_inverse=True)
    vectors = emb.reshape(emb.shape[0], -1)[:, fg].T.astype(np.float64)  # (N, D)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    sums = np.zeros((len(ids), emb.shape[0]))
    np.add.at(sums, index, vectors)
    counts = np.bincount(index, minlength=len(ids))
    norms = np.linalg.norm(sums, axis=1)
    means = sums / np.maximum(norms, 1e-12)[:, None]
    # The mean cosine of an instance's unit vectors to their normalised mean is |sum| / n.
    within = norms / np.maximum(counts, 1)
    pairs = neighbour_pairs(labels, neighbour_radius=neighbour_radius)
    rows = np.searchsorted(ids, pairs)
    cosines = (means[rows[:, 0]] * means[rows[:, 1]]).sum(1)
    n_separated = int((cosines < threshold).sum())
    return _finish(len(pairs), n_separated, len(ids), float(within.sum()))


def _finish(n_pairs: int, n_separated: int, n_instances: int, within_sum: float) -> dict:
    separation = n_separated / n_pairs if n_pairs else math.nan
    within = within_sum / n_instances if n_instances else math.nan
    # Without neighbours there is nothing to separate: the score is the agreement alone.
    score = within * (separation if n_pairs else 1.0)
    return {
        "score": score,
        "neighbour_separation": separation,
        "within_cosine": within,
        "n_pairs": n_pairs,
        "n_separated": n_separated,
        "n_instances": n_instances,
    }


def aggregate_quality(results: list[dict]) -> dict[str, float | int]:
    """Combine :func:`embedding_quality` results of several images into one.

    Pairs and instances are pooled, so each pair and each instance weighs the same whichever
    image it is in.

    Examples
    --------
    >>> a = {"n_pairs": 2, "n_separated": 2, "n_instances": 3, "within_cosine": 1.0}
    >>> b = {"n_pairs": 2, "n_separated": 0, "n_instances": 1, "within_cosine": 0.6}
    >>> round(aggregate_quality([a, b])["within_cosine"], 2), aggregate_quality([a, b])["n_pairs"]
    (0.9, 4)
    """
    n_pairs = sum(int(r["n_pairs"]) for r in results)
    n_separated = sum(int(r["n_separated"]) for r in results)
    n_instances = sum(int(r["n_instances"]) for r in results)
    within_sum = sum(r["within_cosine"] * r["n_instances"] for r in results if r["n_instances"])
    return _finish(n_pairs, n_separated, n_instances, float(within_sum))
