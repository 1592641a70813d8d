"""Model commands: ``train`` from scratch, ``finetune`` on curated frames, list ``models``."""

from __future__ import annotations

import argparse
import contextlib
import functools
import operator
import sys
from dataclasses import fields
from pathlib import Path

from ..core.errors import InputError
from ..core.limits import TRAIN
from . import _validate
from ._common import print_json
from ._runs import governor, prepare_run, run_trainer, state_path


def _parse_model_config(text: str):
    """``stacks=2,levels=4,recurrent=false`` -> ModelConfig (values typed by the field)."""
    from ..core.models import ModelConfig

    defaults = ModelConfig()
    values = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not hasattr(defaults, key):
            known = ", ".join(f.name for f in fields(ModelConfig))
            raise InputError(
                f"--config: expected NAME=VALUE with NAME one of {known}; got {item!r}"
            )
        kind = type(getattr(defaults, key))
        value = value.strip()
        if kind is bool:
            if value.lower() not in ("1", "0", "true", "false", "yes", "no"):
                raise InputError(f"--config: {key} must be true or false, got {value!r}")
            values[key] = value.lower() in ("1", "true", "yes")
        elif kind is int:
            try:
                values[key] = int(value)
            except ValueError:
                raise InputError(f"--config: {key} must be an integer, got {value!r}") from None
        else:
            values[key] = value
    try:  # ModelConfig checks every range (e.g. filters=0 or levels=50) and names the field
        return ModelConfig(**values)
    except ValueError as err:
        raise InputError(f"--config: {err}") from None


def _model_config_text(text: str) -> str:
    """The argparse ``type`` of ``--config``: checked when parsed, kept as the text.

    ``train`` builds the network from the text later; checking it here stops a wrong
    ``--config`` before any data is simulated or read.
    """
    if text.strip():
        try:
            _parse_model_config(text)
        except InputError as err:
            raise argparse.ArgumentTypeError(str(err).removeprefix("--config: ")) from None
    return text


def _zoom_range(text: str) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH, e.g. 0.5,2; got {text!r}") from None
    if not 1 / 8 <= low <= high <= 8:
        raise argparse.ArgumentTypeError(f"need 1/8 <= LOW <= HIGH <= 8, got {text!r}")
    return low, high


def _cmd_train(args: argparse.Namespace) -> int:
    import torch

    from ..core.checkpoint import EmbeddingModel, load_model
    from ..core.losses import LossConfig
    from ..core.training import TrainConfig, Trainer, from_dsb, from_synthetic
    from ..core.training.augment import AugmentConfig

    prepare_run(args, [("--dsb folder", args.dsb), ("--init model", args.init),
                        ("--dsb-nonfluo folder", args.dsb_nonfluo),
                        ("--resume state", args.resume)])  # fmt: skip
    synthetic = functools.partial(
        from_synthetic,
        shape=(args.synthetic_size, args.synthetic_size),
        n_frames=args.synthetic_frames,
    )
    parts = []
    if args.synthetic_movies:
        print(f"simulating {args.synthetic_movies} synthetic movies...", flush=True)
        kinds = {"crowded": args.crowded} if args.crowded else {}  # validation stays as it was
        if args.other_kinds:
            kinds["other_kinds"] = args.other_kinds
        parts.append(synthetic(args.synthetic_movies, seed=args.seed * 10_000, **kinds))
    if args.dsb is not None:
        parts.append(from_dsb(args.dsb, split="train"))
    if args.dsb_nonfluo is not None:
        parts.append(from_dsb(args.dsb_nonfluo, split="train", weight=args.nonfluo_weight))
    if not parts:
        raise InputError("no training data: give --synthetic-movies N and/or --dsb DIR")
    data = functools.reduce(operator.add, parts)
    val_parts = []
    if args.val_synthetic:
        val_parts.append(synthetic(args.val_synthetic, seed=1_000_000))
    if args.dsb is not None and args.val_dsb:
        val_parts.append(from_dsb(args.dsb, split="held_out", limit=args.val_dsb))
    if args.dsb_nonfluo is not None and args.val_dsb:
        limit = max(1, args.val_dsb // 2)
        val_parts.append(from_dsb(args.dsb_nonfluo, split="held_out", limit=limit))
    val_data = functools.reduce(operator.add, val_parts) if val_parts else None
    config = TrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        crop=args.crop,
        clip_length=args.clip_length,
        foreground_crops=args.foreground_crops,
        bptt=args.bptt,
        lr=args.lr,
        warmup=args.warmup,
        device=args.device,
        seed=args.seed,
        val_every=args.val_every,
        log_every=args.log_every,
        checkpoint_every=args.checkpoint_every,
        loss=LossConfig(name=args.loss),
        neighbour_radius=args.neighbour_radius,
        foreground_weight=args.foreground_weight,
        augment=AugmentConfig(zoom=args.zoom, invert=args.invert_chance),
    )
    state = state_path(args)
    model = None
    if args.init is not None:
        if args.resume is not None or args.config:
            raise InputError(
                "--init starts from a model's weights and configuration: "
                "it cannot be combined with --resume or --config"
            )
        model = load_model(args.init, device="cpu")
    elif args.resume is None:
        model = EmbeddingModel.new(
            _parse_model_config(args.config), seed=args.seed, name=args.out.stem
        )
    trainer = Trainer(
        model,
        data,
        config,
        val_data=val_data,
        resume_from=args.resume,
        state_path=state,
        base_model=args.init is not None,
        threads=governor(args),
    )
    n_params = sum(p.numel() for p in trainer.model.network.parameters())
    print(
        f"training {n_params / 1e6:.2f} M parameters on {trainer.device} "
        f"({torch.get_num_threads()} threads): {data.describe()['summary']}"
        + (f"; validating on {val_data.describe()['summary']}" if val_data else ""),
        flush=True,
    )
    if args.resume is not None:
        print(f"resuming from {args.resume} at step {trainer.step}", flush=True)
    return run_trainer(
        trainer,
        args.out,
        overwrite=args.replace_out,
        log_every=config.log_every,
        resume_hint="the same command and ",
    )


