"""Model files: exact round trip through weights_only loading, safe writing, clear errors."""

from __future__ import annotations

import pickle
from fractions import Fraction

import numpy as np
import pytest
import torch

from napari_cosine_embed.core import checkpoint
from napari_cosine_embed.core.checkpoint import (
    CHECKPOINT_FORMAT,
    EmbeddingModel,
    list_models,
    load_model,
    save_model,
)
from napari_cosine_embed.core.errors import InputError, OutputExistsError
from napari_cosine_embed.core.models import ModelConfig
from napari_cosine_embed.core.normalise import Normalisation

TINY = ModelConfig(stacks=2, levels=2, filters=8, embedding_dim=4, first_recurrent_level=0)


@pytest.fixture
def model() -> EmbeddingModel:
    model = EmbeddingModel.new(TINY, normalisation=Normalisation(2.0, 99.0), seed=3, name="tiny")
    model.record = {"steps": 7, "scores": {"score": np.float64(0.5)}, "data": {"summary": "x"}}
    return model


@pytest.fixture
def bundled(tmp_path, monkeypatch):
    folder = tmp_path / "bundled"
    folder.mkdir()
    monkeypatch.setattr(checkpoint, "bundled_models_dir", lambda: folder)
    return folder


def _outputs(model: EmbeddingModel, frames: torch.Tensor) -> list[torch.Tensor]:
    with torch.no_grad():
        out = model.network.forward_sequence(frames)
    return [*out.embeddings, out.foreground]


def test_round_trip_gives_identical_outputs(model, tmp_path):
    path = save_model(tmp_path / "m.pt", model)
    assert model.path == str(path)
    payload = torch.load(path, weights_only=True)  # plain data and tensors only
    assert payload["format"] == CHECKPOINT_FORMAT
    loaded = load_model(path, device="cpu")
    assert not loaded.network.training
    assert loaded.config == TINY
    assert loaded.normalisation == Normalisation(2.0, 99.0)
    assert loaded.record["steps"] == 7
    assert loaded.record["scores"]["score"] == 0.5
    assert loaded.name == "m"
    frames = torch.randn(1, 3, 1, 24, 40)  # three frames: the recurrent state matters
    model.eval()
    for a, b in zip(_outputs(model, frames), _outputs(loaded, frames), strict=True):
        assert torch.equal(a, b)


def test_refuses_to_overwrite_silently(model, tmp_path):
    path = save_model(tmp_path / "m.pt", model)
    before = path.read_bytes()
    with pytest.raises(OutputExistsError):
        save_model(path, model)
    assert path.read_bytes() == before
    model.record["steps"] = 8
    save_model(path, model, overwrite=True)
    assert load_model(path, device="cpu").record["steps"] == 8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]  # no temporary left


class _Foreign:
    pass


@pytest.mark.parametrize(
    "kind", ["random-bytes", "empty", "truncated", "state_dict", "pickle", "module"]
)
def test_unusable_files_raise_input_error(model, tmp_path, kind):
    path = tmp_path / f"{kind}.pt"
    if kind == "random-bytes":
        path.write_bytes(np.random.default_rng(0).bytes(1000))
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        whole = save_model(tmp_path / "whole.pt", model).read_bytes()
        path.write_bytes(whole[: len(whole) // 2])
    elif kind == "state_dict":
        torch.save(model.network.state_dict(), path)
    elif kind == "pickle":
        path.write_bytes(
            pickle.dumps({"format": CHECKPOINT_FORMAT, "x": Fraction(1, 3)}, protocol=2)
        )
    else:
        torch.save(model.network, path)  # a whole pickled module: refused by weights_only
    with pytest.raises(InputError, match=str(path.name)):
        load_model(path, device="cpu")


def test_bad_config_in_checkpoint_is_an_input_error(model, tmp_path):
    payload = checkpoint.checkpoint_payload(model)
    payload["config"]["filters"] = 16  # weights no longer fit
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(InputError, match="usable network"):
        load_model(tmp_path / "bad.pt", device="cpu")


def test_network_to_checkpoint_dict_is_accepted(model, tmp_path):
    torch.save(model.network.to_checkpoint(), tmp_path / "bare.pt")
    loaded = load_model(tmp_path / "bare.pt", device="cpu")
    assert loaded.config == TINY
    assert loaded.normalisation == Normalisation()


def test_unknown_name_lists_the_bundled_ones(model, bundled):
    save_model(bundled / "alpha.pt", model)
    save_model(bundled / "beta.pt", model)
    with pytest.raises(InputError, match=r"'nope'.*alpha, beta"):
        load_model("nope", device="cpu")
    with pytest.raises(InputError, match="default model has not been trained"):
        load_model("default", device="cpu")
    assert load_model("beta", device="cpu").name == "beta"
    with pytest.raises(InputError, match="no such model file"):
        load_model(bundled / "missing.pt")


def test_list_models_summarises_records_and_flags_broken_files(model, bundled):
    save_model(bundled / "good.pt", model)
    (bundled / "broken.pt").write_bytes(b"not a checkpoint")
    listing = {entry["name"]: entry for entry in list_models()}
    assert listing["good"]["trained_on"] == "x"
    assert listing["good"]["steps"] == 7
    assert listing["good"]["size"] == (bundled / "good.pt").stat().st_size
    assert "error" in listing["broken"]


def test_record_must_be_plain_data(model, tmp_path):
    model.record = {"thing": _Foreign()}
    with pytest.raises(TypeError, match="_Foreign"):
        save_model(tmp_path / "m.pt", model)
    assert not (tmp_path / "m.pt").exists()
