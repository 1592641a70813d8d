"""Speed and memory of :func:`iter_embed` on whole movies and on one large, tiled frame.

Rows (printed as a Markdown table for docs/benchmarks.md):

* per-frame time over a movie of 512 x 512 frames (normalisation, forward pass with the recurrent
  state, unit-normalisation and the copy to numpy included), median after warm-up frames;
* one 4096 x 4096 frame cut into 1024-pixel tiles overlapping by 128: time and peak memory;
* one 2048 x 2048 frame, untiled and tiled, to show what tiling saves.

The model is the bundled default (``load_model("default")``) when the checkpoint module and the
weights are installed, else a randomly initialised ``ModelConfig()`` network (same cost).

Memory: tracemalloc does not see torch's allocations, so each large-frame row runs in a fresh
process and reports its peak resident set size (Linux ``VmHWM``) minus the resident size just
before the call; the peak is reset first through ``/proc/self/clear_refs``, or, where that is
not allowed, sampled every 2 ms with psutil (which can miss short peaks). The figure includes
the (D, Y, X) float32 output, which is printed beside it.

On a CUDA machine the script also reports frames/s at 512 x 512 under bf16/fp16 autocast, for a
single movie through :func:`iter_embed` and for B movies embedded side by side (the recurrence
makes a movie's frames sequential, so batching movies is how to fill a GPU), and the peak CUDA
memory (``torch.cuda.max_memory_allocated``) of the tiled 4096 x 4096 frame.

Run: ``python benchmarks/bench_embed.py [--threads 2] [--frames 10] [--quick]``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import threading
import time
from pathlib import Path

import numpy as np
import torch

from napari_cosine_embed.core.checkpoint import EmbeddingModel, load_model
from napari_cosine_embed.core.embed import iter_embed
from napari_cosine_embed.core.errors import InputError
from napari_cosine_embed.core.models import ModelConfig


def get_model(device: str = "cpu") -> EmbeddingModel:
    try:
        return load_model("default", device=device)
    except InputError as exc:  # no bundled weights yet: the cost is the same
        print(f"(load_model('default'): {exc}; using random init)")
        return EmbeddingModel.new(ModelConfig(), seed=0, name="random-init default").to(device)


def frames_of(count: int, size: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 4096, (count, size, size), dtype=np.uint16)


def _rss() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS"))


def _peak_rss() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM"))


def _measure(size: int, tile: int, overlap: int, threads: int, queue) -> None:
    """In a fresh process: embed one size x size frame; report (seconds, peak bytes, method)."""
    torch.set_num_threads(threads)
    model = get_model("cpu")
    frame = frames_of(1, size)[0]
    next(iter_embed(model, frames_of(1, 64)[0]))  # warm up the kernels on a small frame
    try:
        Path("/proc/self/clear_refs").write_text("5")
        method, sampler = "VmHWM", None
    except OSError:
        import psutil

        method, peak, done = "psutil 2 ms", [0], threading.Event()

        def sample() -> None:
            proc = psutil.Process()
            while not done.is_set():
                peak[0] = max(peak[0], proc.memory_info().rss)
                time.sleep(0.002)

        sampler = threading.Thread(target=sample, daemon=True)
    before = _rss()
    if sampler is not None:
        sampler.start()
    start = time.perf_counter()
    result = next(iter_embed(model, frame, tile_size=tile, tile_overlap=overlap))
    seconds = time.perf_counter() - start
    if sampler is not None:
        done.set()
        sampler.join()
        top = peak[0]
    else:
        top = _peak_rss()
    queue.put((seconds, top - before, result.embedding.nbytes, method))


def measure(size: int, tile: int, overlap: int, threads: int) -> tuple[float, int, int, str]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_measure, args=(size, tile, overlap, threads, queue))
    proc.start()
    out = queue.get()
    proc.join()
    return out


def movie_times(model, size: int, frames: int, warmup: int, **options) -> list[float]:
    times, gen = [], iter_embed(model, frames_of(warmup + frames, size), **options)
    while True:
        start = time.perf_counter()
        if next(gen, None) is None:
            break
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times[warmup:]


def gpu_rows(size: int, frames: int, warmup: int) -> list[str]:
    """frames/s on CUDA: one movie through iter_embed, then B movies side by side."""
    model = get_model("cuda")
    network, rows = model.network.eval(), []
    for amp in ("fp32", "auto"):
        t = statistics.median(movie_times(model, size, frames, warmup, amp=amp))
        rows.append(
            f"| GPU, 1 movie, iter_embed, amp={amp} | {size}x{size} | {1 / t:.1f} frames/s |"
        )
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    for batch in (1, 4, 16, 64):
        x = torch.rand(batch, 1, size, size, device="cuda")
        state, times = None, []
        with torch.inference_mode(), torch.autocast("cuda", dtype=dtype):
            for i in range(warmup + frames):
                torch.cuda.synchronize()
                start = time.perf_counter()
                out = network(x, state)
                state = out.state
                torch.nn.functional.normalize(out.embeddings[-1].float(), dim=1).cpu()
                torch.cuda.synchronize()
                if i >= warmup:
                    times.append(time.perf_counter() - start)
        rate = batch / statistics.median(times)
        rows.append(
            f"| GPU, {batch} movies batched, {dtype} (network + normalise + copy) "
            f"| {size}x{size} | {rate:.1f} frames/s |"
        )
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    next(iter_embed(model, frames_of(1, 4096)[0], tile_size=1024, tile_overlap=128))
    torch.cuda.synchronize()
    seconds, peak = time.perf_counter() - start, torch.cuda.max_memory_allocated()
    rows.append(
        f"| GPU, one frame, tiles 1024/128, amp=auto | 4096x4096 "
        f"| {seconds:.2f} s, peak CUDA memory {peak / 2**20:.0f} MiB |"
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="skip the 4096 x 4096 frame")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = get_model("cpu")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, model {model.name}")
    print(f"load average before: {os.getloadavg()[0]:.2f}\n")
    rows = []
    times = movie_times(model, args.size, args.frames, args.warmup)
    rows.append(
        f"| CPU, movie of {args.frames} frames (median, min-max) | {args.size}x{args.size} "
        f"| {statistics.median(times):.3f} s/frame ({min(times):.3f}-{max(times):.3f}) |"
    )
    cases = [
        (2048, 4096, 0, "untiled"),
        (2048, 1024, 128, "tiles 1024/128"),
        (2048, 512, 64, "tiles 512/64"),
    ]
    if not args.quick:
        cases += [(4096, 1024, 128, "tiles 1024/128"), (4096, 512, 64, "tiles 512/64")]
    for size, tile, overlap, label in cases:
        seconds, peak, output, method = measure(size, tile, overlap, args.threads)
        rows.append(
            f"| CPU, one frame, {label} | {size}x{size} | {seconds:.1f} s; peak RSS "
            f"+{peak / 2**20:.0f} MiB ({method}), of which output {output / 2**20:.0f} MiB |"
        )
    if torch.cuda.is_available():
        rows += gpu_rows(args.size, args.frames, args.warmup)
    print(f"load average after: {os.getloadavg()[0]:.2f}\n")
    print("| what | frame | result |")
    print("|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
