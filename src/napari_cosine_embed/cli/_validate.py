"""Option types that check numbers as they are parsed, and checks that weigh several options.

argparse calls an option's ``type`` with the text typed; the types here raise
:class:`argparse.ArgumentTypeError`, so a wrong value ends the command at once, before
anything is read or written, with exit status 2 and a message such as::

    napari-cosine-embed segment: error: argument --min-size: must be an integer in
    [0, 10000000], got '-5'

The ranges of options that set a configuration field are the entries of
:mod:`napari_cosine_embed.core.limits` the configuration checks itself against, so an option and
its field accept the same values. Some limits depend on several options together (the memory
a training batch or a synthetic movie needs): :func:`checked` runs those checks after parsing,
still before the command does any work, and reports them the same way.

Only the standard library and :mod:`..core.limits` are imported here: the parser is built at
every start, also for ``--help``.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable

from ..core import limits
from ..core.limits import Range

__all__ = [
    "check_finetune",
    "check_sample",
    "check_segment",
    "check_train",
    "checked",
    "frame_list",
    "integer",
    "measure_list",
    "number",
    "real",
]


def number(limit: Range) -> Callable[[str], int | float]:
    """An argparse ``type`` accepting the numbers ``limit`` accepts (NaN and inf never).

    Examples
    --------
    >>> bandwidth = number(Range(float, 0, 2, low_open=True))
    >>> bandwidth("0.1")
    0.1
    >>> bandwidth("nan")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: must be a number in (0, 2], got 'nan'
    """

    def parse(text: str) -> int | float:
        try:
            return limit.parse(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    # argparse names the type by its function in a few of its own messages
    parse.__name__ = "integer" if limit.kind is int else "number"
    return parse


def diameter(text: str) -> float | str:
    """An argparse ``type`` for ``--diameter``: ``auto``, ``off``, pixels or microns.

    A length with a unit is returned as given, to be converted with the pixel size.

    Examples
    --------
    >>> diameter("Auto"), diameter("off"), diameter("42"), diameter("12um")
    ('auto', 'off', 42.0, '12um')
    """
    from ..core.diameter import parse_diameter
    from ..core.errors import InputError
    from ..core.lengths import physical_length

    if text.strip().lower() in ("off", "none"):
        return "off"
    try:
        if physical_length(text) is not None:
            return text  # microns: made pixels once the pixel size is known
        value = parse_diameter(text)
    except InputError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    if value is None:
        raise argparse.ArgumentTypeError("give 'auto', 'off' or a number of pixels")
    return value


def integer(min: int | None = None, max: int | None = None) -> Callable[[str], int]:
    """An argparse ``type`` for integers in ``[min, max]`` (either end may be left open)."""
    return number(Range(int, min, max))


def real(
    min: float | None = None,
    max: float | None = None,
    *,
    min_open: bool = False,
    max_open: bool = False,
) -> Callable[[str], float]:
    """An argparse ``type`` for finite numbers between ``min`` and ``max``.

    ``min_open``/``max_open`` exclude the bound itself, e.g. ``real(0, 1, min_open=True)`` is
    the interval (0, 1].
    """
    return number(Range(float, min, max, low_open=min_open, high_open=max_open))


def frame_list(text: str) -> str:
    """An argparse ``type`` for ``"0,5,9"``: frame numbers >= 0, checked, kept as the text.

    The command splits the text itself; checking it here refuses ``"0,x"`` or ``"-1"`` before
    the movie is read.
    """
    for part in filter(None, (p.strip() for p in text.split(","))):
        try:
            frame = int(part)
        except ValueError:
            frame = -1
        if frame < 0:
            raise argparse.ArgumentTypeError(
                f"must be frame numbers >= 0 separated by commas, got {text!r}"
            )
    return text


def measure_list(text: str) -> str:
    """An argparse ``type`` for ``evaluate --measures``: SEG, DET, TRA and BC(i), i >= 0.

    Kept as the text (the command splits it); checked here so that ``BC(-1)`` or ``BC(x)``
    stops the command before the folders are read. The rule is the one
    :func:`~napari_cosine_embed.core.metrics.ctc_scores` applies.
    """
    for part in filter(None, (p.strip().upper() for p in text.split(","))):
        inner = part[3:-1] if part.startswith("BC(") and part.endswith(")") else ""
        if part not in ("SEG", "DET", "TRA") and not inner.isdigit():
            raise argparse.ArgumentTypeError(
                f"must be SEG, DET, TRA or BC(i) with an integer i >= 0, separated by commas; "
                f"got {part!r}"
            )
    return text


def checked(
    parser: argparse.ArgumentParser,
    command: Callable[[argparse.Namespace], int],
    *checks: Callable[[argparse.Namespace], str | None],
) -> Callable[[argparse.Namespace], int]:
    """``command``, run only once every check of its parsed options returns None.

    A check returns the problem in words, which ends the command as a wrong option value
    does (``parser.error``: usage, the message, exit status 2).
    """

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        for check in checks:
            problem = check(args)
            if problem:
                parser.error(problem)
        return command(args)

    return run


def _over_budget(need: float) -> str | None:
    """None when ``need`` bytes fit the memory budget, else "about X, more than Y"."""
    budget, where = limits.memory_budget()
    if need <= budget:
        return None
    return f"about {limits.format_bytes(need)}, more than {where}"


#: Inference keeps about this many bytes alive per pixel of a tile (default network, measured
#: with ru_maxrss on 1024 and 2048 px frames).
EMBED_BYTES_PER_PIXEL = 512


def check_segment(args: argparse.Namespace) -> str | None:
    """``--tile-size``: one tile's activations must fit in memory."""
    if args.tile_size is None:
        return None
    problem = _over_budget(args.tile_size**2 * EMBED_BYTES_PER_PIXEL)
    if problem is None:
        return None
    budget, _ = limits.memory_budget()
    fit = int((budget / EMBED_BYTES_PER_PIXEL) ** 0.5)
    return (
        f"argument --tile-size: embedding a {args.tile_size} px tile needs {problem}; "
        f"use at most --tile-size {fit}"
    )


