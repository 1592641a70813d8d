"""Data augmentation for training clips: NumPy only, every draw from the caller's generator.

A clip is ``image`` (T, Y, X) float32 (already normalised), ``labels`` (T, Y, X) integer and
``ignore`` (T, Y, X) bool. Geometric transforms (crop, flips, 90 degree rotations) are the same
for every frame of a clip, so motion between frames stays real; intensity transforms (scale,
gamma, offset) are drawn once per clip and the noise independently per frame.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..errors import InputError
from ..limits import Range, check_flag

__all__ = ["AugmentConfig", "augment_clip", "crop_clip", "zoom_window", "zoomed"]


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the random transforms; the identity for a range of (1, 1) or (0, 0).

    Attributes
    ----------
    flips, rotations : bool
        Random horizontal/vertical flips; random multiples of 90 degrees.
    scale : tuple of float
        Multiplicative intensity factor, drawn log-uniformly.
    gamma : tuple of float
        Exponent applied to the (sign-preserving) normalised intensity, log-uniformly.
    offset : float
        Additive shift drawn from [-offset, offset].
    noise : float
        Largest standard deviation of added Gaussian noise (drawn uniformly from [0, noise]).
    zoom : tuple of float
        Geometric scale factor, drawn log-uniformly per clip: objects appear this many times
        larger (:func:`zoom_window`), so a model learns sizes its data lacks.
    invert : float
        Chance that a clip's intensities are inverted (``1 - x``): bright objects on a dark
        background become dark ones on a bright background.
    """

    flips: bool = True
    rotations: bool = True
    scale: tuple[float, float] = (0.7, 1.4)
    gamma: tuple[float, float] = (0.7, 1.4)
    offset: float = 0.05
    noise: float = 0.05
    zoom: tuple[float, float] = (1.0, 1.0)
    invert: float = 0.0

    def __post_init__(self) -> None:
        # read back from training-state files and model records, so checked like any input
        for name in ("flips", "rotations"):
            object.__setattr__(self, name, check_flag(getattr(self, name), f"AugmentConfig.{name}"))
        factor = Range(float, 0, 100, low_open=True)  # drawn log-uniformly: positive
        for name in ("scale", "gamma", "zoom"):
            span = getattr(self, name)
            if not isinstance(span, tuple | list) or len(span) != 2:
                raise InputError(f"AugmentConfig.{name} must be a (low, high) pair, got {span!r}")
            low, high = (factor.check(v, f"AugmentConfig.{name}") for v in span)
            if low > high:
                raise InputError(f"AugmentConfig.{name} must have low <= high, got {span!r}")
            object.__setattr__(self, name, (low, high))
        for name in ("offset", "noise"):
            value = Range(float, 0, 100).check(getattr(self, name), f"AugmentConfig.{name}")
            object.__setattr__(self, name, value)
        if not 1 / 8 <= self.zoom[0] <= self.zoom[1] <= 8:
            raise InputError(f"AugmentConfig.zoom must lie within [1/8, 8], got {self.zoom!r}")
        invert = Range(float, 0, 1).check(self.invert, "AugmentConfig.invert")
        object.__setattr__(self, "invert", invert)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> AugmentConfig:
        values = dict(values)
        for key in ("scale", "gamma", "zoom"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)


