"""The Lineage widget: curate tracks and their lineage, review what needs a look, pin links.

Edits act on the track ids in "track ids" (napari's picker fills in the last three labels
picked) at the frame in view: break a track here, join two tracks, make a division (mother in
the frame before, two daughters in this one), undo a division, delete a track from here on,
swap two tracks from here on. Each is one step of the labels layer's undo history (Ctrl-Z),
refused with the reason when it would leave a lineage the CTC format rejects
(:mod:`..core.curation`), and autosaved, lineage included, into the labels' project folder.

Links the user made (join, divide, swap) or confirmed (Pin track) are pinned: the Track
widget keeps them when it tracks again. The review list (:mod:`..core.curation.review`) shows
the places that most often need a look; a row jumps the viewer there and can be marked
reviewed. The lineage view (:mod:`.lineage_view`) docks below the canvas: a click jumps to
that track and frame, and the track picked in the viewer is drawn thicker there.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, Label, LineEdit, PushButton, SpinBox

from ..core.curation import TrackIndex, children_of, review_items
from ..core.errors import InputError
from ..core.tracking.pins import Pin
from ._autosave import Autosave
from ._jobs import guarded
from ._layers import frame_in_view
from ._session import session_for
from ._shortcuts import TRACK_SHORTCUTS, install_shortcuts
from ._track_state import TrackState, parents_from_graph
from .correct import selected_ids
from .embed import SCRATCH_LAYERS, connect_while_alive, layer_choices, watch_layers

if TYPE_CHECKING:
    import napari

__all__ = ["TracksWidget"]

LINEAGE_DOCK = "Lineage view"


def _index_job(data: np.ndarray) -> Generator[tuple[int, int], None, TrackIndex | None]:
    """:meth:`TrackIndex.build` as a job: progress per frame, the index as its result."""
    index = None
    for item in TrackIndex.build(data):
        if isinstance(item, TrackIndex):
            index = item
        else:
            yield item
    return index


class TracksWidget(Container):
    """Track and lineage edits, pins, the review list and the lineage view.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        Injected by napari.
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        self._viewer = viewer
        self._session = session_for(viewer)
        self._image = ComboBox(label="image", choices=layer_choices(viewer, "Image"))
        self._labels_box = ComboBox(label="labels", choices=self._labels_choices)
        self._tracks_box = ComboBox(
            label="tracks", choices=layer_choices(viewer, "Tracks"), nullable=True
        )
        self._ids = LineEdit(label="track ids")
        self._ids.tooltip = "e.g. 4, 9; napari's picker tool fills in the last three picked"
        actions: dict[str, tuple[Callable[[], None], str]] = {
            "Break here": (
                self.break_here,
                "the first track: from the frame in view on, a new track",
            ),
            "Join": (self.join, "the second track continues the first (which ends before it)"),
            "Divide": (self.divide, "mother (frame before), two daughters (frame in view)"),
            "Undo division": (
                self.undo_division,
                "mother; optionally the child that continues her",
            ),
            "Delete from here": (
                self.delete_from_here,
                "the first track, from the frame in view on",
            ),
            "Swap from here": (
                self.swap_from_here,
                "the two tracks swap ids from the frame in view on",
            ),
            "Pin track": (self.pin_tracks, "keep every link of these tracks when tracking again"),
        }
        self._buttons = {}
        for text, (action, tip) in actions.items():
            button = PushButton(text=text)
            button.tooltip = tip
            button.changed.connect(self._guarded(action))
            self._buttons[text] = button
        self._max_gap = SpinBox(label="join across (frames)", min=0, max=100, value=3)
        self._show_view = PushButton(text="Show lineage view")
        self._show_view.changed.connect(self._guarded(self.show_lineage))
        self._summary = Label(value="")
        self._status = Label(value="")
        self._project_label = Label(value="")
        self._show_reviewed = CheckBox(text="show reviewed rows", value=False)
        self._mark = PushButton(text="Mark reviewed")
        self._mark.changed.connect(self._guarded(self.mark_reviewed))
        self._show_reviewed.changed.connect(self._refresh_review)

        def row(*widgets: Any) -> Container:
            box = Container(widgets=list(widgets), layout="horizontal", labels=False)
            box.native.layout().setContentsMargins(0, 0, 0, 0)  # the review list needs the room
            return box

        b = self._buttons
        self._image.visible = False  # only recorded in a new project's manifest
        super().__init__(
            widgets=[
                self._image,
                self._labels_box,
                self._tracks_box,
                self._ids,
                row(b["Break here"], b["Join"], b["Divide"]),
                row(b["Undo division"], b["Delete from here"], b["Swap from here"]),
                row(b["Pin track"], self._show_view),
                self._max_gap,
            ]
        )
        from qtpy.QtWidgets import QAbstractItemView, QTableWidget

        self._table = QTableWidget(0, 2)
        self._table.setHorizontalHeaderLabels(["frame", "to look at"])
        self._table.horizontalHeader().setStretchLastSection(True)
        self._table.verticalHeader().setVisible(False)
        self._table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self._table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self._table.setMinimumHeight(150)
        self._table.currentCellChanged.connect(self._guarded(self._jump_row, with_args=True))
        layout = self.native.layout()
        from qtpy.QtWidgets import QSizePolicy

        for label in (self._summary, self._status):
            label.native.setWordWrap(True)
            label.native.setMaximumWidth(16_777_215)  # magicgui's labels are narrow otherwise
            label.native.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Minimum)
            layout.addWidget(label.native)
        layout.addWidget(row(self._show_reviewed, self._mark).native)
        layout.addWidget(self._table)
        layout.addWidget(self._project_label.native)
        self._autosave = Autosave(
            self._session,
            self._project_label,
            self._image,
            self._current_t,
            self._guarded,
            parent=self.native,
        )
        self._autosave.extra_save = self._save_tracks
        from qtpy.QtCore import QTimer

        self._timer = QTimer(self.native)  # coalesces the redraws after an edit
        self._timer.setSingleShot(True)
        self._timer.setInterval(0)
        self._timer.timeout.connect(self._guarded(self.refresh))
        self.state: TrackState | None = None
        self._gone = False
        self.view: Any = None
        self.index_worker: Any = None
        self.rows: list = []
        self._picked: list[int] = []
        controls = {**self._buttons, "Mark reviewed": self._mark}
        install_shortcuts(self, viewer, controls, self._guarded, TRACK_SHORTCUTS)
        self._labels_box.changed.connect(self._labels_chosen)
        self._tracks_box.changed.connect(self._tracks_chosen)
        connect_while_alive(self, [(viewer.dims.events.current_step, self._step_changed)])
        self.native.destroyed.connect(self._closed)
        watch_layers(viewer, self._layers_changed)
        self._default_tracks()
        self._labels_chosen(self._labels_box.value)

    # -- plumbing ------------------------------------------------------------------------------
    def _labels_choices(self, *_: Any) -> list[tuple[str, Any]]:
        return [
            (layer.name, layer)
            for layer in self._viewer.layers
            if type(layer).__name__ == "Labels"
            and layer.name not in SCRATCH_LAYERS
            and layer.ndim == 3
        ]

    _guarded = staticmethod(guarded)

    def _say(self, text: str) -> None:
        self._status.value = text

    def _layers_changed(self) -> None:
        for box in (self._image, self._labels_box, self._tracks_box):
            box.reset_choices()
        self._default_tracks()
        self._labels_chosen(self._labels_box.value)

    def _closed(self, *_: Any) -> None:
        self._gone = True  # a worker or timer that reports later finds nothing to update
        if self.state is not None:
            self.state.close()
            self.state.layer.events.selected_label.disconnect(self._picked_label)

    def _default_tracks(self) -> None:
        """With no tracks layer chosen, the Track widget's (or the newest) one."""
        if self._tracks_box.value is None:
            layers = [x for x in self._tracks_box.choices if x is not None]
            named = [x for x in layers if x.name == "tracks"]
            if layers:
                self._tracks_box.value = (named or layers)[-1]

    def _tracks_chosen(self, tracks: Any) -> None:
        """The lineage of the labels is the chosen tracks layer's graph."""
        if self.state is not None and tracks is not None:
            self.state.parents = parents_from_graph(tracks.graph)
            self._timer.start()

    def _current_t(self, layer: Any) -> int:
        return frame_in_view(self._viewer, layer)

    def _selected(self, at_least: int) -> list[int]:
        return selected_ids(self._ids.value, at_least, what="track")

    def _ready(self) -> tuple[TrackState, int]:
        state = self.state
        if state is None:
            raise InputError("choose a tracked labels layer (T, Y, X): track first (Track widget)")
        if not state.ready:
            raise InputError("the tracks are still being indexed; try again in a moment")
        return state, self._current_t(state.layer)

    # -- the labels layer ----------------------------------------------------------------------
    def _labels_chosen(self, layer: Any) -> None:
        if self.state is not None and layer is self.state.layer:
            return
        if self.state is not None:
            self.state.close()
            self.state.layer.events.selected_label.disconnect(self._picked_label)
        self.state = None
        self._autosave.watch(layer)
        if layer is None:
            self._summary.value = "no tracked labels layer"
            return
        tracks = self._tracks_box.value
        parents = parents_from_graph(tracks.graph) if tracks is not None else {}
        self.state = TrackState(layer, parents)
        self.state.changed.connect(self._state_changed)
        self.state.touched.connect(lambda frames: self._autosave.mark(frames, extra=True))
        layer.events.selected_label.connect(self._picked_label)
        self._index()

    def _index(self) -> None:
        """Index the layer's tracks in a worker (a long movie takes a second or two)."""
        from napari.qt.threading import create_worker

        state = self.state
        data = state.layer.data
        if not isinstance(data, np.ndarray):
            self._summary.value = f"'{state.layer.name}' is lazy: load it into memory to curate"
            return
        self._summary.value = "indexing the tracks..."
        worker = create_worker(_index_job, data)
        worker.yielded.connect(self._index_progress)
        self.native.destroyed.connect(worker.quit)
        worker.returned.connect(
            self._guarded(lambda index: self._indexed(state, data, index), with_args=True)
        )
        self.index_worker = worker
        worker.start()

    def _index_progress(self, progress: tuple[int, int]) -> None:
        done, total = progress
        if done % 10 == 0 or done == total:
            with contextlib.suppress(RuntimeError):  # the dock was closed meanwhile
                self._summary.value = f"indexing the tracks: frame {done}/{total}"

    def _indexed(self, state: TrackState, data: np.ndarray, index: TrackIndex) -> None:
        if self._gone or state is not self.state or state.layer.data is not data:
            return  # another layer, or new data, since
        state.index = index
        tracks = self._tracks_box.value
        if tracks is not None:  # the lineage of these labels (new ones after tracking again)
            state.parents = parents_from_graph(tracks.graph)
        self._restore(state)
        self._session.pins[state.layer.name] = state.pins
        self.refresh()

    def _restore(self, state: TrackState) -> None:
        """Take the lineage, pins and reviewed rows saved in the project when they fit."""
        from ..core.project import Project, is_project

        path = self._session.project_dir
        if path is None or not is_project(path):
            return
        saved = Project.open(path).load_tracks()
        if saved is None:
            return
        lineage, pins, reviewed = saved
        now = state.index.lineage({})
        if np.array_equal(lineage[:, :3], now[:, :3]):
            state.parents = {int(r[0]): int(r[3]) for r in lineage if r[3]}
            state.pins = [Pin.from_list(p) for p in pins]
            state.reviewed = set(reviewed)

    def _save_tracks(self, project: Any) -> None:
        state = self.state
        if state is not None and state.ready:
            pins = [p.as_list() for p in state.pins]
            project.save_tracks(state.lineage(), pins=pins, reviewed=state.reviewed)

    def _state_changed(self, what: str) -> None:
        if self.state is not None and self.state.index is None and self.state.layer is not None:
            self._index()  # new data in the layer
        if self.state is not None:
            self._session.pins[self.state.layer.name] = self.state.pins
        self._say(what)
        self._autosave.mark(extra=True)
        self._timer.start()

    def _picked_label(self, *_: Any) -> None:
        value = int(self.state.layer.selected_label)
        if value > 0 and (not self._picked or self._picked[-1] != value):
            self._picked = [*self._picked, value][-3:]
            self._ids.value = ", ".join(map(str, self._picked))
        if self.view is not None:
            self.view.highlight(value, self._current_t(self.state.layer))

    def _step_changed(self, *_: Any) -> None:
        if self.view is not None and self.state is not None:
            self.view.highlight(None, self._current_t(self.state.layer))
            self.view.highlight(int(self.state.layer.selected_label), None)

    # -- showing -------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Redraw what follows the lineage: the tracks layer, the lineage view, the review list."""
        state = self.state
        if self._gone or state is None or not state.ready:
            return
        lineage = state.lineage()
        n_div = sum(
            1 for k in set(state.parents.values()) if len(children_of(state.parents, k)) > 1
        )
        self._summary.value = (
            f"{len(lineage)} tracks, {n_div} divisions, {len(state.pins)} pinned links"
        )
        tracks = self._tracks_box.value
        if tracks is not None:
            data = state.index.tracks_data()
            graph = {int(r[0]): [int(r[3])] for r in lineage if r[3]}
            if len(data):
                tracks.graph = {}
                tracks.data = data
                tracks.graph = graph
        if self.view is not None:
            self.view.set_lineage(lineage)
        self.rows = review_items(state.index, state.parents)
        self._refresh_review()

    def _refresh_review(self, *_: Any) -> None:
        from qtpy.QtWidgets import QTableWidgetItem

        state = self.state
        reviewed = state.reviewed if state is not None else set()
        shown = [r for r in self.rows if self._show_reviewed.value or r.key not in reviewed]
        self._shown = shown
        table = self._table
        table.blockSignals(True)
        table.setRowCount(len(shown))
        for i, item in enumerate(shown):
            done = " (reviewed)" if item.key in reviewed else ""
            table.setItem(i, 0, QTableWidgetItem(str(item.t)))
            table.setItem(i, 1, QTableWidgetItem(item.text + done))
        table.blockSignals(False)

    def show_lineage(self) -> Any:
        """Dock the lineage view below the canvas (once) and draw the lineage in it."""
        from .lineage_view import LineageView

        if self.view is None:
            self.view = LineageView()
            self.view.picked.connect(self._guarded(self.go_to, with_args=True))
            self._viewer.window.add_dock_widget(self.view, area="bottom", name=LINEAGE_DOCK)
        self.refresh()
        return self.view

    def go_to(self, track: int, t: int) -> None:
        """Show frame ``t``, centred on ``track``, and select it in the labels layer."""
        state = self.state
        if state is None or not state.ready:
            return
        layer = state.layer
        box = state.index.box(t, track)
        world = layer.data_to_world([t, box.y, box.x])
        self._viewer.dims.set_point(0, world[0])
        scene = getattr(self._viewer, "scene", None)  # napari >= 0.9 keeps the camera there
        camera = scene.camera if scene is not None else self._viewer.camera
        camera.center = tuple(world[-2:])
        layer.selected_label = int(track)
        if self.view is not None:
            self.view.highlight(int(track), t)

    def _jump_row(self, row: int, *_: Any) -> None:
        if 0 <= row < len(getattr(self, "_shown", [])):
            item = self._shown[row]
            self.go_to(item.track, item.t)

    def mark_reviewed(self) -> None:
        """Mark the review row in focus as reviewed (or back, when it was)."""
        row = self._table.currentRow()
        if self.state is None or not 0 <= row < len(getattr(self, "_shown", [])):
            raise InputError("choose a row of the review list first")
        key = self._shown[row].key
        self.state.reviewed.symmetric_difference_update({key})
        self._autosave.mark(extra=True)
        self._refresh_review()

    # -- edits ---------------------------------------------------------------------------------
    def break_here(self) -> None:
        state, t = self._ready()
        (track, *_) = self._selected(1)
        state.edit("break_track", track, t)

    def join(self) -> None:
        state, _ = self._ready()
        first, second = self._selected(2)[:2]
        end = state.index.span(first)[1]
        state.edit("join_tracks", first, second, max_gap=int(self._max_gap.value))
        if state.index.has(first, end + 1):  # joined in place: pin the new link
            state.pin(end, first, first)

    def divide(self) -> None:
        state, t = self._ready()
        mother, d1, d2 = self._selected(3)[:3]
        edit = state.edit("make_division", mother, [d1, d2], t)
        for child in children_of(edit.parents_after, mother):
            state.pin(t - 1, mother, child)
        self._timer.start()

    def undo_division(self) -> None:
        state, _ = self._ready()
        ids = self._selected(1)
        mother, keep = ids[0], (ids[1] if len(ids) > 1 else None)
        end = state.index.span(mother)[1]
        children = children_of(state.parents, mother)
        gone = self._pins_between(state, end, mother, children)
        state.pins = [p for p in state.pins if p not in gone]
        state.edit("remove_division", mother, keep=keep)

    def _pins_between(self, state: TrackState, t: int, source: int, targets: list[int]) -> list:
        data = state.layer.data
        if t + 1 >= data.shape[0]:
            return []
        return [
            p
            for p in state.pins
            if p.t == t and data[t][p.source] == source and data[t + 1][p.target] in targets
        ]

    def delete_from_here(self) -> None:
        state, t = self._ready()
        (track, *_) = self._selected(1)
        state.edit("delete_track", track, t)

    def swap_from_here(self) -> None:
        state, t = self._ready()
        a, b = self._selected(2)[:2]
        state.edit("swap_tracks", a, b, t)
        for label in (a, b):
            if t > 0 and state.index.has(label, t - 1) and state.index.has(label, t):
                state.pin(t - 1, label, label)
        self._timer.start()

    def pin_tracks(self) -> None:
        state, _ = self._ready()
        for track in self._selected(1):
            state.pin_track(track)
