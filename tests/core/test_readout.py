"""The held-out check of a fine-tune: the same frames, scored with two models."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_cosine_embed._sample_data import synthetic_timelapse_sample
from napari_cosine_embed.core._generators import result_of
from napari_cosine_embed.core.checkpoint import load_model
from napari_cosine_embed.core.training.readout import HeldOutScores, held_out_scores


def test_the_same_model_scores_the_same_and_a_broken_one_scores_worse():
    (image, _, _), (labels, _, _), _ = synthetic_timelapse_sample()
    image, labels = np.asarray(image[:5]), np.asarray(labels[:5])
    base = load_model("default", device="cpu")
    same = result_of(held_out_scores(base, base, image, {4: labels[4]}, [4]))
    assert same.frames == (4,)
    assert same.before == pytest.approx(same.after)
    assert same.before > 0.7
    broken = base.copy()
    for p in broken.network.embedding_heads.parameters():
        p.data.normal_(generator=torch.Generator().manual_seed(0))
    worse = result_of(held_out_scores(base, broken, image, {4: labels[4]}, [4]))
    assert worse.after < worse.before - 0.2
    assert "worse" in worse.describe()


def test_describe_says_better_or_worse():
    assert "better" in HeldOutScores((3,), 0.4, 0.6).describe()
    assert "no change" in HeldOutScores((3,), 0.5, 0.501).describe()
