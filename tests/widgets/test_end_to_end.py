"""The whole workflow through the six docked widgets, on the first 5 frames of the sample.

Embed -> live preview -> a new min cluster size changes the preview -> apply to all frames ->
track -> merge two labels and undo (exact restore) -> mark frames curated -> fine-tune 5 steps
-> export a CTC result folder, read back equal to the layers. Every job runs in its widget's
worker, as for a user; the test waits for the workers' ``finished`` signals.
"""

from __future__ import annotations

import numpy as np
import pytest

from napari_cosine_embed._demo import WIDGETS, dock_widgets, set_up_demo
from napari_cosine_embed._sample_data import synthetic_timelapse_sample
from napari_cosine_embed._widgets import _autosave
from napari_cosine_embed._widgets._session import session_for
from napari_cosine_embed._widgets.group import group_frame
from napari_cosine_embed.core.io.ctc import read_ctc_result
from napari_cosine_embed.core.metrics.instances import instance_scores

N_FRAMES = 5
T = 2  # the frame in view


@pytest.fixture(scope="module")
def sample():
    (image, _, _), (truth, _, _), _ = synthetic_timelapse_sample()
    return np.asarray(image[:N_FRAMES]), np.asarray(truth[:N_FRAMES])


@pytest.fixture(autouse=True)
def no_home_projects(tmp_path, monkeypatch):
    """The Correct widget's default project folder goes under tmp_path, never the home."""
    default = _autosave.default_project_dir
    monkeypatch.setattr(
        _autosave,
        "default_project_dir",
        lambda name, *, root=tmp_path / "projects": default(name, root=root),
    )


def _run(qtbot, control, timeout=120_000):
    """Click a JobControl's button and wait for its worker to finish."""
    control.button.native.click()
    worker = control.worker
    assert worker is not None, control._status.value
    with qtbot.waitSignal(worker.finished, timeout=timeout):
        pass
    assert control.worker is None


def _objects(frame: np.ndarray) -> set[int]:
    return set(np.unique(frame[frame > 0]).tolist())


