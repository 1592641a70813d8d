"""``make demo``: napari with the synthetic sample loaded and the plugin's six widgets docked."""

from __future__ import annotations

from typing import Any

import napari

PLUGIN = "napari-cosine-embed"
#: The dock widgets in the order of the workflow, by their display names in ``napari.yaml``.
WIDGETS = ("Embed", "Group", "Track", "Correct", "Fine-tune", "Export")
#: A window that fits a 1600 x 1000 screen with room for a desktop's panels (a smaller screen
#: gets its available area).
WINDOW_SIZE = (1500, 920)


def dock_widgets(viewer: napari.Viewer) -> dict[str, Any]:
    """Dock the plugin's widgets as tabs of one dock on the right; returns them by name.

    Each widget comes through the installed manifest, as the Plugins menu would dock it, so the
    demo also checks that the manifest's entries load. Widgets already docked are returned, not
    docked twice. Tabs keep every widget at full height on a 1000-pixel-high screen, where six
    stacked docks would each be squeezed to a sliver.
    """
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QTabWidget

    window = viewer.window._qt_window
    # tabs above the docks, where they are seen, rather than under them
    window.setTabPosition(Qt.DockWidgetArea.RightDockWidgetArea, QTabWidget.TabPosition.North)
    docks, widgets = {}, {}
    for name in WIDGETS:
        docks[name], widgets[name] = viewer.window.add_plugin_dock_widget(PLUGIN, name, tabify=True)
        # a tab shows the window title; "Embed (napari-cosine-embed)" x 6 would be elided
        docks[name].setWindowTitle(name)
    docks[WIDGETS[0]].raise_()  # the tab to start with
    return widgets


def show_tab(viewer: napari.Viewer, name: str) -> Any:
    """Bring the dock widget ``name`` (one of :data:`WIDGETS`) to the front; returns it."""
    dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, name)
    dock.raise_()
    return widget


def make_demo_viewer(*, show: bool = True, widgets: bool = True) -> napari.Viewer:
    """Open a viewer with the synthetic time-lapse sample and (by default) the six widgets.

    Parameters
    ----------
    show : bool
        Show the window (False for tests).
    widgets : bool
        Dock the Embed, Group, Track, Correct, Fine-tune and Export widgets.

    Returns
    -------
    napari.Viewer
        As :func:`set_up_demo` leaves it.
    """
    viewer = napari.Viewer(title="napari-cosine-embed demo", show=show)
    set_up_demo(viewer, widgets=widgets)
    return viewer


def set_up_demo(viewer: napari.Viewer, *, widgets: bool = True) -> None:
    """Size the window, open the synthetic sample and (by default) dock the six widgets.

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
