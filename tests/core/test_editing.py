"""Label corrections on small frames, checked pixel by pixel."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cosine_embed.core import editing
from napari_cosine_embed.core.errors import InputError


def _two_blobs(dtype=np.uint16) -> np.ndarray:
    """Two 3 x 3 squares joined by a one-pixel bridge, as one label 7, plus label 2."""
    lab = np.zeros((6, 10), dtype)
    lab[1:4, 1:4] = 7
    lab[1:4, 5:8] = 7
    lab[2, 4] = 7
    lab[5, 8:] = 2
    return lab


# --- Change -----------------------------------------------------------------------------------


def test_change_records_only_changed_pixels_and_round_trips_on_a_movie():
    movie = np.zeros((3, 4, 5), np.uint16)
    movie[1, 1:3, 1:3] = 4
    before = movie[1].copy()
    after = editing.delete_labels(before, [4])
    change = editing.Change.between(before, after, t=1)
    assert len(change) == 4
    assert change.box == (slice(1, 3), slice(1, 3))
    assert change.old.tolist() == [4, 4, 4, 4]
    assert change.new.tolist() == [0, 0, 0, 0]
    original = movie.copy()
    change.apply(movie)
    assert not movie.any()
    change.revert(movie)
    np.testing.assert_array_equal(movie, original)


def test_change_of_identical_frames_is_empty():
    lab = _two_blobs()
    change = editing.Change.between(lab, lab.copy())
    assert len(change) == 0
    assert change.box is None


# --- merge / delete / relabel ---------------------------------------------------------------------


def test_merge_takes_the_smallest_id_and_keeps_dtype_and_input():
    lab = np.array([[1, 2, 0, 3], [3, 0, 2, 5]], np.uint16)
    keep = lab.copy()
    out = editing.merge_labels(lab, [5, 3, 2])
    np.testing.assert_array_equal(out, [[1, 2, 0, 2], [2, 0, 2, 2]])
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(lab, keep)
    np.testing.assert_array_equal(
        editing.merge_labels(lab, [1, 2], into=9), [[9, 9, 0, 3], [3, 0, 9, 5]]
    )


@pytest.mark.parametrize("ids", [[2], [2, 4]])
def test_merge_refuses_fewer_than_two_or_absent_ids(ids):
    with pytest.raises(InputError):
        editing.merge_labels(np.array([[1, 2, 0]]), ids)


def test_delete_several_labels():
    out = editing.delete_labels(np.array([[1, 2, 0, 3]]), [1, 3])
    np.testing.assert_array_equal(out, [[0, 2, 0, 0]])


def test_relabel_refuses_a_taken_id_unless_asked():
    lab = np.array([[1, 1, 2, 0, 3]])
    np.testing.assert_array_equal(editing.relabel(lab, 1, 4), [[4, 4, 2, 0, 3]])
    with pytest.raises(InputError, match="already"):
        editing.relabel(lab, 1, 2)
    np.testing.assert_array_equal(editing.relabel(lab, 1, 2, collision="swap"), [[2, 2, 1, 0, 3]])
    np.testing.assert_array_equal(editing.relabel(lab, 1, 2, collision="merge"), [[2, 2, 2, 0, 3]])


def test_new_ids_must_fit_the_dtype():
    lab = np.array([[1, 0]], np.uint8)
    with pytest.raises(InputError, match="does not fit"):
        editing.relabel(lab, 1, 300)
    assert editing.next_free_label(np.array([[0, 4], [2, 0]])) == 5
    assert editing.next_free_label(np.zeros((2, 2), np.uint8)) == 1


# --- fill holes ---------------------------------------------------------------------------------


def test_fill_holes_of_one_label_only():
    lab = np.array(
        [
            [1, 1, 1, 1, 0, 2, 2, 2],
            [1, 0, 0, 1, 0, 2, 0, 2],
            [1, 0, 1, 1, 0, 2, 2, 2],
            [1, 1, 1, 1, 0, 0, 0, 0],
        ]
    )
    out = editing.fill_label_holes(lab, 1)
    expected = lab.copy()
    expected[1, 1:3] = 1
    expected[2, 1] = 1
    np.testing.assert_array_equal(out, expected)  # label 2's hole stays


def test_fill_holes_leaves_background_around_a_nested_object():
    lab = np.array(
        [
            [1, 1, 1, 1],
            [1, 0, 3, 1],
            [1, 1, 1, 1],
        ]
    )
    np.testing.assert_array_equal(editing.fill_label_holes(lab, 1), lab)


def test_fill_holes_at_the_frame_border_is_not_a_hole():
    lab = np.array([[1, 0, 1], [1, 1, 1]])
    np.testing.assert_array_equal(editing.fill_label_holes(lab, 1), lab)


# --- split --------------------------------------------------------------------------------------


def test_split_by_shape_cuts_two_touching_squares_at_the_bridge():
    lab = _two_blobs()
    out = editing.split_label(lab, 7, new_id=9)
    assert out.dtype == lab.dtype
    left, right = out[1:4, 1:4], out[1:4, 5:8]
    assert len(np.unique(left)) == len(np.unique(right)) == 1
    assert {int(left[0, 0]), int(right[0, 0])} == {7, 9}
    assert out[2, 4] in (7, 9)
    np.testing.assert_array_equal(out[5], lab[5])  # other labels untouched
    assert np.count_nonzero(out == 7) >= np.count_nonzero(out == 9)  # larger part keeps 7


def test_split_by_embedding_follows_the_embedding_not_the_shape():
    # A 4 x 8 rectangle (no waist: the shape alone would cut it in the middle) whose left 3
    # columns point one way and the other 5 another: the split must follow the embedding.
    lab = np.zeros((6, 10), np.int32)
    lab[1:5, 1:9] = 3
    emb = np.zeros((2, 6, 10), np.float32)
    emb[0] = 1.0
    emb[:, :, 4:] = np.array([0.0, 1.0])[:, None, None]
    out = editing.split_label(lab, 3, embedding=emb, new_id=4, coord_weight=0.1)
    expected = lab.copy()
    expected[1:5, 1:4] = 4
    np.testing.assert_array_equal(out, expected)


def test_split_of_a_label_in_pieces_gives_each_piece_an_id():
    lab = np.array([[5, 5, 0, 5, 0, 5, 5, 5]])
    out = editing.split_label(lab, 5, new_id=6)
    np.testing.assert_array_equal(out, [[6, 6, 0, 7, 0, 5, 5, 5]])


def test_split_of_a_single_pixel_is_refused():
    with pytest.raises(InputError, match="single pixel"):
        editing.split_label(np.array([[0, 4, 0]]), 4)


# --- cut ----------------------------------------------------------------------------------------


def test_cut_along_a_polyline_gives_the_smaller_piece_a_new_id():
    lab = np.zeros((5, 9), np.uint16)
    lab[:, 1:8] = 4
    lab[0, 0] = 1
    # vertical line at column 3 (the left piece is 2 columns wide, the right 4)
    out = editing.cut_labels(lab, [(-2.0, 3.2), (6.0, 2.8)], next_id=10, min_size=1)
    expected = lab.copy()
    expected[:, 3] = 0
    expected[:, 1:3] = 10
    np.testing.assert_array_equal(out, expected)


def test_cut_with_a_bent_line_and_only_one_label():
    lab = np.zeros((6, 6), np.int64)
    lab[:3, :] = 1
    lab[3:, :] = 2
    # an L: down column 2 to row 4, then right along row 4: label 2 keeps its bottom row
    # connected to the left piece, and the 3 pixels above the foot become a new object
    out = editing.cut_labels(lab, [(0, 2), (4, 2), (4, 5)], label_id=2, next_id=8, min_size=1)
    expected = lab.copy()
    expected[3:5, 2] = 0
    expected[4, 2:] = 0
    expected[3, 3:] = 8
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(out[:3], lab[:3])  # label 1 was not asked for


def test_cut_drops_slivers_and_ignores_lines_outside_objects():
    lab = np.zeros((4, 6), np.uint8)
    lab[:, :5] = 3
    out = editing.cut_labels(lab, [(0, 3), (3, 3)], next_id=4, min_size=5)
    expected = lab.copy()
    expected[:, 3:5] = 0  # the 4-pixel piece right of the line is a sliver
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(editing.cut_labels(lab, [(0, 5), (3, 5)]), lab)
    with pytest.raises(InputError):
        editing.cut_labels(lab, [(1, 1)])


# --- click-to-add -------------------------------------------------------------------------------


def _embedding_with_three_objects() -> np.ndarray:
    emb = np.zeros((3, 8, 8), np.float32)
    emb[0] = 1.0  # background direction
    emb[:, 1:4, 1:4] = np.array([0, 1, 0])[:, None, None]  # object A
    emb[:, 5:7, 1:7] = np.array([0, 0, 1])[:, None, None]  # object B
    return emb


def test_seed_region_keeps_unlabelled_foreground_pixels_connected_to_the_seed():
    emb = _embedding_with_three_objects()
    lab = np.zeros((8, 8), np.uint16)
    lab[5:7, 4:7] = 1  # the right half of B is labelled already
    mask = editing.seed_region(lab, emb, (5, 1), threshold=0.9)
    expected = np.zeros((8, 8), bool)
    expected[5:7, 1:4] = True
    np.testing.assert_array_equal(mask, expected)
    # a foreground map excludes a pixel of the object
    fg = np.ones((8, 8), np.float32)
    fg[1, 1] = 0.2
    mask_a = editing.seed_region(lab, emb, (2, 2), threshold=0.9, foreground=fg)
    assert mask_a.sum() == 8
    assert not mask_a[1, 1]
    out = editing.add_label(lab, mask, 3)
    assert np.count_nonzero(out == 3) == 6
    assert np.count_nonzero(out == 1) == 6


def test_seed_region_refuses_labelled_or_background_seeds():
    emb = _embedding_with_three_objects()
    lab = np.zeros((8, 8), np.uint16)
    lab[2, 2] = 4
    with pytest.raises(InputError, match="already belongs to label 4"):
        editing.seed_region(lab, emb, (2, 2), threshold=0.9)
    fg = np.zeros((8, 8))
    with pytest.raises(InputError, match="background"):
        editing.seed_region(lab, emb, (5, 5), threshold=0.9, foreground=fg)


# --- carry a track id ---------------------------------------------------------------------------


def test_carry_track_swaps_ids_to_avoid_duplicates_and_stops_without_overlap():
    movie = np.zeros((5, 4, 6), np.uint16)
    movie[0, 1:3, 0:2] = 1
    movie[1, 1:3, 1:3] = 5  # moved right by one: continues 1
    movie[1, 0, 5] = 1  # another object that had id 1
    movie[2, 1:3, 2:4] = 6
    movie[3, 0, 0] = 6  # frame 3: nothing overlaps -> stop
    movie[4, 1:3, 2:4] = 7
    before = movie.copy()
    changed = editing.carry_track(movie, 0, 1, frames=4)
    assert sorted(changed) == [1, 2]
    np.testing.assert_array_equal(movie, before)
    exp1 = movie[1].copy()
    exp1[1:3, 1:3] = 1
    exp1[0, 5] = 5
    np.testing.assert_array_equal(changed[1], exp1)
    exp2 = movie[2].copy()
    exp2[1:3, 2:4] = 1
    np.testing.assert_array_equal(changed[2], exp2)


def test_carry_track_picks_the_best_overlap_and_respects_the_horizon():
    movie = np.zeros((3, 2, 6), np.int32)
    movie[0, :, 1:4] = 2
    movie[1, :, 0:2] = 3  # overlaps 2 of 6: IoU 2/8
    movie[1, :, 2:5] = 4  # overlaps 4 of 6: IoU 4/8
    movie[2, :, 2:5] = 9
    changed = editing.carry_track(movie, 0, 2, frames=1)
    assert list(changed) == [1]
    assert set(np.unique(changed[1][:, 2:5])) == {2}
    assert set(np.unique(changed[1][:, 0:2])) == {3}
    with pytest.raises(InputError):
        editing.carry_track(movie[0], 0, 2)


def test_broken_apart_names_only_labels_an_edit_leaves_in_more_pieces():
    from napari_cosine_embed.core.editing import broken_apart, count_pieces

    before = np.zeros((6, 9), np.uint16)
    before[1:3, 1:3] = 1
    before[1:3, 5:7] = 2
    before[4:6, 1:3] = 3
    merged = np.where(before == 2, 1, before)
    assert count_pieces(merged, 1) == 2
    assert broken_apart(before, merged) == {1: 2}
    # joined by a bridge: one piece, nothing to ask
    bridged = merged.copy()
    bridged[1, 3:5] = 1
    assert broken_apart(before, bridged) == {}
    # deleting never breaks anything apart
    assert broken_apart(before, np.where(before == 3, 0, before)) == {}
    # corners touch only with connectivity 2
    diagonal = before.copy()
    diagonal[3, 3] = 1
    diagonal[1:3, 1:3] = 0
    diagonal[2, 2] = 1
    assert broken_apart(before, diagonal) == {1: 2}
    assert broken_apart(before, diagonal, connectivity=2) == {}
    # a label already in two pieces that grows without a third is not reported
    two = merged.copy()
    grown = two.copy()
    grown[3, 1] = 1
    assert broken_apart(two, grown) == {}
    assert count_pieces(before, 9) == 0
