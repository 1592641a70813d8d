"""Reader, writer and evaluation speed on this machine.

Run: ``.venv/bin/python benchmarks/bench_io.py [--data ../shared/data]``. Prints a Markdown table
(copied into docs/benchmarks.md). Uses the CTC sequences when the shared data is present and a
generated zarr movie in a temporary folder.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

from napari_cosine_embed.core.io.ctc import (
    read_ctc_gt,
    read_ctc_sequence,
    write_ctc_result,
)
from napari_cosine_embed.core.io.zarr_store import read_zarr
from napari_cosine_embed.core.metrics import ctc_scores


def _time(fn, *, repeat: int = 1) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _fmt(scores: dict) -> str:
    return ", ".join(f"{k} {v:.4f}" for k, v in scores.items() if v is not None)


def _rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


def bench_ctc(seq: Path, rows: list[tuple[str, str]]) -> None:
    name = f"{seq.parent.name}/{seq.name}"
    t, movie = _time(lambda: read_ctc_sequence(seq))
    n = movie.shape[0]
    rows.append(
        (
            f"read {name} eagerly ({n} x {movie.shape[1]}x{movie.shape[2]} {movie.dtype})",
            f"{t:.2f} s ({1e3 * t / n:.1f} ms/frame)",
        )
    )
    t, lazy = _time(lambda: read_ctc_sequence(seq, lazy=True))
    rows.append((f"open {name} lazily", f"{1e3 * t:.1f} ms"))
    t, _ = _time(lambda: np.asarray(lazy[n // 2]), repeat=3)
    rows.append((f"one frame of {name} from the lazy array", f"{1e3 * t:.1f} ms"))
    gt_dir = seq.with_name(seq.name + "_GT")
    t, gt = _time(lambda: read_ctc_gt(gt_dir))
    rows.append((f"read {name}_GT (SEG {len(gt.seg)} frames + TRA)", f"{t:.2f} s"))
    with tempfile.TemporaryDirectory() as tmp:
        t, res = _time(lambda: write_ctc_result(Path(tmp) / "res", gt.tra, gt.lineage))
        rows.append(
            (f"write CTC result folder ({n} frames)", f"{t:.2f} s ({1e3 * t / n:.1f} ms/frame)")
        )
        t, scores = _time(lambda: ctc_scores(gt_dir, res))
        rows.append(
            (f"evaluate SEG+DET+TRA, {name} GT vs itself (ours)", f"{t:.2f} s ({_fmt(scores)})")
        )
        try:
            from ctc_metrics.scripts.evaluate import evaluate_sequence
        except ImportError:
            return
        with contextlib.redirect_stdout(io.StringIO()):
            t, ref = _time(
                lambda: evaluate_sequence(str(res), str(gt_dir), ["SEG", "DET", "TRA"], threads=1)
            )
        ref = {k: ref[k] for k in ("SEG", "DET", "TRA")}
        rows.append(("the same with py-ctcmetrics (1 thread)", f"{t:.2f} s ({_fmt(ref)})"))


def bench_zarr(rows: list[tuple[str, str]]) -> None:
    import zarr

    shape = (200, 1024, 1024)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "movie.zarr"
        arr = zarr.create_array(store=str(path), shape=shape, chunks=(1, 512, 512), dtype="uint16")
        rng = np.random.default_rng(0)
        frame = rng.integers(0, 4000, size=shape[1:], dtype=np.uint16)
        for t in range(shape[0]):
            arr[t] = frame
        gib = np.prod(shape) * 2 / 2**30
        del arr, frame
        before = _rss_mb()
        t, lazy = _time(lambda: read_zarr(path))
        rows.append(
            (f"open a {shape} uint16 zarr movie ({gib:.2f} GiB) lazily", f"{1e3 * t:.1f} ms")
        )
        t, _ = _time(lambda: np.asarray(lazy[137]), repeat=3)
        rows.append(("one frame of it", f"{1e3 * t:.1f} ms"))
        for t in range(0, shape[0], 10):
            np.asarray(lazy[t])
        rows.append(
            ("memory growth after opening it and reading 21 frames", f"{_rss_mb() - before:.0f} MB")
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data"
    )
    args = parser.parse_args()
    rows: list[tuple[str, str]] = []
    bench_zarr(rows)  # first, so the memory reading is not masked by the CTC arrays
    for seq in ("Fluo-N2DH-SIM+/02", "Fluo-N2DH-GOWT1/02"):
        path = args.data / "ctc" / seq
        if path.is_dir():
            bench_ctc(path, rows)
        else:
            print(f"(skipping {path}: not found)")
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    )
    print("| what | time |\n|---|---|")
    for what, value in rows:
        print(f"| {what} | {value} |")


if __name__ == "__main__":
    main()
