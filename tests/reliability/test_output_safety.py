"""No command's output may be, contain or sit inside what it reads: refused before any work.

End to end on a crop of a real CTC sequence; afterwards every input file is byte-for-byte
unchanged, and nothing was written.
"""

from __future__ import annotations

import os
import stat

import pytest
from _files import checksums

from napari_cosine_embed.cli import main


def _refused(argv, capsys, *words):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    for word in words:
        assert word in err, err
    return err


@pytest.mark.parametrize(
    ("out", "words"),
    [
        ("01", ["is the input"]),  # -o IN --overwrite: would replace the raw frames
        (".", ["contains the input"]),  # -o a parent: would delete the input and its GT
        ("01/res", ["is inside the input"]),
        ("01_GT", []),  # not read, but exists: no --overwrite -> refused as existing
    ],
)
def test_segment_never_writes_over_its_input(sim_crop, capsys, out, words):
    before = checksums(sim_crop)
    argv = ["segment", str(sim_crop / "01"), "-o", str(sim_crop / out)]
    if out != "01_GT":
        argv.append("--overwrite")
    _refused(argv, capsys, *words)
    assert checksums(sim_crop) == before


def test_a_symlink_or_dotdot_cannot_smuggle_the_output_into_the_input(sim_crop, capsys, tmp_path):
    before = checksums(sim_crop)
    link = tmp_path / "innocent"
    link.symlink_to(sim_crop / "01")
    _refused(["segment", str(sim_crop / "01"), "-o", str(link), "--overwrite"], capsys, "is the")
    sneaky = sim_crop / "01_GT" / ".." / "01"
    _refused(["segment", str(sim_crop / "01"), "-o", str(sneaky), "--overwrite"], capsys, "is the")
    assert checksums(sim_crop) == before


@pytest.mark.parametrize(
    ("cache", "words"),
    [
        ("01/cache.zarr", ["--cache", "inside the input"]),
        ("res", ["is the --cache", "writing there could destroy it"]),
        ("res/cache.zarr", ["contains the --cache"]),
    ],
)
def test_the_cache_stays_apart_from_inputs_and_output(sim_crop, capsys, cache, words):
    before = checksums(sim_crop)
    argv = ["segment", str(sim_crop / "01"), "-o", str(sim_crop / "res")]
    _refused([*argv, "--cache", str(sim_crop / cache)], capsys, *words)
    assert checksums(sim_crop) == before
    assert not (sim_crop / "res").exists()


def test_settings_and_model_files_are_inputs_too(sim_crop, capsys, tmp_path):
    settings = tmp_path / "runs" / "settings.json"
    settings.parent.mkdir()
    settings.write_text('{"parameters": {}}')
    argv = ["segment", str(sim_crop / "01"), "--settings", str(settings), "--overwrite"]
    _refused([*argv, "-o", str(tmp_path / "runs")], capsys, "contains the --settings file")
    assert settings.read_text() == '{"parameters": {}}'


def test_track_and_finetune_refuse_outputs_over_their_inputs(sim_crop, capsys):
    before = checksums(sim_crop)
    gt = sim_crop / "01_GT"
    _refused(["track", str(gt / "TRA"), "-o", str(gt), "--overwrite"], capsys, "contains the input")
    base = ["finetune", "--images", str(sim_crop / "01"), "--labels", str(gt), "--steps", "1"]
    _refused([*base, "--out", str(gt / "tuned.pt")], capsys, "inside the --labels")
    _refused([*base, "--out", str(sim_crop / "m.pt"), "--state", str(sim_crop / "01")], capsys,
             "--state", "is the --images")  # fmt: skip
    assert checksums(sim_crop) == before


@pytest.mark.parametrize("name", ["../escape", "/abs", "a/b", "..", ".hidden", "-rf", ""])
def test_sample_sequence_is_a_plain_name(tmp_path, capsys, name):
    out = tmp_path / "set"
    _refused(["sample", str(out), f"--sequence={name}", "--frames", "2"], capsys, "--sequence")
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_destination_is_found_before_the_work(sim_crop, capsys, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    _refused(["segment", str(sim_crop / "01"), "-o", str(blocker / "res")], capsys,
             "is not a folder")  # fmt: skip
    # /proc accepts no new files, even from root (a read-only folder does not stop root)
    _refused(["segment", str(sim_crop / "01"), "-o", "/proc/self/res"], capsys, "cannot write")
    model = tmp_path / "model-folder"
    model.mkdir()
    _refused(["train", "--out", str(model), "--synthetic-movies", "1", "--overwrite"], capsys,
             "is a folder")  # fmt: skip


def test_results_respect_the_umask(sim_crop, tmp_path):
    out = tmp_path / "res"
    old = os.umask(0o027)
    try:
        assert main(["sample", str(out), "--frames", "2", "--size", "64", "64"]) == 0
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in [out, *out.rglob("*")]}
    assert modes[out.name] == 0o750
    assert modes["t000.tif"] == 0o640
    assert modes["man_track.txt"] == 0o640
    assert {m for m in modes.values()} <= {0o750, 0o640}


def test_the_working_folder_is_never_replaced(tmp_path, capsys, monkeypatch):
    (tmp_path / "mine.txt").write_text("keep")
    monkeypatch.chdir(tmp_path)
    for out in (".", ".."):
        argv = ["sample", out, "--frames", "2", "--size", "32", "32", "--cells", "1"]
        _refused([*argv, "--overwrite"], capsys, "current folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.txt"]  # and no .partial


def test_a_failed_replace_leaves_no_partial_folder(tmp_path, monkeypatch):
    import napari_cosine_embed.core.io._atomic as atomic

    out = tmp_path / "res"
    out.mkdir()
    real = atomic.os.replace

    def busy(src, dst):
        if str(src) == str(out):
            raise OSError(16, "Device or resource busy", str(src))
        return real(src, dst)

    monkeypatch.setattr(atomic.os, "replace", busy)
    with pytest.raises(OSError, match="busy"), atomic.atomic_folder(out, overwrite=True) as tmp:
        (tmp / "a.txt").write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["res"]
