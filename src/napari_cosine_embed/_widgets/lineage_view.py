"""The lineage view: the division tree of a tracked movie, time across, one row per track.

Drawn with pyqtgraph, which is maintained, made for Qt, and draws many thousands of line
segments as one item: every track is a horizontal segment from its first to its last frame,
every division two connectors from the mother's end to her daughters' starts, all in one
``PlotDataItem`` (``connect="pairs"``), so a redraw of a 150-frame movie with 1,000 tracks is
one array handed to the GPU (or the software renderer), not thousands of items. Rows follow
the tree: each track's daughters lie just below it, so a lineage reads as a block.

A click picks the track and frame under the cursor (:attr:`LineageView.picked`); the track
selected in the viewer is drawn thicker, and a vertical line marks the frame in view.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from qtpy.QtCore import Signal
from qtpy.QtWidgets import QVBoxLayout, QWidget

__all__ = ["LineageView", "tree_rows"]


def tree_rows(lineage: np.ndarray) -> dict[int, int]:
    """Row of each track: roots in order of first frame, each track's children below it."""
    rows = np.asarray(lineage, dtype=np.int64).reshape(-1, 4)
    first = {int(r[0]): int(r[1]) for r in rows}
    kids: dict[int, list[int]] = {}
    roots = []
    for label, _first, _last, parent in rows.tolist():
        if parent and parent in first:
            kids.setdefault(parent, []).append(label)
        else:
            roots.append(label)
    order: dict[int, int] = {}
    stack = sorted(roots, key=lambda k: (first[k], k), reverse=True)
    while stack:  # depth first, without recursion (lineages can be deep)
        label = stack.pop()
        if label in order:
            continue
        order[label] = len(order)
        stack.extend(sorted(kids.get(label, []), key=lambda k: (first[k], k), reverse=True))
    return order


class LineageView(QWidget):
    """A pyqtgraph plot of a lineage.

    Signals
    -------
    picked(int, int)
        A click on the plot: the track and the frame under it.
    """

    picked = Signal(int, int)

    def __init__(self, parent: QWidget | None = None) -> None:
        import pyqtgraph as pg

        super().__init__(parent)
        self._plot = pg.PlotWidget(background="#262930")  # napari's dark panel colour
        self._plot.setLabel("bottom", "frame")
        self._plot.setLabel("left", "track (tree order)")
        self._plot.showGrid(x=True, y=False, alpha=0.2)
        self._plot.invertY(True)
        self._plot.setMenuEnabled(False)
        self._lines = self._plot.plot([], [], connect="pairs", pen=pg.mkPen("#8fb8de", width=1))
        self._links = self._plot.plot([], [], connect="pairs", pen=pg.mkPen("#e0a040", width=1))
        self._selected = self._plot.plot([], [], pen=pg.mkPen("#ffffff", width=4))
        self._now = pg.InfiniteLine(angle=90, pen=pg.mkPen("#ff5050", width=1))
        self._plot.addItem(self._now)
        self._plot.scene().sigMouseClicked.connect(self._clicked)
        self.setMinimumHeight(120)  # a few dozen rows readable below the canvas
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._plot)
        self.rows: dict[int, int] = {}
        self._spans: dict[int, tuple[int, int]] = {}
        self._by_row = np.zeros(0, np.int64)
        self._fitted = False

    def set_lineage(self, lineage: np.ndarray) -> None:
        """Draw ``lineage`` (rows ``[label, first, last, parent]``)."""
        rows = np.asarray(lineage, dtype=np.int64).reshape(-1, 4)
        self.rows = tree_rows(rows)
        self._spans = {int(r[0]): (int(r[1]), int(r[2])) for r in rows}
        y = np.array([self.rows[int(k)] for k in rows[:, 0]], dtype=float)
        # a track seen in one frame still gets a visible stub
        x0, x1 = rows[:, 1].astype(float) - 0.3, rows[:, 2].astype(float) + 0.3
        self._lines.setData(np.column_stack([x0, x1]).ravel(), np.repeat(y, 2))
        child = rows[:, 3] > 0
        known = np.array([p in self.rows for p in rows[child, 3].tolist()], bool)
        kids = rows[child][known]
        if len(kids):
            py = np.array([self.rows[int(p)] for p in kids[:, 3]], float)
            pend = np.array([self._spans[int(p)][1] for p in kids[:, 3]], float)
            cy = np.array([self.rows[int(c)] for c in kids[:, 0]], float)
            xs = np.column_stack([pend + 0.3, kids[:, 1] - 0.3]).ravel()
            self._links.setData(xs, np.column_stack([py, cy]).ravel())
        else:
            self._links.setData([], [])
        self._by_row = np.zeros(len(self.rows), np.int64)
        for label, row in self.rows.items():
            self._by_row[row] = label
        if not self._fitted and len(rows):
            self._plot.enableAutoRange()
            self._fitted = True

    def highlight(self, track: int | None, t: int | None = None) -> None:
        """Draw ``track`` thicker (None: none) and mark frame ``t``."""
        if t is not None:
            self._now.setValue(t)
        if track is None or int(track) not in self.rows:
            self._selected.setData([], [])
            return
        first, last = self._spans[int(track)]
        row = self.rows[int(track)]
        self._selected.setData([first - 0.3, last + 0.3], [row, row])

    def pick_at(self, x: float, y: float) -> tuple[int, int] | None:
        """The track and frame nearest the plot coordinates ``(x, y)``, or None."""
        if not len(self._by_row):
            return None
        row = int(np.clip(round(y), 0, len(self._by_row) - 1))
        track = int(self._by_row[row])
        first, last = self._spans[track]
        return track, int(np.clip(round(x), first, last))

    def _clicked(self, event: Any) -> None:
        vb = self._plot.getPlotItem().vb
        if not vb.sceneBoundingRect().contains(event.scenePos()):
            return
        point = vb.mapSceneToView(event.scenePos())
        found = self.pick_at(point.x(), point.y())
        if found is not None:
            self.picked.emit(*found)
