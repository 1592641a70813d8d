"""How tracking time grows with the number of objects per frame.

    .venv/bin/python benchmarks/bench_tracking_scale.py [--objects 50 200 800] [--frames 30]
        [--size 1024] [--profile]

A synthetic label movie per count: that many small nuclei (radius 6 px) on a jittered grid over
``--frames`` frames of ``--size`` x ``--size``, drifting slowly; every frame some divide (one
nucleus becomes two touching halves that drift apart), some are cut in two for that frame only
(``--noise``, a segmentation's false split), some vanish for a frame and come back, and some
flicker in for one frame, so that every clean-up pass of the tracking has work:
false divisions, short tracks, gaps. The labels are relabelled at random per frame (a
segmentation's ids tell nothing across frames). ``link_labels`` runs with the options
``segment`` uses (``PipelineConfig``'s defaults); its wall time is printed per count, with the
number of tracks and divisions found. ``--profile`` adds the ten costliest functions.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import platform
import pstats
import time

import numpy as np


def synthetic_labels(
    n_objects: int, frames: int, size: int, seed: int = 0, noise: float = 0.05
) -> np.ndarray:
    """A label movie of about ``n_objects`` nuclei per frame with divisions, gaps, flicker, and
    a share ``noise`` of nuclei cut in two for one frame (a segmentation's false split)."""
    return np.stack(list(synthetic_frames(n_objects, frames, size, seed, noise)))


def synthetic_frames(n_objects: int, frames: int, size: int, seed: int = 0, noise: float = 0.05):
    """The frames of :func:`synthetic_labels`, one at a time (int32)."""
    rng = np.random.default_rng(seed)
    grid = int(np.ceil(np.sqrt(n_objects)))
    step = size / (grid + 1)
    ys, xs = np.meshgrid(np.arange(1, grid + 1) * step, np.arange(1, grid + 1) * step)
    pos = np.column_stack([ys.ravel(), xs.ravel()])[:n_objects]
    pos += rng.uniform(-step / 6, step / 6, pos.shape)
    yy, xx = np.mgrid[-6:7, -6:7]
    disc = yy**2 + xx**2 <= 36
    split = np.zeros(len(pos), bool)  # drawn as two halves moving apart
    for _ in range(frames):
        pos += rng.normal(0, 0.7, pos.shape)
        pos = np.clip(pos, 10, size - 11)
        split |= rng.random(len(pos)) < 0.01
        hidden = rng.random(len(pos)) < 0.01
        cut = rng.random(len(pos)) < noise
        frame = np.zeros((size, size), np.int32)
        label = 1
        for k, (y, x) in enumerate(pos.astype(int)):
            if hidden[k]:
                continue
            if split[k] or cut[k]:
                frame[y - 6 : y + 7, x - 6 : x + 1][disc[:, :7]] = label
                frame[y - 6 : y + 7, x + 1 : x + 8][disc[:, 6:]] = label + 1
                label += 2
            else:
                frame[y - 6 : y + 7, x - 6 : x + 7][disc] = label
                label += 1
        for _ in range(max(1, n_objects // 50)):  # one-frame flicker
            y, x = rng.integers(10, size - 10, 2)
            patch = frame[y - 2 : y + 3, x - 2 : x + 3]
            patch[patch == 0] = label
            label += 1
        lut = np.concatenate([[0], rng.permutation(np.arange(1, label)) + 1])
        yield lut[frame].astype(np.int32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--objects", type=int, nargs="+", default=[50, 200, 800])
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--noise", type=float, default=0.05, help="share cut in two per frame")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()

    import napari_cosine_embed
    from napari_cosine_embed.core.pipeline import PipelineConfig, link_options
    from napari_cosine_embed.core.tracking import link_labels

    options = link_options(PipelineConfig())
    print(f"# {platform.node()}, {os.cpu_count()} cores; code {napari_cosine_embed.__file__}")
    print(f"# link_labels options: {options}")
    for n in args.objects:
        movie = synthetic_labels(n, args.frames, args.size, noise=args.noise)
        profiler = cProfile.Profile() if args.profile else None
        tic = time.perf_counter()
        if profiler:
            profiler.enable()
        result = link_labels(movie, **options)
        if profiler:
            profiler.disable()
        seconds = time.perf_counter() - tic
        n_div = len({p[0] for p in result.graph.values()})
        per_frame = np.mean([len(np.unique(f)) - 1 for f in movie])
        print(
            f"objects={n} per_frame={per_frame:.0f} frames={args.frames} size={args.size} "
            f"seconds={seconds:.2f} tracks={len(result.lineage)} divisions={n_div}"
        )
        if profiler:
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(12)


if __name__ == "__main__":
    main()
