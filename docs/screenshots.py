"""Regenerate the screenshots in docs/images (run under Xvfb: ``make screenshots``).

Drives the workflow panel through the whole workflow on the synthetic sample, as a user would
(embed with the PCA view, preview and apply the grouping, track, correct with click-to-add,
fine-tune, export), and grabs the window at each step, twice: in a 1366x768 window (a laptop;
``docs/images/*.png``) and in a 1920x1080 one (``docs/images/1920x1080/*.png``):

- ``embed.png``, ``group.png``, ``track.png``, ``correct.png``, ``lineage.png``,
  ``finetune.png``, ``export.png``: one per step, that step's tab in front (``lineage.png``
  with the lineage view docked below the canvas);
- ``demo.png``: the window at the end, the tracked result over the movie;
- ``lineage_sim.png``: the Lineage step on the first 60 frames of the dev sequence
  Fluo-N2DH-SIM+ 02 segmented and tracked with the bundled model (only where
  ``../shared/data`` is; the CTC data is not ours to ship, the picture is).

The sample's ground truth stands in for frames a user corrected completely when fine-tuning.

Each job runs in the widget's worker, as it does for a user; the script waits for it by running
Qt's event loop until the job's condition holds, so the progress signals are delivered. Projects,
models and exports go to a temporary folder that is removed at the end.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from qtpy.QtCore import QEventLoop, QTimer
from qtpy.QtWidgets import QApplication

from napari_cosine_embed._demo import make_demo_viewer, show_tab
from napari_cosine_embed._widgets._session import session_for

FRAME = 20  # the frame shown: cells have moved and some have divided
LATER = 35  # the frame of the overview: long tracks, several divisions
FINETUNE_STEPS = 40


def wait_until(condition: Callable[[], bool], timeout: float = 300.0) -> None:
    """Run the event loop until ``condition()`` holds (checked every 50 ms)."""
    loop = QEventLoop()
    poll = QTimer()
    poll.timeout.connect(lambda: condition() and loop.quit())
    poll.start(50)
    QTimer.singleShot(int(timeout * 1000), loop.quit)
    if not condition():
        loop.exec()
    poll.stop()
    if not condition():
        raise TimeoutError(f"gave up after {timeout:.0f} s")


def settle(seconds: float = 0.3) -> None:
    """Let Qt lay out and paint (and vispy draw) before a grab."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        QApplication.processEvents()
        time.sleep(0.02)


def run_job(control) -> None:
    """Click a widget's Run button and wait for its worker to finish."""
    control.button.native.click()
    if control.worker is None:
        raise RuntimeError(f"the job did not start: {control._status.value}")
    wait_until(lambda: control.worker is None)


def wait_for_preview(group, change: str, action: Callable[[], object]) -> None:
    """Do ``action`` and wait until the Group widget shows the preview that ``change`` caused."""
    shown = len(group.preview_latencies.get(change, []))
    action()
    wait_until(lambda: len(group.preview_latencies.get(change, [])) > shown)


def only_visible(viewer, *names: str) -> None:
    """Show the layers named, hide the others."""
    for layer in viewer.layers:
        layer.visible = layer.name in names


def grab(viewer, path: Path) -> None:
    """Save the whole window as a 256-colour PNG (less than half the size, looks the same)."""
    from PIL import Image  # a dependency of napari

    settle()
    pixels = viewer.screenshot(canvas_only=False, flash=False)
    image = Image.fromarray(np.ascontiguousarray(pixels[..., :3]))
    image.quantize(256, dither=Image.Dither.NONE).save(path, optimize=True)
    print(f"wrote {path}")


#: Window sizes and the folder (under the output folder) their screenshots go to.
SIZES = (((1366, 768), "."), ((1920, 1080), "1920x1080"))


def main(out_dir: str) -> None:
    sim = dev_sequence()
    for size, sub in SIZES:
        shoot(Path(out_dir) / sub, size)
        if sim is not None:
            shoot_dev_sequence(Path(out_dir) / sub, size, *sim)


def lineage_step(viewer, path: Path) -> None:
    """The Lineage tab with the lineage view docked, a division of the review list in focus."""
    lineage = show_tab(viewer, "Lineage")
    lineage._labels_box.value = viewer.layers["tracked"]
    lineage._tracks_box.value = viewer.layers["tracks"]
    wait_until(lambda: lineage.state is not None and lineage.state.ready)
    view = lineage.show_lineage()
    settle()
    rows = [i for i, row in enumerate(lineage._shown) if row.kind == "division"]
    if rows:
        lineage._table.setCurrentCell(rows[0], 1)
    view.highlight(int(viewer.layers["tracked"].selected_label))
    only_visible(viewer, "synthetic nuclei", "tracked", "tracks")
    grab(viewer, path)


SIM = Path(__file__).resolve().parents[2] / "shared" / "data" / "ctc" / "Fluo-N2DH-SIM+" / "02"
SIM_FRAMES = 60


def dev_sequence():
    """The first frames of Fluo-N2DH-SIM+ 02, segmented and tracked; None without the data."""
    if not SIM.is_dir():
        print(f"no {SIM}: lineage_sim.png not made")
        return None
    from napari_cosine_embed.core.io import read_ctc_sequence
    from napari_cosine_embed.core.pipeline import PipelineConfig, run_pipeline

    image = np.asarray(read_ctc_sequence(SIM, lazy=True)[:SIM_FRAMES])
    gen = run_pipeline(image, PipelineConfig())
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            result = stop.value
            break
    return image, result


