"""Fine-tune widget: a few steps on two curated frames, saved as a new model file."""

from __future__ import annotations

import numpy as np
import pytest
from napari.utils.notifications import notification_manager

from napari_cosine_embed._sample_data import synthetic_timelapse_sample
from napari_cosine_embed._widgets._session import session_for
from napari_cosine_embed.core.checkpoint import load_model
from napari_cosine_embed.core.training.calibrate import calibration

PLUGIN = "napari-cosine-embed"


@pytest.fixture(scope="module")
def movie():
    (image, _, _), (labels, _, _), _ = synthetic_timelapse_sample()
    return np.asarray(image[:6]), np.asarray(labels[:6])


def _setup(make_napari_viewer, tmp_path, movie, *, curated=(1, 4)):
    image, labels = movie
    viewer = make_napari_viewer()
    viewer.add_image(image, name="nuclei")
    viewer.add_labels(labels.copy(), name="corrected")
    session = session_for(viewer)
    session.project_dir = tmp_path
    for t in curated:
        session.set_curated("corrected", t)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Fine-tune")
    # tiny batches keep a CPU step well under a second
    widget._crop.value, widget._batch.value = 64, 1
    return viewer, session, widget


def test_finetune_saves_a_new_model_and_offers_it(make_napari_viewer, qtbot, tmp_path, movie):
    _viewer, session, widget = _setup(make_napari_viewer, tmp_path, movie)
    assert "1, 4" in widget._curated.value
    widget._steps.value = 5
    widget._val_fraction.value = 0.5  # of two curated frames: one held out
    widget._foreground_weight.value = 10.0
    models = tmp_path / "models"
    models.mkdir()
    (models / "finetuned-001.pt").write_bytes(b"an earlier run")
    old_id = session.model_id

    widget.control.button.native.click()
    assert widget.control.worker is not None
    with qtbot.waitSignal(widget.control.worker.finished, timeout=120_000):
        pass

    assert [s for s, _ in widget.plot.loss] == [1, 2, 3, 4, 5]
    assert len(widget.plot.score) == 5  # validated after every step of so short a run
    assert (models / "finetuned-001.pt").read_bytes() == b"an earlier run"
    assert widget.saved == models / "finetuned-002.pt"
    model = load_model(widget.saved, device="cpu")
    assert model.record["base_model"]["name"] == "default"
    assert model.record["foreground_weight"] == 10.0  # the widget's setting was trained with
    assert model.record["validation"] is not None
    assert model.record["data"]["summary"]
    assert "finetuned-002.pt" in widget._result.value
    steps, run = model.record["steps"], model.record["steps_run"]
    assert run == 5
    said = f"step {steps} of 5: best validated" if steps < run else "(5 steps)"
    assert said in widget._result.value
    assert "validation score" in widget._result.value
    # the held-out curated frame, segmented with the old and the new model, scored as the
    # benchmarks score (SEG), saved with the model and shown
    check = model.record["held_out_check"]
    assert check["frames"] == [4]
    assert check["measure"] == "SEG"
    assert 0.5 < check["before"] <= 1  # the bundled model on the sample: about 0.8
    assert 0 <= check["after"] <= 1
    assert f"held-out frame(s) 4: SEG {check['before']:.3f} -> {check['after']:.3f}" in (
        widget._result.value
    )
    assert session.model_id == old_id  # nothing changes until the user asks

    assert not widget._use.native.isHidden()
    widget._use.native.click()
    assert session.model_source == str(widget.saved)
    assert session.model_id != old_id
    assert widget._use.native.isHidden()
    assert "open Embed" in widget._result.value  # no Embed widget docked to do it


def test_use_new_model_re_embeds_with_it(make_napari_viewer, qtbot, tmp_path, movie):
    viewer, session, widget = _setup(make_napari_viewer, tmp_path, movie)
    _, embed = viewer.window.add_plugin_dock_widget(PLUGIN, "Embed")
    widget._steps.value = 2
    widget.control.button.native.click()
    with qtbot.waitSignal(widget.control.worker.finished, timeout=120_000):
        pass
    widget._use.native.click()
    assert session.model_source == str(widget.saved)
    assert "re-embedding nuclei" in widget._result.value
    assert embed._control.worker is not None  # the Embed widget runs, with the new model
    with qtbot.waitSignal(embed._control.worker.finished, timeout=120_000):
        pass
    store = session.store_for(viewer.layers["nuclei"], create=False)
    assert store is not None
    assert store.missing() == []
    assert store.model_id == session.model_id


def _cancel_after_a_step(make_napari_viewer, qtbot, tmp_path, movie):
    """Start a long fine-tune and cancel it after its first step; returns (widget, worker)."""
    _, _, widget = _setup(make_napari_viewer, tmp_path, movie, curated=(2,))
    widget._steps.value = 1000
    widget.control.button.native.click()
    worker = widget.control.worker
    qtbot.waitUntil(lambda: len(widget.plot.loss) >= 1, timeout=60_000)
    with qtbot.waitSignal(worker.finished, timeout=60_000):
        widget.control.button.native.click()  # Cancel
    return widget, worker


def test_cancel_keeps_the_model_of_the_steps_done(make_napari_viewer, qtbot, tmp_path, movie):
    widget, worker = _cancel_after_a_step(make_napari_viewer, qtbot, tmp_path, movie)
    # the steps stop; the threshold is still calibrated, as a job of its own
    calibrating = widget.control.worker
    assert calibrating is not None
    assert calibrating is not worker
    assert widget.saved is None
    with qtbot.waitSignal(calibrating.finished, timeout=60_000):
        pass
    assert widget.saved == tmp_path / "models" / "finetuned-001.pt"
    record = load_model(widget.saved, device="cpu").record
    assert 1 <= record["steps_run"] < 1000
    assert record["stopped_early"]
    assert calibration(load_model(widget.saved, device="cpu")) is not None
    assert "foreground threshold" in widget._result.value
    assert widget.control.worker is None


def test_second_cancel_skips_the_calibration(make_napari_viewer, qtbot, tmp_path, movie):
    widget, _ = _cancel_after_a_step(make_napari_viewer, qtbot, tmp_path, movie)
    calibrating = widget.control.worker
    with qtbot.waitSignal(calibrating.finished, timeout=60_000):
        widget.control.button.native.click()  # and the calibration
    assert widget.saved == tmp_path / "models" / "finetuned-001.pt"
    model = load_model(widget.saved, device="cpu")
    assert model.record["stopped_early"]
    assert calibration(model) is None  # it groups at the default threshold
    assert widget.control.worker is None


def test_no_curated_frame_is_told(make_napari_viewer, tmp_path, movie):
    _, _, widget = _setup(make_napari_viewer, tmp_path, movie, curated=())
    assert "no curated frame" in widget._curated.value
    before = len(notification_manager.records)
    widget.control.button.native.click()
    assert widget.control.worker is None
    messages = [str(n.message) for n in notification_manager.records[before:]]
    assert any("curated" in m for m in messages), messages
    assert not (tmp_path / "models").exists()
