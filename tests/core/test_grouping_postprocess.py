"""Clean-up of label images, on hand-made arrays with exact expected outputs."""

from __future__ import annotations

import time

import numpy as np
import pytest

from napari_cosine_embed.core.errors import InputError
from napari_cosine_embed.core.grouping.postprocess import (
    fill_holes,
    postprocess,
    relabel_consecutive,
    remove_small,
    split_components,
    split_necks,
)


def _discs(*centres, radius=8.0, shape=(24, 60)):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return np.any([(yy - y) ** 2 + (xx - x) ** 2 < radius**2 for y, x in centres], axis=0)


def test_split_necks_cuts_two_touching_discs_along_the_neck():
    lab = np.where(_discs((12, 12), (12, 26)), 4, 0)  # neck 2 * sqrt(64 - 49) = 7.7 px wide
    before = lab.copy()
    out = split_necks(lab, 0.2)
    np.testing.assert_array_equal(lab, before)  # input untouched
    np.testing.assert_array_equal(out > 0, lab > 0)  # no pixel gained or lost
    assert sorted(np.unique(out).tolist()) == [0, 4, 5]
    left, right = (out == 4), (out == 5)
    assert abs(int(left.sum()) - int(right.sum())) <= 16  # halves of a symmetric pair
    cols = np.nonzero(left | right)[1]
    cut_col = (np.nonzero(left)[1].max() + np.nonzero(right)[1].min()) / 2
    assert abs(cut_col - 19) <= 1, cut_col  # the cut is at the neck
    assert cols.min() < 19 < cols.max()


def test_split_necks_leaves_shallow_necks_ellipses_and_other_objects_alone():
    overlapping = _discs((12, 12), (12, 19))  # neck almost as wide as a disc: one nucleus
    yy, xx = np.mgrid[:24, :60]
    ellipse = (yy - 12) ** 2 / 49 + (xx - 30) ** 2 / 625 < 1
    for mask in (overlapping, ellipse):
        out = split_necks(mask.astype(np.int32), 0.2)
        assert np.unique(out).tolist() == [0, 1]
    two = np.where(_discs((12, 12), (12, 26)), 1, 0)
    two[_discs((12, 48), radius=6)] = 2  # a separate, round object
    out = split_necks(two, 0.2)
    np.testing.assert_array_equal(out == 2, two == 2)
    assert len(np.unique(out)) == 4


def test_split_necks_depth_decides_and_small_parts_are_not_cut():
    lab = _discs((12, 12), (12, 26)).astype(np.int32)
    assert len(np.unique(split_necks(lab, 0.9))) == 2  # nothing that deep: whole
    assert len(np.unique(split_necks(lab, 0.0))) == 2  # 0: off
    assert len(np.unique(split_necks(lab, 0.2, min_size=300))) == 2  # parts of ~190 px
    small_bud = _discs((12, 14), radius=9) | _discs((12, 27), radius=4.5)
    assert len(np.unique(split_necks(small_bud.astype(int), 0.1, min_size=80))) == 2
    with pytest.raises(InputError, match="depth"):
        split_necks(lab, 1.0)


def test_postprocess_cuts_necks_when_asked():
    lab = np.where(_discs((12, 12), (12, 26)), 9, 0)
    assert postprocess(lab).max() == 1
    out = postprocess(lab, split_depth=0.2)
    assert out.max() == 2
    assert out.dtype == np.int32


def test_split_components_4_and_8_connected():
    lab = np.array(
        [
            [3, 3, 0, 3],
            [0, 0, 3, 0],
            [5, 5, 5, 0],
        ]
    )
    np.testing.assert_array_equal(split_components(lab), [[1, 1, 0, 2], [0, 0, 3, 0], [4, 4, 4, 0]])
    np.testing.assert_array_equal(
        split_components(lab, connectivity=2), [[1, 1, 0, 1], [0, 0, 1, 0], [2, 2, 2, 0]]
    )


def test_split_keeps_touching_objects_apart():
    lab = np.array([[1, 1, 2, 2]], np.uint16)
    out = split_components(lab)
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, [[1, 1, 2, 2]])


def test_remove_small():
    lab = np.array([[1, 1, 1, 0, 2, 2], [4, 0, 0, 0, 2, 0]], np.int64)
    np.testing.assert_array_equal(remove_small(lab, 3), [[1, 1, 1, 0, 2, 2], [0, 0, 0, 0, 2, 0]])
    np.testing.assert_array_equal(remove_small(lab, 0), lab)
    assert not remove_small(lab, 100).any()


