"""What an undo or redo of a labels layer did, in words for the Correct widget's status line.

napari's Labels layer keeps its own undo and redo lists and says nothing when Ctrl-Z or
Ctrl-Shift-Z moves along them, only that its data changed. :class:`EditHistory` remembers the
description of each of the widget's edits by the length of the undo list after it, and reads
the lists' lengths when the data changes: one step less to undo and one more to redo is an undo
of the step that was last, and the reverse a redo.
"""

from __future__ import annotations

from typing import Any

__all__ = ["EditHistory", "history_lengths"]

#: How an edit the widget did not make (napari's brush, eraser, fill) is named.
OUTSIDE = "an edit made outside this widget"


def history_lengths(layer: Any) -> tuple[int, int]:
    """How many steps a labels layer can undo and redo (0, 0 for None)."""
    if layer is None:
        return 0, 0
    return len(getattr(layer, "_undo_history", ())), len(getattr(layer, "_redo_history", ()))


class EditHistory:
    """Descriptions of the edits of one labels layer, by their place in its undo list."""

    def __init__(self, layer: Any = None) -> None:
        self.layer = layer
        self._edits: dict[int, str] = {}
        self._lengths = history_lengths(layer)

    def recorded(self, what: str) -> None:
        """The widget just made an edit described by ``what`` (one undo step)."""
        self._lengths = history_lengths(self.layer)
        self._edits[self._lengths[0]] = what

    def new_step(self) -> None:
        """A new step was painted into the layer: the steps it replaced are forgotten."""
        self._lengths = history_lengths(self.layer)
        for step in [k for k in self._edits if k >= self._lengths[0]]:
            del self._edits[step]

    def moved(self) -> str | None:
        """After the layer's data changed: what an undo or redo did, or None if neither."""
        (undo, redo), (was_undo, was_redo) = history_lengths(self.layer), self._lengths
        self._lengths = (undo, redo)
        if undo == was_undo - 1 and redo == was_redo + 1:
            return f"undid: {self._edits.get(was_undo, OUTSIDE)} (Ctrl-Shift-Z redoes)"
        if undo == was_undo + 1 and redo == was_redo - 1:
            return f"redid: {self._edits.get(undo, OUTSIDE)}"
        return None
