"""``evaluate`` checks both CTC lineages against their masks before it scores anything.

Each broken track file or mask folder must be refused with exit status 2, a message naming the
track file (or folder) and the problem, and no score on stdout. The ground truth may leave a
marker out inside a track (the CTC's own ground truth does); a result may not.
"""

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
from napari_cosine_embed.core.io import read_ctc_gt
from napari_cosine_embed.core.io.ctc import write_ctc_result
from napari_cosine_embed.core.io.lineage import lineage_problems

N_FRAMES = 4


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    """A 4-frame CTC dataset whose tracks all span frames 0..3, and a perfect result."""
    root = tmp_path_factory.mktemp("validation") / "sample"
    argv = ["sample", str(root), "--frames", str(N_FRAMES), "--size", "64", "64", "--cells", "6"]
    assert main(argv) == 0
    gt = read_ctc_gt(root / "01_GT")
    assert np.all(gt.lineage[:, 1:] == [0, N_FRAMES - 1, 0])  # what the cases below rely on
    write_ctc_result(root / "01_RES", gt.tra, gt.lineage)
    return root


@pytest.fixture
def data(sample, tmp_path) -> Path:
    return Path(shutil.copytree(sample, tmp_path / "data"))


def track_file(data: Path, side: str) -> Path:
    return (
        data / "01_GT" / "TRA" / "man_track.txt"
        if side == "gt"
        else data / "01_RES" / "res_track.txt"
    )


def mask(data: Path, side: str, t: int) -> Path:
    if side == "gt":
        return data / "01_GT" / "TRA" / f"man_track{t:03d}.tif"
    return data / "01_RES" / f"mask{t:03d}.tif"


def edit_rows(path: Path, edit) -> None:
    rows = np.loadtxt(path, dtype=np.int64, ndmin=2)
    np.savetxt(path, edit(rows.copy()), fmt="%d")


def erase(path: Path, label: int) -> None:
    frame = tifffile.imread(path)
    frame[frame == label] = 0
    tifffile.imwrite(path, frame)


def evaluate(capsys, data: Path) -> tuple[int, str, str]:
    capsys.readouterr()
    status = main(["evaluate", "--gt", str(data / "01_GT"), "--res", str(data / "01_RES")])
    out, err = capsys.readouterr()
    return status, out, err


def refused(capsys, data: Path, *words: str) -> str:
    status, out, err = evaluate(capsys, data)
    assert status == 2, err
    assert out == "", "scores were printed for invalid input"
    assert "Traceback" not in err
    assert err.startswith("napari-cosine-embed evaluate: error: ")
    for word in words:
        assert word in err, f"{word!r} not in {err!r}"
    return err


def _set(row: int, column: int, value: int):
    def edit(rows: np.ndarray) -> np.ndarray:
        rows[row, column] = value
        return rows

    return edit


LINEAGE_CASES = {
    "end-before-begin": (
        lambda r: _set(0, 2, 1)(_set(0, 1, 3)(r)),
        "label 1 ends in frame 1, before it begins in frame 3",
    ),
    "own-parent": (_set(1, 3, 2), "label 2 is its own parent"),
    "unknown-parent": (_set(1, 3, 99), "label 2 has parent 99, which is not in the lineage"),
    "child-not-after-parent": (
        _set(1, 3, 1),
        "label 2 starts in frame 0 but its parent 1 ends in frame 3",
    ),
    "duplicate-label": (lambda r: np.vstack([r, r[2]]), "duplicate labels: [3]"),
    "label-without-row": (lambda r: r[1:], "label 1 is in frame 0 but has no lineage row"),
    "present-outside-range": (
        _set(0, 2, 2),
        "label 1 is present in frame 3, outside its lineage range 0..2",
    ),
    "range-past-the-masks": (
        _set(0, 2, 9),
        "label 1 has frame range 0..9, which is not inside the movie's frames 0..3",
    ),
}


@pytest.mark.parametrize("side", ["gt", "res"])
@pytest.mark.parametrize("case", list(LINEAGE_CASES))
def test_inconsistent_track_file_is_refused(capsys, data, side, case):
    edit, problem = LINEAGE_CASES[case]
    path = track_file(data, side)
    edit_rows(path, edit)
    refused(capsys, data, f"{path} does not match its {N_FRAMES} mask frames", problem)


@pytest.mark.parametrize("side", ["gt", "res"])
def test_track_missing_from_its_first_frame_is_refused(capsys, data, side):
    erase(mask(data, side, 0), 1)
    refused(capsys, data, str(track_file(data, side)), "label 1 is missing from frame 0")


def test_gap_inside_a_track_is_refused_in_the_result_only(capsys, data):
    erase(mask(data, "gt", 1), 1)
    status, out, err = evaluate(capsys, data)
    assert status == 0, err  # a marker left out of the ground truth: scored, as the CTC does
    assert json.loads(out)["DET"] < 1
    erase(mask(data, "res", 2), 1)
    refused(capsys, data, "res_track.txt", "label 1 is missing from frame 2, inside its lineage")


def test_missing_mask_frames_are_named(capsys, data):
    mask(data, "res", N_FRAMES - 1).unlink()
    refused(capsys, data, "01_RES: 3 mask frames", f"has {N_FRAMES} frames", "missing")
    mask(data, "res", 1).unlink()
    refused(capsys, data, "01_RES: maskNNN.tif frames must be numbered consecutively", "[1]")


def test_missing_track_files(capsys, data):
    track_file(data, "res").unlink()
    refused(capsys, data, "res_track.txt: no such lineage file", "TRA, BC(1) need")
    argv = ["evaluate", "--gt", str(data / "01_GT"), "--res", str(data / "01_RES")]
    assert main([*argv, "--measures", "SEG,DET"]) == 0  # the masks alone can still be scored
    assert json.loads(capsys.readouterr().out)["DET"] == pytest.approx(1.0)
    track_file(data, "gt").unlink()
    assert main([*argv, "--measures", "SEG,DET"]) == 2
    assert "man_track.txt: no such lineage file" in capsys.readouterr().err


def test_many_problems_are_counted_not_all_listed(capsys, data):
    track_file(data, "res").write_text("")
    err = refused(capsys, data, "res_track.txt", "7 problems:", "; and 2 more")
    assert err.count("has no lineage row") == 5


def test_valid_folders_are_scored(capsys, data):
    status, out, err = evaluate(capsys, data)
    assert status == 0, err
    scores = json.loads(out)
    assert scores["TRA"] == pytest.approx(1.0)
    assert scores["SEG"] == pytest.approx(1.0)


def test_lineage_problems_lists_every_problem():
    movie = np.zeros((3, 4, 4), np.uint16)
    movie[:, 0, 0] = 1
    movie[2, 3, 3] = 2
    problems = lineage_problems(movie, [[1, 0, 1, 1], [3, 0, 0, 0]])
    assert problems == [
        "label 1 is its own parent",
        "label 3 is missing from frame 0, inside its lineage range 0..0; it is in no frame at all",
        "label 1 is present in frame 2, outside its lineage range 0..1",
        "label 2 is in frame 2 but has no lineage row",
    ]


def test_console_script_refuses_without_traceback(data):
    edit_rows(track_file(data, "res"), _set(1, 3, 2))
    exe = Path(sys.executable).parent / "napari-cosine-embed"
    argv = [str(exe), "evaluate", "--gt", str(data / "01_GT"), "--res", str(data / "01_RES")]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        f"napari-cosine-embed evaluate: error: {track_file(data, 'res')} does not match its "
        f"{N_FRAMES} mask frames: label 2 is its own parent"
    ]
