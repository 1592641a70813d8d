"""The Correct widget in a viewer: edits, napari's undo, click-to-add, curated frames, autosave."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from napari.utils.key_bindings import coerce_keybinding

from napari_cosine_embed._widgets import _autosave
from napari_cosine_embed._widgets._autosave import PROJECTS_FOLDER
from napari_cosine_embed._widgets._session import session_for
from napari_cosine_embed._widgets.correct import (
    CUT_LAYER,
    PREVIEW_LAYER,
    CorrectWidget,
    default_project_dir,
)
from napari_cosine_embed.core.errors import InputError
from napari_cosine_embed.core.project import Project

PLUGIN = "napari-cosine-embed"
SHAPE = (4, 40, 48)


@pytest.fixture(autouse=True)
def projects_root(tmp_path, monkeypatch):
    """Default project folders go under a temporary root, never the user's home."""
    root = tmp_path / PROJECTS_FOLDER

    def default(name, *, root=root):
        return default_project_dir(name, root=root)

    monkeypatch.setattr(_autosave, "default_project_dir", default)
    return root


def _labels() -> np.ndarray:
    lab = np.zeros(SHAPE, np.uint16)
    lab[:, 5:15, 5:15] = 1
    lab[:, 5:15, 15:25] = 2  # touches 1
    lab[2, 25:35, 5:15] = 3
    return lab


def _mouse(widget, viewer, position, *, drag=False):
    """Drive the widget's mouse callback through a press, optional moves, and a release."""
    event = SimpleNamespace(type="mouse_press", button=1, modifiers=(), position=position)
    gen = widget._on_mouse(viewer, event)
    next(gen)
    if drag:
        event.type = "mouse_move"
        next(gen)
    event.type = "mouse_release"
    with pytest.raises(StopIteration):
        next(gen)


@pytest.fixture
def setup(make_napari_viewer):
    viewer = make_napari_viewer()
    image = viewer.add_image(np.random.default_rng(0).random(SHAPE, dtype=np.float32), name="img")
    labels = viewer.add_labels(_labels(), name="cells")
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Correct")
    viewer.dims.set_current_step(0, 2)
    return viewer, image, labels, widget


def test_widget_builds_through_the_manifest_and_lists_layers(setup):
    viewer, image, labels, widget = setup
    assert isinstance(widget, CorrectWidget)
    assert widget._image.value is image
    assert widget._labels_box.value is labels
    viewer.add_labels(np.zeros(SHAPE, np.uint8), name="other")
    assert [c for c, _ in widget._labels_choices()] == ["cells", "other"]


def test_merge_is_one_undo_step_that_restores_the_exact_data(setup):
    _, _, labels, widget = setup
    original = labels.data.copy()
    widget._ids.value = "1, 2"
    widget.merge()
    expected = original.copy()
    expected[2][expected[2] == 2] = 1
    np.testing.assert_array_equal(labels.data, expected)  # only frame 2 changed
    labels.undo()
    np.testing.assert_array_equal(labels.data, original)
    labels.redo()
    np.testing.assert_array_equal(labels.data, expected)


def test_merging_labels_that_do_not_touch_asks_first(setup):
    _, _, labels, widget = setup
    original = labels.data.copy()
    asked = []
    widget.confirm = lambda question: asked.append(question) or False  # the user says no
    widget._ids.value = "1, 3"  # 3 lies 10 px below 1 in frame 2
    assert widget.merge() is None
    np.testing.assert_array_equal(labels.data, original)  # nothing changed
    assert len(asked) == 1
    assert "label 1 in 2 pieces that do not touch (frame 2)" in asked[0]
    assert "not applied" in widget._status.value

    widget.confirm = lambda question: asked.append(question) or True  # ...and now yes
    widget.merge()
    assert len(asked) == 2
    assert set(np.unique(labels.data[2][original[2] == 3])) == {1}
    labels.undo()  # still one undo step
    np.testing.assert_array_equal(labels.data, original)

    widget._ids.value = "1, 2"  # touching: no question
    widget.merge()
    assert len(asked) == 2
    assert not np.any(labels.data[2] == 2)


