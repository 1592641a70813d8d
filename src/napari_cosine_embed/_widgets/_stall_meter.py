"""Measure how long napari's main thread cannot answer, and sample what it was doing.

:class:`StallMeter` runs a 10 ms ``QTimer`` on the main thread and records the time between
its ticks: a tick that comes late is a stall the user would feel (a click or a redraw waiting).
:class:`StallSampler` is a helper thread that, while the main thread is late, takes its Python
stack every few milliseconds; :meth:`StallSampler.report` lists where the stalls were spent.
Used by ``tests/widgets/test_responsiveness.py`` and ``benchmarks/bench_responsiveness.py``;
nothing in the widgets depends on it.
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
from collections import Counter
from contextlib import contextmanager

import numpy as np

__all__ = ["StallMeter", "StallSampler"]


class StallMeter:
    """Intervals between the ticks of a 10 ms timer on the main thread (seconds)."""

    def __init__(self, interval_ms: int = 10) -> None:
        from qtpy.QtCore import QTimer

        self.intervals: list[float] = []
        self._timer = QTimer()
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._tick)
        self.last = 0.0

    def _tick(self) -> None:
        now = time.perf_counter()
        self.intervals.append(now - self.last)
        self.last = now

    @property
    def longest(self) -> float:
        return max(self.intervals, default=0.0)

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.intervals, q)) if self.intervals else 0.0

    def __str__(self) -> str:
        worst = ", ".join(f"{s:.3f}" for s in sorted(self.intervals)[-3:][::-1])
        return f"longest stalls {worst} s over {len(self.intervals)} ticks"

    @contextmanager
    def running(self):
        self.last = time.perf_counter()
        self._timer.start()
        try:
            yield self
        finally:
            self._timer.stop()


def _where(frame, depth: int) -> str:
    """The innermost ``depth`` frames of a stack, innermost last, as ``file:function``."""
    entries = traceback.extract_stack(frame)[-depth:]
    return " > ".join(f"{e.filename.rsplit('/', 1)[-1]}:{e.name}" for e in entries)


class StallSampler:
    """Sample the main thread's stack whenever ``meter`` has not ticked for ``late_s``.

    Python frames only: time spent in C code shows as the Python line that called it. A
    thread needs the GIL to look, so a stall in C code that holds the GIL is seen when that
    code returns, at the caller.
    """

    def __init__(
        self, meter: StallMeter, *, late_s: float = 0.05, every_s: float = 0.005, depth: int = 4
    ) -> None:
        self._meter, self._late, self._every, self._depth = meter, late_s, every_s, depth
        self._main = threading.main_thread().ident
        self.samples: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            if time.perf_counter() - self._meter.last < self._late:
                continue
            frame = sys._current_frames().get(self._main)
            if frame is not None:
                self.samples[_where(frame, self._depth)] += 1

    @contextmanager
    def running(self):
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="stall-sampler", daemon=True)
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join()

    def report(self, top: int = 5) -> list[str]:
        """The most sampled stacks, with the milliseconds they account for."""
        ms = 1000 * self._every
        return [f"{n * ms:6.0f} ms  {where}" for where, n in self.samples.most_common(top)]
