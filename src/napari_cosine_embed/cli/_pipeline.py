"""Pipeline commands: ``segment`` (embed, group, track) and ``track`` (link existing labels)."""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import tempfile
import time
from dataclasses import fields
from pathlib import Path

from .. import __version__
from ..core.errors import InputError
from . import _validate

#: Embeddings of a movie up to this size (float16 bytes) stay in memory; larger ones go to disk.
MEMORY_CACHE_LIMIT = 1 << 30

# option name on the command line -> PipelineConfig field
_OPTIONS = {
    "model": "model",
    "diameter": "diameter",
    "device": "device",
    "grouping": "grouping",
    "min_samples": "min_samples",
    "min_cluster_size": "min_cluster_size",
    "coord_weight": "coord_weight",
    "epsilon": "cluster_selection_epsilon",
    "bandwidth": "bandwidth",
    "foreground_threshold": "foreground_threshold",
    "min_size": "min_size",
    "split_depth": "split_depth",
    "object_size": "object_size",
    "tile_size": "tile_size",
    "tracking": "tracking",
    "min_track_length": "min_track_length",
    "max_gap": "max_gap",
    "split_back": "split_back",
}


class ProgressPrinter:
    """Progress on stderr: one rewritten line on a terminal, a line every 10 s otherwise."""

    def __init__(self, stream=None, every: float = 10.0) -> None:
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.every, self._last, self._stage = every, 0.0, None
        # a stage starts when the previous one's last report came (or when we were made)
        self._start = self._previous = time.perf_counter()

    def __call__(self, stage: str, done: int, total: int) -> None:
        # progress is a courtesy: a full or closed stderr must not stop the work
        with contextlib.suppress(OSError, ValueError):
            self._report(stage, done, total)

    def _report(self, stage: str, done: int, total: int) -> None:
        now = time.perf_counter()
        if stage != self._stage:
            if self.tty and self._stage is not None:
                self.stream.write("\n")
            self._stage, self._start, self._last = stage, self._previous, 0.0
        self._previous = now
        finished = done >= total
        if not self.tty and not finished and now - self._last < self.every:
            return
        self._last = now
        rate = (now - self._start) / max(done, 1)
        eta = rate * (total - done)
        line = f"{stage}: {done}/{total}  {rate:.2f} s each  eta {eta:.0f} s"
        if self.tty:
            self.stream.write("\r" + line.ljust(60) + ("\n" if finished else ""))
            if finished:
                self._stage = None
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}


def _read_settings(path: str) -> dict:
    """The parameters of a ``settings.json``, each checked as :class:`PipelineConfig` does.

    The file is either a ``segment`` result's settings (parameters under ``"parameters"``) or
    an object of parameters. A problem is reported as ``--settings FILE: ...``, before any
    input is read: the command-line options were checked as they were parsed, so what is
    still wrong comes from the file.
    """
    from ..core.pipeline import PipelineConfig

    where = f"--settings {path}"
    try:
        saved = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{where}: cannot read it ({exc})") from exc
    parameters = saved.get("parameters", saved) if isinstance(saved, dict) else saved
    if not isinstance(parameters, dict):
        what = "the file" if parameters is saved else '"parameters"'
        kind = _JSON_TYPES.get(type(parameters), "null" if parameters is None else "a number")
        raise InputError(f"{where}: {what} must be a JSON object of parameters, not {kind}")
    try:
        PipelineConfig.from_dict(parameters)
    except InputError as err:
        raise InputError(f"{where}: {err}") from None
    return parameters


def _config(args: argparse.Namespace):
    from ..core.pipeline import PipelineConfig

    values = {}
    if args.settings is not None:
        values.update(_read_settings(args.settings))
    for option, field in _OPTIONS.items():
        value = getattr(args, option, None)
        if value is not None:
            values[field] = None if value == "off" else value
    if args.no_track:
        values["track"] = False
    if getattr(args, "invert", False):
        values["invert"] = True
    return PipelineConfig.from_dict(values)


IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg")


def _read_2d(path: Path):
    if path.suffix.lower() in (".png", ".jpg", ".jpeg"):
        import imageio.v3 as iio

        try:
            image = iio.imread(path)
        except Exception as exc:  # imageio's plugins raise many types for a damaged file
            raise InputError(
                f"{path}: not a readable {path.suffix[1:].upper()} image: the file is corrupt, "
                f"truncated or of another format ({type(exc).__name__}: {exc})"
            ) from None
        return path.stem, image[..., :3].mean(-1) if image.ndim == 3 else image
    from ..core.io import read_any

    result = read_any(path)
    return result.name, result.image


def _inputs(paths: list[Path], no_track: bool) -> list[tuple[str, object]]:
    """``[(name, image)]`` to process: one movie, or (with ``no_track``) independent images.

    A folder that is neither a CTC sequence nor a zarr store stands for the images in it.
    """
    from ..core.io import is_ctc_sequence_folder, read_any

    files, expanded = [], False
    for path in paths:
        if path.is_dir() and path.suffix.lower() != ".zarr" and not is_ctc_sequence_folder(path):
            if not no_track:
                raise InputError(
                    f"{path}: not a CTC sequence folder or zarr store; "
                    "to label the 2D images in it one by one, pass --no-track"
                )
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise InputError(f"{path}: no images ({', '.join(IMAGE_SUFFIXES)}) in it")
            files += found
            expanded = True
        else:
            files.append(path)
    if len(files) == 1 and not expanded and files[0].suffix.lower() in (".png", ".jpg", ".jpeg"):
        if not no_track:
            raise InputError(f"{files[0]}: a single 2D image cannot be tracked; pass --no-track")
        return [_read_2d(files[0])]
    if len(files) == 1 and not expanded:
        result = read_any(files[0], lazy=True)
        return [(result.name, result.image)]
    if not no_track:
        raise InputError(
            f"{len(files)} inputs are independent images: pass --no-track to label each one, "
            "or give one movie (a TIFF stack, CTC folder, video or zarr) to track"
        )
    out = [_read_2d(path) for path in files]
    for (_, image), path in zip(out, files, strict=True):
        if image.ndim != 2:
            raise InputError(
                f"{path}: each of several inputs must be a 2D image, got {image.shape}"
            )
    names = [name for name, _ in out]
    if len(set(names)) != len(names):
        raise InputError("several inputs have the same name: their label files would collide")
    return out


def _settings(config, model, inputs) -> dict:
    from ..core.batch import run_settings

    return run_settings(config, model, inputs, __version__)


def _drive(gen, progress: ProgressPrinter):
    while True:
        try:
            step = next(gen)
        except StopIteration as stop:
            return stop.value
        progress(step.stage, step.done, step.total)


def _reads(args: argparse.Namespace) -> list[tuple[str, str | None]]:
    """Everything ``segment`` reads, by the name the user gave it (for :func:`check_output`)."""
    reads = [("input", p) for p in args.input]
    reads.append(("--settings file", args.settings))
    if args.model is not None and Path(args.model).exists():
        reads.append(("--model file", args.model))
    return reads


def _check_paths(args: argparse.Namespace, *, kind: str = "folder") -> None:
    """Refuse, before any work, an output or cache that could destroy what the run reads."""
    from ..core.io.outputs import check_output, check_writable

    reads = _reads(args)
    cache = getattr(args, "cache", None)
    zarr = getattr(args, "zarr", None)
    check_output(args.out, [*reads, ("--cache folder", cache), ("--zarr store", zarr)])
    if cache is not None:
        check_output(cache, [*reads, ("--out folder", args.out)], name="--cache")
    if zarr is not None:
        check_output(zarr, [*reads, ("--out folder", args.out)], name="--zarr")
        check_writable(zarr, kind="folder", overwrite=args.overwrite or args.resume, name="--zarr")
    # a stopped run may have written its result folder before it was stopped: resuming it
    # replaces that folder with the same result
    resuming = getattr(args, "resume", False) and _store_path(args).exists()
    check_writable(args.out, kind=kind, overwrite=args.overwrite or resuming)


