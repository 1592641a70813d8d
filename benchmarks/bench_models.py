"""Default model candidates side by side, in one run: every dev set, the same code and settings.

Run::

    .venv/bin/python benchmarks/bench_models.py --models default path/to/new.pt
        [--data ../shared/data] [--set key=value ...] [--frames N] [--limit N]

For each model, with the default parameters (``PipelineConfig``, each model's own calibrated
foreground threshold where it records one, ``--set`` overrides on top):

* SEG / DET / TRA / BC(1) on Fluo-N2DH-SIM+ 02, Fluo-N2DH-GOWT1 02 and Fluo-C2DL-MSC 02 (all
  frames, or the first ``--frames``), segmented and tracked as ``segment`` does
  (``bench_ctc.run_ours``; embeddings cached by model fingerprint);
* AP50 / F1 at IoU 0.5 on the held-out DSB 2018 images, fluorescence and non-fluorescence
  separately (``bench_dsb.segment``), never trained on by any of the models compared.

Prints one Markdown table with a row per set and a column pair per model, and the seconds each
took, for docs/benchmarks.md and docs/models.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench_ctc import _scores, _truncate_gt, config_overrides, run_ours
from bench_diameter import dsb_images
from bench_dsb import segment
from napari_cosine_embed.core.checkpoint import load_model
from napari_cosine_embed.core.embedding_store import model_fingerprint
from napari_cosine_embed.core.io.ctc import read_ctc_sequence
from napari_cosine_embed.core.metrics import instance_scores
from napari_cosine_embed.core.pipeline import PipelineConfig

SEQUENCES = ("Fluo-N2DH-SIM+", "Fluo-N2DH-GOWT1", "Fluo-C2DL-MSC")
DSB = ("dsb2018-fluo", "dsb2018-nonfluo")


def ctc_rows(model, config, data: Path, cache: Path, frames: int, tmp: Path) -> dict:
    rows = {}
    for name in SEQUENCES:
        seq, gt = data / "ctc" / name / "02", data / "ctc" / name / "02_GT"
        if not seq.is_dir():
            continue
        movie = read_ctc_sequence(seq)
        if frames:
            movie = movie[:frames]
            _truncate_gt(gt, tmp / f"{name}-{model_fingerprint(model)}-gt", movie.shape[0])
            gt = tmp / f"{name}-{model_fingerprint(model)}-gt"
        res = tmp / f"{name}-{model_fingerprint(model)}"
        seconds = run_ours(movie, model, config, cache, res)
        scores = _scores(gt, res)
        cells = " / ".join("-" if scores[k] is None else f"{scores[k]:.3f}" for k in scores)
        rows[f"{name} 02: SEG / DET / TRA / BC(1)"] = (cells, seconds["total"])
        print(f"<!-- {model.name} {name}: {cells} in {seconds['total']:.0f} s -->", flush=True)
    return rows


def dsb_rows(model, config, data: Path, limit: int) -> dict:
    rows = {}
    for folder in DSB:
        if not (data / folder).is_dir():
            continue
        pairs = [(image, mask) for _, image, mask in dsb_images(data / folder, True, limit)]
        labels, seconds = segment([p[0] for p in pairs], model, config)
        s = instance_scores([p[1] for p in pairs], labels)
        cells = f"{s['AP50']:.3f} / {s['F1_50']:.3f}"
        rows[f"{folder} held-out ({len(pairs)} images): AP50 / F1"] = (cells, seconds)
        print(f"<!-- {model.name} {folder}: {cells} in {seconds:.0f} s -->", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data", type=Path, default=Path(__file__).parents[1] / ".." / "shared" / "data"
    )
    parser.add_argument("--models", nargs="+", default=["default"])
    parser.add_argument("--frames", type=int, default=0, help="first N frames only (0: all)")
    parser.add_argument("--limit", type=int, default=0, help="DSB images per set (0: all)")
    parser.add_argument("--set", nargs="*", default=[], help="PipelineConfig overrides k=v")
    parser.add_argument(
        "--cache", type=Path, default=Path(tempfile.gettempdir()) / "nce-bench-cache"
    )
    args = parser.parse_args()

    args.cache.mkdir(parents=True, exist_ok=True)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    columns = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            model = load_model(name, device="cpu")
            config = PipelineConfig(model=name, device="cpu", **config_overrides(args.set))
            shown = config.for_model(model)
            print(
                f"<!-- {name}: {model.name} ({model_fingerprint(model)}), foreground threshold "
                f"{shown.foreground_threshold}, diameter {shown.diameter} -->",
                flush=True,
            )
            tic = time.perf_counter()
            rows = ctc_rows(model, config, args.data, args.cache, args.frames, Path(tmp))
            dsb = PipelineConfig(
                model=name, device="cpu", track=False, **config_overrides(args.set)
            )
            rows.update(dsb_rows(model, dsb, args.data, args.limit))
            columns.append((name, rows, time.perf_counter() - tic))
    names = list(dict.fromkeys(k for _, rows, _ in columns for k in rows))
    print("\n| set | " + " | ".join(Path(n).stem for n, _, _ in columns) + " |")
    print("|---|" + "---:|" * len(columns))
    for key in names:
        cells = [rows.get(key, ("n/a", 0))[0] for _, rows, _ in columns]
        print(f"| {key} | " + " | ".join(cells) + " |")
    print("| minutes, all sets | " + " | ".join(f"{s / 60:.1f}" for *_, s in columns) + " |")


if __name__ == "__main__":
    main()
