"""napari stays responsive while the Embed and Fine-tune widgets work.

A 10 ms timer on the main thread records the time between its ticks while a job runs in the
widget's worker; the longest interval is how long napari could not answer the user (a redraw, a
click). The handlers that run on the main thread (a frame stored, the PCA layer updated, a loss
point drawn) must stay short, and the worker must not starve the main thread. Had a job run on
the main thread, the stall would be the whole job: seconds.

Measured on the project's 2-core VM, shared with other jobs (load average 1-4), under Xvfb,
2026-11-21, 5-8 runs each (the click itself; then the longest stall while the worker ran):

- embedding 10 frames of 512x512 with the PCA view: click 0.10-0.23 s; stalls 0.08-0.48 s;
- the same with the Group widget docked, whose live preview of frame 0 is built while the rest
  of the movie is embedded: click 0.12-0.21 s; stalls 0.26-0.98 s;
- fine-tuning 6 steps (crop 128, batch 2): click 0.02-0.08 s; stalls 0.11-0.44 s.

Where the stalls over 0.1 s come from: napari creating a layer on the main thread (the PCA
layer's first draw, about 0.2 s; the Group widget's first "preview" labels layer, 0.35 s under
load), C code that holds the GIL in a worker (the Fine-tune worker's set-up, hdbscan's Boruvka
tree: 0.1-0.15 s at a time even on a quiet machine), and the other processes on the machine.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable

import numpy as np
import pytest

from napari_cosine_embed._widgets._session import session_for
from napari_cosine_embed._widgets._stall_meter import StallMeter
from napari_cosine_embed.core.synthetic import SyntheticConfig, synthetic_timelapse

PLUGIN = "napari-cosine-embed"
#: Above the worst seen on the loaded 2-core VM (0.48 s); a quiet machine stays near 0.1 s.
MAX_STALL = 0.75
#: A slider move on a 1024x1024 frame: the cut runs in a worker, so the main thread only
#: updates the preview layer (45 ms at most on the idle VM; a cut on the main thread took 200 ms).
MAX_SLIDER_STALL = 0.25
#: With the Group widget's first preview made beside the embedding (see the module docstring).
MAX_STALL_WITH_PREVIEW = 1.5


@pytest.fixture(scope="module")
def movie():
    return synthetic_timelapse(SyntheticConfig(shape=(512, 512), n_frames=10, n_cells=40, seed=3))


@pytest.fixture(autouse=True)
def _own_heap():
    """Measure stalls against this test's objects, not the whole suite's.

    After hundreds of tests the heap holds every object they left behind, and a full garbage
    collection that lands in a measured phase walks all of them (the 1024x1024 track phase,
    0.29 s with this test run alone, measured 0.458 s late in a full run). A user's viewer
    has no such heap: collect it once and freeze it (the collector skips frozen objects),
    then thaw.
    """
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


def _run_measured(
    qtbot, control, *, until: Callable[[], bool] | None = None, min_ticks: int = 20
) -> tuple[float, StallMeter]:
    """Click a JobControl's button; measure until its worker finishes (and ``until()`` holds).

    Returns how long the click itself took (the inputs are read and checked on the main thread
    before the worker starts) and the meter of the stalls after it.
    """
    meter = StallMeter()
    tic = time.perf_counter()
    control.button.native.click()
    click = time.perf_counter() - tic
    worker = control.worker
    assert worker is not None, control._status.value
    with meter.running():
        with qtbot.waitSignal(worker.finished, timeout=120_000):
            pass
        if until is not None:
            qtbot.waitUntil(until, timeout=60_000)
    # the job took many ticks: the meter saw it all, not a blink
    assert len(meter.intervals) > min_ticks
    return click, meter


@pytest.mark.parametrize(
    ("with_group", "bound"),
    [(False, MAX_STALL), (True, MAX_STALL_WITH_PREVIEW)],
    ids=["embed", "embed+group"],
)
def test_embedding_keeps_napari_responsive(make_napari_viewer, qtbot, movie, with_group, bound):
    viewer = make_napari_viewer(show=True)
    layer = viewer.add_image(movie.image, name="nuclei")
    viewer.dims.set_current_step(0, 0)
    until = None
    if with_group:  # as in `make demo`; the preview of frame 0 is built as soon as it arrives
        _, group = viewer.window.add_plugin_dock_widget(PLUGIN, "Group")

        def until() -> bool:
            return group.preview_frame == 0  # built and shown

    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Embed", tabify=True)
    with widget._show_pca.changed.blocked():  # ticking it would start the job unmeasured
        widget._show_pca.value = True
    click, meter = _run_measured(qtbot, widget._control, until=until)
    what = "with the Group widget" if with_group else "alone"
    print(f"\nembedding 10 frames of 512x512, {what}: click {click:.3f} s, then {meter}")

    assert session_for(viewer).store_for(layer).missing() == []
    shown = viewer.layers["embedding PCA"].data
    assert shown.shape == (10, 512, 512, 3)
    assert all(shown[t].any() for t in range(10))  # every frame was coloured on arrival
    if with_group:
        assert viewer.layers["preview"].data.max() > 20  # the preview found the nuclei
    assert click < MAX_STALL
    assert meter.longest < bound


def test_finetuning_keeps_napari_responsive(make_napari_viewer, qtbot, movie, tmp_path):
    viewer = make_napari_viewer(show=True)
    viewer.add_image(movie.image, name="nuclei")
    viewer.add_labels(np.asarray(movie.labels), name="corrected")
    session = session_for(viewer)
    session.project_dir = tmp_path  # the new model is saved there, not in the home folder
    for t in (2, 7):
        session.set_curated("corrected", t)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Fine-tune")
    widget._steps.value = 6
    widget._crop.value, widget._batch.value = 128, 2
    widget._val_fraction.value = 0.5
    click, meter = _run_measured(qtbot, widget.control)
    print(f"\nfine-tuning 6 steps: click {click:.3f} s, then {meter}")

    assert [step for step, _ in widget.plot.loss] == [1, 2, 3, 4, 5, 6]
    assert widget.saved is not None
    assert widget.saved.parent == tmp_path / "models"
    assert click < MAX_STALL
    assert meter.longest < MAX_STALL


def test_estimating_the_diameter_keeps_napari_responsive(make_napari_viewer, qtbot, movie):
    """The Group widget's Estimate diameter measures 3 stored frames in a worker: the main
    thread only sets the controls when it returns (live preview off, so only the estimate)."""
    from napari_cosine_embed.core.checkpoint import load_model
    from napari_cosine_embed.core.embed import iter_embed

    viewer = make_napari_viewer()
    layer = viewer.add_image(movie.image, name="nuclei")
    store = session_for(viewer).store_for(layer)
    for result in iter_embed(load_model("default"), movie.image, device="cpu"):
        store.put(result.t, result.embedding, result.foreground)
    _, group = viewer.window.add_plugin_dock_widget(PLUGIN, "Group")
    group._live.value = False
    meter = StallMeter()
    with meter.running():
        group.estimate_diameter()
        assert group._estimator is not None  # started in a worker, not run here
        qtbot.waitUntil(
            lambda: group._diameter.value > 0 and group._estimator is None, timeout=60_000
        )
    assert len(meter.intervals) > 5
    assert meter.longest < MAX_STALL, str(meter)
    print(meter)


def test_slider_moves_keep_napari_responsive_on_a_large_frame(
    make_napari_viewer, qtbot, monkeypatch
):
    """Moving min cluster size re-cuts the cached tree of a 1024x1024 frame (0.1-0.2 s with
    its clean-up): in the worker, not on the main thread, and every move is still shown."""
    from napari_cosine_embed.core.checkpoint import load_model
    from napari_cosine_embed.core.embed import iter_embed

    big = synthetic_timelapse(
        SyntheticConfig(shape=(1024, 1024), n_frames=1, n_cells=150, seed=3)
    ).image
    viewer = make_napari_viewer(show=True)
    layer = viewer.add_image(big, name="nuclei")
    store = session_for(viewer).store_for(layer)
    for result in iter_embed(load_model("default"), big, device="cpu"):
        store.put(result.t, result.embedding, result.foreground)
    _, group = viewer.window.add_plugin_dock_widget(PLUGIN, "Group")
    group._auto_diameter.value = False
    group.refresh_preview()
    qtbot.waitUntil(lambda: group.preview_frame == 0, timeout=60_000)  # the tree is built
    builds = group.builds
    from napari_cosine_embed._widgets import _grouping

    cut, cut_on = _grouping.cut, []

    def recorded_cut(*args, **kwargs):
        cut_on.append(threading.current_thread() is threading.main_thread())
        return cut(*args, **kwargs)

    monkeypatch.setattr(_grouping, "cut", recorded_cut)

    def shown() -> int:
        return sum(map(len, group.preview_latencies.values()))

    meter = StallMeter()
    counts, shown_labels = [], []
    with meter.running():
        for value in (300, 600, 100, 1200, 200, 80):
            before = shown()
            group._min_cluster_size.value = value
            qtbot.waitUntil(lambda b=before: shown() > b, timeout=20_000)
            counts.append(int(viewer.layers["preview"].data.max()))
            shown_labels.append(np.array(viewer.layers["preview"].data))
    print(f"\nslider sweep on 1024x1024: {meter}; objects {counts}")
    assert group.builds == builds  # every move only re-cut the cached tree
    assert cut_on
    assert not any(cut_on)  # ...and never on the main thread
    # each move showed its own cut: the preview of 100 px clusters differs from 1200 px ones
    assert not np.array_equal(shown_labels[2], shown_labels[3])
    assert len(meter.intervals) > 20
    assert meter.longest < MAX_SLIDER_STALL, str(meter)


#: Each phase on a 1024x1024 movie. What is left above 100 ms on the idle VM is napari
#: inserting a new layer (0.1-0.2 s, docs/benchmarks.md "Main-thread stalls ... phase by
#: phase"); twice that leaves room for a loaded CI machine.
MAX_STALL_1024 = 0.4
#: ...on a machine where napari itself is slower, each phase may take this many times what
#: napari takes to insert and draw one labels layer of the movie's size (measured in the test):
#: on a slower VM (2026-12-07, seventh session) that was 0.29-0.31 s, and the phases 0.25-0.66 s
#: (up to 1.9 insertions). A job run on the main thread would stall for seconds.
STALLS_PER_INSERTION = 2.5


def _napari_insertion_seconds(viewer, shape: tuple[int, ...], repeats: int = 2) -> float:
    """How long this machine's napari takes to insert and first draw a labels layer (s)."""
    from qtpy.QtWidgets import QApplication

    app = QApplication.instance()
    best = np.inf
    for i in range(repeats):
        tic = time.perf_counter()
        viewer.add_labels(np.zeros(shape, np.int32), name=f"reference {i}")
        app.processEvents()
        best = min(best, time.perf_counter() - tic)
    return float(best)


