"""Pixel-seeded masks (click to segment) and seediness."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cosine_embed.core.errors import InputError
from napari_cosine_embed.core.grouping.seeds import seed_mask, seediness


def _embedding(labels, directions, noise=0.0, seed=0):
    emb = np.asarray(directions, float)[labels].transpose(2, 0, 1)
    return emb + noise * np.random.default_rng(seed).normal(size=emb.shape)


@pytest.fixture
def scene():
    """Objects 1 and 2 touch; object 3 has object 1's direction but is not connected to it."""
    labels = np.zeros((12, 20), int)
    labels[2:8, 2:8] = 1
    labels[2:8, 8:12] = 2
    labels[2:8, 15:19] = 3
    directions = [[0, 0, 1], [1, 0, 0], [0.6, 0.8, 0], [1, 0, 0]]  # cos(1, 2) = 0.6
    return labels, _embedding(labels, directions, noise=0.05)


def test_mask_is_the_seed_object_only(scene):
    labels, emb = scene
    mask = seed_mask(emb, (4, 4), threshold=0.8)  # intra ~0.99, inter 0.6
    np.testing.assert_array_equal(mask, labels == 1)
    assert mask.dtype == bool


def test_same_direction_but_disconnected_is_excluded(scene):
    labels, emb = scene
    mask = seed_mask(emb, (3, 16), threshold=0.8)
    np.testing.assert_array_equal(mask, labels == 3)
    assert not mask[labels == 1].any()


def test_low_threshold_merges_neighbours(scene):
    labels, emb = scene
    mask = seed_mask(emb, (4, 4), threshold=0.4)
    np.testing.assert_array_equal(mask, (labels == 1) | (labels == 2))


def test_connectivity():
    emb = np.zeros((2, 3, 3))
    emb[1] = 1
    emb[:, [0, 1], [0, 1]] = [[1], [0]]  # a diagonal pair
    four = seed_mask(emb, (0, 0), threshold=0.9)
    eight = seed_mask(emb, (0, 0), threshold=0.9, connectivity=2)
    assert four.sum() == 1
    assert eight.sum() == 2
    assert eight[1, 1]


def test_any_dtype_and_threshold_one():
    emb = np.zeros((2, 4, 4), np.uint8)
    emb[0] = 3
    assert seed_mask(emb, (0, 0), threshold=1.0).all()
    assert seed_mask(emb.astype(np.float16), (np.int64(1), 2), threshold=0.5).all()


@pytest.mark.parametrize(
    ("seed", "kwargs"),
    [
        ((4, 0), {"threshold": 0.5}),
        ((0, -1), {"threshold": 0.5}),
        ((0,), {"threshold": 0.5}),
        ("ab", {"threshold": 0.5}),
        ((0, 0), {"threshold": 1.5}),
        ((0, 0), {"threshold": 0.5, "connectivity": 3}),
    ],
)
def test_bad_seed_or_options_raise(seed, kwargs):
    with pytest.raises(InputError):
        seed_mask(np.ones((2, 4, 4)), seed, **kwargs)


def test_seed_with_zero_embedding_raises():
    with pytest.raises(InputError, match="zero embedding"):
        seed_mask(np.zeros((2, 4, 4)), (1, 1), threshold=0.5)


def test_bad_embedding_shape_raises():
    with pytest.raises(InputError, match=r"\(D, Y, X\)"):
        seed_mask(np.ones((4, 4)), (1, 1), threshold=0.5)


def test_seediness_high_inside_low_on_boundaries(scene):
    labels, emb = scene
    score = seediness(emb)
    assert score.shape == labels.shape
    assert score.dtype == np.float32
    assert score[4, 4] > 0.95
    assert score[4, 7] < 0.9  # 3 of 8 neighbours in object 2, at cosine 0.6: ~0.85
    assert score[0, 0] > 0.95  # background interior


def test_seediness_foreground_and_radius(scene):
    labels, emb = scene
    fg = labels > 0
    score = seediness(emb, foreground=fg, radius=2)
    assert not score[~fg].any()
    assert score[2, 2] > 0.95  # object corner: background neighbours do not count
    with pytest.raises(InputError):
        seediness(emb, radius=0)
    with pytest.raises(InputError):
        seediness(emb, foreground=fg[:, :3])


def test_isolated_pixel_has_zero_seediness():
    emb = np.ones((2, 3, 3))
    fg = np.zeros((3, 3), bool)
    fg[1, 1] = True
    assert seediness(emb, foreground=fg)[1, 1] == 0
