"""``segment`` of one movie or of many, resumable, on this machine or a dask cluster.

One movie (:func:`segment_movie`, then :func:`finish_movie`): its frames are segmented into a
store on disk (:mod:`.framewise`; on a cluster, runs of frames go to the workers,
:mod:`.distributed`), tracked, and written as a CTC result folder and, when asked, as an
OME-Zarr image with the label movies. The store is the run's progress: without ``--zarr`` it
is a sibling of the result folder, ``<out>.unfinished.zarr``, removed once the result is written;
a stopped run leaves it, and ``resume`` goes on from it.

Many movies (:func:`run_batch`): each movie is one task that runs the single-movie path where
it lands (a worker process, or here one after the other) and writes its own results, so a
batch result equals the movies segmented one by one.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import InputError, OutputExistsError

__all__ = [
    "MovieJob",
    "MovieResult",
    "drop_progress",
    "finish_movie",
    "movie_name",
    "partial_store_path",
    "prepare_store",
    "run_batch",
    "run_settings",
    "segment_movie",
]


def partial_store_path(out: str | os.PathLike) -> Path:
    """Where a run that writes ``out`` keeps its frames until it is done."""
    out = Path(out)
    return out.with_name(out.name + ".unfinished.zarr")


def run_settings(config: Any, model: Any, inputs: Sequence[Any], version: str) -> dict:
    """The ``settings.json`` of a run: program, inputs, model (with its fingerprint), every
    parameter; enough to rerun it (``--settings``)."""
    from .embedding_store import model_fingerprint

    return {
        "program": "napari-cosine-embed segment",
        "version": version,
        "inputs": [str(p) for p in inputs],
        "model": {
            "name": model.name,
            "path": model.path,
            "fingerprint": model_fingerprint(model),
            "record": {k: model.record.get(k) for k in ("created", "steps", "data", "base")},
        },
        "parameters": config.to_dict(),
    }


@dataclass
class MovieJob:
    """One movie to segment: where it is read from and written to, and how.

    ``zarr``: also write an OME-Zarr image there (it then holds the run's progress too);
    ``resume``: go on from a stopped run's store; ``overwrite``: replace existing results.
    """

    input: Path
    out: Path
    zarr: Path | None = None
    resume: bool = False
    overwrite: bool = False
    settings_extra: dict = field(default_factory=dict)

    @property
    def store_path(self) -> Path:
        return self.zarr if self.zarr is not None else partial_store_path(self.out)


@dataclass
class MovieResult:
    """A segmented movie, before (:func:`segment_movie`) or after (:func:`finish_movie`) its
    results are written."""

    job: MovieJob
    result: Any
    store: Any
    settings: dict
    n_frames: int
    notes: list[str] = field(default_factory=list)


def _frames_note(store: Any) -> str:
    done = int(store.done("segmentation").sum())
    return f"{done} of {store.n_frames} frames"


def prepare_store(job: MovieJob, movie: Any, identity: dict, *, pixel_size=None) -> tuple:
    """The store a job runs in: a new one, or (``resume``) the stopped run's.

    Returns ``(store, note)``. Refuses, before any work, a store that exists when not resuming
    or overwriting, and one made by another run when resuming.
    """
    from .io.ome_zarr import LabelMovieStore

    path = job.store_path
    note = None
    if path.exists() or path.is_symlink():
        if job.resume:
            store = LabelMovieStore.open(path, identity=identity)
            return store, f"resuming from {path}: {_frames_note(store)} already done"
        if not job.overwrite:
            if job.zarr is None:
                try:
                    held = _frames_note(LabelMovieStore.open(path))
                except InputError:
                    held = "the frames"
                raise OutputExistsError(
                    f"{path} holds {held} of a run that stopped part-way: pass --resume to go "
                    "on from it, or --overwrite to start over"
                )
            raise OutputExistsError(f"--zarr {path} already exists; pass --overwrite to replace it")
        try:
            LabelMovieStore.open(path)  # only a store this program made is ever deleted
        except InputError:
            raise OutputExistsError(
                f"{path} exists and is not a segment store; refusing to replace it (choose "
                "another --zarr path)"
            ) from None
        shutil.rmtree(path)
    elif job.resume:
        note = f"nothing to resume at {path}: starting from the first frame"
    left = partial_store_path(job.out)
    if job.zarr is not None and left.exists():
        note = "; ".join(filter(None, [note, (
            f"{left} (a stopped run without --zarr) is not used by this run; delete it, or "
            "rerun without --zarr and with --resume to go on from it"
        )]))  # fmt: skip
    store = LabelMovieStore.create(
        path,
        movie.shape[0],
        tuple(movie.shape[-2:]),
        identity=identity,
        image_dtype=movie.dtype if job.zarr is not None else None,
        pixel_size=pixel_size,
        name=movie_name(job.input),
    )
    return store, note


def segment_movie(
    job: MovieJob,
    config: Any,
    *,
    model: Any,
    version: str,
    threads: Any = None,
    pins: Sequence[Any] = (),
    client: Any = None,
    frames_per_task: int = 20,
    on_note: Callable[[str], None] | None = None,
) -> Generator[Any, None, MovieResult]:
    """Segment and track one movie into its store (nothing is written to ``job.out`` yet).

    ``client``: a dask.distributed client to send runs of frames to; else here. Yields
    Progress; returns a :class:`MovieResult` for :func:`finish_movie`.
    """
    from .framewise import run_framewise, run_identity
    from .io import read_any
    from .io.pixel_size import read_pixel_size
    from .pipeline import model_input

    if job.out.exists() and not (job.overwrite or (job.resume and job.store_path.exists())):
        raise OutputExistsError(f"{job.out} already exists; pass --overwrite to replace it")
    read = read_any(job.input, lazy=True)
    movie = read.image
    if movie.ndim != 3:
        raise InputError(f"{job.input}: a single 2D image cannot be tracked; pass --no-track")
    if config.tracking != "overlap":
        raise InputError("a resumable segment tracks by overlap linking (--tracking overlap)")
    config = config.for_model(model)
    if config.device is not None:  # an absent GPU is refused before anything is written
        from .device import resolve_device

        model = model.to(resolve_device(config.device))
    config, size, _ = model_input(movie, config, model)  # the diameter, once, as a number
    notes = [size.describe()]
    identity = run_identity([job.input], movie, model, config)
    pixel_size = read_pixel_size(job.input)  # None where the file records none
    store, note = prepare_store(job, movie, identity, pixel_size=pixel_size)
    if note:
        notes.append(note)
    for text in notes:
        if on_note is not None:
            on_note(text)
    if client is None:
        gen = run_framewise(
            movie, config, store, model=model, threads=threads, pins=pins,
            copy_image=job.zarr is not None,
        )  # fmt: skip
    else:
        from .distributed import run_distributed

        gen = run_distributed(
            job.input, config, client, frames_per_task=frames_per_task, pins=pins, store=store,
            copy_image=job.zarr is not None,
        )  # fmt: skip
    result = yield from gen
    settings = run_settings(config, model, [job.input], version) | job.settings_extra
    return MovieResult(job, result, store, settings, movie.shape[0], notes)


def finish_movie(
    done: MovieResult, *, out: Path | None = None, cleanup: bool = True
) -> Generator[Any, None, Path]:
    """Write a segmented movie's results: the CTC folder (at ``out``, default the job's), and
    the tracked labels into its OME-Zarr; then (``cleanup``) drop the unfinished store
    (:func:`drop_progress`). Yields Progress."""
    from .framewise import write_tracked
    from .io.ctc import write_ctc_result

    job, result = done.job, done.result
    out = job.out if out is None else out
    text = json.dumps(done.settings, indent=2, default=str) + "\n"
    write_ctc_result(
        out,
        result.labels,
        result.lineage,
        overwrite=job.overwrite or job.resume,
        extra_files={"settings.json": text},
    )
    if job.zarr is not None:
        yield from write_tracked(done.store, result.labels, result.lineage)
        (job.zarr / "settings.json").write_text(text)
    if cleanup:
        drop_progress(done)
    return out


def drop_progress(done: MovieResult) -> None:
    """Remove a finished run's ``OUT.unfinished.zarr`` (a ``--zarr`` store is an output)."""
    if done.job.zarr is None:
        shutil.rmtree(done.store.path, ignore_errors=True)


