"""The tracks of one labels layer while they are curated: index, parents, pins, undo.

A track edit (:mod:`..core.curation`) is written into the labels layer with
``Labels.data_setitem`` inside ``Labels.block_history()``, so it is one step of the layer's own
undo history, shared with the Correct widget's edits and napari's brush: Ctrl-Z takes back
whichever came last. :class:`TrackState` remembers, by its place in that history, what each
step did to the lineage (a track edit: its parents before and after; any other edit: the
pixels it touched), so an undo or redo puts the lineage back with the pixels and refreshes
the :class:`~..core.curation.TrackIndex` only where they changed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from psygnal import Signal

from ..core import curation
from ..core.curation import TrackEdit, TrackIndex
from ..core.errors import InputError
from ..core.tracking.pins import Pin, inner_point
from ._edit_history import StepRecords

__all__ = ["TrackState", "parents_from_graph"]


def parents_from_graph(graph: Any) -> dict[int, int]:
    """``{child: parent}`` from a napari Tracks graph ``{child: [parent]}``."""
    parents = {}
    for child, ps in (graph or {}).items():
        ps = [ps] if np.isscalar(ps) else list(ps)
        if ps:
            parents[int(child)] = int(ps[0])
    return parents


def _regions(atoms: Any) -> list[tuple[int, tuple[slice, slice] | None]]:
    """``(frame, region)`` pairs a napari paint event's history atoms touched (None: all)."""
    out = []
    for atom in atoms or []:
        key = getattr(atom, "slice_key", None)  # brush, fill, polygon
        if key is not None:
            t, rows, cols = (key[0], key[1], key[2]) if len(key) == 3 else (0, key[0], key[1])
            frames = range(t.start or 0, t.stop) if isinstance(t, slice) else [int(t)]
            out.extend((int(s), (rows, cols)) for s in frames)
            continue
        indices = atom[0]
        if len(indices) != 3:
            continue
        frames, rows, cols = (np.asarray(i).ravel() for i in indices)
        for s in np.unique(frames):
            here = frames == s
            region = (
                slice(int(rows[here].min()), int(rows[here].max()) + 1),
                slice(int(cols[here].min()), int(cols[here].max()) + 1),
            )
            out.append((int(s), region))
    return out


