"""Label images brought to another grid: smooth when enlarging, nothing invented or lost."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from napari_cosine_embed.core.diameter import rescale_labels as reexported
from napari_cosine_embed.core.resample import nearest_labels, rescale_labels


def _discs(shape, centres, radius):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    out = np.zeros(shape, np.uint16)
    for i, (cy, cx) in enumerate(centres, start=1):
        out[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = i
    return out


def _iou(a, b):
    return np.logical_and(a, b).sum() / np.logical_or(a, b).sum()


def test_the_old_name_is_the_same_function():
    assert reexported is rescale_labels


def test_same_shape_is_returned_unchanged():
    labels = _discs((40, 40), [(20, 20)], 8)
    assert rescale_labels(labels, labels.shape) is labels


@pytest.mark.parametrize("factor", [1.6, 2.0, 3.3])
def test_enlarged_discs_follow_the_true_outline_better_than_nearest_neighbour(factor):
    # small objects segmented on a shrunk frame, brought back to the input's pixels
    big_shape = (round(60 * factor),) * 2
    centres = [(20, 20), (40, 38)]
    small = _discs((60, 60), centres, 7.5)
    truth = _discs(
        big_shape,
        [((cy + 0.5) * factor - 0.5, (cx + 0.5) * factor - 0.5) for cy, cx in centres],
        7.5 * factor,
    )
    smooth = rescale_labels(small, big_shape)
    blocky = nearest_labels(small, big_shape)
    for label in (1, 2):
        assert _iou(smooth == label, truth == label) > _iou(blocky == label, truth == label)
        assert _iou(smooth == label, truth == label) > 0.97
    assert smooth.dtype == small.dtype


def test_touching_objects_still_touch_and_nothing_is_invented():
    labels = np.zeros((30, 30), np.int32)
    labels[5:25, 5:15] = 3
    labels[5:25, 15:25] = 7
    out = rescale_labels(labels, (48, 48))
    assert set(np.unique(out)) == {0, 3, 7}
    # along the shared edge, no background opens between the two
    inside = out[12:36, :]
    for row in inside:
        inside_row = np.flatnonzero(row > 0)
        assert len(inside_row)
        assert (np.diff(inside_row) == 1).all()
    assert ndimage.label(out > 0)[1] == 1


def test_no_label_is_lost_even_when_too_thin_to_win_a_pixel():
    labels = np.zeros((20, 20), np.uint8)
    labels[5:15, 10] = 4  # one pixel wide
    labels[2, 2] = 9  # a single pixel
    out = rescale_labels(labels, (31, 31))
    assert set(np.unique(out)) == {0, 4, 9}


def test_shrinking_is_nearest_neighbour():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, (64, 48)).astype(np.uint16)
    out = rescale_labels(labels, (40, 30))
    np.testing.assert_array_equal(out, nearest_labels(labels, (40, 30)))
    assert set(np.unique(out)) <= set(np.unique(labels))


def test_objects_at_the_image_border_keep_it():
    labels = np.zeros((20, 20), np.uint16)
    labels[:8, :8] = 1
    out = rescale_labels(labels, (50, 50))
    assert out[0, 0] == 1
    assert out[0, 15] == 1
    assert out[15, 0] == 1
    assert _iou(out == 1, nearest_labels(labels, (50, 50)) == 1) > 0.95


def test_an_empty_frame_stays_empty():
    out = rescale_labels(np.zeros((10, 12), np.uint16), (25, 30))
    assert out.shape == (25, 30)
    assert not out.any()


def test_thin_objects_keep_most_of_their_area():
    # the smoothing must not eat a diagonal protrusion two input pixels wide (1.4 px across)
    labels = np.zeros((40, 40), np.uint8)
    for i in range(5, 35):
        labels[i, i : i + 2] = 1
    out = rescale_labels(labels, (64, 64))
    near = nearest_labels(labels, (64, 64))
    assert (out == 1).sum() > 0.85 * (near == 1).sum()
    assert ndimage.label(out == 1)[1] == 1
