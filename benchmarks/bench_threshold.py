"""Can the foreground threshold be chosen per movie? Fixed values, a model-only rule, curated frames.

Run::

    .venv/bin/python benchmarks/bench_threshold.py [--data ../shared/data] [--model default]
        [--frames 6] [--dsb 12]

For each dev set (the DSB validation images, fluorescence and non-fluorescence, 12 each by
default; Fluo-N2DH-SIM+ 02 and Fluo-C2DL-MSC 02, ``--frames`` evenly spaced frames whose SEG
annotation is complete; GOWT1 annotates a few nuclei per frame, so its foreground cannot be
scored), each image or frame is embedded as ``segment`` embeds it (size plan, 3 warm-up frames)
and grouped at the model's scale with the default parameters. Printed, side by side:

1. foreground IoU against the annotation at each threshold (how far the best threshold moves
   between sets);
2. a rule from the model's output alone: the threshold whose level line runs where the
   foreground probability changes fastest (mean gradient magnitude along the contour), against
   the best one;
3. the threshold taken from one curated frame (best foreground IoU on it, as Auto-tune does),
   leave-one-out: every frame in turn is the curated one and the others are scored (SEG and F1
   at IoU 0.5), against fixed 0.05 (the default) and 0.5.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import tifffile
from scipy import ndimage as ndi

sys.path.insert(0, str(Path(__file__).parent))

from bench_diameter import dsb_images
from bench_learning_loop import complete_seg_frames
from napari_cosine_embed.core.checkpoint import load_model
from napari_cosine_embed.core.embed import iter_embed
from napari_cosine_embed.core.io.ctc import read_ctc_gt, read_ctc_sequence
from napari_cosine_embed.core.metrics.ctc import seg_score
from napari_cosine_embed.core.metrics.instances import instance_scores
from napari_cosine_embed.core.pipeline import PipelineConfig, group_frame, model_input
from napari_cosine_embed.core.resample import rescale_labels, upsample_outputs
from napari_cosine_embed.core.size_plan import model_space
from napari_cosine_embed.core.training.calibrate import THRESHOLDS, threshold_from_labels

FIXED = (0.05, 0.5)


class Frame:
    """One image or frame as the model saw it, with its annotation."""

    def __init__(self, model, plan: tuple, t: int, truth: np.ndarray) -> None:
        config, size, view = plan
        *_, last = iter_embed(model, view, frames=range(max(0, t - 3), t + 1))
        self.space = model_space(config, size.scale)
        self.emb, self.fg_model = last.embedding, last.foreground
        _, self.fg = upsample_outputs(last.embedding, last.foreground, truth.shape)
        self.truth = truth
        self._labels: dict[float, np.ndarray] = {}

    def labels(self, threshold: float) -> np.ndarray:
        if threshold not in self._labels:
            space = replace(self.space, foreground_threshold=threshold)
            cut = group_frame(self.emb, self.fg_model, space)
            self._labels[threshold] = rescale_labels(cut, self.truth.shape)
        return self._labels[threshold]


def edge_threshold(fg: np.ndarray) -> float:
    """The threshold whose contour has the steepest mean foreground gradient."""
    gradient = ndi.gaussian_gradient_magnitude(fg.astype(np.float32), 1.0)
    scores = []
    for t in THRESHOLDS:
        mask = fg >= t
        contour = mask & ~ndi.binary_erosion(mask)
        scores.append(gradient[contour].mean() if contour.any() else 0.0)
    return THRESHOLDS[int(np.argmax(scores))]


def planned(model, movie) -> tuple:
    """The config, size plan and view ``segment`` would use for ``movie``."""
    return model_input(movie, PipelineConfig().for_model(model), model)


def frames_of(args, model) -> dict[str, list[Frame]]:
    sets: dict[str, list[Frame]] = {}
    for folder in ("dsb2018-fluo", "dsb2018-nonfluo"):
        sets[folder] = [
            Frame(model, planned(model, image[None]), 0, np.asarray(mask))
            for _, image, mask in dsb_images(args.data / folder, True, args.dsb)
        ]
        print(f"<!-- {folder}: {len(sets[folder])} images -->", flush=True)
    for name in ("Fluo-N2DH-SIM+", "Fluo-C2DL-MSC"):
        root = args.data / "ctc" / name
        movie = read_ctc_sequence(root / "02")
        complete = [t for t in complete_seg_frames(read_ctc_gt(root / "02_GT")) if t >= 3]
        pick = np.linspace(0, len(complete) - 1, args.frames).round().astype(int)
        chosen = sorted({complete[i] for i in pick})
        plan = planned(model, movie)
        sets[name] = [
            Frame(model, plan, t, tifffile.imread(root / "02_GT" / "SEG" / f"man_seg{t:03d}.tif"))
            for t in chosen
        ]
        print(f"<!-- {name}: frames {chosen} -->", flush=True)
    return sets


def scores(frames: list[Frame], threshold_of) -> tuple[float, float]:
    """Mean SEG and F1 (IoU 0.5) over leave-one-out rounds; ``threshold_of(k)`` picks."""
    seg, f1 = [], []
    for k in range(len(frames)):
        others = [f for i, f in enumerate(frames) if i != k]
        t = threshold_of(k)
        preds = [f.labels(t) for f in others]
        truths = [f.truth for f in others]
        seg.append(seg_score(dict(enumerate(truths)), dict(enumerate(preds))))
        f1.append(instance_scores(truths, preds)["F1_50"])
    return float(np.mean(seg)), float(np.mean(f1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data", type=Path, default=Path(__file__).parents[1] / ".." / "shared" / "data"
    )
    parser.add_argument("--model", default="default")
    parser.add_argument("--frames", type=int, default=6, help="frames per CTC sequence")
    parser.add_argument("--dsb", type=int, default=12, help="images per DSB set (0: all)")
    args = parser.parse_args()
    model = load_model(args.model, device="cpu")
    sets = frames_of(args, model)

    print("\nForeground IoU against the annotation, per threshold (pooled over the frames)\n")
    print("| set | " + " | ".join(f"{t:g}" for t in THRESHOLDS) + " |")
    print("|---|" + "---:|" * len(THRESHOLDS))
    for name, frames in sets.items():
        ious = threshold_from_labels([f.fg for f in frames], [f.truth for f in frames])["ious"]
        print(f"| {name} | " + " | ".join(f"{v:.3f}" for v in ious.values()) + " |")

    print("\nThreshold picked per frame: best foreground IoU vs the steepest contour\n")
    print("| set | best (median) | steepest contour (median) | agree within one step |")
    print("|---|---:|---:|---:|")
    for name, frames in sets.items():
        best = [threshold_from_labels([f.fg], [f.truth])["threshold"] for f in frames]
        edge = [edge_threshold(f.fg) for f in frames]
        steps = [
            abs(THRESHOLDS.index(b) - THRESHOLDS.index(e)) <= 1
            for b, e in zip(best, edge, strict=True)
        ]
        print(f"| {name} | {np.median(best):g} | {np.median(edge):g} | {np.mean(steps):.0%} |")

    print("\nLeave-one-out: SEG / F1 on the other frames (the curated frame picks the threshold)\n")
    cols = [f"fixed {t:g}" for t in FIXED] + ["from one curated frame"]
    print("| set | " + " | ".join(cols) + " | thresholds picked |")
    print("|---|" + "---:|" * len(cols) + "---|")
    for name, frames in sets.items():
        picked = [threshold_from_labels([f.fg], [f.truth])["threshold"] for f in frames]
        cells = [scores(frames, lambda k, t=t: t) for t in FIXED]
        cells.append(scores(frames, picked.__getitem__))
        row = " | ".join(f"{s:.3f} / {f:.3f}" for s, f in cells)
        print(f"| {name} | {row} | {', '.join(f'{p:g}' for p in picked)} |", flush=True)


if __name__ == "__main__":
    main()
