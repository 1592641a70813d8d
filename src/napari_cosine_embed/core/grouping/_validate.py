"""Input checks the groupers share."""

from __future__ import annotations

import numpy as np

from ..errors import InputError


def check_embedding(embedding) -> np.ndarray:
    """``embedding`` as an array of shape (D, Y, X) of real numbers (any dtype), or raise."""
    emb = np.asarray(embedding)
    if emb.ndim != 3 or min(emb.shape) < 1:
        raise InputError(f"embedding must have shape (D, Y, X), got {emb.shape}")
    if not (
        np.issubdtype(emb.dtype, np.floating)
        or np.issubdtype(emb.dtype, np.integer)
        or emb.dtype == bool
    ):
        raise InputError(f"embedding must be real numbers, got dtype {emb.dtype}")
    return emb
