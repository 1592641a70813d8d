"""Planning inference around an object size: which scale each frame reaches the model at.

A model segments well over the range of object sizes it was trained on
(:func:`model_diameter_range`: the bundled model is good from about 12 to 150 px across; a
fine-tuned model records the size of the objects it was tuned on). Objects outside that range
are brought into it by rescaling each frame before embedding, and the labels are brought back
to the input's shape afterwards (:class:`SizePlan`, :mod:`.resample`). The diameter itself is
given by the user or estimated from the model's outputs (:mod:`.diameter`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from .diameter import (
    DIAMETER_LIMITS,
    DiameterEstimate,
    estimate_diameter,
    parse_diameter,
    size_parameters,
)
from .resample import RescaledMovie, upsample_outputs

__all__ = [
    "CURATED_AGREEMENT",
    "DEFAULT_DIAMETER_RANGE",
    "SizePlan",
    "iter_embed_at_size",
    "knows_sizes",
    "model_diameter_range",
    "model_space",
    "model_view",
    "plan_size",
    "resolve_size",
    "tuned_diameter",
]

#: Object diameters (pixels) the bundled model segments without rescaling: measured on the
#: development data: DSB nuclei of 12-50 px, SIM+ about 50, GOWT1 about 63, and MSC whole cells
#: of about 130 px, which it segments better at their own size than shrunk.
DEFAULT_DIAMETER_RANGE = (12.0, 150.0)

#: A model fine-tuned on shrunk frames segments a movie at the median diameter of the objects
#: it was tuned on when the estimate lies within this factor of it: on Fluo-C2DL-MSC the
#: estimate from 3-10 frames of 3-4 cells each ranged over 0.8-1.3 times the annotated median
#: with the same movie, and a 2x change of magnification falls outside.
CURATED_AGREEMENT = 1.5


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
