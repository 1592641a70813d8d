"""``segment`` frame by frame into a store on disk, so that a stopped run resumes.

Each frame is embedded and at once grouped into objects, and its labels are written to a
:class:`~.io.ome_zarr.LabelMovieStore` (atomically, with the hash of the input frame they came
from) before the next frame's embedding is dropped. A run stopped at any point (Ctrl-C, a killed
job, a full disk) leaves every finished frame on disk; the same command with ``--resume`` checks
those frames against the input and embeds and groups only the rest, then tracks the whole
movie from the store. Memory holds one frame's embedding and the compressed label frames, so it
stays flat in the movie's length.

The labels equal those of :func:`~.pipeline.run_pipeline` (``lazy=True``) frame for frame: the
same embedding history per frame, the same rounding of embeddings (the embedding store's), the
same grouping and tracking. The cluster path (:mod:`.distributed`) fills the same store.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Sequence
from typing import Any

import numpy as np

from .errors import InputError

__all__ = [
    "HistoryHashes",
    "load_segmentation",
    "resume_warnings",
    "run_framewise",
    "run_identity",
    "verify_done",
    "write_tracked",
]


def run_identity(inputs: Sequence[Any], movie: Any, model: Any, config: Any) -> dict[str, Any]:
    """What a resumed run must share with the stopped one: the inputs, the movie's shape and
    type, the model's weights and every parameter (the diameter resolved to pixels)."""
    from pathlib import Path

    from .device import resolve_device
    from .embedding_store import model_fingerprint

    return {
        "inputs": [str(Path(p).resolve()) for p in inputs],
        "movie": [list(map(int, movie.shape)), str(np.dtype(movie.dtype))],
        "model": model_fingerprint(model),
        # "auto" resolved: a run begun on a GPU is not finished on a CPU (other arithmetic)
        "device": str(resolve_device(config.device or "auto").type),
        "parameters": config.to_dict(),
    }


class HistoryHashes:
    """The hash each stored frame is marked with: of every input frame its labels depend on.

    A frame's embedding depends on the frames its recurrent state ran through
    (:func:`~.embed.embedding_history`), so a frame is kept on resume only if none of those
    changed. Each input frame is hashed once (:func:`~.embedding_store.frame_hash`).
    """

    def __init__(self, movie: Any, config: Any) -> None:
        self.movie, self.config = movie, config
        self._frames: dict[int, int] = {}

    def frame(self, t: int) -> int:
        from .embedding_store import frame_hash

        if t not in self._frames:
            self._frames[t] = frame_hash(self.movie[t])
        return self._frames[t]

    def __call__(self, t: int) -> int:
        import hashlib

        from .embed import embedding_history

        history = embedding_history(
            t, state_window=self.config.state_window, warmup=self.config.warmup
        )
        digest = hashlib.blake2b(digest_size=8)
        for s in history:
            digest.update(self.frame(s).to_bytes(8, "little"))
        return int.from_bytes(digest.digest(), "little") | 1  # never 0 (0: not written)


def verify_done(store: Any, hashes: HistoryHashes) -> Generator[Any, None, list[int]]:
    """Check the frames a stopped run finished against the input; unmark every frame whose
    own pixels, or those of a frame its embedding depends on, changed since.

    Yields ``Progress("check", ...)`` per frame; returns the frames unmarked.
    """
    from .pipeline import Progress

    sources = store.sources("segmentation")
    done = np.flatnonzero(sources)
    changed = []
    for i, t in enumerate(done):
        if hashes(int(t)) != int(sources[t]):
            changed.append(int(t))
        yield Progress("check", i + 1, len(done))
    if changed:
        store.forget("segmentation", changed)
    return changed


def resume_warnings(kept: int, changed: list[int], n_frames: int) -> list[str]:
    """What the user is told about a stopped run's frames: how many were redone, and kept."""
    from .pipeline import _ranges

    out = []
    if changed:
        out.append(
            f"{len(changed)} of {kept} frames of the stopped run were redone: the movie "
            f"changed since in them or in frames they depend on (frames {_ranges(changed)})"
        )
    if kept - len(changed):
        out.append(f"{kept - len(changed)} of {n_frames} frames were kept from the stopped run")
    return out


def load_segmentation(store: Any) -> Any:
    """The store's segmentation as compressed frames (:class:`~.tracking.frames.FrameStack`),
    each in the smallest unsigned type that holds it (as a whole run keeps them)."""
    from .pipeline import _label_dtype
    from .tracking.frames import FrameStack

    if not store.done("segmentation").all():
        missing = np.flatnonzero(~store.done("segmentation"))
        raise InputError(f"{store.path}: {len(missing)} frame(s) are not segmented yet")
    labels = FrameStack(store.shape)
    for t in range(store.n_frames):
        frame = store.get("segmentation", t)
        labels.append(frame.astype(_label_dtype(int(frame.max(initial=0))), copy=False))
    return labels


