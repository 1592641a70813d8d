"""The validation score, against a brute-force loop over instances and pixel pairs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from napari_cosine_embed.core.embedding_quality import (
    aggregate_quality,
    embedding_quality,
    neighbour_pairs,
)


def _layout(seed: int, shape=(40, 48), n=9) -> np.ndarray:
    """Random touching and separate rectangles, later ones painted over earlier ones."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, np.int32)
    for label in range(1, n + 1):
        y, x = rng.integers(0, shape[0] - 6), rng.integers(0, shape[1] - 6)
        labels[y : y + rng.integers(4, 12), x : x + rng.integers(4, 12)] = label * 3  # gaps in ids
    return labels


def _brute_force(emb: np.ndarray, labels: np.ndarray, radius: float, threshold: float = 0.5):
    ids = [i for i in np.unique(labels) if i > 0]
    unit = emb / np.linalg.norm(emb, axis=0, keepdims=True)
    means, within = {}, []
    for i in ids:
        vectors = unit[:, labels == i].T
        mean = vectors.sum(0) / np.linalg.norm(vectors.sum(0))
        means[i] = mean
        within.append(np.mean([v @ mean for v in vectors]))
    pairs = separated = 0
    for a_index, a in enumerate(ids):
        for b in ids[a_index + 1 :]:
            distance = cdist(np.argwhere(labels == a), np.argwhere(labels == b)).min()
            if distance <= max(radius, 1.0):
                pairs += 1
                separated += means[a] @ means[b] < threshold
    return pairs, separated, float(np.mean(within)) if ids else math.nan


@pytest.mark.parametrize(("seed", "radius"), [(0, 1.0), (1, 3.0), (2, 5.0), (3, 2.5)])
def test_matches_brute_force(seed, radius):
    labels = _layout(seed)
    rng = np.random.default_rng(seed)
    # instance directions plus pixel noise: some neighbours separated, some not
    directions = rng.normal(size=(labels.max() + 1, 3))
    emb = directions[labels].transpose(2, 0, 1) + 0.6 * rng.normal(size=(3, *labels.shape))
    result = embedding_quality(emb, labels, neighbour_radius=radius)
    pairs, separated, within = _brute_force(emb, labels, radius)
    assert result["n_pairs"] == pairs > 0
    assert result["n_separated"] == separated
    assert result["neighbour_separation"] == pytest.approx(separated / pairs)
    assert result["within_cosine"] == pytest.approx(within)
    assert result["n_instances"] == len(np.unique(labels)) - 1
    assert result["score"] == pytest.approx(within * separated / pairs)


def test_perfect_and_collapsed_embeddings():
    labels = _layout(4)
    ids = np.unique(labels)
    one_hot = np.zeros((len(ids), *labels.shape))
    for k, i in enumerate(ids):
        one_hot[k][labels == i] = 1.0
    perfect = embedding_quality(one_hot, labels)
    assert perfect["neighbour_separation"] == 1.0
    assert perfect["within_cosine"] == pytest.approx(1.0)
    assert perfect["score"] == pytest.approx(1.0)
    collapsed = embedding_quality(np.ones((4, *labels.shape)), labels)
    assert collapsed["neighbour_separation"] == 0.0
    assert collapsed["within_cosine"] == pytest.approx(1.0)
    assert collapsed["score"] == 0.0


def test_torch_input_and_no_neighbours():
    labels = np.zeros((20, 20), int)
    labels[2:6, 2:6], labels[12:16, 12:16] = 1, 2  # about 8.5 px apart
    emb = torch.randn(5, 20, 20, generator=torch.Generator().manual_seed(0))
    result = embedding_quality(emb, labels, neighbour_radius=3)
    assert result["n_pairs"] == 0
    assert math.isnan(result["neighbour_separation"])
    assert result["score"] == pytest.approx(result["within_cosine"])
    assert embedding_quality(emb.numpy(), labels, neighbour_radius=3) == result
    assert neighbour_pairs(labels, neighbour_radius=10).tolist() == [[1, 2]]
    empty = embedding_quality(emb, np.zeros((20, 20), int))
    assert empty["n_instances"] == 0
    assert math.isnan(empty["score"])


def test_aggregate_pools_pairs_and_instances():
    results = []
    for seed in range(3):
        labels = _layout(seed)
        emb = np.random.default_rng(seed).normal(size=(4, *labels.shape))
        results.append(embedding_quality(emb, labels))
    pooled = aggregate_quality(results)
    assert pooled["n_pairs"] == sum(r["n_pairs"] for r in results)
    assert pooled["neighbour_separation"] == pytest.approx(
        sum(r["n_separated"] for r in results) / pooled["n_pairs"]
    )
    weights = [r["n_instances"] for r in results]
    assert pooled["within_cosine"] == pytest.approx(
        np.average([r["within_cosine"] for r in results], weights=weights)
    )


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="expected"):
        embedding_quality(np.zeros((3, 4, 4)), np.zeros((5, 4), int))
