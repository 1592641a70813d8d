"""The workflow panel: all steps in one dock that fits a 1366x768 screen, with a hint line."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cosine_embed._widgets._session import session_for
from napari_cosine_embed._widgets.workflow import STEPS, WorkflowPanel

PLUGIN = "napari-cosine-embed"


def _menu_texts(menu) -> list[str]:
    """Every action's text in a Qt menu and its submenus."""
    texts = []
    for action in menu.actions():
        texts.append(action.text().replace("&", ""))
        if action.menu() is not None:
            texts += _menu_texts(action.menu())
    return texts


def test_the_panel_is_in_the_plugins_menu_and_fits_1366x768(make_napari_viewer):
    viewer = make_napari_viewer(show=True)
    window = viewer.window._qt_window
    window.resize(1366, 768)
    menus = [a.menu() for a in window.menuBar().actions() if "Plugins" in a.text()]
    assert menus
    assert "Cosine Embed" in _menu_texts(menus[0])

    dock, panel = viewer.window.add_plugin_dock_widget(PLUGIN, "Cosine Embed")
    assert isinstance(panel, WorkflowPanel)
    assert [panel.tabs.tabText(i) for i in range(7)] == [
        "1 Embed", "2 Group", "3 Track", "4 Correct", "5 Lineage", "6 Tune", "7 Export"
    ]  # fmt: skip
    hint = panel.sizeHint()
    assert hint.width() <= 460
    assert hint.height() <= 700  # the screen's 768 less the menu and title bars
    assert panel.minimumSizeHint().height() <= 700
    # the titles fit the panel without scroll buttons
    assert panel.tabs.tabBar().sizeHint().width() <= hint.width()
    # every step widget is there, the same classes as the single docks
    assert [type(w).__name__ for w in panel.steps.values()] == [s[2] for s in STEPS]
    assert dock.width() < 1366 // 2  # the canvas keeps most of the window


def test_the_hint_says_what_each_step_needs_and_tabs_turn_green_when_done(
    make_napari_viewer, qtbot
):
    viewer = make_napari_viewer()
    panel = WorkflowPanel(viewer)
    assert panel.hint.text().startswith("Open a movie")
    movie = np.random.default_rng(0).random((3, 32, 32)).astype(np.float32)
    image = viewer.add_image(movie, name="cells")
    # the panel follows layer changes on the next turn of the event loop
    qtbot.waitUntil(lambda: "0 of 3 frames" in panel.hint.text(), timeout=2_000)
    assert panel.steps["Group"]._image.value is image  # choices follow the layers

    panel.tabs.setCurrentIndex(1)
    assert panel.current == "Group"
    assert panel.hint.text().startswith("Needs embeddings")
    session = session_for(viewer)
    store = session.store_for(image)
    for t in range(3):
        store.put(t, np.ones((store.dim, 32, 32), np.float32), np.ones((32, 32), np.float32))
        session.embeddings_changed.emit("cells", t)
    assert panel.done["Embed"]
    assert "Apply to all frames" in panel.hint.text()
    assert not panel.done["Group"]
    labels = viewer.add_labels(np.zeros((3, 32, 32), np.uint16), name="instances")
    qtbot.waitUntil(lambda: panel.done["Group"], timeout=2_000)

    panel.tabs.setCurrentIndex(5)
    assert panel.hint.text().startswith("Needs curated frames")
    session.set_curated(labels.name, 1)
    assert "1 curated frame" in panel.hint.text()
    assert panel.done["Correct"]


@pytest.mark.parametrize("step", [name for name, *_ in STEPS])
def test_each_step_hint_is_one_short_line_or_two(make_napari_viewer, step):
    from napari_cosine_embed._widgets.workflow import step_hint

    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((2, 16, 16), np.float32), name="cells")
    viewer.add_labels(np.zeros((2, 16, 16), np.uint16), name="tracked")
    text, _ = step_hint(step, viewer, session_for(viewer))
    assert 20 < len(text) <= 200


def test_labels_as_outlines_applies_to_the_plugins_labels_layers(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    panel = WorkflowPanel(viewer)
    mine = viewer.add_labels(np.zeros((2, 16, 16), np.uint16), name="instances")
    other = viewer.add_labels(np.zeros((2, 16, 16), np.uint16), name="my own labels")
    assert mine.contour == 0
    panel.outlines.setChecked(True)
    assert mine.contour == 2
    assert other.contour == 0  # the user's own layers are left alone
    tracked = viewer.add_labels(np.zeros((2, 16, 16), np.uint16), name="tracked")
    qtbot.waitUntil(lambda: tracked.contour == 2, timeout=2_000)  # new outputs follow it
    panel.outlines.setChecked(False)
    assert mine.contour == tracked.contour == 0
