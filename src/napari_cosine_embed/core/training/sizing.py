"""Fine-tuning at a size the crops can hold: curated objects too large for them are shrunk.

A crop must hold whole objects and some of their surroundings for the embedding loss to teach
where one object ends and the next begins: 192 px crops of cells 130 px across show pieces of
cells, and fine-tuning on them made whole-cell segmentation worse (docs/models.md). So the
curated frames are rescaled, before training, until their median object diameter is at most
``crop / CROP_DIAMETERS``; the tuned model records the object size it learned
(``record["diameter_range"]``), and inference (:mod:`..size_plan`) brings movies to that size.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from ..diameter import equivalent_diameters
from .data import TrainingData, _Pool

__all__ = ["CROP_DIAMETERS", "RANGE_FACTOR", "curated_diameter", "fit_to_crop", "rescaled"]

#: A training crop spans at least this many median object diameters.
CROP_DIAMETERS = 2.5
#: A model tuned on rescaled objects of diameter d is used on objects of d / f to d * f.
RANGE_FACTOR = 1.15


def curated_diameter(data: TrainingData) -> float | None:
    """The median equivalent diameter (pixels) of the objects in the labelled frames."""
    found = []
    for seq in data.sequences:
        for t in np.flatnonzero(seq.labelled):
            labels = seq.labels[t]
            if seq.ignore is not None:
                labels = np.where(seq.ignore[t], 0, labels)
            found.append(equivalent_diameters(labels, min_area=4))
    values = np.concatenate(found) if found else np.zeros(0)
    return float(np.median(values)) if values.size else None


def _resize_stack(stack: np.ndarray, shape: tuple[int, int], *, order: int) -> np.ndarray:
    from skimage.transform import resize

    out = [
        resize(
            frame,
            shape,
            order=order,
            anti_aliasing=order > 0,
            preserve_range=True,
        ).astype(stack.dtype if order == 0 else np.float32, copy=False)
        for frame in stack
    ]
    return np.stack(out)


def rescaled(data: TrainingData, scale: float) -> TrainingData:
    """``data`` with every frame resized by ``scale`` (images bilinear, labels nearest)."""
    pools = []
    for pool in data.pools:
        sequences = []
        for seq in pool.sequences:
            shape = tuple(max(8, round(s * scale)) for s in seq.image.shape[1:])
            sequences.append(
                replace(
                    seq,
                    image=_resize_stack(seq.image.astype(np.float32), shape, order=1),
                    labels=_resize_stack(seq.labels, shape, order=0),
                    ignore=None
                    if seq.ignore is None
                    else _resize_stack(seq.ignore, shape, order=0),
                )
            )
        description = {**pool.description, "scale": round(scale, 4)}
        pools.append(_Pool(sequences, pool.weight, description))
    return TrainingData(pools, data.normalisation)


def fit_to_crop(data: TrainingData, crop: int) -> tuple[TrainingData, dict[str, Any]]:
    """Shrink ``data`` when its objects are too large for ``crop``; say what was done.

    Returns the data (``data`` itself when nothing changes) and a record: the curated median
    diameter, the scale applied, and the diameter range the tuned model is for (None when the
    data was not rescaled: the model keeps the sizes its base handled).
    """
    diameter = curated_diameter(data)
    largest = crop / CROP_DIAMETERS
    if diameter is None or diameter <= largest:
        return data, {"curated_diameter": diameter, "scale": 1.0, "diameter_range": None}
    scale = largest / diameter
    model_diameter = diameter * scale
    record = {
        "curated_diameter": round(diameter, 2),
        "scale": round(scale, 4),
        "diameter_range": [
            round(model_diameter / RANGE_FACTOR, 2),
            round(model_diameter * RANGE_FACTOR, 2),
        ],
    }
    return rescaled(data, scale), record
