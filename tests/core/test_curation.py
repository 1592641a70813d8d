"""Track and lineage edits: each one, its undo, the lineage it leaves, and a scripted curation."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from napari_cosine_embed.core import curation
from napari_cosine_embed.core.curation import TrackIndex
from napari_cosine_embed.core.errors import InputError
from napari_cosine_embed.core.io.ctc import write_ctc_result
from napari_cosine_embed.core.io.lineage import lineage_problems
from napari_cosine_embed.core.metrics.ctc import tra_score
from napari_cosine_embed.core.metrics.divisions import division_scores

T, SIZE, R = 10, 96, 3


def _square(frame, label, y, x):
    frame[y - R : y + R + 1, x - R : x + R + 1] = label


def truth_movie():
    """Ten 96x96 frames with five kinds of track, and their true lineage.

    1: moves right across the movie. 2 and 3: two cells side by side, moving right. 4: divides
    into 5 and 6 at frame 5. 7: stays put; 8: a cell that enters at frame 6 next to 7.
    """
    movie = np.zeros((T, SIZE, SIZE), np.uint16)
    for t in range(T):
        _square(movie[t], 1, 10, 10 + 2 * t)
        _square(movie[t], 2, 40, 10 + 2 * t)
        _square(movie[t], 3, 50, 10 + 2 * t)
        if t < 5:
            _square(movie[t], 4, 75, 40)
        else:
            _square(movie[t], 5, 68, 40 + t)
            _square(movie[t], 6, 84, 40 - t)
        _square(movie[t], 7, 25, 70)
        if t >= 6:
            _square(movie[t], 8, 38, 78)
    lineage = np.array(
        [
            [1, 0, 9, 0],
            [2, 0, 9, 0],
            [3, 0, 9, 0],
            [4, 0, 4, 0],
            [5, 5, 9, 4],
            [6, 5, 9, 4],
            [7, 0, 9, 0],
            [8, 6, 9, 0],
        ]
    )
    return movie, lineage


def tracker_output():
    """The truth with four typical tracking errors injected; ``(movie, parents)``.

    - a one-frame break: track 1 goes on as an unlinked track 11 from frame 5;
    - a wrong link: 2 and 3 swap identities from frame 5;
    - a missed division: 4 goes on as daughter 5, daughter 6 has no parent;
    - a false division: 7 "divides" at frame 6 into its own continuation (12) and the newcomer 8.
    """
    movie, _ = truth_movie()
    res = movie.copy()
    res[5:][movie[5:] == 1] = 11
    res[5:][movie[5:] == 2] = 3
    res[5:][movie[5:] == 3] = 2
    res[movie == 5] = 4
    res[6:][movie[6:] == 7] = 12
    parents = {12: 7, 8: 7}
    return res, parents


def ctc_validate(movie, lineage) -> None:
    """py-ctcmetrics' validator accepts the movie and lineage as a CTC result."""
    import tempfile

    validate = pytest.importorskip("ctc_metrics.scripts.validate")
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_ctc_result(f"{tmp}/01_RES", movie, lineage)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert validate.validate_sequence(str(folder), threads=1)["Valid"] == 1


def assert_valid(movie, index, parents, *, ctc: bool = True):
    """The lineage is valid for CTC (ours, and py-ctcmetrics' validator unless ``ctc`` is
    False) and the index matches one built afresh."""
    lineage = index.lineage(parents)
    assert lineage_problems(movie, lineage) == []
    if ctc:
        ctc_validate(movie, lineage)
    fresh = TrackIndex.of(movie)
    assert fresh.labels() == index.labels()
    for t in range(movie.shape[0]):
        got, want = index.labels_at(t), fresh.labels_at(t)
        assert got.keys() == want.keys()
        for label, box in want.items():
            assert (got[label].rows, got[label].cols, got[label].area) == (
                box.rows,
                box.cols,
                box.area,
            )
            assert got[label].y == pytest.approx(box.y)
            assert got[label].x == pytest.approx(box.x)


