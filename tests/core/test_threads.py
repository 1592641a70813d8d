"""The thread policy: torch gets the cores other processes leave free."""

from __future__ import annotations

import multiprocessing as mp
import time

import numpy as np
import pytest
import torch

from napari_cosine_embed.core import threads as threads_module
from napari_cosine_embed.core.threads import ThreadGovernor, available_cores, cpu_count


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize(
    ("other", "cores", "expected"),
    [(0.0, 2, 2), (0.4, 2, 2), (0.67, 2, 1), (1.0, 2, 1), (3.0, 2, 1), (1.0, 8, 7), (2.6, 8, 5)],
)
def test_available_cores(other, cores, expected):
    assert available_cores(other, cores) == expected


def test_fixed_threads_never_change(monkeypatch):
    governor = ThreadGovernor(max_threads=1, adaptive=False, interval=0.0)
    assert torch.get_num_threads() == 1
    monkeypatch.setattr(threads_module, "_busy_seconds", lambda: (1e9, 0.0))
    assert governor.update() == 1
    assert governor.history[-1][2] == 1
    assert len(governor.history) == 1


class _Clock:
    """System and own CPU seconds as the test dictates."""

    def __init__(self) -> None:
        self.system, self.own = 0.0, 0.0

    def __call__(self) -> tuple[float, float]:
        return self.system, self.own


def test_gives_up_the_cores_other_processes_use(monkeypatch):
    monkeypatch.setattr(threads_module, "cpu_count", lambda: 4)
    clock = _Clock()
    monkeypatch.setattr(threads_module, "_busy_seconds", clock)
    monkeypatch.setattr(threads_module.os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    governor = ThreadGovernor(interval=0.05)
    assert governor.threads == 4
    # the next 0.1 s: we keep 2 cores busy, others 2 more
    time.sleep(0.1)
    clock.system, clock.own = 0.4, 0.2
    assert governor.update() == 2
    assert torch.get_num_threads() == 2
    # the others stop: all 4 again
    time.sleep(0.1)
    clock.system, clock.own = 0.6, 0.4
    assert governor.update() == 4
    # not measured again before the interval has passed
    clock.system = 100.0
    assert governor.update() == 4
    assert [n for *_, n in governor.history] == [4, 2, 4]


def test_without_psutil_the_threads_stay(monkeypatch):
    monkeypatch.setattr(threads_module, "_busy_seconds", lambda: None)
    governor = ThreadGovernor(max_threads=1, interval=0.0)
    assert governor.update() == 1


def test_bad_max_threads():
    with pytest.raises(ValueError, match="max_threads"):
        ThreadGovernor(max_threads=0)


def _spin(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


@pytest.mark.skipif(cpu_count() < 2, reason="needs 2 cores to see another process take one")
def test_measures_a_real_competing_process():
    """A CPU-bound process is seen with real psutil readings, and takes a thread away."""
    cores = cpu_count()
    governor = ThreadGovernor(max_threads=cores, interval=0.5)
    proc = mp.get_context("spawn").Process(target=_spin, args=(6.0,))
    proc.start()
    try:
        time.sleep(1.5)  # the process starts up
        governor._last = governor._sample()
        time.sleep(1.0)  # we sleep: the spinner alone keeps about one core busy
        governor.update()
        assert governor.other_busy >= 0.7
        assert governor.threads == available_cores(governor.other_busy, cores) < cores
    finally:
        proc.terminate()
        proc.join()


class _CountingGovernor(ThreadGovernor):
    def update(self) -> int:
        self.calls = getattr(self, "calls", 0) + 1
        return super().update()


def test_training_and_the_pipeline_consult_the_governor():
    from napari_cosine_embed.core._generators import result_of
    from napari_cosine_embed.core.checkpoint import EmbeddingModel
    from napari_cosine_embed.core.models import ModelConfig
    from napari_cosine_embed.core.pipeline import PipelineConfig, run_pipeline
    from napari_cosine_embed.core.training import TrainConfig, Trainer, from_synthetic

    tiny = EmbeddingModel.new(ModelConfig(stacks=1, levels=2, filters=8, embedding_dim=4))
    data = from_synthetic(1, shape=(48, 48), n_frames=2)
    governor = _CountingGovernor(max_threads=1, interval=0.0)
    config = TrainConfig(steps=3, batch_size=1, crop=32, device="cpu")
    steps = [info["step"] for info in Trainer(tiny, data, config, threads=governor).run()]
    assert steps == [1, 2, 3]
    assert governor.calls == 3  # once before every step

    governor.calls = 0
    movie = np.zeros((4, 48, 48), np.float32)
    movie[:, 10:20, 10:20] = 1.0
    result_of(
        run_pipeline(movie, PipelineConfig(device="cpu"), model=tiny.eval(), threads=governor)
    )
    assert governor.calls == 8  # before each of 4 frames embedded and 4 grouped
    assert torch.get_num_threads() == 1
