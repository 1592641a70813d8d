"""The learning loop, measured: segment, fine-tune on 3 curated frames, segment again, score.

Run::

    .venv/bin/python benchmarks/bench_learning_loop.py [--data ../shared/data]
        [--sequences Fluo-C2DL-MSC Fluo-N2DH-SIM+ Fluo-N2DH-GOWT1] [--frames N]
        [--curated 3] [--set key=value ...] [--ft key=value ...] [--seeds 0 1 2]

For each CTC sequence ``<data>/ctc/<name>/02``, in one process:

1. the default model segments and tracks the movie with the default parameters
   (:class:`PipelineConfig`: ``diameter="auto"``);
2. ``--curated`` evenly spaced frames are curated. Where the frame's SEG annotation is
   complete (every TRA marker lies in an annotated object: SIM+, MSC) its masks are the
   curation; elsewhere (GOWT1 annotates a few nuclei per frame) a user's quick fix is
   simulated from our own labels: each instance holding exactly one TRA marker is kept
   (false positives deleted), as ``bench_ctc.py`` does; the nuclei it cannot fix (false
   merges, misses: a user would split or draw them) are left out of the loss, not taught as
   background (``--taught-background`` teaches them as background);
3. the model is fine-tuned with the ``finetune`` defaults (:data:`FINETUNE_DEFAULTS`, as the
   ``finetune`` command and the Fine-tune widget use them), timed;
4. the tuned model segments the movie again with the same parameters;
5. SEG, DET, TRA and BC(1) are scored on the frames not trained on (the trained frames' SEG
   masks are left out of the ground truth).

Prints one Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from bench_ctc import (
    MEASURES,
    _gt_subset,
    config_overrides,
    curated_labels,
    run_ours,
    unfixed_mask,
)
from napari_cosine_embed.core.checkpoint import load_model
from napari_cosine_embed.core.io.ctc import read_ctc_gt, read_ctc_sequence
from napari_cosine_embed.core.metrics import ctc_scores
from napari_cosine_embed.core.pipeline import PipelineConfig
from napari_cosine_embed.core.training import (
    FINETUNE_DEFAULTS,
    TrainConfig,
    finetune,
    from_arrays,
)


def complete_seg_frames(gt) -> list[int]:
    """SEG frames in which every TRA marker falls in an annotated object."""
    complete = []
    for t in sorted(gt.seg):
        seg, tra = np.asarray(gt.seg[t]), np.asarray(gt.tra[t])
        markers = np.unique(tra[tra > 0])
        covered = np.unique(tra[(tra > 0) & (seg > 0)])
        if markers.size and covered.size >= 0.95 * markers.size:
            complete.append(t)
    return complete


def choose_frames(candidates: list[int], n: int) -> list[int]:
    idx = np.linspace(0, len(candidates) - 1, n + 2)[1:-1].round().astype(int)
    return sorted({candidates[i] for i in idx})


def ft_overrides(items: list[str]) -> dict:
    """``key=value`` items as TrainConfig fields; ``augment.name=a,b`` sets an augmentation range."""
    out: dict = {}
    augment = {}
    for item in items:
        key, value = item.split("=", 1)
        if key.startswith("augment."):
            name = key.split(".", 1)[1]
            kind = getattr(FINETUNE_DEFAULTS.augment, name)
            if isinstance(kind, tuple):
                augment[name] = tuple(float(v) for v in value.split(","))
            else:
                augment[name] = type(kind)(value)
            continue
        out[key] = type(getattr(FINETUNE_DEFAULTS, key))(value)
    if augment:
        out["augment"] = replace(FINETUNE_DEFAULTS.augment, **augment)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data", type=Path, default=Path(__file__).parents[1] / ".." / "shared" / "data"
    )
    parser.add_argument(
        "--sequences",
        nargs="+",
        default=["Fluo-C2DL-MSC", "Fluo-N2DH-SIM+", "Fluo-N2DH-GOWT1"],
    )
    parser.add_argument("--frames", type=int, default=0, help="first N frames only (0: all)")
    parser.add_argument("--curated", type=int, default=3)
    parser.add_argument("--set", nargs="*", default=[], help="PipelineConfig overrides k=v")
    parser.add_argument("--ft", nargs="*", default=[], help="fine-tune TrainConfig overrides")
    parser.add_argument(
        "--cache", type=Path, default=Path(tempfile.gettempdir()) / "nce-bench-cache"
    )
    parser.add_argument("--save", type=Path, help="folder to keep the fine-tuned models in")
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        help="fine-tune once per seed and print each and their mean (one seed spreads MSC "
        "SEG by up to 0.06)",
    )
    parser.add_argument(
        "--taught-background",
        dest="unsure",
        action="store_false",
        help="in a simulated fix, teach the nuclei it could not fix (false merges, misses) as "
        "background instead of leaving them out of the loss",
    )
    args = parser.parse_args()

    config = PipelineConfig(**config_overrides(args.set))
    ft_config: TrainConfig = replace(FINETUNE_DEFAULTS, **ft_overrides(args.ft))
    base = load_model("default")
    args.cache.mkdir(parents=True, exist_ok=True)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    print(f"fine-tune: {ft_config.to_dict()}")
    print(f"pipeline overrides: {args.set or 'none'}\n")
    header = " | ".join(MEASURES)
    print(f"| sequence | curated frames | model | {header} | fine-tune s |")
    print("|---|---|---|" + "---:|" * (len(MEASURES) + 1))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name in args.sequences:
            root = args.data / "ctc" / name
            movie = read_ctc_sequence(root / "02")
            gt_dir = root / "02_GT"
            if args.frames:
                from bench_ctc import _truncate_gt

                movie = movie[: args.frames]
                _truncate_gt(gt_dir, tmp / f"{name}-gt", movie.shape[0])
                gt_dir = tmp / f"{name}-gt"
            gt = read_ctc_gt(gt_dir)
            complete = complete_seg_frames(gt)
            candidates = complete if len(complete) >= args.curated + 2 else list(range(len(movie)))
            frames = choose_frames(candidates, args.curated)
            held = _gt_subset(gt_dir, tmp / f"{name}-held", exclude_seg=set(frames))

            before = tmp / f"{name}-before"
            run_ours(movie, base, config, args.cache, before)
            if candidates is complete:
                labels = np.zeros(gt.tra.shape, np.uint16)
                for t in frames:
                    labels[t] = gt.seg[t]
                how = "SEG masks"
                ignore = None
            else:
                labels = curated_labels("simulated", gt_dir, before, frames)
                ignore = unfixed_mask(gt_dir, before, labels, frames) if args.unsure else None
                how = "simulated fix" + (", unfixed nuclei unsure" if args.unsure else "")
            data = from_arrays(
                movie,
                labels,
                frames=frames,
                ignore=ignore,
                context=ft_config.clip_length - 1,
                name=name,
            )
            prefix = f"| {name} 02 | {frames} ({how}) |"
            print(f"{prefix} default | {_row(ctc_scores(held, before, measures=MEASURES))} | |")
            tuned_scores = []
            for seed in args.seeds or [ft_config.seed]:
                scores, seconds, scale = _tune_and_score(
                    base, data, replace(ft_config, seed=seed), movie, config, args, tmp / name, held
                )
                tuned_scores.append(scores)
                which = f"fine-tuned (x{scale})" + (f", seed {seed}" if args.seeds else "")
                print(f"{prefix} {which} | {_row(scores)} | {seconds:.0f} |", flush=True)
            if len(tuned_scores) > 1:
                mean = {
                    k: float(np.mean([s[k] for s in tuned_scores]))
                    for k in MEASURES
                    if all(s.get(k) is not None for s in tuned_scores)
                }
                print(f"{prefix} fine-tuned, mean of {len(tuned_scores)} seeds | {_row(mean)} | |")


def _row(scores: dict) -> str:
    return " | ".join("-" if scores.get(k) is None else f"{scores[k]:.3f}" for k in MEASURES)


def _tune_and_score(base, data, ft_config, movie, config, args, where: Path, held: Path):
    """Fine-tune ``base`` on ``data``, segment ``movie`` with it (results under ``where``),
    score the held-out frames."""
    tic = time.perf_counter()
    run = finetune(base, data, ft_config)
    while True:
        try:
            next(run)
        except StopIteration as stop:
            tuned = stop.value
            break
    seconds = time.perf_counter() - tic
    name = where.name
    if args.save is not None:
        from napari_cosine_embed.core.checkpoint import save_model

        args.save.mkdir(parents=True, exist_ok=True)
        save_model(args.save / f"{name}-seed{ft_config.seed}-{int(time.time())}.pt", tuned)
    after = where.parent / f"{name}-after"
    run_ours(movie, tuned, config, args.cache, after)
    scale = (tuned.record.get("object_size") or {}).get("scale", 1)
    return ctc_scores(held, after, measures=MEASURES), seconds, scale


if __name__ == "__main__":
    main()