def test_segment_track_correct_finetune_export(make_napari_viewer, qtbot, sample, tmp_path):
    image_data, truth = sample
    viewer = make_napari_viewer(show=True)
    image = viewer.add_image(image_data, name="nuclei")
    viewer.dims.set_current_step(0, T)
    widgets = dock_widgets(viewer)  # through the manifest, as `make demo` docks them
    session = session_for(viewer)
    embed, group, track = widgets["Embed"], widgets["Group"], widgets["Track"]
    correct, finetune, export = widgets["Correct"], widgets["Fine-tune"], widgets["Export"]

    # embed: every frame cached; the Group widget previews the frame in view when it arrives
    _run(qtbot, embed._control)
    assert session.store_for(image).missing() == []
    qtbot.waitUntil(lambda: group.preview_frame == T, timeout=30_000)
    preview = viewer.layers["preview"]
    first = np.array(preview.data[0])
    assert instance_scores([truth[T]], [first])["F1_50"] > 0.8

    # a larger min cluster size: the cached tree is cut again, the preview changes
    before = len(group.preview_latencies.get("min_cluster_size", []))
    group.set_params(min_cluster_size=400)
    qtbot.waitUntil(
        lambda: len(group.preview_latencies.get("min_cluster_size", [])) > before, timeout=10_000
    )
    second = np.array(preview.data[0])
    assert not np.array_equal(first, second)
    # what the preview shows is the new cut (merged clusters are parted again into their
    # connected pieces, so the count of nuclei here may stay the same)
    emb, fg = session.store_for(image).get(T)
    np.testing.assert_array_equal(second, group_frame(emb, fg, group.params()))
    group.set_params(min_cluster_size=50)
    qtbot.waitUntil(lambda: np.array_equal(preview.data[0], first), timeout=10_000)

    # apply to all frames: the frame in view equals its preview
    _run(qtbot, group._apply)
    instances = viewer.layers["instances"]
    assert instances.data.shape == image_data.shape
    np.testing.assert_array_equal(instances.data[T], first)
    assert all(len(_objects(instances.data[t])) > 5 for t in range(N_FRAMES))

    # track by overlap: one label per track, the tracks layer names the same ids
    track._labels_choice.value = instances
    _run(qtbot, track.control)
    qtbot.waitUntil(lambda: track.shown_result.done, timeout=5_000)  # layers shown one per turn
    tracked, tracks = viewer.layers["tracked"], viewer.layers["tracks"]
    ids = set().union(*(_objects(tracked.data[t]) for t in range(N_FRAMES)))
    assert set(np.unique(tracks.data[:, 0]).astype(int).tolist()) == ids
    np.testing.assert_array_equal(tracked.data > 0, instances.data > 0)

    # correct: merge two labels of the frame in view, then napari's undo restores it exactly
    correct._image.value = image
    correct._labels_box.value = tracked
    correct.set_project_dir(tmp_path / "project")  # each labels layer has its own project
    before_merge = np.array(tracked.data)
    a, b = sorted(_objects(tracked.data[T]))[:2]
    correct._ids.value = f"{a}, {b}"
    asked = []
    correct.confirm = lambda question: asked.append(question) or True  # the user says yes
    correct.merge()
    assert len(asked) <= 1  # asked only if the two nuclei do not touch
    merged = tracked.data[T]
    assert b not in _objects(merged)
    np.testing.assert_array_equal(merged == a, (before_merge[T] == a) | (before_merge[T] == b))
    tracked.undo()
    np.testing.assert_array_equal(tracked.data, before_merge)

    # mark two frames curated, fine-tune 5 steps on them
    for t in (1, 3):
        viewer.dims.set_current_step(0, t)
        correct.mark_curated()
    assert session.curated_frames("tracked") == [1, 3]
    finetune._image.value = image
    finetune._labels_choice.value = tracked
    finetune._steps.value = 5
    finetune._crop.value, finetune._batch.value = 64, 1
    _run(qtbot, finetune.control)
    assert [step for step, _ in finetune.plot.loss] == [1, 2, 3, 4, 5]
    assert finetune.saved == tmp_path / "project" / "models" / "finetuned-001.pt"

    # export a CTC result and read it back: the tracked labels and the lineage of the tracks
    out = tmp_path / "01_RES"
    export._labels_choice.value = tracked
    export._tracks.value = tracks
    export._path.value = out
    _run(qtbot, export.control)
    labels, lineage = read_ctc_result(out)
    np.testing.assert_array_equal(labels, tracked.data)
    parents = {int(child): int(ps[0]) for child, ps in tracks.graph.items()}
    expected = []
    for label in sorted(ids):
        frames = [t for t in range(N_FRAMES) if label in _objects(tracked.data[t])]
        expected.append([label, frames[0], frames[-1], parents.get(label, 0)])
    np.testing.assert_array_equal(lineage, expected)


def test_demo_docks_the_workflow_panel_that_fits_the_screen(make_napari_viewer, qtbot):
    # set_up_demo is what `make demo` runs on its own viewer; the fixture's viewer keeps napari's
    # plugin registry isolated between tests
    viewer = make_napari_viewer(show=True)
    set_up_demo(viewer)
    window = viewer.window._qt_window
    dock, panel = viewer.window.add_plugin_dock_widget("napari-cosine-embed", "Cosine Embed")
    assert list(panel.steps) == list(WIDGETS)
    assert window.width() <= 1600
    assert window.height() <= 1000
    assert panel.minimumSizeHint().height() < 700  # each step scrolls inside its tab
    qtbot.wait(300)  # laid out
    assert dock.width() < window.width() // 2, (dock.width(), window.width())
    assert viewer.layers["synthetic nuclei"].visible
    assert not viewer.layers["synthetic nuclei GT"].visible
    assert viewer.dims.current_step[0] == 20
