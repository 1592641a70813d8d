"""How a synthetic movie's objects are imaged: fluorescence, or transmitted light.

The simulation (:mod:`.synthetic`) renders each object's amount of stain or dye (``signal``,
in photons under fluorescence). Fluorescence adds it to a dim background. Transmitted light
works the other way round: a bright, unevenly lit field that objects darken.

* ``"absorbing"``: brightfield of stained nuclei and tissue, after Beer-Lambert: the light is
  attenuated by ``exp(-contrast * s)``, ``s`` the object's relative stain (about 0.1 to 1).
* ``"phase"``: phase contrast, where an object is darker than the field (by ``contrast``
  times its relative thickness) and ringed by a bright halo just outside its edge, the
  hallmark of phase images. The halo's width follows the object size, its strength is
  ``halo``.

The light level is twice the brightest object signal plus the background, so 8-bit draws of
:func:`~.synthetic_random.random_config` stay within range. Counting noise, blur and the
camera are applied afterwards, as for fluorescence.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

__all__ = ["LOOKS", "light_field"]

LOOKS = ("fluorescence", "absorbing", "phase")


def light_field(signal: np.ndarray, unevenness: np.ndarray, cfg) -> np.ndarray:
    """Photons per pixel (before blur and noise) for ``cfg.look``.

    Parameters
    ----------
    signal : ndarray of shape (Y, X)
        Noise-free object signal (photons under fluorescence; 0 outside objects).
    unevenness : ndarray of shape (Y, X)
        Relative illumination, about 1.
    cfg : SyntheticConfig

    Returns
    -------
    ndarray of shape (Y, X), float
    """
    if cfg.look == "fluorescence":
        return cfg.background * unevenness + signal
    stain = signal / cfg.brightness[1]
    level = 2.0 * cfg.brightness[1] + cfg.background
    if cfg.look == "absorbing":
        return level * unevenness * np.exp(-cfg.contrast * stain)
    # phase: a thickness map, dark where thick, and a halo where the wide blur exceeds it
    thick = ndi.gaussian_filter(np.minimum(stain, 1.5), 1.0)
    wide = ndi.gaussian_filter(thick, max(1.5, 0.35 * cfg.radius[0]))
    halo = np.clip(wide - thick, 0, None) * cfg.halo * 4.0
    transmitted = np.clip(1.0 - cfg.contrast * 0.6 * thick + halo, 0.05, None)
    return level * unevenness * transmitted