def test_index_reads_boxes_areas_and_centroids():
    movie, lineage = truth_movie()
    index = TrackIndex.of(movie)
    assert index.labels() == list(range(1, 9))
    assert index.span(8) == (6, 9)
    assert index.frames_of(4) == [0, 1, 2, 3, 4]
    box = index.box(3, 1)
    assert (box.rows, box.cols, box.area) == (slice(7, 14), slice(13, 20), 49)
    assert (box.y, box.x) == (10.0, 16.0)
    np.testing.assert_array_equal(index.lineage({5: 4, 6: 4}), lineage)
    assert index.next_free() == 9
    data = index.tracks_data()
    assert data.shape == (5 * 5 + 6 + 7 * 4, 4)
    assert data[0].tolist() == [1, 0, 10.0, 10.0]


def test_break_and_its_undo():
    movie, _ = truth_movie()
    original = movie.copy()
    index = TrackIndex.of(movie)
    edit = curation.break_track(movie, index, {5: 4, 6: 4}, 1, 4)
    parents = edit.apply(movie, index)
    assert index.frames_of(1) == [0, 1, 2, 3]
    assert index.frames_of(9) == list(range(4, 10))
    assert parents == {5: 4, 6: 4}
    assert_valid(movie, index, parents)
    assert "frames 4-9 are now track 9" in edit.what
    parents = edit.revert(movie, index)
    np.testing.assert_array_equal(movie, original)
    assert_valid(movie, index, parents)


def test_break_moves_the_children_to_the_new_track():
    movie, _ = truth_movie()
    index = TrackIndex.of(movie)
    edit = curation.break_track(movie, index, {5: 4, 6: 4}, 4, 2)
    parents = edit.apply(movie, index)
    assert parents == {5: 9, 6: 9}
    assert_valid(movie, index, parents)


def test_join_relabels_the_next_frame_and_links_across_a_gap():
    res, parents = tracker_output()
    index = TrackIndex.of(res)
    edit = curation.join_tracks(res, index, parents, 1, 11)
    after = edit.apply(res, index)
    assert index.frames_of(1) == list(range(10))
    assert 11 not in index.labels()
    assert_valid(res, index, after)
    edit.revert(res, index)
    # Across a gap: frame 5 of track 11 removed, so it starts in 6 and stays 11, linked.
    res[5][res[5] == 11] = 0
    index = TrackIndex.of(res)
    with pytest.raises(InputError, match="1 frames lie between"):
        curation.join_tracks(res, index, parents, 1, 11, max_gap=0)
    edit = curation.join_tracks(res, index, parents, 1, 11, max_gap=1)
    after = edit.apply(res, index)
    assert after[11] == 1
    assert edit.n_pixels == 0
    assert_valid(res, index, after)


def test_join_refuses_overlap_and_a_dividing_track():
    movie, _ = truth_movie()
    index = TrackIndex.of(movie)
    with pytest.raises(InputError, match="before track 2 ends"):
        curation.join_tracks(movie, index, {}, 2, 3)
    with pytest.raises(InputError, match="divides into"):
        curation.join_tracks(movie, index, {5: 4, 6: 4, 8: 7}, 4, 8, max_gap=5)


def test_make_division_breaks_the_mother_and_undo_restores():
    res, parents = tracker_output()
    original = res.copy()
    index = TrackIndex.of(res)
    edit = curation.make_division(res, index, parents, 4, [4, 6], 5)
    after = edit.apply(res, index)
    new = index.next_free() - 1
    assert index.frames_of(4) == [0, 1, 2, 3, 4]
    assert index.span(new) == (5, 9)
    assert after[new] == 4
    assert after[6] == 4
    assert_valid(res, index, after)
    assert edit.revert(res, index) == parents
    np.testing.assert_array_equal(res, original)


