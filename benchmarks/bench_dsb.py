"""Instance segmentation of single images: AP50 and F1 on the DSB 2018 images, beside a baseline.

Run::

    .venv/bin/python benchmarks/bench_dsb.py [--data ../shared/data] [--model default]
        [--limit N] [--set key=value ...] [--compare key=value ...]

Each image is segmented as ``segment --no-track`` segments it
(:func:`~napari_cosine_embed.core.pipeline.run_pipeline`, ``track=False``, the default
parameters with the ``--set`` overrides), and scored against its masks with
:func:`~napari_cosine_embed.core.metrics.instance_scores` (AP50: TP / (TP + FP + FN) at IoU 0.5
over all images pooled; F1 at IoU 0.5). Two sets, reported separately:

* ``dsb2018-fluo``, the held-out side of the split (never trained on);
* ``dsb2018-nonfluo``: dark nuclei on bright backgrounds (brightfield, stained tissue), its
  held-out side (``--all-nonfluo``: all 102, for a model that trained on none of them).

``--compare key=value`` adds a row per setting (e.g. ``foreground_threshold=0.5``); the
baseline is Otsu on the image (inverted where the background is brighter than the objects,
decided by the image's median against its mean), distance-transform watershed.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from bench_ctc import baseline_frame, config_overrides
from bench_diameter import dsb_images
from napari_cosine_embed.core._generators import result_of
from napari_cosine_embed.core.checkpoint import load_model
from napari_cosine_embed.core.metrics import instance_scores
from napari_cosine_embed.core.pipeline import PipelineConfig, run_pipeline


def segment(images, model, config: PipelineConfig) -> tuple[list[np.ndarray], float]:
    tic = time.perf_counter()
    out = [result_of(run_pipeline(image, config, model=model)).labels for image in images]
    return out, time.perf_counter() - tic


def baseline(images) -> tuple[list[np.ndarray], float]:
    tic = time.perf_counter()
    out = []
    for image in images:
        # bright background (brightfield): make the objects bright
        flipped = image.max() - image if np.median(image) > image.mean() else image
        out.append(baseline_frame(flipped, log=False))
    return out, time.perf_counter() - tic


def row(label: str, truth, predicted, seconds: float) -> str:
    s = instance_scores(truth, predicted)
    return (
        f"| {label} | {s['AP50']:.3f} | {s['F1_50']:.3f} | {s['precision_50']:.3f} | "
        f"{s['recall_50']:.3f} | {seconds / len(truth):.2f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data", type=Path, default=Path(__file__).parents[1] / ".." / "shared" / "data"
    )
    parser.add_argument("--model", default="default")
    parser.add_argument("--limit", type=int, default=0, help="images per set (0: all)")
    parser.add_argument("--set", nargs="*", default=[], help="PipelineConfig overrides k=v")
    parser.add_argument("--compare", nargs="*", default=[], help="one more row per k=v")
    parser.add_argument(
        "--all-nonfluo",
        action="store_true",
        help="every dsb2018-nonfluo image, not only its held-out side (for models that never "
        "trained on any)",
    )
    args = parser.parse_args()

    model = load_model(args.model, device="cpu")
    config = PipelineConfig(device="cpu", track=False, **config_overrides(args.set))
    print(f"model {model.name}; parameters {args.set or 'default'}\n")
    print("| set / method | AP50 | F1 | precision | recall | s/image |")
    print("|---|---:|---:|---:|---:|---:|")
    for folder, held in (("dsb2018-fluo", True), ("dsb2018-nonfluo", not args.all_nonfluo)):
        path = args.data / folder
        if not path.is_dir():
            continue
        pairs = [(image, mask) for _, image, mask in dsb_images(path, held, args.limit)]
        images, truth = [p[0] for p in pairs], [p[1] for p in pairs]
        name = f"{folder} ({'held-out' if held else 'all'}, {len(images)} images)"
        labels, seconds = segment(images, model, config)
        print(row(f"{name}, ours", truth, labels, seconds), flush=True)
        for item in args.compare:
            variant = replace(config, **config_overrides([item]))
            labels, seconds = segment(images, model, variant)
            print(row(f"{name}, ours, {item}", truth, labels, seconds), flush=True)
        labels, seconds = baseline(images)
        print(row(f"{name}, Otsu + watershed", truth, labels, seconds), flush=True)


if __name__ == "__main__":
    main()
