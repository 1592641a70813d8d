"""The command line: ``train`` (with Ctrl-C and --resume), ``finetune`` and ``models``.

A tiny network, tiny synthetic movies and a few steps keep this file to seconds.
"""

from __future__ import annotations

import shutil
import signal

import numpy as np
import pytest
import tifffile

from napari_cosine_embed.cli import main
from napari_cosine_embed.core import checkpoint
from napari_cosine_embed.core.checkpoint import load_model
from napari_cosine_embed.core.synthetic import synthetic_timelapse
from napari_cosine_embed.core.training import trainer

TINY = "stacks=1,levels=2,filters=8,embedding_dim=4,input_stride=1"
TRAIN = [
    "train", "--synthetic-movies", "2", "--synthetic-size", "48", "--synthetic-frames", "3",
    "--val-synthetic", "1", "--steps", "4", "--crop", "32", "--batch-size", "1",
    "--config", TINY, "--device", "cpu", "--val-every", "2", "--log-every", "1",
    "--checkpoint-every", "2", "--warmup", "1",
]  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("train") / "tiny.pt"
    assert main([*TRAIN, "--out", str(out)]) == 0
    return out


def test_train_writes_a_model_that_load_model_reads(trained, capsys):
    model = load_model(trained, device="cpu")
    assert model.config.filters == 8
    assert model.record["steps"] in (2, 4)  # the best-validated step
    assert model.record["steps_run"] == 4
    assert "2 synthetic movies" in model.record["data"]["summary"]
    assert model.record["scores"]["n_frames"] == 3
    assert trained.with_name("tiny.state.pt").is_file()


def test_train_prints_progress_and_refuses_to_overwrite(trained, capsys):
    out = trained.with_name("again.pt")
    assert main([*TRAIN, "--steps", "2", "--crowded", "0.5", "--out", str(out)]) == 0
    assert "'crowded': 0.5" in repr(load_model(out, device="cpu").record["data"])
    printed = capsys.readouterr().out
    assert "step 1/2" in printed
    assert "val: score" in printed
    assert f"to {out}" in printed
    assert main([*TRAIN, "--out", str(out)]) == 2  # before any training
    assert "already exists" in capsys.readouterr().err