def test_make_division_breaks_a_daughter_that_began_earlier():
    movie, _ = truth_movie()
    index = TrackIndex.of(movie)
    # 7 in frame 5 divides into 8 (from 6) and 3, whose track began in frame 0.
    edit = curation.make_division(movie, index, {}, 7, [8, 3], 6)
    after = edit.apply(movie, index)
    assert index.frames_of(3) == [0, 1, 2, 3, 4, 5]
    assert index.frames_of(7) == [0, 1, 2, 3, 4, 5]
    daughters = sorted(curation.children_of(after, 7))
    assert 8 in daughters
    assert len(daughters) == 2
    assert_valid(movie, index, after)


def test_make_division_refuses_bad_input():
    movie, _ = truth_movie()
    index = TrackIndex.of(movie)
    with pytest.raises(InputError, match="two different daughters"):
        curation.make_division(movie, index, {}, 1, [2, 2], 5)
    with pytest.raises(InputError, match="not in frame 5"):
        curation.make_division(movie, index, {}, 1, [2, 8], 5)
    with pytest.raises(InputError, match="needs a frame before"):
        curation.make_division(movie, index, {}, 1, [2, 3], 0)


def test_remove_division_keeps_a_continuation():
    res, parents = tracker_output()
    index = TrackIndex.of(res)
    edit = curation.remove_division(res, index, parents, 7, keep=12)
    after = edit.apply(res, index)
    assert after == {}
    assert index.frames_of(7) == list(range(10))
    assert_valid(res, index, after)
    edit.revert(res, index)
    edit = curation.remove_division(res, index, parents, 7)
    after = edit.apply(res, index)
    assert after == {}
    assert index.span(12) == (6, 9)
    assert_valid(res, index, after)
    with pytest.raises(InputError, match="no children"):
        curation.remove_division(res, index, after, 7)
    with pytest.raises(InputError, match="not a child"):
        curation.remove_division(res, index, parents, 7, keep=3)


def test_delete_from_a_frame_and_whole():
    movie, _ = truth_movie()
    original = movie.copy()
    index = TrackIndex.of(movie)
    parents = {5: 4, 6: 4}
    edit = curation.delete_track(movie, index, parents, 4, 3)
    after = edit.apply(movie, index)
    assert index.frames_of(4) == [0, 1, 2]
    assert after == parents
    assert_valid(movie, index, after)
    edit.revert(movie, index)
    edit = curation.delete_track(movie, index, parents, 4, 0)
    after = edit.apply(movie, index)
    assert 4 not in index.labels()
    assert after == {}
    assert_valid(movie, index, after)
    edit.revert(movie, index)
    np.testing.assert_array_equal(movie, original)
    with pytest.raises(InputError, match="before frame 7"):
        curation.delete_track(movie, index, parents, 4, 7)


def test_swap_from_a_frame():
    movie, _ = truth_movie()
    index = TrackIndex.of(movie)
    edit = curation.swap_tracks(movie, index, {5: 4, 6: 4}, 2, 3, 5)
    after = edit.apply(movie, index)
    assert index.box(4, 2).y == 40
    assert index.box(5, 2).y == 50
    assert after == {5: 4, 6: 4}
    assert_valid(movie, index, after)
    # Swapping a mother's tail with another track moves her daughters along.
    edit = curation.swap_tracks(movie, index, after, 4, 7, 3)
    after = edit.apply(movie, index)
    assert after == {5: 7, 6: 7}
    assert_valid(movie, index, after)
    with pytest.raises(InputError, match="track 8 is not in frame 3"):
        curation.swap_tracks(movie, index, after, 8, 1, 3)


def test_an_edit_that_would_leave_a_gap_is_refused_before_writing():
    movie, _ = truth_movie()
    movie[3][movie[3] == 1] = 0  # track 1 now has a hole at frame 3 (not CTC-valid)
    index = TrackIndex.of(movie)
    before = movie.copy()
    with pytest.raises(InputError, match="missing from frame"):
        curation.swap_tracks(movie, index, {}, 1, 2, 5)
    np.testing.assert_array_equal(movie, before)