def test_embed_apply_and_track_keep_napari_responsive_on_1024x1024(make_napari_viewer, qtbot):
    big = synthetic_timelapse(
        SyntheticConfig(shape=(1024, 1024), n_frames=3, n_cells=150, seed=3)
    ).image
    viewer = make_napari_viewer(show=True)
    layer = viewer.add_image(big, name="nuclei")
    viewer.dims.set_current_step(0, 0)
    _, group = viewer.window.add_plugin_dock_widget(PLUGIN, "Group")
    _, embed = viewer.window.add_plugin_dock_widget(PLUGIN, "Embed", tabify=True)
    _, track = viewer.window.add_plugin_dock_widget(PLUGIN, "Track", tabify=True)
    longest = {}

    click, meter = _run_measured(qtbot, embed._control, until=lambda: group.preview_frame == 0)
    longest["embed"] = max(click, meter.longest)
    assert session_for(viewer).store_for(layer).missing() == []

    click, meter = _run_measured(qtbot, group._apply)
    longest["apply"] = max(click, meter.longest)
    instances = viewer.layers["instances"]
    assert all(instances.data[t].max() > 50 for t in range(3))

    track._labels_choice.value = instances
    click, meter = _run_measured(
        qtbot, track.control, until=lambda: track.shown_result.done, min_ticks=5
    )
    longest["track"] = max(click, meter.longest)
    assert viewer.layers["tracked"].data.max() > 50
    # the machine's own napari, as a yardstick: the same insertion the phases cannot avoid
    insertion = _napari_insertion_seconds(viewer, big.shape)
    bound = max(MAX_STALL_1024, STALLS_PER_INSERTION * insertion)
    print(
        f"\n1024x1024, longest main-thread stalls (s): {longest}; napari inserts a labels layer "
        f"in {insertion:.3f} s here, so the bound is {bound:.2f} s"
    )
    for phase, seconds in longest.items():
        assert seconds < bound, (phase, seconds, f"napari's own insertion: {insertion:.3f} s")
