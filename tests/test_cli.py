"""The command line: ``sample`` and ``evaluate``, through ``main(argv)`` as the console script runs it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_cosine_embed.cli import main
from napari_cosine_embed.core.io.ctc import read_ctc_gt, read_ctc_sequence, write_ctc_result


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "synthetic"
    assert main(["sample", str(out), "--frames", "20", "--seed", "5"]) == 0
    return out


def _evaluate(capsys, gt: Path, res: Path, *extra: str) -> dict:
    capsys.readouterr()
    assert main(["evaluate", "--gt", str(gt), "--res", str(res), *extra]) == 0
    return json.loads(capsys.readouterr().out)


def test_sample_writes_a_ctc_dataset_with_ground_truth(dataset):
    assert sorted(p.name for p in dataset.iterdir()) == ["01", "01_GT", "synthetic_config.json"]
    movie = read_ctc_sequence(dataset / "01")
    gt = read_ctc_gt(dataset / "01_GT")
    assert movie.shape == (20, 256, 256)
    assert sorted(gt.seg) == list(range(20))
    assert gt.tra.shape == movie.shape
    config = json.loads((dataset / "synthetic_config.json").read_text())["config"]
    assert config["seed"] == 5
    assert config["n_frames"] == 20


def test_sample_is_deterministic_and_refuses_to_overwrite(dataset, tmp_path, capsys):
    again = tmp_path / "again"
    assert main(["sample", str(again), "--frames", "20", "--seed", "5"]) == 0
    for t in (0, 19):
        name = f"t{t:03d}.tif"
        np.testing.assert_array_equal(
            tifffile.imread(again / "01" / name), tifffile.imread(dataset / "01" / name)
        )
    before = sorted(p.name for p in again.rglob("*"))
    assert main(["sample", str(again), "--frames", "5"]) == 2
    assert "exists" in capsys.readouterr().err
    assert sorted(p.name for p in again.rglob("*")) == before
    assert main(["sample", str(again), "--frames", "5", "--overwrite"]) == 0
    assert len(list((again / "01").glob("t*.tif"))) == 5


def test_evaluate_ground_truth_against_itself_is_perfect(dataset, tmp_path, capsys):
    gt = read_ctc_gt(dataset / "01_GT")
    res = write_ctc_result(tmp_path / "res", gt.tra, gt.lineage)
    scores = _evaluate(capsys, dataset / "01_GT", res)
    assert scores["kind"] == "ctc"
    assert scores["SEG"] == pytest.approx(1.0)
    assert scores["DET"] == pytest.approx(1.0)
    assert scores["TRA"] == pytest.approx(1.0)
    assert scores["BC(1)"] == pytest.approx(1.0)  # the sample movie divides


def _broken_result(gt) -> tuple[np.ndarray, np.ndarray]:
    """GT with known errors: one nucleus dropped in frame 3, two merged in frame 7, one eroded."""
    from scipy import ndimage

    labels = gt.tra.copy()
    ids3 = np.unique(labels[3])[1:]
    labels[3][labels[3] == ids3[0]] = 0
    ids7 = np.unique(labels[7])[1:]
    labels[7][labels[7] == ids7[1]] = ids7[0]
    ids10 = np.unique(labels[10])[1:]
    mask = labels[10] == ids10[2]
    labels[10][mask & ~ndimage.binary_erosion(mask, iterations=2)] = 0
    return labels


def test_evaluate_known_errors_matches_py_ctcmetrics(dataset, tmp_path, capsys):
    evaluate_sequence = pytest.importorskip("ctc_metrics.scripts.evaluate").evaluate_sequence
    from napari_cosine_embed.core.io.lineage import split_track_gaps

    gt = read_ctc_gt(dataset / "01_GT")
    parents = {int(r[0]): int(r[3]) for r in gt.lineage if r[3]}
    # the dropped nucleus and the merge interrupt tracks; CTC results continue them as new labels
    labels, lineage = split_track_gaps(_broken_result(gt), parents=parents)
    res = write_ctc_result(tmp_path / "01_RES", labels, lineage)
    ours = _evaluate(capsys, dataset / "01_GT", res)
    ref = evaluate_sequence(
        str(res), str(dataset / "01_GT"), metrics=["SEG", "DET", "TRA", "BC"], threads=1
    )
    for key in ("SEG", "DET", "TRA", "BC(1)"):
        assert ours[key] == pytest.approx(ref[key], abs=1e-6), key
    assert ours["DET"] < 1.0
    assert ours["SEG"] < 1.0


def test_evaluate_image_folders_reports_ap_and_f1(tmp_path, capsys):
    from napari_cosine_embed._sample_data import dsb2018_images

    gt_dir, res_dir = tmp_path / "gt", tmp_path / "res"
    gt_dir.mkdir()
    res_dir.mkdir()
    for stem, _, masks in dsb2018_images():
        tifffile.imwrite(gt_dir / f"{stem}.tif", masks)
        pred = masks.copy()
        pred[pred == pred.max()] = 0  # one nucleus missed per image
        tifffile.imwrite(res_dir / f"{stem}.tif", pred)
    scores = _evaluate(capsys, gt_dir, res_dir)
    assert scores["kind"] == "instances"
    assert scores["n_images"] == 4
    n_gt = sum(len(np.unique(m)) - 1 for _, _, m in dsb2018_images())
    # pooled over images: TP = n_gt - 4, FN = 4, FP = 0
    assert scores["AP50"] == pytest.approx((n_gt - 4) / n_gt)
    assert scores["F1_50"] == pytest.approx(2 * (n_gt - 4) / (2 * n_gt - 4))


def test_evaluate_reports_bad_folders_clearly(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["evaluate", "--gt", str(tmp_path / "nope"), "--res", str(tmp_path / "empty")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert (
        main(["evaluate", "--gt", str(tmp_path / "empty"), "--res", str(tmp_path / "empty")]) == 2
    )
    assert "neither SEG/TRA" in capsys.readouterr().err


def test_console_script_is_installed():
    exe = shutil.which("napari-cosine-embed", path=str(Path(sys.executable).parent))
    assert exe is not None
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, check=True).stdout
    assert "sample" in out
    assert "evaluate" in out
    # no subcommand is advertised before it works
    assert "train" in out
    assert "finetune" in out
    assert "segment" in out
    assert "track" in out
