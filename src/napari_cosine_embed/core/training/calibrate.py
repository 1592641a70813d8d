"""The foreground threshold a model should be grouped at, measured on labelled frames.

Fine-tuning moves the foreground head's probabilities: on the frames a user curated, a model
may learn a soft halo around every nucleus, so the threshold that suited the base model
floods the mask and neighbours merge. After fine-tuning we therefore embed the labelled frames
(as the pipeline does: the frames before each one warm up the recurrent state), score the
foreground IoU against the labels at every threshold of a grid, and keep the best one in the
model's record. The pipeline and the Group widget then use that threshold unless told
otherwise (:func:`recommended_threshold`).
"""

from __future__ import annotations

import math
from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .._generators import result_of
from ..errors import InputError
from ..pipeline import DEFAULT_FOREGROUND_THRESHOLD

if TYPE_CHECKING:
    from .data import TrainingData

__all__ = [
    "DEFAULT_FOREGROUND_THRESHOLD",
    "RECORD_KEY",
    "THRESHOLDS",
    "calibrate_foreground",
    "calibration",
    "iter_calibrate_foreground",
    "recommended_threshold",
    "threshold_from_labels",
]


#: Thresholds tried by the calibration.
THRESHOLDS = (0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)

#: How far below the best foreground IoU the kept threshold may score (the lowest such wins).
TOLERANCE = 0.0

#: Where a model's record keeps its calibration.
RECORD_KEY = "foreground_calibration"


def calibration(model: Any) -> dict[str, Any] | None:
    """The calibration stored in ``model``'s record, or None."""
    record = getattr(model, "record", None) or {}
    return record.get(RECORD_KEY) or None


def recommended_threshold(model: Any) -> float:
    """The foreground threshold to group ``model``'s output at.

    Its calibrated threshold (:func:`calibrate_foreground`, stored in ``model.record``) when
    it has one, else :data:`DEFAULT_FOREGROUND_THRESHOLD`.
    """
    value = (calibration(model) or {}).get("threshold")
    if value is None:
        return DEFAULT_FOREGROUND_THRESHOLD
    try:
        threshold = float(value)
    except (TypeError, ValueError):
        threshold = math.nan
    if not 0.0 <= threshold <= 1.0:  # NaN fails this too
        where = getattr(model, "path", None) or getattr(model, "name", "the model")
        raise InputError(
            f"{where}: its calibrated foreground threshold {value!r} is not a number in [0, 1]; "
            "the model file is damaged (pass --foreground-threshold to use it anyway)"
        )
    return threshold


def _units(data: TrainingData, max_frames: int) -> list[tuple[Any, int]]:
    units = [
        (seq, int(t))
        for pool in data.pools
        for seq in pool.sequences
        for t in np.flatnonzero(seq.labelled)
    ]
    if len(units) > max_frames:
        pick = np.linspace(0, len(units) - 1, max_frames).round().astype(int)
        units = [units[i] for i in pick]
    return units


def iter_calibrate_foreground(
    model: Any,
    data: TrainingData,
    *,
    thresholds: Sequence[float] = THRESHOLDS,
    context: int = 3,
    max_frames: int = 8,
    tolerance: float | None = None,
) -> Generator[tuple[int, int], None, dict[str, Any] | None]:
    """Measure the foreground IoU of ``model`` on the labelled frames of ``data`` per threshold.

    Parameters
    ----------
    model : EmbeddingModel
        With a foreground head (otherwise there is nothing to calibrate: returns None).
    data : TrainingData
        Raw (not normalised) labelled sequences, e.g. from :func:`~.data.from_arrays`; pixels
        in a sequence's ``ignore`` mask are not scored.
    thresholds : sequence of float
        Candidates in [0, 1].
    context : int, keyword-only
        Frames before each labelled frame embedded first, to warm up the recurrent state.
    max_frames : int, keyword-only
        At most this many labelled frames are scored (evenly spread over all of them).
    tolerance : float, keyword-only
        The lowest threshold whose IoU is within this of the best is kept; None:
        :data:`TOLERANCE`.

    Yields
    ------
    (done, total) : tuple of int
        After each scored frame.

    Returns
    -------
    dict or None
        ``threshold`` (the best), ``iou`` (its IoU), ``ious`` (threshold -> IoU, as strings
        -> floats), ``frames`` and ``pixels`` (labelled foreground pixels scored); None when
        the model has no foreground head or the frames hold no labelled foreground.
    """
    from ..embed import iter_embed

    if not getattr(model.config, "foreground_head", False):
        return None
    if data.normalisation is not None:
        raise ValueError("calibrate on the raw data, not on a normalised copy")
    tally = _Tally(thresholds)
    units = _units(data, max_frames)
    for done, (seq, t) in enumerate(units, start=1):
        *_, last = iter_embed(model, seq.image, frames=range(max(0, t - context), t + 1))
        valid = None if seq.ignore is None else ~np.asarray(seq.ignore[t])
        tally.add(last.foreground, np.asarray(seq.labels[t]) > 0, valid)
        yield done, len(units)
    return tally.result(tolerance)