def _read_labels(path: Path, n_frames: int):
    """Labels from a TIFF (Y, X) / (T, Y, X), a CTC GT folder (its SEG) or a CTC sequence."""
    from ..core.io import find_gt_folder, is_ctc_sequence_folder, read_any, read_ctc_gt
    from ..core.io.tiff import check_label_dtype

    if path.is_dir() and not is_ctc_sequence_folder(path):
        gt = read_ctc_gt(path)
        if not gt.seg:
            raise InputError(f"{path}: no SEG/man_segNNN.tif masks to fine-tune on")
        return dict(gt.seg)
    if path.is_dir() and find_gt_folder(path) is not None:
        gt = read_ctc_gt(find_gt_folder(path))
        if not gt.seg:
            raise InputError(f"{path}: its ground truth has no SEG masks to fine-tune on")
        return dict(gt.seg)
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        axes = ""
        with contextlib.suppress(Exception), tifffile.TiffFile(path) as tif:
            axes = tif.series[0].axes  # an unreadable file is reported by read_any below
        if "S" in axes:  # samples: colour channels, interleaved or planar
            raise InputError(
                f"{path}: stored as a colour (RGB) image (axes {axes}), not as labels; save the "
                "labels as a single-channel integer TIFF (tifffile: photometric='minisblack')"
            )
    labels = read_any(path).image
    check_label_dtype(path, labels.dtype)
    if labels.ndim not in (2, 3):
        raise InputError(f"{path}: labels must be (Y, X) or (T, Y, X), got shape {labels.shape}")
    if labels.ndim == 2 and n_frames == 1:
        labels = labels[None]
    return labels


