"""Where segmentation loses on annotated CTC frames: matched, merged, under-covered, split, missed.

Run::

    .venv/bin/python benchmarks/ctc_errors.py [--model default] [--sequence Fluo-N2DH-SIM+]
        [--frames 5] [--set key=value ...]

For a few annotated frames (evenly spaced, each embedded after 3 warm-up frames, as the bounded
state of ``segment`` does at the least), every annotated nucleus is put in one class by the
predicted instance that covers most of it: *matched* (IoU > 0.5, as SEG counts), *merged*
(that instance lies less than 60 % inside the nucleus: it took in a neighbour), *split* (two or
more instances each cover over 15 % of it), *under-covered* (one instance, too small) or
*missed* (no instance). Also prints the share of annotated pixels the foreground covers.

Two diagnoses of what limits SEG: *SEG with the annotated foreground* groups the network's own
embedding inside the annotated foreground mask (what SEG would be with a perfect foreground
head; meaningful only where every nucleus of a frame is annotated, as in SIM+), and the
*intensity table* compares, on the raw and on the Gaussian-smoothed image,
the annotated pixels the foreground misses with the background just outside the annotation
(a ring 3-8 px out) and far from any nucleus (over 30 px out): where the missed pixels are no
brighter than the ring, no threshold of the image can recover them.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np
import tifffile
from scipy import ndimage as ndi

from bench_ctc import config_overrides  # the script's own folder is on sys.path
from napari_cosine_embed.core.checkpoint import load_model
from napari_cosine_embed.core.embed import iter_embed
from napari_cosine_embed.core.io.ctc import read_ctc_sequence
from napari_cosine_embed.core.metrics.ctc import seg_score
from napari_cosine_embed.core.pipeline import (
    PipelineConfig,
    foreground_mask,
    group_frame,
    model_input,
)
from napari_cosine_embed.core.resample import rescale_labels, upsample_outputs
from napari_cosine_embed.core.size_plan import model_space


def classify(labels: np.ndarray, truth: np.ndarray, counts: dict) -> None:
    for g in np.unique(truth)[1:]:
        inside = truth == g
        ids, n = np.unique(labels[inside], return_counts=True)
        n, ids = n[ids > 0], ids[ids > 0]
        if not len(ids):
            counts["missed"] += 1
            continue
        best = labels == ids[np.argmax(n)]
        overlap = (best & inside).sum()
        if overlap / (best | inside).sum() > 0.5:
            counts["matched"] += 1
        elif overlap / best.sum() < 0.6:
            counts["merged"] += 1
        elif (n > 0.15 * inside.sum()).sum() >= 2:
            counts["split"] += 1
        else:
            counts["under-covered"] += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data", type=Path, default=Path(__file__).parents[1] / ".." / "shared" / "data"
    )
    parser.add_argument("--model", default="default")
    parser.add_argument("--sequence", default="Fluo-N2DH-SIM+")
    parser.add_argument("--frames", type=int, default=5)
    parser.add_argument("--set", nargs="*", default=[], help="PipelineConfig overrides k=v")
    args = parser.parse_args()
    config = PipelineConfig(**config_overrides(args.set))
    model = load_model(args.model, device="cpu")
    config = config.for_model(model)  # a fine-tuned model's calibrated threshold
    root = args.data / "ctc" / args.sequence
    movie = read_ctc_sequence(root / "02")
    # as segment sees it: the diameter resolved, frames rescaled into the model's sizes
    config, size, view = model_input(movie, config, model)
    print(f"size plan: {size.describe()}")
    space = model_space(config, size.scale)  # the size parameters in the model's pixels
    annotated = sorted(int(p.stem[len("man_seg") :]) for p in (root / "02_GT/SEG").glob("*.tif"))
    annotated = [t for t in annotated if t >= 3]
    frames = annotated[:: max(1, len(annotated) // args.frames)][: args.frames]
    counts = dict.fromkeys(("matched", "merged", "under-covered", "split", "missed"), 0)
    covered, truths, ours, oracle = [], {}, {}, {}
    pixels = {k: {0.0: [], 2.0: []} for k in ("missed", "ring", "far", "covered")}
    for t in frames:
        *_, last = iter_embed(model, view, frames=range(t - 3, t + 1))
        truth = tifffile.imread(root / "02_GT" / "SEG" / f"man_seg{t:03d}.tif")
        truths[t] = truth
        if size.scale != 1:  # back at the movie's size, as segment returns them
            emb, fg = upsample_outputs(last.embedding, last.foreground, truth.shape)
        else:
            emb, fg = last.embedding, last.foreground
        ours[t] = rescale_labels(group_frame(last.embedding, last.foreground, space), truth.shape)
        classify(ours[t], truth, counts)
        fg = foreground_mask(fg, truth.shape, config)
        covered.append(fg[truth > 0].mean())
        perfect = (truth > 0).astype(np.float32)
        oracle[t] = group_frame(emb, perfect, replace(config, foreground_threshold=0.5))
        near = ndi.binary_dilation(truth > 0, iterations=8)
        masks = {
            "missed": (truth > 0) & ~fg,
            "ring": near & ~ndi.binary_dilation(truth > 0, iterations=2),
            "far": ~ndi.binary_dilation(near, iterations=22),
            "covered": (truth > 0) & fg,
        }
        image = np.asarray(movie[t], np.float32)
        for sigma in (0.0, 2.0):
            smooth = ndi.gaussian_filter(image, sigma) if sigma else image
            for name, mask in masks.items():
                pixels[name][sigma].append(smooth[mask])
    total = sum(counts.values())
    print(f"{args.sequence} 02, frames {frames}, model {model.name}: {total} annotated nuclei")
    print(" | ".join(f"{k} {v}" for k, v in counts.items()))
    print(f"foreground covers {np.mean(covered):.1%} of the annotated pixels")
    print(
        f"SEG on these frames {seg_score(truths, ours):.3f}; "
        f"with the annotated foreground {seg_score(truths, oracle):.3f}"
    )
    print("intensity (mean +- sd)   " + "   ".join(f"{k:>14s}" for k in pixels))
    for sigma in (0.0, 2.0):
        cells = [np.concatenate(v[sigma]) for v in pixels.values()]
        row = "   ".join(f"{c.mean():7.1f} +- {c.std():4.1f}" for c in cells)
        print(f"{'raw' if not sigma else f'smoothed {sigma:g} px':22s}   {row}")


if __name__ == "__main__":
    main()
