"""A fine-tuned model's scores on the frames it was not trained on, against the foreground threshold.

Run::

    .venv/bin/python benchmarks/bench_tuned_threshold.py MODEL.pt [--data ../shared/data]
        [--sequence Fluo-C2DL-MSC] [--trained 11 22 34] [--thresholds 0.1 0.2 0.3 0.6]

``MODEL.pt`` is a model saved by ``bench_learning_loop.py --save DIR``; ``--trained`` names
the frames it was fine-tuned on (left out of the scores, as there). For each threshold the
movie is segmented and tracked with the default parameters and that foreground threshold
(the embeddings are cached, so only the first threshold embeds), then scored: SEG, DET and TRA
on the frames not trained on, and per annotated cell of those frames whether some object covers
it at an IoU above 0.5 (matched) or not (missed), with the matched cells' mean IoU. It tells
how much a better threshold could still give, and what stays wrong at any threshold.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from bench_ctc import MEASURES, _gt_subset, run_ours
from napari_cosine_embed.core.checkpoint import load_model
from napari_cosine_embed.core.io.ctc import read_ctc_gt, read_ctc_result, read_ctc_sequence
from napari_cosine_embed.core.metrics import ctc_scores, overlap
from napari_cosine_embed.core.pipeline import PipelineConfig


def cell_matches(truth: np.ndarray, result: np.ndarray) -> np.ndarray:
    """For each annotated cell of ``truth``, its best IoU with an object of ``result``."""
    pairs = overlap(truth, result)
    best = np.zeros(len(pairs.ref_labels))
    np.maximum.at(best, pairs.ref_index, pairs.iou())
    return best


def cell_fates(truth: np.ndarray, result: np.ndarray) -> dict[str, int]:
    """What became of each annotated cell: the object covering most of it decides.

    ``not found``: objects cover under half of the cell; ``in pieces``: none covers half of
    it; ``merged``: one does, but the cell is under half of that object; else ``whole``.
    """
    fates = {"whole": 0, "merged": 0, "in pieces": 0, "not found": 0}
    pairs = overlap(truth, result)
    covered = np.zeros(len(pairs.ref_labels))
    np.add.at(covered, pairs.ref_index, pairs.intersection)
    best = np.zeros(len(pairs.ref_labels))
    purity = np.zeros(len(pairs.ref_labels))
    for r, c, n in zip(pairs.ref_index, pairs.comp_index, pairs.intersection, strict=True):
        if n > best[r]:
            best[r], purity[r] = n, n / pairs.comp_area[c]
    for i, area in enumerate(pairs.ref_area):
        if covered[i] < 0.5 * area:
            fates["not found"] += 1
        elif best[i] < 0.5 * area:
            fates["in pieces"] += 1
        elif purity[i] < 0.5:
            fates["merged"] += 1
        else:
            fates["whole"] += 1
    return fates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", type=Path)
    parser.add_argument(
        "--data", type=Path, default=Path(__file__).parents[1] / ".." / "shared" / "data"
    )
    parser.add_argument("--sequence", default="Fluo-C2DL-MSC")
    parser.add_argument("--trained", type=int, nargs="*", default=[11, 22, 34])
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.1, 0.2, 0.3, 0.6])
    parser.add_argument(
        "--cache", type=Path, default=Path(tempfile.gettempdir()) / "nce-bench-cache"
    )
    args = parser.parse_args()

    root = args.data / "ctc" / args.sequence
    movie = read_ctc_sequence(root / "02")
    gt = read_ctc_gt(root / "02_GT")
    trained = set(args.trained)
    model = load_model(args.model)
    calibration = model.record.get("foreground_calibration") or {}
    print(f"model {args.model.name}: calibrated threshold {calibration.get('threshold')}")
    print(
        "| threshold | SEG | DET | TRA | cells matched | missed | mean IoU of matched | objects "
        "| whole / merged / in pieces / not found |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        held = _gt_subset(root / "02_GT", tmp / "held", exclude_seg=trained)
        for threshold in args.thresholds:
            res = tmp / f"res-{threshold}"
            run_ours(movie, model, PipelineConfig(foreground_threshold=threshold), args.cache, res)
            scores = ctc_scores(held, res, measures=MEASURES)
            labels, _ = read_ctc_result(res)
            best, objects = [], 0
            fates = dict.fromkeys(("whole", "merged", "in pieces", "not found"), 0)
            for t in sorted(set(gt.seg) - trained):
                truth, ours = np.asarray(gt.seg[t]), np.asarray(labels[t])
                best += list(cell_matches(truth, ours))
                objects += len(np.unique(ours)) - 1
                for k, v in cell_fates(truth, ours).items():
                    fates[k] += v
            matched = [b for b in best if b > 0.5]
            row = " | ".join(f"{scores[k]:.3f}" for k in ("SEG", "DET", "TRA"))
            print(
                f"| {threshold} | {row} | {len(matched)} | {len(best) - len(matched)} | "
                f"{np.mean(matched):.3f} | {objects} | {' / '.join(map(str, fates.values()))} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
