"""Data commands: ``sample`` (a synthetic movie with ground truth) and ``evaluate``."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, fields
from pathlib import Path

from .. import __version__
from ..core.errors import InputError
from ..core.limits import SEED, SYNTHETIC
from . import _validate
from ._common import print_json


def _cmd_sample(args: argparse.Namespace) -> int:
    from ..core.io._atomic import atomic_folder
    from ..core.io.ctc import write_ctc_gt, write_ctc_sequence
    from ..core.io.outputs import check_name, check_writable
    from ..core.synthetic import SyntheticConfig, synthetic_timelapse

    seq = check_name(args.sequence, name="--sequence")
    check_writable(args.out_dir, kind="folder", overwrite=args.overwrite, name="OUT_DIR")

    overrides = {
        "n_frames": args.frames,
        "shape": tuple(args.size),
        "n_cells": args.cells,
        "seed": args.seed,
    }
    known = {f.name for f in fields(SyntheticConfig)}
    config = SyntheticConfig(**{k: v for k, v in overrides.items() if k in known})
    movie = synthetic_timelapse(config)
    with atomic_folder(args.out_dir, overwrite=args.overwrite) as tmp:
        write_ctc_sequence(tmp / seq, movie.image)
        write_ctc_gt(tmp / f"{seq}_GT", tra=movie.labels, lineage=movie.lineage, seg=movie.labels)
        settings = {"generator": "napari_cosine_embed.core.synthetic", "version": __version__}
        settings["config"] = asdict(config)
        (tmp / "synthetic_config.json").write_text(json.dumps(settings, indent=2) + "\n")
    n_div = int((movie.lineage[:, 3] > 0).sum()) // 2
    print(
        f"wrote {args.out_dir / seq} ({movie.image.shape[0]} frames of "
        f"{movie.image.shape[1]}x{movie.image.shape[2]}, {len(movie.lineage)} tracks, "
        f"{n_div} divisions) and its ground truth {args.out_dir / (seq + '_GT')}"
    )
    return 0


def _label_images(folder: Path) -> dict[str, Path]:
    try:
        entries = sorted(folder.iterdir())
    except OSError as exc:
        raise InputError(f"{folder}: cannot be read ({exc.strerror or exc})") from exc
    return {p.stem: p for p in entries if p.suffix.lower() in (".tif", ".tiff")}


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from ..core import metrics

    gt, res = Path(args.gt), Path(args.res)
    for name, folder in (("--gt", gt), ("--res", res)):
        if not folder.is_dir():
            why = "it is a file" if folder.exists() else "it does not exist"
            raise InputError(f"{name} {folder} is not a folder: {why}")
    if (gt / "SEG").is_dir() or (gt / "TRA").is_dir():
        measures = tuple(m.strip().upper() for m in args.measures.split(",") if m.strip())
        tracked = [m for m in measures if m == "TRA" or m.startswith("BC")]
        if tracked and not (res / "res_track.txt").is_file():
            # The core scores such a folder with TRA = None; asked for by name, a silent null
            # would read as a score, so say what is missing instead.
            raise InputError(
                f"{res / 'res_track.txt'}: no such lineage file; {', '.join(tracked)} need the "
                f"result's tracks (use --measures SEG,DET to score the masks alone)"
            )
        scores = metrics.ctc_scores(gt, res, measures=measures)
        report = {"kind": "ctc", "gt": str(gt), "res": str(res), **scores}
    else:
        from ..core.io.tiff import read_label_frame

        gts, preds = _label_images(gt), _label_images(res)
        if not gts:
            raise InputError(f"{gt} has neither SEG/TRA folders (CTC) nor label TIFFs")
        missing = sorted(set(gts) - set(preds))
        if missing:
            raise InputError(
                f"{len(missing)} ground-truth images have no result of the same name in {res}, "
                f"e.g. {missing[0]}.tif"
            )
        names = sorted(gts)
        gt_images, res_images = [], []
        for n in names:
            # Read and compare pair by pair, so any problem names the very file it is in.
            truth, pred = read_label_frame(gts[n]), read_label_frame(preds[n])
            if truth.shape != pred.shape:
                raise InputError(
                    f"{preds[n]}: the result is {pred.shape[0]}x{pred.shape[1]} pixels but "
                    f"its ground truth {gts[n]} is {truth.shape[0]}x{truth.shape[1]}"
                )
            gt_images.append(truth)
            res_images.append(pred)
        scores = metrics.instance_scores(gt_images, res_images)
        report = {"kind": "instances", "gt": str(gt), "res": str(res), "n_images": len(names)}
        report.update(scores)
    print_json(report)
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``sample`` and ``evaluate``."""
    p = sub.add_parser(
        "sample",
        help="write a synthetic nuclei time-lapse with exact ground truth (CTC layout)",
        description="Write OUT_DIR/<seq>/tNNN.tif and OUT_DIR/<seq>_GT/{SEG,TRA} for a seeded "
        "synthetic movie of moving, touching and dividing nuclei.",
    )
    p.add_argument("out_dir", type=Path, metavar="OUT_DIR")
    # the ranges SyntheticConfig checks; check_sample adds what they imply together (nuclei
    # that fit the frame, divisions that stay countable, a movie that fits in memory)
    p.add_argument(
        "--frames",
        type=_validate.number(SYNTHETIC["n_frames"]),
        default=50,
        help="number of frames (default 50)",
    )
    p.add_argument(
        "--size",
        type=_validate.number(SYNTHETIC["shape"]),
        nargs=2,
        default=(256, 256),
        metavar=("Y", "X"),
        help="frame size, pixels (default 256 256)",
    )
    p.add_argument(
        "--cells",
        type=_validate.number(SYNTHETIC["n_cells"]),
        default=14,
        help="nuclei in the first frame (default 14)",
    )
    p.add_argument("--seed", type=_validate.number(SEED), default=0)
    p.add_argument("--sequence", default="01", help="sequence name (default 01)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT_DIR if it exists")
    p.set_defaults(func=_validate.checked(p, _cmd_sample, _validate.check_sample))

    p = sub.add_parser(
        "evaluate",
        help="score results against ground truth; prints JSON",
        description="With a CTC ground-truth folder (SEG/, TRA/) print SEG, DET and TRA as the "
        "Cell Tracking Challenge defines them, and BC(1), the F1 score of the divisions found; "
        "with a folder of 2D label TIFFs, match results by file stem and print AP and F1 at IoU "
        "0.5 and mean AP over IoU 0.5:0.95.",
    )
    p.add_argument("--gt", required=True, type=Path, help="ground-truth folder")
    p.add_argument("--res", required=True, type=Path, help="result folder")
    p.add_argument(
        "--measures",
        type=_validate.measure_list,
        default="SEG,DET,TRA,BC(1)",
        help="CTC measures: SEG, DET, TRA and BC(i), division detection with a tolerance of i "
        "frames (default SEG,DET,TRA,BC(1))",
    )
    p.set_defaults(func=_cmd_evaluate)
