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
)


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
