"""segment on a dask.distributed LocalCluster of 2 worker processes: the single-machine result."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import tifffile

distributed = pytest.importorskip("distributed")

from napari_cosine_embed.cli import main  # noqa: E402
from napari_cosine_embed.core.checkpoint import load_model  # noqa: E402
from napari_cosine_embed.core.distributed import (  # noqa: E402
    frame_runs,
    make_cluster,
    run_distributed,
)
from napari_cosine_embed.core.errors import InputError  # noqa: E402
from napari_cosine_embed.core.io.ctc import read_ctc_result  # noqa: E402
from napari_cosine_embed.core.pipeline import PipelineConfig, model_input, run_pipeline  # noqa: E402
from napari_cosine_embed.core.synthetic import SyntheticConfig, synthetic_timelapse  # noqa: E402

pytestmark = pytest.mark.slow
SIM = Path(__file__).resolve().parents[2] / "shared" / "data" / "ctc" / "Fluo-N2DH-SIM+" / "02"


def drain(gen):
    steps = []
    while True:
        try:
            steps.append(next(gen))
        except StopIteration as stop:
            return steps, stop.value


@pytest.fixture(scope="module")
def client():
    cluster = make_cluster("local", workers=2)
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


@pytest.fixture(scope="module")
def model():
    import torch

    torch.set_num_threads(1)  # as each worker runs: the same arithmetic
    return load_model("default")


def single_and_cluster(image, path, model, client, **extra):
    config = PipelineConfig().for_model(model)
    config, _, _ = model_input(image, config, model)  # as segment resolves the diameter
    _, single = drain(run_pipeline(image, config, model=model, lazy=True))
    steps, spread = drain(run_distributed(path, config, client, frames_per_task=5, **extra))
    return single, spread, steps


def test_frame_runs_follow_the_state_window():
    assert frame_runs(23, state_window=5, per_task=12).runs == [
        range(0, 10), range(10, 20), range(20, 23)
    ]  # fmt: skip
    assert frame_runs(3, state_window=5, per_task=1).runs == [range(0, 3)]
    with pytest.raises(InputError, match="unbounded"):
        frame_runs(10, state_window=None, per_task=5)


def test_a_synthetic_movie_with_divisions_segments_identically(
    client, model, tmp_path, monkeypatch
):
    from napari_cosine_embed.core.tracking import overlap

    movie = synthetic_timelapse(SyntheticConfig(n_frames=14, shape=(128, 128), n_cells=8, seed=2))
    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, movie.image)
    calls = []  # frame pairs linked in this (the client's) process
    real = overlap._link_pair
    monkeypatch.setattr(overlap, "_link_pair", lambda *a, **k: calls.append(1) or real(*a, **k))
    config = PipelineConfig().for_model(model)
    config, _, _ = model_input(movie.image, config, model)
    _, single = drain(run_pipeline(movie.image, config, model=model, lazy=True))
    on_one_machine, calls[:] = len(calls), []
    steps, spread = drain(run_distributed(path, config, client, frames_per_task=5))
    assert (movie.lineage[:, 3] > 0).any(), "the movie should hold a division"
    np.testing.assert_array_equal(np.asarray(spread.labels), np.asarray(single.labels))
    np.testing.assert_array_equal(spread.lineage, single.lineage)
    assert [s.stage for s in steps].count("segment") == 4  # 3 runs of 5, 5, 4 frames, and 0
    # the workers linked the 4 + 4 + 3 pairs inside their runs: the client only the 2 across
    # runs (and the same relinks after split-back cuts as on one machine)
    assert on_one_machine - len(calls) == 11
    assert len(client.scheduler_info()["workers"]) == 2


@pytest.mark.skipif(not SIM.is_dir(), reason=f"{SIM} is not here (the dev data is not shipped)")
def test_a_clip_of_a_dev_ctc_sequence_segments_identically(client, model, tmp_path):
    from napari_cosine_embed.core.io import read_ctc_sequence

    clip = np.asarray(read_ctc_sequence(SIM, lazy=True)[:10])
    path = tmp_path / "sim.tif"
    tifffile.imwrite(path, clip)
    single, spread, _ = single_and_cluster(clip, path, model, client)
    assert len(single.lineage) >= 5  # a clip with several nuclei
    np.testing.assert_array_equal(np.asarray(spread.labels), np.asarray(single.labels))
    np.testing.assert_array_equal(spread.lineage, single.lineage)


def test_a_worker_killed_during_the_run_changes_nothing(client, model, tmp_path):
    movie = synthetic_timelapse(SyntheticConfig(n_frames=20, shape=(96, 96), n_cells=6, seed=3))
    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, movie.image)
    config = PipelineConfig().for_model(model)
    config, _, _ = model_input(movie.image, config, model)
    _, single = drain(run_pipeline(movie.image, config, model=model, lazy=True))
    gen = run_distributed(path, config, client, frames_per_task=5)
    next(gen)  # the tasks are submitted
    victim = sorted(client.scheduler_info()["workers"])[0]
    with pytest.raises(Exception):  # noqa: B017, PT011 (the worker dies answering)
        client.run(os._exit, 1, workers=[victim])
    _, spread = drain(gen)
    np.testing.assert_array_equal(np.asarray(spread.labels), np.asarray(single.labels))
    np.testing.assert_array_equal(spread.lineage, single.lineage)
    client.wait_for_workers(2, timeout=60)  # the nanny brings it back for the next test


def test_segment_command_on_worker_processes(tmp_path):
    movie = synthetic_timelapse(SyntheticConfig(n_frames=10, shape=(96, 96), n_cells=6, seed=4))
    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, movie.image)
    assert main(["segment", str(path), "-o", str(tmp_path / "cluster"), "--workers", "2"]) == 0
    assert main(["segment", str(path), "-o", str(tmp_path / "here")]) == 0
    a, b = read_ctc_result(tmp_path / "cluster"), read_ctc_result(tmp_path / "here")
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_segment_refuses_a_cache_on_a_cluster(tmp_path, capsys):
    movie = synthetic_timelapse(SyntheticConfig(n_frames=5, shape=(64, 64), n_cells=3, seed=5))
    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, movie.image)
    argv = ["segment", str(path), "-o", str(tmp_path / "out"), "--scheduler", "tcp://x:1"]
    assert main([*argv, "--cache", str(tmp_path / "c.zarr")]) == 2
    assert "--cache is not used on a cluster" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_slurm_job_script(tmp_path):
    pytest.importorskip("dask_jobqueue")
    settings = tmp_path / "slurm.yaml"
    settings.write_text(
        "jobqueue:\n  slurm:\n    cores: 4\n    memory: 16GB\n    queue: gpu\n"
        "    walltime: '02:00:00'\n    job-extra-directives: ['--gres=gpu:1']\n"
    )
    cluster = make_cluster("slurm", workers=3, config_file=settings)
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    assert "#SBATCH" in script
    assert "#SBATCH -p gpu" in script
    assert "#SBATCH --gres=gpu:1" in script
    assert "--nthreads" in script or "--nworkers" in script
    assert (
        "distributed.cli.dask_worker" in script
        or "dask-worker" in script
        or "dask worker" in script
    )
    with pytest.raises(InputError, match="--cluster must be"):
        make_cluster("condor", workers=1)


def test_a_stopped_cluster_run_resumes_sending_only_missing_frames(client, model, tmp_path):
    from napari_cosine_embed.core.framewise import run_identity
    from napari_cosine_embed.core.io.ome_zarr import LabelMovieStore

    movie = synthetic_timelapse(SyntheticConfig(n_frames=15, shape=(96, 96), n_cells=6, seed=6))
    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, movie.image)
    config = PipelineConfig().for_model(model)
    config, _, _ = model_input(movie.image, config, model)
    _, single = drain(run_pipeline(movie.image, config, model=model, lazy=True))
    identity = run_identity([path], movie.image, model, config)
    store = LabelMovieStore.create(tmp_path / "s.zarr", 15, (96, 96), identity=identity)
    gen = run_distributed(path, config, client, frames_per_task=5, store=store)
    for step in gen:  # stop as soon as one task of three has come back
        if step.stage == "segment" and step.done == 1:
            gen.close()
            break
    kept = int(store.done("segmentation").sum())
    assert kept == 5

    reopened = LabelMovieStore.open(tmp_path / "s.zarr", identity=identity)
    steps, spread = drain(run_distributed(path, config, client, frames_per_task=5, store=reopened))
    tasks = [s.total for s in steps if s.stage == "segment"]
    assert tasks[-1] == 2, "only the two runs with missing frames are sent out"
    assert "5 of 15 frames were kept from the stopped run" in spread.warnings
    np.testing.assert_array_equal(np.asarray(spread.labels), np.asarray(single.labels))
    np.testing.assert_array_equal(spread.lineage, single.lineage)


def test_many_movies_one_task_each_equal_one_by_one(client, tmp_path):
    from napari_cosine_embed.core.batch import MovieJob, run_batch

    paths = []
    for seed in (7, 8, 9):
        movie = synthetic_timelapse(
            SyntheticConfig(n_frames=6, shape=(96, 96), n_cells=5, seed=seed)
        )
        paths.append(tmp_path / f"m{seed}.tif")
        tifffile.imwrite(paths[-1], movie.image)
    config = PipelineConfig()
    jobs = [MovieJob(p, tmp_path / "cluster" / f"{p.stem}_RES") for p in paths]
    steps, rows = drain(run_batch(jobs, config, version="test", client=client))
    assert [s.total for s in steps] == [3] * 4  # one task per movie
    assert [row.get("error") for row in rows] == [None] * 3
    assert [row["frames"] for row in rows] == [6, 6, 6]
    for p in paths:  # the same as segment run on each movie alone, here
        assert main(["segment", str(p), "-o", str(tmp_path / "alone" / p.stem)]) == 0
        a = read_ctc_result(tmp_path / "cluster" / f"{p.stem}_RES")
        b = read_ctc_result(tmp_path / "alone" / p.stem)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    assert not list(tmp_path.glob("cluster/*.unfinished.zarr"))


def test_segment_command_batch_with_zarr_on_worker_processes(tmp_path, capsys):
    from napari_cosine_embed.core.io.zarr_store import read_zarr

    paths = []
    for seed in (10, 11):
        movie = synthetic_timelapse(
            SyntheticConfig(n_frames=5, shape=(80, 80), n_cells=4, seed=seed)
        )
        paths.append(tmp_path / f"movie{seed}.tif")
        tifffile.imwrite(paths[-1], movie.image)
    argv = ["segment", *map(str, paths), "-o", str(tmp_path / "res"), "--zarr", str(tmp_path / "z")]
    assert main([*argv, "--workers", "2"]) == 0
    assert "wrote 2 of 2 movies" in capsys.readouterr().out
    for p in paths:
        labels, _ = read_ctc_result(tmp_path / "res" / f"{p.stem}_RES")
        tracked = np.asarray(read_zarr(tmp_path / "z" / f"{p.stem}.zarr" / "labels" / "tracked"))
        np.testing.assert_array_equal(tracked, labels)
        image = np.asarray(read_zarr(tmp_path / "z" / f"{p.stem}.zarr"))
        np.testing.assert_array_equal(image, tifffile.imread(p))
    assert main([*argv, "--resume"]) == 0  # all complete: each movie is skipped
    assert main(argv) == 1  # without --resume or --overwrite, each movie refuses to overwrite
    assert "already exists" in capsys.readouterr().err
