"""Peak memory of a whole ``segment`` run against the movie's length, here and on worker processes.

    .venv/bin/python benchmarks/bench_segment_memory.py [--frames 50 100 200] [--size 1024]
        [--workers 0 2] [--tile-size N]

For each length, a synthetic fluorescence movie (``--size`` x ``--size``, about 150 nuclei
of 20-25 px, at most 200 at a time) is written to a TIFF in the temporary folder, then ``napari-cosine-embed segment``
runs on it in a fresh process, as a user runs it: on this machine (``--workers 0``), or on a
LocalCluster of worker processes (``--workers 2``). The process tree's resident memory is
sampled every 0.1 s (psutil): the peak of the ``segment`` process itself, and the peak of the
largest worker. Wall time and the result's size are printed too.

One line per case: ``frames=N workers=W seconds=S main_peak_mb=M worker_peak_mb=K tracks=T``.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


def write_movie(path: Path, frames: int, size: int) -> None:
    """A synthetic movie written a frame at a time (the movie itself is made whole here, in
    this process, whose memory is not measured)."""
    import tifffile

    from napari_cosine_embed.core.synthetic import SyntheticConfig, synthetic_timelapse

    movie = synthetic_timelapse(
        SyntheticConfig(n_frames=frames, shape=(size, size), n_cells=150, max_cells=200, seed=0)
    )
    with tifffile.TiffWriter(path) as tif:
        for frame in movie.image:
            tif.write(frame, contiguous=True)


def sample(pid: int, peaks: dict, stop: threading.Event) -> None:
    import psutil

    root = psutil.Process(pid)
    while not stop.is_set():
        try:
            main = root.memory_info().rss
            children = [c.memory_info().rss for c in root.children(recursive=True)]
        except psutil.Error:
            children, main = [], 0
        peaks["main"] = max(peaks["main"], main)
        peaks["worker"] = max(peaks["worker"], max(children, default=0))
        stop.wait(0.1)


def run(movie: Path, out: Path, workers: int, tile_size: int | None) -> dict:
    command = [sys.executable, "-m", "napari_cosine_embed.cli", "segment", str(movie)]
    command += ["-o", str(out), "--diameter", "auto"]
    if workers:
        command += ["--workers", str(workers)]
    if tile_size:
        command += ["--tile-size", str(tile_size)]
    peaks = {"main": 0, "worker": 0}
    stop = threading.Event()
    tic = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watcher = threading.Thread(target=sample, args=(proc.pid, peaks, stop), daemon=True)
    watcher.start()
    stdout, stderr = proc.communicate()
    seconds = time.perf_counter() - tic
    stop.set()
    watcher.join()
    if proc.returncode:
        raise SystemExit(f"segment failed ({proc.returncode}):\n{stderr[-2000:]}")
    tracks = stdout.split(" tracks")[0].rsplit(" ", 1)[-1]
    return {"seconds": seconds, "main": peaks["main"], "worker": peaks["worker"], "tracks": tracks}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[50, 100, 200])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--tile-size", type=int)
    args = parser.parse_args()
    print(f"# {platform.node()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        for frames in args.frames:
            movie = Path(tmp) / f"movie{frames}.tif"
            write_movie(movie, frames, args.size)
            for workers in args.workers:
                out = Path(tmp) / f"res{frames}_{workers}"
                row = run(movie, out, workers, args.tile_size)
                print(
                    f"frames={frames} size={args.size} workers={workers} "
                    f"seconds={row['seconds']:.0f} main_peak_mb={row['main'] / 2**20:.0f} "
                    f"worker_peak_mb={row['worker'] / 2**20:.0f} tracks={row['tracks']}",
                    flush=True,
                )
            movie.unlink()


if __name__ == "__main__":
    main()
