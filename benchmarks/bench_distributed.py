"""segment on this machine, and on a LocalCluster of 1 and 2 worker processes.

    .venv/bin/python benchmarks/bench_distributed.py [--frames 40] [--size 512]

A synthetic movie (``--frames`` frames of ``--size`` x ``--size``, nuclei about 30 px across)
is segmented and tracked with the bundled model: once in this process
(``run_pipeline``, torch using every core, as ``segment`` does), then with
``run_distributed`` on a LocalCluster of 1 and of 2 worker processes (one torch thread each,
tasks of 10 frames; the cluster's start is not counted, each worker's first model load is).
The results are compared. The scheduler's own cost per task is measured with 200 empty tasks.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np


def drain(gen):
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args()

    import tifffile
    from distributed import Client

    from napari_cosine_embed.core.checkpoint import load_model
    from napari_cosine_embed.core.distributed import make_cluster, run_distributed
    from napari_cosine_embed.core.pipeline import PipelineConfig, model_input, run_pipeline
    from napari_cosine_embed.core.synthetic import SyntheticConfig, synthetic_timelapse

    print(f"# {platform.node()}, {os.cpu_count()} cores")
    movie = synthetic_timelapse(
        SyntheticConfig(n_frames=args.frames, shape=(args.size, args.size), n_cells=30, seed=0)
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "movie.tif"
        tifffile.imwrite(path, movie.image)
        model = load_model("default")
        config = PipelineConfig().for_model(model)
        config, _, _ = model_input(movie.image, config, model)
        tic = time.perf_counter()
        single = drain(run_pipeline(movie.image, config, model=model, lazy=True))
        base = time.perf_counter() - tic
        print(f"here frames={args.frames} size={args.size} seconds={base:.1f}")
        for workers in (1, 2):
            cluster = make_cluster("local", workers=workers)
            with Client(cluster) as client:
                tic = time.perf_counter()
                result = drain(run_distributed(path, config, client, frames_per_task=10))
                took = time.perf_counter() - tic
                same = np.array_equal(np.asarray(result.labels), np.asarray(single.labels))
                same &= np.array_equal(result.lineage, single.lineage)
                print(
                    f"workers={workers} seconds={took:.1f} speedup_vs_here={base / took:.2f} "
                    f"same_result={same}"
                )
                if workers == 2:
                    tic = time.perf_counter()
                    client.gather(client.map(lambda x: x, range(200), pure=False))
                    per_task = (time.perf_counter() - tic) / 200
                    print(f"scheduler_overhead_ms_per_task={1000 * per_task:.1f}")
            cluster.close()


if __name__ == "__main__":
    main()
