"""``segment`` on a dask.distributed cluster, with the single-machine result.

A movie is cut into runs of frames aligned to the model's state window (``state_window``
frames, each warmed up on the ``warmup`` frames before it, as a whole run does: see
:func:`~.embed.embedding_history`), so a run embedded on its own equals the same frames of a
whole-movie run. One task per run: a worker reads its frames from the movie's path, embeds them
with the model it loaded once from its path (nothing large goes through the scheduler: the
movie and the model travel as paths, the labels come back compressed, a few tens of kB per
frame), rounds the embeddings as the single-machine embedding store does, groups each frame,
and links each pair of consecutive frames of its run by overlap (:func:`~.tracking.link_pair`:
the overlaps and the assignment, most of the linking's work). The client puts the label frames
in order and finishes the tracks in one serial pass (:func:`~.tracking.link_labels` with those
links: it links only the pairs that straddle two runs, moves late divisions back and cleans
up; kept compressed, it is light: :mod:`.tracking.frames`). The pair links are those the
serial pass would compute itself, so the result is the single-machine one.

dask.distributed is imported only here, and only when a cluster is asked for.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError

__all__ = [
    "JOBQUEUE",
    "FrameRuns",
    "connect",
    "frame_runs",
    "make_cluster",
    "run_distributed",
    "segment_run",
]

#: Models loaded in this (worker) process, by their source: loaded once, used by every task.
_MODELS: dict[str, Any] = {}


@dataclass(frozen=True)
class FrameRuns:
    """The runs of frames one task each embeds and groups."""

    runs: list[range]

    def __len__(self) -> int:
        return len(self.runs)


def frame_runs(n_frames: int, *, state_window: int | None, per_task: int) -> FrameRuns:
    """Cut ``n_frames`` into runs of about ``per_task`` frames, starting at multiples of
    ``state_window`` (the frames a run embedded alone gets exactly right).

    Examples
    --------
    >>> frame_runs(12, state_window=5, per_task=6).runs
    [range(0, 10), range(10, 12)]
    """
    if state_window is None:
        raise InputError(
            "a movie embedded with an unbounded state history (state_window None) cannot be "
            "split into independent runs; use the default state window"
        )
    if per_task < 1:
        raise InputError(f"frames per task must be >= 1, got {per_task}")
    step = max(int(state_window), int(state_window) * round(per_task / int(state_window)))
    return FrameRuns([range(a, min(a + step, n_frames)) for a in range(0, n_frames, step)])


def _model(source: str, threads: int) -> Any:
    import torch

    from .checkpoint import load_model

    torch.set_num_threads(max(1, int(threads)))
    if source not in _MODELS:
        _MODELS[source] = load_model(source)
    return _MODELS[source]


def segment_run(
    path: str, config: Any, frames: Sequence[int], *, threads: int = 1
) -> tuple[list[int], list[bytes], list[str], dict[int, int], list[int], dict[int, dict]]:
    """Embed and group ``frames`` of the movie at ``path`` (runs on a worker).

    Returns the frames, each frame's labels compressed (:class:`~.tracking.frames.FrameStack`),
    their dtypes, the count of non-finite pixels filled per frame, each input frame's hash
    and of the frames its embedding depends on (:class:`~.framewise.HistoryHashes`, which the
    client's store records), and the overlap links of each pair ``t -> t + 1`` of these
    frames (:func:`~.tracking.link_pair`, ``{t: links}``), so that the client's linking pass
    finds them done (empty when the config does not track by overlap).
    """
    from .embed import iter_embed
    from .embedding_store import EmbeddingStore
    from .framewise import HistoryHashes
    from .io import read_any
    from .pipeline import group_frame, link_options, model_input, model_space, rescale_labels
    from .tracking import link_pair
    from .tracking.frames import FrameStack

    model = _model(config.model, threads)
    if config.device is not None:  # the worker's GPU, when it has one ("auto")
        from .device import resolve_device

        model = model.to(resolve_device(config.device))
    movie = read_any(path, lazy=True).image
    movie = movie[None] if movie.ndim == 2 else movie
    out_shape = tuple(movie.shape[-2:])
    config = config.for_model(model)
    config, size, view = model_input(movie, config, model)
    grouping = model_space(config, size.scale)
    store = EmbeddingStore(movie.shape[0], model.config.embedding_dim, tuple(view.shape[-2:]))
    stack = FrameStack(out_shape)
    done, nonfinite, hashes, history = [], {}, [], HistoryHashes(movie, config)
    links: dict[int, dict] = {}
    linking = config.track and config.tracking == "overlap"
    options = link_options(config)
    pair = {k: options[k] for k in ("min_iou", "min_child_overlap")}
    previous = None
    for result in iter_embed(model, view, frames=frames, **config.embed_options()):
        if result.nonfinite:
            nonfinite[result.t] = result.nonfinite
        store.put(result.t, result.embedding, result.foreground)  # the store's rounding
        emb, fg = store.get(result.t)
        store.forget([result.t])
        frame = rescale_labels(group_frame(emb, fg, grouping), out_shape)
        dtype = np.uint16 if frame.max(initial=0) <= np.iinfo(np.uint16).max else np.uint32
        frame = frame.astype(dtype, copy=False)
        stack.append(frame)
        if linking and done and done[-1] == result.t - 1:
            links[result.t - 1] = link_pair(previous, frame, **pair)
        previous = frame
        done.append(result.t)
        hashes.append(history(result.t))
        del result, emb, fg  # before the next forward pass, the peak of the task
    packed = [stack.packed(i) for i in range(len(stack))]
    blobs, dtypes = [blob for blob, _ in packed], [dtype for _, dtype in packed]
    return done, blobs, dtypes, nonfinite, hashes, links


def run_distributed(
    path: str | os.PathLike,
    config: Any,
    client: Any,
    *,
    frames_per_task: int = 20,
    threads_per_task: int = 1,
    pins: Sequence[Any] = (),
    store: Any = None,
    copy_image: bool = False,
) -> Generator[Any, None, Any]:
    """Segment and track the movie at ``path`` on a dask.distributed ``client``.

    Parameters
    ----------
    path : path-like
        The movie, readable by :func:`~.io.read_any` on every worker (a shared file system).
    config : PipelineConfig
        As ``segment`` runs it: the diameter already resolved to pixels
        (:func:`~.pipeline.model_input`), so that every worker rescales alike.
    client : distributed.Client
    frames_per_task : int
        About how many frames one task embeds and groups (rounded to the state window).
    threads_per_task : int
        torch threads per task.
    pins : sequence of Pin
        Links to keep when tracking.
    store : LabelMovieStore, optional
        Where each frame's labels are written as they come back (:mod:`.framewise`): a stopped
        run's store is resumed, its finished frames checked against the movie and kept, and
        only the missing frames are sent out. Without one, the labels are kept in memory.
    copy_image : bool
        Also copy each input frame into the store's image.

    Yields
    ------
    Progress
        ``check`` (a resumed store's frames), ``segment``: tasks done of all; then ``track``.

    Returns
    -------
    PipelineResult
        Labels relabelled frame by frame as read, as with ``run_pipeline(lazy=True)``.
    """
    from distributed import as_completed

    from .framewise import HistoryHashes, load_segmentation, resume_warnings, verify_done
    from .io import read_any
    from .pipeline import PipelineResult, Progress, _missed, _nonfinite_warning, link_options
    from .tracking import link_labels
    from .tracking.frames import FrameStack

    if not config.track or config.tracking != "overlap":
        raise InputError("on a cluster, segment tracks by overlap linking (--tracking overlap)")
    path = str(Path(path))
    movie = read_any(path, lazy=True).image
    movie = movie[None] if movie.ndim == 2 else movie
    n, shape = movie.shape[0], tuple(movie.shape[-2:])
    warnings: list[str] = []
    done = np.zeros(n, bool)
    if store is not None:
        if (store.n_frames, *store.shape) != (n, *shape):
            raise InputError(f"the store holds {store.n_frames} frames of {store.shape}")
        kept = int(store.done("segmentation").sum())
        hashes = HistoryHashes(movie, config)
        changed = (yield from verify_done(store, hashes)) if kept else []
        warnings += resume_warnings(kept, changed, n)
        done = store.done("segmentation")
    runs = frame_runs(n, state_window=config.state_window, per_task=frames_per_task)
    todo = [[t for t in run if not done[t]] for run in runs.runs]
    futures = [
        client.submit(segment_run, path, config, frames, threads=threads_per_task, pure=False)
        for frames in todo
        if frames
    ]
    packed: dict[int, tuple[bytes, str]] = {}
    nonfinite: dict[int, int] = {}
    links: dict[int, dict] = {}  # pairs t -> t + 1 the workers linked
    n_tasks = len(futures)
    # only as_completed holds the futures: each result is let go once written, so the
    # client (and the scheduler beside it) does not keep every frame of the movie
    pending, futures = as_completed(futures), None
    yield Progress("segment", 0, n_tasks)
    for finished, future in enumerate(pending, start=1):
        frames, blobs, dtypes, filled, hashes, found = future.result()
        future.release()
        nonfinite.update(filled)
        links.update(found)
        if store is None:
            packed.update(zip(frames, zip(blobs, dtypes, strict=True), strict=True))
        else:  # on disk at once: a stop after this keeps these frames
            for t, blob, dtype, source in zip(frames, blobs, dtypes, hashes, strict=True):
                one = FrameStack(shape)
                one.append_packed(blob, dtype)
                if copy_image:
                    store.put_image(t, movie[t])
                store.put("segmentation", t, one[0], source=source)
        del future, blobs
        yield Progress("segment", finished, n_tasks)
    if store is not None:
        labels = load_segmentation(store)
    else:
        if sorted(packed) != list(range(n)):
            raise RuntimeError(f"the cluster returned frames {sorted(packed)[:5]}... of {n}")
        labels = FrameStack(shape)
        for t in range(n):
            labels.append_packed(*packed.pop(t))
    yield Progress("track", 0, 1)
    # the workers linked the pairs inside their runs; only the pairs across runs (and those
    # of frames a resumed store kept) are linked here, then split-back and the clean-up
    tracked = link_labels(labels, **link_options(config), pins=pins, lazy=True, pair_links=links)
    yield Progress("track", 1, 1)
    warnings += _missed(tracked)
    warnings += _nonfinite_warning(nonfinite)
    return PipelineResult(
        tracked.labels, tracked.lineage, tracked.tracks, tracked.graph, {}, warnings, None
    )


#: The batch systems ``--cluster`` starts workers on, through dask-jobqueue.
JOBQUEUE = {"slurm": "SLURMCluster", "pbs": "PBSCluster", "lsf": "LSFCluster"}


def make_cluster(kind: str, *, workers: int, config_file: str | os.PathLike | None = None) -> Any:
    """A cluster to run on: ``"local"`` (worker processes on this machine) or a batch system.

    Parameters
    ----------
    kind : {"local", "slurm", "pbs", "lsf"}
    workers : int
        Worker processes (local), or jobs to submit (batch; each job one worker).
    config_file : path-like, optional
        For a batch system: a YAML file of dask-jobqueue settings (``jobqueue: slurm: cores:
        ..., memory: ..., queue: ..., walltime: ...``), read into dask's configuration first;
        without it, dask's own configuration (``~/.config/dask/jobqueue.yaml``) is used.

    Returns
    -------
    distributed.LocalCluster or dask_jobqueue.JobQueueCluster
        Not yet scaled for a batch system: ``cluster.job_script()`` shows what would be
        submitted; :func:`connect` scales it.
    """
    if workers < 1:
        raise InputError(f"--workers must be >= 1, got {workers}")
    if kind == "local":
        from distributed import LocalCluster

        return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True)
    if kind not in JOBQUEUE:
        raise InputError(f"--cluster must be local, {', '.join(JOBQUEUE)}; got {kind!r}")
    try:
        import dask
        import dask_jobqueue
        import yaml
    except ImportError as exc:
        raise InputError(
            f"--cluster {kind} needs dask-jobqueue: pip install 'napari-cosine-embed[distributed]'"
        ) from exc
    if config_file is not None:
        try:
            settings = yaml.safe_load(Path(config_file).read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise InputError(f"{config_file}: cannot read the cluster settings: {exc}") from exc
        dask.config.update(dask.config.config, settings or {}, priority="new")
    try:
        return getattr(dask_jobqueue, JOBQUEUE[kind])()
    except ValueError as exc:  # e.g. cores or memory not configured
        raise InputError(f"--cluster {kind}: {exc} (set it in the --cluster-config file)") from exc


def connect(
    *, scheduler: str | None, cluster: str | None, workers: int, config_file=None
) -> tuple[Any, Any]:
    """``(client, cluster)`` for ``--scheduler`` (an address or a scheduler file) or
    ``--cluster``; the cluster is None for an existing scheduler. Close both when done."""
    from distributed import Client

    if scheduler is not None:
        if Path(scheduler).is_file():
            return Client(scheduler_file=scheduler), None
        return Client(scheduler), None
    made = make_cluster(cluster or "local", workers=workers, config_file=config_file)
    if cluster not in (None, "local"):
        made.scale(jobs=workers)
    return Client(made), made
