"""Training: data and augmentation, overfitting, stopping, reproducibility, resuming, recurrence.

Every test uses a tiny network on tiny crops so that the file runs in well under a minute on
two CPU cores.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pytest
import torch

from napari_cosine_embed.core.checkpoint import EmbeddingModel
from napari_cosine_embed.core.errors import InputError
from napari_cosine_embed.core.models import ModelConfig
from napari_cosine_embed.core.normalise import Normalisation
from napari_cosine_embed.core.synthetic import synthetic_image
from napari_cosine_embed.core.training import (
    AugmentConfig,
    TrainConfig,
    Trainer,
    TrainingLoss,
    augment_clip,
    crop_clip,
    dsb_held_out,
    evaluate,
    finetune,
    from_arrays,
    from_dsb,
    from_pairs,
    from_synthetic,
    train,
    train_step,
    zoom_window,
)

TINY = ModelConfig(stacks=1, levels=2, filters=8, embedding_dim=4, input_stride=1)
NO_AUGMENT = AugmentConfig(
    flips=False, rotations=False, scale=(1, 1), gamma=(1, 1), offset=0.0, noise=0.0
)
QUICK = TrainConfig(
    steps=6, batch_size=2, crop=32, clip_length=1, lr=3e-3, warmup=2, device="cpu",
    val_every=2, checkpoint_every=0,
)  # fmt: skip


@pytest.fixture(scope="module")
def two_images() -> tuple[np.ndarray, np.ndarray]:
    pairs = [synthetic_image(shape=(64, 64), n_cells=6, radius=(7.0, 10.0), seed=s) for s in (1, 2)]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


@pytest.fixture(scope="module")
def movies():
    return from_synthetic(2, seed=0, shape=(48, 48), n_frames=4, n_cells=4)


def _tiny(config: ModelConfig = TINY) -> EmbeddingModel:
    return EmbeddingModel.new(config, seed=0)


def _returned(generator):
    """What a generator returns (its StopIteration value), after running it to the end."""
    while True:
        try:
            next(generator)
        except StopIteration as stop:
            return stop.value


def _weights(model: EmbeddingModel) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.network.state_dict().items()}


def _same_weights(a: EmbeddingModel, b: EmbeddingModel) -> bool:
    wa, wb = _weights(a), _weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


# --- data and augmentation ---------------------------------------------------------------


def test_augment_is_seeded_and_keeps_images_and_labels_aligned():
    labels = np.random.default_rng(0).integers(0, 5, (3, 16, 16))
    image, ignore = labels.astype(np.float32), labels == 4
    config = replace(NO_AUGMENT, flips=True, rotations=True)
    for seed in range(6):
        out = augment_clip(image, labels, ignore, config, np.random.default_rng(seed))
        assert np.array_equal(out[0], out[1])
        assert np.array_equal(out[2], out[1] == 4)
    a = augment_clip(image, labels, ignore, AugmentConfig(), np.random.default_rng(1))
    b = augment_clip(image, labels, ignore, AugmentConfig(), np.random.default_rng(1))
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_small_images_are_padded_with_ignored_pixels():
    image = np.ones((1, 10, 20), np.float32)
    labels = np.ones((1, 10, 20), int)
    crop = crop_clip(image, labels, np.zeros_like(image, bool), 32, np.random.default_rng(0))
    assert all(a.shape == (1, 32, 32) for a in crop)
    assert crop[2].sum() == 32 * 32 - 200
    assert crop[0][crop[2]].max() == 0
    assert crop[1][~crop[2]].min() == 1


def test_foreground_crops_hold_a_nucleus():
    """One small nucleus in a large frame: uniform crops mostly miss it, focused ones never."""
    labels = np.zeros((2, 300, 300), np.int64)
    labels[1, 250:258, 20:28] = 1
    labels[0, 100:108, 100:108] = 2  # in the unlabelled context frame: never a target
    images = np.random.default_rng(0).random((2, 300, 300))
    data = from_arrays(images, labels, frames=[1], context=1).normalised(Normalisation())

    def hits(share):
        batch = data.sample(
            np.random.default_rng(3), batch_size=40, crop=32, clip_length=2,
            foreground_crops=share, augment=None,
        )  # fmt: skip
        return [bool(((clip > 0) & ~ignore).any()) for clip, ignore in
                zip(batch.labels, batch.ignore, strict=True)]  # fmt: skip

    assert sum(hits(0.0)) < 10
    assert all(hits(1.0))
    assert 10 < sum(hits(0.5)) < 40
    small = np.zeros((1, 20, 50), np.float32)
    small[0, 5, 40] = 7.0  # a crop of 32 around it, the frame padded to 32 rows first
    for seed in range(5):
        padded = crop_clip(
            small, small.astype(int), np.zeros(small.shape, bool), 32,
            np.random.default_rng(seed), around=(5, 40),
        )  # fmt: skip
        assert padded[0].shape == (1, 32, 32)
        assert padded[0].max() == 7.0
    with pytest.raises(ValueError, match="foreground_crops"):
        TrainConfig(foreground_crops=1.5)


def test_from_arrays_trains_only_on_curated_frames():
    labels = np.zeros((10, 24, 24), np.int64)
    labels[:, 4:12, 4:12] = 1  # every frame has labels...
    images = np.random.default_rng(0).random((10, 24, 24))
    data = from_arrays(images, labels, frames=[5, 9], context=2, name="layer")
    # ...but only frames 5 and 9 are curated; 3, 4, 7, 8 come along as context
    assert len(data) == 2
    assert [s.labelled.tolist() for s in data.sequences] == [[False, False, True]] * 2
    data = data.normalised(Normalisation())
    batch = data.sample(np.random.default_rng(0), batch_size=4, crop=16, clip_length=3)
    assert batch.images.shape == (4, 3, 1, 16, 16)
    for clip_ignore in batch.ignore:  # one curated frame per clip, the others fully ignored
        assert sorted(bool(frame.all()) for frame in clip_ignore) == [False, True, True]
    sparse = from_arrays(images, {2: labels[2]}, name="dict")
    assert len(sparse) == 1
    assert sparse.describe()["sources"][0]["frames"] == [2]
    with pytest.raises(InputError, match="no labelled frame"):
        from_arrays(images, np.zeros_like(labels))
    with pytest.raises(InputError, match="frames must lie"):
        from_arrays(images, labels, frames=[10])


def test_clips_end_at_the_curated_frame_and_start_fresh_at_the_movie_start(movies):
    """A curated frame is the last of its clip, after the frames before it (as at inference);
    frame 0, with no history, comes after ignored padding and a state restarted from zeros."""
    images = np.zeros((10, 16, 16), np.float32)
    images[np.arange(10), 0, np.arange(10)] = 1.0  # frame t is bright at (0, t)
    labels = np.zeros((10, 16, 16), np.int64)
    labels[:, 4:12, 4:12] = 1
    for frames, expected in (
        ([0, 6], {0: ([0, 0, 0], 2), 6: ([4, 5, 6], 0)}),
        ([1], {1: ([0, 1], 0)}),  # a sequence of 2 frames: clips of 2
    ):
        data = from_arrays(images, labels, frames=frames, name="movie")
        data = data.normalised(Normalisation())
        seen = {}
        for seed in range(20):
            batch = data.sample(np.random.default_rng(seed), batch_size=2, crop=16,
                                clip_length=3, augment=None)  # fmt: skip
            for clip, ignore, fresh in zip(batch.images, batch.ignore, batch.fresh, strict=True):
                frame_ids = clip[:, 0, 0].argmax(-1).tolist()
                assert not ignore[-1].all()  # the last frame is curated, no other
                assert ignore[:-1].all()
                seen[frame_ids[-1]] = (frame_ids, int(fresh))
        assert seen == expected
    # a train step runs the padding and warm-up without a graph, then the curated frame
    data = from_arrays(images, labels, frames=[0, 6]).normalised(Normalisation())
    batch = data.sample(np.random.default_rng(0), batch_size=4, crop=16, clip_length=3)
    model = _tiny(replace(TINY, first_recurrent_level=0))
    seen_calls, forward = [], model.network.forward_sequence

    def spy(frames, state=None, **options):
        seen_calls.append((frames.shape[1], torch.is_grad_enabled(), options))
        return forward(frames, state, **options)

    model.network.forward_sequence = spy
    optimiser = torch.optim.AdamW(model.network.parameters(), lr=1e-3)
    info = train_step(model, batch, TrainingLoss(QUICK, model.config), optimiser)
    assert np.isfinite(info["loss"])
    assert [(n, grad) for n, grad, _ in seen_calls] == [(2, False), (1, True)]
    assert seen_calls[0][2]["state_only"]
    assert torch.equal(seen_calls[0][2]["fresh"], batch.fresh)
    # trailing frames no loss looks at are not run at all
    seen_calls.clear()
    trailing = batch._replace(
        images=torch.cat([batch.images, batch.images[:, -1:]], 1),
        labels=torch.cat([batch.labels, batch.labels[:, -1:]], 1),
        ignore=torch.cat([batch.ignore, torch.ones_like(batch.ignore[:, -1:])], 1),
    )
    train_step(model, trailing, TrainingLoss(QUICK, model.config), optimiser)
    assert [(n, grad) for n, grad, _ in seen_calls] == [(2, False), (1, True)]


def test_batches_come_from_one_pool_with_clips_as_long_as_their_sequences_allow(movies, two_images):
    data = (movies + from_pairs(*two_images)).normalised(Normalisation())
    lengths = {
        data.sample(np.random.default_rng(s), batch_size=2, crop=32, clip_length=3).images.shape[1]
        for s in range(12)
    }
    assert lengths == {1, 3}  # 2D images give single frames, movies clips of 3


def test_dsb_split_is_fixed_and_held_out_images_never_train(dsb):
    ids = sorted(p.stem for p in (dsb / "images").glob("*.tif"))
    held_out = [i for i in ids if dsb_held_out(i)]
    assert 0.15 < len(held_out) / len(ids) < 0.25
    with pytest.raises(InputError, match="never used for training"):
        from_dsb(dsb, held_out[:1])
    train_ids = [i for i in ids if not dsb_held_out(i)][:2]
    data = from_dsb(dsb, train_ids)
    assert len(data) == 2
    assert data.describe()["sources"][0]["split"] == "train"
    assert len(from_dsb(dsb, split="held_out", limit=2)) == 2


def test_nonfluo_images_have_their_own_held_out_side(dsb_nonfluo):
    ids = sorted(p.stem for p in (dsb_nonfluo / "images").glob("*.tif"))
    held_out = [i for i in ids if dsb_held_out(i, "nonfluo")]
    assert 0.15 < len(held_out) / len(ids) < 0.3
    assert not any(dsb_held_out(i) for i in ids)  # why it needs its own rule
    with pytest.raises(InputError, match="never used for training"):
        from_dsb(dsb_nonfluo, held_out[:1])
    data = from_dsb(dsb_nonfluo, split="held_out", limit=2)
    assert data.describe()["sources"][0]["kind"] == "dsb2018-nonfluo"
    assert data.sequences[0].name in held_out


def test_zoom_shows_objects_larger_or_smaller_and_keeps_them_aligned():
    labels = np.zeros((2, 96, 96), np.int64)
    labels[:, 40:56, 40:56] = 1  # a 16 x 16 square in the middle of every frame
    data = from_arrays(labels.astype(np.float32), labels).normalised(Normalisation())
    for zoom, area in ((2.0, 1024), (0.5, 64)):
        config = replace(NO_AUGMENT, zoom=(zoom, zoom))
        batch = data.sample(np.random.default_rng(0), batch_size=6, crop=48, clip_length=2,
                            augment=config, foreground_crops=1.0)  # fmt: skip
        assert batch.images.shape == (6, 2, 1, 48, 48)
        for image, lab in zip(batch.images[:, :, 0].numpy(), batch.labels.numpy(), strict=True):
            whole = lab[0] > 0
            if whole[0].any() or whole[-1].any() or whole[:, 0].any() or whole[:, -1].any():
                continue  # cut by the crop's border
            assert whole.sum() == pytest.approx(area, rel=0.15)
            assert np.array_equal(lab[0], lab[1])
            assert np.abs(image[0] - whole).mean() < 0.05  # the image moved with its labels
    rng = np.random.default_rng(5)
    assert zoom_window(64, AugmentConfig(), rng) == 64  # no zoom: no draw either
    assert rng.random() == np.random.default_rng(5).random()
    assert {zoom_window(64, replace(NO_AUGMENT, zoom=(0.5, 2.0)), rng) for _ in range(50)} <= set(
        range(32, 129)
    )
    with pytest.raises(InputError, match="zoom"):
        AugmentConfig(zoom=(0.01, 2.0))


def test_inversion_turns_bright_objects_dark():
    image = np.zeros((1, 8, 8), np.float32)
    image[0, 2:5, 2:5] = 1.0
    labels, ignore = (image > 0).astype(int), np.zeros(image.shape, bool)
    always = replace(NO_AUGMENT, invert=1.0)
    out = augment_clip(image, labels, ignore, always, np.random.default_rng(0))[0]
    assert np.array_equal(out, 1 - image)
    never = augment_clip(image, labels, ignore, NO_AUGMENT, np.random.default_rng(0))[0]
    assert np.array_equal(never, image)
    with pytest.raises(InputError, match="invert"):
        AugmentConfig(invert=1.5)


# --- the training loop ---------------------------------------------------------------


def test_tiny_model_overfits_two_images(two_images):
    """The loss falls by more than 3x within 60 steps (about 5 s on two idle CPU cores)."""
    config = replace(QUICK, steps=60, crop=64, warmup=5, val_every=0, augment=NO_AUGMENT)
    network = ModelConfig(stacks=1, levels=3, filters=16, embedding_dim=8, input_stride=1,
                          recurrent=False)  # fmt: skip
    started = time.perf_counter()
    losses = [info["loss"] for info in train(_tiny(network), from_pairs(*two_images), config)]
    assert time.perf_counter() - started < 30
    first, last = np.mean(losses[:3]), np.mean(losses[-5:])
    assert last < first / 3, (first, last)


def test_closing_the_generator_stops_and_keeps_the_best_model(two_images):
    data = from_arrays(*two_images)
    trainer = Trainer(_tiny(), data, QUICK, val_data=data)
    run = trainer.run()
    for info in run:
        if info["step"] == 5:
            break
    run.close()
    assert trainer.step == 5
    best = trainer.best_model
    assert best.record["steps"] in (2, 4)
    assert best.record["stopped_early"]
    assert best.record["scores"]["score"] == trainer.best["score"]
    assert not best.network.training
    assert not _same_weights(best, trainer.model) or best.record["steps"] == 5


def test_same_seed_gives_identical_losses_and_weights(movies):
    config = replace(QUICK, steps=4, clip_length=2, val_every=0)
    runs = []
    for _ in range(2):
        trainer = Trainer(_tiny(), movies, config)
        runs.append(([info["loss"] for info in trainer.run()], trainer.model))
    assert runs[0][0] == runs[1][0]
    assert _same_weights(runs[0][1], runs[1][1])
    other = [i["loss"] for i in train(_tiny(), movies, replace(config, seed=1))]
    assert other != runs[0][0]


def test_resume_equals_an_uninterrupted_run(movies, tmp_path):
    config = replace(QUICK, steps=6, clip_length=2, val_every=3)
    whole = Trainer(_tiny(), movies, config, val_data=movies)
    whole_losses = [info["loss"] for info in whole.run()]

    state = tmp_path / "state.pt"
    first = Trainer(_tiny(), movies, config, val_data=movies, state_path=state)
    run = first.run()
    losses = [next(run)["loss"] for _ in range(4)]
    run.close()  # as a GUI Cancel does: the state is saved at the stop
    second = Trainer(None, movies, config, val_data=movies, resume_from=state)
    assert second.step == 4
    losses += [info["loss"] for info in second.run()]
    assert losses == whole_losses
    assert _same_weights(second.model, whole.model)
    assert _same_weights(second.best_model, whole.best_model)
    assert second.best_model.record["resumed_from"] == str(state)
    with pytest.raises(InputError, match="same data"):
        Trainer(None, from_synthetic(1, seed=5, shape=(48, 48), n_frames=4), resume_from=state)


def test_recurrent_clips_carry_state_and_detach_between_segments(movies):
    model = _tiny(replace(TINY, first_recurrent_level=0))
    loss_fn = TrainingLoss(QUICK, model.config)
    optimiser = torch.optim.AdamW(model.network.parameters(), lr=1e-3)
    batch = movies.normalised(Normalisation()).sample(
        np.random.default_rng(0), batch_size=2, crop=32, clip_length=4
    )
    seen, forward = [], model.network.forward_sequence

    def spy(frames, state=None, **options):
        seen.append((frames.shape[1], state))
        return forward(frames, state, **options)

    model.network.forward_sequence = spy
    info = train_step(model, batch, loss_fn, optimiser, bptt=2, grad_clip=1.0)
    assert np.isfinite(info["loss"])
    assert info["skipped"] == 0.0
    assert [n for n, _ in seen] == [2, 2]
    assert seen[0][1] is None  # each clip starts from a zero state
    assert seen[1][1]
    assert not any(h.requires_grad for h in seen[1][1])
    assert all(torch.count_nonzero(h) > 0 for h in seen[1][1])


def test_warm_up_frames_run_without_a_graph_and_leave_the_loss_unchanged(movies):
    """Clips of 3 ignored warm-up frames and a curated one, as fine-tuning draws them."""
    model = _tiny(replace(TINY, first_recurrent_level=0))
    loss_fn = TrainingLoss(QUICK, model.config)
    batch = movies.normalised(Normalisation()).sample(
        np.random.default_rng(1), batch_size=2, crop=32, clip_length=4
    )
    batch.ignore[:, :3] = True
    seen, forward = [], model.network.forward_sequence

    def spy(frames, state=None, **options):
        seen.append((frames.shape[1], torch.is_grad_enabled()))
        return forward(frames, state, **options)

    with torch.no_grad():  # the loss of the whole clip, computed in one piece
        output = forward(batch.images, None, fresh=batch.fresh)
        whole, _ = loss_fn(output, batch.labels, batch.ignore)
    model.network.forward_sequence = spy
    optimiser = torch.optim.AdamW(model.network.parameters(), lr=1e-3)
    info = train_step(model, batch, loss_fn, optimiser, grad_clip=1.0)
    assert seen == [(3, False), (1, True)]
    assert info["loss"] == pytest.approx(float(whole), rel=1e-5)
    assert info["grad_norm"] > 0
    seen.clear()
    batch.ignore[0, 2] = False  # a frame some clip scores: it keeps its graph
    train_step(model, batch, loss_fn, optimiser, grad_clip=1.0)
    assert seen == [(2, False), (2, True)]


def test_finetune_records_its_base_and_leaves_it_unchanged(two_images):
    base = _tiny()
    base.name, base.record = "tiny-base", {"steps": 3, "data": {"summary": "elsewhere"}}
    before = _weights(base)
    config = replace(QUICK, steps=2, val_every=0)
    tuned = _returned(finetune(base, from_arrays(*two_images), config))
    assert tuned.record["base_model"]["name"] == "tiny-base"
    assert tuned.record["base_model"]["data"] == "elsewhere"
    assert tuned.record["steps"] == 2
    assert tuned.record["foreground_calibration"]["scored_on"] == "training frames"
    assert "foreground_calibration" not in base.record
    assert all(torch.equal(before[k], v) for k, v in base.network.state_dict().items())
    assert not _same_weights(tuned, base)


def test_evaluate_scores_whole_frames_with_state_carried(movies):
    scores = evaluate(_tiny(), movies)
    assert scores["n_frames"] == 8
    assert {"score", "neighbour_separation", "within_cosine", "foreground_iou"} <= set(scores)


def test_train_config_round_trips_through_plain_data():
    config = replace(QUICK, augment=NO_AUGMENT)
    assert TrainConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown"):
        TrainConfig.from_dict({"stepz": 3})


def test_stack_loss_last_looks_at_the_last_stack_only(movies):
    """With ``stack_loss="last"`` the first stack learns from the last one's loss alone."""
    model = _tiny(replace(TINY, stacks=2))
    batch = movies.normalised(Normalisation()).sample(
        np.random.default_rng(2), batch_size=2, crop=32, clip_length=1
    )
    images, labels, ignore = (torch.as_tensor(np.asarray(x)) for x in batch[:3])
    output = model.network.forward_sequence(images)
    scrambled = output._replace(
        embeddings=[torch.randn_like(output.embeddings[0]), output.embeddings[1]]
    )
    every = TrainingLoss(QUICK, model.config)
    last = TrainingLoss(replace(QUICK, stack_loss="last"), model.config)
    assert last(output, labels, ignore)[0] == last(scrambled, labels, ignore)[0]
    assert every(output, labels, ignore)[0] != every(scrambled, labels, ignore)[0]
    # and the first stack still gets a gradient, through the last one
    last(output, labels, ignore)[0].backward()
    assert model.network.hourglasses[0].down[0][0].weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="stack_loss"):
        replace(QUICK, stack_loss="middle")


def test_a_fine_tune_keeps_its_last_step_and_training_its_best(two_images):
    data = from_arrays(*two_images)
    config = replace(QUICK, steps=4, val_every=1)
    for keep, expected in (("best", None), ("last", 4)):
        trainer = Trainer(_tiny(), data, replace(config, keep=keep), val_data=data)
        scores = [info["val"]["score"] for info in trainer.run()]
        kept = trainer.result_model
        if keep == "best":
            assert kept.record["steps"] == trainer.best["step"]
            assert kept.record["scores"]["score"] == max(scores)
        else:
            assert kept.record["steps"] == expected
            assert _same_weights(kept, trainer.model)
            assert kept.record["scores"]["score"] == scores[-1]
    from napari_cosine_embed.core.training import FINETUNE_DEFAULTS

    assert FINETUNE_DEFAULTS.keep == "last"
    assert TrainConfig().keep == "best"
    with pytest.raises(InputError, match="keep"):
        TrainConfig(keep="first")
    # a training-state file written before the field existed still reads
    values = TrainConfig().to_dict()
    del values["keep"]
    assert TrainConfig.from_dict(values).keep == "best"
