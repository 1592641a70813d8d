"""How well the object diameter is estimated: our estimate against the annotated median.

Run::

    .venv/bin/python benchmarks/bench_diameter.py [--data ../shared/data] [--model default]
        [--dsb 0] [--threshold 0.5]

* Every dev CTC sequence (``ctc/*/02``): the estimate the pipeline makes
  (:func:`~napari_cosine_embed.core.size_plan.plan_size` with ``"auto"``: 3 evenly spaced
  frames, refined at the rescaled size when it rescales) against the median equivalent
  diameter of every annotated object of the sequence's SEG frames; and, frame by frame, the
  estimate from one frame against that frame's annotated median (up to 10 SEG frames).
* DSB 2018 images, one estimate per image against its masks' median: the held-out
  (validation) side of ``dsb2018-fluo``, and ``dsb2018-nonfluo`` (never trained on by the
  bundled model). ``--dsb N`` limits each to N images (0: all).

The error is ``estimate / annotated - 1``; prints its distribution per set as Markdown.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import napari_cosine_embed.core.diameter as diameter
from napari_cosine_embed.core.checkpoint import load_model
from napari_cosine_embed.core.diameter import equivalent_diameters, estimate_diameter
from napari_cosine_embed.core.io.ctc import read_ctc_gt, read_ctc_sequence
from napari_cosine_embed.core.size_plan import plan_size
from napari_cosine_embed.core.training.dsb import dsb_held_out, dsb_kind


def annotated(labels) -> np.ndarray:
    return equivalent_diameters(np.asarray(labels), min_area=4)


def summary(name: str, errors: list[float | None], seconds: float) -> str:
    """One row; ``None`` errors are images without an estimate (counted, not scored)."""
    n, missing = len(errors), sum(e is None for e in errors)
    signed = np.asarray([e for e in errors if e is not None], float)
    if signed.size == 0:
        return f"| {name} | {n} | {missing} | - | - | - | - | - | {seconds / max(1, n):.2f} |"
    e = np.abs(signed)
    return (
        f"| {name} | {n} | {missing} | {np.median(signed):+.1%} | {np.median(e):.1%} | "
        f"{np.percentile(e, 90):.1%} | {e.max():.1%} | {(e <= 0.15).sum() / n:.0%} | "
        f"{seconds / max(1, n):.2f} |"
    )


def dsb_images(folder: Path, held_out_only: bool, limit: int):
    import tifffile

    ids = sorted(p.stem for p in (folder / "images").glob("*.tif"))
    if held_out_only:
        ids = [i for i in ids if dsb_held_out(i, dsb_kind(folder))]
    for image_id in ids[: limit or None]:
        image = tifffile.imread(folder / "images" / f"{image_id}.tif").astype(np.float32)
        if image.ndim == 3:
            image = image.mean(-1)
        yield image_id, image, tifffile.imread(folder / "masks" / f"{image_id}.tif")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data", type=Path, default=Path(__file__).parents[1] / ".." / "shared" / "data"
    )
    parser.add_argument("--model", default="default")
    parser.add_argument("--dsb", type=int, default=0, help="images per DSB set (0: all)")
    parser.add_argument(
        "--threshold", type=float, default=None, help="foreground threshold of the pieces"
    )
    args = parser.parse_args()
    if args.threshold is not None:
        diameter.PIECE_THRESHOLD = args.threshold
    model = load_model(args.model, device="cpu")
    print(f"model {model.name}; piece threshold {diameter.PIECE_THRESHOLD}\n")
    print("| sequence | annotated median (px) | estimate (px) | error | seconds |")
    print("|---|---:|---:|---:|---:|")
    per_frame: dict[str, list[float]] = {}
    for root in sorted((args.data / "ctc").glob("*/02")):
        name = root.parent.name
        gt = read_ctc_gt(root.parent / "02_GT")
        movie = read_ctc_sequence(root)
        truth = float(np.median(np.concatenate([annotated(gt.seg[t]) for t in gt.seg])))
        tic = time.perf_counter()
        plan = plan_size(model, movie, "auto")
        seconds = time.perf_counter() - tic
        if plan.diameter is None:
            print(f"| {name} 02 | {truth:.1f} | none | - | {seconds:.1f} |", flush=True)
        else:
            error = plan.diameter / truth - 1
            print(
                f"| {name} 02 | {truth:.1f} | {plan.diameter:.1f} (x{plan.scale}) | "
                f"{error:+.1%} | {seconds:.1f} |",
                flush=True,
            )
        frames = sorted(gt.seg)
        pick = [frames[round(i)] for i in np.linspace(0, len(frames) - 1, min(10, len(frames)))]
        errors = []
        for t in pick:
            d = estimate_diameter(model, movie, frames=[t]).diameter
            errors.append(None if d is None else d / float(np.median(annotated(gt.seg[t]))) - 1)
        per_frame[f"{name} 02, single frames"] = errors
    print("\n| set | images | no estimate | median error | median abs error | p90 abs "
          "| max abs | within 15 % (of all) | s/image |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, errors in per_frame.items():
        print(summary(name, errors, 0.0), flush=True)
    for folder, held in (("dsb2018-fluo", True), ("dsb2018-nonfluo", False)):
        path = args.data / folder
        if not path.is_dir():
            continue
        errors, tic = [], time.perf_counter()
        for _, image, mask in dsb_images(path, held, args.dsb):
            d = estimate_diameter(model, image).diameter
            truth = float(np.median(annotated(mask)))
            errors.append(None if d is None else d / truth - 1)
        label = f"{folder} ({'held-out' if held else 'all'})"
        print(summary(label, errors, time.perf_counter() - tic), flush=True)


if __name__ == "__main__":
    main()
