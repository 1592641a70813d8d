"""SIGTERM cleans up like Ctrl-C; a closed pipe or a full device ends quietly.

Each case runs the real command line in its own process and sends a real signal at a known
point (see ``_files.signal_after``), then looks for what was left behind.
"""

from __future__ import annotations

import subprocess

import pytest
from _files import ENV, cli_command, litter, run_cli, signal_after

#: Embeddings go to a temporary cache folder beside the output, as for a long movie.
ON_DISK = "import napari_cosine_embed.cli._pipeline as _p\n_p.MEMORY_CACHE_LIMIT = 0\n"


@pytest.mark.parametrize(
    ("where", "hook"),
    [
        (
            "while embedding",
            ("napari_cosine_embed.core.embedding_store", "EmbeddingStore", "put", 3),
        ),
        ("while writing the result", ("tifffile", "", "imwrite", 4)),
    ],
)
@pytest.mark.parametrize(("signum", "status"), [("SIGTERM", 143), ("SIGINT", 130)])
def test_a_stopped_segment_leaves_nothing_half_written(
    sim_crop, tmp_path, where, hook, signum, status
):
    """Stopped anywhere, no result folder or temporary file is left half-written; the frames
    already segmented stay in ``res.unfinished.zarr``, for ``--resume``."""
    out = tmp_path / "runs" / "res"
    out.parent.mkdir()
    prelude = ON_DISK + signal_after(*hook, signum)
    done = run_cli(["segment", str(sim_crop / "01"), "-o", str(out)], prelude=prelude)
    assert done.returncode == status, done.stderr
    assert "Traceback" not in done.stderr
    assert "nothing was left half-written" in done.stderr
    assert "--resume goes on from there" in done.stderr
    assert not out.exists()
    assert litter(tmp_path) == []
    assert [p.name for p in out.parent.iterdir()] == ["res.unfinished.zarr"]


def test_sigterm_during_sample_leaves_no_partial_folder(tmp_path):
    out = tmp_path / "set"
    prelude = signal_after("tifffile", "", "imwrite", 2, "SIGTERM")
    done = run_cli(["sample", str(out), "--frames", "4", "--size", "64", "64"], prelude=prelude)
    assert done.returncode == 143
    assert list(tmp_path.iterdir()) == []


def test_output_to_a_closed_pipe_ends_quietly():
    command = cli_command(["models", "--json"])
    # the reader goes away before anything is printed, as `| head -c 0` does
    proc = subprocess.Popen(command, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 141, err
    assert "Traceback" not in err
    assert "Exception ignored" not in err


def test_output_to_a_full_device_says_so_in_one_line(tmp_path):
    with open("/dev/full", "w") as full:
        done = run_cli(["models"], stdout=full, stderr=subprocess.PIPE)
    assert done.returncode == 1
    assert "No space left on device" in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_full_stderr_does_not_fail_the_work(sim_crop, tmp_path):
    out = tmp_path / "res"
    with open("/dev/full", "w") as full:
        done = run_cli(["segment", str(sim_crop / "01"), "-o", str(out)], stderr=full,
                       stdout=subprocess.PIPE)  # fmt: skip
    assert done.returncode == 0
    assert out.is_dir()
