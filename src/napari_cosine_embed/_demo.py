"""``make demo``: napari with the synthetic sample loaded and the plugin's workflow panel docked."""

from __future__ import annotations

from typing import Any

import napari

PLUGIN = "napari-cosine-embed"
#: The workflow panel's name in ``napari.yaml`` (the "Cosine Embed" entry of the Plugins menu).
PANEL = "Cosine Embed"
#: Its steps in the order of the workflow (the single widgets' display names).
WIDGETS = ("Embed", "Group", "Track", "Correct", "Lineage", "Fine-tune", "Export")
#: A window that fits a 1600 x 1000 screen with room for a desktop's panels (a smaller screen
#: gets its available area).
WINDOW_SIZE = (1500, 920)


def dock_widgets(viewer: napari.Viewer) -> dict[str, Any]:
    """Dock the workflow panel on the right; returns its step widgets by name.

    The panel comes through the installed manifest, as the Plugins menu docks it, so the demo
    also checks that the manifest's entry loads. An already docked panel is reused.
    """
    _, panel = viewer.window.add_plugin_dock_widget(PLUGIN, PANEL)
    return dict(panel.steps)


def show_tab(viewer: napari.Viewer, name: str) -> Any:
    """Bring the step ``name`` (one of :data:`WIDGETS`) of the panel to the front; returns it."""
    _, panel = viewer.window.add_plugin_dock_widget(PLUGIN, PANEL)
    panel.tabs.setCurrentIndex(WIDGETS.index(name))
    return panel.steps[name]


def make_demo_viewer(*, show: bool = True, widgets: bool = True) -> napari.Viewer:
    """Open a viewer with the synthetic time-lapse sample and (by default) the workflow panel.

    Parameters
    ----------
    show : bool
        Show the window (False for tests).
    widgets : bool
        Dock the workflow panel (Embed, Group, Track, Correct, Lineage, Fine-tune, Export).

    Returns
    -------
    napari.Viewer
        As :func:`set_up_demo` leaves it.
    """
    viewer = napari.Viewer(title="napari-cosine-embed demo", show=show)
    set_up_demo(viewer, widgets=widgets)
    return viewer


def set_up_demo(viewer: napari.Viewer, *, widgets: bool = True) -> None:
    """Size the window, open the synthetic sample and (by default) dock the workflow panel.

    The viewer shows the middle of the movie, where cells have moved and some have divided.
    The ground-truth layers of the sample are hidden, so that what the widgets make is what one
    sees; tick them on to compare.
    """
    window = viewer.window._qt_window
    available = window.screen().availableGeometry()
    window.resize(min(WINDOW_SIZE[0], available.width()), min(WINDOW_SIZE[1], available.height()))
    viewer.open_sample(PLUGIN, "timelapse")
    image, *truth = viewer.layers
    for layer in truth:
        layer.visible = False
    viewer.layers.selection.active = image
    viewer.dims.set_current_step(0, image.data.shape[0] // 2)
    if widgets:
        dock_widgets(viewer)


def main() -> None:
    make_demo_viewer()
    napari.run()


if __name__ == "__main__":
    main()
