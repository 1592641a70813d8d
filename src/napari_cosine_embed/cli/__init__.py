"""The ``napari-cosine-embed`` command line: the same core functions the plugin uses.

Subcommands appear here only once they work end to end:

``segment INPUT... -o OUT [--model M] [--grouping hdbscan|meanshift] [--no-track] ...``
    Embed, group and track a movie (CTC folder, TIFF stack, video, zarr) into a CTC result
    folder with a ``settings.json`` of every parameter and the model's identity; with
    ``--no-track``, label 2D images one by one (one TIFF per input). Progress on stderr;
    Ctrl-C leaves no output behind.
``track LABELS -o OUT``
    Link an existing label movie into tracks (divisions included), as a CTC result folder.
``sample OUT_DIR``
    Write a synthetic nuclei time-lapse as a Cell Tracking Challenge dataset
    (``OUT_DIR/01/tNNN.tif`` and its exact ground truth in ``OUT_DIR/01_GT``).
``evaluate --gt GT --res RES``
    Print scores as JSON: SEG/DET/TRA for CTC folders, AP/F1 for folders of 2D label images.
``train --out MODEL.pt [--synthetic-movies N] [--dsb DIR] [--steps N] ...``
    Train an embedding network from scratch on synthetic movies and/or the CC0 DSB 2018
    images, printing progress; validates on held-out data and saves the best model. Ctrl-C
    stops after the current step and still saves the best model so far; the training state
    (``MODEL.state.pt``) lets ``--resume`` continue exactly where it stopped.
``finetune --base default|MODEL.pt --images IMG --labels LAB --out MODEL.pt``
    Fine-tune a model on a few curated frames of your own movie (TIFF stacks or CTC folders).
``models``
    List the bundled models: size, training data, validation scores.
``convert IN -o OUT``
    Convert a tracked movie between a CTC result folder (or CTC ground truth) and a GEFF
    store (OUT ending in ``.geff`` or ``.zarr``), losslessly.

Each command group lives in its own module (``_pipeline``: segment, track; ``_data``: sample,
evaluate; ``_training``: train, finetune, models; ``_convert``: convert) and imports its heavy dependencies inside the command, so the command line
starts fast.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence

from .. import __version__
from ..core.errors import InputError, OutputExistsError
from . import _convert, _data, _pipeline, _training


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and documentation)."""
    parser = argparse.ArgumentParser(
        prog="napari-cosine-embed",
        description="Segment and track microscopy time-lapses with cosine pixel embeddings.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _pipeline.add_commands(sub)
    _data.add_commands(sub)
    _training.add_commands(sub)
    _convert.add_commands(sub)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so that it cleans up exactly as for Ctrl-C."""


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return

    def terminate(signum, frame):
        raise Terminated

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _plain_warnings(name: str) -> Iterator[None]:
    """Python warnings as one line each, as the command's other messages (no source lines)."""
    import warnings

    def show(message, category, filename, lineno, file=None, line=None):
        _say(f"{name}: warning: {message}")

    previous = warnings.showwarning
    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = previous


def _say(text: str) -> None:
    with contextlib.suppress(OSError, ValueError):
        print(text, file=sys.stderr)


def _flush_stderr() -> None:
    """A full or closed stderr must not fail the command (diagnostics are not the result)."""
    try:
        sys.stderr.flush()
    except (OSError, ValueError):
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stderr.fileno())


def _quiet_stdout() -> None:
    """After the reader of our output went away, send the rest nowhere (as shell tools end)."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``napari-cosine-embed`` console script.

    Exit status: 0 done, 2 refused (bad input; the message says why and nothing was written),
    1 an output could not be written, 130 interrupted (Ctrl-C), 143 terminated (SIGTERM),
    141 when the reader of standard output went away (``| head``).
    """
    args = build_parser().parse_args(argv)
    name = f"napari-cosine-embed {args.command}"
    try:
        program = argv is None and threading.current_thread() is threading.main_thread()
        with _sigterm_as_interrupt(), _plain_warnings(name):
            status = args.func(args)
            sys.stdout.flush()  # a full device or a closed pipe shows here, inside the guard
            if program:
                # the program's work is complete: a signal from now on must neither kill it
                # with its result written nor become a traceback during interpreter shutdown
                signal.signal(signal.SIGINT, signal.SIG_IGN)
        if program:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        return status
    except (InputError, OutputExistsError) as err:
        _say(f"{name}: error: {err}")
        return 2
    except KeyboardInterrupt as err:
        what = "terminated" if isinstance(err, Terminated) else "interrupted"
        _say(f"{name}: {what}; nothing was left half-written")
        return 143 if isinstance(err, Terminated) else 130
    except BrokenPipeError:
        _quiet_stdout()
        return 141
    except OSError as err:
        if err.errno == errno.EPIPE:
            _quiet_stdout()
            return 141
        where = f"{err.filename}: " if err.filename else ""
        _say(f"{name}: error: {where}{err.strerror or err}")
        if err.errno == errno.ENOSPC:
            _quiet_stdout()  # stdout may be the full device: do not fail again at exit
        return 1
    finally:
        _flush_stderr()
