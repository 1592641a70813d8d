"""Every numeric option is checked when it is parsed, and so is every value of a settings file.

A wrong value must end the command with exit status 2 and one message that names the option
(or the field), the value and the range accepted, without a traceback and before anything is
read or written. No test here runs a real segmentation or training: they stop at parsing.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_cosine_embed.cli import build_parser, main
from napari_cosine_embed.core.errors import InputError
from napari_cosine_embed.core.limits import PIPELINE, TRAIN, Range
from napari_cosine_embed.core.models import ModelConfig
from napari_cosine_embed.core.pipeline import PipelineConfig
from napari_cosine_embed.core.synthetic import SyntheticConfig
from napari_cosine_embed.core.training import TrainConfig

# the arguments each command needs besides the option under test; nothing is ever read
REQUIRED = {
    "segment": ["in.tif", "-o", "out"],
    "track": ["labels.tif", "-o", "out"],
    "sample": ["out"],
    "evaluate": ["--gt", "gt", "--res", "res"],
    "train": ["--out", "model.pt"],
    "finetune": ["--images", "i.tif", "--labels", "l.tif", "--out", "model.pt"],
}

# (command, option, bad value, a piece of the range the message must state)
BAD_VALUES = [
    ("segment", "--min-size", "-5", "[0, 10000000]"),
    ("segment", "--min-samples", "2.5", "an integer in [1, 1000]"),
    ("segment", "--min-cluster-size", "1", "[2, 10000000]"),
    ("segment", "--coord-weight", "inf", "[0, 1000]"),
    ("segment", "--epsilon", "-0.1", "[0, 1000]"),
    ("segment", "--bandwidth", "nan", "(0, 2]"),
    ("segment", "--bandwidth", "0", "(0, 2]"),
    ("segment", "--foreground-threshold", "1.5", "[0, 1]"),
    ("segment", "--split-depth", "1", "[0, 1)"),
    ("segment", "--object-size", "0", "[1, 10000]"),
    ("segment", "--tile-size", "1000000", "[64, 4096]"),
    ("segment", "--min-track-length", "0", "[1, 100000]"),
    ("segment", "--max-gap", "x", "[0, 1000]"),
    ("segment", "--split-back", "-1", "[0, 1000]"),
    ("track", "--min-iou", "0", "(0, 1]"),
    ("track", "--min-child-ratio", "-0.1", "[0, 1]"),
    ("track", "--min-split-frames", "0", "[1, 100000]"),
    ("track", "--max-gap", "1e9", "[0, 1000]"),
    ("sample", "--frames", "0", "[1, 100000]"),
    ("sample", "--cells", "-1", "[0, 8192]"),
    ("sample", "--seed", "-1", "[0, 4294967295]"),
    ("evaluate", "--measures", "SEG,BC(-1)", "BC(i) with an integer i >= 0"),
    ("train", "--steps", "0", "[1, 10000000]"),
    ("train", "--batch-size", "0", "[1, 256]"),
    ("train", "--crop", "16", "[32, 2048]"),
    ("train", "--lr", "0", "(0, 1]"),
    ("train", "--lr", "nan", "(0, 1]"),
    ("train", "--warmup", "-1", "[0, 10000000]"),
    ("train", "--bptt", "100", "[0, 64]"),
    ("train", "--threads", "-1", "[0, 1024]"),
    ("train", "--crowded", "1.5", "[0, 1]"),
    ("train", "--neighbour-radius", "inf", "[0, 64]"),
    ("train", "--foreground-weight", "-1", "[0, 1000]"),
    ("train", "--synthetic-frames", "0", "[1, 32]"),
    ("train", "--val-every", "-5", "[0, 10000000]"),
    ("train", "--config", "filters=0", "filters must be an integer in [1, 256]"),
    ("train", "--config", "levels=50", "levels must be an integer in [1, 8]"),
    ("train", "--config", "stacks=two", "stacks must be an integer"),
    ("finetune", "--frames", "0,-1", "frame numbers >= 0"),
    ("finetune", "--clip-length", "0", "[1, 64]"),
    ("finetune", "--foreground-crops", "2", "[0, 1]"),
    ("finetune", "--seed", "-5", "[0, 4294967295]"),
    ("finetune", "--log-every", "1.5", "an integer"),
]


@pytest.mark.parametrize(("command", "option", "value", "accepted"), BAD_VALUES)
def test_a_bad_value_stops_parsing_naming_option_value_and_range(
    command, option, value, accepted, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stop:
        main([command, *REQUIRED[command], option, value])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}:" in err
    assert accepted in err
    # lists and NAME=VALUE pairs: the message quotes the part that is wrong
    assert value.rsplit(",", 1)[-1].rsplit("=", 1)[-1] in err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # nothing was written


def test_good_values_parse_to_numbers():
    args = build_parser().parse_args(
        ["segment", "in.tif", "-o", "out", "--bandwidth", "0.2", "--min-size", "0"]
    )
    assert (args.bandwidth, args.min_size) == (0.2, 0)
    args = build_parser().parse_args(["sample", "out", "--size", "64", "48", "--frames", "1"])
    assert (args.size, args.frames) == ([64, 48], 1)


@pytest.mark.parametrize(
    ("option", "field"),
    [
        ("--min-samples", "min_samples"),
        ("--min-cluster-size", "min_cluster_size"),
        ("--coord-weight", "coord_weight"),
        ("--epsilon", "cluster_selection_epsilon"),
        ("--bandwidth", "bandwidth"),
        ("--foreground-threshold", "foreground_threshold"),
        ("--min-size", "min_size"),
        ("--split-depth", "split_depth"),
        ("--object-size", "object_size"),
        ("--min-track-length", "min_track_length"),
        ("--max-gap", "max_gap"),
        ("--split-back", "split_back"),
    ],
)
def test_segment_options_accept_exactly_what_the_config_accepts(option, field):
    """Both ends of each range: the option and PipelineConfig agree on either side of it."""
    limit = PIPELINE[field]
    parser = build_parser()
    for end, is_open in ((limit.low, limit.low_open), (limit.high, limit.high_open)):
        if end is None:
            continue
        text = str(int(end)) if limit.kind is int else repr(float(end))
        if is_open:
            with pytest.raises(SystemExit):
                parser.parse_args(["segment", "in", "-o", "o", option, text])
            with pytest.raises(InputError):
                PipelineConfig(**{field: limit.kind(end)})
        else:
            args = parser.parse_args(["segment", "in", "-o", "o", option, text])
            value = getattr(args, option[2:].replace("-", "_"))
            assert PipelineConfig(**{field: value}).to_dict()[field] == value


@pytest.mark.parametrize(
    "field",
    ["steps", "batch_size", "crop", "clip_length", "lr", "foreground_crops", "seed", "bptt",
     "warmup", "neighbour_radius", "foreground_weight", "val_every", "checkpoint_every"],
)  # fmt: skip
def test_train_options_accept_exactly_what_the_train_config_accepts(field):
    limit, option = TRAIN[field], "--" + field.replace("_", "-")
    parser = build_parser()
    for end, is_open in ((limit.low, limit.low_open), (limit.high, limit.high_open)):
        text = str(int(end)) if limit.kind is int else repr(float(end))
        if is_open:
            with pytest.raises(SystemExit):
                parser.parse_args(["train", "--out", "m.pt", option, text])
            with pytest.raises(ValueError, match=field):
                TrainConfig(**{field: limit.kind(end)})
        else:
            value = getattr(parser.parse_args(["train", "--out", "m.pt", option, text]), field)
            assert getattr(TrainConfig(**{field: value}), field) == value


# --- --settings files ---------------------------------------------------------------------


@pytest.fixture
def movie(tmp_path) -> Path:
    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, np.zeros((2, 32, 32), np.uint16))
    return path


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"parameters": {"min_size": "5"}}', "min_size must be an integer in [0, 10000000]"),
        ('{"parameters": {"coord_weight": NaN}}', "coord_weight must be a number in [0, 1000]"),
        ('{"min_cluster_size": -3}', "min_cluster_size must be an integer in [2, 10000000]"),
        ('{"parameters": {"min_sampels": 3}}', "unknown settings ['min_sampels']"),
        ('{"parameters": {"min_samples": true}}', "min_samples must be an integer"),
        ('{"parameters": {"max_gap": 1.5}}', "max_gap must be an integer in [0, 1000]"),
        ('{"parameters": {"fill_holes": "no"}}', "fill_holes must be true or false"),
        ('{"parameters": {"bandwidth": 1e400}}', "bandwidth must be a number in (0, 2]"),
        ('{"parameters": {"tile_size": 128}}', "tile_size must be at least twice tile_overlap"),
        ("[1, 2]", "the file must be a JSON object"),
        ('{"parameters": 5}', '"parameters" must be a JSON object'),
        ("{not json", "cannot read it"),
    ],
)
def test_a_bad_settings_file_is_refused_naming_the_file_and_field(
    content, expected, movie, tmp_path, capsys
):
    settings = tmp_path / "settings.json"
    settings.write_text(content)
    out = tmp_path / "out"
    assert main(["segment", str(movie), "-o", str(out), "--settings", str(settings)]) == 2
    err = capsys.readouterr().err
    assert f"--settings {settings}:" in err
    assert expected in err
    assert "Traceback" not in err
    assert not out.exists()


def test_a_valid_settings_file_round_trips():
    config = PipelineConfig(min_samples=4, coord_weight=2, state_window=None)
    again = PipelineConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config
    assert isinstance(again.coord_weight, float)


# --- the configurations themselves (also read from checkpoints and state files) ------------


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: PipelineConfig(min_size=np.float64(math.nan)), "min_size"),
        (lambda: PipelineConfig(object_size="32"), "object_size"),
        (lambda: PipelineConfig(track="yes"), "track"),
        (lambda: PipelineConfig(model=""), "model"),
        (lambda: PipelineConfig.from_dict([("min_size", 3)]), "mapping"),
        (lambda: ModelConfig(filters=0), "filters"),
        (lambda: ModelConfig(levels=50), "levels"),
        (lambda: ModelConfig(embedding_dim=1), "embedding_dim"),
        (lambda: ModelConfig(recurrent="false"), "recurrent"),
        (lambda: ModelConfig.from_dict({"stacks": 2.5}), "stacks"),
        (lambda: TrainConfig(crop=100_000), "crop"),
        (lambda: TrainConfig(batch_size=100_000), "batch_size"),
        (lambda: TrainConfig(lr=math.inf), "lr"),
        (lambda: TrainConfig(amp="no"), "amp"),
        (lambda: TrainConfig.from_dict({"augment": {"noise": -1}}), "noise"),
        (lambda: TrainConfig.from_dict({"augment": {"scale": [0, 1]}}), "scale"),
        (lambda: SyntheticConfig(n_cells=1_000_000), "n_cells"),
        (lambda: SyntheticConfig(shape=(100_000, 100_000)), "shape"),
        (lambda: SyntheticConfig(speed=math.nan), "speed"),
        (lambda: SyntheticConfig(cycle_length=(0.1, 0.2)), "cycle_length"),
        (lambda: SyntheticConfig(nucleoli=10**6), "nucleoli"),
    ],
)
def test_configs_refuse_absurd_values_naming_the_field(build, field):
    with pytest.raises(ValueError, match=field):
        build()


def test_range_describes_itself_and_refuses_booleans_and_text():
    assert Range(int, 1).describe() == "an integer >= 1"
    assert Range(float, 0, 1, low_open=True).describe() == "a number in (0, 1]"
    assert Range(float, 0, optional=True).describe() == "a number >= 0 or None"
    for value in (True, "3", 3.0, None):
        with pytest.raises(InputError, match=r"x must be an integer >= 1, got"):
            Range(int, 1).check(value, "x")
    assert Range(float, 0).check(np.int64(3), "x") == 3.0