@pytest.fixture
def terminal_sigint():
    """SIGINT as in a terminal: a shell that ran the suite in the background ignores it."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.usefixtures("terminal_sigint")
def test_ctrl_c_saves_the_best_model_and_resume_continues(tmp_path, monkeypatch, capsys):
    calls, step = [], trainer.train_step

    def interrupted_step(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            signal.raise_signal(signal.SIGINT)  # Ctrl-C during the third step
        return step(*args, **kwargs)

    monkeypatch.setattr(trainer, "train_step", interrupted_step)
    out = tmp_path / "stopped.pt"
    assert main([*TRAIN, "--out", str(out)]) == 130  # a script sees the run did not finish
    printed = capsys.readouterr()
    assert "stopping after this step" in printed.err
    assert "stopped at step 3 of 4" in printed.out
    assert load_model(out, device="cpu").record["stopped_early"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stopped.pt", "stopped.state.pt"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler

    assert f"--resume {tmp_path / 'stopped.state.pt'}" in printed.err

    # the continuation replaces the interrupted run's model without --overwrite
    state = tmp_path / "stopped.state.pt"
    assert main([*TRAIN, "--out", str(out), "--resume", str(state)]) == 0
    assert "resuming from" in capsys.readouterr().out
    model = load_model(out, device="cpu")
    assert model.record["steps_run"] == 4
    assert not model.record["stopped_early"]


def test_finetune_from_the_trained_model_on_a_tiff(trained, tmp_path, capsys):
    movie = synthetic_timelapse(n_frames=3, shape=(48, 48), n_cells=4, seed=2)
    tifffile.imwrite(tmp_path / "movie.tif", movie.image, photometric="minisblack")
    tifffile.imwrite(tmp_path / "labels.tif", movie.labels, photometric="minisblack")
    out = tmp_path / "tuned.pt"
    argv = [
        "finetune", "--base", str(trained), "--images", str(tmp_path / "movie.tif"),
        "--labels", str(tmp_path / "labels.tif"), "--frames", "0,2", "--steps", "2",
        "--crop", "64", "--device", "cpu", "--foreground-weight", "10", "--out", str(out),
    ]  # fmt: skip
    assert main(argv) == 0
    model = load_model(out, device="cpu")
    assert model.record["base_model"]["name"] == "tiny"
    assert model.record["foreground_weight"] == 10.0
    assert model.record["data"]["sources"][0]["frames"] == [0, 2]
    assert model.record["steps"] == 2
    # measured on a band of each curated frame that training left out
    found = model.record["foreground_calibration"]
    assert found["frames"] == 2
    assert found["scored_on"] == "held-out bands of the training frames"
    out_text = capsys.readouterr().out
    assert "a band of 20% of 2 curated frames" in out_text
    assert f"foreground threshold {found['threshold']:g}" in out_text
    assert main([*argv[:-1], str(tmp_path / "x.pt"), "--frames", "0,7"]) == 2
    assert "frames must lie" in capsys.readouterr().err


@pytest.fixture
def finetune_argv(trained, tmp_path):
    movie = synthetic_timelapse(n_frames=3, shape=(48, 48), n_cells=4, seed=2)
    tifffile.imwrite(tmp_path / "movie.tif", movie.image, photometric="minisblack")
    tifffile.imwrite(tmp_path / "labels.tif", movie.labels, photometric="minisblack")
    return [
        "finetune", "--base", str(trained), "--images", str(tmp_path / "movie.tif"),
        "--labels", str(tmp_path / "labels.tif"), "--frames", "0,2", "--steps", "50",
        "--crop", "32", "--batch-size", "1", "--device", "cpu", "--out",
    ]  # fmt: skip


@pytest.mark.usefixtures("terminal_sigint")
@pytest.mark.parametrize(("sig", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stopped_finetune_calibrates_exits_non_zero_and_resumes(
    finetune_argv, tmp_path, monkeypatch, capsys, sig, status
):
    calls, step = [], trainer.train_step

    def interrupted_step(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            signal.raise_signal(sig)
        return step(*args, **kwargs)

    monkeypatch.setattr(trainer, "train_step", interrupted_step)
    out = tmp_path / "stopped.pt"
    assert main([*finetune_argv, str(out)]) == status
    printed = capsys.readouterr()
    assert "stopped at step 2 of 50" in printed.out
    model = load_model(out, device="cpu")
    assert model.record["stopped_early"]
    assert model.record["foreground_calibration"]["frames"] == 2
    assert "foreground threshold" in printed.out
    state = tmp_path / "stopped.state.pt"
    assert f"--resume {state}" in printed.err
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler

    monkeypatch.setattr(trainer, "train_step", step)
    assert main([*finetune_argv, str(out), "--resume", str(state)]) == 0
    assert "resuming from" in capsys.readouterr().out
    model = load_model(out, device="cpu")
    assert model.record["steps_run"] == 50
    assert not model.record["stopped_early"]
    assert not state.exists()  # finished: nothing left to resume


@pytest.mark.usefixtures("terminal_sigint")
def test_ctrl_c_during_calibration_skips_it(finetune_argv, tmp_path, monkeypatch, capsys):
    def interrupted(model, data):
        yield 1, 2
        signal.raise_signal(signal.SIGINT)
        yield 2, 2
        return {"threshold": 0.5}

    monkeypatch.setattr(trainer, "iter_calibrate_foreground", interrupted)
    out = tmp_path / "uncalibrated.pt"
    steps = finetune_argv.index("--steps") + 1
    finetune_argv[steps] = "2"
    assert main([*finetune_argv, str(out)]) == 0
    assert "calibration skipped" in capsys.readouterr().out
    model = load_model(out, device="cpu")
    assert not model.record["stopped_early"]
    assert "foreground_calibration" not in model.record
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_models_lists_the_bundled_models(trained, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(checkpoint, "bundled_models_dir", lambda: tmp_path)
    assert main(["models"]) == 0
    assert "no bundled models" in capsys.readouterr().out
    shutil.copy(trained, tmp_path / "tiny.pt")
    assert main(["models"]) == 0
    printed = capsys.readouterr().out
    assert "tiny" in printed
    assert "trained on: 2 synthetic movies" in printed
    assert "validation: score" in printed
    assert main(["models", "--json"]) == 0
    assert '"name": "tiny"' in capsys.readouterr().out


def test_finetune_with_a_missing_default_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(checkpoint, "bundled_models_dir", lambda: tmp_path)
    image = np.zeros((32, 32), np.uint8)
    tifffile.imwrite(tmp_path / "i.tif", image)
    argv = ["finetune", "--images", str(tmp_path / "i.tif"), "--labels", str(tmp_path / "i.tif")]
    assert main([*argv, "--out", str(tmp_path / "o.pt")]) == 2
    assert "default model has not been trained" in capsys.readouterr().err


def test_train_init_continues_from_a_model_and_records_it(trained, capsys):
    import torch

    base = load_model(trained, device="cpu")
    no_config = [a for a in TRAIN if a not in ("--config", TINY)]
    out = trained.with_name("continued.pt")
    assert main([*no_config, "--steps", "2", "--init", str(trained), "--out", str(out)]) == 0
    model = load_model(out, device="cpu")
    assert model.config == base.config  # the architecture comes from the --init model
    assert model.record["base_model"]["path"] == str(trained)
    moved = [
        not torch.equal(a, b)
        for a, b in zip(
            model.network.state_dict().values(), base.network.state_dict().values(), strict=True
        )
    ]
    assert any(moved)
    assert main([*TRAIN, "--init", str(trained), "--out", str(out.with_name("x.pt"))]) == 2
    assert "cannot be combined" in capsys.readouterr().err


def test_finetune_command_defaults_match_the_core():
    from napari_cosine_embed.cli import build_parser
    from napari_cosine_embed.core.training import FINETUNE_DEFAULTS

    args = build_parser().parse_args(["finetune", "--images", "i", "--labels", "l", "--out", "o"])
    assert (args.steps, args.batch_size, args.clip_length, args.lr, args.foreground_crops) == (
        FINETUNE_DEFAULTS.steps,
        FINETUNE_DEFAULTS.batch_size,
        FINETUNE_DEFAULTS.clip_length,
        FINETUNE_DEFAULTS.lr,
        FINETUNE_DEFAULTS.foreground_crops,
    )
    assert args.frozen_stacks == FINETUNE_DEFAULTS.frozen_stacks
    assert args.foreground_weight == FINETUNE_DEFAULTS.foreground_weight
    assert args.stack_loss == FINETUNE_DEFAULTS.stack_loss
    assert args.calibration_holdout == FINETUNE_DEFAULTS.calibration_holdout
    assert args.neighbour_radius == FINETUNE_DEFAULTS.neighbour_radius
