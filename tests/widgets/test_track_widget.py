"""Track widget: overlap linking and pair clustering, driven through the manifest."""

from __future__ import annotations

import numpy as np
import pytest
from napari.utils.notifications import notification_manager

from napari_cosine_embed._sample_data import synthetic_timelapse_sample
from napari_cosine_embed._widgets._session import session_for
from napari_cosine_embed._widgets.track import PAIRS
from napari_cosine_embed.core.grouping._synthetic import embedding_from_labels
from napari_cosine_embed.core.io.lineage import check_lineage, lineage_from_labels
from napari_cosine_embed.core.metrics import tra_score

PLUGIN = "napari-cosine-embed"
N_FRAMES = 6  # the sample's first division is at frame 4


@pytest.fixture(scope="module")
def sample():
    """The first frames of the sample: image, ground-truth labels and their lineage."""
    (image, _, _), (labels, _, _), (_, tracks_meta, _) = synthetic_timelapse_sample()
    gt = np.asarray(labels[:N_FRAMES])
    # the sample's lineage cut to these frames, its parents taken from the division graph
    present = set(np.unique(gt).tolist())
    parents = {c: p[0] for c, p in tracks_meta["graph"].items() if c in present}
    lineage = lineage_from_labels(gt, parents=parents)
    assert (lineage[:, 3] > 0).sum() == 2, "expected one division in the first frames"
    return np.asarray(image[:N_FRAMES]), gt, lineage


