"""The pixel size a file records, and diameters given in microns."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_cosine_embed.core.diameter import parse_diameter
from napari_cosine_embed.core.errors import InputError
from napari_cosine_embed.core.io.pixel_size import read_pixel_size
from napari_cosine_embed.core.lengths import physical_length

MOVIE = np.zeros((2, 16, 24), np.uint16)


@pytest.mark.parametrize(
    ("write", "expected"),
    [
        ({"imagej": True, "resolution": (1 / 0.65, 1 / 0.65), "metadata": {"unit": "um"}}, 0.65),
        ({"imagej": True, "resolution": (2.0, 2.0), "metadata": {"unit": "micron"}}, 0.5),
        ({"metadata": {"axes": "TYX", "PhysicalSizeX": 0.325, "PhysicalSizeXUnit": "µm"}}, 0.325),
        ({"metadata": {"axes": "TYX", "PhysicalSizeX": 108, "PhysicalSizeXUnit": "nm"}}, 0.108),
        ({"imagej": True}, None),  # ImageJ without a unit: pixels
        ({}, None),
    ],
)
def test_pixel_size_from_imagej_and_ome_tiffs(tmp_path, write, expected):
    name = "m.ome.tif" if "PhysicalSizeX" in write.get("metadata", {}) else "m.tif"
    tifffile.imwrite(tmp_path / name, MOVIE, **write)
    found = read_pixel_size(tmp_path / name)
    if expected is None:
        assert found is None
    else:
        assert found == pytest.approx(expected, rel=1e-5)


def test_no_pixel_size_from_what_records_none(tmp_path):
    (tmp_path / "broken.tif").write_bytes(b"II*\x00 not really a tiff")
    (tmp_path / "frame.png").write_bytes(b"\x89PNG")
    assert read_pixel_size(tmp_path / "broken.tif") is None  # the pixel reader reports it
    assert read_pixel_size(tmp_path / "frame.png") is None
    assert read_pixel_size(tmp_path / "missing.tif") is None
    assert read_pixel_size(tmp_path) is None


@pytest.mark.parametrize(
    ("text", "pixel_size", "pixels"),
    [("12um", 0.5, 24.0), ("12 µm", 0.5, 24.0), ("12 μm", 0.5, 24.0), ("12 microns", 0.25, 48.0),
     ("0.012mm", 0.5, 24.0), ("30 px", None, 30.0), ("30", None, 30.0), ("3e1", None, 30.0)],
)  # fmt: skip
def test_diameter_in_microns_becomes_pixels(text, pixel_size, pixels):
    assert parse_diameter(text, pixel_size=pixel_size) == pytest.approx(pixels)


def test_microns_need_a_pixel_size_and_a_known_unit():
    assert physical_length("12um") == (12.0, "um")
    assert physical_length("12") is None
    assert physical_length("auto") is None
    with pytest.raises(InputError, match="pixel size is not known"):
        parse_diameter("12um")
    with pytest.raises(InputError, match="unknown unit 'furlongs'"):
        parse_diameter("12 furlongs", pixel_size=1.0)
    with pytest.raises(InputError, match="positive number of microns"):
        parse_diameter("12um", pixel_size=0.0)
    with pytest.raises(InputError, match=r"in \[2, 2000\]"):
        parse_diameter("0.5um", pixel_size=1.0)  # half a pixel