def crop_clip(
    image: np.ndarray,
    labels: np.ndarray,
    ignore: np.ndarray,
    size: int,
    rng: np.random.Generator,
    *,
    around: tuple[int, int] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A random ``size`` x ``size`` window of a clip; smaller clips are padded.

    Padding is image 0 (the normalised background level), label 0 and ``ignore`` True, so the
    losses learn nothing from pixels that do not exist. ``around`` (y, x): a window that holds
    this pixel (anywhere in it), else one drawn uniformly.

    Parameters
    ----------
    image : ndarray of shape (T, Y, X)
    labels : ndarray of shape (T, Y, X)
    ignore : ndarray of shape (T, Y, X), bool
    size : int
    rng : numpy.random.Generator

    Returns
    -------
    image, labels, ignore : ndarrays of shape (T, size, size)
    """
    _, height, width = image.shape
    pad_y, pad_x = max(0, size - height), max(0, size - width)
    if pad_y or pad_x:
        before = (int(rng.integers(pad_y + 1)), int(rng.integers(pad_x + 1)))
        widths = ((0, 0), (before[0], pad_y - before[0]), (before[1], pad_x - before[1]))
        image = np.pad(image, widths)
        labels = np.pad(labels, widths)
        ignore = np.pad(ignore, widths, constant_values=True)
        height, width = image.shape[1:]
    if around is None:
        y0 = int(rng.integers(height - size + 1))
        x0 = int(rng.integers(width - size + 1))
    else:
        y, x = around[0] + (before[0] if pad_y else 0), around[1] + (before[1] if pad_x else 0)
        y0 = int(rng.integers(max(0, y - size + 1), min(y, height - size) + 1))
        x0 = int(rng.integers(max(0, x - size + 1), min(x, width - size) + 1))
    window = (slice(None), slice(y0, y0 + size), slice(x0, x0 + size))
    return image[window], labels[window], ignore[window]


def zoom_window(size: int, config: AugmentConfig | None, rng: np.random.Generator) -> int:
    """The window to crop so that, resized to ``size`` (:func:`zoomed`), it is zoomed by a
    factor drawn from ``config.zoom``; ``size`` itself (and no draw) without zoom."""
    if config is None or config.zoom == (1.0, 1.0):
        return size
    return max(8, round(size / _log_uniform(rng, config.zoom)))


def zoomed(
    image: np.ndarray, labels: np.ndarray, ignore: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A clip (T, W, W) resized to (T, size, size): image linearly, labels and ignore nearest."""
    from scipy import ndimage as ndi

    width = image.shape[1]
    if width == size:
        return image, labels, ignore
    factor = (1, size / width, size / width)
    return (
        ndi.zoom(image.astype(np.float32, copy=False), factor, order=1, grid_mode=True,
                 mode="grid-constant"),
        ndi.zoom(labels, factor, order=0, grid_mode=True, mode="grid-constant"),
        ndi.zoom(ignore, factor, order=0, grid_mode=True, mode="grid-constant"),
    )  # fmt: skip


def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    lo, hi = bounds
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi)))) if hi > lo else float(lo)


def augment_clip(
    image: np.ndarray,
    labels: np.ndarray,
    ignore: np.ndarray,
    config: AugmentConfig,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Apply random flips, rotations and intensity changes to a clip.

    Parameters
    ----------
    image : ndarray of shape (T, Y, X), float
        Normalised frames.
    labels : ndarray of shape (T, Y, X)
    ignore : ndarray of shape (T, Y, X), bool
    config : AugmentConfig
    rng : numpy.random.Generator
        The only source of randomness: the same state gives the same result.

    Returns
    -------
    image : ndarray of shape (T, Y', X'), float32
        (Y', X') is (Y, X), or (X, Y) after an odd rotation.
    labels, ignore : ndarrays of the same shape
    """
    arrays = [image, labels, ignore]
    if config.flips:
        for axis in (1, 2):
            if rng.random() < 0.5:
                arrays = [np.flip(a, axis) for a in arrays]
    if config.rotations:
        k = int(rng.integers(4))
        arrays = [np.rot90(a, k, axes=(1, 2)) for a in arrays]
    image, labels, ignore = (np.ascontiguousarray(a) for a in arrays)
    image = image.astype(np.float32, copy=True)
    if config.invert and rng.random() < config.invert:
        image = np.float32(1) - image
    gamma = _log_uniform(rng, config.gamma)
    if gamma != 1.0:
        image = np.sign(image) * np.abs(image) ** np.float32(gamma)
    image *= np.float32(_log_uniform(rng, config.scale))
    if config.offset:
        image += np.float32(rng.uniform(-config.offset, config.offset))
    if config.noise:
        sigma = rng.uniform(0, config.noise, size=(len(image), 1, 1)).astype(np.float32)
        image += sigma * rng.standard_normal(image.shape, dtype=np.float32)
    return image, labels, ignore
