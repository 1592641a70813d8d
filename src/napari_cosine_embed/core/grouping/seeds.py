"""Pixel-seeded masks and seediness (Fathi et al., "Semantic instance segmentation via deep
metric learning", 2017).

A pixel ``p`` of a trained embedding defines the mask ``{q : sim(p, q) >= tau}`` of its object;
here it is restricted to the pixels connected to ``p``, so a far-away object that happens to share
the direction is left out. This is what a click-to-segment tool needs: one matrix-vector product
over the frame and one connected-component labelling.

Seediness scores how good a pixel is as a seed: Fathi et al. learn it; :func:`seediness` is the
unsupervised proxy of how much a pixel's embedding agrees with its neighbourhood, high in object
interiors and low on boundaries and in noise.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ..errors import InputError
from ._validate import check_embedding

__all__ = ["seed_mask", "seediness"]


def _unit(embedding) -> np.ndarray:
    emb = check_embedding(embedding)
    emb = emb.astype(np.float32, copy=False)
    norm = np.sqrt(np.einsum("dyx,dyx->yx", emb, emb))
    return emb / np.maximum(norm, 1e-12)


def _structure(connectivity: int) -> np.ndarray:
    if connectivity not in (1, 2):
        raise InputError(
            f"connectivity must be 1 (4-neighbours) or 2 (8-neighbours), got {connectivity}"
        )
    return ndi.generate_binary_structure(2, connectivity)


def seed_mask(embedding, seed_yx, *, threshold: float, connectivity: int = 1) -> np.ndarray:
    """The object of one seed pixel: connected pixels whose embedding is similar to the seed's.

    Parameters
    ----------
    embedding : array_like of shape (D, Y, X)
        Pixel embeddings, any real dtype; compared by cosine similarity.
    seed_yx : tuple of int
        ``(y, x)`` of the seed pixel, e.g. a click; negative indices are not accepted.
    threshold : float
        Least cosine similarity to the seed's embedding, in [-1, 1]; choose it between the
        typical similarity within an object and that between neighbouring objects.
    connectivity : {1, 2}
        1: 4-connected, 2: 8-connected.

    Returns
    -------
    ndarray of shape (Y, X), bool
        The pixels at similarity >= ``threshold`` connected to the seed through such pixels.

    Raises
    ------
    InputError
        For a seed outside the frame, a seed pixel with a zero embedding or a bad shape.

    Examples
    --------
    >>> emb = np.zeros((2, 3, 5)); emb[0] = 1; emb[:, :, 2] = [[0], [1]]; emb[0, :, 4] = 2
    >>> seed_mask(emb, (1, 0), threshold=0.9).astype(int)
    array([[1, 1, 0, 0, 0],
           [1, 1, 0, 0, 0],
           [1, 1, 0, 0, 0]])
    """
    unit = _unit(embedding)
    structure = _structure(connectivity)
    try:
        y, x = (int(v) for v in seed_yx)
    except (TypeError, ValueError) as err:
        raise InputError(f"seed_yx must be a pair (y, x) of integers, got {seed_yx!r}") from err
    height, width = unit.shape[1:]
    if not (0 <= y < height and 0 <= x < width):
        raise InputError(f"seed {(y, x)} lies outside the frame of shape {(height, width)}")
    if not -1.0 <= threshold <= 1.0:
        raise InputError(f"threshold is a cosine similarity in [-1, 1], got {threshold}")
    direction = unit[:, y, x]
    if not np.any(direction):
        raise InputError(f"the seed pixel {(y, x)} has a zero embedding: it points nowhere")
    similar = np.tensordot(direction, unit, axes=1) >= threshold
    similar[y, x] = True  # rounding must not drop the seed itself at threshold 1
    components, _ = ndi.label(similar, structure=structure)
    return components == components[y, x]


def seediness(embedding, *, radius: int = 1, foreground=None) -> np.ndarray:
    """How much each pixel's embedding agrees with its neighbours', a proxy for Fathi's seediness.

    The mean cosine similarity of a pixel's unit embedding to those of the other pixels in the
    ``(2 radius + 1)^2`` window around it (with ``foreground``, to its foreground neighbours
    only). One box filter per channel: ``e_p . sum_q e_q``.

    Parameters
    ----------
    embedding : array_like of shape (D, Y, X)
        Pixel embeddings.
    radius : int
        Half-width of the square neighbourhood, >= 1.
    foreground : array_like of shape (Y, X), optional
        Only foreground pixels count as neighbours, and background pixels score 0.

    Returns
    -------
    ndarray of shape (Y, X), float32
        Scores in [-1, 1]; high in object interiors, low on boundaries and where pixels have no
        neighbour.

    Examples
    --------
    >>> emb = np.zeros((2, 3, 4)); emb[0, :, :2] = 1; emb[1, :, 2:] = 1
    >>> seediness(emb).round(2)
    array([[1.  , 0.6 , 0.6 , 1.  ],
           [1.  , 0.62, 0.62, 1.  ],
           [1.  , 0.6 , 0.6 , 1.  ]], dtype=float32)
    """
    unit = _unit(embedding)
    if radius < 1:
        raise InputError(f"radius must be >= 1, got {radius}")
    if foreground is None:
        weight = np.ones(unit.shape[1:], np.float32)
    else:
        weight = np.asarray(foreground).astype(np.float32)
        if weight.shape != unit.shape[1:]:
            raise InputError(
                f"foreground has shape {weight.shape} but the embedding's frame is {unit.shape[1:]}"
            )
        unit = unit * weight
    size = 2 * radius + 1

    def box(a):
        return ndi.uniform_filter(a, size=size, mode="constant") * size**2

    neighbours = box(weight) - weight
    total = np.stack([box(channel) for channel in unit])
    agree = np.einsum("dyx,dyx->yx", unit, total) - weight  # minus the pixel itself
    out = np.divide(agree, neighbours, out=np.zeros_like(agree), where=neighbours > 0.5)
    return np.clip(out, -1.0, 1.0).astype(np.float32, copy=False)