def _store_path(args: argparse.Namespace) -> Path:
    from ..core.batch import partial_store_path

    return Path(args.zarr) if getattr(args, "zarr", None) else partial_store_path(args.out)


def _check_model_unchanged(args: argparse.Namespace, model) -> str | None:
    """Compare the model with the one a ``--settings`` file was made with.

    Returns a warning when the user named the model again with ``--model``; raises when the
    model came from the settings file alone, since a rerun "with the same settings" would then
    silently use other weights.
    """
    from ..core.embedding_store import model_fingerprint

    if args.settings is None:
        return None
    try:
        saved = json.loads(Path(args.settings).read_text()).get("model", {})
        before = saved.get("fingerprint") if isinstance(saved, dict) else None
    except (OSError, ValueError, AttributeError):
        return None  # reading the parameters already said what is wrong with the file
    now = model_fingerprint(model)
    if not before or before == now:
        return None
    where = model.path or model.name
    if args.model is None:
        raise InputError(
            f"the model {where} has changed since {args.settings} was written (weights "
            f"{before}, now {now}): the results would not be reproduced; pass --model "
            f"{where} to use it as it is now"
        )
    return f"the model {where} differs from the one {args.settings} was made with ({before})"


def _rescue(write, out: Path, exc: OSError) -> None:
    """After a failed write of a finished result, put it in the temporary folder and say so."""
    import tempfile

    try:
        rescue = Path(tempfile.mkdtemp(prefix=f"{out.name}-rescued-"))
    except OSError as again:
        raise InputError(
            f"cannot write {out} ({exc.strerror or exc}), nor a rescue copy in the temporary "
            f"folder ({again.strerror or again}); the result is lost"
        ) from None
    try:
        write(rescue / out.name)
    except OSError as again:
        shutil.rmtree(rescue, ignore_errors=True)
        raise InputError(
            f"cannot write {out} ({exc.strerror or exc}), nor a rescue copy in {rescue} "
            f"({again.strerror or again}); the result is lost"
        ) from None
    raise InputError(
        f"cannot write {out} ({exc.strerror or exc}); the finished result was saved to "
        f"{rescue / out.name} instead"
    ) from None


def _write_tracks(out: Path, result, settings: str, *, overwrite: bool) -> None:
    """Write a tracked result as a CTC result folder with its settings; rescue it on failure."""
    from ..core.io.ctc import write_ctc_result

    def write(path: Path) -> None:
        extra = {"settings.json": settings}
        write_ctc_result(
            path, result.labels, result.lineage, overwrite=overwrite, extra_files=extra
        )

    try:
        write(out)
    except OSError as exc:
        _rescue(write, out, exc)


def _warn(command: str, warnings) -> None:
    for text in warnings:
        with contextlib.suppress(OSError, ValueError):
            print(f"napari-cosine-embed {command}: warning: {text}", file=sys.stderr)


def _diameter_in_pixels(args: argparse.Namespace) -> None:
    """A ``--diameter`` in microns becomes pixels: with ``--pixel-size``, or the pixel size the
    (first) input file records."""
    from ..core.diameter import parse_diameter
    from ..core.io.pixel_size import read_pixel_size
    from ..core.lengths import physical_length

    text = args.diameter
    if not isinstance(text, str) or physical_length(text) is None:
        return
    pixel_size, where = args.pixel_size, "--pixel-size"
    if pixel_size is None:
        for path in map(Path, args.input):
            first = next(iter(sorted(path.iterdir())), None) if path.is_dir() else path
            if first is not None and (pixel_size := read_pixel_size(first)) is not None:
                where = first.name
                break
    args.diameter = parse_diameter(text, pixel_size=pixel_size)
    note = f"diameter {text} = {args.diameter:.1f} px (pixel size {pixel_size:g} um, {where})"
    with contextlib.suppress(OSError, ValueError):
        print(note, file=sys.stderr, flush=True)


