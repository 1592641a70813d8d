"""Keyboard shortcuts of the Correct and Lineage widgets: the frequent edits without the mouse.

Bound on the viewer while the widget exists (napari gives the active layer's own keys first,
so none of these shadows a labels-layer key) and unbound when it is closed, restoring whatever
was bound before. Each shortcut is named in its button's tooltip, and listed in the user guide
(:data:`SHORTCUTS` and :data:`TRACK_SHORTCUTS` are the tables both come from).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["SHORTCUTS", "TRACK_SHORTCUTS", "install_shortcuts", "next_unreviewed"]

#: key -> (the widget's method, the button whose tooltip names the key or None, what it does)
SHORTCUTS: dict[str, tuple[str, str | None, str]] = {
    "Shift-M": ("merge", "Merge", "merge the selected labels"),
    "Shift-D": ("delete", "Delete", "delete the selected labels"),
    "Shift-S": ("split", "Split", "split the first selected label in two"),
    "Shift-X": ("cut", "Cut along line", "cut along the drawn line (first press: draw it)"),
    "Shift-A": ("toggle_add_mode", "Click-to-add mode", "click-to-add mode on or off"),
    "Shift-C": ("mark_curated", "Mark frame curated", "mark the frame in view curated"),
    "Alt-Right": ("next_unreviewed", None, "go to the next frame not curated yet"),
    "Alt-Left": ("previous_unreviewed", None, "go to the previous frame not curated yet"),
}

#: The Lineage widget's keys (none shared with the Correct widget's, so both can be open).
TRACK_SHORTCUTS: dict[str, tuple[str, str | None, str]] = {
    "Shift-B": ("break_here", "Break here", "break the track at the frame in view"),
    "Shift-J": ("join", "Join", "join the second track to the first"),
    "Shift-V": ("divide", "Divide", "mother divides into the two daughters"),
    "Shift-U": ("undo_division", "Undo division", "undo the mother's division"),
    "Shift-K": ("delete_from_here", "Delete from here", "delete the track from here on"),
    "Shift-W": ("swap_from_here", "Swap from here", "swap the two tracks from here on"),
    "Shift-P": ("pin_tracks", "Pin track", "pin every link of the tracks"),
    "Shift-R": ("mark_reviewed", "Mark reviewed", "mark the review row in focus reviewed"),
}


def next_unreviewed(current: int, n_frames: int, curated: list[int], step: int) -> int | None:
    """The nearest frame after (``step`` 1) or before (-1) ``current`` that is not curated."""
    done = set(curated)
    t = current + step
    while 0 <= t < n_frames:
        if t not in done:
            return t
        t += step
    return None


def install_shortcuts(
    widget: Any,
    viewer: Any,
    buttons: dict[str, Any],
    guarded: Callable[[Callable], Callable],
    table: dict[str, tuple[str, str | None, str]] = SHORTCUTS,
) -> None:
    """Bind the keys of ``table`` to ``widget``'s methods (through ``guarded``, which turns an
    error into a notification), name each key in the tooltip of its control in ``buttons``
    (by the control's text), and unbind them when the widget is closed."""
    before = {}
    for key, (method, button, what) in table.items():
        action = guarded(getattr(widget, method))

        def run(_viewer: Any, action: Callable = action) -> None:
            action()

        before[key] = viewer.bind_key(key, run, overwrite=True)
        if button in buttons:  # the key after the control's own tip, or after what it does
            tip = buttons[button].tooltip or f"{what[0].upper()}{what[1:]}"
            buttons[button].tooltip = f"{tip} ({key})"

    def restore(*_: Any) -> None:
        for key, previous in before.items():
            viewer.bind_key(key, previous, overwrite=True)

    widget.native.destroyed.connect(restore)
