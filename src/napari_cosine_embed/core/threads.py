"""How many CPU threads torch should use, re-decided while long work runs.

On a busy machine, torch's default (one thread per core) is the worst choice: its OpenMP
threads meet at a barrier after every operation, so when another process holds one of the
cores every operation waits for the thread that lost its core, and the waiting threads spin.
Measured on 2 cores (docs/benchmarks.md): a fine-tuning step took 3.2x longer with one other
CPU-bound process running, and 30-40x with three. With only as many threads as the cores the
other processes leave free, no thread waits for a core.

:class:`ThreadGovernor` measures, between steps or frames, how many cores the *other*
processes kept busy since the last look (system CPU time minus this process's CPU time, from
``psutil``), and gives torch the cores left over (at least one, at most ``max_threads``). Long
loops call :meth:`ThreadGovernor.update` once per step; it does nothing more often than every
``interval`` seconds, and costs microseconds when it does.

Example
-------
>>> governor = ThreadGovernor(max_threads=2, interval=0.0)
>>> 1 <= governor.update() <= 2
True
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import dataclass, field

__all__ = ["ThreadGovernor", "available_cores", "cpu_count"]


def cpu_count() -> int:
    """Cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _busy_seconds() -> tuple[float, float] | None:
    """(CPU seconds all processes spent busy, CPU seconds this process spent), or None."""
    try:
        import psutil

        system = psutil.cpu_times()
        own = psutil.Process().cpu_times()
    except Exception:  # psutil missing or the OS refusing: keep the threads as they are
        return None
    idle = system.idle + getattr(system, "iowait", 0.0)
    busy = sum(system) - idle - getattr(system, "guest", 0.0) - getattr(system, "guest_nice", 0.0)
    return busy, own.user + own.system


def available_cores(other_busy: float, cores: int) -> int:
    """Cores left for us when other processes keep ``other_busy`` cores busy (at least 1).

    A core another process uses for less than half the time counts as free: one more thread
    costs less than it brings there.
    """
    if not math.isfinite(other_busy):  # not measured: assume the machine is ours
        return max(1, cores)
    return max(1, min(cores, int(cores - max(0.0, other_busy) + 0.5)))


@dataclass
class ThreadGovernor:
    """Adapts ``torch.set_num_threads`` to the cores other processes leave free.

    Parameters
    ----------
    max_threads : int or None
        The most threads to use; None: every core this process may run on. A user's explicit
        ``--threads`` is a fixed ``max_threads`` with ``adaptive=False``.
    interval : float
        Seconds between two measurements; the measurement averages over this window.
    adaptive : bool
        False: always ``max_threads`` (set once).

    Attributes
    ----------
    threads : int
        The number of threads set last.
    other_busy : float
        Cores the other processes kept busy over the last measured window (NaN before one).
    history : list of (float, float, int)
        ``(time, other processes' busy cores, threads)`` of each decision, for benchmarks.
    """

    max_threads: int | None = None
    interval: float = 2.0
    adaptive: bool = True
    threads: int = 0
    other_busy: float = math.nan
    history: list[tuple[float, float, int]] = field(default_factory=list)
    _last: tuple[float, float, float] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        cores = cpu_count()
        if self.max_threads is None:
            self.max_threads = cores
        if int(self.max_threads) < 1:
            raise ValueError(f"max_threads must be at least 1, got {self.max_threads}")
        self.max_threads = int(self.max_threads)
        # Start from the last minute's load average (it may still count work of this process,
        # so it can start low; the first measurement corrects it within ``interval``).
        start = self.max_threads
        if self.adaptive:
            with contextlib.suppress(AttributeError, OSError):
                start = min(start, available_cores(os.getloadavg()[0], cores))
        self._set(start, other=float("nan"))
        self._last = self._sample()

    @staticmethod
    def _sample() -> tuple[float, float, float] | None:
        busy = _busy_seconds()
        return None if busy is None else (time.monotonic(), *busy)

    def _set(self, threads: int, *, other: float) -> None:
        import torch

        threads = max(1, min(int(self.max_threads), threads))
        if threads != torch.get_num_threads():
            torch.set_num_threads(threads)
        if threads != self.threads:
            self.history.append((time.monotonic(), other, threads))
        self.threads = threads

    def update(self) -> int:
        """Measure (at most every ``interval`` s) and set the thread count; return it."""
        if not self.adaptive or self._last is None:
            return self.threads
        now = time.monotonic()
        if now - self._last[0] < self.interval:
            return self.threads
        sample = self._sample()
        if sample is None:
            return self.threads
        wall = sample[0] - self._last[0]
        if wall <= 0:
            return self.threads
        other = max(0.0, (sample[1] - self._last[1]) - (sample[2] - self._last[2])) / wall
        self._last, self.other_busy = sample, other
        self._set(available_cores(other, cpu_count()), other=other)
        return self.threads
