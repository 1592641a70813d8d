"""Fine-tuning at a size the crops hold, and with frozen leading stacks."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from napari_cosine_embed.core.checkpoint import EmbeddingModel
from napari_cosine_embed.core.models import ModelConfig
from napari_cosine_embed.core.size_plan import model_diameter_range
from napari_cosine_embed.core.synthetic import synthetic_timelapse
from napari_cosine_embed.core.training import TrainConfig, Trainer, from_arrays

TINY = ModelConfig(stacks=2, levels=2, filters=8, embedding_dim=4, input_stride=1)
QUICK = TrainConfig(
    steps=4, batch_size=2, crop=48, clip_length=2, lr=3e-3, warmup=1, device="cpu",
    val_every=0, checkpoint_every=0,
)  # fmt: skip


@pytest.fixture(scope="module")
def big_objects():
    """Nuclei 30-45 px across: more than a 48 px crop / 2.5."""
    movie = synthetic_timelapse(shape=(160, 160), n_frames=3, n_cells=6, radius=(15, 22), seed=4)
    return from_arrays(np.asarray(movie.image), np.asarray(movie.labels), frames=[1, 2])


def _tiny() -> EmbeddingModel:
    return EmbeddingModel.new(TINY, seed=0)


def test_a_fine_tune_on_large_objects_shrinks_them_and_records_the_size(big_objects, tmp_path):
    trainer = Trainer(_tiny(), big_objects, QUICK, base_model=True)
    sizing = trainer.sizing
    assert sizing["scale"] < 1
    assert sizing["curated_diameter"] * sizing["scale"] == pytest.approx(48 / 2.5, rel=1e-2)
    assert trainer.data.sequences[0].image.shape[1] == round(160 * sizing["scale"])
    for _ in trainer.run():
        pass
    model = trainer.best_model
    lo, hi = model_diameter_range(model)
    assert lo < 48 / 2.5 < hi
    assert model.record["object_size"] == sizing
    # a resumed run rescales the same way and accepts its own state
    state = tmp_path / "state.pt"
    first = Trainer(_tiny(), big_objects, QUICK, base_model=True, state_path=state)
    run = first.run()
    next(run)
    run.close()
    second = Trainer(None, big_objects, QUICK, base_model=True, resume_from=state)
    assert second.step == 1
    assert second.sizing == sizing


def test_training_from_scratch_never_rescales(big_objects):
    trainer = Trainer(_tiny(), big_objects, QUICK)
    assert trainer.sizing is None
    assert trainer.data.sequences[0].image.shape[1] == 160


def test_frozen_stacks_stay_fixed_and_the_rest_learns(big_objects):
    base = _tiny()
    trainer = Trainer(base, big_objects, replace(QUICK, frozen_stacks=1), base_model=True)
    for _ in trainer.run():
        pass
    before, after = base.network.state_dict(), trainer.model.network.state_dict()
    for name, value in after.items():
        moved = not np.allclose(value.numpy(), before[name].numpy())
        frozen = name.startswith(("stem.", "hourglasses.0.", "embedding_heads.0."))
        assert moved != frozen, name
    # never the last stack: with more frozen than there are, the last one still learns
    trainer = Trainer(_tiny(), big_objects, replace(QUICK, frozen_stacks=5), base_model=True)
    learning = {n for n, p in trainer.model.network.named_parameters() if p.requires_grad}
    assert learning
    assert all(
        n.startswith(("hourglasses.1.", "embedding_heads.1.", "foreground")) for n in learning
    )


def test_fine_tuning_the_bundled_model_on_a_tiny_dense_scene_lowers_its_loss():
    """The finetune defaults (first stack frozen, 3-frame clips, lr 1e-3), a few steps on a
    crowded scene of small touching nuclei: the loss of the same held batch goes down."""
    import torch

    from napari_cosine_embed.core._generators import result_of
    from napari_cosine_embed.core.checkpoint import load_model
    from napari_cosine_embed.core.synthetic_random import random_config
    from napari_cosine_embed.core.training import FINETUNE_DEFAULTS, TrainingLoss, finetune

    scene = replace(
        random_config(seed=3, shape=(128, 128), n_frames=5),
        n_cells=40, radius=(5.0, 7.0), overlap=0.2, clumps=0.0,
    )  # fmt: skip
    movie = synthetic_timelapse(scene)
    assert min(len(np.unique(f)) - 1 for f in movie.labels) >= 25
    data = from_arrays(movie.image, movie.labels, frames=[2, 4], context=2)
    base = load_model("default", device="cpu")
    config = replace(FINETUNE_DEFAULTS, steps=40, crop=96, device="cpu")
    batch = data.normalised(base.normalisation).sample(
        np.random.default_rng(0), batch_size=4, crop=96, clip_length=3, augment=None
    )
    loss_fn = TrainingLoss(config, base.config)

    def loss_of(model) -> float:
        network = model.network.eval()
        with torch.no_grad():
            output = network.forward_sequence(batch.images, None)
            return float(loss_fn(output, batch.labels, batch.ignore)[0])

    tuned = result_of(finetune(base, data, config))
    before, after = loss_of(base), loss_of(tuned)
    assert after < 0.9 * before, (before, after)