def test_undo_and_redo_say_what_they_did(setup):
    _, _, labels, widget = setup
    widget._ids.value = "1, 2"
    widget.merge()
    widget._ids.value = "3"
    widget.delete()
    assert widget._status.value.startswith("deleted [3]")
    labels.undo()  # what Ctrl-Z does
    assert widget._status.value == "undid: deleted [3] (Ctrl-Shift-Z redoes)"
    labels.undo()
    assert widget._status.value == "undid: merged [1, 2] into 1 (Ctrl-Shift-Z redoes)"
    labels.redo()
    assert widget._status.value == "redid: merged [1, 2] into 1"
    labels.paint((2, 30, 40), 7)  # napari's brush, not this widget
    labels.undo()
    assert widget._status.value == "undid: an edit made outside this widget (Ctrl-Shift-Z redoes)"


def test_picking_labels_fills_the_selection_with_the_last_two(setup):
    _, _, labels, widget = setup
    for value in (3, 1, 1, 2):
        labels.selected_label = value
    assert widget._ids.value == "1, 2"


def test_delete_split_relabel_and_carry_are_undoable(setup):
    _, _, labels, widget = setup
    original = labels.data.copy()
    widget._ids.value = "3"
    widget.delete()
    assert not np.any(labels.data[2] == 3)
    widget._ids.value = "2"
    widget._new_id.value = 1
    with pytest.raises(InputError, match="already"):
        widget.relabel()
    widget._collision.value = "swap"
    widget.relabel()
    assert labels.data[2, 10, 20] == 1
    assert labels.data[2, 10, 10] == 2
    widget._ids.value = "2"  # frame 2's label 2 (the old 1) -> carry into frames 3
    widget._ahead.value = 3
    widget.carry()
    assert labels.data[3, 10, 10] == 2
    assert labels.data[3, 10, 20] == 1
    for _ in range(3):
        labels.undo()
    np.testing.assert_array_equal(labels.data, original)
    widget._ids.value = "2"
    widget.split()  # no embedding: by shape, across the square
    assert len(np.unique(labels.data[2][original[2] == 2])) == 2
    assert "by shape" in widget._status.value


def test_cut_line_layer_is_made_then_used(setup):
    viewer, _, labels, widget = setup
    widget.cut()
    shapes = viewer.layers[CUT_LAYER]
    assert shapes.mode == "add_path"
    shapes.add_paths([np.array([[2, 0, 10], [2, 20, 10]])])  # vertical cut through label 1
    widget.cut()
    frame = labels.data[2]
    assert not frame[5:15, 10].any()
    assert set(np.unique(frame[5:15, 5:10])) == {1}  # the larger half keeps the id
    assert set(np.unique(frame[5:15, 11:15])) == {4}
    assert len(shapes.data) == 0
    np.testing.assert_array_equal(labels.data[1], _labels()[1])


def test_click_to_add_previews_follows_the_slider_and_adds_a_new_id(setup):
    viewer, image, labels, widget = setup
    with pytest.raises(InputError, match="compute embeddings first"):
        widget.click_at((2, 30, 35))
    session = session_for(viewer)
    dim = session.model().config.embedding_dim
    emb = np.zeros((dim, *SHAPE[1:]), np.float32)
    emb[0] = 1.0
    emb[0, 22:38, 32:44] = 0.8  # the object: a direction close to the background's ...
    emb[1, 22:38, 32:44] = 0.6  # ... cosine 0.8
    emb[0, 30:38, 32:44], emb[1, 30:38, 32:44] = 0.6, 0.8  # its lower part: cosine 0.96 to top
    session.store_for(image).put(2, emb, np.ones(SHAPE[1:], np.float32))
    widget._add_mode.value = True
    assert labels.mode == "pan_zoom"
    assert widget._on_mouse in viewer.mouse_drag_callbacks
    widget._threshold.value = 0.99
    _mouse(widget, viewer, (2, 25, 35), drag=True)  # a drag pans: no preview
    assert PREVIEW_LAYER not in viewer.layers
    _mouse(widget, viewer, (2, 25, 35))
    preview = viewer.layers[PREVIEW_LAYER]
    np.testing.assert_array_equal(np.argwhere(preview.data).min(0), [22, 32])
    assert preview.data.sum() == 8 * 12  # the upper part only
    assert viewer.layers.selection.active is labels  # the preview did not take the focus
    widget._threshold.value = 0.9
    assert preview.data.sum() == 16 * 12  # grown live to the whole object
    before = labels.data.copy()
    viewer.keymap[coerce_keybinding("Enter")](viewer)  # Enter accepts
    assert np.count_nonzero(labels.data[2] == 4) == 16 * 12  # the next free id
    assert preview.data.sum() == 0
    labels.undo()
    np.testing.assert_array_equal(labels.data, before)
    with pytest.raises(InputError, match="already belongs"):
        widget.click_at((2, 10, 10))
    widget._add_mode.value = False
    assert widget._on_mouse not in viewer.mouse_drag_callbacks
    assert coerce_keybinding("Enter") not in viewer.keymap


