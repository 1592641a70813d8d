"""Object size: estimate a movie's typical object diameter, and plan inference around it.

A model segments well over the range of object sizes it was trained on
(:func:`model_diameter_range`: the bundled model is good from about 12 to 150 px across; a
fine-tuned model records the size of the objects it was tuned on). Objects outside that range
are brought into it by rescaling each frame before embedding; the labels are rescaled back to
the input's shape afterwards (:class:`SizePlan`).

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
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .errors import InputError
from .lengths import physical_length, to_pixels

__all__ = [
    "DEFAULT_DIAMETER_RANGE",
    "REFERENCE_DIAMETER",
    "DiameterEstimate",
    "InvertedMovie",
    "RescaledMovie",
    "SizePlan",
    "equivalent_diameters",
    "estimate_diameter",
    "estimate_from_embeddings",
    "iter_embed_at_size",
    "knows_sizes",
    "model_diameter_range",
    "parse_diameter",
    "plan_size",
    "rescale_labels",
    "size_parameters",
    "tuned_diameter",
]

#: The object diameter (pixels) at which the size parameters take their long-standing values
#: (min_cluster_size 150, min_size 30, object_size 32, max_gap_distance 20).
REFERENCE_DIAMETER = 48.0

#: Object diameters (pixels) the bundled model segments without rescaling: measured on the
#: development data: DSB nuclei of 12-50 px, SIM+ about 50, GOWT1 about 63, and MSC whole cells
#: of about 130 px, which it segments better at their own size than shrunk.
DEFAULT_DIAMETER_RANGE = (12.0, 150.0)

#: Diameters accepted from users (pixels).
DIAMETER_LIMITS = (2.0, 2000.0)

#: A model fine-tuned on shrunk frames segments a movie at the median diameter of the objects
#: it was tuned on when the estimate lies within this factor of it: on Fluo-C2DL-MSC the
#: estimate from 3-10 frames of 3-4 cells each ranged over 0.8-1.3 times the annotated median
#: with the same movie, and a 2x change of magnification falls outside.
CURATED_AGREEMENT = 1.5

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


def model_diameter_range(model: Any) -> tuple[float, float]:
    """The object diameters (pixels) a model segments without rescaling.

    A fine-tuned model records the range around the objects it was tuned on
    (``record["diameter_range"]``); other models get :data:`DEFAULT_DIAMETER_RANGE`.
    """
    record = getattr(model, "record", None) or {}
    given = record.get("diameter_range")
    if given is not None:
        try:
            lo, hi = (float(v) for v in given)
        except (TypeError, ValueError):
            lo = hi = float("nan")
        if math.isfinite(lo) and math.isfinite(hi) and 0 < lo <= hi:
            return lo, hi
    return DEFAULT_DIAMETER_RANGE


def knows_sizes(model: Any) -> bool:
    """Whether a model records the object sizes it was tuned for (then inference should
    bring movies to them)."""
    return model_diameter_range(model) != DEFAULT_DIAMETER_RANGE


def tuned_diameter(model: Any) -> float | None:
    """The diameter (pixels) objects had when a model was fine-tuned on them, or None.

    Only a model tuned on rescaled objects records one (:func:`knows_sizes`): the centre
    (geometric mean) of its recorded range.
    """
    if not knows_sizes(model):
        return None
    lo, hi = model_diameter_range(model)
    return math.sqrt(lo * hi)


def _curated_diameter(model: Any) -> float | None:
    """The median diameter (pixels) of the curated objects a model was tuned on, when it
    was tuned on shrunk frames (:func:`knows_sizes`), else None."""
    sizing = (getattr(model, "record", None) or {}).get("object_size")
    if not knows_sizes(model) or not isinstance(sizing, dict):
        return None
    try:
        value = float(sizing.get("curated_diameter"))
    except (TypeError, ValueError):
        return None
    return (
        value
        if math.isfinite(value) and DIAMETER_LIMITS[0] <= value <= DIAMETER_LIMITS[1]
        else None
    )


def _tuned_scale(model: Any) -> float:
    """The scale a fine-tuned model's curated frames were shrunk by (1 when none was)."""
    tuned, curated = tuned_diameter(model), _curated_diameter(model)
    return 1.0 if tuned is None or curated is None else tuned / curated


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


@dataclass(frozen=True)
class SizePlan:
    """How a movie meets the model: the diameter, the scale applied to each frame, and why.

    ``scale`` multiplies frame sizes before embedding (1 leaves them alone); ``diameter`` is
    in the input's pixels, ``model_diameter`` the size objects reach the model at.
    """

    diameter: float | None
    scale: float
    source: str  # "auto", "given" or "off"
    estimate: DiameterEstimate | None = None
    curated: bool = False  # "auto" took the diameter of the objects the model was tuned on

    @property
    def model_diameter(self) -> float | None:
        return None if self.diameter is None else self.diameter * self.scale

    def describe(self) -> str:
        if self.diameter is None:
            if self.source == "auto":
                why = (self.estimate.reason if self.estimate else "") or "no object found"
                return f"object diameter: not estimated ({why}); frames not rescaled"
            return "object diameter: not set; frames not rescaled"
        if self.curated:
            measured = self.estimate.diameter if self.estimate else None
            how = "as curated for the model's fine-tuning" + (
                f"; estimated {measured:.1f} px" if measured else ""
            )
        else:
            how = "estimated" if self.source == "auto" else "given"
        text = f"object diameter {self.diameter:.1f} px ({how})"
        if self.scale != 1:
            text += f"; frames rescaled x{self.scale:.3g} to {self.model_diameter:.0f} px objects"
        return text


