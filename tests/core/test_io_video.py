"""Video files: decoded through imageio/ffmpeg, returned as grayscale movies."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cosine_embed.core.errors import InputError
from napari_cosine_embed.core.io import VIDEO_SUFFIXES, read_video

iio = pytest.importorskip("imageio.v3")
pytest.importorskip("imageio_ffmpeg")


def moving_square(n_frames: int = 8) -> np.ndarray:
    """(T, 64, 80) uint8: a bright 16x16 square moving right on a dark background."""
    movie = np.full((n_frames, 64, 80), 20, dtype=np.uint8)
    for t in range(n_frames):
        movie[t, 24:40, 8 + 6 * t : 24 + 6 * t] = 220
    return movie


def test_generated_video_reads_back_as_grayscale(tmp_path):
    movie = moving_square()
    path = tmp_path / "cells.mp4"
    rgb = np.repeat(movie[..., None], 3, axis=-1)
    iio.imwrite(path, rgb, plugin="FFMPEG", fps=5, macro_block_size=16)
    with pytest.warns(UserWarning, match="converted to grayscale"):
        got = read_video(path)
    assert got.shape == movie.shape
    assert got.dtype == np.uint8
    # Lossy codec: compare inside the square and in the background, away from edges.
    for t in range(movie.shape[0]):
        inside = got[t, 28:36, 12 + 6 * t : 20 + 6 * t]
        assert abs(float(inside.mean()) - 220) < 12
        assert abs(float(got[t, 2:10, 60:78].mean()) - 20) < 12
    assert {".mp4", ".avi", ".mov"} <= set(VIDEO_SUFFIXES)


def test_colour_video_uses_luminance(tmp_path):
    rgb = np.zeros((4, 32, 32, 3), dtype=np.uint8)
    rgb[..., 1] = 200  # pure green
    path = tmp_path / "green.avi"
    iio.imwrite(path, rgb, plugin="FFMPEG", fps=5, codec="mjpeg", quality=10)
    with pytest.warns(UserWarning, match="converted to grayscale"):
        got = read_video(path)
    assert got.shape == (4, 32, 32)
    assert abs(float(got.mean()) - 0.7152 * 200) < 10


def test_unreadable_video_is_rejected(tmp_path):
    path = tmp_path / "broken.mp4"
    path.write_bytes(b"this is not a video")
    with pytest.raises(InputError, match=r"broken\.mp4: not a readable video file"):
        read_video(path)
    with pytest.raises(InputError, match="no such file"):
        read_video(tmp_path / "missing.mp4")
