"""How much of the overlap tracking the cluster's workers take off the client.

    .venv/bin/python benchmarks/bench_linking_split.py [--frames 200] [--size 1024]
        [--objects 200] [--per-task 20]

On a dask.distributed cluster each worker links the frame pairs inside the run of frames it
segmented (``tracking.link_pair``: overlaps and assignment) and the client finishes the tracks
(``link_labels(pair_links=...)``: the pairs across runs, split-back and the clean-up). This
times the three parts on synthetic instance labels (``bench_tracking_scale.synthetic_frames``)
with ``segment``'s tracking options, in one process:

- ``serial``: ``link_labels`` alone, as one machine runs it;
- ``pairs``: the pairs inside runs of ``--per-task`` frames, linked one by one (on a cluster
  this is spread over the workers, beside their segmentation);
- ``client``: ``link_labels`` given those pairs, what is left on the client.

It checks that the client's result equals the serial one.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--objects", type=int, default=200)
    parser.add_argument("--per-task", type=int, default=20)
    args = parser.parse_args()

    sys.path.insert(0, str(Path(__file__).parent))
    from bench_tracking_scale import synthetic_frames
    from napari_cosine_embed.core.pipeline import PipelineConfig, link_options
    from napari_cosine_embed.core.tracking import link_labels, link_pair
    from napari_cosine_embed.core.tracking.frames import FrameStack

    options = link_options(PipelineConfig())
    pair = {k: options[k] for k in ("min_iou", "min_child_overlap")}
    labels = FrameStack((args.size, args.size))
    for frame in synthetic_frames(args.objects, args.frames, args.size):
        labels.append(frame.astype(np.uint16))

    tic = time.perf_counter()
    serial = link_labels(labels, **options, lazy=True)
    t_serial = time.perf_counter() - tic

    inside = [t for t in range(args.frames - 1) if (t + 1) % args.per_task]
    tic = time.perf_counter()
    links = {t: link_pair(labels[t], labels[t + 1], **pair) for t in inside}
    t_pairs = time.perf_counter() - tic

    tic = time.perf_counter()
    client = link_labels(labels, **options, lazy=True, pair_links=links)
    t_client = time.perf_counter() - tic

    same = np.array_equal(serial.lineage, client.lineage) and all(
        np.array_equal(serial.labels[t], client.labels[t]) for t in range(args.frames)
    )
    print(
        f"# {platform.node()}, {os.cpu_count()} cores; {args.frames} frames of "
        f"{args.size}x{args.size}, {args.objects} objects, runs of {args.per_task} frames"
    )
    print(f"serial link_labels: {t_serial:.2f} s ({len(serial.lineage)} tracks)")
    print(f"pairs inside runs ({len(inside)} of {args.frames - 1}): {t_pairs:.2f} s")
    print(f"client, given those pairs: {t_client:.2f} s ({t_client / t_serial:.0%} of serial)")
    print(f"same result: {same}")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