def test_curated_list_autosave_and_load_project(setup, projects_root, qtbot):
    viewer, _, labels, widget = setup
    session = session_for(viewer)
    widget.mark_curated(True)
    viewer.dims.set_current_step(0, 0)
    widget.mark_curated(True)
    assert session.curated_frames("cells") == [0, 2]
    assert widget._curated.value == "curated frames: 0, 2"
    widget.mark_curated(False)
    assert widget._curated.value == "curated frames: 2"
    viewer.dims.set_current_step(0, 2)
    widget._ids.value = "1 2"
    widget.merge()
    qtbot.waitUntil(
        lambda: session.project_dir is not None and not widget._autosave.pending, timeout=5000
    )
    root = session.project_dir
    assert root.parent == projects_root
    assert root.name.startswith("cells-")
    project = Project.open(root)
    assert project.saved_frames() == [0, 2]  # the curated frame 0 is kept, 2 was edited
    np.testing.assert_array_equal(project.load_frame(2), labels.data[2])
    assert project.load_curated() == [2]
    # an undo reaches the project too
    labels.undo()
    qtbot.waitUntil(lambda: np.array_equal(project.load_frame(2), _labels()[2]), timeout=5000)
    # restore into a fresh labels layer
    widget.merge()
    widget.flush_autosave()
    saved = labels.data[2].copy()
    viewer.layers.remove(labels)
    qtbot.wait(20)  # the widget lets go of the removed layer on the next turn of the event loop
    session.set_curated("cells", 2, False)
    restored = widget.load_project(root)
    assert restored.name == "cells"
    assert restored.data.shape == SHAPE
    np.testing.assert_array_equal(restored.data[2], saved)
    assert session.curated_frames("cells") == [2]


def test_foreign_project_folder_and_mismatched_shapes_are_reported(setup, tmp_path, monkeypatch):
    viewer, _, _, widget = setup
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a napari-cosine-embed project"):
        widget.set_project_dir(foreign)
    widget.set_project_dir(tmp_path / "proj")
    assert session_for(viewer).project_dir == tmp_path / "proj"
    warnings = []
    monkeypatch.setattr("napari.utils.notifications.show_warning", warnings.append)
    small = viewer.add_labels(np.zeros((4, 20, 20), np.uint16), name="small")
    widget._labels_box.value = small
    assert warnings
    assert "do not match" in warnings[0]
    with pytest.raises(InputError, match="does not match"):
        widget.click_at((2, 5, 5))


def test_each_labels_layer_keeps_its_project_and_replaced_data_does_not_overwrite_it(
    setup, tmp_path, projects_root
):
    viewer, _, labels, widget = setup
    session = session_for(viewer)
    widget.set_project_dir(tmp_path / "a")
    widget._ids.value = "1, 2"
    widget.merge()
    merged = labels.data[2].copy()
    project = widget.flush_autosave()
    assert project.path == tmp_path / "a"
    labels.data = np.zeros(SHAPE, np.uint16)  # e.g. Group re-run into this layer
    widget.flush_autosave()
    np.testing.assert_array_equal(Project.open(tmp_path / "a").load_frame(2), merged)

    other = viewer.add_labels(_labels(), name="other")
    widget._labels_box.value = other
    assert session.project_dir is None
    widget._ids.value = "3"
    widget.delete()
    second = widget.flush_autosave().path
    assert second.parent == projects_root
    assert second.name.startswith("other-")
    assert Project.open(second).saved_frames() == [2]
    widget._labels_box.value = labels
    assert session.project_dir == tmp_path / "a"


