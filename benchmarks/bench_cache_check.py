"""Cost of checking an embedding cache against the movie: read every frame and hash it.

Before ``segment --cache`` reuses a cache (or fills one on disk) it hashes every frame of the
movie (:func:`~napari_cosine_embed.core.embedding_store.frame_hash`). This prints, per dev
sequence, the time to read all frames alone and to read and hash them, so the hash's own share
shows.

    .venv/bin/python benchmarks/bench_cache_check.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from napari_cosine_embed.core.embedding_store import frame_hash
from napari_cosine_embed.core.io import read_any


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).parents[2] / "shared" / "data")
    args = parser.parse_args()
    print("| sequence | frames | frame size | read s | read + hash s | hash ms per MPixel |")
    print("|---|---:|---|---:|---:|---:|")
    for name in ("Fluo-N2DH-SIM+", "Fluo-N2DH-GOWT1", "Fluo-C2DL-MSC"):
        folder = args.data / "ctc" / name / "02"
        if not folder.is_dir():
            continue
        movie = read_any(folder, lazy=True).image
        tic = time.perf_counter()
        for t in range(movie.shape[0]):
            np.asarray(movie[t])
        read = time.perf_counter() - tic
        tic = time.perf_counter()
        for t in range(movie.shape[0]):
            frame_hash(movie[t])
        both = time.perf_counter() - tic
        mpix = movie.shape[0] * movie.shape[1] * movie.shape[2] / 1e6
        print(
            f"| {name} 02 | {movie.shape[0]} | {movie.shape[1]}x{movie.shape[2]} {movie.dtype} | "
            f"{read:.2f} | {both:.2f} | {1000 * max(both - read, 0) / mpix:.2f} |"
        )


if __name__ == "__main__":
    main()
