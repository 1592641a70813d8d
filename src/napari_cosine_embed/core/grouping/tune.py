"""Choosing grouping parameters on a few curated frames.

A grid search scored by the Cell Tracking Challenge's SEG or by AP at IoU 0.5. Parameters are split
by what they cost: those of the grouper's constructor (HDBSCAN's ``min_samples`` and
``coord_weight``: a new minimum spanning tree; mean shift's ``coord_weight``, seeds and support)
form the outer loop, so each expensive structure is built once per frame and combination, and the
parameters of its ``.labels`` method (``min_cluster_size``, ``cluster_selection_epsilon``,
``method``; ``bandwidth``, ``min_size``...) the cheap inner loop.

:func:`iter_tune` is a generator that yields the result so far after every trial, for a progress
bar and a Cancel button; :func:`tune` runs it to the end.
"""

from __future__ import annotations

import collections
import inspect
import itertools
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from ..metrics import instance_scores, seg_score
from .postprocess import postprocess as _postprocess

__all__ = ["DEFAULT_SPACES", "METRICS", "TuneResult", "iter_tune", "tune"]

METRICS = ("SEG", "AP50")

#: Search spaces used when ``space`` is None.
DEFAULT_SPACES: dict[str, dict[str, list]] = {
    "hdbscan": {
        "min_samples": [5, 15],
        "coord_weight": [0.0],
        "min_cluster_size": [20, 50, 100, 200],
        "cluster_selection_epsilon": [0.0, 0.05, 0.1],
        "method": ["eom", "leaf"],
    },
    "meanshift": {
        "bandwidth": [0.03, 0.05, 0.1, 0.15, 0.2, 0.3],
        "min_size": [0, 20],
    },
}


@dataclass(frozen=True)
class TuneResult:
    """Outcome of a parameter search.

    Attributes
    ----------
    best_params : dict
        The best combination (constructor and ``.labels`` parameters together).
    best_score : float
        Its score (NaN when no trial could be scored).
    trials : list of dict
        Every combination tried, in order, with its ``score`` and ``seconds``.
    metric, grouper : str
        What was optimised, and with which grouper.
    complete : bool
        False when the time budget stopped the search before the whole grid was tried.
    """

    best_params: dict
    best_score: float
    trials: list[dict] = field(default_factory=list)
    metric: str = "SEG"
    grouper: str = "meanshift"
    complete: bool = True


def _grouper_class(name: str):
    if name == "meanshift":
        from .meanshift import MeanShiftGrouper

        return MeanShiftGrouper
    if name == "hdbscan":
        try:
            from .hdbscan import HDBSCANGrouper
        except ImportError as err:  # its clustering dependency is missing
            raise InputError(
                f"the HDBSCAN grouper cannot be used here ({err}); use grouper='meanshift'"
            ) from err
        return HDBSCANGrouper
    raise InputError(f"unknown grouper {name!r}; choose 'hdbscan' or 'meanshift'")