def _cmd_finetune(args: argparse.Namespace) -> int:
    from dataclasses import replace

    import numpy as np

    from ..core.checkpoint import load_model
    from ..core.io import read_any
    from ..core.training import FINETUNE_DEFAULTS, Trainer, from_arrays

    prepare_run(args, [("--images", args.images), ("--labels", args.labels),
                        ("--base model", args.base), ("--resume state", args.resume)])  # fmt: skip
    base = load_model(args.base, device=args.device)
    image = np.asarray(read_any(args.images).image)
    if image.ndim == 2:
        image = image[None]
    if np.issubdtype(image.dtype, np.floating):
        bad = ~np.isfinite(image)
        if bad.any():
            frames = sorted({int(t) for t in np.flatnonzero(bad.any(axis=(1, 2)))})
            print(
                f"warning: {int(bad.sum())} NaN or infinite pixels in --images (frames "
                f"{', '.join(map(str, frames[:8]))}{', ...' if len(frames) > 8 else ''}): "
                "they are filled with each frame's lowest finite value",
                file=sys.stderr,
                flush=True,
            )
    labels = _read_labels(args.labels, image.shape[0])
    frames = None
    if args.frames:
        try:
            frames = [int(f) for f in args.frames.split(",") if f.strip()]
        except ValueError:
            raise InputError(
                f"--frames: expected comma-separated frame numbers, got {args.frames!r}"
            ) from None
    data = from_arrays(
        image, labels, frames, name=Path(args.labels).name, context=args.clip_length - 1
    )
    config = replace(
        FINETUNE_DEFAULTS,
        steps=args.steps,
        batch_size=args.batch_size,
        crop=args.crop,
        clip_length=args.clip_length,
        foreground_crops=args.foreground_crops,
        lr=args.lr,
        device=args.device,
        seed=args.seed,
        log_every=args.log_every,
        frozen_stacks=args.frozen_stacks,
        foreground_weight=args.foreground_weight,
        stack_loss=args.stack_loss,
        neighbour_radius=args.neighbour_radius,
        calibration_holdout=args.calibration_holdout,
    )
    trainer = Trainer(
        base,
        data,
        config,
        base_model=True,
        resume_from=args.resume,
        state_path=state_path(args),
        threads=governor(args),
    )
    trainer.model.name = args.out.stem
    print(
        f"fine-tuning {base.name} on {trainer.device}: {data.describe()['summary']}, "
        f"{trainer.config.steps} steps",
        flush=True,
    )
    sizing = trainer.sizing or {}
    if sizing.get("scale", 1) != 1:
        print(
            f"the curated objects are {sizing['curated_diameter']:.0f} px across: frames shrunk "
            f"x{sizing['scale']:.3g} to fit the {trainer.config.crop} px crops (the model "
            "remembers, and segment rescales movies the same way)",
            flush=True,
        )
    if trainer.calibration_data is not None:
        print(
            f"a band of {config.calibration_holdout:.0%} of {len(trainer.calibration_data)} "
            "curated frames, with the objects it touches, is kept out of the foreground loss "
            "to calibrate the foreground threshold on (--calibration-holdout)",
            flush=True,
        )
    if args.resume is not None:
        print(f"resuming from {args.resume} at step {trainer.step}", flush=True)
    return run_trainer(
        trainer,
        args.out,
        overwrite=args.replace_out,
        log_every=config.log_every,
        calibrate=True,
        resume_hint="the same command and ",
        keep_state=False,
    )


def _cmd_models(args: argparse.Namespace) -> int:
    from ..core.checkpoint import bundled_models_dir, list_models

    listing = list_models()
    if args.json:
        print_json(listing)
        return 0
    if not listing:
        print(f"no bundled models in {bundled_models_dir()}")
        return 0
    for entry in listing:
        if "error" in entry:
            print(f"{entry['name']}  {entry['size'] / 1e6:.1f} MB  UNREADABLE: {entry['error']}")
            continue
        scores = entry.get("scores") or {}
        score = "  ".join(
            f"{k} {scores[k]:.3f}"
            for k in ("score", "neighbour_separation", "within_cosine", "foreground_iou")
            if isinstance(scores.get(k), float)
        )
        print(f"{entry['name']}  {entry['size'] / 1e6:.1f} MB  {entry['steps']} steps")
        print(f"    trained on: {entry['trained_on'] or 'unknown'}")
        if entry.get("base_model"):
            print(f"    fine-tuned from: {entry['base_model']}")
        print(f"    validation: {score or 'none recorded'}")
    return 0


#: More threads than any machine has cores only adds switching.
MAX_THREADS = 1024
#: Synthetic training data is simulated and held in memory (check_train weighs the total).
MAX_SYNTHETIC_MOVIES = 100_000
# Random draws (synthetic_random.random_config) reach 3-30 % cover, 2.5 times that when
# crowded, with nuclei from 12 px across: at 512 px and 32 frames their divisions stay under
# SyntheticConfig's limit of nuclei, so no draw fails halfway through the simulation.
MAX_SYNTHETIC_SIZE = 512
MAX_SYNTHETIC_FRAMES = 32


def _train_field(name: str):
    """The option type of a TrainConfig field: the range TrainConfig checks."""
    return _validate.number(TRAIN[name])


