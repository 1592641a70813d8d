"""The accepted range of every numeric parameter, and the memory a job would need.

One table per configuration: :data:`PIPELINE` (:class:`~.pipeline.PipelineConfig`),
:data:`TRAIN` (:class:`~.training.TrainConfig`), :data:`MODEL`
(:class:`~.models.ModelConfig`) and :data:`SYNTHETIC` (:class:`~.synthetic.SyntheticConfig`).
Each configuration checks its fields against its table when it is built, whether from code, a
``settings.json`` or a checkpoint record, and the command line builds its option types from the
same entries, so the two cannot disagree. Only the standard library is imported here: the
command line reads these tables before it imports numpy or torch.

The bounds are wide: they refuse what is meaningless (a negative size, a threshold above 1, NaN)
or what no machine could hold (a tile of a million pixels a side), not unusual choices.

Examples
--------
>>> PIPELINE["bandwidth"].describe()
'a number in (0, 2]'
>>> PIPELINE["min_size"].check(30, "min_size")
30
>>> PIPELINE["min_size"].check(-1, "min_size")
Traceback (most recent call last):
...
napari_cosine_embed.core.errors.InputError: min_size must be an integer in [0, 10000000], got -1
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import InputError

__all__ = [
    "MAX_SYNTHETIC_CELLS",
    "MODEL",
    "PIPELINE",
    "SEED",
    "SYNTHETIC",
    "SYNTHETIC_BYTES_PER_CELL_PAIR",
    "SYNTHETIC_WORK_BYTES_PER_PIXEL",
    "TRAIN",
    "TRAIN_BYTES_PER_PIXEL",
    "Range",
    "available_memory",
    "check_choice",
    "check_fields",
    "check_flag",
    "check_text",
    "format_bytes",
    "memory_budget",
]


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else f"{value:g}"


@dataclass(frozen=True)
class Range:
    """The numbers a parameter accepts: integers, or finite reals, between two bounds.

    Attributes
    ----------
    kind : {int, float}
        ``int`` accepts integers only (not ``True``, not ``2.0``); ``float`` accepts any finite
        real number, integers included, never NaN or infinity.
    low, high : float or None
        The bounds; None leaves that side open-ended.
    low_open, high_open : bool
        Exclude the bound itself.
    optional : bool
        None is accepted too (it means "choose for me").
    """

    kind: type
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    optional: bool = False

    def describe(self) -> str:
        """The accepted values in words, e.g. ``"an integer >= 1"``, ``"a number in (0, 1]"``."""
        what = "an integer" if self.kind is int else "a number"
        low, high = self.low, self.high
        if low is not None and high is not None:
            text = (
                f"{what} in {'(' if self.low_open else '['}{_number(low)}, "
                f"{_number(high)}{')' if self.high_open else ']'}"
            )
        elif low is not None:
            text = f"{what} {'>' if self.low_open else '>='} {_number(low)}"
        elif high is not None:
            text = f"{what} {'<' if self.high_open else '<='} {_number(high)}"
        else:
            text = "an integer" if self.kind is int else "a finite number"
        return text + (" or None" if self.optional else "")

    def contains(self, value: float) -> bool:
        """Whether a number of the right kind lies within the bounds."""
        if self.kind is float and not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def check(self, value: Any, name: str) -> Any:
        """``value`` as a plain ``int`` or ``float``, or :class:`InputError` naming ``name``.

        numpy scalars become Python numbers, so a checked value always writes to JSON.
        """
        if value is None and self.optional:
            return None
        if self.kind is int:
            ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
            number = int(value) if ok else None
        else:
            ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
            number = float(value) if ok else None
        if number is None or not self.contains(number):
            raise InputError(f"{name} must be {self.describe()}, got {value!r}")
        return number

    def parse(self, text: str) -> int | float:
        """A number typed as text (an option's value) -> the checked number, or ``ValueError``.

        The message is the accepted range and what was typed, without a name: the caller
        knows the option.
        """
        try:
            value = int(text) if self.kind is int else float(text)
        except ValueError:
            raise ValueError(f"must be {self.describe()}, got {text!r}") from None
        if not self.contains(value):
            raise ValueError(f"must be {self.describe()}, got {text!r}")
        return value


def check_flag(value: Any, name: str) -> bool:
    """``value`` as a ``bool``; a string such as ``"false"`` is refused, not taken as true."""
    if isinstance(value, bool) or type(value).__name__ == "bool_":  # numpy's bool too
        return bool(value)
    raise InputError(f"{name} must be true or false, got {value!r}")


def check_choice(value: Any, name: str, choices: Iterable[Any]) -> Any:
    """``value`` if it is one of ``choices``, else :class:`InputError` listing them."""
    choices = tuple(choices)
    if isinstance(value, str | int) and not isinstance(value, bool) and value in choices:
        return value
    raise InputError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")


def check_text(value: Any, name: str) -> str:
    """``value`` if it is a non-empty string (a model name, a device)."""
    if isinstance(value, str) and value.strip():
        return value
    raise InputError(f"{name} must be a non-empty text, got {value!r}")


def check_fields(config: Any, limits: Mapping[str, Range], *, prefix: str = "") -> None:
    """Check the numeric fields of a dataclass instance, replacing each by its plain number.

    Works on frozen dataclasses too (call it from ``__post_init__``). ``prefix`` goes before
    each field's name in the message, e.g. ``"ModelConfig."``.
    """
    for name, limit in limits.items():
        value = getattr(config, name)
        checked = limit.check(value, prefix + name)
        if checked is not value:
            object.__setattr__(config, name, checked)


#: Seeds of random generators: numpy and torch accept any of these.
SEED = Range(int, 0, 2**32 - 1)

#: :class:`~.pipeline.PipelineConfig`, also the options of ``segment`` and ``track``.
PIPELINE: dict[str, Range] = {
    # Inference keeps about 500 bytes per pixel of a tile alive (default network), so a 4096 px
    # tile needs some 8 GB; below 64 px the overlap is most of every tile.
    "tile_size": Range(int, 64, 4096),
    "tile_overlap": Range(int, 0, 2048),
    "state_window": Range(int, 1, 100_000, optional=True),
    "warmup": Range(int, 0, 1000),
    "foreground_threshold": Range(float, 0, 1, optional=True),
    "foreground_smoothing": Range(float, 0, 100),
    "min_samples": Range(int, 1, 1000),
    # HDBSCAN needs two points to make a cluster
    "min_cluster_size": Range(int, 2, 10_000_000),
    "coord_weight": Range(float, 0, 1000),
    "cluster_selection_epsilon": Range(float, 0, 1000),
    "object_size": Range(float, 1, 10_000),
    # 1 - cosine lies in [0, 2]: a wider kernel merges everything
    "bandwidth": Range(float, 0, 2, low_open=True),
    "min_size": Range(int, 0, 10_000_000),
    "split_depth": Range(float, 0, 1, high_open=True),
    # 0 would link instances that do not overlap at all
    "min_iou": Range(float, 0, 1, low_open=True),
    "min_child_overlap": Range(float, 0, 1, low_open=True),
    "min_track_length": Range(int, 1, 100_000),
    "min_split_frames": Range(int, 1, 100_000),
    "min_child_ratio": Range(float, 0, 1),
    "max_gap": Range(int, 0, 1000),
    "max_gap_distance": Range(float, 0, 100_000),
    "split_back": Range(int, 0, 1000),
    "split_back_depth": Range(float, 0, 1, high_open=True),
}

#: :class:`~.training.TrainConfig`, also the options of ``train`` and ``finetune``.
TRAIN: dict[str, Range] = {
    "steps": Range(int, 1, 10_000_000),
    "batch_size": Range(int, 1, 256),
    # the network pools a 32 px crop down to a few pixels already; larger crops than the
    # frames are padded (and ignored by the losses), so this bounds memory, not the data
    "crop": Range(int, 32, 2048),
    "clip_length": Range(int, 1, 64),
    "bptt": Range(int, 0, 64),
    "lr": Range(float, 0, 1, low_open=True),
    "weight_decay": Range(float, 0, 1),
    "warmup": Range(int, 0, 10_000_000),
    "min_lr": Range(float, 0, 1),
    "foreground_weight": Range(float, 0, 1000),
    # the cosine loss walks every offset of a disc of this radius
    "neighbour_radius": Range(float, 0, 64),
    "seed": SEED,
    "val_every": Range(int, 0, 10_000_000),
    "log_every": Range(int, 0, 10_000_000),
    "checkpoint_every": Range(int, 0, 10_000_000),
    "grad_clip": Range(float, 0, 1e6),
    "foreground_crops": Range(float, 0, 1),
    "frozen_stacks": Range(int, 0, 64),
    # a band of the curated frames kept out of the foreground loss; more than half leaves too little
    "calibration_holdout": Range(float, 0, 0.5),
}

#: :class:`~.models.ModelConfig` (``input_stride`` is 1 or 2, checked there).
MODEL: dict[str, Range] = {
    "stacks": Range(int, 1, 8),
    # frames are padded to a multiple of 2 ** (levels - 1): 8 levels already pad to 128 px
    "levels": Range(int, 1, 8),
    "filters": Range(int, 1, 256),
    # a unit vector of one component is only +1 or -1
    "embedding_dim": Range(int, 2, 256),
    "in_channels": Range(int, 1, 16),
    "first_recurrent_level": Range(int, 0, 7),
}

#: Most nuclei a synthetic movie may hold at once: their mutual repulsion costs memory
#: quadratic in their number (:data:`SYNTHETIC_BYTES_PER_CELL_PAIR`), about 5 GB here.
MAX_SYNTHETIC_CELLS = 8192

#: :class:`~.synthetic.SyntheticConfig`'s scalar fields (its ranges of two numbers are
#: checked there, each end against the entry of the same name).
SYNTHETIC: dict[str, Range] = {
    "shape": Range(int, 16, 16_384),
    "n_frames": Range(int, 1, 100_000),
    "n_cells": Range(int, 0, MAX_SYNTHETIC_CELLS),
    "radius": Range(float, 0, 1000, low_open=True),
    "aspect": Range(float, 1, 20),
    "deformation": Range(float, 0, 1),
    "speed": Range(float, 0, 1000),
    # cells dividing more often than every frame double without end
    "cycle_length": Range(float, 1, 1e6),
    "max_cells": Range(int, 1, MAX_SYNTHETIC_CELLS // 2, optional=True),
    "overlap": Range(float, 0, 1, high_open=True),
    "brightness": Range(float, 0, 1e6, low_open=True),
    "texture": Range(float, 0, 10),
    # each nucleolus is a texture patch per nucleus
    "nucleoli": Range(int, 0, 20),
    "clumps": Range(float, 0, 1000),
    "dome": Range(float, 0, 1),
    "out_of_focus": Range(float, 0, 1),
    "background": Range(float, 0, 1e6),
    "illumination": Range(float, 0, 1),
    "offset": Range(float, 0, 65_535),
    "gain": Range(float, 0, 1e4, low_open=True),
    "read_noise": Range(float, 0, 1e4),
    "blur": Range(float, 0, 100),
    "bleaching": Range(float, 0, 1),
    "contrast": Range(float, 0, 100),
    "halo": Range(float, 0, 100),
    "min_area": Range(int, 0, 10_000_000),
    "seed": Range(int, 0, 2**63 - 1),
}

# Memory estimates, measured on CPU with ru_maxrss (see the numbers' comments); they are about
# right for the defaults, which is what an up-front refusal needs.

#: A training step of the default network (32 filters, input stride 2) keeps 1.1-1.6 kB alive
#: per pixel of the batch (batch x clip length x crop x crop), gradients included.
TRAIN_BYTES_PER_PIXEL = 1536
#: Simulating one synthetic frame works on about a dozen float64 images of its size.
SYNTHETIC_WORK_BYTES_PER_PIXEL = 200
#: The repulsion step of a synthetic movie builds several (n, n) float64 arrays of n nuclei.
SYNTHETIC_BYTES_PER_CELL_PAIR = 80

#: Assumed when the free memory cannot be read (neither Linux nor a POSIX ``sysconf``).
FALLBACK_MEMORY = 8 << 30


def available_memory() -> int | None:
    """Bytes of memory a new job can use now: Linux's MemAvailable, else the physical memory.

    None where neither can be read.
    """
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None


def memory_budget() -> tuple[int, str]:
    """The bytes a job may plan to use, and how to say where that number came from."""
    available = available_memory()
    if available is None:
        return FALLBACK_MEMORY, f"the assumed {format_bytes(FALLBACK_MEMORY)} of memory"
    return available, f"the {format_bytes(available)} of memory available"


def format_bytes(n: float) -> str:
    """``1536`` -> ``"1.5 KiB"``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")
