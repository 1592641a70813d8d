"""Speed and agreement of :class:`HDBSCANGrouper` against the ``hdbscan`` package.

Frames are synthetic nuclei (``synthetic_image``) with embeddings from
``embedding_from_labels``: one random unit direction per nucleus in D = 16 (touching nuclei
distinct), Gaussian noise of ``--noise`` per component, renormalised; the foreground mask is the
true one. Points are the 16 embedding components plus ``(y, x) / 32 * coord_weight``.

Rows (a Markdown table for docs/benchmarks.md):

* 512 x 512, ~80,000 foreground points: the package from scratch (``algorithm="best"``, which
  is an approximate Borůvka KD-tree with 4 core-distance jobs, and its other KD-tree settings);
  our exact route (``max_points=None``); our default bounded route (means of square blocks of
  pixels, at most 10,000, every pixel assigned to the nearest block mean around it). For each: wall time, and the
  adjusted Rand index (noise as one label) against the package's ``"best"`` labels and against
  the true instances. ``labels`` rows are medians over new ``min_cluster_size`` values (no cache
  hits); the rebuild row is a new grouper for a new ``min_samples``.
* 1024 x 1024, ~300,000 foreground points: the bounded route's time and peak memory
  (tracemalloc: numpy and Python allocations, which hold all large arrays here). The exact
  clustering is not run there (minutes); its departure is measured at 512 x 512.

Run: ``python benchmarks/bench_grouping.py [--quick] [--noise 0.15]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import tracemalloc

import hdbscan
from sklearn.metrics import adjusted_rand_score

from napari_cosine_embed.core.grouping import HDBSCANGrouper, embedding_points
from napari_cosine_embed.core.grouping._synthetic import embedding_from_labels
from napari_cosine_embed.core.synthetic import synthetic_image

MIN_SAMPLES, MIN_CLUSTER_SIZE, COORD_WEIGHT = 10, 50, 1.0


def load() -> str:
    return "/".join(f"{v:.1f}" for v in os.getloadavg())


def timed(func):
    start = time.perf_counter()
    result = func()
    return time.perf_counter() - start, result


def ari(a, b) -> float:
    return adjusted_rand_score(a, b)


def frame(size: int, n_cells: int, noise: float, seed: int):
    _, labels = synthetic_image(shape=(size, size), n_cells=n_cells, seed=seed)
    return embedding_from_labels(labels, noise=noise, seed=seed), labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="only the package's default")
    parser.add_argument("--noise", type=float, default=0.15)
    args = parser.parse_args()

    rows = []

    def row(case, what, seconds, vs_package, vs_truth, note=""):
        fmt = lambda v: "" if v is None else f"{v:.4f}"  # noqa: E731
        rows.append(
            f"| {case} | {what} | {seconds:.3f} | {fmt(vs_package)} | {fmt(vs_truth)} | {note} |"
        )
        print(rows[-1], flush=True)

    print(f"load average at start: {load()} on {os.cpu_count()} cores")
    embedding, truth = frame(512, 150, args.noise, 1)
    fg = truth > 0
    points, index = embedding_points(embedding, fg, COORD_WEIGHT)
    gt = truth[index]
    case = f"512², {len(points)} pts, noise {args.noise}"
    print(f"{case}: {points.shape[1]}-D points")

    package = {"best": {}}
    if not args.quick:
        package["boruvka_kdtree, core_dist_n_jobs=1"] = {
            "algorithm": "boruvka_kdtree",
            "core_dist_n_jobs": 1,
        }
        package["prims_kdtree"] = {"algorithm": "prims_kdtree"}
    reference = None
    package_best = None
    package_labels = {}
    for name, kwargs in package.items():
        seconds, labels = timed(
            lambda kw=kwargs: hdbscan.HDBSCAN(
                min_samples=MIN_SAMPLES, min_cluster_size=MIN_CLUSTER_SIZE, **kw
            ).fit_predict(points)
        )
        if reference is None:
            reference, package_best = labels, seconds
        package_labels[name] = labels
        row(
            case,
            f"hdbscan package `{name}`, from scratch",
            seconds,
            ari(reference, labels),
            ari(gt, labels),
        )

    def grouper(max_points, min_samples=MIN_SAMPLES):
        return HDBSCANGrouper(
            embedding,
            foreground=fg,
            min_samples=min_samples,
            coord_weight=COORD_WEIGHT,
            max_points=max_points,
        )

    def medians(g, sizes):
        times = []
        for size in sizes:
            g.labels(size)
            times.append(g.timings["labels"])
        return statistics.median(times)

    sizes = [40, 45, 55, 60, 65, 70, 75, 80, 90, 100, 110, 120]
    exact_seconds, exact = timed(lambda: grouper(None))
    exact_labels = exact.labels(MIN_CLUSTER_SIZE)[index]
    row(
        case,
        "ours exact (`max_points=None`), from scratch",
        exact_seconds,
        ari(reference, exact_labels),
        ari(gt, exact_labels),
        "; ".join(
            f"ARI vs package `{name}` {ari(labels, exact_labels):.4f}"
            for name, labels in package_labels.items()
            if name != "best"
        ),
    )
    row(
        case,
        "ours exact, `.labels` new min_cluster_size (median)",
        medians(exact, sizes),
        None,
        None,
        "condense + select at 80k points",
    )

    scratch = []
    for _ in range(3):
        seconds, bounded = timed(lambda: grouper(10_000))
        seconds += timed(lambda g=bounded: g.labels(MIN_CLUSTER_SIZE))[0]
        scratch.append(seconds)
    ours = bounded.labels(MIN_CLUSTER_SIZE)[index]
    note = f"{bounded.stride}x{bounded.stride} blocks, {bounded.n_clustered} pts, tree min_samples {bounded.tree_min_samples}; ARI vs ours exact {ari(exact_labels, ours):.4f}"
    row(
        case,
        "ours bounded (default `max_points=10000`), from scratch (median of 3)",
        statistics.median(scratch),
        ari(reference, ours),
        ari(gt, ours),
        note,
    )
    print(
        f"  speed-up vs package best: {package_best / statistics.median(scratch):.1f}x; timings {bounded.timings}"
    )
    rebuild = [timed(lambda ms=ms: grouper(10_000, ms))[0] for ms in (5, 8, 12, 15, 20)]
    row(
        case,
        "ours bounded, new min_samples = rebuild (median of 5)",
        statistics.median(rebuild),
        None,
        None,
        "min_samples 5..20",
    )
    row(
        case,
        "ours bounded, `.labels` new min_cluster_size (median of 12)",
        medians(bounded, sizes),
        None,
        None,
        "min_cluster_size 40..120",
    )
    for eps, method in ((0.0, "leaf"), (0.5, "eom")):
        ref_varied = hdbscan.HDBSCAN(
            min_samples=MIN_SAMPLES,
            min_cluster_size=MIN_CLUSTER_SIZE,
            cluster_selection_epsilon=eps,
            cluster_selection_method=method,
        ).fit_predict(points)
        exact_varied = exact.labels(MIN_CLUSTER_SIZE, eps, method)[index]
        varied = bounded.labels(MIN_CLUSTER_SIZE, eps, method)[index]
        row(
            case,
            f"ours bounded, `.labels({MIN_CLUSTER_SIZE}, {eps}, {method!r})`",
            bounded.timings["labels"],
            ari(ref_varied, varied),
            ari(gt, varied),
            f"package `best` with eps {eps}, {method}: ARI vs truth {ari(gt, ref_varied):.4f}, "
            f"vs ours exact {ari(exact_varied, ref_varied):.4f}; ours bounded vs ours exact "
            f"{ari(exact_varied, varied):.4f}",
        )

    del exact, bounded
    embedding, truth = frame(1024, 600, args.noise, 2)
    fg = truth > 0
    case = f"1024², {fg.sum()} pts, noise {args.noise}"
    tracemalloc.start()
    start = time.perf_counter()
    large = HDBSCANGrouper(
        embedding, foreground=fg, min_samples=MIN_SAMPLES, coord_weight=COORD_WEIGHT
    )
    out = large.labels(MIN_CLUSTER_SIZE)
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    note = f"{large.stride}x{large.stride} blocks, {large.n_clustered} pts, tree min_samples {large.tree_min_samples}, peak {peak / 2**20:.0f} MiB (input {embedding.nbytes / 2**20:.0f} MiB)"
    row(case, "ours bounded, from scratch", seconds, None, ari(truth[fg], out[fg]), note)
    row(
        case,
        "ours bounded, `.labels` new min_cluster_size (median of 12)",
        medians(large, sizes),
        None,
        None,
        "",
    )

    print(f"\nload average at end: {load()}\n")
    print("| case | what | seconds | ARI vs package `best` | ARI vs truth | note |")
    print("|---|---|---:|---:|---:|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
