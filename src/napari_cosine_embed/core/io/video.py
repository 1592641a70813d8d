"""Read video files (.mp4, .avi, .mov, ...) as grayscale movies.

Decoding goes through imageio's ffmpeg plugin (the ``imageio-ffmpeg`` package ships an
ffmpeg binary), which always hands back 8-bit RGB frames, so every video is converted to
grayscale luminance, and says so with a :class:`UserWarning`. Lossy video codecs alter pixel
values; prefer TIFF for measurements.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from ..errors import InputError
from .tiff import rgb_to_gray

__all__ = ["VIDEO_SUFFIXES", "read_video"]

VIDEO_SUFFIXES = (".mp4", ".m4v", ".avi", ".mov", ".mkv")


def read_video(path: str | os.PathLike) -> np.ndarray:
    """Read every frame of a video file as a grayscale movie.

    Parameters
    ----------
    path : path-like
        A video file that ffmpeg can decode (see :data:`VIDEO_SUFFIXES`).

    Returns
    -------
    ndarray of shape (T, Y, X), uint8
        Luminance of each decoded frame.

    Raises
    ------
    InputError
        The file is missing, cannot be decoded, or holds no frames.

    Warns
    -----
    UserWarning
        Always: the decoded RGB frames are converted to grayscale.
    """
    import imageio.v3 as iio

    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a folder, expected a video file")
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: not a readable video file: the file is empty (0 bytes)")
    frames = []
    try:
        for frame in iio.imiter(path, plugin="FFMPEG"):
            frame = np.asarray(frame)
            frames.append(rgb_to_gray(frame) if frame.ndim == 3 else frame)
    except (OSError, RuntimeError, ValueError, IndexError) as exc:
        # ffmpeg's whole stderr follows the first line; the first line says what went wrong.
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{path}: not a readable video file ({reason})") from exc
    if not frames:
        raise InputError(f"{path}: the video holds no frames")
    warnings.warn(
        f"{path.name}: video frames decoded as RGB and converted to grayscale (luminance).",
        UserWarning,
        stacklevel=2,
    )
    return np.stack(frames)
