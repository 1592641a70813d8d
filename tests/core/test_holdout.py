"""The band of each curated frame kept out of fine-tuning, and the calibration made on it."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from napari_cosine_embed.core.checkpoint import EmbeddingModel
from napari_cosine_embed.core.models import ModelConfig
from napari_cosine_embed.core.synthetic import synthetic_image
from napari_cosine_embed.core.training import FINETUNE_DEFAULTS, TrainConfig, Trainer, from_arrays
from napari_cosine_embed.core.training.holdout import hold_out_bands

TINY = ModelConfig(stacks=1, levels=2, filters=8, embedding_dim=4, input_stride=1)
QUICK = TrainConfig(
    steps=2, batch_size=1, crop=32, clip_length=1, warmup=0, device="cpu", val_every=0,
    checkpoint_every=0, calibration_holdout=0.2,
)  # fmt: skip


@pytest.fixture(scope="module")
def images() -> tuple[np.ndarray, np.ndarray]:
    pairs = [
        synthetic_image(shape=(96, 128), n_cells=12, radius=(6.0, 9.0), seed=s) for s in (3, 4)
    ]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def test_bands_split_each_frame_into_training_and_held_out_pixels(images):
    image, labels = images
    data = from_arrays(image, labels, name="two")
    train, held = hold_out_bands(data, 0.2)
    assert len(held) == len(train) == 2
    for tr, he in zip(train.sequences, held.sequences, strict=True):
        for t in np.flatnonzero(he.labelled):
            scored = ~he.ignore[t]
            # the foreground loss learns every pixel but the held-out ones; the embedding
            # loss learns them all
            assert np.array_equal(scored, tr.holdout[t])
            assert tr.ignore is None or not tr.ignore[t].any()
            # at least the band's share, at most twice it (the objects it touches come along)
            assert 0.2 <= scored.mean() <= 0.4 + 1e-9
            # a band across the longer side (X here): it spans every row
            assert scored.any(axis=1).all()
            frame = tr.labels[t]
            inside = set(np.unique(frame[scored & (frame > 0)]))
            assert inside  # it holds labelled foreground to score
            outside = set(np.unique(frame[~scored & (frame > 0)]))
            assert not inside & outside  # objects are held out whole
    # the frames and labels are shared, not copied
    assert train.sequences[0].image is data.sequences[0].image
    assert held.sequences[0].labels is data.sequences[0].labels


def test_bands_respect_pixels_already_unannotated(images):
    image, labels = images
    ignore = np.zeros(labels.shape, bool)
    ignore[:, :, :40] = True  # the user annotated the right part only
    data = from_arrays(image, labels, ignore=ignore, name="sparse")
    train, held = hold_out_bands(data, 0.2)
    for tr, he in zip(train.sequences, held.sequences, strict=True):
        for t in np.flatnonzero(he.labelled):
            assert not (~he.ignore[t] & ignore[t]).any()  # never scored where unannotated
            assert np.array_equal(tr.ignore[t], ignore[t])  # and still not trained on


def test_no_band_where_the_frames_are_too_small_or_empty(images):
    image, labels = images
    assert hold_out_bands(from_arrays(image[:, :20, :30], labels[:, :20, :30]), 0.2) is None
    # labelled frames with nothing but background (annotated as empty)
    empty = from_arrays(image, np.zeros_like(labels), frames=[0, 1])
    assert hold_out_bands(empty, 0.2) is None
    with pytest.raises(ValueError, match="share"):
        hold_out_bands(from_arrays(image, labels), 0.8)


def test_a_finetune_calibrates_on_the_bands_it_did_not_train_on(images):
    image, labels = images
    base = EmbeddingModel.new(TINY, seed=0)
    data = from_arrays(image, labels, name="two")
    trainer = Trainer(base, data, QUICK, base_model=True)
    # the foreground loss never sees the held-out pixels
    assert all(s.holdout is not None and s.holdout.any() for s in trainer.data.sequences)
    for _ in trainer.run():
        pass
    model = trainer.best_model
    for _ in trainer.iter_calibrate(model):
        pass
    found = model.record["foreground_calibration"]
    assert found["scored_on"] == "held-out bands of the training frames"
    assert found["frames"] == 2
    assert 0 < found["pixels"] < (labels > 0).sum()  # only the bands' foreground is scored
    assert model.record["train_config"]["calibration_holdout"] == 0.2

    # with validation frames, those are scored, and nothing of the curated frames is held out
    trainer = Trainer(base, data, QUICK, base_model=True, val_data=data)
    assert all(s.holdout is None for s in trainer.data.sequences)
    # and a share of 0 trains on every curated pixel and calibrates on them
    trainer = Trainer(base, data, replace(QUICK, calibration_holdout=0.0), base_model=True)
    assert all(s.holdout is None for s in trainer.data.sequences)


def test_the_finetune_defaults_hold_out_a_fifth():
    assert FINETUNE_DEFAULTS.calibration_holdout == 0.2
    with pytest.raises(ValueError, match="calibration_holdout"):
        replace(FINETUNE_DEFAULTS, calibration_holdout=0.7)


def test_the_foreground_loss_skips_the_band_and_the_embedding_loss_learns_it(images):
    import torch
    import torch.nn.functional as F

    from napari_cosine_embed.core.normalise import Normalisation
    from napari_cosine_embed.core.training import TrainingLoss

    image, labels = images
    train, _ = hold_out_bands(from_arrays(image, labels, name="two"), 0.2)
    batch = train.normalised(Normalisation()).sample(
        np.random.default_rng(0), batch_size=2, crop=128, augment=None
    )
    assert batch.foreground_ignore is not None
    band = batch.foreground_ignore & ~batch.ignore
    assert band.any()
    assert (~batch.foreground_ignore).any()
    assert not (batch.ignore & ~batch.foreground_ignore).any()  # what every loss skips, it skips

    model = EmbeddingModel.new(TINY, seed=0)
    loss_fn = TrainingLoss(QUICK, model.config)
    with torch.no_grad():
        output = model.network.forward_sequence(batch.images)
        _, parts = loss_fn(output, batch.labels, batch.ignore, batch.foreground_ignore)
        _, without = loss_fn(output, batch.labels, batch.ignore)
        logits = output.foreground.flatten(0, 2)
        target = (batch.labels.flatten(0, 1) > 0).float()
        kept = ~batch.foreground_ignore.flatten(0, 1)
        bce = F.binary_cross_entropy_with_logits(logits[kept], target[kept])
    assert parts["foreground_loss"] == pytest.approx(float(bce), rel=1e-5)
    assert parts["foreground_loss"] != pytest.approx(without["foreground_loss"], rel=1e-3)
    # the band's objects still teach the embedding
    assert parts["embedding_loss"] == without["embedding_loss"]