def _keywords(func, skip: int) -> set[str]:
    params = list(inspect.signature(func).parameters.values())[skip:]
    return {p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


def _score(metric: str, gts: Sequence[np.ndarray], preds: Sequence[np.ndarray]) -> float:
    if metric == "SEG":
        return seg_score(dict(enumerate(gts)), dict(enumerate(preds)))
    return instance_scores(gts, preds)["AP50"]


def _check_inputs(embeddings, labels, foregrounds):
    if isinstance(embeddings, np.ndarray) or isinstance(labels, np.ndarray):
        raise InputError("give embeddings and labels as lists of per-frame arrays")
    embeddings, labels = list(embeddings), [np.asarray(lab) for lab in labels]
    if not embeddings or len(embeddings) != len(labels):
        raise InputError(
            f"need one label image per embedding and at least one; got {len(embeddings)} "
            f"embeddings and {len(labels)} label images"
        )
    foregrounds = [None] * len(labels) if foregrounds is None else list(foregrounds)
    if len(foregrounds) != len(labels):
        raise InputError(f"{len(foregrounds)} foregrounds for {len(labels)} frames")
    for i, (emb, lab) in enumerate(zip(embeddings, labels, strict=True)):
        shape = np.shape(emb)
        if len(shape) != 3 or lab.shape != shape[1:]:
            raise InputError(
                f"frame {i}: embedding of shape {shape} (want (D, Y, X)) and labels of shape "
                f"{lab.shape} do not match"
            )
        if not np.issubdtype(lab.dtype, np.integer):
            raise InputError(f"frame {i}: labels must be integers, got dtype {lab.dtype}")
    if not any(lab.any() for lab in labels):
        raise InputError("the curated labels hold no object to score against")
    return embeddings, labels, foregrounds


def iter_tune(
    embeddings: Sequence,
    labels: Sequence,
    *,
    grouper: str = "hdbscan",
    space: Mapping[str, Sequence] | None = None,
    metric: str = "SEG",
    foregrounds: Sequence | None = None,
    budget_seconds: float | None = None,
    fixed: Mapping | None = None,
    postprocess: Mapping | None = None,
) -> Iterator[TuneResult]:
    """Grid search, yielding the result so far after every trial (see :func:`tune`)."""
    if metric not in METRICS:
        raise InputError(f"unknown metric {metric!r}; choose one of {METRICS}")
    cls = _grouper_class(grouper)
    embeddings, labels, foregrounds = _check_inputs(embeddings, labels, foregrounds)
    space = dict(DEFAULT_SPACES[grouper] if space is None else space)
    fixed = dict(fixed or {})
    build, group = _keywords(cls.__init__, 2) - {"foreground"}, _keywords(cls.labels, 1)
    for name, values in space.items():
        if name not in build | group:
            raise InputError(
                f"{name!r} is not a parameter of the {grouper} grouper; known: "
                f"{sorted(build | group)}"
            )
        if isinstance(values, str) or not isinstance(values, Sequence) or len(values) == 0:
            raise InputError(f"space[{name!r}] must be a non-empty list of values, got {values!r}")
    if unknown := set(fixed) - build - group:
        raise InputError(f"fixed parameters {sorted(unknown)} are not {grouper} parameters")
    if budget_seconds is not None and budget_seconds <= 0:
        raise InputError(f"budget_seconds must be > 0 or None, got {budget_seconds}")
    outer = [n for n in space if n in build]
    inner = [n for n in space if n not in build]
    fixed_build = {k: v for k, v in fixed.items() if k in build}
    fixed_group = {k: v for k, v in fixed.items() if k not in build}

    start = time.perf_counter()
    trials: list[dict] = []
    best_params: dict = {}
    best_score = -math.inf
    total = math.prod(len(v) for v in space.values())
    for outer_values in itertools.product(*(space[n] for n in outer)):
        build_params = dict(zip(outer, outer_values, strict=True))
        tic = time.perf_counter()
        groupers = [
            cls(emb, foreground=fg, **fixed_build, **build_params)
            for emb, fg in zip(embeddings, foregrounds, strict=True)
        ]
        build_seconds = time.perf_counter() - tic
        for inner_values in itertools.product(*(space[n] for n in inner)):
            params = {**build_params, **dict(zip(inner, inner_values, strict=True))}
            group_params = {k: params[k] for k in inner}
            tic = time.perf_counter()
            preds = [g.labels(**fixed_group, **group_params) for g in groupers]
            if postprocess is not None:
                preds = [_postprocess(p, **postprocess) for p in preds]
            score = _score(metric, labels, preds)
            seconds = time.perf_counter() - tic + build_seconds
            build_seconds = 0.0  # charged to the first trial of the outer combination
            trials.append({**params, "score": score, "seconds": seconds})
            if score > best_score:  # NaN never wins
                best_params, best_score = params, score
            done = len(trials) == total
            over = budget_seconds is not None and time.perf_counter() - start > budget_seconds
            yield TuneResult(
                best_params=dict(best_params),
                best_score=best_score if best_params else math.nan,
                trials=list(trials),
                metric=metric,
                grouper=grouper,
                complete=done,
            )
            if over:
                return


def tune(
    embeddings: Sequence,
    labels: Sequence,
    *,
    grouper: str = "hdbscan",
    space: Mapping[str, Sequence] | None = None,
    metric: str = "SEG",
    foregrounds: Sequence | None = None,
    budget_seconds: float | None = None,
    fixed: Mapping | None = None,
    postprocess: Mapping | None = None,
) -> TuneResult:
    """Find the grouping parameters that best reproduce curated labels.

    Parameters
    ----------
    embeddings : list of array_like of shape (D, Y, X)
        Embeddings of the curated frames.
    labels : list of ndarray of shape (Y, X), int
        Their curated instance labels (0 background).
    grouper : {"hdbscan", "meanshift"}
        Which grouper to tune.
    space : dict of str to list, optional
        Values to try per parameter of the grouper's constructor or ``.labels``; every
        combination is tried. Default :data:`DEFAULT_SPACES` ``[grouper]``.
    metric : {"SEG", "AP50"}
        SEG (mean IoU of the curated objects with their match, pooled over frames) or AP at IoU
        0.5 (pooled counts).
    foregrounds : list of ndarray of shape (Y, X), bool, optional
        Pixels to group per frame; None groups all pixels.
    budget_seconds : float, optional
        Stop after the first trial that ends past this time (``complete`` is then False).
    fixed : dict, optional
        Parameters passed to every trial without search, e.g. ``{"device": "cpu"}``.
    postprocess : dict, optional
        Keyword arguments of :func:`~napari_cosine_embed.core.grouping.postprocess.postprocess`
        applied to every prediction before scoring, e.g. ``{"min_size": 20}``; None: raw labels.

    Returns
    -------
    TuneResult
        ``best_params``, ``best_score`` and every trial.

    Examples
    --------
    >>> emb = np.zeros((2, 4, 6)); emb[0, :, :3] = 1; emb[1, :, 3:] = 1
    >>> gt = np.repeat([[1, 1, 1, 2, 2, 2]], 4, axis=0)
    >>> result = tune([emb], [gt], grouper="meanshift", space={"bandwidth": [0.1, 4.0]})
    >>> result.best_params, result.best_score
    ({'bandwidth': 0.1}, 1.0)
    """
    steps = iter_tune(
        embeddings,
        labels,
        grouper=grouper,
        space=space,
        metric=metric,
        foregrounds=foregrounds,
        budget_seconds=budget_seconds,
        fixed=fixed,
        postprocess=postprocess,
    )
    return collections.deque(steps, maxlen=1)[0]  # the last snapshot holds every trial
