"""Keyboard shortcuts of the Correct widget: the frequent corrections without the mouse.

Bound on the viewer while the widget exists (napari gives the active layer's own keys first,
so none of these shadows a labels-layer key) and unbound when it is closed, restoring whatever
was bound before. Each shortcut is named in its button's tooltip, and listed in the user guide
(:data:`SHORTCUTS` is the one table both come from).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["SHORTCUTS", "install_shortcuts", "next_unreviewed"]

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
    widget: Any, viewer: Any, buttons: dict[str, Any], guarded: Callable[[Callable], Callable]
) -> None:
    """Bind :data:`SHORTCUTS` to ``widget``'s methods (through ``guarded``, which turns an
    error into a notification), name each key in the tooltip of its control in ``buttons``
    (by the control's text), and unbind them when the widget is closed."""
    before = {}
    for key, (method, button, what) in SHORTCUTS.items():
        action = guarded(getattr(widget, method))

        def run(_viewer: Any, action: Callable = action) -> None:
            action()

        before[key] = viewer.bind_key(key, run, overwrite=True)
        if button in buttons:
            buttons[button].tooltip = f"{what[0].upper()}{what[1:]} ({key})"

    def restore(*_: Any) -> None:
        for key, previous in before.items():
            viewer.bind_key(key, previous, overwrite=True)

    widget.native.destroyed.connect(restore)
