"""Robust intensity normalisation, the same at training and inference time.

Each frame is scaled so that its ``low`` percentile maps to 0 and its ``high`` percentile to 1
(values outside are kept, not clipped: bright nuclei stay brighter than dim ones). The
percentiles are stored in every checkpoint so a model always sees inputs scaled as in training.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Normalisation:
    """Per-frame percentile normalisation.

    Parameters
    ----------
    low, high : float
        Percentiles (0-100) mapped to 0 and 1.

    Examples
    --------
    >>> frame = np.arange(100, dtype=np.uint16).reshape(10, 10)
    >>> out = Normalisation(low=0, high=100)(frame)
    >>> float(out.min()), float(out.max()), out.dtype
    (0.0, 1.0, dtype('float32'))
    """

    low: float = 1.0
    high: float = 99.8

    def __post_init__(self) -> None:
        if not 0 <= self.low < self.high <= 100:
            raise ValueError(f"need 0 <= low < high <= 100, got low={self.low}, high={self.high}")

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """Normalise one frame ``(Y, X)`` (or any array, taken as one frame) to float32."""
        data = np.asarray(frame, dtype=np.float32)
        finite = np.isfinite(data)
        if not finite.all():
            # NaN/inf pixels (e.g. from a failed acquisition) become the frame's lowest value.
            fill = float(data[finite].min()) if finite.any() else 0.0
            data = np.where(finite, data, fill)
        lo, hi = np.percentile(data, [self.low, self.high]) if data.size else (0.0, 1.0)
        scale = float(hi - lo)
        if scale <= 1e-12:  # a flat (e.g. empty) frame: centre it, do not blow up noise
            return data - np.float32(lo)
        return (data - np.float32(lo)) / np.float32(scale)

    def to_dict(self) -> dict[str, Any]:
        return {"method": "percentile", **asdict(self)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Normalisation:
        values = dict(values)
        method = values.pop("method", "percentile")
        if method != "percentile":
            raise ValueError(f"unknown normalisation method {method!r}")
        return cls(**values)


class InvertedMovie:
    """A (T, Y, X) movie with each frame negated (float32, lazily): dark objects become bright.

    Per-frame percentile normalisation makes negation the same as ``max - frame``.
    """

    def __init__(self, movie: Any) -> None:
        self._movie = movie
        self.shape = tuple(movie.shape)
        self.ndim = len(self.shape)
        self.dtype = np.dtype(np.float32)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, t: int) -> np.ndarray:
        return -np.asarray(self._movie[t], np.float32)
