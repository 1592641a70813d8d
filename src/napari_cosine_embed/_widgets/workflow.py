"""The workflow panel: the steps (Embed, Group, Track, Correct, Lineage, Fine-tune, Export) in
one dock.

Docked from the Plugins menu as "Cosine Embed". Each step is the same widget as the single
docks, in a numbered tab with a scroll area, so the panel fits a 1366x768 screen beside a
usable canvas. Above the tabs one line says what the step in view does with the data open now,
what it still needs, and which step comes next; a tab's title turns green once its step has
produced its result. The hints are plain text from :func:`step_hint`, which looks at the
viewer's layers and the session (embeddings, curated frames) and does not need a display.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from qtpy.QtCore import QSize, QTimer
from qtpy.QtGui import QColor
from qtpy.QtWidgets import (
    QCheckBox,
    QLabel,
    QScrollArea,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from ._session import session_for
from .embed import layer_events, named_layer, real_viewer

if TYPE_CHECKING:
    import napari

__all__ = ["STEPS", "WorkflowPanel", "step_hint"]

#: (step, the step's widget class, by module and name, its short tab title): the order a user
#: goes through. The titles must fit the panel's width without scrolling the tab bar.
STEPS = (
    ("Embed", "embed", "EmbedWidget", "Embed"),
    ("Group", "group", "GroupWidget", "Group"),
    ("Track", "track", "TrackWidget", "Track"),
    ("Correct", "correct", "CorrectWidget", "Correct"),
    ("Lineage", "tracks", "TracksWidget", "Lineage"),
    ("Fine-tune", "finetune", "FinetuneWidget", "Tune"),
    ("Export", "export", "ExportWidget", "Export"),
)

#: The panel's preferred size: narrow beside the canvas, short enough for a 768 px screen
#: (menus, title bar and the layer list take the rest).
PANEL_WIDTH, PANEL_HEIGHT = 460, 600
#: The labels layers the plugin makes, drawn as outlines of this width when asked.
OUTPUT_LABELS = ("preview", "instances", "tracked")
OUTLINE_WIDTH = 2
#: The tab title colour of a step whose result is there.
DONE_COLOUR = "#5fbf6f"


def _layers(viewer: Any, kind: str) -> list[Any]:
    return [layer for layer in viewer.layers if type(layer).__name__ == kind]


def _embedded(session: Any, image: Any) -> tuple[int, int]:
    """(embedded frames, frames) of an image layer."""
    frames = 1 if image.data.ndim == 2 else int(image.data.shape[0])
    store = session.known_store(image)  # no fingerprint: this runs on every embedded frame
    return (0 if store is None else frames - len(store.missing())), frames


def step_hint(step: str, viewer: Any, session: Any) -> tuple[str, bool]:
    """What ``step`` does with the data open now, what it needs, what comes next; and whether
    the step's result is there (its tab turns green)."""
    images = [x for x in _layers(viewer, "Image") if not getattr(x, "rgb", False)]
    labels = [x for x in _layers(viewer, "Labels") if x.name not in ("preview",)]
    image = images[0] if images else None
    if step == "Embed":
        if image is None:
            return "Open a movie (File > Open, or File > Open Sample) to start.", False
        done, frames = _embedded(session, image)
        if done == frames:
            return f"'{image.name}' is embedded ({frames} frames). Next: 2 Group.", True
        return (
            f"Compute the embeddings of '{image.name}' ({done} of {frames} frames done). "
            "Next: 2 Group.",
            False,
        )
    if step == "Group":
        if image is None or _embedded(session, image)[0] == 0:
            return "Needs embeddings: compute them in 1 Embed first.", False
        made = named_layer(viewer, "instances") is not None
        text = (
            "Check the object diameter and the preview on a few frames, then Apply to all "
            "frames (makes 'instances'). Next: 3 Track."
        )
        return text, made
    if step == "Track":
        if not labels:
            return "Needs instances: Apply to all frames in 2 Group (or open labels).", False
        made = named_layer(viewer, "tracked") is not None
        return "Link the instances over time (makes 'tracked' and 'tracks'). Next: 4 Correct.", made
    if step == "Correct":
        if not labels:
            return "Needs a labels layer: group (2) and track (3) first, or open labels.", False
        curated = {x.name: len(session.curated_frames(x.name)) for x in labels}
        total = sum(curated.values())
        return (
            "Fix what is wrong (merge, split, delete, add), then mark each corrected frame "
            f"curated ({total} so far). Next: 5 Lineage for the tracks, 6 Fine-tune with 2 or "
            "more curated frames.",
            total > 0,
        )
    if step == "Lineage":
        if named_layer(viewer, "tracked") is None and not _layers(viewer, "Tracks"):
            return "Needs tracks: track in 3 Track, or open a CTC result or a GEFF.", False
        return (
            "Walk the review list, fix links and divisions (Ctrl-Z undoes), pin what is right; "
            "Track again keeps the pinned links. Next: 6 Fine-tune or 7 Export.",
            False,
        )
    if step == "Fine-tune":
        curated = max((len(session.curated_frames(x.name)) for x in labels), default=0)
        if curated == 0:
            return "Needs curated frames: mark corrected frames in 4 Correct.", False
        return (
            f"Fine-tune on the {curated} curated frame(s), then use the new model and "
            "re-embed (1) to see whether it helped. Next: 7 Export.",
            False,
        )
    if not labels:
        return "Needs labels to export: group (2) and track (3) first.", False
    return (
        "Write the labels and their tracks (CTC result or ground truth, GEFF, or a TIFF).",
        False,
    )