def test_fill_holes_per_instance():
    lab = np.array(
        [
            [1, 1, 1, 0, 2, 2, 2, 0],
            [1, 0, 1, 0, 2, 0, 0, 2],
            [1, 0, 1, 0, 2, 0, 0, 2],
            [1, 1, 1, 0, 2, 2, 2, 2],
            [0, 0, 0, 0, 0, 0, 0, 0],
        ]
    )
    expected = lab.copy()
    expected[1:3, 1] = 1
    expected[1:3, 5:7] = 2
    np.testing.assert_array_equal(fill_holes(lab), expected)


def test_fill_holes_leaves_shared_and_open_background():
    lab = np.array(
        [
            [1, 1, 2, 2],
            [1, 0, 0, 2],
            [1, 1, 2, 2],
            [0, 1, 1, 0],
        ]
    )
    np.testing.assert_array_equal(fill_holes(lab), lab)  # the gap touches objects 1 and 2
    ring = np.pad(np.ones((3, 3), int), 1, constant_values=0)
    ring[2, 2] = 0
    ring = np.where(ring > 0, 7, 0)
    ring_open = ring.copy()
    ring_open[1, 2] = 0  # the hole leaks (4-connected) to the outside
    assert fill_holes(ring)[2, 2] == 7
    np.testing.assert_array_equal(fill_holes(ring_open), ring_open)


def test_fill_holes_keeps_a_nested_object():
    lab = np.full((7, 7), 1)
    lab[0] = lab[-1] = lab[:, 0] = lab[:, -1] = 0
    lab[2:5, 2:5] = 0
    lab[3, 3] = 2
    out = fill_holes(lab)
    assert out[3, 3] == 2
    assert out[2, 2] == 0


def test_relabel_consecutive():
    lab = np.array([[0, 9, 9], [4, 0, 100]])
    np.testing.assert_array_equal(relabel_consecutive(lab), [[0, 2, 2], [1, 0, 3]])
    np.testing.assert_array_equal(relabel_consecutive(np.array([[5, 6]])), [[1, 2]])
    np.testing.assert_array_equal(relabel_consecutive(np.zeros((2, 2), int)), np.zeros((2, 2)))
    assert relabel_consecutive(np.array([[True, False]])).tolist() == [[1, 0]]


def test_sparse_huge_ids_take_the_sorting_route():
    lab = np.array([[0, 2**30, 2**30, 7]])
    np.testing.assert_array_equal(relabel_consecutive(lab), [[0, 2, 2, 1]])
    np.testing.assert_array_equal(remove_small(lab, 2), [[0, 2**30, 2**30, 0]])
    np.testing.assert_array_equal(relabel_consecutive(lab[:, 1:]), [[2, 2, 1]])


def test_postprocess_composes():
    lab = np.array(
        [
            [4, 4, 4, 0, 0, 4],
            [4, 9, 4, 0, 0, 0],
            [4, 4, 4, 0, 8, 8],
        ]
    )
    # 4 splits into the ring and a single pixel; 9 (one pixel) is removed and filled by the ring
    np.testing.assert_array_equal(
        postprocess(lab, min_size=2),
        [[1, 1, 1, 0, 0, 0], [1, 1, 1, 0, 0, 0], [1, 1, 1, 0, 2, 2]],
    )
    np.testing.assert_array_equal(
        postprocess(lab, min_size=0, fill=False, split=False),
        [[1, 1, 1, 0, 0, 1], [1, 3, 1, 0, 0, 0], [1, 1, 1, 0, 2, 2]],
    )


@pytest.mark.parametrize(
    "bad", [np.zeros((2, 2, 2), int), np.zeros((2, 2)), np.array([[-1, 0]]), np.array([[2**40]])]
)
def test_bad_labels_raise(bad):
    with pytest.raises(InputError):
        postprocess(bad)


def test_bad_options_raise():
    with pytest.raises(InputError):
        split_components(np.zeros((2, 2), int), connectivity=0)
    with pytest.raises(InputError):
        remove_small(np.zeros((2, 2), int), -1)


def test_fast_on_a_large_frame():
    rng = np.random.default_rng(0)
    lab = np.kron(rng.integers(0, 400, size=(64, 64)), np.ones((16, 16), int))  # 1024 x 1024
    lab[rng.random(lab.shape) < 0.01] = 0  # speckle holes
    start = time.perf_counter()
    out = postprocess(lab, min_size=20)
    assert time.perf_counter() - start < 5.0  # ~0.2 s; generous for a shared machine
    assert out.max() > 1000
    assert not (out[lab > 0] == 0).mean() > 0.01