def _shuffle_per_frame(labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """Random ids in every frame, so that ids tell nothing across frames."""
    rng = np.random.default_rng(seed)
    out = np.zeros(labels.shape, np.int32)
    for t in range(labels.shape[0]):
        lut = rng.permutation(10_000)[: int(labels.max()) + 1] + 1
        lut[0] = 0
        out[t] = lut[labels[t]]
    return out


def _dock(viewer, *, keep_all: bool = True):
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Track")
    if keep_all:
        # Daughter 16 of the sample is small and short-lived: the default cleanup would
        # (rightly, for a real movie) merge that division back. Keep every track here.
        widget._min_track_length.value = 1
        widget._min_split_frames.value = 1
        widget._min_child_ratio.value = 0.0
        widget._max_gap.value = 0
    return widget


def _click_and_wait(qtbot, widget, timeout=60_000):
    widget.control.button.native.click()
    worker = widget.control.worker
    assert worker is not None, "the job did not start"
    with qtbot.waitSignal(worker.finished, timeout=timeout):
        pass
    # the output layers are shown one per turn of the event loop
    if widget.shown_result is not None:
        qtbot.waitUntil(lambda: widget.shown_result.done, timeout=5_000)


def _expected(gt: np.ndarray, lineage: np.ndarray, result: np.ndarray) -> list[list[int]]:
    """The GT lineage in the result's ids (asserting both partition pixels identically)."""
    assert np.array_equal(gt > 0, result > 0)
    pairs = np.unique(np.stack([gt[gt > 0], result[gt > 0]]), axis=1)
    assert np.unique(pairs[0]).size == pairs.shape[1] == np.unique(pairs[1]).size
    ids = dict(zip(pairs[0].tolist(), pairs[1].tolist(), strict=True))
    ids[0] = 0
    return sorted([ids[lab], first, last, ids[parent]] for lab, first, last, parent in lineage)


def test_overlap_linking_recovers_the_sample_lineage(make_napari_viewer, qtbot, sample):
    _, gt, lineage = sample
    viewer = make_napari_viewer()
    viewer.add_labels(_shuffle_per_frame(gt), name="instances")
    widget = _dock(viewer)
    assert widget._labels_choice.value is viewer.layers["instances"]
    _click_and_wait(qtbot, widget)

    tracked, tracks = viewer.layers["tracked"], viewer.layers["tracks"]
    assert type(tracks).__name__ == "Tracks"
    result = np.asarray(tracked.data)
    expected = _expected(gt, lineage, result)
    found = lineage_from_labels(result, parents={c: p[0] for c, p in tracks.graph.items()})
    assert found.tolist() == expected
    assert len(tracks.graph) == 2  # the two daughters of the division
    # one centroid per track and frame
    assert len(tracks.data) == sum(len(np.unique(f)) - 1 for f in result)

    # a re-run updates the same layers instead of adding new ones
    n_layers = len(viewer.layers)
    _click_and_wait(qtbot, widget)
    assert len(viewer.layers) == n_layers
    np.testing.assert_array_equal(viewer.layers["tracked"].data, result)


def test_pair_clustering_tracks_from_cached_embeddings(make_napari_viewer, qtbot, sample):
    image, gt, lineage = sample
    viewer = make_napari_viewer()
    layer = viewer.add_image(image, name="nuclei")
    widget = _dock(viewer)
    widget._method.value = PAIRS
    assert not widget._image.native.isHidden()
    assert widget._labels_choice.native.isHidden()

    # without embeddings: told so, nothing written
    before = len(notification_manager.records)
    widget.control.button.native.click()
    assert widget.control.worker is None
    assert "embed" in str(notification_manager.records[before:][-1].message)
    assert "tracked" not in viewer.layers

    session = session_for(viewer)
    store = session.store_for(layer)
    emb = embedding_from_labels(gt.astype(np.int64), dim=store.dim, noise=0.1, seed=0)
    for t in range(N_FRAMES):
        store.put(t, emb[:, t], (gt[t] > 0).astype(np.float32))
    widget._min_samples.value = 5
    widget._min_cluster_size.value = 30
    widget._coord_weight.value = 1.0
    _click_and_wait(qtbot, widget)

    tracked = viewer.layers["tracked"]
    result = np.asarray(tracked.data)
    graph = viewer.layers["tracks"].graph
    res_lineage = lineage_from_labels(result, parents={c: p[0] for c, p in graph.items()})
    check_lineage(result, res_lineage)
    assert tra_score(gt, lineage, result, res_lineage) >= 0.95
    assert len(graph) == 2


def test_wrong_shape_is_refused_with_a_notification(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    viewer.add_labels(np.zeros((32, 32), np.uint16), name="one frame")
    widget = _dock(viewer)
    before = len(notification_manager.records)
    widget.control.button.native.click()
    assert widget.control.worker is None
    messages = [str(n.message) for n in notification_manager.records[before:]]
    assert any("(T, Y, X)" in m for m in messages), messages
    assert [x.name for x in viewer.layers] == ["one frame"]


def test_pair_options_start_from_the_segment_defaults_and_follow_the_model(make_napari_viewer):
    from napari_cosine_embed.core.checkpoint import load_model
    from napari_cosine_embed.core.pipeline import PipelineConfig

    viewer = make_napari_viewer()
    session = session_for(viewer)
    tuned = load_model("default", device="cpu")
    tuned.record["foreground_calibration"] = {"threshold": 0.4}
    session.set_model(tuned)  # before the widget is docked
    widget = _dock(viewer, keep_all=False)
    d = PipelineConfig()
    assert widget._min_samples.value == d.min_samples
    assert widget._min_cluster_size.value == d.min_cluster_size
    assert widget._coord_weight.value == d.coord_weight
    assert widget._min_track_length.value == d.min_track_length
    assert widget._max_gap.value == d.max_gap
    assert widget._threshold.value == pytest.approx(0.4)
    session.set_model("default")
    assert widget._threshold.value == pytest.approx(d.for_model(None).foreground_threshold)


def test_tracking_again_keeps_the_links_pinned_in_the_lineage_widget(make_napari_viewer, qtbot):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parents[1] / "core"))
    from test_tracking_pins import conveyor, linked

    from napari_cosine_embed.core.tracking import pins_from_tracks

    movie, lineage = conveyor()  # the overlap linking gets every link of it wrong
    viewer = make_napari_viewer()
    viewer.add_labels(_shuffle_per_frame(movie), name="instances")
    widget = _dock(viewer)
    pins = pins_from_tracks(movie, lineage, frames=[1, 2])
    session_for(viewer).pins["tracked"] = pins
    _click_and_wait(qtbot, widget)
    qtbot.waitUntil(lambda: widget.shown_result.done, timeout=10_000)
    tracked = next(x for x in viewer.layers if x.name == "tracked")

    def result():
        # these pins are continuations only: the lineage's parents are not needed
        return type("R", (), {"labels": tracked.data, "lineage": lineage_from_labels(tracked.data)})

    assert all(linked(result(), p) for p in pins)
    widget._keep_pins.value = False
    _click_and_wait(qtbot, widget)
    qtbot.waitUntil(lambda: widget.shown_result.done, timeout=10_000)
    assert not any(linked(result(), p) for p in pins if p.source[0] < 20)
