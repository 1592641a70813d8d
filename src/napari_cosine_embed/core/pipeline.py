"""The whole job on a movie: embed every frame, group each into instances, link them into tracks.

:func:`run_pipeline` streams a movie of any length: frames are read one at a time, their
embeddings go to an :class:`~.embedding_store.EmbeddingStore` (a zarr folder on disk for long
movies) and are read back one frame at a time for grouping; only the label movie (2 bytes per
pixel and frame) is held whole, because tracking relabels it. It is a generator that yields
:class:`Progress` for the command line's and the GUI's progress bars, and returns a
:class:`PipelineResult`. :class:`PipelineConfig` holds every parameter; it is written beside
every result so that a result can be reproduced.

Tracking is overlap linking of the per-frame instances (:func:`~.tracking.link_labels`) by
default, or Payer et al.'s clustering of frame pairs (:func:`~.tracking.track_pairs`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Generator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from .diameter import parse_diameter
from .embedding_store import frame_hash
from .errors import InputError, OutputExistsError
from .limits import PIPELINE, check_choice, check_fields, check_flag, check_text
from .normalise import InvertedMovie
from .resample import rescale_labels
from .size_plan import SizePlan, model_space, model_view, resolve_size

if TYPE_CHECKING:
    from .threads import ThreadGovernor

__all__ = [
    "DEFAULT_FOREGROUND_THRESHOLD",
    "PipelineConfig",
    "PipelineResult",
    "Progress",
    "cache_ids",
    "group_frame",
    "link_options",
    "model_input",
    "run_pipeline",
]

#: The foreground threshold of a model without a calibrated one (chosen for the bundled
#: default model on the benchmark sequences; see docs/benchmarks.md).
DEFAULT_FOREGROUND_THRESHOLD = 0.05

GROUPINGS = ("hdbscan", "meanshift")
TRACKINGS = ("overlap", "pairs")


@dataclass
class PipelineConfig:
    """Every parameter of a segmentation and tracking run (all plain data).

    Every field is checked when the config is built, from code, a ``settings.json`` or the
    command line alike: numbers against :data:`~.limits.PIPELINE` (the ranges the options of
    ``segment`` and ``track`` accept), flags and choices by type. A wrong value raises
    :class:`InputError` naming the field, the value and the range.

    Attributes
    ----------
    model : str
        Bundled model name or checkpoint path.
    diameter : float, "auto" or None
        Typical object diameter in the input's pixels, or ``"auto"`` to estimate it from the
        model's outputs (see :mod:`.diameter`). With a diameter, frames outside the sizes the
        model knows are rescaled before embedding (labels come back at the input's shape), and
        the size parameters left at their defaults (``object_size``, ``min_cluster_size``,
        ``min_size``, ``max_gap_distance``) follow it; a value you set is used as given. None:
        no rescaling, the size parameters as given.
    invert : bool
        The objects are darker than the background (brightfield, stained tissue): each frame
        is negated before embedding, so that the model, trained on bright objects, sees bright
        objects (see :class:`~.normalise.InvertedMovie`).
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"``...
    tile_size, tile_overlap : int
        Tiled inference of large frames (see :func:`~.embed.iter_embed`).
    state_window, warmup : int or None
        Bounded history of the recurrent state (see :func:`~.embed.iter_embed`); None carries
        it through the whole movie.
    foreground_threshold : float or None
        Pixels whose foreground probability is at least this are grouped. None: the model's
        calibrated threshold (fine-tuned models carry one, see
        :mod:`~.training.calibrate`), else :data:`DEFAULT_FOREGROUND_THRESHOLD`;
        :meth:`for_model` fills it in.
    foreground_smoothing : float
        Gaussian sigma (pixels) applied to the foreground probability before thresholding.
    grouping : {"hdbscan", "meanshift"}
    min_samples, min_cluster_size, coord_weight, cluster_selection_epsilon : HDBSCAN
        As in :class:`~.grouping.HDBSCANGrouper`.
    object_size : float
        Typical nucleus diameter in pixels (scales coordinates for HDBSCAN).
    bandwidth : float
        Mean-shift bandwidth (1 - cosine), for ``grouping="meanshift"``.
    min_size : int
        Instances smaller than this (pixels) are removed.
    fill_holes : bool
        Fill holes inside each instance.
    split_depth : float
        Cut instances made of round blobs joined by a neck whose saddle is at least this deep
        (relative; see :func:`~.grouping.split_necks`); 0 cuts nothing.
    track : bool
        Link instances over time; False labels each frame on its own (a set of 2D images).
    tracking : {"overlap", "pairs"}
        Overlap linking of per-frame instances, or Payer's pair clustering.
    min_iou, min_child_overlap, min_track_length, min_split_frames, min_child_ratio, \
max_gap, max_gap_distance, split_back, split_back_depth
        Tracking options (see :func:`.tracking.link_labels`; ``split_back`` and
        ``split_back_depth`` only for the overlap tracking).
    """

    model: str = "default"
    diameter: float | str | None = "auto"
    invert: bool = False
    device: str = "auto"
    tile_size: int = 1024
    tile_overlap: int = 128
    state_window: int | None = 5
    warmup: int = 3
    foreground_threshold: float | None = None
    foreground_smoothing: float = 0.0
    grouping: str = "hdbscan"
    min_samples: int = 10
    min_cluster_size: int = 150
    coord_weight: float = 4.0
    cluster_selection_epsilon: float = 0.0
    object_size: float = 32.0
    bandwidth: float = 0.1
    min_size: int = 30
    fill_holes: bool = True
    split_depth: float = 0.2
    track: bool = True
    tracking: str = "overlap"
    min_iou: float = 0.3
    min_child_overlap: float = 0.5
    min_track_length: int = 2
    min_split_frames: int = 5
    min_child_ratio: float = 0.3
    max_gap: int = 1
    max_gap_distance: float = 20.0
    split_back: int = 4
    split_back_depth: float = 0.05

    def __post_init__(self) -> None:
        # Every field, however the config was built: a settings.json holding "5", NaN or
        # true where a number belongs must fail here, naming the field, not deep in a run.
        if isinstance(self.model, os.PathLike):
            self.model = os.fspath(self.model)  # a path is kept as text, for settings.json
        self.model = check_text(self.model, "model")
        self.diameter = parse_diameter(self.diameter)
        if self.device is not None:  # None leaves the model where it is
            self.device = check_text(self.device, "device")
        self.grouping = check_choice(self.grouping, "grouping", GROUPINGS)
        self.tracking = check_choice(self.tracking, "tracking", TRACKINGS)
        self.fill_holes = check_flag(self.fill_holes, "fill_holes")
        self.invert = check_flag(self.invert, "invert")
        self.track = check_flag(self.track, "track")
        check_fields(self, PIPELINE)
        # tiles overlapping by more than half would compute most pixels several times over
        # (and cannot advance at all once the overlap reaches the tile size)
        if self.tile_overlap > self.tile_size // 2:
            raise InputError(
                f"tile_size must be at least twice tile_overlap ({self.tile_overlap}), got "
                f"{self.tile_size}: give a tile_size of at least {2 * self.tile_overlap} or a "
                "smaller tile_overlap"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def for_model(self, model: Any) -> PipelineConfig:
        """This config, its ``foreground_threshold`` filled in for ``model`` when it is None."""
        if self.foreground_threshold is not None:
            return self
        from .training.calibrate import recommended_threshold

        return replace(self, foreground_threshold=recommended_threshold(model))

    def embed_options(self) -> dict[str, Any]:
        """The options of :func:`~.embed.iter_embed` that change the embeddings."""
        return {
            "tile_size": self.tile_size,
            "tile_overlap": self.tile_overlap,
            "state_window": self.state_window,
            "warmup": self.warmup,
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> PipelineConfig:
        """Build from a dict, refusing unknown keys (a typo must not be ignored).

        Every value is checked as :meth:`__post_init__` does; :class:`InputError` names the
        first field that is wrong, its value and what it accepts.
        """
        if not isinstance(values, Mapping):
            raise InputError(
                f"parameters must be a mapping of names to values, got {type(values).__name__}"
            )
        known = {f.name for f in fields(cls)}
        unknown = sorted(map(str, set(values) - known))
        if unknown:
            raise InputError(f"unknown settings {unknown}; known: {sorted(known)}")
        return cls(**values)


@dataclass(frozen=True)
class Progress:
    """One step of a pipeline run: ``stage`` ("embed", "group", "track"), ``done`` of ``total``."""

    stage: str
    done: int
    total: int


@dataclass
class PipelineResult:
    """What :func:`run_pipeline` returns.

    Attributes
    ----------
    labels : ndarray of shape (T, Y, X), uint16 or uint32
        Track ids (or per-frame instance ids when not tracking).
    lineage : ndarray of shape (N, 4) or None
        CTC rows ``[label, first, last, parent]``; None when not tracking.
    tracks : ndarray of shape (M, 4) or None
        napari Tracks data ``[track_id, t, y, x]``.
    graph : dict or None
        napari Tracks graph ``{child: [parent]}``.
    seconds : dict of str to float
        Wall time per stage.
    warnings : list of str
        What the user should know about the result (non-finite pixels filled, cached frames
        recomputed, every frame empty), one sentence each.
    size : SizePlan or None
        The object diameter used and the scale frames were embedded at.
    """

    labels: np.ndarray
    lineage: np.ndarray | None
    tracks: np.ndarray | None
    graph: dict | None
    seconds: dict[str, float]
    warnings: list[str] = field(default_factory=list)
    size: SizePlan | None = None


def foreground_mask(foreground: np.ndarray | None, shape, config: PipelineConfig) -> np.ndarray:
    """The pixels to group: thresholded (optionally smoothed) foreground, or all pixels."""
    if foreground is None:
        return np.ones(shape, bool)
    fg = np.asarray(foreground, np.float32)
    if config.foreground_smoothing > 0:
        from scipy import ndimage as ndi

        fg = ndi.gaussian_filter(fg, config.foreground_smoothing)
    threshold = config.foreground_threshold
    return fg >= (DEFAULT_FOREGROUND_THRESHOLD if threshold is None else threshold)


def group_frame(
    embedding: np.ndarray, foreground: np.ndarray | None, config: PipelineConfig
) -> np.ndarray:
    """Instances of one frame from its embedding and foreground, as the config says.

    Parameters
    ----------
    embedding : ndarray of shape (D, Y, X)
        Unit embeddings.
    foreground : ndarray of shape (Y, X) or None
        Foreground probabilities.
    config : PipelineConfig

    Returns
    -------
    ndarray of shape (Y, X), int32
        Instances ``1 .. N``, 0 for background.
    """
    from .grouping import HDBSCANGrouper, meanshift_labels, postprocess

    mask = foreground_mask(foreground, embedding.shape[1:], config)
    if not mask.any():
        return np.zeros(embedding.shape[1:], np.int32)
    if config.grouping == "hdbscan":
        labels = HDBSCANGrouper(
            embedding,
            foreground=mask,
            min_samples=config.min_samples,
            coord_weight=config.coord_weight,
            object_size=config.object_size,
        ).labels(
            config.min_cluster_size,
            config.cluster_selection_epsilon,
            assign_noise=True,
        )
    else:
        labels = meanshift_labels(embedding, foreground=mask, bandwidth=config.bandwidth)
    return postprocess(
        labels, min_size=config.min_size, fill=config.fill_holes, split_depth=config.split_depth
    )


def model_input(movie: Any, config: PipelineConfig, model: Any) -> tuple[Any, SizePlan, Any]:
    """A (T, Y, X) movie as the model will see it, and the config that goes with it.

    Inverted when ``config.invert``; the diameter resolved (estimated when ``"auto"``) and
    the frames rescaled lazily into the sizes the model knows (:func:`~.size_plan.resolve_size`).
    Returns the resolved config, the :class:`~.size_plan.SizePlan` and the lazy view; an
    embedding store for the run must have the view's frame shape.
    """
    view = InvertedMovie(movie) if config.invert else movie
    config, size = resolve_size(config, model, view)
    return config, size, model_view(view, size)


def _label_dtype(n: int):
    return np.uint16 if n <= np.iinfo(np.uint16).max else np.uint32


def run_pipeline(
    image: Any,
    config: PipelineConfig,
    *,
    model: Any = None,
    store: Any = None,
    threads: ThreadGovernor | None = None,
    pins: Sequence[Any] = (),
    lazy: bool = False,
) -> Generator[Progress, None, PipelineResult]:
    """Segment (and track) a movie frame by frame.

    Parameters
    ----------
    image : array-like of shape (T, Y, X) or (Y, X)
        numpy, dask or zarr; read one frame at a time.
    config : PipelineConfig
    model : EmbeddingModel, optional
        Already loaded; else ``config.model`` is loaded.
    store : EmbeddingStore, optional
        Where embeddings go (frames already in it are not recomputed, so a stopped run
        resumes); an in-memory store by default.
    threads : ThreadGovernor, optional
        Re-decides torch's CPU thread count before each frame is embedded or grouped (see
        :mod:`.threads`); None leaves it as it is.
    pins : sequence of tracking.Pin, optional
        Links to keep when tracking (:mod:`.tracking.pins`), in the input's pixels; those no
        object holds are named in the result's warnings.
    lazy : bool, optional
        Keep the label frames compressed while grouping and tracking, and return the tracked
        labels relabelled frame by frame as they are read
        (:class:`~.tracking.frames.RelabelledFrames`): memory then stays flat in the movie's
        length (``segment`` does this); otherwise the labels are an array.

    Yields
    ------
    Progress
        After each frame of each stage.

    Returns
    -------
    PipelineResult
        As the generator's return value.
    """
    from .checkpoint import load_model
    from .embed import embedding_history, iter_embed
    from .embedding_store import EmbeddingStore

    if getattr(image, "ndim", None) not in (2, 3):
        raise InputError(f"image must be (T, Y, X) or (Y, X), got {getattr(image, 'shape', None)}")
    movie = image[None] if image.ndim == 2 else image
    n, shape = movie.shape[0], tuple(movie.shape[-2:])
    if n == 0:
        raise InputError("the movie has no frames")
    model = load_model(config.model) if model is None else model
    config = config.for_model(model)
    if config.device is not None:
        from .device import resolve_device

        model = model.to(resolve_device(config.device))
    # grouping works in the pixels the model sees; labels come back at the input's shape
    out_shape = shape
    config, size, movie = model_input(movie, config, model)
    shape = tuple(movie.shape[-2:])
    grouping_config = model_space(config, size.scale)
    if store is None:
        store = EmbeddingStore(
            n, model.config.embedding_dim, shape, **cache_ids(model, movie, config)
        )
    elif store.n_frames != n or store.shape != shape:
        raise InputError(f"the embedding store is for {store.n_frames} frames of {store.shape}")
    seconds = {"embed": 0.0, "group": 0.0, "track": 0.0}
    warnings: list[str] = []
    if size.source == "auto" and size.diameter is None:
        warnings.append(f"{size.describe()}; the size parameters keep their pixel values")

    def history(t: int) -> range:
        return embedding_history(t, state_window=config.state_window, warmup=config.warmup)

    # A kept store (on disk, or already filled) serves only frames whose whole history is
    # unchanged: an edited frame, or one before it, means recomputing.
    hashes = None
    if store.path is not None or len(store.missing()) < n:
        hashes = []
        for t in range(n):
            hashes.append(frame_hash(movie[t]))
            yield Progress("check", t + 1, n)
        kept = n - len(store.missing())
        stale = store.stale(hashes, history)
        stored = store.frame_hashes()
        known, matched = stored != 0, stored == np.asarray(hashes, np.uint64)
        if kept and known.any() and not (matched & known).any():
            raise OutputExistsError(
                f"the embedding cache {store.path or ''} holds another movie (none of its "
                f"{kept} frames matches this one); choose another cache or delete it"
            )
        if stale:
            store.forget(stale)
            warnings.append(
                f"{len(stale)} of {kept} cached frames were recomputed: the movie changed since "
                f"they were cached (frames {_ranges(stale)})"
            )

    # Embed in order from the first missing frame: with a bounded state history each frame
    # is rebuilt with the history it has in a whole run; without one, from frame 0.
    tic = time.perf_counter()
    missing = store.missing()
    done = n - len(missing)
    nonfinite: dict[int, int] = {}
    if missing:
        first = 0 if config.state_window is None else missing[0]
        frames = range(first, n) if config.track else missing
        for result in iter_embed(
            model,
            movie,
            frames=frames,
            **config.embed_options(),
        ):
            if threads is not None:
                threads.update()  # for the next frame, which the generator computes on resume
            if result.nonfinite:
                nonfinite[result.t] = result.nonfinite
            if not store.has(result.t):
                source = 0 if hashes is None else hashes[result.t]
                store.put(result.t, result.embedding, result.foreground, source_hash=source)
                done += 1
            yield Progress("embed", done, n)
    seconds["embed"] = time.perf_counter() - tic
    warnings += _nonfinite_warning(nonfinite)

    tic = time.perf_counter()
    if config.track and config.tracking == "pairs":
        from .tracking import track_pairs
        from .tracking.pins import scale_pins

        embeddings = _StoreView(store, 0)
        foregrounds = _StoreView(store, 1, grouping_config)
        g = grouping_config
        tracker = track_pairs(
            embeddings,
            foregrounds,
            min_samples=g.min_samples,
            min_cluster_size=2 * g.min_cluster_size,
            coord_weight=g.coord_weight,
            object_size=g.object_size,
            cluster_selection_epsilon=g.cluster_selection_epsilon,
            min_size=g.min_size,
            fill_holes=g.fill_holes,
            split_depth=g.split_depth,
            pins=scale_pins(pins, size.scale),
            **_cleanup(g),
        )
        while True:
            try:
                pair, total = next(tracker)
            except StopIteration as stop:
                tracked = stop.value
                break
            yield Progress("track", pair, total)
        seconds["track"] = time.perf_counter() - tic
        warnings += _empty_warning(tracked.labels, store, config) + _missed(tracked)
        tracked = _restore_size(tracked, size, out_shape)
        return PipelineResult(
            tracked.labels,
            tracked.lineage,
            tracked.tracks,
            tracked.graph,
            seconds,
            warnings,
            size,
        )

    from .tracking.frames import FrameStack

    labels = FrameStack(out_shape, compressed=lazy)
    for t in range(n):
        if threads is not None:
            threads.update()
        emb, fg = store.get(t)
        frame = rescale_labels(group_frame(emb, fg, grouping_config), out_shape)
        labels.append(frame.astype(_label_dtype(int(frame.max(initial=0))), copy=False))
        yield Progress("group", t + 1, n)
    seconds["group"] = time.perf_counter() - tic
    warnings += _empty_warning(labels, store, config)
    if not config.track:
        labels = np.asarray(labels) if image.ndim == 3 else labels[0]
        return PipelineResult(labels, None, None, None, seconds, warnings, size)

    from .tracking import link_labels

    tic = time.perf_counter()
    yield Progress("track", 0, 1)
    tracked = link_labels(labels, **link_options(config), pins=pins, lazy=lazy)
    del labels
    warnings += _missed(tracked)
    seconds["track"] = time.perf_counter() - tic
    yield Progress("track", 1, 1)
    return PipelineResult(
        tracked.labels, tracked.lineage, tracked.tracks, tracked.graph, seconds, warnings, size
    )


def _missed(tracked: Any) -> list[str]:
    """A warning naming the pinned links no object of the new segmentation held."""
    missed = tracked.missed_pins
    if not missed:
        return []
    frames = _ranges(sorted({p.t for p in missed}))
    return [
        f"{len(missed)} pinned link(s) could not be kept (no object under a pinned point in "
        f"frame(s) {frames}); check those frames"
    ]


def _restore_size(tracked: Any, size: SizePlan, shape: tuple[int, ...]) -> Any:
    """A pair-tracking result made on rescaled frames, brought back to the input's pixels."""
    if size.scale == 1:
        return tracked
    labels = np.stack([rescale_labels(frame, shape) for frame in tracked.labels])
    tracks = tracked.tracks
    if tracks is not None and len(tracks):
        tracks = np.asarray(tracks, float).copy()
        tracks[:, 2:] /= size.scale
    return replace(tracked, labels=labels, tracks=tracks)


