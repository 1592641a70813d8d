"""End-to-end speed per frame and peak memory of ``napari-cosine-embed segment``.

Run::

    .venv/bin/python benchmarks/bench_pipeline.py speed   [--frames 20] [--size 512]
    .venv/bin/python benchmarks/bench_pipeline.py memory  [--frames 200] [--size 1024]
    .venv/bin/python benchmarks/bench_pipeline.py track-memory [--frames 200] [--size 1024]

``speed`` runs :func:`~napari_cosine_embed.core.pipeline.run_pipeline` on a synthetic movie
(in memory) and prints seconds per frame for each stage (embed, group, track).

``memory`` writes a synthetic movie of ``--frames`` frames of ``--size``² pixels to a zarr
store (2 x 2 tiles of a 512² synthetic movie, so every frame is full of nuclei), then runs the
``segment`` command on it in a child process, as a user would, and reports the child's peak
resident memory (``getrusage`` of the children) and wall time. The embeddings of such a movie
(13 GiB as float32) go to the on-disk zarr cache; only the label movie is held whole.

``track-memory`` measures the stage that holds the whole label movie (tracking) alone, in
seconds instead of the half hour of CPU the full ``memory`` run takes on a laptop.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from napari_cosine_embed.core._generators import result_of
from napari_cosine_embed.core.pipeline import PipelineConfig, run_pipeline
from napari_cosine_embed.core.synthetic import SyntheticConfig, synthetic_timelapse


def _movie(frames: int, size: int, seed: int = 7) -> np.ndarray:
    base = min(size, 512)
    config = SyntheticConfig(
        shape=(base, base), n_frames=frames, n_cells=int(40 * (base / 512) ** 2), seed=seed
    )
    movie = synthetic_timelapse(config).image
    reps = size // base
    return np.tile(movie, (1, reps, reps)) if reps > 1 else movie


def speed(args) -> None:
    movie = _movie(args.frames, args.size)
    result = result_of(run_pipeline(movie, PipelineConfig(device=args.device)))
    n = movie.shape[0]
    s = result.seconds
    total = sum(s.values())
    print(f"{n} frames of {args.size}x{args.size}, {platform.machine()}, {os.cpu_count()} CPUs")
    print("| stage | s/frame |\n|---|---:|")
    for stage in ("embed", "group", "track"):
        print(f"| {stage} | {s[stage] / n:.3f} |")
    print(f"| **total** | **{total / n:.3f}** |")


def memory(args) -> None:
    import zarr

    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        tmp = Path(tmp)
        store = zarr.open_array(
            str(tmp / "movie.zarr"),
            mode="w",
            shape=(args.frames, args.size, args.size),
            chunks=(1, args.size, args.size),
            dtype="uint16",
        )
        chunk = 20
        for start in range(0, args.frames, chunk):
            n = min(chunk, args.frames - start)
            store[start : start + n] = _movie(n, args.size, seed=start)
        print(f"wrote a {args.frames} x {args.size}² zarr movie", flush=True)
        cmd = [sys.executable, "-m", "napari_cosine_embed.cli", "segment", str(tmp / "movie.zarr"),
               "-o", str(tmp / "RES"), "--device", args.device]  # fmt: skip
        tic = time.perf_counter()
        subprocess.run(cmd, check=True)
        wall = time.perf_counter() - tic
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(f"| {args.frames} frames of {args.size}x{args.size} | peak RSS {peak_kib / 2**20:.2f} GiB "
          f"| {wall:.0f} s wall ({wall / args.frames:.2f} s/frame) |")  # fmt: skip


def track_memory(args) -> None:
    """Peak memory of the stage that holds the whole movie: tracking the label movie."""
    from napari_cosine_embed.core.tracking import link_labels

    labels = np.tile(
        synthetic_timelapse(
            SyntheticConfig(shape=(512, 512), n_frames=args.frames, n_cells=40, seed=1)
        ).labels.astype(np.uint16),
        (1, args.size // 512, args.size // 512),
    )
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    tic = time.perf_counter()
    config = PipelineConfig()
    result = link_labels(
        labels,
        min_track_length=config.min_track_length,
        min_split_frames=config.min_split_frames,
        min_child_ratio=config.min_child_ratio,
        max_gap=config.max_gap,
    )
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"labels {labels.nbytes / 2**30:.2f} GiB; peak RSS {before:.2f} GiB before tracking, "
          f"{after:.2f} GiB after; tracking {time.perf_counter() - tic:.0f} s, "
          f"{len(result.lineage)} tracks")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=("speed", "memory", "track-memory"))
    parser.add_argument("--frames", type=int)
    parser.add_argument("--size", type=int)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--tmp", default=None, help="where the movie and cache go")
    args = parser.parse_args()
    if args.what == "speed":
        args.frames, args.size = args.frames or 20, args.size or 512
        speed(args)
    else:
        args.frames, args.size = args.frames or 200, args.size or 1024
        (memory if args.what == "memory" else track_memory)(args)


if __name__ == "__main__":
    main()
