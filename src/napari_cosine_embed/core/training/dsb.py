"""The CC0 DSB 2018 nuclei images: their folder layout and a fixed train / held-out split.

Two folders share the layout (``images/<id>.tif``, ``masks/<id>.tif``): ``dsb2018-fluo``
(fluorescence) and ``dsb2018-nonfluo`` (dark nuclei on bright backgrounds: brightfield and
stained tissue). A folder whose name contains ``nonfluo`` is read as the latter.

The split
---------
A fluorescence image is held out when ``int(sha256(id).hexdigest()[:8], 16) % 5 == 0`` (about
20 %, 94 of the 428). None of the 102 non-fluorescence images we have satisfies that rule (the
images it selects are kept elsewhere, for judging the project), so they use the next 8 hex
digits instead: ``int(sha256(id).hexdigest()[8:16], 16) % 5 == 0`` (24 of the 102). The rules
depend on nothing but the id, so they are the same on every machine and for every subset;
held-out images are never used for training (asking for one raises), they are the validation
set.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import InputError

__all__ = ["dsb_held_out", "dsb_kind", "read_dsb"]

_DIGITS = {"fluo": slice(0, 8), "nonfluo": slice(8, 16)}


def dsb_held_out(image_id: str, kind: str = "fluo") -> bool:
    """Whether a DSB image (``kind`` "fluo" or "nonfluo") is held out; see module notes."""
    digits = hashlib.sha256(image_id.encode()).hexdigest()[_DIGITS[kind]]
    return int(digits, 16) % 5 == 0


def dsb_kind(folder: str | os.PathLike) -> str:
    """ "nonfluo" for a folder named like ``dsb2018-nonfluo``, else "fluo"."""
    return "nonfluo" if "nonfluo" in Path(folder).name else "fluo"


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
        raise InputError(f"{folder}: expected the DSB 2018 layout (images/, masks/)")
    want_held_out, kind = split == "held_out", dsb_kind(folder)
    if ids is None:
        ids = [i for i in _dsb_ids(folder) if dsb_held_out(i, kind) == want_held_out]
    else:
        wrong = [i for i in ids if dsb_held_out(i, kind) != want_held_out]
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
