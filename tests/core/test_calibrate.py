"""Calibrating the foreground threshold of a (fine-tuned) model on labelled frames."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_cosine_embed.core.checkpoint import EmbeddingModel, load_model
from napari_cosine_embed.core.models import ModelConfig
from napari_cosine_embed.core.pipeline import (
    DEFAULT_FOREGROUND_THRESHOLD,
    PipelineConfig,
    run_pipeline,
)
from napari_cosine_embed.core.synthetic import synthetic_timelapse
from napari_cosine_embed.core.synthetic_random import random_config
from napari_cosine_embed.core.training import (
    calibrate_foreground,
    from_arrays,
    iter_calibrate_foreground,
    recommended_threshold,
)


@pytest.fixture(scope="module")
def default_model():
    return load_model("default", device="cpu")


@pytest.fixture(scope="module")
def movie():
    return synthetic_timelapse(random_config(seed=4_000_001, shape=(128, 128)), n_frames=3)


def _grow(labels: np.ndarray, pixels: int) -> np.ndarray:
    """Every label moved outward (pixels > 0) or inward (< 0) by ``pixels``."""
    out = np.zeros_like(labels)
    for t, frame in enumerate(labels):
        if pixels > 0:
            dist, (iy, ix) = ndi.distance_transform_edt(frame == 0, return_indices=True)
            out[t] = np.where(dist <= pixels, frame[iy, ix], 0)
        else:
            inside = ndi.distance_transform_edt(frame > 0)
            out[t] = np.where(inside > -pixels, frame, 0)
    return out


def test_threshold_follows_the_annotated_outline(default_model, movie):
    """Generous outlines call for a lower threshold than tight ones; the best IoU is kept."""
    found = {}
    for name, grow in (("generous", 3), ("exact", 0), ("tight", -2)):
        labels = _grow(movie.labels, grow) if grow else movie.labels
        data = from_arrays(movie.image, labels, [2], name=name)
        found[name] = calibrate_foreground(default_model.copy(), data)
    for result in found.values():
        assert result["frames"] == 1
        assert result["pixels"] > 0
        assert result["iou"] == pytest.approx(max(result["ious"].values()))
        assert result["ious"][f"{result['threshold']:g}"] == pytest.approx(result["iou"])
    thresholds = [found[k]["threshold"] for k in ("generous", "exact", "tight")]
    assert thresholds == sorted(thresholds)
    assert thresholds[0] < thresholds[-1]
    assert found["exact"]["iou"] > 0.7  # the shipped model outlines these nuclei well


def test_ignored_pixels_are_not_scored(default_model, movie):
    labels = movie.labels.copy()
    wrong = np.zeros(labels.shape, bool)
    wrong[2, :40, :] = True  # a band annotated as one big nucleus, wrongly
    labels[wrong] = labels.max() + 1
    clean = calibrate_foreground(
        default_model.copy(), from_arrays(movie.image, movie.labels, [2], name="clean")
    )
    spoiled = calibrate_foreground(
        default_model.copy(), from_arrays(movie.image, labels, [2], name="spoiled")
    )
    masked = from_arrays(movie.image, np.where(wrong, 0, labels), [2], ignore=wrong, name="masked")
    ignored = calibrate_foreground(default_model.copy(), masked)
    assert spoiled["iou"] < clean["iou"] - 0.1
    assert ignored["pixels"] < clean["pixels"]
    assert ignored["iou"] > spoiled["iou"]


def test_progress_per_frame_and_at_most_max_frames(default_model, movie):
    data = from_arrays(movie.image, movie.labels, [0, 1, 2], context=1)
    gen = iter_calibrate_foreground(default_model, data, max_frames=2)
    steps = []
    while True:
        try:
            steps.append(next(gen))
        except StopIteration as stop:
            result = stop.value
            break
    assert steps == [(1, 2), (2, 2)]
    assert result["frames"] == 2


def test_nothing_to_calibrate(movie):
    headless = EmbeddingModel.new(
        ModelConfig(stacks=1, levels=2, filters=8, embedding_dim=4, foreground_head=False)
    )
    data = from_arrays(movie.image, movie.labels, [2])
    assert calibrate_foreground(headless, data) is None
    assert "foreground_calibration" not in headless.record
    model = load_model("default", device="cpu")
    empty = from_arrays(movie.image, np.zeros_like(movie.labels), [2])
    assert calibrate_foreground(model, empty) is None
    with pytest.raises(ValueError, match="raw data"):
        next(iter_calibrate_foreground(model, data.normalised(model.normalisation)))


def test_pipeline_uses_the_calibrated_threshold_unless_told(default_model, movie):
    assert recommended_threshold(default_model) == DEFAULT_FOREGROUND_THRESHOLD
    strict = default_model.copy()
    strict.record["foreground_calibration"] = {"threshold": 0.95}
    assert recommended_threshold(strict) == 0.95
    assert PipelineConfig().for_model(strict).foreground_threshold == 0.95
    assert PipelineConfig(foreground_threshold=0.3).for_model(strict).foreground_threshold == 0.3
    assert PipelineConfig().for_model(default_model).foreground_threshold == 0.05

    def labelled_pixels(model, config):
        gen = run_pipeline(movie.image, config, model=model)
        while True:
            try:
                next(gen)
            except StopIteration as stop:
                return int((stop.value.labels > 0).sum())

    plain = PipelineConfig(device="cpu", track=False)
    loose = labelled_pixels(default_model, plain)
    assert labelled_pixels(strict, plain) < loose
    told = PipelineConfig(device="cpu", track=False, foreground_threshold=0.05)
    assert labelled_pixels(strict, told) == loose


@pytest.mark.parametrize("value", ["0.4x", float("nan"), 7.0, [0.3]])
def test_a_damaged_calibrated_threshold_is_named_not_ignored(default_model, value):
    from napari_cosine_embed.core.errors import InputError

    damaged = default_model.copy()
    damaged.record["foreground_calibration"] = {"threshold": value}
    with pytest.raises(InputError, match="calibrated foreground threshold"):
        recommended_threshold(damaged)
    # the user's own threshold still works with such a model
    assert PipelineConfig(foreground_threshold=0.3).for_model(damaged).foreground_threshold == 0.3


def test_tolerance_prefers_the_lowest_threshold_close_to_the_best():
    """From stored outputs: the best IoU wins, or with a tolerance the lowest threshold within
    it of the best (held-out frames are less confident than the frames trained on)."""
    from napari_cosine_embed.core.training.calibrate import threshold_from_labels

    yy, xx = np.mgrid[:64, :64]
    distance = np.hypot(yy - 32, xx - 32)
    truth = (distance < 16).astype(np.uint8)
    # probability falls off from the centre: 0.5 at the annotated edge, ~0.2 four pixels out
    foreground = 1 / (1 + np.exp((distance - 16) / 3))
    exact = threshold_from_labels([foreground], [truth])
    assert exact["threshold"] == 0.5
    assert exact["iou"] == pytest.approx(max(exact["ious"].values()))
    loose = threshold_from_labels([foreground], [truth], tolerance=0.2)
    assert loose["threshold"] < exact["threshold"]
    assert loose["iou"] >= exact["iou"] - 0.2
    assert loose["ious"][f"{loose['threshold']:g}"] == pytest.approx(loose["iou"])
    lower = [float(t) for t, v in loose["ious"].items() if float(t) < loose["threshold"]]
    assert all(loose["ious"][f"{t:g}"] < exact["iou"] - 0.2 for t in lower)
    with pytest.raises(Exception, match="2 foregrounds for 1"):
        threshold_from_labels([foreground, foreground], [truth])