def _nonfinite_warning(nonfinite: dict[int, int]) -> list[str]:
    """The warning for frames whose NaN or infinite pixels were filled (count per frame)."""
    if not nonfinite:
        return []
    return [
        f"{len(nonfinite)} frame(s) held NaN or infinite pixels ({sum(nonfinite.values())} "
        f"in all; frames {_ranges(sorted(nonfinite))}): they were filled with each frame's "
        "lowest finite value before embedding"
    ]


def _ranges(frames: list[int]) -> str:
    """``[0, 1, 2, 5, 7, 8]`` -> ``"0-2, 5, 7-8"`` (at most 6 runs shown)."""
    runs: list[list[int]] = []
    for t in frames:
        if runs and t == runs[-1][1] + 1:
            runs[-1][1] = t
        else:
            runs.append([t, t])
    text = [f"{a}-{b}" if b > a else f"{a}" for a, b in runs[:6]]
    return ", ".join(text) + (", ..." if len(runs) > 6 else "")


def _empty_warning(
    labels: np.ndarray, store: Any, config: PipelineConfig, *, top: float | None = None
) -> list[str]:
    """Why every frame came out empty, when it did (a silent empty result helps nobody).

    ``top``, the highest foreground probability seen, is read from ``store`` when not given.
    """
    if any(np.any(labels[t]) for t in range(len(labels))):  # frame by frame: it may be lazy
        return []
    if top is None:
        top = 0.0
        for t in range(store.n_frames):
            fg = store.get(t)[1]
            if fg is not None:
                top = max(top, float(fg.max(initial=0.0)))
    threshold = config.foreground_threshold
    if threshold is not None and top < threshold:
        why = (
            f"no pixel reaches the foreground threshold {threshold:g} (the highest foreground "
            f"probability is {top:.3f}): the movie may hold no objects, or lower "
            "--foreground-threshold"
        )
    else:
        why = (
            f"objects were found as foreground but none survived grouping and clean-up; "
            f"check --min-cluster-size ({config.min_cluster_size}) and --min-size "
            f"({config.min_size}) against the size of your objects in pixels"
        )
    return [f"every frame came out empty: {why}"]


