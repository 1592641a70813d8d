"""What an undo or redo of a labels layer did, in words for the Correct widget's status line.

napari's Labels layer keeps its own undo and redo lists and says nothing when Ctrl-Z or
Ctrl-Shift-Z moves along them, only that its data changed. :class:`StepRecords` remembers what
each step did under the identity of the list napari keeps the step in, and follows the step
when an undo or redo moves it to the other list; :class:`EditHistory` uses it for the
descriptions of the Correct widget's edits.
"""

from __future__ import annotations

from typing import Any

__all__ = ["EditHistory", "StepRecords"]

#: How an edit the widget did not make (napari's brush, eraser, fill) is named.
OUTSIDE = "an edit made outside this widget"


class EditHistory:
    """Descriptions of the edits of one labels layer, found again when undone or redone."""

    def __init__(self, layer: Any = None) -> None:
        self.layer = layer
        self._steps = StepRecords(layer)

    def recorded(self, what: str) -> None:
        """The widget just made an edit described by ``what`` (one undo step)."""
        self._steps.new_step(what)

    def new_step(self) -> None:
        """A new step was painted into the layer (by the widget or by anything else)."""
        self._steps.new_step(OUTSIDE)

    def moved(self) -> str | None:
        """After the layer's data changed: what an undo or redo did, or None if neither."""
        moved = self._steps.moved()
        if moved is None:
            return None
        kind, what = moved
        if kind == "undo":
            return f"undid: {what or OUTSIDE} (Ctrl-Shift-Z redoes)"
        return f"redid: {what or OUTSIDE}"


class StepRecords:
    """What each step of a labels layer's undo history did, found again after undo and redo.

    napari keeps at most 100 steps, so once the history is full its length no longer tells
    the steps apart; and an undo moves a step to the redo list as a new list (reversed), a
    redo back as another. Each record is therefore kept under the identity of the list that
    holds the step now, and carried over to the new list when the step moves.
    """

    def __init__(self, layer: Any) -> None:
        self.layer = layer
        self._records: dict[int, tuple[Any, Any]] = {}  # id(step list) -> (list, record)
        self._tops = self._now()

    def _now(self) -> tuple[Any, Any]:
        undo = getattr(self.layer, "_undo_history", ())
        redo = getattr(self.layer, "_redo_history", ())
        return (undo[-1] if undo else None), (redo[-1] if redo else None)

    def new_step(self, record: Any) -> None:
        """A step was just added to the undo list: remember ``record`` for it."""
        undo_top, _ = self._tops = self._now()
        if undo_top is not None:
            self._records[id(undo_top)] = (undo_top, record)
        self._prune()

    def moved(self) -> tuple[str, Any] | None:
        """After the layer's data changed: ``("undo" or "redo", record)``, or None.

        The record is None for a step made before this watch began.
        """
        (undo_top, redo_top), (was_undo, was_redo) = self._now(), self._tops
        self._tops = (undo_top, redo_top)
        if (
            redo_top is not None
            and redo_top is not was_redo
            and was_undo is not None
            and (undo_top is not was_undo)
        ):
            record = self._records.get(id(was_undo), (None, None))[1]
            self._records[id(redo_top)] = (redo_top, record)
            return "undo", record
        if (
            undo_top is not None
            and undo_top is not was_undo
            and was_redo is not None
            and (redo_top is not was_redo)
        ):
            record = self._records.get(id(was_redo), (None, None))[1]
            self._records[id(undo_top)] = (undo_top, record)
            return "redo", record
        return None

    def _prune(self) -> None:
        """Forget the steps napari has dropped (beyond its limit, or a cleared redo list)."""
        alive = {id(step) for step in getattr(self.layer, "_undo_history", ())}
        alive |= {id(step) for step in getattr(self.layer, "_redo_history", ())}
        for key in [k for k in self._records if k not in alive]:
            del self._records[key]
