"""segment frame by frame into an OME-Zarr store: the whole-run result, and resuming a stop."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from napari_cosine_embed._reader import read_layers
from napari_cosine_embed.core import pipeline
from napari_cosine_embed.core.checkpoint import load_model
from napari_cosine_embed.core.errors import InputError, OutputExistsError
from napari_cosine_embed.core.framewise import run_framewise, run_identity, write_tracked
from napari_cosine_embed.core.io.ome_zarr import LabelMovieStore
from napari_cosine_embed.core.io.zarr_store import read_zarr
from napari_cosine_embed.core.pipeline import PipelineConfig, model_input, run_pipeline
from napari_cosine_embed.core.synthetic import SyntheticConfig, synthetic_timelapse


def drain(gen, stop_after=None):
    """Run a generator; with ``stop_after``, close it (as a stopped run) after that many
    ``segment`` steps and return None."""
    steps = []
    while True:
        try:
            step = next(gen)
        except StopIteration as stop:
            return steps, stop.value
        steps.append(step)
        if stop_after is not None and sum(s.stage == "segment" for s in steps) == stop_after:
            gen.close()
            return steps, None


@pytest.fixture(scope="module")
def model(one_torch_thread):
    return load_model("default")


@pytest.fixture(scope="module")
def movie():
    return synthetic_timelapse(SyntheticConfig(n_frames=12, shape=(96, 96), n_cells=6, seed=4))


@pytest.fixture(scope="module")
def setup(movie, model):
    config = PipelineConfig().for_model(model)
    config, _, _ = model_input(movie.image, config, model)
    _, whole = drain(run_pipeline(movie.image, config, model=model, lazy=True))
    return config, whole


def new_store(path, movie, model, config):
    return LabelMovieStore.create(
        path,
        movie.image.shape[0],
        movie.image.shape[1:],
        identity=run_identity(["movie.tif"], movie.image, model, config),
        image_dtype=movie.image.dtype,
    )


def count_groupings(monkeypatch):
    calls = []
    real = pipeline.group_frame

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "group_frame", counted)
    return calls


def test_framewise_equals_the_whole_run_and_writes_ome_zarr(movie, model, setup, tmp_path):
    config, whole = setup
    store = new_store(tmp_path / "movie.zarr", movie, model, config)
    steps, result = drain(run_framewise(movie.image, config, store, model=model, copy_image=True))
    assert [s.done for s in steps if s.stage == "segment"] == list(range(1, 13))
    np.testing.assert_array_equal(np.asarray(result.labels), np.asarray(whole.labels))
    np.testing.assert_array_equal(result.lineage, whole.lineage)
    assert np.asarray(whole.labels).max() > 3, "the default model should find the cells"
    drain(write_tracked(store, result.labels, result.lineage))

    # a valid OME-Zarr 0.4 image with two label movies, which our reader opens as the image
    attrs = json.loads((tmp_path / "movie.zarr" / ".zattrs").read_text())
    assert attrs["multiscales"][0]["axes"][0] == {"name": "t", "type": "time"}
    labels = json.loads((tmp_path / "movie.zarr" / "labels" / ".zattrs").read_text())
    assert labels["labels"] == ["segmentation", "tracked"]
    tracked = json.loads((tmp_path / "movie.zarr" / "labels" / "tracked" / ".zattrs").read_text())
    assert tracked["image-label"]["source"]["image"] == "../../"
    np.testing.assert_array_equal(np.asarray(read_zarr(tmp_path / "movie.zarr")), movie.image)
    on_disk = np.asarray(read_zarr(tmp_path / "movie.zarr" / "labels" / "tracked"))
    np.testing.assert_array_equal(on_disk, np.asarray(whole.labels))
    # napari opens it as the movie, the tracked labels and their tracks
    layers = read_layers(tmp_path / "movie.zarr")
    assert [kind for _, _, kind in layers] == ["image", "labels", "tracks"]
    np.testing.assert_array_equal(np.asarray(layers[1][0]), np.asarray(whole.labels))


def test_a_stopped_run_resumes_redoing_only_missing_frames(
    movie, model, setup, tmp_path, monkeypatch
):
    config, whole = setup
    path = tmp_path / "movie.zarr"
    store = new_store(path, movie, model, config)
    _, stopped = drain(run_framewise(movie.image, config, store, model=model), stop_after=7)
    assert stopped is None
    identity = run_identity(["movie.tif"], movie.image, model, config)
    reopened = LabelMovieStore.open(path, identity=identity)
    assert reopened.done("segmentation").sum() == 7

    calls = count_groupings(monkeypatch)
    steps, result = drain(run_framewise(movie.image, config, reopened, model=model))
    assert len(calls) == 5, "only the 5 missing frames are grouped again"
    assert [s.done for s in steps if s.stage == "segment"] == [8, 9, 10, 11, 12]
    assert "7 of 12 frames were kept from the stopped run" in result.warnings
    np.testing.assert_array_equal(np.asarray(result.labels), np.asarray(whole.labels))
    np.testing.assert_array_equal(result.lineage, whole.lineage)


def test_resume_redoes_frames_whose_input_changed(movie, model, setup, tmp_path, monkeypatch):
    config, _ = setup
    store = new_store(tmp_path / "movie.zarr", movie, model, config)
    drain(run_framewise(movie.image, config, store, model=model), stop_after=6)
    edited = movie.image.copy()
    edited[2, 10, 10] += 1  # one pixel of a finished frame
    calls = count_groupings(monkeypatch)
    _, result = drain(run_framewise(edited, config, store, model=model))
    # frame 2, and the frames whose state ran through it: 3 and 4 (its window), 5 (warmed up
    # on frames 2-4); then the 6 missing frames
    assert len(calls) == 4 + 6
    assert any("4 of 6 frames of the stopped run were redone" in w for w in result.warnings)
    _, uninterrupted = drain(run_pipeline(edited, config, model=model, lazy=True))
    np.testing.assert_array_equal(np.asarray(result.labels), np.asarray(uninterrupted.labels))
    np.testing.assert_array_equal(result.lineage, uninterrupted.lineage)


def test_a_store_of_another_run_is_refused(movie, model, setup, tmp_path):
    config, _ = setup
    path = tmp_path / "movie.zarr"
    new_store(path, movie, model, config)
    other = dataclasses.replace(config, min_size=config.min_size + 5)
    with pytest.raises(InputError, match="another parameters"):
        LabelMovieStore.open(path, identity=run_identity(["movie.tif"], movie.image, model, other))
    with pytest.raises(OutputExistsError):
        new_store(path, movie, model, config)
    (tmp_path / "junk.zarr").mkdir()
    with pytest.raises(InputError, match="not a segment store"):
        LabelMovieStore.open(tmp_path / "junk.zarr")


def test_a_frame_is_done_only_once_written_whole(tmp_path):
    store = LabelMovieStore.create(tmp_path / "s.zarr", 3, (8, 8), identity={"a": 1})
    frame = np.zeros((8, 8), np.uint16)
    frame[2:5, 2:5] = 3
    store.put("segmentation", 1, frame, source=99)
    assert store.done("segmentation").tolist() == [False, True, False]
    store.put("segmentation", 2, np.zeros((8, 8), np.uint16), source=7)  # empty frames count
    assert store.done("segmentation").tolist() == [False, True, True]
    np.testing.assert_array_equal(store.get("segmentation", 1), frame)
    with pytest.raises(InputError, match="holds"):
        store.put("segmentation", 0, np.zeros((4, 4)), source=1)
    assert not list(tmp_path.glob("**/*.partial")), "no temporary chunk files are left"
