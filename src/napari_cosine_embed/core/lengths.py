"""Lengths written with a unit ("12 um", "8 µm", "0.01 mm"), and their size in pixels.

A user knows their cells in microns; the pipeline works in pixels. :func:`physical_length`
reads a length with a physical unit, :func:`to_pixels` converts it with a pixel size (microns
per pixel, e.g. what a TIFF records: :func:`~.io.pixel_size.read_pixel_size`).
"""

from __future__ import annotations

import math
import re

from .errors import InputError

__all__ = ["MICRONS_PER", "physical_length", "to_pixels"]

#: Microns in one unit, for the unit names users, ImageJ and OME write.
MICRONS_PER = {
    "micron": 1.0,
    "microns": 1.0,
    "um": 1.0,
    "µm": 1.0,
    "μm": 1.0,  # Greek mu, as some writers spell it
    "\\u00b5m": 1.0,  # ImageJ's escaped form
    "nm": 1e-3,
    "mm": 1e3,
    "cm": 1e4,
    "m": 1e6,
}

_LENGTH = re.compile(r"([-+]?[0-9]*\.?[0-9]+(?:e[-+]?[0-9]+)?)\s*([a-zµμ]+)?")
_PIXELS = ("px", "pixel", "pixels")


def physical_length(text: str, *, what: str = "length") -> tuple[float, str] | None:
    """``(value, unit)`` for a length written with a physical unit ("12 um", "8µm"), or None
    for anything else (a bare number, pixels, "auto"). An unknown unit is refused."""
    match = _LENGTH.fullmatch(text.strip().lower())
    if match is None or match.group(2) is None or match.group(2) in _PIXELS:
        return None
    unit = match.group(2)
    if unit not in MICRONS_PER:
        raise InputError(
            f"{what} {text!r}: unknown unit {unit!r}; give pixels (a number, or 'px') or "
            "microns ('um', 'µm', 'micron')"
        )
    return float(match.group(1)), unit


def to_pixels(
    text: str, value: float, unit: str, pixel_size: float | None, *, what: str = "length"
) -> float:
    """``value`` ``unit`` in pixels of ``pixel_size`` microns; refused without a pixel size."""
    if pixel_size is None:
        raise InputError(
            f"{what} {text!r} is in {unit}, but the pixel size is not known (the file records none): "
            "give the pixel size in microns (segment --pixel-size) or the length in pixels"
        )
    if not (math.isfinite(pixel_size) and pixel_size > 0):
        raise InputError(f"pixel size must be a positive number of microns, got {pixel_size}")
    return value * MICRONS_PER[unit] / pixel_size
