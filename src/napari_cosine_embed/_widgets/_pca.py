"""Colour pixel embeddings by their first three principal components, with one fixed basis.

The basis and the colour range are fitted once (on a subsample of one frame) and then applied
to every frame, so an object keeps its colour from frame to frame; refitting per frame would
flip signs and rescale, making the colours flicker.
"""

from __future__ import annotations

import numpy as np

__all__ = ["PCAColours"]


class PCAColours:
    """A fixed projection of (D, Y, X) embeddings to RGB.

    Parameters
    ----------
    mean : ndarray of shape (D,)
    components : ndarray of shape (D, 3)
        Principal axes (columns), each with a fixed sign.
    low, high : ndarray of shape (3,)
        Projected values mapped to 0 and 255 (the 1st and 99th percentiles of the fit sample).
    """

    def __init__(
        self, mean: np.ndarray, components: np.ndarray, low: np.ndarray, high: np.ndarray
    ) -> None:
        self.mean, self.components = mean.astype(np.float32), components.astype(np.float32)
        self.low, self.high = low.astype(np.float32), high.astype(np.float32)

    @classmethod
    def fit(
        cls,
        embedding: np.ndarray,
        foreground: np.ndarray | None = None,
        *,
        samples: int = 20_000,
        seed: int = 0,
    ) -> PCAColours:
        """Fit on at most ``samples`` pixels of one frame.

        Parameters
        ----------
        embedding : ndarray of shape (D, Y, X)
        foreground : ndarray of shape (Y, X), optional
            Foreground probability; when at least 100 pixels exceed 0.5 the fit uses only those,
            so the colours spread over the objects rather than over object vs background.
        samples : int
            Pixels drawn (without replacement) for the fit.
        seed : int
            Seed of the draw.

        Examples
        --------
        >>> e = np.random.default_rng(0).normal(size=(8, 16, 16)).astype(np.float32)
        >>> PCAColours.fit(e).rgb(e).shape
        (16, 16, 3)
        """
        d = embedding.shape[0]
        pixels = embedding.reshape(d, -1).T
        if foreground is not None and np.count_nonzero(foreground > 0.5) >= 100:
            pixels = pixels[np.asarray(foreground).ravel() > 0.5]
        rng = np.random.default_rng(seed)
        if len(pixels) > samples:
            pixels = pixels[rng.choice(len(pixels), samples, replace=False)]
        pixels = np.asarray(pixels, np.float64)
        mean = pixels.mean(axis=0)
        # eigh of the covariance: D is small (16), so this is cheaper than an SVD of the pixels
        _, vectors = np.linalg.eigh(np.cov(pixels - mean, rowvar=False).reshape(d, d))
        components = np.zeros((d, 3))
        top = vectors[:, ::-1][:, : min(3, d)]
        # a fixed sign (largest coefficient positive) so a refit on similar data keeps colours
        top *= np.sign(top[np.abs(top).argmax(axis=0), np.arange(top.shape[1])])
        components[:, : top.shape[1]] = top
        projected = (pixels - mean) @ components
        low, high = np.percentile(projected, [1, 99], axis=0)
        return cls(mean, components, low, np.maximum(high, low + 1e-6))

    def rgb(self, embedding: np.ndarray, foreground: np.ndarray | None = None) -> np.ndarray:
        """Colours of one frame.

        Parameters
        ----------
        embedding : ndarray of shape (D, Y, X)
        foreground : ndarray of shape (Y, X), optional
            Foreground probability; colours are scaled by it, so the background is dark.

        Returns
        -------
        ndarray of shape (Y, X, 3), uint8
        """
        d, y, x = embedding.shape
        flat = embedding.reshape(d, -1).T.astype(np.float32, copy=False)
        scaled = ((flat - self.mean) @ self.components - self.low) / (self.high - self.low)
        colours = np.clip(scaled, 0, 1).reshape(y, x, 3)
        if foreground is not None:
            colours *= np.clip(foreground, 0, 1)[..., None]
        return np.round(colours * 255).astype(np.uint8)
