"""The Lineage widget: track edits in the viewer with Ctrl-Z, pins, autosave of the lineage,
the review list and the lineage view's click-to-jump and highlight."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "core"))
from test_curation import tracker_output, truth_movie

from napari_cosine_embed.core.io.lineage import lineage_problems
from napari_cosine_embed.core.metrics.ctc import tra_score
from napari_cosine_embed.core.metrics.divisions import division_scores
from napari_cosine_embed.core.tracking import link_labels

PLUGIN = "napari-cosine-embed"


@pytest.fixture
def setup(make_napari_viewer, qtbot, tmp_path):
    res, parents = tracker_output()
    viewer = make_napari_viewer()
    layer = viewer.add_labels(res, name="tracked")
    graph = {c: [p] for c, p in parents.items()}
    from napari_cosine_embed.core.curation import TrackIndex

    tracks = viewer.add_tracks(TrackIndex.of(res).tracks_data(), graph=graph, name="tracks")
    from napari_cosine_embed._widgets._session import session_for

    session_for(viewer).project_dir = tmp_path / "project"
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Lineage")
    widget._tracks_box.value = tracks
    widget._labels_box.value = layer
    _wait_indexed(qtbot, widget)
    return viewer, layer, tracks, widget


def _wait_indexed(qtbot, widget):
    qtbot.waitUntil(lambda: widget.state is not None and widget.state.ready, timeout=10_000)
    qtbot.wait(10)


def _at(viewer, t):
    viewer.dims.set_point(0, t)


def test_scripted_curation_in_the_viewer_reaches_tra_one(setup, qtbot):
    viewer, layer, tracks, widget = setup
    truth, truth_lineage = truth_movie()
    widget._ids.value = "1, 11"
    widget.join()
    _at(viewer, 5)
    widget._ids.value = "2, 3"
    widget.swap_from_here()
    widget._ids.value = "4, 4, 6"
    widget.divide()
    widget._ids.value = "7, 12"
    widget.undo_division()
    state = widget.state
    lineage = state.lineage()
    assert lineage_problems(layer.data, lineage) == []
    assert tra_score(truth, truth_lineage, layer.data, lineage) == 1.0
    assert division_scores(truth, truth_lineage, layer.data, lineage, tolerance=1).bc == 1.0
    qtbot.waitUntil(lambda: tracks.graph == {int(r[0]): [int(r[3])] for r in lineage if r[3]})
    # the links made are pinned: join (1), swap (2 and 3), divide (2)
    assert len(state.pins) == 5
    # Ctrl-Z takes the four edits back, pixels and lineage together
    for _ in range(4):
        layer.undo()
    res, parents = tracker_output()
    np.testing.assert_array_equal(layer.data, res)
    assert state.parents == parents


def test_an_undo_then_a_brush_edit_keeps_index_and_lineage_right(setup, qtbot):
    viewer, layer, _, widget = setup
    _at(viewer, 4)
    widget._ids.value = "1"
    widget.break_here()
    assert widget.state.index.span(1) == (0, 3)
    layer.undo()
    assert widget.state.index.span(1) == (0, 4)
    layer.redo()
    assert widget.state.index.span(1) == (0, 3)
    # napari's own edit (here data_setitem, as the brush's history): the index follows
    with layer.block_history():
        layer.data_setitem((np.array([9]), np.array([90]), np.array([90])), 40)
    assert widget.state.index.has(40, 9)
    layer.undo()
    assert not widget.state.index.has(40, 9)


def test_refused_edit_says_why_and_changes_nothing(setup, qtbot, monkeypatch):
    _viewer, layer, _, widget = setup
    said = []
    monkeypatch.setattr("napari_cosine_embed._widgets._jobs.notify_error", said.append)
    before = layer.data.copy()
    widget._ids.value = "2, 3"
    widget._buttons["Join"].native.click()
    assert said
    assert "before track 2 ends" in said[0]
    np.testing.assert_array_equal(layer.data, before)


def test_lineage_is_autosaved_and_pins_drive_retracking(setup, qtbot, tmp_path):
    viewer, layer, _, widget = setup
    widget._ids.value = "4, 4, 6"
    _at(viewer, 5)
    widget.divide()
    widget._autosave.flush()
    from napari_cosine_embed.core.project import Project

    lineage, pins, _ = Project.open(tmp_path / "project").load_tracks()
    np.testing.assert_array_equal(lineage, widget.state.lineage())
    assert len(pins) == 2
    # Re-tracking the same objects from scratch keeps the pinned division.
    pinned = widget.state.pins
    result = link_labels(np.asarray(layer.data), pins=pinned)
    mother = int(result.labels[4][pinned[0].source])
    daughters = {int(result.labels[5][p.target]) for p in pinned}
    assert {int(r[0]) for r in result.lineage if r[3] == mother} == daughters


def test_review_list_jumps_and_marks_reviewed(setup, qtbot):
    viewer, layer, _, widget = setup
    kinds = [row.kind for row in widget.rows]
    assert "division" in kinds
    assert "appears" in kinds
    row = next(i for i, r in enumerate(widget._shown) if r.kind == "appears" and r.track == 11)
    widget._table.setCurrentCell(row, 0)
    assert round(viewer.dims.point[0]) == 5
    assert layer.selected_label == 11
    n = widget._table.rowCount()
    widget.mark_reviewed()
    assert widget._table.rowCount() == n - 1
    widget._show_reviewed.value = True
    assert widget._table.rowCount() == n


def test_lineage_view_click_jumps_and_selection_highlights(setup, qtbot):
    viewer, layer, _, widget = setup
    view = widget.show_lineage()
    assert set(view.rows) == set(widget.state.index.labels())
    # a click on track 11's row at frame 7 (as the plot's click handler maps it)
    track, t = view.pick_at(7.2, view.rows[11])
    assert (track, t) == (11, 7)
    view.picked.emit(track, t)
    assert round(viewer.dims.point[0]) == 7
    assert layer.selected_label == 11
    # the other way: picking a label in the viewer highlights its track
    layer.selected_label = 3
    xs, ys = view._selected.getData()
    assert list(ys) == [view.rows[3], view.rows[3]]
    first, last = widget.state.index.span(3)
    assert xs[0] < first <= last < xs[1]


def test_undo_stays_right_beyond_napari_s_hundred_step_history(setup, qtbot):
    """napari keeps 100 undo steps: past that, its length no longer tells steps apart."""
    viewer, layer, _, widget = setup
    _at(viewer, 5)
    state = widget.state
    widget._ids.value = "1, 11"  # track 1 whole first
    widget.join()
    for _ in range(55):  # 110 steps: break track 1 at frame 5, join it back
        widget._ids.value = "1"
        widget.break_here()
        new = state.index.next_free() - 1
        widget._ids.value = f"1, {new}"
        widget.join()
    assert len(layer._undo_history) == 100
    widget._ids.value = "1"
    widget.break_here()
    new = state.index.next_free() - 1
    assert state.index.span(new) == (5, 9)
    layer.undo()
    assert state.index.span(1) == (0, 9)
    assert new not in state.index.labels()
    layer.undo()  # the last join: track 1 is broken again, under the id it had then
    assert state.index.span(1) == (0, 4)
    layer.redo()
    layer.redo()
    assert state.index.span(new) == (5, 9)
    assert lineage_problems(layer.data, state.lineage()) == []


def test_keyboard_shortcuts_drive_the_edits(setup, qtbot):
    from napari.utils.key_bindings import coerce_keybinding

    from napari_cosine_embed._widgets._shortcuts import TRACK_SHORTCUTS

    viewer, layer, _, widget = setup
    _at(viewer, 5)
    widget._ids.value = "2, 3"
    viewer.keymap[coerce_keybinding("Shift-W")](viewer)  # swap from here
    assert widget.state.index.box(5, 2).y == 40
    for key, (_, button, _) in TRACK_SHORTCUTS.items():
        assert f"({key})" in (widget._buttons.get(button) or widget._mark).tooltip
    layer.undo()
    assert widget.state.index.box(5, 2).y == 50
