"""Random :class:`~napari_cosine_embed.core.synthetic.SyntheticConfig` draws: training data
that covers many imaging conditions."""

from __future__ import annotations

import numpy as np

from .synthetic import SyntheticConfig

__all__ = ["random_config"]


def random_config(
    *, seed: int, crowded: float = 0.0, other_kinds: float = 0.0, **fixed
) -> SyntheticConfig:
    """Draw a varied configuration, for training data that covers many imaging conditions.

    The draws span dim, photon-starved nuclei with bright chromatin clumps on a camera offset,
    their body barely above the background (like Fluo-N2DH-SIM+; 40 % of draws have clumps) and large, smooth, very unevenly bright nuclei with dark nucleoli on
    a black background (like Fluo-N2DH-GOWT1), with typical diameters from 12 to 60 px.

    Parameters
    ----------
    seed : int
        Seeds the draw and becomes the configuration's seed.
    crowded : float
        Chance that a draw is crowded: 1.5-2.5 times as many nuclei, allowed to press 15-30 %
        into each other, so that touching pairs are common (like dividing Fluo-N2DH-SIM+
        nuclei). The default 0 draws exactly what earlier versions drew.
    other_kinds : float
        Chance that a draw is not fluorescent nuclei but one of the kinds of image the
        nuclei-only draws miss (:func:`_other_kind`): rod-shaped bacteria in phase contrast,
        large flat whole cells with irregular outlines at low contrast, dark stained nuclei in
        brightfield, or round cells in phase contrast. The default 0 draws exactly what
        earlier versions drew.
    **fixed
        Fields to set rather than draw, e.g. ``shape`` or ``n_frames``.

    Returns
    -------
    SyntheticConfig

    Examples
    --------
    >>> cfg = random_config(seed=4, shape=(128, 128), n_frames=1)
    >>> cfg.shape, cfg.n_frames, cfg.seed
    ((128, 128), 1, 4)
    """
    rng = np.random.default_rng(seed)
    uni, log = _draws(rng)

    shape = tuple(fixed.get("shape", (256, 256)))
    mid, low, cycle, coin = log(6, 30), log(1.5, 60), uni(20, 80), rng.integers(2, size=3).tolist()
    high, dtype = low * log(1.5, 15), ("uint8", "uint16")[coin[0]]
    offset = uni(0, 120) if dtype == "uint16" else uni(5, 30) * coin[1]
    gain = log(0.5, 5) if dtype == "uint16" else min(log(0.5, 5), (250 - offset) / (2 * high))
    drawn = {
        "shape": shape, "radius": (0.75 * mid, 1.3 * mid), "cycle_length": (cycle, 2 * cycle),
        "n_cells": max(2, int(uni(0.03, 0.3) * np.prod(shape) / (np.pi * mid**2))),  # 3-30% cover
        "aspect": (1.0, uni(1.1, 1.8)), "deformation": uni(0.02, 0.15),
        "speed": uni(0.5, 1 + 0.15 * mid), "brightness": (low, high), "texture": uni(0, 1),
        "nucleoli": int(rng.integers(4)), "dome": uni(0, 1), "out_of_focus": uni(0, 0.3) * coin[2],
        "background": uni(0, 0.5) * low, "illumination": uni(0, 0.4), "offset": offset,
        "gain": gain, "read_noise": uni(0.3, 5), "blur": uni(0.5, 2.5), "bleaching": uni(0, 0.01),
        "dtype": dtype, "seed": seed,
    }  # fmt: skip
    # drawn last, so that the draws above stay as they were before clumps existed
    drawn["clumps"] = log(2, 25) if rng.uniform() < 0.4 else 0.0
    if crowded > 0 and rng.uniform() < crowded:  # after everything else, for the same reason
        drawn["n_cells"] = int(drawn["n_cells"] * uni(1.5, 2.5))
        drawn["overlap"] = uni(0.15, 0.3)
    if other_kinds > 0 and rng.uniform() < other_kinds:  # last, for the same reason
        drawn.update(_other_kind(rng, shape, drawn))
    return SyntheticConfig(**{**drawn, **fixed})


def _draws(rng: np.random.Generator):
    """Uniform and log-uniform draws of one number in [lo, hi] from ``rng``."""

    def uni(lo: float, hi: float) -> float:
        return float(rng.uniform(lo, hi))

    def log(lo: float, hi: float) -> float:
        return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))

    return uni, log


def _other_kind(rng: np.random.Generator, shape: tuple, drawn: dict) -> dict:
    """Fields that turn a nuclei draw into one of the other kinds (see :func:`random_config`)."""
    uni, log = _draws(rng)

    def count(cover: float, mid: float) -> int:
        return max(2, int(cover * np.prod(shape) / (np.pi * mid**2)))

    kind = ("rods", "flat cells", "dark nuclei", "phase cells")[int(rng.integers(4))]
    if kind == "rods":  # a dense colony of small elongated bacteria, growing and dividing
        mid = log(5, 9)
        return {
            "radius": (0.8 * mid, 1.2 * mid), "aspect": (uni(2.5, 4), uni(4, 7)),
            "n_cells": count(uni(0.15, 0.45), mid), "overlap": uni(0.1, 0.25),
            "deformation": uni(0.0, 0.04), "texture": uni(0, 0.3), "nucleoli": 0, "clumps": 0.0,
            "dome": uni(0.3, 1), "speed": uni(0.3, 1.5), "cycle_length": (uni(10, 25), 40.0),
            "look": "phase", "contrast": uni(0.6, 1.5), "halo": uni(0.3, 1.2),
            "blur": uni(0.5, 1.5), "min_area": 8,
        }  # fmt: skip
    if kind == "flat cells":  # large, faint, irregular whole cells (like Fluo-C2DL-MSC)
        mid = log(18, 45)
        return {
            "radius": (0.75 * mid, 1.3 * mid), "aspect": (1.0, uni(1.5, 3)),
            "n_cells": count(uni(0.25, 0.6), mid), "deformation": uni(0.15, 0.3),
            "texture": uni(0, 0.5), "nucleoli": 0, "clumps": 0.0, "dome": uni(0, 0.3),
            "overlap": uni(0.05, 0.2), "speed": uni(0.5, 4), "cycle_length": (60.0, 200.0),
            "background": drawn["brightness"][0] * uni(0.3, 0.9), "illumination": uni(0.1, 0.5),
        }  # fmt: skip
    if kind == "dark nuclei":  # stained nuclei in brightfield or tissue
        return {"look": "absorbing", "contrast": log(0.4, 2.5), "nucleoli": 0}
    return {  # round cells in phase contrast
        "look": "phase", "contrast": uni(0.5, 1.5), "halo": uni(0.3, 1.5), "nucleoli": 0,
        "clumps": 0.0, "dome": uni(0.3, 1),
    }  # fmt: skip
