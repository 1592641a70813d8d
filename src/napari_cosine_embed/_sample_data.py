"""napari sample data: a synthetic time-lapse with exact ground truth, and a few CC0 DSB images."""

from __future__ import annotations

from dataclasses import asdict
from importlib.resources import files
from typing import Any

import numpy as np
import tifffile

from ._reader import axis_labels
from .core.io.lineage import tracks_from_labels
from .core.synthetic import SyntheticConfig, synthetic_timelapse

LayerData = tuple[Any, dict[str, Any], str]

# Small enough to generate in about a second, large enough to show motion, contact and divisions.
SAMPLE_CONFIG = SyntheticConfig(shape=(256, 256), n_frames=40, n_cells=14, seed=2018)


def synthetic_timelapse_sample() -> list[LayerData]:
    """The synthetic nuclei movie, its ground-truth labels and its lineage as tracks."""
    movie = synthetic_timelapse(SAMPLE_CONFIG)
    tracks, graph = tracks_from_labels(movie.labels, movie.lineage)
    meta = {"synthetic_config": asdict(SAMPLE_CONFIG)}
    axes = axis_labels(3)
    return [
        (movie.image, {"name": "synthetic nuclei", "metadata": meta, "axis_labels": axes}, "image"),
        (
            movie.labels,
            {"name": "synthetic nuclei GT", "opacity": 0.4, "axis_labels": axes},
            "labels",
        ),
        (
            tracks,
            {
                "name": "synthetic nuclei GT tracks",
                "graph": graph,
                "tail_length": 10,
                "axis_labels": axes,
            },
            "tracks",
        ),
    ]


def dsb2018_images() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """The bundled DSB 2018 images as ``(id, image (Y, X) uint8, masks (Y, X) uint16)``."""
    folder = files("napari_cosine_embed") / "data" / "dsb2018"
    out = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith("_image.tif"):
            stem = entry.name[: -len("_image.tif")]
            image = tifffile.imread(str(entry))
            masks = tifffile.imread(str(folder / f"{stem}_masks.tif"))
            out.append((stem, image, masks))
    return out


def dsb2018_sample() -> list[LayerData]:
    """Four DSB 2018 fluorescence nuclei images (CC0) with their instance masks."""
    layers: list[LayerData] = []
    for stem, image, masks in dsb2018_images():
        layers.append((image, {"name": f"dsb {stem}"}, "image"))
        layers.append((masks, {"name": f"dsb {stem} masks", "opacity": 0.4}, "labels"))
    return layers