class WorkflowPanel(QWidget):
    """The dock widget: a hint line above one numbered tab per step.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        Injected by napari.

    Attributes
    ----------
    steps : dict
        The step widgets by tab name (the same classes as the single docks).
    tabs : QTabWidget
    hint : QLabel
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        import importlib

        super().__init__()
        self._viewer = viewer
        self._session = session_for(viewer)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        self.hint = QLabel("")
        self.hint.setWordWrap(True)
        self.tabs = QTabWidget()
        self.tabs.setUsesScrollButtons(True)
        self.outlines = QCheckBox("labels as outlines")
        self.outlines.setToolTip(
            "Show the plugin's labels layers (preview, instances, tracked) as outlines over "
            "the image instead of filled; napari's 'contour' control does it for any one layer."
        )
        self.outlines.toggled.connect(self._show_outlines)
        layout.addWidget(self.hint)
        layout.addWidget(self.outlines)
        layout.addWidget(self.tabs)
        self.steps: dict[str, Any] = {}
        self.done: dict[str, bool] = {}
        for number, (name, module, cls, title) in enumerate(STEPS, start=1):
            widget = getattr(importlib.import_module(f"{__package__}.{module}"), cls)(viewer)
            self.steps[name] = widget
            page = QWidget()  # the controls at the top, not spread over the tab's height
            column = QVBoxLayout(page)
            column.setContentsMargins(0, 0, 0, 0)
            column.addWidget(widget.native)
            column.addStretch(1)
            for label in widget.native.findChildren(QLabel):
                # status lines wrap instead of widening the page past the panel
                label.setWordWrap(True)
            scroll = QScrollArea()
            scroll.setWidgetResizable(True)
            scroll.setWidget(page)
            self.tabs.addTab(scroll, f"{number} {title}")
        self._layers_timer = QTimer(self)
        self._layers_timer.setSingleShot(True)
        self._layers_timer.setInterval(0)
        self._layers_timer.timeout.connect(self._follow_layers)
        self.tabs.currentChanged.connect(self.refresh)
        self._connect(layer_events(real_viewer(viewer), self._layers_changed))
        session = self._session
        self._connect(
            [
                (session.embeddings_changed, self.refresh),
                (session.curated_changed, self.refresh),
                (session.model_changed, self.refresh),
            ]
        )
        self.refresh()

    def sizeHint(self) -> QSize:
        return QSize(PANEL_WIDTH, PANEL_HEIGHT)

    def _connect(self, pairs: list[tuple[Any, Callable]]) -> None:
        for signal, slot in pairs:
            signal.connect(slot)

        def disconnect(*_: Any) -> None:
            for signal, slot in pairs:
                signal.disconnect(slot)

        self.destroyed.connect(disconnect)

    def _layers_changed(self, *_: Any) -> None:
        # on a later turn of the event loop, once for a burst of layer events: not inside
        # napari's insertion of a layer, which is a long enough pause of its own
        self._layers_timer.start()

    def _follow_layers(self) -> None:
        # napari resets the choices of the widgets it docks itself; these are docked in tabs
        for widget in self.steps.values():
            widget.reset_choices()
        self._show_outlines()
        self.refresh()

    def _show_outlines(self, *_: Any) -> None:
        """Outline (or fill) the plugin's labels layers, as the checkbox says."""
        width = OUTLINE_WIDTH if self.outlines.isChecked() else 0
        for layer in real_viewer(self._viewer).layers:
            mine = type(layer).__name__ == "Labels" and layer.name in OUTPUT_LABELS
            if mine and layer.contour != width:
                layer.contour = width

    @property
    def current(self) -> str:
        """The name of the step in view."""
        return STEPS[self.tabs.currentIndex()][0]

    def refresh(self, *_: Any) -> None:
        """Update the hint line and the tabs' colours."""
        viewer = real_viewer(self._viewer)
        bar = self.tabs.tabBar()
        for index, (name, _, _, _) in enumerate(STEPS):
            text, done = step_hint(name, viewer, self._session)
            # done steps in green (a check mark would widen the bar past the panel)
            current = index == self.tabs.currentIndex()  # its own colours: readable
            bar.setTabTextColor(index, QColor(DONE_COLOUR) if done and not current else QColor())
            self.tabs.setTabToolTip(
                index, f"step {index + 1}: {name}" + (" (done)" if done else "")
            )
            self.done[name] = done
            if current:
                self.hint.setText(text)