class _Tally:
    """Foreground intersection and union with the truth at each threshold, summed over frames."""

    def __init__(self, thresholds: Sequence[float]) -> None:
        grid = np.array(sorted({float(t) for t in thresholds}), np.float32)
        if not len(grid) or grid[0] < 0 or grid[-1] > 1:
            raise ValueError(f"thresholds must lie in [0, 1], got {list(thresholds)}")
        self.grid = grid
        self.inter = np.zeros(len(grid))
        self.union = np.zeros(len(grid))
        self.frames = self.pixels = 0

    def add(self, foreground: Any, truth: np.ndarray, valid: np.ndarray | None = None) -> None:
        fg = np.asarray(foreground, np.float32)
        if fg.shape != truth.shape:
            raise InputError(
                f"a foreground of shape {fg.shape} cannot be scored against labels of shape "
                f"{truth.shape}"
            )
        if valid is not None:
            fg, truth = fg[valid], truth[valid]
        fg, truth = fg.ravel(), truth.ravel()
        # pixels at or above each threshold, counted per bin between thresholds (no
        # thresholds x pixels array): bin i holds grid[i-1] <= fg < grid[i]
        bins = np.searchsorted(self.grid, fg, side="right")
        n = len(self.grid) + 1
        above = np.cumsum(np.bincount(bins, minlength=n)[::-1])[::-1][1:]
        above_true = np.cumsum(np.bincount(bins[truth], minlength=n)[::-1])[::-1][1:]
        n_true = int(truth.sum())
        self.inter += above_true
        self.union += above + n_true - above_true
        self.frames += 1
        self.pixels += n_true

    def result(self, tolerance: float | None = None) -> dict[str, Any] | None:
        if self.pixels == 0:
            return None
        ious = self.inter / np.maximum(self.union, 1)
        tolerance = TOLERANCE if tolerance is None else float(tolerance)
        # the lowest threshold within the tolerance of the best (argmax: the lowest of equals)
        best = int(np.flatnonzero(ious >= ious.max() - tolerance)[0])
        return {
            "threshold": float(round(float(self.grid[best]), 4)),
            "iou": float(ious[best]),
            "ious": {f"{g:g}": float(v) for g, v in zip(self.grid.tolist(), ious, strict=True)},
            "frames": self.frames,
            "pixels": self.pixels,
        }


def threshold_from_labels(
    foregrounds: Sequence[Any],
    truths: Sequence[np.ndarray],
    *,
    thresholds: Sequence[float] = THRESHOLDS,
    tolerance: float | None = None,
) -> dict[str, Any] | None:
    """The foreground threshold that best reproduces labelled frames, from outputs at hand.

    What :func:`iter_calibrate_foreground` measures, for foreground probabilities already
    computed (the viewer's embedding cache): ``foregrounds`` and ``truths`` (instance labels,
    0 = background) pair up frame by frame. Same result dict; None without labelled pixels.
    """
    if len(foregrounds) != len(truths):
        raise InputError(f"{len(foregrounds)} foregrounds for {len(truths)} labelled frames")
    tally = _Tally(thresholds)
    for fg, truth in zip(foregrounds, truths, strict=True):
        tally.add(fg, np.asarray(truth) > 0)
    return tally.result(tolerance)


def calibrate_foreground(model: Any, data: TrainingData, **options: Any) -> dict[str, Any] | None:
    """:func:`iter_calibrate_foreground` run to the end; also stores the result in
    ``model.record`` (where :func:`recommended_threshold` finds it) when there is one."""
    result = result_of(iter_calibrate_foreground(model, data, **options))
    if result is not None:
        model.record[RECORD_KEY] = result
    return result
