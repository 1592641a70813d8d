"""segment on this machine, and on a LocalCluster of 1 and 2 worker processes.

    .venv/bin/python benchmarks/bench_distributed.py [--frames 40] [--size 512]
        [--batch 8] [--batch-frames 10] [--part movie batch]

A synthetic movie (``--frames`` frames of ``--size`` x ``--size``, nuclei about 30 px across)
is segmented and tracked with the bundled model: once in this process
(``run_pipeline``, torch using every core, as ``segment`` does), then with
``run_distributed`` on a LocalCluster of 1 and of 2 worker processes (one torch thread each,
tasks of 10 frames; the cluster's start is not counted, each worker's first model load is).
The results are compared. The scheduler's own cost per task is measured with 200 empty tasks.

Then a batch of ``--batch`` movies (``--batch-frames`` frames each, the same size, each its own
synthetic scene): ``run_batch`` here (one movie after the other, torch on every core), and on a
LocalCluster of 1 and of 2 worker processes (one task per movie, each writing its own CTC
folder); every result folder is compared with the one made here.
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
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--batch-frames", type=int, default=10)
    parser.add_argument("--part", nargs="+", choices=("movie", "batch"), default=["movie", "batch"])
    args = parser.parse_args()
    print(f"# {platform.node()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")
    if "movie" in args.part:
        one_movie(args)
    if "batch" in args.part:
        batch(args)


def batch(args: argparse.Namespace) -> None:
    import tifffile
    from distributed import Client

    from napari_cosine_embed.core.batch import MovieJob, run_batch
    from napari_cosine_embed.core.distributed import make_cluster
    from napari_cosine_embed.core.io.ctc import read_ctc_result
    from napari_cosine_embed.core.pipeline import PipelineConfig
    from napari_cosine_embed.core.synthetic import SyntheticConfig, synthetic_timelapse

    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for seed in range(args.batch):
            movie = synthetic_timelapse(
                SyntheticConfig(
                    n_frames=args.batch_frames, shape=(args.size, args.size), n_cells=30,
                    seed=100 + seed,
                )
            )  # fmt: skip
            paths.append(Path(tmp) / f"movie{seed}.tif")
            tifffile.imwrite(paths[-1], movie.image)
        config = PipelineConfig()

        def jobs(where: str) -> list:
            return [MovieJob(p, Path(tmp) / where / f"{p.stem}_RES") for p in paths]

        tic = time.perf_counter()
        rows = drain(run_batch(jobs("here"), config, version="bench"))
        base = time.perf_counter() - tic
        assert all("error" not in row for row in rows), rows
        print(f"batch movies={args.batch} frames={args.batch_frames} here seconds={base:.1f}")
        for workers in (1, 2):
            cluster = make_cluster("local", workers=workers)
            with Client(cluster) as client:
                tic = time.perf_counter()
                rows = drain(run_batch(jobs(f"w{workers}"), config, version="b", client=client))
                took = time.perf_counter() - tic
                assert all("error" not in row for row in rows), rows
                same = True
                for p in paths:
                    a = read_ctc_result(Path(tmp) / f"w{workers}" / f"{p.stem}_RES")
                    b = read_ctc_result(Path(tmp) / "here" / f"{p.stem}_RES")
                    same &= np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
                tic = time.perf_counter()
                client.gather(client.map(lambda x: x, range(200), pure=False))
                per_task = (time.perf_counter() - tic) / 200
                print(
                    f"batch workers={workers} seconds={took:.1f} speedup_vs_here={base / took:.2f}"
                    f" same_result={same} scheduler_overhead_ms_per_task={1000 * per_task:.1f}"
                )
            cluster.close()


def one_movie(args: argparse.Namespace) -> None:
    import tifffile
    from distributed import Client

    from napari_cosine_embed.core.checkpoint import load_model
    from napari_cosine_embed.core.distributed import make_cluster, run_distributed
    from napari_cosine_embed.core.pipeline import PipelineConfig, model_input, run_pipeline
    from napari_cosine_embed.core.synthetic import SyntheticConfig, synthetic_timelapse

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
