"""Which weights a fine-tune should hand back: the best-validated step's, or the last step's.

The validation score (:func:`~napari_cosine_embed.core.training.evaluate`) judges the embedding
alone; fine-tuning with the defaults also teaches the foreground. This fine-tunes the bundled
model on frame 20 of the plugin's sample movie with the ``finetune`` defaults, validates on
frame 30 every ``--val-every`` steps, and scores frame 30 with SEG (as the Fine-tune widget's
before/after readout does: calibrated threshold, 3 warm-up frames) for the bundled model, the
best-validated weights and the last step's.

Run: ``cd benchmarks && ../.venv/bin/python bench_finetune_selection.py [--steps 200]``.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from napari_cosine_embed._sample_data import SAMPLE_CONFIG
from napari_cosine_embed.core._generators import result_of
from napari_cosine_embed.core.checkpoint import load_model
from napari_cosine_embed.core.synthetic import synthetic_timelapse
from napari_cosine_embed.core.training import FINETUNE_DEFAULTS, Trainer, evaluate, from_arrays
from napari_cosine_embed.core.training.readout import held_out_scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=FINETUNE_DEFAULTS.steps)
    parser.add_argument("--val-every", type=int, default=20)
    parser.add_argument("--train-frame", type=int, default=20)
    parser.add_argument("--val-frame", type=int, default=30)
    args = parser.parse_args()
    movie = synthetic_timelapse(SAMPLE_CONFIG)
    base = load_model("default", device="cpu")
    train = from_arrays(movie.image, movie.labels, [args.train_frame])
    val = from_arrays(movie.image, movie.labels, [args.val_frame])
    truth = {args.val_frame: movie.labels[args.val_frame]}
    config = replace(FINETUNE_DEFAULTS, steps=args.steps, val_every=args.val_every, keep="best")
    trainer = Trainer(base, train, config, val_data=val, base_model=True)
    before = evaluate(base, val, neighbour_radius=config.neighbour_radius)["score"]
    print(f"bundled model: validation score {before:.3f}")
    for info in trainer.run():
        if info.get("val"):
            print(f"step {info['step']:4d}: validation score {info['val']['score']:.3f}")
    best = trainer.best_model
    trainer.config = replace(config, keep="last")  # the same run, the other choice
    picks = {"best-validated": best, "last step": trainer.result_model}
    for name, model in picks.items():
        for _ in trainer.iter_calibrate(model):
            pass
        readout = result_of(held_out_scores(base, model, movie.image, truth, [args.val_frame]))
        print(f"{name} (step {model.record['steps']}): {readout.describe()}", flush=True)


if __name__ == "__main__":
    main()