def cache_ids(model: Any, movie: Any, config: PipelineConfig) -> dict[str, str]:
    """The identity of a movie's embeddings, for :class:`~.embedding_store.EmbeddingStore`.

    ``model_id`` covers the weights, the normalisation, every inference option that changes
    the embeddings and the kind of device (CUDA computes in bfloat16); ``image_id`` only the
    movie's geometry and dtype: its pixels are checked frame by frame
    (:func:`~.embedding_store.frame_hash`), so an edited frame is recomputed, not refused.
    """
    from .device import resolve_device
    from .embedding_store import embedding_id

    device = resolve_device(config.device).type
    geometry = f"{tuple(int(s) for s in movie.shape)} {np.dtype(movie.dtype).str}"
    return {
        "model_id": embedding_id(model, **config.embed_options(), device=device),
        "image_id": geometry,
    }


def link_options(config: PipelineConfig) -> dict[str, Any]:
    """Keyword arguments of :func:`~.tracking.link_labels` from a configuration."""
    return {
        **_cleanup(config),
        "split_back": config.split_back,
        "split_back_depth": config.split_back_depth,
    }


def _cleanup(config: PipelineConfig) -> dict[str, Any]:
    """The track clean-up options both trackings share."""
    return {
        "min_iou": config.min_iou,
        "min_child_overlap": config.min_child_overlap,
        "min_track_length": config.min_track_length,
        "min_split_frames": config.min_split_frames,
        "min_child_ratio": config.min_child_ratio,
        "max_gap": config.max_gap,
        "max_gap_distance": config.max_gap_distance,
    }


class _StoreView:
    """A store seen as a sequence of embeddings (part 0) or foreground masks (part 1)."""

    def __init__(self, store: Any, part: int, config: PipelineConfig | None = None) -> None:
        self._store, self._part, self._config = store, part, config

    def __len__(self) -> int:
        return self._store.n_frames

    def __getitem__(self, t: int) -> np.ndarray:
        emb, fg = self._store.get(t)
        if self._part == 0:
            return emb
        return foreground_mask(fg, emb.shape[1:], self._config)