class TrackState:
    """Index, parents, pins and reviewed rows of one (T, Y, X) labels layer.

    Signals
    -------
    changed(str)
        The lineage or the pixels changed; the argument says what happened (an edit, an
        undo), for a status line.
    touched(object)
        The frames (a list) whose pixels a track edit, or its undo or redo, changed.
    """

    changed = Signal(str)
    touched = Signal(object)

    def __init__(self, layer: Any, parents: dict[int, int] | None = None) -> None:
        self.layer = layer
        self.index: TrackIndex | None = None
        self.parents: dict[int, int] = dict(parents or {})
        self.pins: list[Pin] = []
        self.reviewed: set[str] = set()
        self._steps = StepRecords(layer)  # what each undo step did to the tracks
        self._applying = False
        self._data = layer.data
        layer.events.paint.connect(self._painted)
        layer.events.set_data.connect(self._set_data)

    def close(self) -> None:
        self.layer.events.paint.disconnect(self._painted)
        self.layer.events.set_data.disconnect(self._set_data)

    @property
    def ready(self) -> bool:
        return self.index is not None and self.layer.data is self._data

    def lineage(self) -> np.ndarray:
        if self.index is None:
            raise InputError("the tracks are still being indexed")
        return self.index.lineage(self.parents)

    # -- edits --------------------------------------------------------------------------------
    def edit(self, name: str, *args: Any, **kwargs: Any) -> TrackEdit:
        """Compute and apply the edit ``curation.<name>(movie, index, parents, *args)``."""
        if not self.ready:
            raise InputError("the tracks are still being indexed; try again in a moment")
        data = self.layer.data
        if not isinstance(data, np.ndarray):
            raise InputError(f"'{self.layer.name}' is a lazy array; load it into memory to edit")
        edit = getattr(curation, name)(data, self.index, self.parents, *args, **kwargs)
        self.apply(edit)
        return edit

    def apply(self, edit: TrackEdit) -> None:
        """Write ``edit`` as one undo step of the layer, and follow it."""
        layer = self.layer
        if edit.changes:
            self._applying = True
            try:
                with layer.block_history():
                    values = edit.values().astype(layer.data.dtype, copy=False)
                    layer.data_setitem(edit.indices(), values)
            finally:
                self._applying = False
            edit.refresh(layer.data, self.index)
            self._steps.new_step(edit)
        # (a change of the lineage alone, such as a link across a gap, is no undo step of
        # napari's, which records pixels only)
        self.parents = dict(edit.parents_after)
        self.touched.emit(sorted({c.t for c in edit.changes}))
        self.changed.emit(edit.what)

    def pin(self, t: int, source: int, target: int) -> Pin:
        """Pin the link from track ``source`` in frame ``t`` to ``target`` in ``t + 1``."""
        points = []
        for s, label in ((t, source), (t + 1, target)):
            box = self.index.box(s, label)
            crop = np.asarray(self.layer.data[s, box.rows, box.cols]) == label
            y, x = inner_point(crop)
            points.append((y + box.rows.start, x + box.cols.start))
        pin = Pin(int(t), points[0], points[1])
        if pin not in self.pins:
            self.pins.append(pin)
        return pin

    def pin_track(self, track: int) -> int:
        """Pin every link of ``track``: along it, from its parent, to its children."""
        frames = self.index.frames_of(track)
        if not frames:
            raise InputError(f"track {track} is in no frame")
        before = len(self.pins)
        for t in frames[:-1]:
            self.pin(t, track, track)
        parent = self.parents.get(track)
        if parent and self.index.frames_of(parent)[-1] == frames[0] - 1:
            self.pin(frames[0] - 1, parent, track)
        for child in curation.children_of(self.parents, track):
            if self.index.frames_of(child)[0] == frames[-1] + 1:
                self.pin(frames[-1], track, child)
        self.changed.emit(f"pinned {len(self.pins) - before} link(s) of track {track}")
        return len(self.pins) - before

    # -- following the layer ------------------------------------------------------------------
    def _painted(self, event: Any) -> None:
        """A new undo step: ours is recorded by :meth:`apply`; any other edit's regions here."""
        if self._applying:
            return
        regions = _regions(getattr(event, "value", None))
        self._steps.new_step(regions)
        if self.ready:
            for t, region in regions:
                self.index.refresh(self.layer.data, t, self._labels_in(t, region), region)
            self.changed.emit("labels edited")

    def _labels_in(self, t: int, region: Any) -> set[int]:
        """Labels that may have changed in ``region`` of frame ``t``: those there now and those
        whose box meets it."""
        now = set(np.unique(np.asarray(self.layer.data[t][region])).tolist()) - {0}
        for label, box in self.index.labels_at(t).items():
            if (
                box.rows.start < region[0].stop
                and region[0].start < box.rows.stop
                and (box.cols.start < region[1].stop and region[1].start < box.cols.stop)
            ):
                now.add(label)
        return now

    def _set_data(self, *_: Any) -> None:
        """New data (the index is rebuilt by the widget), or an undo or redo of a step."""
        if self.layer.data is not self._data:
            self._data = self.layer.data
            self.index = None
            self._steps = StepRecords(self.layer)
            self.changed.emit("new labels: indexing the tracks again")
            return
        moved = self._steps.moved()
        if moved is None or not self.ready:
            return
        undoing, step = moved[0] == "undo", moved[1]
        if step is None:  # a step from before the tracks were followed: index them again
            self.index = None
            self.changed.emit("undid an edit made earlier: indexing the tracks again")
            return
        if isinstance(step, TrackEdit):
            step.refresh(self.layer.data, self.index)
            self.parents = dict(step.parents_before if undoing else step.parents_after)
            self.touched.emit(sorted({c.t for c in step.changes}))
            self.changed.emit(f"{'undid' if undoing else 'redid'}: {step.what}")
        else:
            for t, region in step:
                self.index.refresh(self.layer.data, t, self._labels_in(t, region), region)
            self.changed.emit("undid an edit" if undoing else "redid an edit")