def _movie_task(job: MovieJob, config: Any, version: str, threads: int) -> dict[str, Any]:
    """One movie of a batch, start to finish, where it lands (a worker, or here)."""
    import torch

    from .distributed import _model

    if job.resume and job.out.exists() and not job.store_path.exists():
        return {
            "input": str(job.input),
            "out": str(job.out),
            "skipped": "its result exists and it has no stopped run to resume (not checked "
            "against these settings; pass --overwrite to redo it)",
        }
    if threads:
        torch.set_num_threads(int(threads))
    model = _model(config.model, threads or torch.get_num_threads())
    notes: list[str] = []
    gen = segment_movie(job, config, model=model, version=version, on_note=notes.append)
    done = _drain(gen)
    _drain(finish_movie(done))
    lineage = done.result.lineage
    return {
        "input": str(job.input),
        "out": str(job.out),
        "frames": done.n_frames,
        "tracks": len(lineage),
        "notes": notes + list(done.result.warnings),
    }


def _drain(gen: Generator) -> Any:
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


def run_batch(
    jobs: Sequence[MovieJob],
    config: Any,
    *,
    version: str,
    client: Any = None,
    threads_per_task: int = 1,
) -> Generator[Any, None, list[dict[str, Any]]]:
    """Segment many movies, one task per movie (on ``client``'s workers, or here in turn).

    A movie that fails does not stop the others: its row holds ``error``. Yields
    ``Progress("batch", done, total)``; returns a row per movie, in the order given.
    """
    from .pipeline import Progress

    names = [str(job.out) for job in jobs]
    if len(set(names)) != len(names):
        raise InputError("two movies would be written to the same result folder")
    rows: list[dict[str, Any] | None] = [None] * len(jobs)
    yield Progress("batch", 0, len(jobs))
    if client is None:
        for i, job in enumerate(jobs):
            rows[i] = _attempt(_movie_task, job, config, version, 0)
            yield Progress("batch", i + 1, len(jobs))
        return rows  # type: ignore[return-value]
    from distributed import as_completed

    futures = {
        client.submit(_attempt, _movie_task, job, config, version, threads_per_task, pure=False): i
        for i, job in enumerate(jobs)
    }
    for finished, future in enumerate(as_completed(futures), start=1):
        rows[futures[future]] = future.result()
        yield Progress("batch", finished, len(jobs))
    return rows  # type: ignore[return-value]


def _attempt(task: Callable, job: MovieJob, *args: Any) -> dict[str, Any]:
    """``task(job, ...)``, any failure turned into a row that says why (one movie's failure
    must not stop the others)."""
    try:
        return task(job, *args)
    except (InputError, OutputExistsError) as exc:
        return {"input": str(job.input), "out": str(job.out), "error": str(exc)}
    except Exception as exc:
        why = f"{type(exc).__name__}: {exc}"
        return {"input": str(job.input), "out": str(job.out), "error": why}


def movie_name(path: str | os.PathLike) -> str:
    """A result name for a movie: the file's stem, or for a CTC sequence folder
    ``<dataset>_<sequence>`` (``Fluo-N2DH-SIM+/02`` -> ``Fluo-N2DH-SIM+_02``)."""
    path = Path(path)
    if path.is_dir() and path.suffix.lower() != ".zarr":
        return f"{path.resolve().parent.name}_{path.name}"
    return path.stem