def _cmd_segment(args: argparse.Namespace) -> int:
    from ..core.checkpoint import load_model
    from ..core.embedding_store import EmbeddingStore
    from ..core.io._atomic import atomic_folder
    from ..core.io.tiff import write_labels_tiff
    from ..core.pipeline import cache_ids, model_input, run_pipeline
    from ..core.threads import ThreadGovernor
    from ._segment_runs import (
        _check_resumable,
        _framewise,
        _segment_batch,
        _segment_framewise,
    )

    _diameter_in_pixels(args)
    config = _config(args)
    out = Path(args.out)
    if config.track and len(args.input) > 1:
        return _segment_batch(args, config)
    if args.resume and Path(args.out).exists() and not _store_path(args).exists():
        raise InputError(
            f"{args.out} exists and there is no stopped run to resume ({_store_path(args)}); "
            "pass --overwrite to redo it"
        )
    _check_paths(args)
    _check_resumable(args, config)
    inputs = _inputs([Path(p) for p in args.input], not config.track)
    pins = _pins(args)
    model = load_model(config.model)
    notes = [_check_model_unchanged(args, model)]
    config = config.for_model(model)  # the threshold it will use, in the settings too
    settings = _settings(config, model, args.input)
    text = json.dumps(settings, indent=2, default=str) + "\n"
    progress = ProgressPrinter()
    tic = time.perf_counter()
    threads = ThreadGovernor()  # the cores other processes leave free, re-checked per frame

    if not config.track:
        results = []
        for i, (name, image) in enumerate(inputs):
            # one movie: its frames' progress; several images: one line per image
            each = progress if len(inputs) == 1 else lambda *a: None
            result = _drive(run_pipeline(image, config, model=model, threads=threads), each)
            results.append((name, result.labels))
            notes += [f"{name}: {w}" for w in result.warnings]
            progress("segment", i + 1, len(inputs))

        def write(path: Path) -> None:
            with atomic_folder(path, overwrite=args.overwrite) as tmp:
                for name, labels in results:
                    write_labels_tiff(tmp / f"{name}.tif", labels)
                (tmp / "settings.json").write_text(text)

        try:
            write(out)
        except OSError as exc:
            _rescue(write, out, exc)
        _warn("segment", filter(None, notes))
        print(f"wrote {len(inputs)} label image(s) to {out} in {time.perf_counter() - tic:.1f} s")
        return 0

    ((name, movie),) = inputs
    if movie.ndim != 3:
        raise InputError(f"{name}: a single 2D image cannot be tracked; pass --no-track")
    if _framewise(args, config):
        return _segment_framewise(args, config, model, pins, notes, progress, threads, tic)
    # the diameter (estimated once, here) goes into settings.json as a number
    config, size, view = model_input(movie, config, model)
    with contextlib.suppress(OSError, ValueError):  # a note: a full stderr must not stop work
        print(size.describe(), file=sys.stderr, flush=True)
    settings = _settings(config, model, args.input)
    if args.pins:
        settings["pins"] = str(args.pins)
    text = json.dumps(settings, indent=2, default=str) + "\n"
    n, shape = movie.shape[0], tuple(view.shape[-2:])
    dim = model.config.embedding_dim
    ids = cache_ids(model, view, config)
    with contextlib.ExitStack() as stack:
        cache = args.cache
        if cache is None and n * dim * shape[0] * shape[1] * 2 > MEMORY_CACHE_LIMIT:
            cache = Path(stack.enter_context(tempfile.TemporaryDirectory(
                prefix=".embeddings-", dir=out.parent if out.parent.exists() else None,
            ))) / "cache.zarr"  # fmt: skip
        store = EmbeddingStore(n, dim, shape, path=cache, **ids) if cache else None
        result = _drive(
            # lazy: the labels stay compressed and stream to the result folder, so memory
            # does not grow with the movie's length
            run_pipeline(
                movie, config, model=model, store=store, threads=threads, pins=pins, lazy=True
            ),
            progress,
        )

    _write_tracks(out, result, text, overwrite=args.overwrite)
    _warn("segment", [*filter(None, notes), *result.warnings])
    n_div = int((result.lineage[:, 3] > 0).sum()) if len(result.lineage) else 0
    seconds = ", ".join(f"{k} {v:.1f} s" for k, v in result.seconds.items())
    print(
        f"wrote {out}: {n} frames, {len(result.lineage)} tracks, {n_div} daughter tracks "
        f"({seconds})"
    )
    return 0


