"""Latency of the Group widget's live preview, measured in a real napari viewer.

A synthetic 512 x 512 movie (3 frames, about 56 nuclei) is embedded with the bundled default
model through the Embed widget; then the Group widget's controls are moved one at a time and the
widget's own clock is read (:attr:`GroupWidget.preview_latencies`): seconds from the control's
change to the preview layer holding the new labels. That includes the 50 ms debounce, the
clustering, the clean-up and napari's update of the layer, but not the next repaint.

* ``min_cluster_size`` change: re-cuts the cached HDBSCAN tree on the main thread. Each value is
  new, so no cut is served from the grouper's cache.
* ``min_samples`` change: builds a new tree in a worker (each value new), then cuts it.

Run under a display, e.g. ``xvfb-run -a .venv/bin/python benchmarks/bench_preview_latency.py``.
Prints a Markdown table (for docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import time


def wait_until(condition, timeout: float = 120.0) -> None:
    """Run the Qt event loop until ``condition()`` holds (checked every millisecond)."""
    from qtpy.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    deadline = time.perf_counter() + timeout
    poll = QTimer()
    poll.setInterval(1)
    poll.timeout.connect(
        lambda: loop.quit() if condition() or time.perf_counter() > deadline else None
    )
    poll.start()
    if not condition():
        loop.exec()
    poll.stop()
    if not condition():
        raise TimeoutError("the widget did not answer in time")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=7, help="changes per control")
    args = parser.parse_args()

    import napari

    from napari_cosine_embed.core.synthetic import SyntheticConfig, synthetic_timelapse

    cells = round(56 * (args.size / 512) ** 2)
    movie = synthetic_timelapse(
        SyntheticConfig(shape=(args.size, args.size), n_frames=3, n_cells=cells, seed=7)
    )
    viewer = napari.Viewer(show=True)
    try:
        layer = viewer.add_image(movie.image, name="nuclei")
        viewer.dims.set_current_step(0, 1)
        _, embed = viewer.window.add_plugin_dock_widget("napari-cosine-embed", "Embed")
        _, group = viewer.window.add_plugin_dock_widget("napari-cosine-embed", "Group")
        tic = time.perf_counter()
        embed.compute()
        wait_until(lambda: not embed._control.running)
        embed_s = time.perf_counter() - tic
        wait_until(lambda: group.preview_frame == 1)
        store = group._session.store_for(layer)
        _, foreground = store.get(1)
        n_fg = int((foreground >= group.params().threshold).sum())

        def measure(name: str, values) -> list[float]:
            times = group.preview_latencies.setdefault(name, [])
            for i, value in enumerate(values):
                group.set_params(**{name: value})
                wait_until(lambda i=i: len(times) > i)
            return times

        n = args.repeats
        mcs = measure("min_cluster_size", [60 + 10 * i for i in range(n)])
        ms = measure("min_samples", [11 + i for i in range(n)])
        objects = int(viewer.layers["preview"].data.max())
    finally:
        viewer.close()

    def cell(values: list[float]) -> str:
        ms_ = [1000 * v for v in values]
        return f"**{statistics.median(ms_):.0f}** ({min(ms_):.0f}-{max(ms_):.0f})"

    load = "/".join(f"{v:.1f}" for v in os.getloadavg())
    print(
        "| frame | foreground px | objects | embed 3 frames (s) | min_cluster_size change, ms "
        "median (min-max) | min_samples change, ms median (min-max) | load | date |"
    )
    print("|---|---:|---:|---:|---:|---:|---|---|")
    print(
        f"| {args.size}x{args.size} | {n_fg} | {objects} | {embed_s:.1f} | {cell(mcs)} | "
        f"{cell(ms)} | {load} | {datetime.date.today()} |"
    )


if __name__ == "__main__":
    main()