def _segment_missing(
    movie: Any, view: Any, config: Any, model: Any, store: Any, grouping: Any, *, threads: Any,
    copy_image: bool, nonfinite: dict[int, int], seconds: dict[str, float],
    hashes: HistoryHashes,
) -> Generator[Any, None, float]:  # fmt: skip
    """Embed and group the frames ``store`` lacks, writing each; returns the highest
    foreground probability seen (for the warning when every frame is empty)."""
    from .embed import iter_embed
    from .embedding_store import EmbeddingStore
    from .pipeline import Progress, group_frame, rescale_labels

    n = movie.shape[0]
    kept = store.done("segmentation")
    missing = [int(t) for t in np.flatnonzero(~kept)]
    # without a bounded state history every frame's state runs from frame 0: embed them all
    frames = missing if config.state_window is not None else (range(n) if missing else [])
    rounding = EmbeddingStore(n, model.config.embedding_dim, tuple(view.shape[-2:]))
    done = n - len(missing)
    tic, top = time.perf_counter(), 0.0
    for result in iter_embed(model, view, frames=frames, **config.embed_options()):
        t = result.t
        if kept[t]:
            continue
        if result.nonfinite:
            nonfinite[t] = result.nonfinite
        rounding.put(t, result.embedding, result.foreground)  # the store's rounding
        emb, fg = rounding.get(t)
        rounding.forget([t])
        if fg is not None:
            top = max(top, float(fg.max(initial=0.0)))
        group_tic = time.perf_counter()
        frame = rescale_labels(group_frame(emb, fg, grouping), store.shape)
        seconds["group"] += time.perf_counter() - group_tic
        source = movie[t]
        if copy_image:
            store.put_image(t, source)
        store.put("segmentation", t, frame, source=hashes(t))
        # let this frame's arrays go before the next forward pass (the peak of the run)
        del result, emb, fg, frame, source
        done += 1
        if threads is not None:
            threads.update()  # for the next frame, which the generator computes on resume
        yield Progress("segment", done, n)
    seconds["embed"] = time.perf_counter() - tic - seconds["group"]
    return top


def run_framewise(
    movie: Any,
    config: Any,
    store: Any,
    *,
    model: Any,
    threads: Any = None,
    pins: Sequence[Any] = (),
    copy_image: bool = False,
) -> Generator[Any, None, Any]:
    """Segment the frames ``store`` lacks, then track the whole movie from the store.

    Parameters
    ----------
    movie : array-like (T, Y, X)
        Read a frame at a time.
    config : PipelineConfig
        Tracking by overlap; the diameter already resolved (:func:`~.pipeline.model_input`),
        as the store's identity records it.
    store : LabelMovieStore
        New, or a stopped run's (its finished frames are checked, then kept).
    model : EmbeddingModel
    threads : ThreadGovernor, optional
    pins : sequence of Pin
    copy_image : bool
        Also copy each input frame into the store's image.

    Yields
    ------
    Progress
        ``check`` (a resumed run's frames), ``segment`` (frames done of all), ``track``.

    Returns
    -------
    PipelineResult
        Lazily relabelled labels (:class:`~.tracking.frames.RelabelledFrames`); ``warnings``
        also says how many frames were kept from the stopped run.
    """
    from .pipeline import (
        PipelineResult,
        Progress,
        _empty_warning,
        _missed,
        _nonfinite_warning,
        link_options,
        model_input,
        model_space,
    )
    from .tracking import link_labels

    if not config.track or config.tracking != "overlap":
        raise InputError("a resumable run tracks by overlap linking (--tracking overlap)")
    if tuple(movie.shape) != (store.n_frames, *store.shape):
        raise InputError(f"the store holds {store.n_frames} frames of {store.shape}")
    config = config.for_model(model)
    if config.device is not None:
        from .device import resolve_device

        model = model.to(resolve_device(config.device))
    config, size, view = model_input(movie, config, model)
    grouping = model_space(config, size.scale)
    warnings: list[str] = []
    hashes = HistoryHashes(movie, config)
    kept = int(store.done("segmentation").sum())
    changed = (yield from verify_done(store, hashes)) if kept else []
    warnings += resume_warnings(kept, changed, store.n_frames)
    seconds = {"embed": 0.0, "group": 0.0, "track": 0.0}
    nonfinite: dict[int, int] = {}
    top = yield from _segment_missing(
        movie, view, config, model, store, grouping, threads=threads, copy_image=copy_image,
        nonfinite=nonfinite, seconds=seconds, hashes=hashes,
    )  # fmt: skip
    warnings += _nonfinite_warning(nonfinite)
    tic = time.perf_counter()
    labels = load_segmentation(store)
    warnings += _empty_warning(labels, None, config, top=top)
    yield Progress("track", 0, 1)
    tracked = link_labels(labels, **link_options(config), pins=pins, lazy=True)
    warnings += _missed(tracked)
    seconds["track"] = time.perf_counter() - tic
    yield Progress("track", 1, 1)
    return PipelineResult(
        tracked.labels, tracked.lineage, tracked.tracks, tracked.graph, seconds, warnings, size
    )


def write_tracked(store: Any, labels: Any, lineage: Any) -> Generator[Any, None, None]:
    """Write the tracked labels into the store's ``tracked`` movie, frame by frame, and their
    lineage (the last frame counts as written only once the lineage is there)."""
    from .pipeline import Progress

    sources = store.sources("segmentation")
    store.forget("tracked", range(store.n_frames))  # an earlier run's, if any
    store.set_lineage(lineage)
    for t in range(store.n_frames):
        store.put("tracked", t, labels[t], source=int(sources[t]))
        yield Progress("write", t + 1, store.n_frames)