def _pins(args: argparse.Namespace) -> list:
    """The ``--pins`` links to keep (a pins JSON file, or a curated tracked folder), or none."""
    if not getattr(args, "pins", None):
        return []
    from ..core.tracking.pins import read_pins

    if getattr(args, "no_track", False):
        raise InputError("--pins keeps links when tracking; it cannot go with --no-track")
    pins = read_pins(Path(args.pins))
    with contextlib.suppress(OSError, ValueError):
        print(f"keeping {len(pins)} pinned link(s) from {args.pins}", file=sys.stderr, flush=True)
    return pins


def _read_label_movie(path: Path):
    from ..core.io import read_any
    from ..core.io.ctc import list_frames, read_ctc_result, read_label_frames
    from ..core.io.tiff import check_label_dtype

    if path.is_dir() and list_frames(path, "mask"):
        if (path / "res_track.txt").exists():
            return read_ctc_result(path)[0]

        frames = list_frames(path, "mask")
        return read_label_frames([frames[t] for t in sorted(frames)])
    image = read_any(path).image
    check_label_dtype(path, image.dtype)
    return image


def _cmd_track(args: argparse.Namespace) -> int:
    import numpy as np

    from ..core.io.outputs import check_output, check_writable
    from ..core.pipeline import PipelineConfig, link_options
    from ..core.tracking import link_labels

    out = Path(args.out)
    check_output(out, [("input", args.labels)])
    check_writable(out, kind="folder", overwrite=args.overwrite)
    labels = _read_label_movie(Path(args.labels))
    pins = _pins(args)
    if labels.ndim != 3 or not np.issubdtype(labels.dtype, np.integer):
        raise InputError(
            f"{args.labels}: need an integer label movie (T, Y, X), got {labels.shape}"
        )
    config = PipelineConfig(
        min_iou=args.min_iou,
        min_track_length=args.min_track_length,
        min_split_frames=args.min_split_frames,
        min_child_ratio=args.min_child_ratio,
        max_gap=args.max_gap,
        split_back=args.split_back,
    )
    options = link_options(config)
    tic = time.perf_counter()
    result = link_labels(np.asarray(labels), **options, pins=pins)
    settings = {"program": "napari-cosine-embed track", "version": __version__}
    settings.update(input=str(args.labels), parameters=options)
    if args.pins:
        settings["pins"] = str(args.pins)
    _write_tracks(out, result, json.dumps(settings, indent=2) + "\n", overwrite=args.overwrite)
    if result.missed_pins:
        _warn("track", [f"{len(result.missed_pins)} pinned link(s) could not be kept"])
    print(f"wrote {out}: {len(result.lineage)} tracks in {time.perf_counter() - tic:.1f} s")
    return 0


