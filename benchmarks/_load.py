"""Competing CPU load for benchmarks: processes that spin on one core each until stopped."""

from __future__ import annotations

import multiprocessing as mp
from contextlib import contextmanager


def _spin() -> None:
    x = 0
    while True:  # stopped by terminate()
        x = (x * 1103515245 + 12345) & 0xFFFFFFFF


@contextmanager
def busy(n: int):
    """Run ``n`` CPU-bound processes for the duration of the block."""
    procs = [mp.get_context("spawn").Process(target=_spin, daemon=True) for _ in range(n)]
    for p in procs:
        p.start()
    try:
        yield
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.join()
