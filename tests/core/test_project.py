"""Project folders: round trip, atomic writes, and never writing into a foreign folder."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from napari_cosine_embed.core.errors import InputError, OutputExistsError
from napari_cosine_embed.core.project import Project, is_project


def _frame(value: int, shape=(6, 7), dtype=np.uint32) -> np.ndarray:
    frame = np.zeros(shape, dtype)
    frame[1:4, 2:5] = value
    return frame


def test_round_trip_of_frames_curated_list_and_manifest(tmp_path):
    root = tmp_path / "proj"
    project = Project.create(
        root, shape=(4, 6, 7), image_name="movie", labels_name="cells", image_fingerprint="ab12"
    )
    assert is_project(root)
    big = _frame(70_000)
    project.save_frame(1, _frame(3))
    project.save_frame(3, big)
    project.save_frame(1, _frame(5))  # replaces
    project.save_curated([3, 1, 1])
    again = Project.open(root)
    assert again.manifest.shape == (4, 6, 7)
    assert (again.manifest.labels_name, again.manifest.image_name) == ("cells", "movie")
    assert again.manifest.image_fingerprint == "ab12"
    assert again.saved_frames() == [1, 3]
    assert again.load_curated() == [1, 3]
    frames = again.load_frames()
    np.testing.assert_array_equal(frames[1], _frame(5))
    assert frames[1].dtype == np.uint16  # small ids are stored compactly
    np.testing.assert_array_equal(frames[3], big)
    assert frames[3].dtype == np.uint32


def test_single_image_project(tmp_path):
    project = Project.create(tmp_path / "p", shape=(6, 7))
    project.save_frame(0, _frame(2))
    assert Project.open(tmp_path / "p").saved_frames() == [0]
    with pytest.raises(InputError):
        project.save_frame(1, _frame(2))


def test_bad_frames_are_refused(tmp_path):
    project = Project.create(tmp_path / "p", shape=(2, 6, 7))
    with pytest.raises(InputError, match="outside"):
        project.save_frame(2, _frame(1))
    with pytest.raises(InputError, match="shape"):
        project.save_frame(0, np.zeros((5, 5), np.uint16))
    with pytest.raises(FileNotFoundError):
        project.load_frame(0)


def test_a_failed_write_leaves_the_previous_file_and_no_debris(tmp_path, monkeypatch):
    project = Project.create(tmp_path / "p", shape=(2, 6, 7))
    project.save_frame(0, _frame(3))
    project.save_curated([0])
    real_imwrite = tifffile.imwrite

    def crash_midway(path, data, **kwargs):
        real_imwrite(path, data[:2], **kwargs)  # a partial file, then the "crash"
        raise OSError("disk full")

    monkeypatch.setattr(tifffile, "imwrite", crash_midway)
    with pytest.raises(OSError, match="disk full"):
        project.save_frame(0, _frame(9))
    monkeypatch.undo()
    np.testing.assert_array_equal(project.load_frame(0), _frame(3))
    assert sorted(p.name for p in (tmp_path / "p" / "labels").iterdir()) == ["t0000.tif"]

    def crash_on_text(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("pathlib.Path.write_text", crash_on_text)
    with pytest.raises(OSError, match="disk full"):
        project.save_curated([0, 1])
    monkeypatch.undo()
    assert project.load_curated() == [0]
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == [
        "curated.json",
        "labels",
        "project.json",
    ]


def test_a_foreign_folder_is_never_written_to(tmp_path):
    foreign = tmp_path / "thesis"
    foreign.mkdir()
    (foreign / "chapter1.tex").write_text("precious")
    with pytest.raises(OutputExistsError, match="not a napari-cosine-embed project"):
        Project.create(foreign, shape=(2, 6, 7))
    with pytest.raises(OutputExistsError):
        Project.open_or_create(foreign, shape=(2, 6, 7))
    with pytest.raises(InputError, match="not a napari-cosine-embed project"):
        Project.open(foreign)
    assert [p.name for p in foreign.iterdir()] == ["chapter1.tex"]
    # a folder with someone else's project.json is foreign too
    (foreign / "project.json").write_text(json.dumps({"name": "other tool"}))
    assert not is_project(foreign)
    with pytest.raises(OutputExistsError):
        Project.create(foreign, shape=(2, 6, 7))


def test_an_empty_folder_becomes_a_project_and_a_project_is_reopened(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    made = Project.open_or_create(empty, shape=(2, 6, 7), labels_name="a")
    made.save_frame(1, _frame(4))
    with pytest.raises(OutputExistsError, match="already a project"):
        Project.create(empty, shape=(2, 6, 7))
    reopened = Project.open_or_create(empty, shape=(2, 6, 7), labels_name="b")
    assert reopened.manifest.labels_name == "a"
    assert reopened.saved_frames() == [1]
    with pytest.raises(InputError, match="shape"):
        Project.open_or_create(empty, shape=(3, 6, 7))


def test_a_damaged_manifest_or_frame_is_reported(tmp_path):
    project = Project.create(tmp_path / "p", shape=(2, 6, 7))
    project.frame_path(1).write_bytes(b"not a tiff")
    with pytest.raises(InputError, match="damaged"):
        project.load_frame(1)
    meta = json.loads((tmp_path / "p" / "project.json").read_text())
    del meta["shape"]
    (tmp_path / "p" / "project.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match="damaged"):
        Project.open(tmp_path / "p")
