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

Each command group lives in its own module (``_pipeline``: segment, track; ``_data``: sample,
evaluate; ``_training``: train, finetune, models) and imports its heavy dependencies inside the command, so the command line
starts fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .. import __version__
from ..core.errors import InputError, OutputExistsError
from . import _data, _pipeline, _training


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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``napari-cosine-embed`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (InputError, OutputExistsError) as err:
        print(f"napari-cosine-embed {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"napari-cosine-embed {args.command}: interrupted; nothing was left half-written",
            file=sys.stderr,
        )
        return 130