def _add_run_options(
    p: argparse.ArgumentParser,
    *,
    steps: int,
    batch_size: int,
    clip_length: int,
    lr: float,
    foreground_crops: float,
) -> None:
    """The options ``train`` and ``finetune`` share (their defaults differ).

    Their types accept what :class:`~napari_cosine_embed.core.training.TrainConfig` accepts
    (the table :data:`~napari_cosine_embed.core.limits.TRAIN`).
    """
    p.add_argument("--steps", type=_train_field("steps"), default=steps)
    p.add_argument(
        "--batch-size",
        type=_train_field("batch_size"),
        default=batch_size,
        help=f"clips per step (default {batch_size})",
    )
    p.add_argument(
        "--crop",
        type=_train_field("crop"),
        default=192,
        help="side of the square crops, pixels; smaller frames are padded, the padding "
        "ignored (default 192)",
    )
    p.add_argument(
        "--foreground-crops",
        type=_train_field("foreground_crops"),
        default=foreground_crops,
        help="share of the crops placed on a labelled nucleus, the rest anywhere "
        f"(default {foreground_crops:g})",
    )
    p.add_argument(
        "--clip-length",
        type=_train_field("clip_length"),
        default=clip_length,
        help=f"frames per movie clip (default {clip_length})",
    )
    p.add_argument("--lr", type=_train_field("lr"), default=lr)
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--threads",
        type=_validate.integer(0, MAX_THREADS),
        default=0,
        help="CPU threads (default: the cores other processes leave free, re-checked as it runs)",
    )
    p.add_argument("--seed", type=_train_field("seed"), default=0)
    p.add_argument("--log-every", type=_train_field("log_every"), default=10)
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``train``, ``finetune`` and ``models``."""
    p = sub.add_parser(
        "train",
        help="train an embedding network (synthetic movies and/or DSB 2018 images)",
        description="Train from scratch; prints one line per --log-every steps and the held-out "
        "scores every --val-every steps, and saves the best-validated model to --out. Ctrl-C "
        "stops after the current step and saves the best model so far.",
    )
    p.add_argument("--out", required=True, type=Path, help="model file to write (.pt)")
    p.add_argument(
        "--synthetic-movies",
        type=_validate.integer(0, MAX_SYNTHETIC_MOVIES),
        default=0,
        metavar="N",
        help="synthetic training movies",
    )
    p.add_argument(
        "--synthetic-frames",
        type=_validate.integer(1, MAX_SYNTHETIC_FRAMES),
        default=8,
        help="frames per synthetic movie (default 8)",
    )
    p.add_argument(
        "--synthetic-size",
        type=_validate.integer(32, MAX_SYNTHETIC_SIZE),
        default=256,
        help="synthetic frame size (default 256)",
    )
    p.add_argument(
        "--crowded",
        type=_validate.real(0, 1),
        default=0.0,
        metavar="FRACTION",
        help="fraction of synthetic training movies with crowded, touching nuclei (default 0)",
    )
    p.add_argument(
        "--other-kinds",
        type=_validate.real(0, 1),
        default=0.0,
        metavar="FRACTION",
        help="fraction of synthetic training movies of other kinds than fluorescent nuclei: "
        "rods in phase contrast, large flat cells, dark stained nuclei, cells in phase contrast "
        "(default 0)",
    )
    p.add_argument(
        "--dsb", type=Path, metavar="DIR", help="the CC0 dsb2018-fluo folder (train split)"
    )
    p.add_argument(
        "--dsb-nonfluo",
        type=Path,
        metavar="DIR",
        help="the CC0 dsb2018-nonfluo folder (dark nuclei on bright backgrounds; train split)",
    )
    p.add_argument(
        "--nonfluo-weight",
        type=_validate.real(0.01, 100),
        default=0.5,
        help="relative chance that a batch comes from --dsb-nonfluo (others: 1; default 0.5)",
    )
    p.add_argument(
        "--zoom",
        type=_zoom_range,
        default=(1.0, 1.0),
        metavar="LOW,HIGH",
        help="scale augmentation: objects shown LOW to HIGH times their size (default 1,1)",
    )
    p.add_argument(
        "--invert-chance",
        type=_validate.real(0, 1),
        default=0.0,
        metavar="P",
        help="chance that a training clip's intensities are inverted (default 0)",
    )
    p.add_argument(
        "--val-synthetic",
        type=_validate.integer(0, MAX_SYNTHETIC_MOVIES),
        default=4,
        metavar="N",
        help="held-out synthetic movies (default 4)",
    )
    p.add_argument(
        "--val-dsb",
        type=_validate.integer(0, 100_000),
        default=24,
        metavar="N",
        help="held-out DSB images (default 24)",
    )
    _add_run_options(p, steps=2500, batch_size=4, clip_length=2, lr=1e-3, foreground_crops=0.0)
    p.add_argument(
        "--bptt",
        type=_train_field("bptt"),
        default=0,
        help="frames per truncated-BPTT segment (0: whole clip)",
    )
    p.add_argument("--warmup", type=_train_field("warmup"), default=100)
    p.add_argument(
        "--config",
        type=_model_config_text,
        default="",
        help="network, e.g. stacks=2,levels=4,filters=32",
    )
    p.add_argument(
        "--init",
        metavar="MODEL",
        help="start from this model's weights (a bundled name or a .pt file) instead of a "
        "random initialisation; its record is kept as the base model",
    )
    p.add_argument(
        "--loss",
        choices=("cosine", "pairwise", "discriminative"),
        default="cosine",
        help="embedding loss: Payer's cosine (default), Kong & Fowlkes' pairwise, "
        "De Brabandere's discriminative",
    )
    p.add_argument(
        "--neighbour-radius",
        type=_train_field("neighbour_radius"),
        default=5.0,
        help="pixels within which other instances are pushed apart (cosine loss; default 5)",
    )
    p.add_argument(
        "--foreground-weight",
        type=_train_field("foreground_weight"),
        default=1.0,
        help="weight of the foreground BCE",
    )
    p.add_argument("--val-every", type=_train_field("val_every"), default=250)
    p.add_argument(
        "--checkpoint-every",
        type=_train_field("checkpoint_every"),
        default=250,
        help="save the training state every N steps",
    )
    p.add_argument("--state", type=Path, help="training-state file (default OUT.state.pt)")
    p.add_argument(
        "--resume", type=Path, metavar="STATE", help="continue from a training-state file"
    )
    p.set_defaults(func=_validate.checked(p, _cmd_train, _validate.check_train))

    p = sub.add_parser(
        "finetune",
        help="fine-tune a model on a few curated frames of your data",
        description="Fine-tune --base on the labelled frames of --labels (a TIFF (Y, X) or "
        "(T, Y, X), a CTC ground-truth folder whose SEG masks are used, or a CTC sequence "
        "with ground truth) over the frames of --images (a TIFF or a CTC sequence folder). "
        "Labelled frames must be completely annotated: unlabelled nuclei would be taught as "
        "background.",
    )
    p.add_argument("--base", default="default", help="bundled model name or model file")
    p.add_argument("--images", required=True, type=Path)
    p.add_argument("--labels", required=True, type=Path)
    p.add_argument(
        "--frames",
        type=_validate.frame_list,
        default="",
        help="curated frames, e.g. 0,5,9 (default: frames with labels)",
    )
    p.add_argument("--out", required=True, type=Path)
    p.add_argument(
        "--state", type=Path, help="training-state file, kept while a run is unfinished "
        "(default OUT.state.pt)",
    )  # fmt: skip
    p.add_argument("--resume", type=Path, metavar="STATE", help="continue an interrupted fine-tune")
    # FINETUNE_DEFAULTS' values (a test checks), without importing torch to build the parser
    _add_run_options(p, steps=200, batch_size=2, clip_length=3, lr=1e-3, foreground_crops=0.5)
    p.add_argument(
        "--frozen-stacks",
        type=_train_field("frozen_stacks"),
        default=0,
        help="leading hourglass stacks (with the stem) kept fixed; 0 trains every layer "
        "(default 0; 1 is 1.5 times faster and moves the model less)",
    )
    p.add_argument(
        "--foreground-weight",
        type=_train_field("foreground_weight"),
        default=25.0,
        help="weight of the foreground loss against the embedding loss (default 25: where "
        "the curated objects end is learned first; 1 only nudges a model that already "
        "knows the cells, docs/models.md)",
    )
    p.add_argument(
        "--neighbour-radius",
        type=_train_field("neighbour_radius"),
        default=10.0,
        help="pixels (at the size the model learns the objects) within which two curated "
        "objects are pushed apart by the cosine loss (default 10: cells whose outlines "
        "come near but do not touch are kept apart too)",
    )
    p.add_argument(
        "--stack-loss",
        choices=("all", "last"),
        default="all",
        help="embedding loss on every stack that learns, or on the last one only (cheaper "
        "steps when every layer learns; default all)",
    )
    p.add_argument(
        "--calibration-holdout",
        type=_train_field("calibration_holdout"),
        default=0.2,
        metavar="SHARE",
        help="a band of this share of every curated frame (with the objects it touches) is "
        "kept out of the foreground loss, and the foreground threshold is calibrated on it: "
        "a tuned model is too sure of the pixels it learned (default 0.2; 0 learns every "
        "curated pixel and calibrates on them)",
    )
    p.set_defaults(func=_validate.checked(p, _cmd_finetune, _validate.check_finetune))

    p = sub.add_parser("models", help="list the bundled models")
    p.add_argument("--json", action="store_true", help="print the listing as JSON")
    p.set_defaults(func=_cmd_models)