def plan_size(model: Any, movie: Any, diameter: float | str | None) -> SizePlan:
    """Resolve a diameter setting (None, ``"auto"`` or pixels) into a :class:`SizePlan`."""
    diameter = parse_diameter(diameter)
    if diameter is None:
        return SizePlan(None, 1.0, "off")
    # The plan holds the diameter as settings.json keeps it (2 decimals), so a run repeated
    # from its settings rescales its frames to exactly the same shape.
    if diameter != "auto":
        value = round(float(diameter), 2)
        return SizePlan(value, _scale_for(model, movie, value), "given")
    stack = movie[None] if movie.ndim == 2 else movie
    # A model sees objects far from its sizes poorly, so the first look is where it knows
    # them: a model tuned on shrunk frames looks at the movie shrunk as they were (most often
    # it is the movie it was tuned on), any other at the movie's own size.
    measured_at = _tuned_scale(model)
    estimate = _estimate_at(model, stack, measured_at)
    if estimate.diameter is None:
        return SizePlan(None, 1.0, "auto", estimate)
    curated = _curated_diameter(model)
    if curated is not None and curated / CURATED_AGREEMENT <= estimate.diameter <= (
        curated * CURATED_AGREEMENT
    ):
        # The movie's objects look like those the model was tuned on: their annotated size
        # is a measurement, the estimate from a few frames of a few large cells a noisy one.
        value = round(curated, 2)
        return SizePlan(value, _scale_for(model, movie, value), "auto", estimate, curated=True)
    scale = _scale_for(model, movie, estimate.diameter)
    if scale != measured_at:
        # the objects reach the model at another size than they were measured at: measure
        # again where it will see them
        again = _estimate_at(model, stack, scale, frames=estimate.frames)
        if again.diameter is not None:
            estimate = again
    value = round(estimate.diameter, 2)
    return SizePlan(value, _scale_for(model, movie, value), "auto", estimate)


def _estimate_at(
    model: Any, stack: Any, scale: float, *, frames: Sequence[int] | None = None
) -> DiameterEstimate:
    """:func:`estimate_diameter` on ``stack`` rescaled by ``scale``, in ``stack``'s pixels."""
    if scale == 1:
        return estimate_diameter(model, stack, frames=frames)
    estimate = estimate_diameter(model, RescaledMovie(stack, scale), frames=frames)
    if estimate.diameter is None:
        return estimate
    return replace(estimate, diameter=estimate.diameter / scale)


def _scale_for(model: Any, movie: Any, diameter: float) -> float:
    """The frame scale that brings objects ``diameter`` px across to the model's sizes.

    Into the range of the bundled model (objects inside it are left alone); to the very size
    a fine-tuned model learned (:func:`tuned_diameter`), where a model tuned on a few frames
    segments best: at the edge of its range it saw objects 15 % off theirs, and lost 0.01-0.02
    SEG on the movie it was tuned on (docs/benchmarks.md).
    """
    from .embed import MIN_FRAME_SIZE

    target = tuned_diameter(model)
    if target is None:
        lo, hi = model_diameter_range(model)
        target = min(max(diameter, lo), hi)
    scale = target / diameter
    # never shrink a frame below what the network can embed
    scale = max(scale, MIN_FRAME_SIZE / min(movie.shape[-2:]))
    return 1.0 if abs(scale - 1) < 1e-3 else round(scale, 4)


def scaled_shape(shape: Sequence[int], scale: float) -> tuple[int, int]:
    return tuple(max(1, round(s * scale)) for s in shape[-2:])  # type: ignore[return-value]


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


class RescaledMovie:
    """A (T, Y, X) movie seen rescaled by ``scale``, one frame at a time (float32, lazily)."""

    def __init__(self, movie: Any, scale: float) -> None:
        self._movie = movie
        self.scale = float(scale)
        self.shape = (movie.shape[0], *scaled_shape(movie.shape, scale))
        self.ndim = 3
        self.dtype = np.dtype(np.float32)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, t: int) -> np.ndarray:
        from skimage.transform import resize

        frame = np.asarray(self._movie[t], np.float32)
        out = resize(
            frame, self.shape[1:], order=1, anti_aliasing=self.scale < 1, preserve_range=True
        )
        return out.astype(np.float32, copy=False)


