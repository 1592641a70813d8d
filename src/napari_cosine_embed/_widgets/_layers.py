"""Output layers that appear without stalling the viewer.

Adding a layer to napari costs the main thread in two parts: building the layer object (for
the first layer of a kind in a session, 130 ms for a 6 x 1024 x 1024 labels layer: imports and
first-time set-up) and inserting it (the layer controls and the vispy visual, 35-110 ms, then a
redraw). Measured in docs/benchmarks.md ("Main-thread stalls").

So a job builds the layer objects it will show in its worker (:func:`build_layer`; a napari
layer is a plain evented model until it is inserted) and the main thread only inserts them,
one per turn of the event loop (:func:`one_per_turn`), so the viewer redraws and answers
clicks between two insertions. An output layer that exists already is updated in place
instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["Turns", "build_layer", "frame_in_view", "one_per_turn"]


def frame_in_view(viewer: Any, layer: Any) -> int:
    """The frame of a (T, Y, X) ``layer`` that the viewer shows (0 for a (Y, X) layer)."""
    if layer.ndim == 2:
        return 0
    t = round(float(layer.world_to_data(viewer.dims.point)[0]))
    return min(max(t, 0), layer.data.shape[0] - 1)


def build_layer(kind: str, data: Any, **kwargs: Any) -> Any:
    """A napari layer object of ``kind`` ("labels", "tracks", "image"), not yet in a viewer.

    Safe to call in a worker thread.
    """
    from napari import layers

    factory = {"labels": layers.Labels, "tracks": layers.Tracks, "image": layers.Image}[kind]
    return factory(data, **kwargs)


class Turns:
    """Steps run on the main thread, one per turn of the event loop (:func:`one_per_turn`)."""

    def __init__(self, steps: Iterable[Callable[[], Any]]) -> None:
        self._pending = list(steps)

    @property
    def done(self) -> bool:
        """Whether every step has run."""
        return not self._pending

    def _run_next(self) -> None:
        from qtpy.QtCore import QTimer

        if self._pending:
            self._pending.pop(0)()
        if self._pending:
            QTimer.singleShot(0, self._run_next)


def one_per_turn(steps: Iterable[Callable[[], Any]]) -> Turns:
    """Run ``steps`` on the main thread: the first now, each next one on a later turn of the
    event loop (after the paints and clicks pending by then). Returns the :class:`Turns`."""
    turns = Turns(steps)
    turns._run_next()
    return turns
