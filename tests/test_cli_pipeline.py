"""``segment`` and ``track`` on the command line: CTC result folders that score and validate."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_cosine_embed.cli import main
from napari_cosine_embed.core.io.ctc import read_ctc_gt, read_ctc_result
from napari_cosine_embed.core.metrics import ctc_scores
from napari_cosine_embed.core.pipeline import PipelineConfig


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pipeline") / "synthetic"
    assert main(["sample", str(out), "--frames", "6", "--seed", "11"]) == 0
    return out


@pytest.fixture(scope="module")
def segmented(dataset, tmp_path_factory) -> Path:
    res = tmp_path_factory.mktemp("res") / "01_RES"
    assert main(["segment", str(dataset / "01"), "-o", str(res)]) == 0
    return res


def test_segment_writes_a_scored_ctc_result(dataset, segmented):
    labels, _lineage = read_ctc_result(segmented)
    assert labels.shape == (6, 256, 256)
    assert labels.dtype == np.uint16
    scores = ctc_scores(dataset / "01_GT", segmented)
    # the bundled model on a synthetic movie it never saw (measured: SEG 0.94, TRA 0.99 on seed 5)
    assert scores["SEG"] > 0.8
    assert scores["DET"] > 0.9
    assert scores["TRA"] > 0.9


def test_segment_writes_its_settings(segmented):
    settings = json.loads((segmented / "settings.json").read_text())
    params = settings["parameters"]
    assert params["grouping"] == "hdbscan"
    assert params["track"] is True
    assert {"min_samples", "min_cluster_size", "coord_weight", "bandwidth"} <= set(params)
    assert settings["model"]["name"] == "default"
    assert len(settings["model"]["fingerprint"]) == 16


def test_segment_records_the_estimated_diameter_as_a_number(segmented):
    """``--diameter auto`` (the default) is estimated once; settings.json holds the number
    and the sizes that followed it, so a rerun from it repeats the plan without estimating."""
    from napari_cosine_embed.core.diameter import size_parameters

    params = json.loads((segmented / "settings.json").read_text())["parameters"]
    assert isinstance(params["diameter"], float)
    assert 15 < params["diameter"] < 35  # the sample's nuclei: ~22 px across
    for name, value in size_parameters(params["diameter"]).items():
        assert params[name] == pytest.approx(value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("huge", "'auto', a number of pixels or a length in microns"),
        ("0", "in [2, 2000]"),
        ("nan", "'auto' or a number"),
        ("12 furlongs", "unknown unit 'furlongs'"),
    ],
)
def test_segment_refuses_a_bad_diameter(dataset, tmp_path, capsys, value, message):
    argv = ["segment", str(dataset / "01"), "-o", str(tmp_path / "r"), "--diameter", value]
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


@pytest.fixture(scope="module")
def movie_tiffs(dataset, tmp_path_factory) -> dict[str, Path]:
    """Two frames of the sample as TIFFs: one recording 0.5 um pixels (ImageJ), one bare."""
    from napari_cosine_embed.core.io import read_any

    frames = np.asarray(read_any(dataset / "01").image[:2])
    folder = tmp_path_factory.mktemp("tiffs")
    tifffile.imwrite(
        folder / "calibrated.tif",
        frames,
        imagej=True,
        resolution=(2.0, 2.0),
        metadata={"unit": "um", "axes": "TYX"},
    )
    tifffile.imwrite(folder / "bare.tif", frames)
    return {"calibrated": folder / "calibrated.tif", "bare": folder / "bare.tif"}


@pytest.mark.parametrize(
    ("movie", "extra", "pixels"),
    [("calibrated", [], 22.0), ("bare", ["--pixel-size", "0.25"], 44.0)],
)
def test_segment_takes_the_diameter_in_microns(movie_tiffs, tmp_path, capsys, movie, extra, pixels):
    """11 um is 22 px at the 0.5 um the TIFF records, 44 px at a --pixel-size of 0.25 um; the
    settings keep pixels (a rerun needs no pixel size)."""
    out = tmp_path / "r"
    argv = ["segment", str(movie_tiffs[movie]), "-o", str(out), "--diameter", "11um", *extra]
    assert main(argv) == 0
    params = json.loads((out / "settings.json").read_text())["parameters"]
    assert params["diameter"] == pytest.approx(pixels)
    assert f"diameter 11um = {pixels:.1f} px" in capsys.readouterr().err


def test_segment_refuses_microns_without_a_pixel_size(movie_tiffs, tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["segment", str(movie_tiffs["bare"]), "-o", str(out), "--diameter", "11 µm"]) == 2
    err = capsys.readouterr().err
    assert "pixel size is not known" in err
    assert "--pixel-size" in err
    assert not out.exists()


def test_segment_with_the_diameter_off_keeps_the_pixel_sizes(dataset, tmp_path):
    out = tmp_path / "off"
    assert main(["segment", str(dataset / "01"), "-o", str(out), "--diameter", "off"]) == 0
    params = json.loads((out / "settings.json").read_text())["parameters"]
    defaults = PipelineConfig()
    assert params["diameter"] is None
    assert params["min_cluster_size"] == defaults.min_cluster_size
    assert params["object_size"] == defaults.object_size


def test_segment_result_passes_ctc_validate(segmented):
    exe = Path(sys.executable).parent / "ctc_validate"
    if not exe.exists():
        pytest.skip("py-ctcmetrics' ctc_validate is not installed")
    out = subprocess.run([str(exe), "--res", str(segmented)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "Valid: 1.0" in out.stdout


def test_settings_file_reruns_identically(dataset, segmented, tmp_path):
    again = tmp_path / "again"
    argv = ["segment", str(dataset / "01"), "-o", str(again), "--settings"]
    assert main([*argv, str(segmented / "settings.json")]) == 0
    np.testing.assert_array_equal(read_ctc_result(again)[0], read_ctc_result(segmented)[0])


def test_segment_refuses_to_overwrite(dataset, segmented, capsys):
    before = sorted(p.name for p in segmented.iterdir())
    assert main(["segment", str(dataset / "01"), "-o", str(segmented)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert sorted(p.name for p in segmented.iterdir()) == before


def test_segment_rejects_unknown_settings(dataset, tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"parameters": {"min_sampels": 3}}))
    argv = ["segment", str(dataset / "01"), "-o", str(tmp_path / "o"), "--settings", str(bad)]
    assert main(argv) == 2
    assert "min_sampels" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_segment_with_disk_cache_resumes(dataset, tmp_path):
    cache = tmp_path / "emb.zarr"
    first, second = tmp_path / "a", tmp_path / "b"
    argv = ["segment", str(dataset / "01"), "--cache", str(cache), "-o"]
    assert main([*argv, str(first), "--grouping", "meanshift"]) == 0
    assert (cache / "zarr.json").exists()
    assert main([*argv, str(second), "--grouping", "meanshift"]) == 0
    np.testing.assert_array_equal(read_ctc_result(first)[0], read_ctc_result(second)[0])


def test_no_track_labels_each_image(dataset, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    movie = np.stack([tifffile.imread(p) for p in sorted((dataset / "01").glob("t*.tif"))])
    for i in range(3):
        tifffile.imwrite(images / f"cell_{i}.tif", movie[i])
    out = tmp_path / "labels"
    assert main(["segment", str(images), "-o", str(out), "--no-track"]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["cell_0.tif", "cell_1.tif", "cell_2.tif", "settings.json"]
    gt = read_ctc_gt(dataset / "01_GT")
    lab = tifffile.imread(out / "cell_1.tif")
    assert lab.shape == (256, 256)
    # as many objects as the ground truth, give or take two
    assert abs(len(np.unique(lab)) - len(np.unique(gt.seg[1]))) <= 2


def test_several_images_need_no_track(dataset, tmp_path, capsys):
    frames = sorted((dataset / "01").glob("t*.tif"))[:2]
    argv = ["segment", *map(str, frames), "-o", str(tmp_path / "o")]
    assert main(argv) == 2
    assert "--no-track" in capsys.readouterr().err


def test_track_command_recovers_the_lineage(dataset, tmp_path):
    gt = read_ctc_gt(dataset / "01_GT")
    # per-frame ids shuffled: tracking must come from overlap, not from the ids
    rng = np.random.default_rng(0)
    shuffled = np.zeros_like(gt.tra)
    for t, frame in enumerate(np.asarray(gt.tra)):
        ids = np.unique(frame)[1:]
        lut = np.zeros(frame.max() + 1, frame.dtype)
        lut[ids] = rng.permutation(len(ids)) + 1
        shuffled[t] = lut[frame]
    stack = tmp_path / "labels.tif"
    tifffile.imwrite(stack, shuffled)
    out = tmp_path / "tracked"
    argv = ["track", str(stack), "-o", str(out), "--min-track-length", "1", "--max-gap", "0"]
    assert main([*argv, "--min-split-frames", "1"]) == 0
    assert ctc_scores(dataset / "01_GT", out)["TRA"] == pytest.approx(1.0)
    used = json.loads((out / "settings.json").read_text())["parameters"]
    assert used["min_split_frames"] == 1
    assert used["split_back"] == PipelineConfig.split_back  # the rest as segment uses them
    assert used["min_child_ratio"] == PipelineConfig.min_child_ratio


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT delivery differs on Windows")
def test_ctrl_c_keeps_finished_frames_and_resume_completes_the_run(dataset, tmp_path, capsys):
    out = tmp_path / "interrupted"
    code = (
        # SIGINT as in a terminal, even when the suite itself runs in the background
        "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "from napari_cosine_embed.cli import main; "
        f"sys.exit(main(['segment', {str(dataset / '01')!r}, '-o', {str(out)!r}]))"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stderr=subprocess.PIPE, text=True, bufsize=1
    )
    # wait for the first progress line (a frame is done), then interrupt mid-run
    for line in proc.stderr:
        if line.startswith("segment"):
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err, err
    assert "--resume" in err, err
    assert not out.exists(), "no half-written result folder"
    assert [p.name for p in tmp_path.iterdir()] == ["interrupted.unfinished.zarr"]

    # without --resume or --overwrite, the stopped run's frames are not thrown away
    argv = ["segment", str(dataset / "01"), "-o", str(out)]
    assert main(argv) == 2
    assert (tmp_path / "interrupted.unfinished.zarr").is_dir()
    assert main([*argv, "--resume"]) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["interrupted"]
    assert main(["segment", str(dataset / "01"), "-o", str(tmp_path / "whole")]) == 0
    resumed, whole = read_ctc_result(out), read_ctc_result(tmp_path / "whole")
    np.testing.assert_array_equal(resumed[0], whole[0])
    np.testing.assert_array_equal(resumed[1], whole[1])
    # complete: --resume does not pass off an existing result as this run's
    assert main([*argv, "--resume"]) == 2
    assert "no stopped run to resume" in capsys.readouterr().err


def test_overwrite_never_deletes_a_zarr_that_is_not_a_segment_store(dataset, tmp_path, capsys):
    precious = tmp_path / "data.zarr"
    precious.mkdir()
    (precious / "keep.txt").write_text("mine")
    argv = ["segment", str(dataset / "01"), "-o", str(tmp_path / "r"), "--zarr", str(precious)]
    assert main(argv) == 2  # exists
    assert main([*argv, "--overwrite"]) == 2
    assert "not a segment store" in capsys.readouterr().err
    assert (precious / "keep.txt").read_text() == "mine"
    assert not (tmp_path / "r").exists()


def test_invert_option_reaches_the_config():
    from napari_cosine_embed.cli import build_parser
    from napari_cosine_embed.cli._pipeline import _config

    parser = build_parser()
    args = parser.parse_args(["segment", "movie.tif", "-o", "out", "--invert"])
    assert _config(args).invert is True
    args = parser.parse_args(["segment", "movie.tif", "-o", "out"])
    assert _config(args).invert is False


def test_several_movies_are_a_batch_here(dataset, tmp_path, capsys):
    frames = sorted((dataset / "01").glob("t*.tif"))
    stack = np.stack([tifffile.imread(f) for f in frames])
    tifffile.imwrite(tmp_path / "a.tif", stack)
    tifffile.imwrite(tmp_path / "b.tif", stack[::-1].copy())
    argv = ["segment", str(tmp_path / "a.tif"), str(tmp_path / "b.tif"), "-o", str(tmp_path / "r")]
    assert main(argv) == 0
    assert "wrote 2 of 2 movies" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["a_RES", "b_RES"]
    assert main(["segment", str(tmp_path / "a.tif"), "-o", str(tmp_path / "alone")]) == 0
    a, alone = read_ctc_result(tmp_path / "r" / "a_RES"), read_ctc_result(tmp_path / "alone")
    np.testing.assert_array_equal(a[0], alone[0])
    np.testing.assert_array_equal(a[1], alone[1])
    before = (tmp_path / "r" / "a_RES" / "mask000.tif").stat().st_mtime_ns
    assert main(argv) == 1  # each movie refuses to overwrite, before any work
    err = capsys.readouterr().err
    assert err.count("already exists; pass --overwrite") == 2
    assert (tmp_path / "r" / "a_RES" / "mask000.tif").stat().st_mtime_ns == before
    assert not list((tmp_path / "r").glob("*.unfinished.zarr"))


@pytest.mark.skipif(
    __import__("torch").cuda.is_available(), reason="this machine has a GPU: nothing to refuse"
)
def test_an_absent_gpu_is_refused_before_anything_is_written(dataset, tmp_path, capsys):
    argv = ["segment", str(dataset / "01"), "-o", str(tmp_path / "out"), "--device", "cuda"]
    assert main(argv) == 2
    assert "cuda" in capsys.readouterr().err.lower()
    assert list(tmp_path.iterdir()) == []


def test_a_stopped_run_left_beside_is_named_when_zarr_is_asked(dataset, tmp_path, capsys):
    (tmp_path / "r.unfinished.zarr").mkdir()
    argv = ["segment", str(dataset / "01"), "-o", str(tmp_path / "r")]
    assert main([*argv, "--zarr", str(tmp_path / "r.zarr")]) == 0
    assert "r.unfinished.zarr (a stopped run without --zarr) is not used" in capsys.readouterr().err
    assert (tmp_path / "r.unfinished.zarr").is_dir(), "left for the user to decide"