def rescale_labels(labels: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """A label image brought to ``shape`` (nearest neighbour: no new label values)."""
    labels = np.asarray(labels)
    shape = tuple(int(s) for s in shape[-2:])
    if labels.shape == shape:
        return labels
    ys = np.minimum(
        ((np.arange(shape[0]) + 0.5) * labels.shape[0] / shape[0]).astype(np.intp),
        labels.shape[0] - 1,
    )
    xs = np.minimum(
        ((np.arange(shape[1]) + 0.5) * labels.shape[1] / shape[1]).astype(np.intp),
        labels.shape[1] - 1,
    )
    return labels[np.ix_(ys, xs)]


#: The fields :func:`size_parameters` derives; lengths scale with the frame, areas with its square.
_LENGTHS = ("object_size", "max_gap_distance")
_AREAS = ("min_cluster_size", "min_size")


def resolve_size(config: Any, model: Any, movie: Any) -> tuple[Any, SizePlan]:
    """A pipeline config with its diameter resolved, and the :class:`SizePlan` it leads to.

    ``config.diameter`` ``"auto"`` is estimated (:func:`estimate_diameter`); size parameters
    left at their defaults then follow the diameter (:func:`size_parameters`), those the user
    set are kept. All are in the input's pixels; the returned config holds the diameter as a
    number, so a run from its ``settings.json`` repeats the same plan without estimating.
    """
    from dataclasses import fields, replace

    plan = plan_size(model, movie, config.diameter)
    if plan.diameter is None:
        return replace(config, diameter=None), plan
    defaults = {f.name: f.default for f in fields(config)}
    derived = size_parameters(plan.diameter)
    updates = {k: v for k, v in derived.items() if getattr(config, k) == defaults[k]}
    return replace(config, diameter=round(plan.diameter, 2), **updates), plan


def model_space(config: Any, scale: float) -> Any:
    """``config`` with its size parameters in the pixels of frames rescaled by ``scale``."""
    from dataclasses import replace

    if scale == 1:
        return config
    updates: dict[str, Any] = {k: round(getattr(config, k) * scale, 2) for k in _LENGTHS}
    updates["object_size"] = max(1.0, updates["object_size"])
    for k in _AREAS:
        updates[k] = max(2 if k == "min_cluster_size" else 0, round(getattr(config, k) * scale**2))
    return replace(config, **updates)


def model_view(movie: Any, plan: SizePlan) -> Any:
    """The movie as the model sees it: rescaled lazily when the plan says so."""
    if plan.scale == 1:
        return movie
    stack = movie[None] if movie.ndim == 2 else movie
    return RescaledMovie(stack, plan.scale)


def upsample_outputs(
    embedding: np.ndarray, foreground: np.ndarray | None, shape: Sequence[int]
) -> tuple[np.ndarray, np.ndarray | None]:
    """Embeddings (D, y, x) and foreground (y, x) of a rescaled frame, brought to ``shape``.

    Bilinear, then each embedding is made unit length again: what a viewer shows and groups
    at the image's own pixels (the pipeline groups at the model's scale instead, which is
    cheaper for large objects).
    """
    import torch
    import torch.nn.functional as F

    shape = tuple(int(s) for s in shape[-2:])
    if embedding.shape[1:] == shape:
        return embedding, foreground
    emb = torch.from_numpy(np.ascontiguousarray(embedding, np.float32))[None]
    emb = F.interpolate(emb, size=shape, mode="bilinear", align_corners=False)[0]
    emb = emb / emb.norm(dim=0, keepdim=True).clamp_min(1e-6)
    fg = None
    if foreground is not None:
        f = torch.from_numpy(np.ascontiguousarray(foreground, np.float32))[None, None]
        fg = F.interpolate(f, size=shape, mode="bilinear", align_corners=False)[0, 0].numpy()
    return emb.numpy(), fg


def iter_embed_at_size(
    model: Any,
    movie: Any,
    frames: Sequence[int],
    *,
    plan: SizePlan | None = None,
    **options: Any,
):
    """:func:`~.embed.iter_embed` at the size the model knows, outputs at the movie's pixels.

    Without a ``plan`` the object diameter is estimated first (:func:`plan_size`, ``"auto"``,
    as ``segment`` does); frames are then rescaled as the plan says, embedded, and their
    outputs brought back to the movie's shape (:func:`upsample_outputs`). A generator of
    :class:`~.embed.FrameEmbedding`; its first item comes after the estimate (a few frames'
    worth of embedding). A plan that leaves the frames alone embeds them as they are.
    """
    from .embed import iter_embed

    stack = movie[None] if movie.ndim == 2 else movie
    if plan is None:
        plan = plan_size(model, stack, "auto")
    if plan.scale == 1:
        yield from iter_embed(model, stack, frames=frames, **options)
        return
    shape = tuple(stack.shape[-2:])
    for result in iter_embed(model, model_view(stack, plan), frames=frames, **options):
        emb, fg = upsample_outputs(result.embedding, result.foreground, shape)
        yield replace(result, embedding=emb, foreground=fg)
