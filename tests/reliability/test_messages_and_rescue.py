"""Silent results are not allowed: NaN pixels, an empty result and a changed model are said;
a finished result or a trained model whose destination fails is saved elsewhere, and said."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_cosine_embed.cli import main
from napari_cosine_embed.core.checkpoint import EmbeddingModel, save_model
from napari_cosine_embed.core.models import ModelConfig


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    model = EmbeddingModel.new(ModelConfig(stacks=1, levels=2, filters=8, embedding_dim=4), seed=0)
    save_model(path, model)
    return path


def test_nan_pixels_are_reported_with_their_frames(sim_crop, tmp_path, capsys):
    for t, frame in enumerate(sorted((sim_crop / "01").iterdir())):
        image = tifffile.imread(frame).astype(np.float32)  # a float movie, as after registration
        if t == 2:
            image[:10, :20] = np.nan
            image[50, 50] = np.inf
        tifffile.imwrite(frame, image)
    assert main(["segment", str(sim_crop / "01"), "-o", str(tmp_path / "res")]) == 0
    err = capsys.readouterr().err
    assert "1 frame(s) held NaN or infinite pixels (201 in all; frames 2)" in err


@pytest.mark.parametrize(
    ("blank", "options", "words"),
    [
        (True, ["--foreground-threshold", "0.5"], ["no pixel reaches the foreground threshold"]),
        (False, ["--min-size", "100000"], ["every frame came out empty", "--min-size (100000)"]),
    ],
)
def test_empty_results_are_explained(sim_crop, tmp_path, capsys, blank, options, words):
    if blank:  # an empty field of view
        for frame in (sim_crop / "01").iterdir():
            tifffile.imwrite(frame, np.zeros_like(tifffile.imread(frame)))
    argv = ["segment", str(sim_crop / "01"), "-o", str(tmp_path / "res"), *options]
    assert main(argv) == 0
    err = capsys.readouterr().err
    for word in words:
        assert word in err, err


def test_a_rerun_from_settings_with_changed_weights_says_so(sim_crop, tmp_path, capsys, tiny_model):
    model = tmp_path / "model.pt"
    model.write_bytes(tiny_model.read_bytes())
    first = tmp_path / "first"
    assert main(["segment", str(sim_crop / "01"), "-o", str(first), "--model", str(model)]) == 0
    settings = first / "settings.json"
    assert json.loads(settings.read_text())["model"]["fingerprint"]
    other = EmbeddingModel.new(ModelConfig(stacks=1, levels=2, filters=8, embedding_dim=4), seed=1)
    save_model(model, other, overwrite=True)
    capsys.readouterr()

    argv = ["segment", str(sim_crop / "01"), "--settings", str(settings)]
    assert main([*argv, "-o", str(tmp_path / "again")]) == 2
    err = capsys.readouterr().err
    assert "has changed since" in err
    assert not (tmp_path / "again").exists()
    # naming the model again accepts it, with a warning
    assert main([*argv, "-o", str(tmp_path / "again"), "--model", str(model)]) == 0
    assert "differs from the one" in capsys.readouterr().err


def _fail_once(monkeypatch, module, name, target: Path):
    real = getattr(module, name)

    def failing(path, *args, **kwargs):
        if Path(path) == target:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(module, name, failing)


@pytest.fixture
def temporary_folder(tmp_path, monkeypatch) -> Path:
    """The system's temporary folder, where rescued results go, made private to the test."""
    import tempfile

    folder = tmp_path / "system-tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def test_a_result_that_cannot_be_written_is_rescued(
    sim_crop, tmp_path, capsys, monkeypatch, temporary_folder
):
    from napari_cosine_embed.core.io import ctc

    out = tmp_path / "res"
    _fail_once(monkeypatch, ctc, "atomic_folder", out)
    assert main(["segment", str(sim_crop / "01"), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err
    rescued = Path(err.split("saved to ")[1].split()[0])
    assert temporary_folder in rescued.parents
    assert sorted(p.name for p in rescued.iterdir())[-2:] == ["res_track.txt", "settings.json"]
    assert len(list(rescued.glob("mask*.tif"))) == 8


def test_a_trained_model_is_never_lost(tmp_path, capsys, monkeypatch, temporary_folder):
    from napari_cosine_embed.core import checkpoint

    out = tmp_path / "model.pt"
    _fail_once(monkeypatch, checkpoint, "atomic_write", out)
    argv = ["train", "--out", str(out), "--synthetic-movies", "1", "--synthetic-size", "48",
            "--synthetic-frames", "2", "--val-synthetic", "0", "--steps", "2", "--crop", "32",
            "--batch-size", "1", "--config", "stacks=1,levels=2,filters=8", "--device", "cpu"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    rescued = Path(err.split("saved to ")[1].split()[0])
    assert rescued.parent == temporary_folder
    assert checkpoint.load_model(rescued, device="cpu").record["steps"] == 2


def test_torch_write_failures_are_reported_as_write_failures(tmp_path, monkeypatch):
    import torch

    from napari_cosine_embed.core import checkpoint

    def full(payload, path):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 15808")

    monkeypatch.setattr(torch, "save", full)
    model = EmbeddingModel.new(ModelConfig(stacks=1, levels=2, filters=8, embedding_dim=4))
    with pytest.raises(OSError, match="could not be written"):
        checkpoint.save_model(tmp_path / "m.pt", model)
    assert list(tmp_path.iterdir()) == []


def test_a_single_png_is_labelled(tmp_path, capsys):
    import imageio.v3 as iio

    image = np.zeros((64, 64, 4), np.uint8)
    image[20:40, 20:40, :3] = 200
    image[..., 3] = 255
    iio.imwrite(tmp_path / "cells.png", image)
    assert (
        main(["segment", "--no-track", str(tmp_path / "cells.png"), "-o", str(tmp_path / "o")]) == 0
    )
    assert tifffile.imread(tmp_path / "o" / "cells.tif").shape == (64, 64)
    assert main(["segment", str(tmp_path / "cells.png"), "-o", str(tmp_path / "p")]) == 2
    assert "pass --no-track" in capsys.readouterr().err
