"""The Embed widget, docked through the installed manifest, on 4 frames of the synthetic sample."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from napari_cosine_embed._sample_data import SAMPLE_CONFIG
from napari_cosine_embed._widgets import _jobs, embed
from napari_cosine_embed._widgets._session import session_for
from napari_cosine_embed.core.device import available_devices
from napari_cosine_embed.core.synthetic import synthetic_timelapse

PLUGIN = "napari-cosine-embed"
N_FRAMES = 4


@pytest.fixture(scope="module")
def movie():
    return synthetic_timelapse(dataclasses.replace(SAMPLE_CONFIG, n_frames=N_FRAMES))


@pytest.fixture
def errors(monkeypatch):
    """Messages of the error notifications the widgets show."""
    shown: list[str] = []
    monkeypatch.setattr(_jobs, "notify_error", shown.append)
    monkeypatch.setattr(embed, "notify_error", shown.append)
    return shown


def _dock(viewer):
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Embed")
    assert isinstance(widget, embed.EmbedWidget)
    return widget


def _run(qtbot, widget):
    """Click the button and wait for the job; returns the worker."""
    widget._control.button.changed.emit(True)
    worker = widget._control.worker
    assert worker is not None, widget._control._status.value
    with qtbot.waitSignal(worker.finished, timeout=120_000):
        pass
    return worker


def test_embed_fills_cache_shows_pca_then_reuses(make_napari_viewer, qtbot, movie):
    viewer = make_napari_viewer()
    layer = viewer.add_image(movie.image, name="nuclei")
    widget = _dock(viewer)
    session = session_for(viewer)
    arrived: list[tuple[str, int]] = []
    session.embeddings_changed.connect(lambda name, t: arrived.append((name, t)))

    widget._show_pca.value = True  # starts the job at once
    worker = widget._control.worker
    with qtbot.waitSignal(worker.finished, timeout=120_000):
        pass
    store = session.store_for(layer, create=False)
    assert store.missing() == []
    emb, fg = store.get(N_FRAMES - 1)
    assert emb.shape == (16, 256, 256)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=0), 1, atol=0.01)
    # the model finds the nuclei: its foreground agrees with the truth
    truth = movie.labels[N_FRAMES - 1] > 0
    assert np.mean((fg > 0.5) == truth) > 0.9
    assert arrived == [("nuclei", t) for t in range(N_FRAMES)]
    assert widget.last_run_frames == list(range(N_FRAMES))
    # the diameter is estimated as ``segment --diameter auto`` does; the sample's nuclei
    # (about 25 px) lie in the bundled model's range, so the frames went in as they are
    count, plan = widget._info.value.split("\n")
    assert count == f"{N_FRAMES} / {N_FRAMES} frames embedded"
    assert plan.startswith("object diameter "), plan
    assert plan.endswith("px (estimated)"), plan
    assert 20 < float(plan.split()[2]) < 30, plan

    pca = viewer.layers[embed.PCA_LAYER]
    assert pca.rgb
    assert pca.data.shape == (N_FRAMES, 256, 256, 3)
    assert pca.data.dtype == np.uint8
    for t in range(N_FRAMES):  # every frame coloured, background dark
        nuclei = movie.labels[t] > 0
        assert pca.data[t][nuclei].mean() > 3 * pca.data[t][~nuclei].mean()

    # nothing changed: a second click computes nothing and starts no worker
    widget._control.button.changed.emit(True)
    assert widget._control.worker is None
    assert widget.last_run_frames == []
    assert "reused" in widget._control._status.value
    assert len(arrived) == N_FRAMES


def test_cancel_keeps_computed_frames_and_resumes(make_napari_viewer, qtbot, movie):
    viewer = make_napari_viewer()
    layer = viewer.add_image(movie.image, name="nuclei")
    widget = _dock(viewer)
    session = session_for(viewer)
    widget._control.button.changed.emit(True)
    worker = widget._control.worker
    # cancel after the first frame (the first item the worker yields is the size plan)
    worker.yielded.connect(lambda item: isinstance(item[2], str) or widget._control.cancel())
    with qtbot.waitSignal(worker.finished, timeout=120_000):
        pass
    assert widget._control._status.value == "cancelled"
    missing = session.store_for(layer).missing()
    assert 0 < len(missing) < N_FRAMES
    first = N_FRAMES - len(missing)
    assert missing == list(range(first, N_FRAMES))  # computed frames stay, in order
    assert "embed" not in session.busy

    _run(qtbot, widget)  # resumes at the first missing frame
    assert widget.last_run_frames == list(range(first, N_FRAMES))
    assert session.store_for(layer).missing() == []


def test_lazy_dask_movie(make_napari_viewer, qtbot, movie):
    da = pytest.importorskip("dask.array")
    viewer = make_napari_viewer()
    layer = viewer.add_image(da.from_array(movie.image[:2], chunks=(1, 256, 256)), name="lazy")
    widget = _dock(viewer)
    _run(qtbot, widget)
    store = session_for(viewer).store_for(layer)
    assert store.missing() == []
    assert store.get(1)[0].shape == (16, 256, 256)


def test_bad_images_are_refused_with_a_notification(make_napari_viewer, errors):
    viewer = make_napari_viewer()
    widget = _dock(viewer)
    widget._control.button.changed.emit(True)
    assert "no image layer" in errors[-1]

    viewer.add_image(np.zeros((2, 3, 64, 64), np.uint16), name="tczyx")
    widget._image.value = viewer.layers["tczyx"]
    assert "(2, 3, 64, 64)" in widget._info.value
    widget._control.button.changed.emit(True)
    assert "(2, 3, 64, 64)" in errors[-1]
    assert "channel" in errors[-1]

    viewer.add_image(np.zeros((64, 64, 3), np.uint8), name="colour", rgb=True)
    widget._image.value = viewer.layers["colour"]
    widget._control.button.changed.emit(True)
    assert "RGB" in errors[-1]
    assert widget._control.worker is None
    assert session_for(viewer).store_for(viewer.layers["tczyx"], create=False) is None


def test_corrupt_checkpoint_keeps_the_model(make_napari_viewer, errors, tmp_path):
    viewer = make_napari_viewer()
    widget = _dock(viewer)
    session = session_for(viewer)
    before = session.model_id
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a checkpoint at all" * 10)
    assert not widget.load_model(str(bad))
    assert "broken.pt" in errors[-1]
    assert "keeping 'default'" in errors[-1]
    assert session.model_source == "default"
    assert session.model_id == before
    assert widget._model.value == "default"
    assert embed.CHOOSE_FILE in widget._model.choices


def test_device_choices_are_the_devices_present(make_napari_viewer):
    viewer = make_napari_viewer()
    widget = _dock(viewer)
    assert list(widget._device.choices) == ["auto", *available_devices()]
    widget._device.value = "cpu"
    assert session_for(viewer).device == "cpu"


def test_a_model_tuned_on_rescaled_objects_embeds_at_its_size(
    make_napari_viewer, qtbot, movie, tmp_path
):
    """A model that records the object sizes it was tuned for gets frames at that size (the
    diameter estimated in the worker); the store holds embeddings at the layer's pixels, unit
    length, that group into the nuclei."""
    from napari_cosine_embed._widgets._grouping import GroupParams, group_frame
    from napari_cosine_embed.core.checkpoint import load_model, save_model
    from napari_cosine_embed.core.metrics.instances import instance_scores

    small = load_model("default")
    small.record = {**small.record, "diameter_range": [12.0, 15.0]}  # sample nuclei: ~22 px
    path = save_model(tmp_path / "small.pt", small)
    viewer = make_napari_viewer()
    layer = viewer.add_image(movie.image[:2], name="nuclei")
    widget = _dock(viewer)
    session = session_for(viewer)
    session.set_model(path)
    _run(qtbot, widget)
    store = session.store_for(layer, create=False)
    assert store.missing() == []
    assert "rescaled x" in widget._info.value, widget._info.value
    emb, fg = store.get(1)
    assert emb.shape[1:] == layer.data.shape[1:]
    assert fg.shape == layer.data.shape[1:]
    # not what the network gives at the layer's own size
    from napari_cosine_embed.core.embed import embed_with_foreground

    native, _ = embed_with_foreground(small, layer.data[:2], device="cpu")
    agreement = (native[1] * np.asarray(emb, np.float32)).sum(0)[fg > 0.5]
    assert (agreement < 0.95).mean() > 0.01
    norms = np.linalg.norm(np.asarray(emb, np.float32), axis=0)
    assert np.allclose(norms, 1, atol=0.01)
    labels = group_frame(np.asarray(emb, np.float32), fg, GroupParams(diameter=13.5 / 0.6))
    scores = instance_scores([movie.labels[1]], [labels])
    assert scores["F1_50"] > 0.7, scores