def test_scripted_curation_repairs_every_error(tmp_path):
    truth, truth_lineage = truth_movie()
    res, parents = tracker_output()
    index = TrackIndex.of(res)
    before_tra = tra_score(truth, truth_lineage, res, index.lineage(parents))
    before_bc = division_scores(truth, truth_lineage, res, index.lineage(parents), tolerance=1)
    assert before_tra < 0.99
    assert before_bc.bc < 0.7
    fixes = [
        lambda p: curation.join_tracks(res, index, p, 1, 11),
        lambda p: curation.swap_tracks(res, index, p, 2, 3, 5),
        lambda p: curation.make_division(res, index, p, 4, [4, 6], 5),
        lambda p: curation.remove_division(res, index, p, 7, keep=12),
    ]
    for fix in fixes:
        parents = fix(parents).apply(res, index)
        assert_valid(res, index, parents)
    lineage = index.lineage(parents)
    assert tra_score(truth, truth_lineage, res, lineage) == 1.0
    assert division_scores(truth, truth_lineage, res, lineage, tolerance=1).bc == 1.0
    validate = pytest.importorskip("ctc_metrics.scripts.validate")
    folder = write_ctc_result(tmp_path / "01_RES", res, lineage)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert validate.validate_sequence(str(folder), threads=1)["Valid"] == 1


def test_random_edits_and_undos_stay_consistent():
    rng = np.random.default_rng(0)
    res, parents = tracker_output()
    original, original_parents = res.copy(), dict(parents)
    index = TrackIndex.of(res)
    done = []
    for _ in range(60):
        labels = index.labels()
        a, b = (int(x) for x in rng.choice(labels, 2, replace=False))
        t = int(rng.integers(1, T))
        kind = rng.integers(6)
        try:
            if kind == 0:
                edit = curation.break_track(res, index, parents, a, t)
            elif kind == 1:
                edit = curation.join_tracks(res, index, parents, a, b, max_gap=3)
            elif kind == 2:
                edit = curation.swap_tracks(res, index, parents, a, b, t)
            elif kind == 3:
                edit = curation.delete_track(res, index, parents, a, t)
            elif kind == 4:
                c = int(rng.choice(labels))
                edit = curation.make_division(res, index, parents, a, [b, c], t)
            else:
                edit = curation.remove_division(res, index, parents, a)
        except InputError:
            continue
        parents = edit.apply(res, index)
        assert_valid(res, index, parents, ctc=False)  # 60 edits: ours only, for speed
        done.append(edit)
    assert len(done) >= 15
    for edit in reversed(done):
        parents = edit.revert(res, index)
    np.testing.assert_array_equal(res, original)
    assert parents == original_parents
    assert_valid(res, index, parents)


def test_review_list_finds_what_needs_a_look():
    res, parents = tracker_output()
    res[7][res[7] == 3] = 0
    res[8][res[8] == 3] = 0
    res[9][res[9] == 3] = 0  # 3 (was 2 from frame 5 on) now vanishes mid-field after frame 6
    res[6, 84 - 3 : 84 + 4, 40 - 6 - 3 : 40 - 6 + 4] = 0  # daughter 6 shrinks in frame 6
    res[6, 84 - 1 : 84 + 2, 40 - 6 - 1 : 40 - 6 + 2] = 6
    index = TrackIndex.of(res)
    items = curation.review_items(index, parents)
    found = {(i.kind, i.t, i.track) for i in items}
    assert ("division", 5, 7) in found  # the false division of 7
    assert ("appears", 5, 11) in found  # the one-frame break
    assert ("appears", 5, 6) in found  # the missed division's daughter
    assert ("vanishes", 6, 3) in found
    assert ("size", 6, 6) in found
    assert ("size", 7, 6) in found
    assert ("jump", 5, 4) in found  # 4 goes on as daughter 5: a jump
    assert {(i.kind, i.t) for i in items if i.track == 1} == {("vanishes", 4)}  # the break
    assert [i.t for i in items] == sorted(i.t for i in items)
    assert len({i.key for i in items}) == len(items)
