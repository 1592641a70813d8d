"""Tracking a long movie with its frames kept compressed: the same result, read frame by frame."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cosine_embed.core.io.ctc import read_ctc_result, write_ctc_result
from napari_cosine_embed.core.pipeline import PipelineConfig, link_options
from napari_cosine_embed.core.tracking import link_labels
from napari_cosine_embed.core.tracking.frames import FrameStack, RelabelledFrames


def noisy_movie(seed: int = 0, frames: int = 12, size: int = 96) -> np.ndarray:
    """Drifting squares that divide, vanish for a frame and are sometimes cut in two."""
    rng = np.random.default_rng(seed)
    pos = rng.uniform(10, size - 10, (14, 2))
    movie = np.zeros((frames, size, size), np.uint16)
    for t in range(frames):
        pos = np.clip(pos + rng.normal(0, 1, pos.shape), 6, size - 7)
        label = 1
        for y, x in pos.astype(int):
            if rng.random() < 0.05:
                continue
            if rng.random() < 0.15:  # cut in two for this frame
                movie[t, y - 4 : y + 5, x - 4 : x] = label
                movie[t, y - 4 : y + 5, x + 1 : x + 5] = label + 1
                label += 2
            else:
                movie[t, y - 4 : y + 5, x - 4 : x + 5] = label
                label += 1
    return movie


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lazy_tracking_gives_the_same_labels_and_lineage(seed):
    movie = noisy_movie(seed)
    options = link_options(PipelineConfig())
    whole = link_labels(movie, **options)
    stack = FrameStack(movie.shape[1:])
    for frame in movie:
        stack.append(frame)
    lazy = link_labels(stack, **options, lazy=True)
    assert isinstance(lazy.labels, RelabelledFrames)
    assert lazy.labels.shape == movie.shape
    np.testing.assert_array_equal(np.asarray(lazy.labels), whole.labels)
    np.testing.assert_array_equal(lazy.lineage, whole.lineage)
    np.testing.assert_array_equal(lazy.tracks, whole.tracks)
    assert lazy.graph == whole.graph


def test_lazy_result_streams_into_a_ctc_folder(tmp_path):
    movie = noisy_movie(3)
    result = link_labels(movie, **link_options(PipelineConfig()), lazy=True)
    write_ctc_result(tmp_path / "01_RES", result.labels, result.lineage)
    labels, lineage = read_ctc_result(tmp_path / "01_RES")
    np.testing.assert_array_equal(labels, np.asarray(result.labels))
    np.testing.assert_array_equal(lineage, result.lineage)


def test_frame_stack_keeps_frames_compressed_and_exact():
    movie = noisy_movie(4, frames=5, size=256)
    stack = FrameStack(movie.shape[1:])
    for frame in movie:
        stack.append(frame)
    assert stack.stored_bytes < movie.nbytes / 10  # labels compress well
    np.testing.assert_array_equal(np.asarray(stack), movie)
    changed = stack[2]
    changed[0, 0] = 99
    assert stack[2][0, 0] == 0  # a read is a copy
    stack[2] = changed
    assert stack[2][0, 0] == 99
    with pytest.raises(ValueError, match="shape"):
        stack.append(np.zeros((3, 3), np.uint16))
    plain = FrameStack(movie.shape[1:], compressed=False)
    plain.append(movie[0])
    assert plain[0] is not None
    assert plain.stored_bytes == movie[0].nbytes
