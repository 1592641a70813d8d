"""Parameters that would exhaust memory are refused up front, naming the option and a bound.

The memory budget is pinned with ``monkeypatch`` where a test depends on it, so the results
do not depend on the machine; nothing here allocates more than a few kilobytes.
"""

from __future__ import annotations

import argparse

import pytest

from napari_cosine_embed.cli import _validate, main
from napari_cosine_embed.core import limits, training
from napari_cosine_embed.core.errors import InputError
from napari_cosine_embed.core.synthetic import SyntheticConfig

GIB = 1 << 30


@pytest.fixture
def budget(monkeypatch):
    """Pin the memory budget to ``budget(n)`` GiB."""

    def pin(gib: float) -> None:
        where = f"the {gib:g} GiB of memory available"
        monkeypatch.setattr(limits, "memory_budget", lambda: (int(gib * GIB), where))

    pin(4)
    return pin


@pytest.fixture
def no_training(monkeypatch):
    """Fail loudly if a command starts simulating or reading training data."""

    def refuse(*args, **kwargs):
        raise AssertionError("the data was built before the options were checked")

    monkeypatch.setattr(training, "from_synthetic", refuse)
    monkeypatch.setattr(training, "from_arrays", refuse)


def _refused(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize(
    ("extra", "option", "bound"),
    [
        (["--cells", "1000000"], "--cells", "[0, 8192]"),
        (["--size", "100000", "100000"], "--size", "[16, 16384]"),
        (["--frames", "1000000"], "--frames", "[1, 100000]"),
        (["--cells", "500"], "--cells", "at most 289 nuclei fit"),
        (["--frames", "1000"], "--frames", "use at most --frames 504"),
        (["--size", "4096", "4096", "--frames", "20"], "--frames", "use at most --frames 13"),
        (["--size", "16384", "16384", "--frames", "1"], "--frames", "use a smaller --size"),
    ],
)
def test_sample_refuses_movies_that_do_not_fit(extra, option, bound, budget, tmp_path, capsys):
    out = tmp_path / "sample"
    err = _refused(["sample", str(out), *extra], capsys)
    assert f"argument {option}:" in err
    assert bound in err
    assert not out.exists()


@pytest.mark.parametrize(
    ("extra", "option", "bound"),
    [
        (["--synthetic-movies", "1000000"], "--synthetic-movies", "[0, 100000]"),
        (["--synthetic-size", "100000"], "--synthetic-size", "[32, 512]"),
        (["--batch-size", "100000"], "--batch-size", "[1, 256]"),
        (["--crop", "100000"], "--crop", "[32, 2048]"),
        (["--synthetic-movies", "5000"], "--synthetic-movies", "use at most --synthetic-movies"),
        (["--batch-size", "64", "--crop", "1024"], "--batch-size", "use at most --batch-size 1"),
        (["--crop", "2048", "--clip-length", "64"], "--batch-size", "smaller --crop"),
    ],
)
def test_train_refuses_data_and_batches_that_do_not_fit(
    extra, option, bound, budget, no_training, tmp_path, capsys
):
    out = tmp_path / "model.pt"
    err = _refused(["train", "--out", str(out), "--synthetic-movies", "2", *extra], capsys)
    assert f"argument {option}:" in err
    assert bound in err
    assert "4 GiB of memory available" in err or "must be" in err
    assert not out.exists()


def test_finetune_refuses_a_batch_that_does_not_fit(budget, no_training, tmp_path, capsys):
    argv = ["finetune", "--images", "i.tif", "--labels", "l.tif", "--out", str(tmp_path / "m")]
    err = _refused([*argv, "--batch-size", "200", "--crop", "512"], capsys)
    assert "argument --batch-size:" in err
    assert "use at most --batch-size" in err


def test_segment_refuses_a_tile_that_does_not_fit(budget, tmp_path, capsys):
    budget(1)
    argv = ["segment", "in.tif", "-o", str(tmp_path / "out")]
    err = _refused([*argv, "--tile-size", "4096"], capsys)
    assert "argument --tile-size:" in err
    assert "use at most --tile-size 1448" in err
    err = _refused([*argv, "--tile-size", "1000000"], capsys)
    assert "[64, 4096]" in err


def test_what_fits_passes_the_checks(budget):
    args = argparse.Namespace(
        synthetic_movies=120, val_synthetic=4, synthetic_frames=8, synthetic_size=256,
        batch_size=4, clip_length=2, crop=192,
    )  # fmt: skip
    assert _validate.check_train(args) is None
    assert _validate.check_finetune(args) is None
    sample = argparse.Namespace(size=[256, 256], frames=50, cells=14, seed=0)
    assert _validate.check_sample(sample) is None
    assert _validate.check_segment(argparse.Namespace(tile_size=1024)) is None
    assert _validate.check_segment(argparse.Namespace(tile_size=None)) is None


def test_a_frame_smaller_than_the_crop_still_trains(budget):
    """Crops larger than the frames are padded (and ignored), so they are not refused."""
    args = argparse.Namespace(
        synthetic_movies=2, val_synthetic=1, synthetic_frames=3, synthetic_size=48,
        batch_size=1, clip_length=2, crop=192,
    )  # fmt: skip
    assert _validate.check_train(args) is None


def test_synthetic_config_bounds_the_number_of_nuclei():
    with pytest.raises(InputError, match="use at most 504 frames"):
        SyntheticConfig(n_frames=1000, n_cells=14, shape=(256, 256))
    # contact inhibition bounds the growth, so a long movie is fine
    long = SyntheticConfig(n_frames=5000, n_cells=14, max_cells=200)
    assert long.estimated_peak_cells() <= 400
    assert SyntheticConfig(cycle_length=None, n_frames=100_000).estimated_peak_cells() < 100
    assert SyntheticConfig(n_cells=0).cells_that_fit() == 289


def test_memory_budget_reads_the_machine():
    available, where = limits.memory_budget()
    assert available > 0
    assert "memory" in where
    assert limits.format_bytes(1536) == "1.5 KiB"