def _training_step(args: argparse.Namespace) -> tuple[float, str | None]:
    """Bytes a training step needs, and the problem when they do not fit."""
    per_clip = args.clip_length * args.crop**2 * limits.TRAIN_BYTES_PER_PIXEL
    need = args.batch_size * per_clip
    problem = _over_budget(need)
    if problem is None:
        return need, None
    budget, _ = limits.memory_budget()
    fit = int(budget // per_clip)
    hint = f"use at most --batch-size {fit}" if fit else "use a smaller --crop or --clip-length"
    return need, (
        f"argument --batch-size: a step on {args.batch_size} clips (--batch-size) of "
        f"{args.clip_length} frames (--clip-length) of {args.crop} x {args.crop} px (--crop) "
        f"would need, for the default network, {problem}; {hint}"
    )


def check_finetune(args: argparse.Namespace) -> str | None:
    """The training batch (``--batch-size`` x ``--clip-length`` x ``--crop``) must fit."""
    return _training_step(args)[1]


#: Bytes a synthetic training frame holds per pixel: the raw image and labels (uint16 each)
#: and the normalised float32 copy the trainer samples from.
SYNTHETIC_TRAIN_BYTES_PER_PIXEL = 8


def check_train(args: argparse.Namespace) -> str | None:
    """The training batch, and the synthetic movies held in memory, must fit together."""
    step, problem = _training_step(args)
    if problem:
        return problem
    per_movie = args.synthetic_frames * args.synthetic_size**2 * SYNTHETIC_TRAIN_BYTES_PER_PIXEL
    movies = (args.synthetic_movies or 0) + (args.val_synthetic or 0)
    problem = _over_budget(step + movies * per_movie)
    if problem is None:
        return None
    budget, _ = limits.memory_budget()
    fit = max(0, int((budget - step) // per_movie) - (args.val_synthetic or 0))
    return (
        f"argument --synthetic-movies: {args.synthetic_movies} training and "
        f"{args.val_synthetic} validation movies (--val-synthetic) of {args.synthetic_frames} "
        f"frames (--synthetic-frames) of {args.synthetic_size} x {args.synthetic_size} px "
        f"(--synthetic-size), with a training step, need {problem}; use at most "
        f"--synthetic-movies {fit}, or fewer or smaller frames"
    )


def check_sample(args: argparse.Namespace) -> str | None:
    """The synthetic movie: nuclei that fit the frame, a bounded number of them, and memory."""
    from ..core.errors import InputError
    from ..core.synthetic import SyntheticConfig

    (height, width), frames, cells = args.size, args.frames, args.cells
    size = f"{height} x {width} px (--size)"
    empty = SyntheticConfig(shape=(height, width), n_frames=1, n_cells=0, seed=args.seed)
    fit = empty.cells_that_fit()
    if cells > fit:
        return f"argument --cells: at most {fit} nuclei fit frames of {size}, got {cells}"
    try:
        start = SyntheticConfig(shape=(height, width), n_frames=1, n_cells=cells, seed=args.seed)
    except InputError as err:  # e.g. a margin of nuclei too large for a tiny frame
        return f"argument --cells: {err}"
    peak = start.estimated_peak_cells(frames)
    if peak > limits.MAX_SYNTHETIC_CELLS:
        return (
            f"argument --frames: over {frames} frames the {cells} nuclei (--cells) would divide "
            f"into about {peak:.3g}, more than the {limits.MAX_SYNTHETIC_CELLS} a simulation "
            f"can hold; use at most --frames {start.max_frames()}"
        )
    pixels = height * width
    movie_bytes = 4 * pixels  # the image and the labels, uint16 each, per frame
    fixed = (
        pixels * limits.SYNTHETIC_WORK_BYTES_PER_PIXEL
        + peak**2 * limits.SYNTHETIC_BYTES_PER_CELL_PAIR
    )
    problem = _over_budget(fixed + frames * movie_bytes)
    if problem is None:
        return None
    budget, _ = limits.memory_budget()
    fit = max(0, int((budget - fixed) // movie_bytes))
    hint = f"use at most --frames {fit}" if fit else "use a smaller --size"
    return f"argument --frames: {frames} frames of {size} need {problem}; {hint}"
