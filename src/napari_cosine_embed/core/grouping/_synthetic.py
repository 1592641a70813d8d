"""Synthetic cosine embeddings from a label image, for testing and benchmarking grouping."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ..errors import InputError

__all__ = ["embedding_from_labels"]


def embedding_from_labels(
    labels: np.ndarray,
    *,
    dim: int = 16,
    noise: float = 0.1,
    directions: np.ndarray | None = None,
    max_neighbour_cosine: float = 0.5,
    seed: int = 0,
) -> np.ndarray:
    """Unit embeddings in which every instance has its own direction, plus noise.

    Each label (background 0 included) gets a random unit direction, redrawn until it differs
    from those of touching instances (cosine below ``max_neighbour_cosine``); every pixel gets
    its label's direction plus isotropic Gaussian noise, renormalised (von Mises-Fisher-like).
    Far-apart instances may share nearly the same direction, as the loss of Payer et al. allows.

    Parameters
    ----------
    labels : ndarray of shape (Y, X) or (T, Y, X)
        Instance ids, 0 for background.
    dim : int
        Embedding dimension D.
    noise : float
        Standard deviation of the noise per component, before renormalising.
    directions : ndarray of shape (labels.max() + 1, dim), optional
        Directions to use instead of random ones (row 0 for the background).
    max_neighbour_cosine : float
        Largest cosine allowed between the directions of touching instances.
    seed : int
        Seed of the random generator.

    Returns
    -------
    ndarray of shape (D, Y, X) or (D, T, Y, X), float32
        Unit vectors along axis 0.
    """
    labels = np.asarray(labels)
    if labels.ndim not in (2, 3) or not np.issubdtype(labels.dtype, np.integer):
        raise InputError(f"labels must be an integer (Y, X) or (T, Y, X) image, got {labels.shape}")
    rng = np.random.default_rng(seed)
    n = int(labels.max()) + 1
    if directions is None:
        directions = rng.normal(size=(n, dim))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        touching = ndi.grey_dilation(labels, size=3) != labels
        pairs = np.unique(
            np.stack([labels[touching], ndi.grey_dilation(labels, 3)[touching]]), axis=1
        )
        for _ in range(100):  # a few redraws settle it: random directions in 16-D rarely clash
            a, b = pairs
            clash = np.unique(b[(directions[a] * directions[b]).sum(1) > max_neighbour_cosine])
            if clash.size == 0:
                break
            fresh = rng.normal(size=(clash.size, dim))
            directions[clash] = fresh / np.linalg.norm(fresh, axis=1, keepdims=True)
    directions = np.asarray(directions, np.float64)
    if directions.shape != (n, dim):
        raise InputError(f"directions must have shape {(n, dim)}, got {directions.shape}")
    e = np.moveaxis(directions[labels], -1, 0)
    e = e + rng.normal(scale=noise, size=e.shape)
    e /= np.linalg.norm(e, axis=0, keepdims=True)
    return e.astype(np.float32)
