"""Object size: estimate a movie's typical object diameter, and the parameters that follow it.

How inference is planned around the diameter (the sizes a model knows, the scale each frame
is brought to) is :mod:`.size_plan`; the names that moved there are still importable from here.

The estimate comes from the model's own outputs, with no size parameter of its own: pixels
that are confident foreground and whose embedding agrees with that of their neighbours one and
two pixels away form connected pieces; pixels where the embedding turns (between touching
objects) separate them. The median equivalent diameter (``sqrt(4 area / pi)``) of those pieces,
ignoring fragments under 0.4 times the area-weighted median, is the estimate. Measured against
the annotated median diameter in docs/benchmarks.md ("Object size").

Every size parameter of grouping and tracking derives from the diameter
(:func:`size_parameters`); at :data:`REFERENCE_DIAMETER` they are the long-standing defaults.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import InputError
from .lengths import physical_length, to_pixels

__all__ = [
    "DIAMETER_LIMITS",
    "REFERENCE_DIAMETER",
    "DiameterEstimate",
    "equivalent_diameters",
    "estimate_diameter",
    "estimate_from_embeddings",
    "parse_diameter",
    "size_parameters",
]

#: The object diameter (pixels) at which the size parameters take their long-standing values
#: (min_cluster_size 150, min_size 30, object_size 32, max_gap_distance 20).
REFERENCE_DIAMETER = 48.0

#: Diameters accepted from users (pixels).
DIAMETER_LIMITS = (2.0, 2000.0)

#: At most this many frames (evenly spaced) and this many pixels a side feed an estimate.
ESTIMATE_FRAMES = 3
ESTIMATE_SIDE = 1024

#: Neighbouring embeddings whose cosine is below this are on different objects.
_SAME_OBJECT_COSINE = 0.5
#: When more of the pixels than this are confident foreground, no estimate is made.
MAX_COVERAGE = 0.6
#: Foreground probability a pixel needs to count in the estimate.
PIECE_THRESHOLD = 0.5
#: Pieces smaller than this (pixels) are noise, not objects.
_MIN_PIECE = 8


def parse_diameter(value: Any, *, pixel_size: float | None = None) -> float | str | None:
    """A diameter setting: None (off), ``"auto"``, or a number of pixels in range.

    A string with a unit ("12 um", "8µm", "0.01 mm") is converted with ``pixel_size``
    (microns per pixel, e.g. what the file records: :func:`~.io.pixel_size.read_pixel_size`;
    see :mod:`.lengths`);
    without one it is refused, since pixels cannot be guessed. "30 px" is 30 pixels.
    """
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("auto", "off", "none", ""):
            return "auto" if text == "auto" else None
        physical = physical_length(text, what="diameter")
        if physical is not None:
            return parse_diameter(to_pixels(value, *physical, pixel_size, what="diameter"))
        try:
            value = float(text.removesuffix("s").removesuffix("pixel").removesuffix("px"))
        except ValueError:
            raise InputError(
                f"diameter must be 'auto', a number of pixels or a length in microns "
                f"('12um'), got {value!r}"
            ) from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"diameter must be 'auto' or a number of pixels, got {value!r}")
    value = float(value)
    lo, hi = DIAMETER_LIMITS
    if not math.isfinite(value) or not lo <= value <= hi:
        raise InputError(
            f"diameter must be 'auto' or a number of pixels in [{lo:g}, {hi:g}], got {value}"
        )
    return value


def equivalent_diameters(labels: np.ndarray, min_area: int = 1) -> np.ndarray:
    """``sqrt(4 area / pi)`` of every instance of a label image (pixels), in label order."""
    labels = np.asarray(labels)
    counts = np.bincount(labels[labels > 0].ravel().astype(np.int64))
    counts = counts[counts >= max(1, min_area)]
    return np.sqrt(4.0 * counts / np.pi)


def robust_median(diameters: np.ndarray) -> float | None:
    """The median diameter, ignoring fragments under 0.4 times the area-weighted median."""
    d = np.sort(np.asarray(diameters, float))
    if d.size == 0:
        return None
    cumulative = np.cumsum(d**2)
    weighted = d[np.searchsorted(cumulative, cumulative[-1] / 2)]
    return float(np.median(d[d >= 0.4 * weighted]))


def embedding_pieces(
    embedding: np.ndarray, foreground: np.ndarray | None, threshold: float | None = None
) -> np.ndarray:
    """Connected pieces of foreground (at least ``threshold``, default
    :data:`PIECE_THRESHOLD`) within which the embedding does not turn."""
    from scipy import ndimage as ndi

    threshold = PIECE_THRESHOLD if threshold is None else threshold
    emb = np.asarray(embedding, np.float32)
    mask = np.ones(emb.shape[1:], bool) if foreground is None else foreground >= threshold
    for axis in (1, 2):
        n = emb.shape[axis]
        for step in (1, 2):
            if n <= step:
                continue
            a = np.take(emb, np.arange(n - step), axis=axis)
            b = np.take(emb, np.arange(step, n), axis=axis)
            turn = np.einsum("d...,d...->...", a, b) < _SAME_OBJECT_COSINE
            index = [slice(None), slice(None)]
            index[axis - 1] = slice(0, n - step)
            mask[tuple(index)] &= ~turn
    return ndi.label(mask)[0]


@dataclass(frozen=True)
class DiameterEstimate:
    """A movie's typical object diameter, estimated from the model's outputs.

    ``diameter`` is None when no object was found; ``pieces`` counts the objects measured
    over ``frames``.
    """

    diameter: float | None
    pieces: int
    frames: tuple[int, ...]
    coverage: float = 0.0  # share of the pixels in the pieces measured
    reason: str = ""  # why there is no estimate, when there is none


def _estimate_frames(n: int) -> list[int]:
    count = min(n, ESTIMATE_FRAMES)
    return sorted({round(t) for t in np.linspace(0, n - 1, count)})


def _centre_crop(frame: np.ndarray, side: int) -> np.ndarray:
    y0 = max(0, (frame.shape[0] - side) // 2)
    x0 = max(0, (frame.shape[1] - side) // 2)
    return frame[y0 : y0 + side, x0 : x0 + side]


def estimate_diameter(
    model: Any, movie: Any, *, frames: Sequence[int] | None = None
) -> DiameterEstimate:
    """Estimate the typical object diameter (pixels) of a movie or image from the model's outputs.

    Parameters
    ----------
    model : EmbeddingModel
    movie : array-like of shape (T, Y, X) or (Y, X)
        Read one frame at a time; at most :data:`ESTIMATE_FRAMES` evenly spaced frames are
        used, each cropped to its central :data:`ESTIMATE_SIDE` pixels a side.
    frames : sequence of int, optional
        Which frames to use instead.
    """
    from .embed import embed_with_foreground

    stack = movie[None] if getattr(movie, "ndim", None) == 2 else movie
    n = stack.shape[0]
    chosen = _estimate_frames(n) if frames is None else [int(t) for t in frames]
    outputs = []
    for t in chosen:
        frame = _centre_crop(np.asarray(stack[t]), ESTIMATE_SIDE)
        emb, fg = embed_with_foreground(model, frame)
        outputs.append((emb[0], None if fg is None else fg[0]))
    return estimate_from_embeddings(outputs, chosen)


def estimate_from_embeddings(
    outputs: Sequence[tuple[np.ndarray, np.ndarray | None]], frames: Sequence[int] = ()
) -> DiameterEstimate:
    """The diameter estimate from embeddings already computed: ``(embedding, foreground)``
    pairs of shape (D, Y, X) and (Y, X) (foreground may be None)."""
    found, covered, pixels = [], 0, 0
    for embedding, foreground in outputs:
        pieces = embedding_pieces(embedding, foreground)
        found.append(equivalent_diameters(pieces, _MIN_PIECE))
        covered += int(np.count_nonzero(pieces))
        pixels += pieces.size
    values = np.concatenate(found) if found else np.zeros(0)
    frames = tuple(int(t) for t in frames)
    coverage = covered / max(1, pixels)
    if coverage > MAX_COVERAGE:
        # Most of the frame "foreground": the model reads the background as object (dark
        # objects on a bright background, which the bundled model never saw).
        reason = (
            f"the model calls {coverage:.0%} of the pixels foreground, so its pieces are not "
            "objects; give the diameter in pixels"
        )
        return DiameterEstimate(None, int(values.size), frames, coverage, reason)
    reason = "" if values.size else "no object found to measure"
    return DiameterEstimate(robust_median(values), int(values.size), frames, coverage, reason)


def size_parameters(diameter: float) -> dict[str, float | int]:
    """Grouping and tracking size parameters for objects ``diameter`` pixels across.

    Lengths scale with the diameter and areas with its square, from their values at
    :data:`REFERENCE_DIAMETER`.
    """
    k = float(diameter) / REFERENCE_DIAMETER
    return {
        "object_size": round(32.0 * k, 2),
        "min_cluster_size": max(2, round(150 * k * k)),
        "min_size": max(1, round(30 * k * k)),
        "max_gap_distance": round(20.0 * k, 2),
    }


#: Names that moved out of this module, still importable from here (older scripts and
#: notebooks import them from it): all of :mod:`.size_plan`'s, and these of the others.
_MOVED = {
    "resample": ("RescaledMovie", "rescale_labels", "scaled_shape", "upsample_outputs"),
    "normalise": ("InvertedMovie",),
}


def _home(name: str) -> Any:
    """The module a moved name now lives in, or None."""
    from importlib import import_module

    size_plan = import_module(".size_plan", __package__)
    if name in size_plan.__all__:
        return size_plan
    module = next((m for m, names in _MOVED.items() if name in names), None)
    return None if module is None else import_module(f".{module}", __package__)


def __getattr__(name: str) -> Any:
    home = _home(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(home, name)
