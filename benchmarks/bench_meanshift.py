"""Speed and accuracy of mean-shift grouping, seeded masks and label clean-up.

Run: ``.venv/bin/python benchmarks/bench_meanshift.py [--threads 1]``. Prints Markdown tables
(copied into docs/benchmarks.md). The scene is a 512 x 512 synthetic frame with about 80k
foreground pixels and a 16-d embedding: one random direction per nucleus, different from its
touching neighbours' (non-touching nuclei may share a direction, as with a trained cosine
embedding), plus noise. ARI is measured on the foreground, on the raw labels and after
:func:`split_components` (which separates the distant nuclei that share a direction).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np
import torch
from sklearn.metrics import adjusted_rand_score

from napari_cosine_embed.core.grouping.meanshift import MeanShiftGrouper
from napari_cosine_embed.core.grouping.postprocess import postprocess, split_components
from napari_cosine_embed.core.grouping.seeds import seed_mask, seediness
from napari_cosine_embed.core.synthetic import synthetic_image

BANDWIDTHS = (0.05, 0.075, 0.1, 0.15, 0.2)


def neighbour_distinct_embedding(labels, *, dim=16, noise=0.1, max_cos=0.5, seed=0):
    """Unit embeddings whose touching instances (and the background) differ by cos < max_cos."""
    rng = np.random.default_rng(seed)
    ids, inverse = np.unique(labels, return_inverse=True)
    lut = inverse.reshape(labels.shape)
    neighbours = {i: {0} for i in range(ids.size)}
    for a, b in ((lut[1:], lut[:-1]), (lut[:, 1:], lut[:, :-1])):
        differ = a != b
        for i, j in set(zip(a[differ].tolist(), b[differ].tolist(), strict=True)):
            neighbours[i].add(j)
            neighbours[j].add(i)
    dirs = np.zeros((ids.size, dim))
    for i in range(ids.size):
        while True:
            v = rng.normal(size=dim)
            v /= np.linalg.norm(v)
            if all(v @ dirs[j] < max_cos for j in neighbours[i] if j < i):
                break
        dirs[i] = v
    emb = dirs[lut].transpose(2, 0, 1) + noise * rng.normal(size=(dim, *labels.shape))
    return (emb / np.linalg.norm(emb, axis=0)).astype(np.float32)


def _median_ms(fn, repeat: int) -> tuple[float, object]:
    out, times = None, []
    for _ in range(repeat):
        tic = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - tic)
    return 1e3 * statistics.median(times), out


def bench_meanshift(emb, gt, fg, device: str, rows: list, accuracy: list) -> None:
    tag = f"[{device}]"
    build_ms, grouper = _median_ms(
        lambda: MeanShiftGrouper(emb, foreground=fg, device=device), repeat=3
    )
    rows.append((f"{tag} MeanShiftGrouper build (support 8192, 128 farthest seeds)", build_ms))
    for method in ("seeded", "blurring"):
        grouper.labels(0.1, method=method)  # warm-up
        times = []
        for bw in BANDWIDTHS:
            tic = time.perf_counter()
            labels = grouper.labels(bw, method=method)
            times.append(1e3 * (time.perf_counter() - tic))
            if device == "cpu":
                raw = adjusted_rand_score(gt[fg], labels[fg])
                split = adjusted_rand_score(gt[fg], split_components(labels)[fg])
                accuracy.append((method, bw, int(labels.max()), raw, split))
        rows.append(
            (
                f"{tag} labels(bandwidth) {method}: median of {len(BANDWIDTHS)} bandwidths "
                f"(min {min(times):.0f}, max {max(times):.0f})",
                statistics.median(times),
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    _, gt = synthetic_image(shape=(512, 512), n_cells=100, radius=(12, 18), seed=0)
    gt = gt.astype(np.int32)
    fg = gt > 0
    emb = neighbour_distinct_embedding(gt)
    rows: list[tuple[str, float]] = []
    accuracy: list[tuple] = []
    bench_meanshift(emb, gt, fg, "cpu", rows, accuracy)

    rng = np.random.default_rng(1)
    seeds = np.argwhere(fg)[rng.choice(int(fg.sum()), 20, replace=False)]
    seed_ms, _ = _median_ms(lambda: [seed_mask(emb, s, threshold=0.7) for s in seeds], 1)
    rows.append(("seed_mask (one click, whole 512 x 512 frame)", seed_ms / len(seeds)))
    ms, _ = _median_ms(lambda: seediness(emb, foreground=fg), 3)
    rows.append(("seediness (radius 1)", ms))
    labels = MeanShiftGrouper(emb, foreground=fg, device="cpu").labels(0.1)
    ms, _ = _median_ms(lambda: postprocess(labels, min_size=20), 5)
    rows.append(("postprocess 512 x 512 (split, remove < 20 px, fill, relabel)", ms))
    _, big = synthetic_image(shape=(1024, 1024), n_cells=400, radius=(12, 18), seed=2)
    ms, _ = _median_ms(lambda: postprocess(big, min_size=20), 3)
    rows.append((f"postprocess 1024 x 1024, {big.max()} objects", ms))

    if torch.cuda.is_available():
        bench_meanshift(emb, gt, fg, "cuda", rows, accuracy)

    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {load}; torch {torch.__version__}, {torch.get_num_threads()} thread(s)"
        f"{', GPU ' + torch.cuda.get_device_name() if torch.cuda.is_available() else ''}\n"
    )
    print(
        f"Scene: 512 x 512, {int(fg.sum())} foreground px, {gt.max()} nuclei, D = {emb.shape[0]}\n"
    )
    print("| step | time (ms) |\n|---|---:|")
    for name, ms in rows:
        print(f"| {name} | {ms:.1f} |")
    print("\n| method | bandwidth | objects | ARI raw | ARI after split_components |")
    print("|---|---:|---:|---:|---:|")
    for method, bw, k, raw, split in accuracy:
        print(f"| {method} | {bw} | {k} | {raw:.4f} | {split:.4f} |")


if __name__ == "__main__":
    main()
