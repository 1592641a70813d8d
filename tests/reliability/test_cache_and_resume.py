"""The embedding cache serves only what still matches, and a killed run resumes exactly.

``segment --cache`` keeps each frame's embeddings with a hash of the image frame behind it; the
recurrent network makes a frame depend on the frames before it, so an edit recomputes the
edited frame and every frame whose history runs through it. A run killed with SIGKILL and run
again with the same cache rebuilds each recurrent state exactly as an uninterrupted run does,
and gives the same labels and lineage, bit for bit.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest
import tifffile
from _files import run_cli, signal_after

from napari_cosine_embed.core.io.ctc import read_ctc_result


def _segment(*args: str, kill_after_put: int | None = None) -> subprocess.CompletedProcess:
    """``segment`` in a fresh process, optionally killed with SIGKILL right after storing
    ``kill_after_put`` frames in the cache."""
    prelude = ""
    if kill_after_put is not None:
        prelude = signal_after(
            "napari_cosine_embed.core.embedding_store", "EmbeddingStore", "put",
            kill_after_put, "SIGKILL",
        )  # fmt: skip
    return run_cli(["segment", *args], prelude=prelude)


def _result(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    return read_ctc_result(folder)


@pytest.fixture(scope="module")
def reference(sim_crop_source, tmp_path_factory):
    """An uninterrupted run without a cache."""
    out = tmp_path_factory.mktemp("reference") / "res"
    done = _segment(str(sim_crop_source / "01"), "-o", str(out))
    assert done.returncode == 0, done.stderr
    return _result(out)


@pytest.mark.slow
@pytest.mark.parametrize("killed_after", [3, 7])  # inside the first and the second state window
def test_a_run_killed_and_resumed_from_its_cache_matches_an_uninterrupted_one(
    sim_crop, reference, tmp_path, killed_after
):
    out, cache = tmp_path / "res", tmp_path / "cache.zarr"
    argv = [str(sim_crop / "01"), "-o", str(out), "--cache", str(cache)]
    killed = _segment(*argv, kill_after_put=killed_after)
    assert killed.returncode == -signal.SIGKILL
    assert not out.exists()

    resumed = _segment(*argv)
    assert resumed.returncode == 0, resumed.stderr
    assert "recomputed" not in resumed.stderr  # the frames kept were all still valid
    labels, lineage = _result(out)
    assert np.array_equal(labels, reference[0])
    assert np.array_equal(lineage, reference[1])


@pytest.mark.slow
def test_an_edited_frame_recomputes_its_history_and_nothing_else(sim_crop, tmp_path):
    out, cache = tmp_path / "res", tmp_path / "cache.zarr"
    argv = [str(sim_crop / "01"), "-o", str(out), "--cache", str(cache)]
    assert _segment(*argv).returncode == 0

    frame = sim_crop / "01" / "t004.tif"
    edited = tifffile.imread(frame)
    edited[40:80, 40:120] = edited.max()  # a bright bar: a new object
    tifffile.imwrite(frame, edited)
    rerun = _segment(*argv, "--overwrite")
    assert rerun.returncode == 0, rerun.stderr
    # frame 4 and the window 5-7, whose state is warmed up on frames 2-4, are stale
    assert "4 of 8 cached frames were recomputed" in rerun.stderr
    assert "frames 4-7" in rerun.stderr

    fresh = tmp_path / "fresh"
    assert _segment(str(sim_crop / "01"), "-o", str(fresh)).returncode == 0
    for got, want in zip(_result(out), _result(fresh), strict=True):
        assert np.array_equal(got, want)


def test_a_cache_of_another_movie_is_refused_not_mixed(sim_crop, tmp_path, capsys):
    from napari_cosine_embed.cli import main

    cache = tmp_path / "cache.zarr"
    argv = ["segment", str(sim_crop / "01"), "--cache", str(cache), "--min-size", "30"]
    assert main([*argv, "-o", str(tmp_path / "a")]) == 0
    capsys.readouterr()
    for path in sorted((sim_crop / "01").iterdir()):  # every frame changes: another movie
        tifffile.imwrite(path, tifffile.imread(path)[::-1].copy())
    assert main([*argv, "-o", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "holds another movie" in err
    assert not (tmp_path / "b").exists()
