"""The CC0 dsb2018-fluo nuclei images: their folder layout and a fixed train / held-out split.

The split
---------
An image is held out when ``int(sha256(id).hexdigest()[:8], 16) % 5 == 0`` (about 20 %, 94 of
the 428). The rule depends on nothing but the id, so it is the same on every machine and for
every subset; held-out images are never used for training (asking for one raises), they are the
validation set.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import InputError

__all__ = ["dsb_held_out", "read_dsb"]


def dsb_held_out(image_id: str) -> bool:
    """Whether a dsb2018-fluo image is in the held-out (validation) part; see module notes."""
    return int(hashlib.sha256(image_id.encode()).hexdigest()[:8], 16) % 5 == 0


def _dsb_ids(folder: Path) -> list[str]:
    return sorted(p.stem for p in (folder / "images").glob("*.tif"))


def read_dsb(
    folder: str | os.PathLike,
    ids: Sequence[str] | None = None,
    *,
    split: str = "train",
    limit: int | None = None,
) -> tuple[list[str], list[tuple[np.ndarray, np.ndarray]]]:
    """Read images and masks (``images/<id>.tif``, ``masks/<id>.tif``) of one side of the split.

    Parameters are those of :func:`~napari_cosine_embed.core.training.from_dsb`. Returns the
    sorted ids and, for each, its ``(image, mask)`` of shape (Y, X).
    """
    import tifffile

    folder = Path(folder)
    if split not in ("train", "held_out"):
        raise ValueError(f"split must be 'train' or 'held_out', got {split!r}")
    if not (folder / "images").is_dir() or not (folder / "masks").is_dir():
        raise InputError(f"{folder}: expected the dsb2018-fluo layout (images/, masks/)")
    want_held_out = split == "held_out"
    if ids is None:
        ids = [i for i in _dsb_ids(folder) if dsb_held_out(i) == want_held_out]
    else:
        wrong = [i for i in ids if dsb_held_out(i) != want_held_out]
        if wrong:
            raise InputError(
                f"{len(wrong)} of the given ids belong to the other side of the split "
                f"(e.g. {wrong[0]}); held-out images are never used for training"
            )
    ids = sorted(ids)[:limit]
    pairs = []
    for image_id in ids:
        try:
            image = tifffile.imread(folder / "images" / f"{image_id}.tif")
            mask = tifffile.imread(folder / "masks" / f"{image_id}.tif")
        except (OSError, ValueError) as exc:
            raise InputError(f"{folder}: cannot read image {image_id} ({exc})") from exc
        pairs.append((image, mask))
    return ids, pairs
