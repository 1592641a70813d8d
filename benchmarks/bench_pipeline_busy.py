"""Embedding and grouping speed on an idle machine and beside competing CPU-bound processes.

Run::

    .venv/bin/python benchmarks/bench_pipeline_busy.py [--frames 12] [--size 512] [--busy 1]

A synthetic movie of ``--frames`` frames of ``--size`` x ``--size`` (about 40 nuclei per
frame) is segmented as ``segment --no-track`` segments it
(:func:`~napari_cosine_embed.core.pipeline.run_pipeline`, default parameters, the bundled
model, diameter estimation included), three ways:

* idle, with the thread policy ``segment`` uses (:class:`~napari_cosine_embed.core.threads.
  ThreadGovernor`: the cores other processes leave free, re-checked before each frame);
* with ``--busy`` competing processes, the same policy;
* with ``--busy`` competing processes and torch's threads fixed at the core count (what
  torch does on its own), the reference the policy is measured against.

Prints seconds per frame for embedding and for grouping, and each busy run's ratio to idle.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from _load import busy
from napari_cosine_embed._sample_data import SAMPLE_CONFIG
from napari_cosine_embed.core._generators import result_of
from napari_cosine_embed.core.checkpoint import load_model
from napari_cosine_embed.core.pipeline import PipelineConfig, run_pipeline
from napari_cosine_embed.core.synthetic import synthetic_timelapse
from napari_cosine_embed.core.threads import ThreadGovernor


def run(movie, model, threads: ThreadGovernor | None) -> dict:
    config = PipelineConfig(device="cpu", track=False)
    tic = time.perf_counter()
    result = result_of(run_pipeline(movie, config, model=model, threads=threads))
    seconds = dict(result.seconds)
    seconds["total"] = time.perf_counter() - tic
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--busy", type=int, default=1, help="competing CPU-bound processes")
    args = parser.parse_args()

    cells = int(40 * (args.size / 512) ** 2)
    movie = synthetic_timelapse(
        dataclasses.replace(
            SAMPLE_CONFIG, shape=(args.size, args.size), n_frames=args.frames, n_cells=cells
        )
    ).image
    model = load_model("default", device="cpu")
    cores = os.cpu_count() or 1
    result_of(run_pipeline(movie[:2], PipelineConfig(device="cpu", track=False), model=model))
    rows = []
    idle = run(movie, model, ThreadGovernor())
    rows.append(("idle, thread policy", idle))
    with busy(args.busy):
        time.sleep(1.0)  # let the competitors start before the policy first looks
        rows.append((f"{args.busy} competing, thread policy", run(movie, model, ThreadGovernor())))
        torch.set_num_threads(cores)
        rows.append((f"{args.busy} competing, {cores} threads fixed", run(movie, model, None)))
    n = args.frames
    print(f"{n} frames of {args.size}x{args.size}, {cores} CPUs, model {model.name}\n")
    print("| run | embed s/frame | group s/frame | total s/frame | total vs idle |")
    print("|---|---:|---:|---:|---:|")
    for label, s in rows:
        print(
            f"| {label} | {s['embed'] / n:.3f} | {s['group'] / n:.3f} | {s['total'] / n:.3f} | "
            f"{s['total'] / idle['total']:.2f}x |"
        )


if __name__ == "__main__":
    main()
