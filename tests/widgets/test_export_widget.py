"""Export widget: CTC result, CTC ground truth and TIFF, read back; no silent overwrite."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from napari.utils.notifications import notification_manager

from napari_cosine_embed._sample_data import synthetic_timelapse_sample
from napari_cosine_embed._widgets._session import session_for
from napari_cosine_embed._widgets.export import GEFF, GROUND_TRUTH, RESULT, TIFF
from napari_cosine_embed.core.io.ctc import read_ctc_gt, read_ctc_result
from napari_cosine_embed.core.io.lineage import lineage_from_labels, tracks_from_labels

PLUGIN = "napari-cosine-embed"
N_FRAMES = 6  # holds the sample's first division (frame 4)


@pytest.fixture(scope="module")
def sample():
    (_, _, _), (labels, _, _), (_, meta, _) = synthetic_timelapse_sample()
    labels = np.asarray(labels[:N_FRAMES])
    present = set(np.unique(labels).tolist())
    parents = {c: p[0] for c, p in meta["graph"].items() if c in present}
    return labels, parents


@pytest.fixture
def setup(make_napari_viewer, sample):
    labels, parents = sample
    viewer = make_napari_viewer()
    layer = viewer.add_labels(labels.copy(), name="tracked")
    data, graph = tracks_from_labels(labels, lineage_from_labels(labels, parents=parents))
    tracks = viewer.add_tracks(data, graph=graph, name="tracks")
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Export")
    return viewer, layer, tracks, widget


def _export(qtbot, widget):
    widget.control.button.native.click()
    worker = widget.control.worker
    assert worker is not None, "the export did not start"
    with qtbot.waitSignal(worker.finished, timeout=30_000):
        pass


def test_ctc_result_reads_back_equal(qtbot, tmp_path, setup):
    _, layer, tracks, widget = setup
    widget._format.value = RESULT
    widget._labels_choice.value = layer
    widget._tracks.value = tracks
    widget._path.value = tmp_path / "01_RES"
    _export(qtbot, widget)
    labels, lineage = read_ctc_result(tmp_path / "01_RES")
    np.testing.assert_array_equal(labels, layer.data)
    assert {int(r[0]): int(r[3]) for r in lineage if r[3]} == {
        int(c): int(p[0]) for c, p in tracks.graph.items()
    }
    assert len(tracks.graph) == 2
    assert not list(tmp_path.glob(".*"))  # no temporary folder left behind


def test_geff_reads_back_equal(qtbot, tmp_path, setup):
    from napari_cosine_embed.core.io.geff_store import read_geff

    _, layer, tracks, widget = setup
    widget._format.value = GEFF
    widget._labels_choice.value = layer
    widget._tracks.value = tracks
    widget._path.value = tmp_path / "movie"  # the suffix is added
    _export(qtbot, widget)
    back = read_geff(tmp_path / "movie.geff")
    np.testing.assert_array_equal(back.labels, layer.data)
    assert back.graph == {int(c): [int(p[0])] for c, p in tracks.graph.items()}
    assert widget.control._status.value == f"wrote {tmp_path / 'movie.geff'}"


def test_curated_frames_as_ground_truth(qtbot, tmp_path, setup):
    viewer, layer, tracks, widget = setup
    session = session_for(viewer)
    session.set_curated("tracked", 1)
    session.set_curated("tracked", 4)
    widget._format.value = GROUND_TRUTH
    widget._labels_choice.value = layer
    widget._tracks.value = tracks
    widget._path.value = tmp_path / "01_GT"
    _export(qtbot, widget)
    gt = read_ctc_gt(tmp_path / "01_GT")
    assert sorted(gt.seg) == [1, 4]
    for t in (1, 4):
        np.testing.assert_array_equal(gt.seg[t], layer.data[t])
    np.testing.assert_array_equal(np.asarray(gt.tra), layer.data)
    assert {int(r[0]): int(r[3]) for r in gt.lineage if r[3]} == {
        int(c): int(p[0]) for c, p in tracks.graph.items()
    }


def test_labels_tiff(qtbot, tmp_path, setup):
    _, layer, _, widget = setup
    widget._format.value = TIFF
    assert widget._path.mode.value == "w"
    widget._labels_choice.value = layer
    widget._path.value = tmp_path / "labels"  # the extension is added
    _export(qtbot, widget)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "labels.tif"), layer.data)


def test_existing_output_is_never_replaced_silently(qtbot, tmp_path, setup):
    _, layer, _tracks, widget = setup
    out = tmp_path / "01_RES"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    widget._format.value = RESULT
    widget._labels_choice.value = layer
    widget._path.value = out
    assert not widget._overwrite.value
    before = len(notification_manager.records)
    widget.control.button.native.click()
    assert widget.control.worker is None
    messages = [str(n.message) for n in notification_manager.records[before:]]
    assert any("already exists" in m and "overwrite" in m for m in messages), messages
    assert [p.name for p in out.iterdir()] == ["mine.txt"]
    assert (out / "mine.txt").read_text() == "keep me"

    widget._overwrite.value = True
    _export(qtbot, widget)
    np.testing.assert_array_equal(read_ctc_result(out)[0], layer.data)
    assert not (out / "mine.txt").exists()


def test_ground_truth_without_curated_frames_is_told(tmp_path, setup):
    _, layer, _, widget = setup
    widget._format.value = GROUND_TRUTH
    widget._labels_choice.value = layer
    widget._path.value = tmp_path / "01_GT"
    before = len(notification_manager.records)
    widget.control.button.native.click()
    assert widget.control.worker is None
    messages = [str(n.message) for n in notification_manager.records[before:]]
    assert any("curated" in m for m in messages), messages
    assert not (tmp_path / "01_GT").exists()


def test_export_never_lands_on_the_autosaved_corrections(qtbot, tmp_path, setup):
    from napari_cosine_embed._widgets._session import session_for

    viewer, layer, _tracks, widget = setup
    project = tmp_path / "projects" / "tracked-project"
    project.mkdir(parents=True)
    (project / "frame000.tif").write_text("a correction")
    session_for(viewer).project_dir = project
    widget._format.value = RESULT
    widget._labels_choice.value = layer
    widget._overwrite.value = True  # even so
    for target in (project, project.parent, project / "inside"):
        widget._path.value = target
        before = len(notification_manager.records)
        widget.control.button.native.click()
        assert widget.control.worker is None
        messages = [str(n.message) for n in notification_manager.records[before:]]
        assert any("autosaved corrections" in m for m in messages), messages
    assert (project / "frame000.tif").read_text() == "a correction"


def test_defaults_follow_the_newest_tracked_result_beside_the_movie(
    make_napari_viewer, tmp_path, qtbot
):
    movie = tmp_path / "data" / "movie.tif"
    movie.parent.mkdir()
    tifffile.imwrite(movie, np.zeros((N_FRAMES, 16, 16), np.uint8))
    (tmp_path / "data" / "movie_RES").mkdir()  # an earlier export: never suggested again
    viewer = make_napari_viewer()
    viewer.open(str(movie), plugin="napari")
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Export")
    instances = viewer.add_labels(np.zeros((N_FRAMES, 16, 16), np.uint16), name="instances")
    # the widget follows layer changes on the next turn of the event loop
    qtbot.waitUntil(lambda: widget._labels_choice.value is instances, timeout=2_000)
    assert widget._tracks.value is None

    tracked = viewer.add_labels(np.zeros((N_FRAMES, 16, 16), np.uint16), name="tracked")
    tracks = viewer.add_tracks(np.array([[1, 0, 4, 4], [1, 1, 5, 5]], float), name="tracks")
    viewer.add_labels(np.zeros((N_FRAMES, 16, 16), np.uint16), name="later scratch")
    qtbot.wait(50)
    assert widget._labels_choice.value is tracked  # the Track widget's output wins
    assert widget._tracks.value is tracks
    assert widget._path.value == tmp_path / "data" / "movie_RES-2"
    widget._format.value = GROUND_TRUTH
    assert widget._path.value == tmp_path / "data" / "movie_GT"

    # a choice of the user's stays (as Qt reports a user's pick and typing)
    widget._labels_choice.value = instances
    widget._labels_choice.native.activated.emit(widget._labels_choice.native.currentIndex())
    assert widget._tracks.value is None  # the tracks follow: they are not those of 'instances'
    widget._path.value = tmp_path / "mine"
    widget._path.line_edit.native.textEdited.emit(str(tmp_path / "mine"))
    viewer.add_labels(np.zeros((N_FRAMES, 16, 16), np.uint16), name="tracked [1]")
    qtbot.wait(50)
    assert widget._labels_choice.value is instances
    assert widget._path.value == tmp_path / "mine"


def test_a_refused_export_does_not_keep_saying_it_wrote(qtbot, tmp_path, setup):
    _, layer, _, widget = setup
    widget._format.value = TIFF
    widget._labels_choice.value = layer
    widget._path.value = tmp_path / "out.tif"
    _export(qtbot, widget)
    assert widget.control._status.value.startswith("wrote ")
    widget.control.button.native.click()  # the same path again, overwrite not ticked
    assert widget.control.worker is None
    status = widget.control._status.value
    assert status.startswith("not started: ")
    assert "already exists" in status


def test_suggested_output_names_and_never_an_existing_path(tmp_path):
    from napari_cosine_embed._widgets.export import suggested_output

    movie = tmp_path / "t01.ome.tif"
    assert suggested_output(RESULT, "tracked", movie, tmp_path) == tmp_path / "t01_RES"
    assert suggested_output(GROUND_TRUTH, "tracked", None, tmp_path) == tmp_path / "tracked_GT"
    (tmp_path / "t01_tracks.geff").mkdir()
    assert suggested_output(GEFF, "x", movie, tmp_path) == tmp_path / "t01_tracks-2.geff"
    (tmp_path / "tracked.tif").touch()
    (tmp_path / "tracked-2.tif").touch()
    assert suggested_output(TIFF, "tracked", movie, tmp_path) == tmp_path / "tracked-3.tif"
