"""The Correct widget: fix a labels layer by hand, undo with Ctrl-Z, autosave into a project.

**Selection.** Edits act on the ids in the "label ids" field of the frame in view. Picking a
label with napari's picker tool (or setting the layer's label box) puts it there, keeping the
last two picked: pick, pick, Merge. Ids can also be typed ("3, 7").

**Undo.** Each edit is computed by :mod:`..core.editing` on the frame in view, turned into a
:class:`~..core.editing.Change` (changed pixels, old and new values) and written with
``Labels.data_setitem`` inside ``Labels.block_history()``: one edit is one undo step of the
layer (Ctrl-Z / ``layer.undo()``), also when it spans several frames (carry a track id).

**Cut** draws in a shapes layer named ``cut line`` (made, in path mode, on the first press):
draw a path across the objects, press Cut again. **Click-to-add** (a mode; the labels layer is
switched to pan/zoom) previews, in a ``click-to-add preview`` layer, the unlabelled pixels
similar to the clicked one in the frame's cached embedding; the slider updates it live and
Enter (or Add) makes it a new object.

**Autosave** (:mod:`._autosave`) writes every change of the labels layer into its project
folder, made on the first edit beside the image's file (else in the home folder) unless one was
chosen.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FloatSlider,
    Label,
    LineEdit,
    PushButton,
    SpinBox,
)

from ..core import editing
from ..core.errors import InputError
from ._autosave import Autosave, default_project_dir, frame_of
from ._edit_history import EditHistory
from ._jobs import guarded
from ._layers import frame_in_view
from ._session import session_for
from ._shortcuts import install_shortcuts, next_unreviewed
from .embed import SCRATCH_LAYERS, layer_choices, watch_layers

if TYPE_CHECKING:
    import napari

    from ..core.project import Project

__all__ = [
    "CUT_LAYER",
    "PREVIEW_LAYER",
    "CorrectWidget",
    "default_project_dir",
    "parse_ids",
    "selected_ids",
]

PREVIEW_LAYER = "click-to-add preview"
CUT_LAYER = "cut line"


def parse_ids(text: str) -> list[int]:
    """Label ids from text such as ``"3, 7"`` or ``"3 7"``, in the order given."""
    tokens = [tok for tok in re.split(r"[,;\s]+", text.strip()) if tok]
    if not all(tok.isdigit() for tok in tokens):
        raise InputError(f"label ids are whole numbers separated by commas, got {text!r}")
    return [int(tok) for tok in tokens]


def selected_ids(text: str, at_least: int, *, what: str = "label") -> list[int]:
    """:func:`parse_ids`, refused with a hint when fewer than ``at_least`` are given."""
    ids = parse_ids(text)
    if len(ids) < at_least:
        raise InputError(
            f"give {at_least} {what} id(s) in '{what} ids' (type them, or pick them with "
            "napari's picker tool)"
        )
    return ids


def _ranges(frames: list[int]) -> str:
    parts, start = [], None
    for i, t in enumerate(frames):
        start = t if start is None else start
        if i + 1 == len(frames) or frames[i + 1] != t + 1:
            parts.append(str(t) if start == t else f"{start}-{t}")
            start = None
    return ", ".join(parts) or "none"


class CorrectWidget(Container):
    """Merge, split, cut, delete, relabel, fill, add and carry labels; mark curated frames.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        Injected by napari.
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        self._viewer = viewer
        self._session = session = session_for(viewer)
        self._image = ComboBox(label="image", choices=layer_choices(viewer, "Image"))
        self._labels_box = ComboBox(label="labels", choices=self._labels_choices)
        self._ids = LineEdit(label="label ids")
        self._ids.tooltip = "e.g. 3, 7; napari's picker tool fills in the last two labels picked"
        buttons = {
            "Merge": self.merge,
            "Delete": self.delete,
            "Fill holes": self.fill_holes,
            "Split": self.split,
            "Cut along line": self.cut,
        }
        self._buttons = {text: PushButton(text=text) for text in buttons}
        self._new_id = SpinBox(label="new id", min=1, max=2**31 - 1, value=1)
        self._collision = ComboBox(label="if taken", choices=["refuse", "swap", "merge"])
        self._relabel = PushButton(text="Relabel")
        self._ahead = SpinBox(label="frames", min=1, max=100_000, value=5)
        self._carry = PushButton(text="Carry id forward")
        self._add_mode = CheckBox(text="Click-to-add mode", value=False)
        self._threshold = FloatSlider(label="similarity", min=0.5, max=0.99, step=0.01, value=0.85)
        self._accept_button = PushButton(text="Add (Enter)")
        self._mark = PushButton(text="Mark frame curated")
        self._unmark = PushButton(text="Unmark")
        self._curated = Label(value="curated frames: none")
        self._choose_dir = PushButton(text="Project folder...")
        self._load_button = PushButton(text="Load project...")
        self._project_label = Label(value="")
        self._status = Label(value="")

        def row(*widgets: Any) -> Container:
            return Container(widgets=list(widgets), layout="horizontal", labels=False)

        b = self._buttons
        super().__init__(
            widgets=[
                self._image,
                self._labels_box,
                self._ids,
                row(b["Merge"], b["Delete"], b["Fill holes"]),
                row(b["Split"], b["Cut along line"]),
                row(self._new_id, self._collision, self._relabel),
                row(self._ahead, self._carry),
                row(self._add_mode, self._accept_button),
                self._threshold,
                row(self._mark, self._unmark),
                self._curated,
                row(self._choose_dir, self._load_button),
                self._project_label,
                self._status,
            ]
        )
        self._autosave = Autosave(
            session,
            self._project_label,
            self._image,
            self._current_t,
            self._guarded,
            parent=self.native,
        )
        for text, action in buttons.items():
            b[text].changed.connect(self._guarded(action))
        self._relabel.changed.connect(self._guarded(self.relabel))
        self._carry.changed.connect(self._guarded(self.carry))
        self._accept_button.changed.connect(self._guarded(self.accept))
        self._mark.changed.connect(self._guarded(lambda: self.mark_curated(True)))
        self._unmark.changed.connect(self._guarded(lambda: self.mark_curated(False)))
        self._choose_dir.changed.connect(self._guarded(self._autosave.ask_dir))
        self._load_button.changed.connect(self._guarded(self._ask_load))
        self._add_mode.changed.connect(self._mode_toggled)
        self._threshold.changed.connect(self._guarded(self._update_preview))
        self._labels_box.changed.connect(self._labels_chosen)
        self._image.changed.connect(self._check_shapes)
        session.curated_changed.connect(self._curated_changed)
        viewer.dims.events.current_step.connect(self._step_changed)
        watch_layers(viewer, self._layers_changed)
        controls = {**b, "Click-to-add mode": self._add_mode, "Mark frame curated": self._mark}
        install_shortcuts(self, viewer, controls, self._guarded)

        self._watched: Any = None
        self._history = EditHistory()  # what undo and redo did, for the status line
        self._picked: list[int] = []
        self._seed: tuple[Any, int, tuple[int, int]] | None = None
        self._preview_mask: np.ndarray | None = None
        self._enter_before: Any = None
        self._show_curated()
        self._labels_chosen(self._labels_box.value)

    # -- plumbing ------------------------------------------------------------------------------
    def _labels_choices(self, *_: Any) -> list[tuple[str, Any]]:
        return [
            (layer.name, layer)
            for layer in self._viewer.layers
            if type(layer).__name__ == "Labels" and layer.name not in SCRATCH_LAYERS
        ]

    _guarded = staticmethod(guarded)

    def _say(self, text: str) -> None:
        self._status.value = text

    def _layers_changed(self) -> None:
        self._image.reset_choices()
        self._labels_box.reset_choices()
        # An emptied ComboBox says nothing when its value goes to None.
        self._labels_chosen(self._labels_box.value)

    def _check_shapes(self, *_: Any) -> None:
        image, labels = self._image.value, self._labels_box.value
        if image is not None and labels is not None and image.data.shape != labels.data.shape:
            from napari.utils.notifications import show_warning

            show_warning(
                f"Labels '{labels.name}' {tuple(labels.data.shape)} do not match image "
                f"'{image.name}' {tuple(image.data.shape)}: Split uses no embedding and "
                "click-to-add is off until a matching image is chosen."
            )

    def _labels_chosen(self, layer: Any) -> None:
        if layer is self._watched:
            return
        if self._watched is not None:
            self._watched.events.selected_label.disconnect(self._label_picked)
            self._watched.events.set_data.disconnect(self._history_moved)
            self._watched.events.paint.disconnect(self._painted)
        self._watched, self._picked = layer, []
        self._autosave.watch(layer)
        self._history = EditHistory(layer)
        if layer is not None:
            layer.events.selected_label.connect(self._label_picked)
            layer.events.set_data.connect(self._history_moved)
            layer.events.paint.connect(self._painted)
            self._check_shapes()
        self._show_curated()

    def _label_picked(self, *_: Any) -> None:
        value = int(self._watched.selected_label)
        if value <= 0 or (self._picked and self._picked[-1] == value):
            return
        self._picked = [*self._picked, value][-2:]
        self._ids.value = ", ".join(map(str, self._picked))

    def _target(self) -> tuple[Any, int]:
        """The labels layer to edit and the frame in view (0 for a (Y, X) layer)."""
        layer = self._labels_box.value
        if layer is not None and layer not in self._viewer.layers:
            self._layers_changed()  # removed since: the choices catch up now
            layer = self._labels_box.value
        if layer is None:
            raise InputError("no labels layer: group an image (Group widget) or open labels")
        if getattr(layer, "multiscale", False) or layer.ndim not in (2, 3):
            raise InputError(f"'{layer.name}' must be (T, Y, X) or (Y, X) labels to be corrected")
        if not isinstance(layer.data, np.ndarray):
            raise InputError(
                f"'{layer.name}' is a lazy array; load it into memory to edit it "
                "(e.g. layer.data = numpy.asarray(layer.data))"
            )
        return layer, self._current_t(layer)

    def _current_t(self, layer: Any) -> int:
        """The frame of ``layer`` in view (0 for a (Y, X) layer)."""
        return frame_in_view(self._viewer, layer)

    _frame = staticmethod(frame_of)

    def _selected(self, at_least: int = 1) -> list[int]:
        return selected_ids(self._ids.value, at_least)

    def _embedding(self, layer: Any, t: int) -> tuple[np.ndarray, np.ndarray | None]:
        image = self._image.value
        if image is None:
            raise InputError("no image layer: this needs the image's embeddings")
        if image.data.shape != layer.data.shape:
            raise InputError(
                f"image '{image.name}' {tuple(image.data.shape)} does not match labels "
                f"'{layer.name}' {tuple(layer.data.shape)}"
            )
        cached = self._session.frame(image, t)
        if cached is None:
            raise InputError(
                f"frame {t} of '{image.name}' has no embedding yet: compute embeddings first "
                "(Embed widget)"
            )
        return cached

    def confirm(self, question: str) -> bool:
        """Ask the user a yes/no question (a dialog); tests replace this method."""
        from qtpy.QtWidgets import QMessageBox

        answer = QMessageBox.question(self.native, "napari-cosine-embed", question)
        return answer == QMessageBox.StandardButton.Yes

    def _apply(self, layer: Any, frames: dict[int, np.ndarray], what: str) -> int:
        """Write new frame contents as one undoable step; returns the pixels changed.

        An edit that would leave a label in pieces that do not touch is applied only if the
        user says so (:meth:`confirm`).
        """
        broken: dict[int, int] = {}
        for t, new in frames.items():
            broken.update(editing.broken_apart(self._frame(layer, t), new))
        if broken:
            pieces = ", ".join(f"{i} in {n} pieces" for i, n in sorted(broken.items()))
            frame = "" if layer.ndim == 2 else f" (frame {min(frames)})"
            question = (
                f"{what}: this would leave label {pieces} that do not touch{frame}. Apply anyway?"
            )
            if not self.confirm(question):
                self._say(f"{what}: not applied (the label would be in pieces)")
                return 0
        changes = [
            editing.Change.between(self._frame(layer, t), new, t=None if layer.ndim == 2 else t)
            for t, new in frames.items()
        ]
        changes = [c for c in changes if len(c)]
        if not changes:
            self._say(f"{what}: nothing changed")
            return 0
        with layer.block_history():
            for change in changes:
                new = change.new.astype(layer.data.dtype, copy=False)
                layer.data_setitem(change.indices(layer.ndim), new)
        n = sum(len(c) for c in changes)
        if layer is self._watched:
            self._history.recorded(what)
        self._say(f"{what} ({n} pixels; Ctrl-Z undoes)")
        return n

    def _painted(self, *_: Any) -> None:
        self._history.new_step()

    def _history_moved(self, *_: Any) -> None:
        """After an undo or redo of the watched layer (Ctrl-Z, Ctrl-Shift-Z), say what it did."""
        said = self._history.moved()
        if said is not None:
            self._say(said)

    # -- edits ---------------------------------------------------------------------------------
    def merge(self) -> None:
        """Merge the selected labels (at least two) into the smallest of their ids."""
        layer, t = self._target()
        ids = self._selected(2)
        new = editing.merge_labels(self._frame(layer, t), ids)
        self._apply(layer, {t: new}, f"merged {ids} into {min(ids)}")

    def delete(self) -> None:
        """Delete the selected labels from the frame in view."""
        layer, t = self._target()
        ids = self._selected()
        self._apply(layer, {t: editing.delete_labels(self._frame(layer, t), ids)}, f"deleted {ids}")

    def fill_holes(self) -> None:
        """Fill the holes of each selected label."""
        layer, t = self._target()
        ids = self._selected()
        frame = self._frame(layer, t)
        for i in ids:
            frame = editing.fill_label_holes(frame, i)
        self._apply(layer, {t: frame}, f"filled the holes of {ids}")

    def split(self) -> None:
        """Split the first selected label in two (by its embedding when one is cached)."""
        layer, t = self._target()
        label_id = self._selected()[0]
        try:
            embedding = self._embedding(layer, t)[0]
        except InputError:
            embedding = None  # the shape-based split needs nothing more
        new_id = editing.next_free_label(layer.data)
        new = editing.split_label(
            self._frame(layer, t), label_id, embedding=embedding, new_id=new_id
        )
        how = "by shape (no embedding)" if embedding is None else "by embedding"
        self._apply(layer, {t: new}, f"split {label_id} {how}; new label {new_id}")

    def cut(self) -> None:
        """Cut the labels crossed by the lines of the 'cut line' layer on the frame in view."""
        layer, t = self._target()
        if CUT_LAYER not in self._viewer.layers:
            shapes = self._viewer.add_shapes(
                name=CUT_LAYER,
                ndim=layer.ndim,
                shape_type="path",
                edge_color="yellow",
                edge_width=1,
                scale=layer.scale,
                translate=layer.translate,
            )
            shapes.mode = "add_path"
            self._say(f"draw a path across the objects in '{CUT_LAYER}', then press Cut again")
            return
        shapes = self._viewer.layers[CUT_LAYER]
        from napari.layers import Shapes

        if not isinstance(shapes, Shapes):
            raise InputError(f"'{CUT_LAYER}' must be a shapes layer; rename the other layer")
        lines, used = [], set()
        for i, (verts, kind) in enumerate(zip(shapes.data, shapes.shape_type, strict=True)):
            if kind not in ("path", "line"):
                continue
            coords = np.array([layer.world_to_data(shapes.data_to_world(v)) for v in verts])
            if shapes.ndim == layer.ndim == 3 and not np.all(np.round(coords[:, 0]) == t):
                continue  # drawn on another frame
            lines.append(coords[:, -2:])
            used.add(i)
        if not lines:
            raise InputError(f"no path in '{CUT_LAYER}' on frame {t}: draw one across the objects")
        old = self._frame(layer, t)
        new, next_id = old, editing.next_free_label(layer.data)
        for line in lines:
            new = editing.cut_labels(new, line, next_id=next_id)
            next_id = max(next_id, editing.next_free_label(new))
        added = len(np.setdiff1d(np.unique(new), np.unique(old)))
        self._apply(layer, {t: new}, f"cut: {added} new label(s)")
        shapes.selected_data = used  # done with: the next cut starts from a clean layer
        shapes.remove_selected()

    def relabel(self) -> None:
        """Give the first selected label the id in 'new id' (see 'if taken')."""
        layer, t = self._target()
        old, new_id = self._selected()[0], int(self._new_id.value)
        frame = editing.relabel(self._frame(layer, t), old, new_id, collision=self._collision.value)
        self._apply(layer, {t: frame}, f"relabelled {old} -> {new_id}")

    def carry(self) -> None:
        """Give the first selected label's continuation in the next frames the same id."""
        layer, t = self._target()
        if layer.ndim != 3:
            raise InputError("carrying a track id needs (T, Y, X) labels")
        label_id = self._selected()[0]
        frames = editing.carry_track(layer.data, t, label_id, frames=int(self._ahead.value))
        self._apply(layer, frames, f"carried {label_id} into {len(frames)} frame(s)")

    # -- click-to-add ------------------------------------------------------------------------
    def _mode_toggled(self, on: bool) -> None:
        callbacks = self._viewer.mouse_drag_callbacks
        if on:
            if self._on_mouse not in callbacks:
                callbacks.append(self._on_mouse)
            self._enter_before = self._viewer.bind_key("Enter", self._accept_key, overwrite=True)
            if self._labels_box.value is not None:
                self._labels_box.value.mode = "pan_zoom"  # a click must not also paint
            self._say("click an unlabelled object; the slider grows or shrinks the preview")
            return
        if self._on_mouse in callbacks:
            callbacks.remove(self._on_mouse)
        self._viewer.bind_key("Enter", self._enter_before, overwrite=True)
        self._enter_before = None
        self._clear_preview()

    def _on_mouse(self, viewer: Any, event: Any):
        if event.button != 1 or event.modifiers:
            return
        yield
        moved = False
        while event.type == "mouse_move":
            moved = True
            yield
        if not moved:
            self._guarded(lambda: self.click_at(event.position))()

    def _accept_key(self, viewer: Any) -> None:
        self._guarded(self.accept)()

    def click_at(self, position) -> np.ndarray:
        """Preview the object at world ``position`` (what a click does); returns its mask."""
        layer, _ = self._target()
        data = layer.world_to_data(position)
        t = 0 if layer.ndim == 2 else int(np.round(data[0]))
        yx = (int(np.round(data[-2])), int(np.round(data[-1])))
        self._embedding(layer, t)  # fail now, with the reason, when there is none
        self._seed = (layer, t, yx)
        try:
            return self._update_preview()
        except InputError:
            self._clear_preview()
            raise

    def _update_preview(self) -> np.ndarray | None:
        if self._seed is None:
            return None
        layer, t, yx = self._seed
        embedding, foreground = self._embedding(layer, t)
        tau = float(self._threshold.value)
        mask = editing.seed_region(
            self._frame(layer, t), embedding, yx, threshold=tau, foreground=foreground
        )
        self._preview_mask = mask
        if PREVIEW_LAYER in self._viewer.layers:
            self._viewer.layers[PREVIEW_LAYER].data = mask.astype(np.uint8)
        else:
            active = self._viewer.layers.selection.active
            self._viewer.add_labels(
                mask.astype(np.uint8),
                name=PREVIEW_LAYER,
                scale=layer.scale[-2:],
                translate=layer.translate[-2:],
                opacity=0.6,
            )
            self._viewer.layers.selection.active = active  # keep the user's layer selected
        self._say(f"preview: {int(mask.sum())} pixels at similarity >= {tau:.2f}; Enter adds")
        return mask

    def _clear_preview(self) -> None:
        self._seed, self._preview_mask = None, None
        if PREVIEW_LAYER in self._viewer.layers:
            layer = self._viewer.layers[PREVIEW_LAYER]
            layer.data = np.zeros_like(layer.data)

    def _step_changed(self, *_: Any) -> None:
        if self._seed is not None and self._current_t(self._seed[0]) != self._seed[1]:
            self._clear_preview()  # the preview belongs to the frame it was clicked on

    def accept(self) -> int:
        """Add the previewed object with a new id; returns the id."""
        if self._seed is None or self._preview_mask is None or not self._preview_mask.any():
            raise InputError("nothing to add: click on an unlabelled object first")
        layer, t, _ = self._seed
        new_id = editing.next_free_label(layer.data)
        new = editing.add_label(self._frame(layer, t), self._preview_mask, new_id)
        self._apply(layer, {t: new}, f"added label {new_id}")
        self._clear_preview()
        return new_id

    # -- curated frames --------------------------------------------------------------------------
    def mark_curated(self, curated: bool = True) -> None:
        """Mark (or unmark) the frame in view as curated; a curated frame is kept in the project."""
        layer, t = self._target()
        if curated:
            self._autosave.dirty.add(t)
        self._session.set_curated(layer.name, t, curated)

    def toggle_add_mode(self) -> None:
        """Click-to-add mode on or off (Shift-A)."""
        self._add_mode.value = not self._add_mode.value

    def next_unreviewed(self, step: int = 1) -> int | None:
        """Go to the nearest later (``step`` 1) or earlier (-1) frame not curated yet."""
        layer, t = self._target()
        if layer.ndim == 2:
            return None
        curated = self._session.curated_frames(layer.name)
        found = next_unreviewed(t, layer.data.shape[0], curated, step)
        if found is None:
            self._say(f"every frame {'after' if step > 0 else 'before'} {t} is curated")
            return None
        self._viewer.dims.set_current_step(0, found)
        return found

    def previous_unreviewed(self) -> int | None:
        """Go to the nearest earlier frame not curated yet (Alt-Left)."""
        return self.next_unreviewed(-1)

    def _curated_changed(self, name: str) -> None:
        if self._watched is not None and name == self._watched.name:
            self._autosave.curated_changed()
            self._show_curated()

    def _show_curated(self) -> None:
        layer = self._watched
        frames = [] if layer is None else self._session.curated_frames(layer.name)
        self._curated.value = f"curated frames: {_ranges(frames)}"

    # -- project ---------------------------------------------------------------------------------
    def flush_autosave(self) -> Project | None:
        """Write the changed frames and the curated list now; returns the project (if any)."""
        return self._autosave.flush()

    def set_project_dir(self, path: str | Path) -> None:
        """Autosave into ``path`` from now on (an empty or new folder, or a project)."""
        self._autosave.set_dir(path)

    def load_project(self, path: str | Path) -> Any:
        """Restore a project's frames and curated frames; returns the labels layer they went to.

        Into the chosen labels layer when its shape matches (one undoable step), else into a
        new labels layer named as in the project.
        """
        project, frames = self._autosave.load(path)
        shape = project.manifest.shape
        self._layers_changed()  # the choices as they are now, not as of the last turn
        layer = self._labels_box.value
        if layer is not None and tuple(layer.data.shape) == shape:
            self._target()  # an editable layer
            top = max((int(f.max()) for f in frames.values()), default=0)
            if top > np.iinfo(layer.data.dtype).max:
                raise InputError(f"label {top} does not fit '{layer.name}' ({layer.data.dtype})")
            self._apply(layer, frames, f"loaded {len(frames)} frame(s) from {project.path}")
        else:
            data = np.zeros(shape, np.uint32)
            movie = data if len(shape) == 3 else data[None]
            for t, frame in frames.items():
                movie[t] = frame
            layer = self._viewer.add_labels(data, name=project.manifest.labels_name or "labels")
            self._labels_box.reset_choices()
            self._labels_box.value = layer
        self._autosave.adopt(project, layer, frames)
        return layer

    def _ask_load(self) -> None:
        path = self._autosave.ask_project()
        if path:
            self.load_project(path)
