"""Opening another tool's tracks for curation: a CTC result folder or a GEFF gives an editable
labels layer and its tracks, without an image."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cosine_embed._reader import get_reader
from napari_cosine_embed.core.io.ctc import write_ctc_result
from napari_cosine_embed.core.io.geff_store import write_geff


def movie_and_lineage():
    movie = np.zeros((5, 20, 20), np.uint16)
    movie[0:2, 2:6, 2:6] = 1
    movie[2:5, 1:3, 2:6] = 2
    movie[2:5, 6:9, 2:6] = 3
    movie[:, 12:16, 12:16] = 4
    return movie, np.array([[1, 0, 1, 0], [2, 2, 4, 1], [3, 2, 4, 1], [4, 0, 4, 0]])


@pytest.mark.parametrize("name", ["02_RES", "tracks.geff", "tracks.zarr"])
def test_tracked_folders_open_as_labels_and_tracks(tmp_path, name):
    movie, lineage = movie_and_lineage()
    path = tmp_path / name
    if name.endswith("RES"):
        write_ctc_result(path, movie, lineage)
    else:
        write_geff(path, movie, lineage)
    reader = get_reader(str(path))
    assert reader is not None
    layers = reader(str(path))
    kinds = [kind for *_, kind in layers]
    assert kinds == ["labels", "tracks"]
    (labels, labels_meta, _), (tracks, tracks_meta, _) = layers
    assert isinstance(labels, np.ndarray)  # editable in place
    np.testing.assert_array_equal(labels, movie)
    assert labels_meta["name"] == path.name.removesuffix(".zarr").removesuffix(".geff")
    assert tracks_meta["graph"] == {2: [1], 3: [1]}
    assert tracks.shape == (2 + 3 + 3 + 5, 4)


def test_a_tracked_folder_that_contradicts_itself_says_why(tmp_path):
    movie, lineage = movie_and_lineage()
    path = write_ctc_result(tmp_path / "02_RES", movie, lineage)
    (path / "res_track.txt").write_text("1 0 1 0\n2 2 4 1\n3 2 4 1\n")  # track 4 left out
    reader = get_reader(str(path))
    with pytest.raises(Exception, match=r"label 4 .*no lineage row"):
        reader(str(path))
