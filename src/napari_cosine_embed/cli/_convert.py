"""``convert IN -o OUT``: a tracked movie from one format to the other (CTC result <-> GEFF)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..core.errors import InputError


def _cmd_convert(args: argparse.Namespace) -> int:
    from ..core.io.outputs import check_output, check_writable
    from ..core.io.tracked import read_tracked, write_tracked

    source, out = Path(args.input), Path(args.out)
    if not source.exists():
        raise InputError(f"{source}: no such folder")
    check_output(out, [("IN", source)], name="-o")
    check_writable(out, kind="folder", overwrite=args.overwrite, name="-o")
    tracked = read_tracked(source)
    if tracked.labels is None:
        raise InputError(
            f"{tracked.source}: the GEFF holds no segmentation, so there are no masks to write"
        )
    for note in tracked.notes:
        print(f"note: {note}")
    written = write_tracked(out, tracked.labels, tracked.lineage, overwrite=args.overwrite)
    n_div = sum(1 for p in set(tracked.lineage[:, 3].tolist()) if p) if len(tracked.lineage) else 0
    t, height, width = tracked.labels.shape
    print(
        f"wrote {written} ({t} frames of {height}x{width}, {len(tracked.lineage)} tracks, "
        f"{n_div} with children) from the {tracked.kind} {tracked.source}"
    )
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``convert``."""
    p = sub.add_parser(
        "convert",
        help="convert tracks between a CTC result folder and a GEFF store",
        description="Read a tracked label movie (a CTC result folder: maskNNN.tif + "
        "res_track.txt; CTC ground truth: NN_GT with TRA/; or a GEFF store with its "
        "segmentation) and write it as OUT: a GEFF when OUT ends in .geff or .zarr, else a CTC "
        "result folder. Masks, labels and lineage are kept exactly.",
    )
    p.add_argument("input", metavar="IN")
    p.add_argument("-o", "--out", required=True, metavar="OUT")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    p.set_defaults(func=_cmd_convert)
