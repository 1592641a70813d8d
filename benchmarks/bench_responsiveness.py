"""How long napari's main thread stalls while the plugin works, phase by phase.

Run under a display (Xvfb on a server)::

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python benchmarks/bench_responsiveness.py
        [--size 1024] [--frames 6] [--sample]

A real viewer with the workflow panel docked (``--single-docks``: each step's own dock, docked
when it is first used, as in the runs before the panel), a synthetic movie of
``--frames`` frames of ``--size`` x ``--size`` pixels with nuclei about 40 px across. Phases:

- ``embed``: Compute embeddings with the PCA view on and the Group widget docked (its live
  preview of the frame in view is built as soon as that frame arrives);
- ``slider``: eight moves of the min-cluster-size slider, each waited for in the preview;
- ``apply``: Apply to all frames;
- ``track``: Track (overlap linking of the instances);
- ``finetune``: 10 fine-tuning steps on 2 curated frames.

A 10 ms timer on the main thread measures the time between its ticks
(:class:`~napari_cosine_embed._widgets._stall_meter.StallMeter`); each phase prints one line,
``PHASE max_ms=N p99_ms=N``, from the click (included) to the end of its work. With
``--sample``, a helper thread takes the main thread's stack whenever it is 50 ms late and the
most sampled places are printed under each phase.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

PLUGIN = "napari-cosine-embed"


def wait_until(condition, timeout: float = 600.0) -> None:
    """Run Qt's event loop (as napari does) until ``condition()`` holds."""
    from qtpy.QtCore import QEventLoop, QTimer

    loop, poll = QEventLoop(), QTimer()
    deadline = time.perf_counter() + timeout

    def check() -> None:
        if condition():
            loop.quit()
        elif time.perf_counter() > deadline:
            loop.quit()
            raise TimeoutError("the phase did not finish in time")

    poll.setInterval(20)
    poll.timeout.connect(check)
    poll.start()
    loop.exec_()
    poll.stop()


class Phase:
    """Meter (and optionally sample) the main thread from a click to the end of a job."""

    def __init__(self, name: str, sample: bool) -> None:
        from napari_cosine_embed._widgets._stall_meter import StallMeter, StallSampler

        self.name, self.meter = name, StallMeter()
        self.sampler = StallSampler(self.meter) if sample else None

    def __enter__(self) -> Phase:
        self._meter_cm = self.meter.running()
        self._meter_cm.__enter__()
        if self.sampler is not None:
            self._sampler_cm = self.sampler.running()
            self._sampler_cm.__enter__()
        self.tic = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        seconds = time.perf_counter() - self.tic
        if self.sampler is not None:
            self._sampler_cm.__exit__(*exc)
        self._meter_cm.__exit__(*exc)
        if exc[0] is not None:
            return
        m = self.meter
        print(
            f"{self.name} max_ms={1000 * m.longest:.0f} p99_ms={1000 * m.percentile(99):.0f}"
            f"  ({seconds:.1f} s, {len(m.intervals)} ticks)",
            flush=True,
        )
        if self.sampler is not None:
            for line in self.sampler.report(8):
                print("    " + line)


def run_job(control, sample: bool, name: str, until=None) -> None:
    """Click a JobControl and wait for its worker (and ``until()``)."""
    with Phase(name, sample):
        control.button.native.click()
        worker = control.worker
        if worker is None:
            raise RuntimeError(f"{name}: the job did not start: {control._status.value}")
        done = []
        worker.finished.connect(lambda: done.append(True))
        wait_until(lambda: bool(done) and (until is None or until()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--sample", action="store_true", help="sample the main thread's stack")
    parser.add_argument(
        "--single-docks",
        action="store_true",
        help="dock each step's own widget when it is used, instead of the workflow panel",
    )
    args = parser.parse_args()

    import napari

    from napari_cosine_embed._widgets._session import session_for
    from napari_cosine_embed.core.synthetic import SyntheticConfig, synthetic_timelapse

    n_cells = max(8, int(150 * (args.size / 1024) ** 2))
    movie = synthetic_timelapse(
        SyntheticConfig(shape=(args.size, args.size), n_frames=args.frames, n_cells=n_cells, seed=3)
    )
    load = os.getloadavg()[0]
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load {load:.1f}; "
        f"{args.frames} frames of {args.size}x{args.size}, {n_cells} nuclei"
    )
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1600, 1000)
    layer = viewer.add_image(movie.image, name="nuclei")
    viewer.dims.set_current_step(0, 0)
    with tempfile.TemporaryDirectory() as tmp:
        session = session_for(viewer)
        session.project_dir = Path(tmp)
        wait_until(lambda: True)  # let the window appear

        if args.single_docks:  # each step its own dock, docked when it is used
            _, group = viewer.window.add_plugin_dock_widget(PLUGIN, "Group")
            _, embed = viewer.window.add_plugin_dock_widget(PLUGIN, "Embed", tabify=True)
            steps = None
        else:  # the workflow panel, as `make demo` and the Plugins menu dock it
            _, panel = viewer.window.add_plugin_dock_widget(PLUGIN, "Cosine Embed")
            steps = panel.steps
            group, embed = steps["Group"], steps["Embed"]
            wait_until(lambda: True)
        with embed._show_pca.changed.blocked():
            embed._show_pca.value = True
        run_job(embed._control, args.sample, "embed", until=lambda: group.preview_frame == 0)
        assert session.store_for(layer).missing() == []

        with Phase("slider", args.sample):
            for value in (300, 600, 100, 1200, 200, 450, 80, 150):
                seen = sum(map(len, group.preview_latencies.values()))
                group._min_cluster_size.value = value
                wait_until(lambda s=seen: sum(map(len, group.preview_latencies.values())) > s)

        run_job(group._apply, args.sample, "apply")
        instances = viewer.layers["instances"]

        if steps is None:
            _, track = viewer.window.add_plugin_dock_widget(PLUGIN, "Track", tabify=True)
        else:
            track = steps["Track"]
        track._labels_choice.value = instances
        # (a Track widget before c2db204 shows its layers at once: no ``shown_result``)
        shown = lambda: getattr(track, "shown_result", None) is None or track.shown_result.done  # noqa: E731
        run_job(track.control, args.sample, "track", until=shown)

        if steps is None:
            _, tune = viewer.window.add_plugin_dock_widget(PLUGIN, "Fine-tune", tabify=True)
        else:
            tune = steps["Fine-tune"]
        for t in (1, args.frames - 2):
            session.set_curated("instances", t)
        tune._labels_choice.value = instances
        tune._steps.value, tune._crop.value, tune._batch.value = 10, 128, 2
        run_job(tune.control, args.sample, "finetune")
        viewer.close()


if __name__ == "__main__":
    sys.exit(main())
