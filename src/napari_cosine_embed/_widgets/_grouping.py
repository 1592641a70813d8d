"""The GUI-free part of the Group widget: its parameters, grouping one frame, and its workers.

:class:`GroupParams` holds what decides the instances of one frame (its defaults are those of
the ``segment`` command), :func:`build_grouper` is the expensive part of grouping a frame and
:func:`cut` the cheap one, and :func:`group_frame` does both. The ``_*_job`` generators are what
the widget's workers run, and :func:`tune_inputs` and :func:`tune_steps` prepare its auto-tune
grid search. Nothing here imports Qt, magicgui or napari, so the logic the widget shares with
the command line can be tested without a display.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..core.diameter import size_parameters
from ..core.errors import InputError
from ..core.pipeline import DEFAULT_FOREGROUND_THRESHOLD, PipelineConfig

__all__ = [
    "TUNE_SPACES",
    "GroupParams",
    "build_grouper",
    "cut",
    "group_frame",
    "tune_inputs",
    "tune_steps",
    "tuned_fields",
]

_PIPELINE = PipelineConfig()  # the widget starts from the command line's defaults


@dataclass(frozen=True)
class GroupParams:
    """Everything that decides the instances of one frame (defaults: those of ``segment``).

    Attributes
    ----------
    method : {"hdbscan", "meanshift"}
    min_samples : int
        HDBSCAN's ``min_samples`` (a build parameter: a new tree per value).
    coord_weight : float
        Distance added by moving one object size in ``y`` or ``x``; 0 ignores position (a
        build parameter).
    threshold : float
        Pixels whose foreground probability is at least this are grouped (a build parameter).
    min_cluster_size : int
        HDBSCAN's ``min_cluster_size`` (a cut of the tree).
    epsilon : float
        HDBSCAN's cluster selection epsilon (a cut of the tree).
    selection : {"eom", "leaf"}
        HDBSCAN's cluster selection method (a cut of the tree).
    bandwidth : float
        Mean-shift bandwidth (1 - cosine).
    min_size : int
        Instances smaller than this (pixels) are removed.
    split : bool
        Split every instance into its connected pieces.
    split_depth : float
        Cut instances made of round blobs joined by a neck at least this deep; 0 cuts nothing.
    diameter : float
        Typical object diameter in pixels (0: not set). HDBSCAN's coordinate scale
        (:attr:`object_size`) follows it, as ``segment``'s does (a build parameter).
    """

    method: str = _PIPELINE.grouping
    min_samples: int = _PIPELINE.min_samples
    coord_weight: float = _PIPELINE.coord_weight
    threshold: float = DEFAULT_FOREGROUND_THRESHOLD  # or the model's calibrated threshold
    min_cluster_size: int = _PIPELINE.min_cluster_size
    epsilon: float = _PIPELINE.cluster_selection_epsilon
    selection: str = "eom"
    bandwidth: float = _PIPELINE.bandwidth
    min_size: int = _PIPELINE.min_size
    split: bool = True
    split_depth: float = _PIPELINE.split_depth
    diameter: float = 0.0

    @property
    def object_size(self) -> float:
        """HDBSCAN's coordinate scale: from the diameter when set, else ``segment``'s default."""
        if self.diameter > 0:
            return float(size_parameters(self.diameter)["object_size"])
        return _PIPELINE.object_size

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> GroupParams:
        """Parameters from the raw values of the widget's controls, keyed by field name.

        Other keys are ignored. Numbers are cast, and floats rounded to the controls'
        precision, so that equal settings give equal parameters (and the same grouper key).
        """
        return cls(
            method=values["method"],
            min_samples=int(values["min_samples"]),
            coord_weight=round(float(values["coord_weight"]), 3),
            threshold=round(float(values["threshold"]), 3),
            min_cluster_size=int(values["min_cluster_size"]),
            epsilon=round(float(values["epsilon"]), 4),
            selection=values["selection"],
            bandwidth=round(float(values["bandwidth"]), 4),
            min_size=int(values["min_size"]),
            split=bool(values["split"]),
            split_depth=round(float(values["split_depth"]), 3),
            diameter=round(float(values.get("diameter", 0.0)), 1),
        )

    def build_key(self) -> tuple:
        """The parameters a grouper is built with (the rest only cut or clean up)."""
        if self.method == "hdbscan":
            return (
                "hdbscan",
                self.min_samples,
                self.coord_weight,
                self.threshold,
                self.object_size,
            )
        return ("meanshift", self.coord_weight, self.threshold)


def build_grouper(embedding: np.ndarray, foreground: np.ndarray | None, params: GroupParams):
    """The (expensive) grouper of one frame: an HDBSCAN tree or a mean-shift support.

    Parameters
    ----------
    embedding : ndarray of shape (D, Y, X)
    foreground : ndarray of shape (Y, X), optional
        Foreground probability, thresholded at ``params.threshold``; None groups every pixel.
    params : GroupParams
        Only the fields of :meth:`GroupParams.build_key` are used.

    Returns
    -------
    HDBSCANGrouper or MeanShiftGrouper
    """
    from ..core.grouping import HDBSCANGrouper, MeanShiftGrouper

    mask = None if foreground is None else foreground >= params.threshold
    if params.method == "hdbscan":
        return HDBSCANGrouper(
            embedding,
            foreground=mask,
            min_samples=params.min_samples,
            coord_weight=params.coord_weight,
            object_size=params.object_size,
        )
    return MeanShiftGrouper(embedding, foreground=mask, coord_weight=params.coord_weight)


def cut(grouper: Any, params: GroupParams) -> np.ndarray:
    """Instances from a built grouper: the cheap part, then the clean-up.

    Parameters
    ----------
    grouper : HDBSCANGrouper or MeanShiftGrouper
        From :func:`build_grouper` with the same ``params.build_key()``.
    params : GroupParams

    Returns
    -------
    ndarray of shape (Y, X), int32
        0 background, objects 1..K.
    """
    from ..core.grouping import postprocess

    if params.method == "hdbscan":
        raw = grouper.labels(
            params.min_cluster_size, params.epsilon, params.selection, assign_noise=True
        )
    else:
        raw = grouper.labels(params.bandwidth)
    return postprocess(
        raw, min_size=params.min_size, split=params.split, split_depth=params.split_depth
    )


def group_frame(
    embedding: np.ndarray, foreground: np.ndarray | None, params: GroupParams
) -> np.ndarray:
    """Instances of one frame, ``(Y, X)`` int32, 0 background, objects 1..K.

    Parameters
    ----------
    embedding : ndarray of shape (D, Y, X)
    foreground : ndarray of shape (Y, X), optional
        Foreground probability; None groups every pixel.
    params : GroupParams

    Returns
    -------
    ndarray of shape (Y, X), int32
    """
    return cut(build_grouper(embedding, foreground, params), params)


#: Values auto-tune tries besides the current ones (constructor parameters form the outer loop).
TUNE_SPACES = {
    "hdbscan": {
        "min_samples": [5, 10, 20],
        "coord_weight": [0.5, 1.0, 2.0],
        "min_cluster_size": [20, 50, 100, 200],
        "cluster_selection_epsilon": [0.0, 0.05],
        "method": ["eom", "leaf"],
    },
    "meanshift": {"coord_weight": [0.0, 1.0], "bandwidth": [0.03, 0.05, 0.1, 0.15, 0.2, 0.3]},
}
#: Tune parameter name -> GroupParams field.
_TUNED = {
    "min_samples": "min_samples",
    "coord_weight": "coord_weight",
    "min_cluster_size": "min_cluster_size",
    "cluster_selection_epsilon": "epsilon",
    "method": "selection",
    "bandwidth": "bandwidth",
    "foreground_threshold": "threshold",
}


def _tune_space(params: GroupParams) -> dict[str, list]:
    """The grid of :data:`TUNE_SPACES`, with the current values added (so tuning never loses)."""
    current = asdict(params)
    space = {}
    for name, values in TUNE_SPACES[params.method].items():
        now = current[_TUNED[name]]
        space[name] = values if now in values else sorted([*values, now])
    return space


def tune_inputs(session: Any, layer: Any, labels: Any | None) -> tuple[list, list, list]:
    """The embeddings, foregrounds and curated instances of the frames to tune on.

    Parameters
    ----------
    session : Session
        Holds the cached embeddings and the curated frames of each labels layer.
    layer : napari.layers.Image
        The image, (Y, X) or (T, Y, X).
    labels : napari.layers.Labels or None
        Labels of the image's shape, some of whose frames are marked as curated.

    Returns
    -------
    embeddings, foregrounds, truths : list
        One entry per curated frame with an embedding, as :func:`tune_steps` takes them.

    Raises
    ------
    InputError
        Without labels, with labels of another shape, without curated frames, or when no
        curated frame has an embedding yet.
    """
    if labels is None:
        raise InputError("choose the labels layer whose curated frames to tune on")
    if tuple(labels.data.shape) != tuple(layer.data.shape):
        raise InputError(
            f"'{labels.name}' has shape {tuple(labels.data.shape)}, the image "
            f"{tuple(layer.data.shape)}: choose the labels of this image"
        )
    curated = session.curated_frames(labels.name)
    if not curated:
        raise InputError(
            f"no curated frames in '{labels.name}': correct a frame and mark it as curated "
            "(Correct widget) first"
        )
    frames = [t for t in curated if session.frame(layer, t) is not None]
    if not frames:
        raise InputError(f"the curated frames {curated} have no embeddings yet: compute them first")
    embeddings, foregrounds, truths = [], [], []
    for t in frames:
        emb, fg = session.frame(layer, t)
        embeddings.append(emb)
        foregrounds.append(fg)
        truths.append(np.array(labels.data if labels.data.ndim == 2 else labels.data[t]))
    return embeddings, foregrounds, truths


def tune_steps(
    embeddings: list[np.ndarray],
    foregrounds: list[np.ndarray | None],
    truths: list[np.ndarray],
    params: GroupParams,
) -> tuple[Iterator[Any], int]:
    """The search on curated frames, not started yet: the threshold, then the grid.

    The foreground threshold is chosen first, as the one whose foreground best matches the
    curated objects (foreground IoU, :func:`~..core.training.calibrate.threshold_from_labels`);
    the grid around ``params`` is then searched at that threshold. Every result carries it as
    ``best_params["foreground_threshold"]``.

    Parameters
    ----------
    embeddings : list of ndarray of shape (D, Y, X)
    foregrounds : list of ndarray of shape (Y, X) or None
        Foreground probabilities; when a frame has none, ``params.threshold`` is kept.
    truths : list of ndarray of shape (Y, X)
        The curated instances of each frame.
    params : GroupParams
        The grouping method, the clean-up, and values added to the grid of :data:`TUNE_SPACES`.

    Returns
    -------
    steps : iterator of TuneResult
        :func:`~..core.grouping.iter_tune`: the result so far after every trial.
    total : int
        Trials in the grid.
    """
    space = _tune_space(params)
    return _tune_run(embeddings, foregrounds, truths, params, space), int(
        np.prod([len(v) for v in space.values()])
    )


def _tune_run(embeddings, foregrounds, truths, params: GroupParams, space: dict):
    """The search of :func:`tune_steps`: the foreground threshold first, then the grid."""
    import dataclasses

    from ..core.grouping import iter_tune
    from ..core.training.calibrate import threshold_from_labels

    threshold = params.threshold
    if foregrounds and all(fg is not None for fg in foregrounds):
        # the threshold whose foreground best covers the curated objects: it follows how this
        # user outlines objects, which no model output can tell (docs/benchmarks.md)
        found = threshold_from_labels(foregrounds, truths)
        if found is not None:
            threshold = found["threshold"]
    steps = iter_tune(
        embeddings,
        truths,
        grouper=params.method,
        space=space,
        foregrounds=[None if fg is None else fg >= threshold for fg in foregrounds],
        postprocess={
            "min_size": params.min_size,
            "split": params.split,
            "split_depth": params.split_depth,
        },
    )
    for result in steps:
        best = {**result.best_params, "foreground_threshold": threshold}
        yield dataclasses.replace(result, best_params=best)


def tuned_fields(best_params: dict[str, Any]) -> dict[str, Any]:
    """A tune result's best parameters as :class:`GroupParams` field values."""
    return {_TUNED[k]: v for k, v in best_params.items() if k in _TUNED}


def _preview_job(store: Any, t: int, params: GroupParams, grouper: Any):
    """Worker: build the grouper of frame ``t`` if none is given, then cut it.

    Returns
    -------
    tuple
        ``(grouper, labels, seconds)``.
    """
    tic = time.perf_counter()
    if grouper is None:
        grouper = build_grouper(*store.get(t), params)
    return grouper, cut(grouper, params), time.perf_counter() - tic


def _group_job(store: Any, params: GroupParams) -> Generator[tuple[int, int, Any], None, None]:
    """Worker: group every frame of ``store``, yielding ``(t, labels)`` one frame at a time."""
    for t in range(store.n_frames):
        labels = group_frame(*store.get(t), params)
        yield t + 1, store.n_frames, (t, labels.astype(np.int32, copy=False))


def _tune_job(steps, total: int):
    """Worker: run the grid search, yielding each snapshot; returns the last one."""
    last = None
    for result in steps:
        last = result
        yield len(result.trials), total, result
    return last