def add_commands(sub) -> None:
    from ..core.limits import PIPELINE, Range
    from ..core.pipeline import DEFAULT_FOREGROUND_THRESHOLD, GROUPINGS, TRACKINGS, PipelineConfig

    def field(name: str):
        """The option type of a PipelineConfig field: the range the config checks."""
        return _validate.number(PIPELINE[name])

    defaults = {f.name: f.default for f in fields(PipelineConfig)}
    p = sub.add_parser(
        "segment",
        help="segment and track a movie (or label several 2D images)",
        description="Embed every frame, group pixels into instances and link them into tracks; "
        "writes a CTC result folder (maskNNN.tif, res_track.txt, settings.json). With --no-track "
        "and several 2D images, writes one label TIFF per input named after its stem. Ctrl-C "
        "stops and leaves no output folder.",
    )
    p.add_argument(
        "input", nargs="+", help="CTC sequence folder, TIFF stack, video, zarr, or 2D images"
    )
    p.add_argument("-o", "--out", required=True, help="result folder to write")
    p.add_argument("--model", help=f"bundled name or .pt file (default {defaults['model']})")
    p.add_argument("--device", help="auto, cpu, cuda, mps (default auto)")
    p.add_argument("--grouping", choices=GROUPINGS, help="default hdbscan")
    p.add_argument(
        "--min-samples",
        type=field("min_samples"),
        help=f"HDBSCAN (default {defaults['min_samples']})",
    )
    p.add_argument(
        "--min-cluster-size",
        type=field("min_cluster_size"),
        help="HDBSCAN: fewest pixels an object may have (default: follows --diameter; "
        f"{defaults['min_cluster_size']} without one)",
    )
    p.add_argument(
        "--coord-weight",
        type=field("coord_weight"),
        help=f"HDBSCAN position weight (default {defaults['coord_weight']})",
    )
    p.add_argument(
        "--epsilon",
        type=field("cluster_selection_epsilon"),
        help="HDBSCAN cluster selection epsilon (default 0)",
    )
    p.add_argument(
        "--bandwidth", type=field("bandwidth"), help=f"mean-shift (default {defaults['bandwidth']})"
    )
    p.add_argument(
        "--foreground-threshold",
        type=field("foreground_threshold"),
        help="foreground probability to group (default: the model's calibrated threshold, "
        f"else {DEFAULT_FOREGROUND_THRESHOLD})",
    )
    p.add_argument(
        "--min-size",
        type=field("min_size"),
        help="smallest object kept, pixels (default: follows --diameter; "
        f"{defaults['min_size']} without one)",
    )
    p.add_argument(
        "--split-depth",
        type=field("split_depth"),
        help="cut instances of round blobs joined by a neck this deep, relative "
        f"(default {defaults['split_depth']}; 0: never)",
    )
    p.add_argument(
        "--diameter",
        type=_validate.diameter,
        help="typical object diameter in pixels, in microns ('12um': needs the pixel size, "
        "from the TIFF's metadata or --pixel-size), 'auto' to estimate it from the model's "
        "output (default), or 'off'; frames are rescaled when objects are beyond the sizes the "
        "model knows, and the size options you do not set follow it",
    )
    p.add_argument(
        "--pixel-size",
        type=_validate.real(0.001, 1000),
        help="microns per pixel, for a --diameter in microns (default: what the TIFF records)",
    )
    p.add_argument(
        "--object-size",
        type=field("object_size"),
        help="how far apart (pixels) pixels of one object may lie for HDBSCAN (default: "
        f"follows --diameter; {defaults['object_size']} without one)",
    )
    p.add_argument(
        "--tile-size",
        type=field("tile_size"),
        help=f"tiled inference, pixels (default {defaults['tile_size']}; at least twice the "
        f"tile overlap, {defaults['tile_overlap']})",
    )
    p.add_argument(
        "--tracking", choices=TRACKINGS, help="overlap linking (default) or pair clustering"
    )
    p.add_argument(
        "--min-track-length",
        type=field("min_track_length"),
        help="frames: a shorter track is dropped when small (under half the median object), "
        f"joins the track it lies under when a piece of it (default {defaults['min_track_length']})",
    )
    p.add_argument(
        "--max-gap", type=field("max_gap"), help=f"frames bridged (default {defaults['max_gap']})"
    )
    p.add_argument(
        "--split-back",
        type=field("split_back"),
        help="cut mothers along their daughters up to this many frames before a division seen "
        f"late (default {defaults['split_back']}; 0: never)",
    )
    p.add_argument("--no-track", action="store_true", help="label each frame/image on its own")
    p.add_argument(
        "--invert",
        action="store_true",
        help="the objects are darker than the background (brightfield, stained tissue): "
        "frames are inverted before embedding",
    )
    p.add_argument("--settings", help="settings.json of an earlier run: start from its parameters")
    p.add_argument("--cache", help="keep the embeddings in this zarr folder (reused when rerun)")
    cluster = p.add_argument_group(
        "cluster (dask.distributed; pip install 'napari-cosine-embed[distributed]')"
    )
    cluster.add_argument(
        "--workers", type=_validate.number(Range(int, 1, 10_000)), help="worker processes (local) or "
        "jobs (batch system) to run on; with --cluster, or alone for worker processes here",
    )  # fmt: skip
    cluster.add_argument("--scheduler", help="address or scheduler file of a running cluster")
    cluster.add_argument(
        "--cluster", choices=("local", "slurm", "pbs", "lsf"),
        help="start a cluster: worker processes here, or jobs through dask-jobqueue",
    )  # fmt: skip
    cluster.add_argument(
        "--cluster-config", metavar="YAML",
        help="dask-jobqueue settings for --cluster slurm|pbs|lsf (cores, memory, queue, ...)",
    )  # fmt: skip
    cluster.add_argument(
        "--frames-per-task", type=_validate.number(Range(int, 1, 100_000)), default=20,
        help="frames one task embeds and groups (default 20; rounded to the state window)",
    )  # fmt: skip
    p.add_argument(
        "--pins",
        metavar="PINS",
        help="links to keep when tracking: a pins JSON file (the Correct widget keeps one in its "
        "project folder), or a curated CTC result folder or GEFF, all of whose links are kept",
    )
    p.add_argument(
        "--zarr",
        metavar="PATH.zarr",
        help="also write an OME-Zarr image: the movie with its label movies (segmentation, "
        "tracked), frame by frame (with several movies: a folder for one .zarr each)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="go on from a run that stopped part-way (its frames are kept in --zarr, or in "
        "OUT.unfinished.zarr): only the missing frames are computed",
    )
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.set_defaults(func=_validate.checked(p, _cmd_segment, _validate.check_segment))

    t = sub.add_parser(
        "track",
        help="link an existing label movie into tracks",
        description="Link per-frame instance labels (a TIFF stack, zarr, or a folder of "
        "maskNNN.tif) into tracks by overlap, with divisions; writes a CTC result folder.",
    )
    t.add_argument("labels", help="label movie: TIFF stack, zarr, or folder of maskNNN.tif")
    t.add_argument("-o", "--out", required=True, help="result folder to write")
    for name, what in (
        ("min_iou", "smallest IoU of a continuation"),
        ("min_track_length", "shorter small tracks are dropped, frames"),
        ("min_split_frames", "a child ending sooner undoes its division, frames"),
        ("min_child_ratio", "a child smaller than this share of its sibling, too"),
        ("max_gap", "frames bridged"),
        ("split_back", "frames a late division may move back; 0: never"),
    ):
        t.add_argument(
            "--" + name.replace("_", "-"),
            type=field(name),
            default=getattr(PipelineConfig, name),
            help=f"{what} (default {getattr(PipelineConfig, name)}, as in segment)",
        )
    t.add_argument(
        "--pins",
        metavar="PINS",
        help="links to keep when tracking: a pins JSON file (the Correct widget keeps one in its "
        "project folder), or a curated CTC result folder or GEFF, all of whose links are kept",
    )
    t.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    t.set_defaults(func=_cmd_track)


__all__ = ["ProgressPrinter", "add_commands"]