def test_switching_layers_right_after_an_edit_saves_it_into_the_first_project(setup, tmp_path):
    viewer, _, labels, widget = setup
    widget.set_project_dir(tmp_path / "first")
    widget._ids.value = "1, 2"
    widget.merge()  # not yet written: the autosave timer has not fired
    merged = labels.data[2].copy()
    other = viewer.add_labels(np.zeros(SHAPE, np.uint16), name="other")
    widget._labels_box.value = other  # the switch flushes the pending edit of "cells"
    saved = Project.open(tmp_path / "first")
    assert saved.saved_frames() == [2]
    np.testing.assert_array_equal(saved.load_frame(2), merged)
    assert session_for(viewer).project_dir is None  # "other" gets a project of its own


def test_the_first_edit_makes_the_project_beside_the_images_file(make_napari_viewer, tmp_path):
    import tifffile

    movie = tmp_path / "plate 3" / "movie.tif"
    movie.parent.mkdir()
    tifffile.imwrite(movie, np.zeros(SHAPE, np.uint8))
    viewer = make_napari_viewer()
    viewer.open(str(movie), plugin="napari")
    labels = viewer.add_labels(_labels(), name="cells")
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Correct")
    widget._labels_box.value = labels
    viewer.dims.set_current_step(0, 2)
    widget._ids.value = "3"
    widget.delete()
    project = widget.flush_autosave()
    assert project.path.parent == movie.parent / PROJECTS_FOLDER
    assert project.path.name.startswith("cells-")
    shown = widget._project_label.value
    assert shown.startswith("project: …/")
    assert len(shown) <= len("project: ") + 40
    assert str(project.path) in widget._project_label.tooltip


def test_keyboard_shortcuts_run_the_corrections_and_are_named_in_tooltips(setup, qtbot):
    from napari_cosine_embed._widgets._shortcuts import SHORTCUTS

    viewer, _, labels, widget = setup

    def press(key: str) -> None:
        viewer.keymap[coerce_keybinding(key)](viewer)

    assert widget._buttons["Merge"].tooltip.endswith("(Shift-M)")
    assert widget._mark.tooltip.endswith("(Shift-C)")
    assert widget._add_mode.tooltip.endswith("(Shift-A)")
    widget._ids.value = "1, 2"
    press("Shift-M")
    assert not np.any(labels.data[2] == 2)
    assert widget._status.value.startswith("merged [1, 2] into 1")
    widget._ids.value = "3"
    press("Shift-D")
    assert not np.any(labels.data[2] == 3)
    press("Shift-A")
    assert widget._add_mode.value
    press("Shift-A")
    assert not widget._add_mode.value

    # curated frames are skipped by Alt-Right and Alt-Left
    press("Shift-C")
    session = session_for(viewer)
    assert session.curated_frames("cells") == [2]
    session.set_curated("cells", 3)
    viewer.dims.set_current_step(0, 1)
    press("Alt-Right")
    assert viewer.dims.current_step[0] == 1  # 2 and 3 are curated: no later frame left
    assert "is curated" in widget._status.value
    press("Alt-Left")
    assert viewer.dims.current_step[0] == 0
    viewer.dims.set_current_step(0, 3)
    press("Alt-Left")
    assert viewer.dims.current_step[0] == 1

    # a bad selection is a notification, not an exception out of napari's key handler
    widget._ids.value = ""
    press("Shift-S")
    assert labels.data[1].max() == 2

    # closing the widget unbinds every key
    widget.native.close()
    widget.native.deleteLater()
    qtbot.wait(50)
    for key in SHORTCUTS:
        assert coerce_keybinding(key) not in viewer.keymap, key