def shoot_dev_sequence(out: Path, size: tuple[int, int], image, result) -> None:
    """The Lineage step on a tracked dev CTC sequence."""
    import napari

    from napari_cosine_embed._reader import _contrast_limits

    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(*size)
    viewer.add_image(image, name="Fluo-N2DH-SIM+ 02", contrast_limits=_contrast_limits(image))
    viewer.add_labels(result.labels, name="tracked", opacity=0.5)
    viewer.add_tracks(result.tracks, graph=result.graph, name="tracks", tail_length=10)
    _, widget = viewer.window.add_plugin_dock_widget("napari-cosine-embed", "Lineage")
    widget._labels_box.value = viewer.layers["tracked"]
    widget._tracks_box.value = viewer.layers["tracks"]
    wait_until(lambda: widget.state is not None and widget.state.ready)
    widget.show_lineage()
    viewer.reset_view()
    settle(0.5)
    rows = [i for i, row in enumerate(widget._shown) if row.kind == "division"]
    widget._table.setCurrentCell(rows[len(rows) // 2] if rows else 0, 1)
    grab(viewer, out / "lineage_sim.png")
    viewer.close()


def shoot(out: Path, size: tuple[int, int]) -> None:
    """The whole workflow in a window of ``size``, a screenshot per step into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    viewer = make_demo_viewer(show=True)
    window = viewer.window._qt_window
    window.resize(*size)
    settle(1.0)
    if (window.width(), window.height()) != size:
        raise RuntimeError(f"the screen is too small for a {size} window (Xvfb -screen?)")
    viewer.reset_view()  # fit the movie to the canvas left beside the docks
    viewer.dims.set_current_step(0, FRAME)
    image = viewer.layers["synthetic nuclei"]
    with tempfile.TemporaryDirectory(prefix="nce-screenshots-") as tmp:
        tmp = Path(tmp)

        # Embed, with the PCA colours of the embeddings
        embed = show_tab(viewer, "Embed")
        embed._show_pca.value = True  # ticking it starts the job
        wait_until(lambda: embed._control.worker is None)
        only_visible(viewer, "synthetic nuclei", "embedding PCA")  # Group previewed meanwhile
        viewer.layers.selection.active = image
        grab(viewer, out / "embed.png")

        # Group: the live preview of the frame in view, then every frame
        group = show_tab(viewer, "Group")
        only_visible(viewer, "synthetic nuclei", "preview")
        group.estimate_diameter()  # the object diameter, measured from the embeddings
        wait_until(lambda: group._diameter.value > 0 and group._estimator is None)
        # one debounced rebuild for both; it is recorded under the last control set
        wait_for_preview(
            group,
            "min_cluster_size",
            lambda: group.set_params(min_samples=20, min_cluster_size=100),
        )
        grab(viewer, out / "group.png")
        run_job(group._apply)

        # Track the instances by overlap
        track = show_tab(viewer, "Track")
        track._labels_choice.value = viewer.layers["instances"]
        run_job(track.control)
        wait_until(lambda: track.shown_result.done)  # its layers are shown one per turn
        only_visible(viewer, "synthetic nuclei", "tracked", "tracks")
        grab(viewer, out / "track.png")

        # Correct: delete an object, then click it back with click-to-add
        correct = show_tab(viewer, "Correct")
        correct._image.value = image
        correct._labels_box.value = tracked = viewer.layers["tracked"]
        correct.set_project_dir(tmp / "project")  # after choosing the layer: one per layer
        frame = tracked.data[FRAME]
        ids, sizes = np.unique(frame[frame > 0], return_counts=True)
        victim = int(ids[np.argmax(sizes)])
        ys, xs = np.nonzero(frame == victim)
        correct._ids.value = str(victim)
        correct.delete()
        correct.mark_curated()
        correct._add_mode.value = True
        correct.click_at((FRAME, float(np.median(ys)), float(np.median(xs))))
        viewer.layers.selection.active = tracked
        tracked.contour = 2  # outlines, so that the filled preview stands out
        grab(viewer, out / "correct.png")
        tracked.contour = 0
        correct.accept()
        correct._add_mode.value = False
        correct.flush_autosave()

        # Lineage: the review list and the lineage view, a division in focus
        lineage_step(viewer, out / "lineage.png")

        # Fine-tune. The ground truth of the sample stands in for frames a user corrected
        # completely (the automatic labels above still hold errors, which it would learn).
        truth = viewer.layers["synthetic nuclei GT"]
        session = session_for(viewer)
        for t in (FRAME, FRAME + 10):  # one to train on, one held out for validation
            session.set_curated(truth.name, t)
        only_visible(viewer, "synthetic nuclei", truth.name)
        viewer.reset_view()  # the Lineage step zoomed to a division; the whole movie again
        viewer.layers.selection.active = truth
        finetune = show_tab(viewer, "Fine-tune")
        finetune._image.value = image
        finetune._labels_choice.value = truth
        finetune._steps.value = FINETUNE_STEPS
        finetune._crop.value, finetune._batch.value = 128, 2
        finetune._val_fraction.value = 0.5
        run_job(finetune.control)
        grab(viewer, out / "finetune.png")

        # Export the tracked labels and their lineage as a CTC result folder
        only_visible(viewer, "synthetic nuclei", "tracked", "tracks")
        export = show_tab(viewer, "Export")
        export._labels_choice.value = tracked
        export._tracks.value = viewer.layers["tracks"]
        export._path.value = tmp / "01_RES"
        run_job(export.control)
        viewer.layers.selection.active = tracked
        grab(viewer, out / "export.png")

        # The whole window: the tracked result later in the movie, the Group widget in front
        show_tab(viewer, "Group")
        viewer.layers.selection.active = image
        wait_for_preview(group, "frame", lambda: viewer.dims.set_current_step(0, LATER))
        grab(viewer, out / "demo.png")
    viewer.close()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/images")
