"""Lineage tables: derivation, checks against the movie, napari tracks, text files.

The checks on the real CTC ground truth are in ``test_io_ctc.py``, beside its reader.
"""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from _helpers import division_movie

from napari_cosine_embed.core.errors import InputError, OutputExistsError
from napari_cosine_embed.core.io import (
    check_lineage,
    lineage_from_labels,
    read_lineage,
    split_track_gaps,
    tracks_from_labels,
    write_lineage,
)


def test_lineage_from_labels_rows_and_parents():
    movie, expected = division_movie()
    got = lineage_from_labels(movie, parents={2: 1, 3: 1})
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, expected)
    no_parents = lineage_from_labels(movie)
    np.testing.assert_array_equal(no_parents[:, 3], 0)


def test_lineage_from_labels_accepts_dask_and_empty_movies():
    movie, expected = division_movie()
    lazy = da.from_array(movie, chunks=(1, 16, 16))
    np.testing.assert_array_equal(lineage_from_labels(lazy, parents={2: 1, 3: 1}), expected)
    assert lineage_from_labels(np.zeros((2, 4, 4), np.uint8)).shape == (0, 4)


def test_lineage_from_labels_rejects_parents_of_missing_labels():
    movie, _ = division_movie()
    with pytest.raises(InputError, match=r"not in the movie: \[9\]"):
        lineage_from_labels(movie, parents={9: 1})


def test_lineage_from_labels_rejects_non_movies():
    with pytest.raises(InputError, match=r"\(T, Y, X\)"):
        lineage_from_labels(np.zeros((4, 4), np.uint8))
    with pytest.raises(InputError, match="integer"):
        lineage_from_labels(np.zeros((2, 4, 4), np.float32))


def test_check_lineage_accepts_a_consistent_table():
    movie, lineage = division_movie()
    check_lineage(movie, lineage)
    check_lineage(da.from_array(movie, chunks=(2, 16, 16)), lineage)


def _edited(row: int, col: int, value: int) -> np.ndarray:
    _, lineage = division_movie()
    lineage = lineage.copy()
    lineage[row, col] = value
    return lineage


@pytest.mark.parametrize(
    ("lineage", "message"),
    [
        (_edited(0, 2, 1), "label 1 is present in frame 2, outside"),
        (_edited(3, 1, 0), "label 4 is missing from frame 0"),
        (_edited(1, 3, 7), "parent 7, which is not in the lineage"),
        (_edited(1, 3, 4), "its parent 4 ends in frame 5"),
        (_edited(1, 3, 2), "label 2 is its own parent"),
        (_edited(3, 2, 6), "not inside the movie's frames 0..5"),
        (_edited(3, 0, 1), "duplicate labels: \\[1\\]"),
        (division_movie()[1][:3], "label 4 is in frame 1 but has no lineage row"),
        (np.zeros((2, 3), dtype=np.int64), "shape \\(N, 4\\)"),
        (np.full((1, 4), 0.5), "whole numbers"),
    ],
)
def test_check_lineage_names_the_problem(lineage, message):
    movie, _ = division_movie()
    with pytest.raises(InputError, match=message):
        check_lineage(movie, lineage)


def test_check_lineage_rejects_a_track_with_a_gap():
    movie, lineage = division_movie()
    movie[3, movie[3] == 4] = 0
    with pytest.raises(InputError, match="label 4 is missing from frame 3"):
        check_lineage(movie, lineage)


def test_tracks_from_labels_gives_centroids_and_graph():
    movie, lineage = division_movie()
    data, graph = tracks_from_labels(movie, lineage)
    assert data.shape == (3 + 3 + 3 + 5, 4)
    assert graph == {2: [1], 3: [1]}
    # Sorted by track id, then time.
    assert np.all(np.diff(data[:, 0]) >= 0)
    for track in (1, 2, 3, 4):
        assert np.all(np.diff(data[data[:, 0] == track, 1]) > 0)
    first = data[0]
    np.testing.assert_allclose(first, [1, 0, 3.5, 3.5])
    row_2 = data[(data[:, 0] == 2) & (data[:, 1] == 4)][0]
    np.testing.assert_allclose(row_2, [2, 4, 1.5, 3.5])


def test_tracks_from_labels_leaves_out_links_without_data():
    movie, lineage = division_movie()
    movie[movie == 1] = 0
    _, graph = tracks_from_labels(movie, lineage)
    assert graph == {}


def test_lineage_text_round_trip(tmp_path):
    _, lineage = division_movie()
    path = write_lineage(tmp_path / "res_track.txt", lineage[::-1])
    assert path.read_text().splitlines()[0] == "4 1 5 0"
    np.testing.assert_array_equal(read_lineage(path), lineage)
    with pytest.raises(OutputExistsError):
        write_lineage(path, lineage[:1])
    np.testing.assert_array_equal(read_lineage(path), lineage)
    write_lineage(path, lineage[:1], overwrite=True)
    np.testing.assert_array_equal(read_lineage(path), lineage[:1])


def test_read_lineage_accepts_tabs_and_blank_lines(tmp_path):
    path = tmp_path / "man_track.txt"
    path.write_text("2\t3\t5\t1\n\n1\t0\t2\t0\n")
    np.testing.assert_array_equal(read_lineage(path), [[1, 0, 2, 0], [2, 3, 5, 1]])


def test_read_lineage_bad_line_names_it(tmp_path):
    path = tmp_path / "man_track.txt"
    path.write_text("1 0 2 0\n2 3 x 1\n")
    with pytest.raises(InputError, match="line 2"):
        read_lineage(path)
    with pytest.raises(InputError, match="no such lineage file"):
        read_lineage(tmp_path / "missing.txt")


def test_write_lineage_rejects_negative_entries(tmp_path):
    with pytest.raises(InputError, match=">= 0"):
        write_lineage(tmp_path / "t.txt", [[1, 0, 2, -1]])
    assert not (tmp_path / "t.txt").exists()


def test_split_track_gaps_relabels_later_pieces():
    movie, _ = division_movie()
    movie[3][movie[3] == 4] = 0  # cell 4 vanishes for one frame
    fixed, got = split_track_gaps(movie, parents={2: 1, 3: 1})
    check_lineage(fixed, got)
    np.testing.assert_array_equal(
        got, [[1, 0, 2, 0], [2, 3, 5, 1], [3, 3, 5, 1], [4, 1, 2, 0], [5, 4, 5, 4]]
    )
    assert np.all(fixed[4:][movie[4:] == 4] == 5)
    assert np.all(fixed[:3][movie[:3] == 4] == 4)
    # The input is left as it was.
    assert movie[4, 10, 10] == 4


def test_split_track_gaps_attaches_children_to_the_piece_before_them():
    movie = np.zeros((5, 4, 4), dtype=np.uint8)
    movie[[0, 2], 0, 0] = 1  # parent with a gap at frame 1
    movie[3:, 3, 3] = 2  # child of 1
    fixed, got = split_track_gaps(movie, parents={2: 1})
    check_lineage(fixed, got)
    np.testing.assert_array_equal(got, [[1, 0, 0, 0], [2, 3, 4, 3], [3, 2, 2, 1]])


def test_split_track_gaps_widens_the_dtype_when_needed():
    movie = np.zeros((3, 2, 2), dtype=np.uint8)
    movie[[0, 2], 0, 0] = 255
    fixed, got = split_track_gaps(movie)
    assert fixed.dtype == np.int64
    assert fixed[2, 0, 0] == 256
    np.testing.assert_array_equal(got, [[255, 0, 0, 0], [256, 2, 2, 255]])
