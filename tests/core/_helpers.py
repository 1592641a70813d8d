"""Test data shared by several core test modules (plain functions, usable in parametrize)."""

from __future__ import annotations

import numpy as np


def division_movie() -> tuple[np.ndarray, np.ndarray]:
    """Six 16x16 frames: cell 1 divides into 2 and 3 at frame 3; cell 4 enters at frame 1."""
    movie = np.zeros((6, 16, 16), dtype=np.uint16)
    movie[0:3, 2:6, 2:6] = 1
    movie[3:6, 1:3, 2:6] = 2
    movie[3:6, 6:8, 2:6] = 3
    movie[1:6, 10:14, 10:12] = 4
    lineage = np.array([[1, 0, 2, 0], [2, 3, 5, 1], [3, 3, 5, 1], [4, 1, 5, 0]])
    return movie, lineage


def embed_labels(labels, *, dim=16, noise=0.08, max_cos=0.3, seed=0):
    """Unit embeddings: one random direction per label (0 included), all pairs at cosine
    < max_cos, plus Gaussian noise, renormalised."""
    rng = np.random.default_rng(seed)
    ids, inverse = np.unique(labels, return_inverse=True)
    dirs = []
    while len(dirs) < ids.size:
        v = rng.normal(size=dim)
        v /= np.linalg.norm(v)
        if all(v @ d < max_cos for d in dirs):
            dirs.append(v)
    emb = np.asarray(dirs)[inverse.reshape(labels.shape)].transpose(2, 0, 1)
    emb = emb + noise * rng.normal(size=emb.shape)
    return (emb / np.linalg.norm(emb, axis=0)).astype(np.float32)
