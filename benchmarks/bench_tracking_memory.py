"""Peak memory of tracking and writing a long movie, held whole or streamed.

    .venv/bin/python benchmarks/bench_tracking_memory.py [--frames 50 100 200] [--size 1024]
        [--objects 200]

What ``segment`` does once the embeddings are grouped: the instance labels of every frame are
kept, linked into tracks (``link_labels`` with ``segment``'s options) and written as a CTC
result folder. Each case runs in a fresh process that makes the synthetic instance labels
frame by frame (``bench_tracking_scale.synthetic_frames``) and reports its peak resident
memory (``ru_maxrss``), for two ways of holding the movie:

- ``whole``: the frames as arrays, as ``segment`` did before (``run_pipeline(lazy=False)``);
- ``streamed``: the frames compressed, the result relabelled as it is written
  (``run_pipeline(lazy=True)``, what ``segment`` does now).

The tracked labels and lineage of the two are compared, so the numbers are for the same result.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def case(frames: int, size: int, objects: int, lazy: bool) -> dict:
    """Track and write one synthetic movie; peak memory, time and a digest of the result."""
    import hashlib

    import numpy as np

    sys.path.insert(0, str(Path(__file__).parent))
    from bench_tracking_scale import synthetic_frames
    from napari_cosine_embed.core.io.ctc import write_ctc_result
    from napari_cosine_embed.core.pipeline import PipelineConfig, link_options
    from napari_cosine_embed.core.tracking import link_labels
    from napari_cosine_embed.core.tracking.frames import FrameStack

    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tic = time.perf_counter()
    labels = FrameStack((size, size), compressed=lazy)
    for frame in synthetic_frames(objects, frames, size):
        labels.append(frame.astype(np.uint16))
    result = link_labels(labels, **link_options(PipelineConfig()), lazy=lazy)
    digest = hashlib.blake2b(digest_size=8)
    with tempfile.TemporaryDirectory() as tmp:
        write_ctc_result(Path(tmp) / "01_RES", result.labels, result.lineage)
        for t in range(frames):
            digest.update(np.ascontiguousarray(result.labels[t]).tobytes())
    digest.update(result.lineage.tobytes())
    return {
        "frames": frames,
        "mode": "streamed" if lazy else "whole",
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "start_mb": base,
        "seconds": time.perf_counter() - tic,
        "tracks": len(result.lineage),
        "digest": digest.hexdigest(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[50, 100, 200])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--objects", type=int, default=200)
    parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: one case, as JSON
    args = parser.parse_args()
    if args.case:
        frames, lazy = json.loads(args.case)
        print(json.dumps(case(frames, args.size, args.objects, lazy)))
        return
    print(f"# {platform.node()}, {os.cpu_count()} cores; {args.size}x{args.size}, "
          f"{args.objects} objects per frame")  # fmt: skip
    for frames in args.frames:
        found = {}
        for lazy in (False, True):
            out = subprocess.run(
                [sys.executable, __file__, "--size", str(args.size), "--objects",
                 str(args.objects), "--case", json.dumps([frames, lazy])],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            row = json.loads(out.stdout.strip().splitlines()[-1])
            found[lazy] = row
            print(
                f"frames={frames} mode={row['mode']} peak_mb={row['peak_mb']:.0f} "
                f"(start {row['start_mb']:.0f}) seconds={row['seconds']:.1f} "
                f"tracks={row['tracks']}"
            )
        same = found[False]["digest"] == found[True]["digest"]
        print(f"frames={frames} same_result={same}")


if __name__ == "__main__":
    main()
