"""``segment`` frame by frame into a store (resumable), on one movie or many, here or on a
dask cluster: the command-line side of :mod:`..core.batch`."""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

from .. import __version__
from ..core.errors import InputError
from ._pipeline import ProgressPrinter, _drive, _inputs, _rescue, _warn


def _on_cluster(args: argparse.Namespace) -> bool:
    return bool(args.workers or args.scheduler or args.cluster)


def _framewise(args: argparse.Namespace, config) -> bool:
    """Whether ``segment`` runs frame by frame into a store (resumable): always, except with an
    embedding cache or pair tracking, which need every frame's embedding at once."""
    return args.cache is None and config.tracking == "overlap"


def _check_resumable(args: argparse.Namespace, config) -> None:
    if not config.track and (args.resume or args.zarr):
        raise InputError("--resume and --zarr go with tracking; they cannot go with --no-track")
    if config.track and not _framewise(args, config):
        if args.resume or args.zarr:
            what = "--cache" if args.cache is not None else "--tracking pairs"
            raise InputError(
                f"--resume and --zarr run frame by frame; {what} needs every frame's embedding "
                "at once (with --cache, a rerun reuses the cached embeddings instead)"
            )
        if _on_cluster(args) and args.cache is not None:
            raise InputError("--cache is not used on a cluster: give either --cache or a cluster")
        if _on_cluster(args):
            raise InputError("on a cluster, segment tracks by overlap linking (--tracking overlap)")


@contextlib.contextmanager
def _client(args: argparse.Namespace):
    """A dask.distributed client for ``--workers/--scheduler/--cluster``, or None."""
    if not _on_cluster(args):
        yield None
        return
    from ..core.distributed import connect

    client, cluster = connect(
        scheduler=args.scheduler,
        cluster=args.cluster,
        workers=args.workers or 2,
        config_file=args.cluster_config,
    )
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _note(text: str) -> None:
    with contextlib.suppress(OSError, ValueError):  # a note: a full stderr must not stop work
        print(text, file=sys.stderr, flush=True)


def _segment_framewise(args, config, model, pins, notes, progress, threads, tic) -> int:
    """One movie, frame by frame into a store (resumable), here or on a cluster."""
    from ..core.batch import MovieJob, drop_progress, finish_movie, segment_movie

    out = Path(args.out)
    job = MovieJob(
        Path(args.input[0]),
        out,
        zarr=Path(args.zarr) if args.zarr else None,
        resume=args.resume,
        overwrite=args.overwrite,
        settings_extra={"pins": str(args.pins)} if args.pins else {},
    )
    with _client(args) as client:
        gen = segment_movie(
            job, config, model=model, version=__version__, threads=threads, pins=pins,
            client=client, frames_per_task=args.frames_per_task, on_note=_note,
        )  # fmt: skip
        try:
            done = _drive(gen, progress)
        except KeyboardInterrupt:
            _say_stopped(job.store_path)
            raise

    def write(path: Path) -> None:
        _drive(finish_movie(done, out=path, cleanup=False), lambda *a: None)

    try:
        write(out)
    except OSError as exc:
        _rescue(write, out, exc)
    except KeyboardInterrupt:
        _say_stopped(job.store_path)
        raise
    # the result is complete: a signal from now on must not report the run as stopped
    with _signals_ignored():
        drop_progress(done)
    result = done.result
    _warn("segment", [*filter(None, notes), *result.warnings])
    n_div = int((result.lineage[:, 3] > 0).sum()) if len(result.lineage) else 0
    where = "on the cluster" if _on_cluster(args) else ""
    seconds = ", ".join(f"{k} {v:.1f} s" for k, v in result.seconds.items() if v)
    also = f" and {job.zarr}" if job.zarr else ""
    print(
        f"wrote {out}{also}: {done.n_frames} frames, {len(result.lineage)} tracks, {n_div} "
        f"daughter tracks ({seconds or where}; {time.perf_counter() - tic:.1f} s in all)"
    )
    return 0


@contextlib.contextmanager
def _signals_ignored():
    """Ctrl-C and SIGTERM are ignored inside (from the main thread; elsewhere, no change)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in before.items():
            if handler is not None:  # None: a handler not set from Python, left as it is
                signal.signal(sig, handler)


def _say_stopped(store: Path) -> None:
    """After Ctrl-C or SIGTERM: what was kept, and how to go on."""
    from ..core.io.ome_zarr import LabelMovieStore

    with contextlib.suppress(Exception):
        kept = LabelMovieStore.open(store)
        done = int(kept.done("segmentation").sum())
        _note(
            f"stopped: {done} of {kept.n_frames} frames are kept in {store}; the same command "
            "with --resume goes on from there"
        )


def _segment_batch(args: argparse.Namespace, config) -> int:
    """Several movies: one task per movie, each written to ``--out/<name>_RES``."""
    from ..core.batch import MovieJob, movie_name, run_batch
    from ..core.io.outputs import check_output

    if args.pins:
        raise InputError("--pins belongs to one movie; it cannot go with several movies")
    if not _framewise(args, config):
        raise InputError("several movies run frame by frame: --cache and --tracking pairs are "
                         "for one movie")  # fmt: skip
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: with several movies, --out is a folder for their results")
    names = [movie_name(p) for p in args.input]
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise InputError(f"several movies are named {', '.join(twice)}: their results collide")
    zarr = Path(args.zarr).resolve() if args.zarr else None
    out = out.resolve()  # the tasks may run in another working directory
    jobs = [
        MovieJob(
            Path(p).resolve(),
            out / f"{name}_RES",
            zarr=zarr / f"{name}.zarr" if zarr else None,
            resume=args.resume,
            overwrite=args.overwrite,
        )
        for p, name in zip(args.input, names, strict=True)
    ]
    flat = []
    for job in jobs:
        check_output(job.out, [("input", p) for p in args.input])
        if job.zarr is not None:
            check_output(job.zarr, [("input", p) for p in args.input], name="--zarr")
        ((_, image),) = _inputs([job.input], True)  # read lazily: its shape, and what is wrong
        if image.ndim != 3:
            flat.append(job.input.name)
    if flat:
        raise InputError(
            f"{', '.join(flat[:3])}{' ...' if len(flat) > 3 else ''}: 2D images, not movies; "
            "to label independent images one by one, pass --no-track"
        )
    from ..core.checkpoint import load_model

    load_model(config.model)  # a wrong model is refused here, not once per movie
    out.mkdir(parents=True, exist_ok=True)
    if zarr is not None:
        zarr.mkdir(parents=True, exist_ok=True)
    tic = time.perf_counter()
    with _client(args) as client:
        rows = _drive(
            run_batch(jobs, config, version=__version__, client=client), ProgressPrinter()
        )
    failed = [row for row in rows if "error" in row]
    skipped = [row for row in rows if "skipped" in row]
    for row in rows:
        if "error" in row:
            _note(f"{row['input']}: failed: {row['error']}")
        elif "skipped" in row:
            _note(f"{row['input']}: skipped: {row['skipped']}")
        else:
            _warn("segment", [f"{row['input']}: {w}" for w in row.get("notes", [])[1:]])
    also = f", skipped {len(skipped)}" if skipped else ""
    print(
        f"wrote {len(rows) - len(failed) - len(skipped)} of {len(rows)} movies to {out}{also} "
        f"({time.perf_counter() - tic:.1f} s)"
    )
    return 1 if failed else 0
