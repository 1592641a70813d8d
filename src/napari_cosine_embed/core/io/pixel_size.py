"""The physical pixel size a file records, so a diameter can be given in microns.

TIFF only: ImageJ hyperstacks keep it as the X resolution tag (pixels per unit) with the unit in
their metadata; OME-TIFF keeps ``PhysicalSizeX`` (and its unit) in the OME XML. Only the tags
are read, never the pixels. Other formats (CTC folders, videos, PNG) record none: the user then
gives it (``segment --pixel-size``) or a diameter in pixels.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

from ..lengths import MICRONS_PER

__all__ = ["read_pixel_size"]


def read_pixel_size(path: str | os.PathLike) -> float | None:
    """Microns per pixel along X that a TIFF records, or None (none recorded, or not a TIFF).

    Never raises for a file it cannot read: the pixel size is a convenience, and the reader
    that loads the pixels reports a broken file.
    """
    path = Path(path)
    if not path.is_file() or not path.name.lower().endswith((".tif", ".tiff")):
        return None
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            if tif.is_ome and tif.ome_metadata:
                return _ome_size(tif.ome_metadata)
            if tif.is_imagej:
                unit = str((tif.imagej_metadata or {}).get("unit", "")).strip().lower()
                tag = tif.pages[0].tags.get("XResolution")
                if tag is None or unit not in MICRONS_PER:
                    return None
                numerator, denominator = tag.value
                if numerator <= 0:
                    return None
                return _valid(denominator / numerator * MICRONS_PER[unit])
    except Exception:  # a damaged header is the pixel reader's to report
        return None
    return None


def _ome_size(xml: str) -> float | None:
    pixels = re.search(r"<(?:\w+:)?Pixels\b[^>]*>", xml)
    if pixels is None:
        return None
    size = re.search(r'\bPhysicalSizeX="([^"]+)"', pixels.group(0))
    unit = re.search(r'\bPhysicalSizeXUnit="([^"]+)"', pixels.group(0))
    if size is None:
        return None
    factor = MICRONS_PER.get((unit.group(1) if unit else "µm").strip().lower())
    try:
        value = float(size.group(1))
    except ValueError:
        return None
    return None if factor is None else _valid(value * factor)


def _valid(value: float) -> float | None:
    """A plausible pixel size (1 nm to 1 mm), or None."""
    return value if math.isfinite(value) and 1e-3 <= value <= 1e3 else None
