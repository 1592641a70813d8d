"""The training loop: :class:`Trainer` owns the optimiser, the schedule and the best model.

:meth:`Trainer.run` is a generator yielding one dict per step. Closing it (a Cancel button,
Ctrl-C handled by the caller) stops after the current step and keeps
:attr:`Trainer.best_model`; :func:`train` and :func:`finetune` are thin wrappers of it.

Reproducibility: the batch of step ``s`` is drawn from ``np.random.default_rng([seed, s])`` and
any torch randomness of the step from ``torch.manual_seed`` of the same pair (inside
``fork_rng``, so the caller's generators are untouched). Nothing depends on the history of
random draws, so on the CPU two runs with one seed give identical losses and a run resumed
from a training-state file ends with the weights of an uninterrupted one.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Generator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import torch

from ..checkpoint import (
    EmbeddingModel,
    checkpoint_payload,
    model_from_payload,
    plain,
    torch_save,
)
from ..device import resolve_device
from ..errors import InputError
from ..io._atomic import atomic_write
from ..threads import ThreadGovernor
from .calibrate import RECORD_KEY, iter_calibrate_foreground
from .data import TrainingData
from .engine import FINETUNE_DEFAULTS, TrainConfig, TrainingLoss, evaluate, train_step
from .holdout import hold_out_bands
from .sizing import fit_to_crop, rescaled

__all__ = ["TRAIN_STATE_FORMAT", "Trainer", "finetune", "train"]

TRAIN_STATE_FORMAT = "napari-cosine-embed/training-state-v1"
_DEFAULT_CONFIG = TrainConfig()


def _amp(
    device: torch.device, enabled: bool
) -> tuple[torch.dtype | None, torch.amp.GradScaler | None]:
    if not enabled or device.type != "cuda":
        return None, None
    if torch.cuda.is_bf16_supported():
        return torch.bfloat16, None
    return torch.float16, torch.amp.GradScaler("cuda")


def _base_summary(model: EmbeddingModel) -> dict[str, Any]:
    record = model.record
    return {
        "name": model.name,
        "path": model.path,
        "data": (record.get("data") or {}).get("summary"),
        "steps": record.get("steps"),
        "scores": record.get("scores") or {},
        "created": record.get("created"),
    }


class Trainer:
    """A training run: the model, its optimiser, the schedule and the best model so far.

    Parameters
    ----------
    model : EmbeddingModel or None
        Starting point; copied, so the caller's model is never changed. None: a new network
        with the default :class:`~napari_cosine_embed.core.models.ModelConfig`, initialised from ``config.seed``.
    data : TrainingData
        Training data (raw; normalised here with the model's normalisation).
    config : TrainConfig
    val_data : TrainingData, optional
        Held-out data for :func:`evaluate`; the best-scoring weights are kept.
    resume_from : path-like, optional
        A training-state file written by :meth:`save_state`: the model, optimiser, step, best
        model and ``config`` come from it (``model`` and ``config`` are then ignored, except
        ``config.device``); ``data`` must be described as it was.
    state_path : path-like, optional
        Where :meth:`run` saves the training state every ``config.checkpoint_every`` steps and
        when it stops (finished or closed; not after an exception in the middle of a step).
    base_model : bool
        Record ``model`` as the base of a fine-tune.
    threads : ThreadGovernor, optional
        Re-decides torch's CPU thread count before every step (see :mod:`..threads`); None
        leaves it as it is.

    Examples
    --------
    >>> from napari_cosine_embed.core.models import ModelConfig
    >>> from napari_cosine_embed.core.training import from_synthetic
    >>> tiny = EmbeddingModel.new(ModelConfig(stacks=1, levels=2, filters=8, embedding_dim=4))
    >>> trainer = Trainer(tiny, from_synthetic(1, shape=(48, 48), n_frames=2),
    ...                   TrainConfig(steps=2, batch_size=1, crop=32, device="cpu"))
    >>> [info["step"] for info in trainer.run()]
    [1, 2]
    >>> trainer.best_model.record["steps"]
    2
    """

    def __init__(
        self,
        model: EmbeddingModel | None,
        data: TrainingData,
        config: TrainConfig = _DEFAULT_CONFIG,
        *,
        val_data: TrainingData | None = None,
        resume_from: str | os.PathLike | None = None,
        state_path: str | os.PathLike | None = None,
        base_model: bool = False,
        threads: ThreadGovernor | None = None,
    ) -> None:
        state = None
        if resume_from is not None:
            state = _read_state(resume_from)
            config = replace(TrainConfig.from_dict(state["train_config"]), device=config.device)
            model = model_from_payload(state["model"], path=os.fspath(resume_from))
        # Fine-tuning: curated objects too large for the crops are shrunk to fit them (the
        # tuned model records the size, and inference rescales movies to it).
        self.sizing: dict[str, Any] | None = None
        if base_model:
            data, self.sizing = fit_to_crop(data, config.crop)
            if val_data is not None and self.sizing["scale"] != 1:
                val_data = rescaled(val_data, self.sizing["scale"])
        if state is not None and state["data"] != plain(data.describe()):
            raise InputError(
                f"{resume_from}: was trained on {state['data'].get('summary')!r}, not on "
                f"{data.describe()['summary']!r}; give the same data to resume"
            )
        # Without validation frames, a band of each curated frame is kept out of the
        # foreground loss to calibrate on (a tuned model is too sure of the pixels it
        # learned; .holdout).
        self._raw_calib: TrainingData | None = None
        if val_data is None and config.calibration_holdout > 0:
            split = hold_out_bands(data, config.calibration_holdout)
            if split is not None:
                data, self._raw_calib = split
        if state is not None:
            pass  # the model comes from the state
        elif model is None:
            model = EmbeddingModel.new(seed=config.seed, name="trained")
        else:
            model = model.copy()
        self.config = config
        self.device = resolve_device(config.device)
        self.model = model.to(self.device)
        self._raw_data, self._raw_val = data, val_data
        self.data = data.normalised(model.normalisation)
        self.val_data = None if val_data is None else val_data.normalised(model.normalisation)
        self.loss_fn = TrainingLoss(config, model.config)
        self.optimiser = torch.optim.AdamW(
            _trainable(self.model.network, config.frozen_stacks),
            lr=config.lr,
            weight_decay=config.weight_decay,
            # one kernel for all parameters: 0.6 ms a step on 2 CPU cores, not 3.8
            fused=self.device.type in ("cpu", "cuda"),
        )
        self.amp_dtype, self.scaler = _amp(self.device, config.amp)
        self.state_path = state_path
        self.threads = threads
        self.step, self.elapsed, self.stopped_early = 0, 0.0, False
        self.base = _base_summary(model) if base_model else None
        self._best: dict[str, Any] | None = None
        self._last_scores: dict[str, float] | None = None
        self._resumed = None if resume_from is None else os.fspath(resume_from)
        if state is not None:
            self.optimiser.load_state_dict(state["optimiser"])
            if self.scaler is not None and state.get("scaler"):
                self.scaler.load_state_dict(state["scaler"])
            self.step, self.elapsed = int(state["step"]), float(state["elapsed"])
            self.base, self._best = state.get("base_model"), state.get("best")

    def lr_at(self, step: int) -> float:
        """Learning rate of (0-based) ``step``: linear warm-up, then cosine decay or constant."""
        c = self.config
        if step < c.warmup:
            return c.lr * (step + 1) / c.warmup
        if c.schedule == "constant":
            return c.lr
        progress = (step - c.warmup) / max(1, c.steps - c.warmup)
        return c.lr * (
            c.min_lr + (1 - c.min_lr) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
        )

    def record(self, *, scores: dict | None = None, steps: int | None = None) -> dict[str, Any]:
        """The provenance record for weights taken after ``steps`` steps (default: now)."""
        device = str(self.device)
        if self.device.type == "cuda":
            device += f" ({torch.cuda.get_device_name(self.device)})"
        from ... import __version__

        return {
            "data": self.data.describe(),
            "validation": None if self.val_data is None else self.val_data.describe(),
            "train_config": self.config.to_dict(),
            "loss": {
                "name": self.loss_fn.loss_config.name,
                "options": self.loss_fn.loss_config.options,
            },
            "foreground_weight": self.loss_fn.foreground_weight,
            "steps": self.step if steps is None else steps,
            "steps_run": self.step,
            "stopped_early": self.stopped_early,
            "wall_time_s": round(self.elapsed, 1),
            "device": device,
            "seed": self.config.seed,
            "scores": scores or {},
            "torch_version": torch.__version__,
            "package_version": __version__,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "base_model": self.base,
            "resumed_from": self._resumed,
            "object_size": self.sizing,
            "diameter_range": None if self.sizing is None else self.sizing["diameter_range"],
        }

    def _snapshot(self, state_dict: dict | None, **record: Any) -> EmbeddingModel:
        model = self.model.copy()
        if state_dict is not None:
            model.network.load_state_dict(state_dict)
        model.record = self.record(**record)
        return model.eval()

    @property
    def calibration_data(self) -> TrainingData | None:
        """The bands of the curated frames the foreground loss skips, to calibrate on, or None."""
        return self._raw_calib

    @property
    def best(self) -> dict[str, Any] | None:
        """``{"score", "step", "scores"}`` of the best validation so far, or None."""
        if self._best is None:
            return None
        return {k: self._best[k] for k in ("score", "step", "scores")}

    @property
    def best_model(self) -> EmbeddingModel:
        """The best-validated weights so far (the current ones when nothing was validated)."""
        if self._best is None:
            return self._snapshot(None)
        return self._snapshot(
            self._best["state_dict"], scores=self._best["scores"], steps=self._best["step"]
        )

    @property
    def result_model(self) -> EmbeddingModel:
        """The weights the run hands back (``config.keep``): :attr:`best_model`, or the last
        step's weights with their latest validation scores."""
        if self.config.keep == "best":
            return self.best_model
        return self._snapshot(None, scores=self._last_scores)

    def validate(self) -> dict[str, float]:
        """Score the current weights on ``val_data`` and keep them if they are the best."""
        scores = evaluate(self.model, self.val_data, neighbour_radius=self.config.neighbour_radius)
        score = scores["score"] if math.isfinite(scores["score"]) else -math.inf
        self._last_scores = scores
        if self._best is None or score > self._best["score"]:
            weights = self.model.network.state_dict()
            self._best = {
                "score": score,
                "step": self.step,
                "scores": scores,
                "state_dict": {k: v.detach().cpu().clone() for k, v in weights.items()},
            }
        return scores

    def iter_calibrate(
        self, model: EmbeddingModel
    ) -> Generator[tuple[int, int], None, EmbeddingModel]:
        """Calibrate the foreground threshold of ``model`` (e.g. :attr:`best_model`).

        Scored on the validation frames when there are any, else on the bands of the
        training frames kept out of the foreground loss (``config.calibration_holdout``), else
        on the training frames (see :mod:`.calibrate`); yields ``(done, total)`` per frame and
        returns ``model`` with the result in ``model.record["foreground_calibration"]``
        (unchanged when there is nothing to calibrate).
        """
        if self._raw_val is not None and self._raw_val.normalisation is None:
            data, where = self._raw_val, "validation frames"
        elif self._raw_calib is not None:
            data, where = self._raw_calib, "held-out bands of the training frames"
        else:
            data, where = self._raw_data, "training frames"
        if data.normalisation is not None:  # given normalised: the raw frames are gone
            return model
        result = yield from iter_calibrate_foreground(model, data)
        if result is not None:
            model.record[RECORD_KEY] = {**result, "scored_on": where}
        return model

    def save_state(self, path: str | os.PathLike) -> None:
        """Write everything needed to resume (atomically, replacing an older state file)."""
        model = self.model.copy()
        model.record = self.record()
        payload = {
            "format": TRAIN_STATE_FORMAT,
            "model": checkpoint_payload(model),
            "optimiser": self.optimiser.state_dict(),
            "scaler": None if self.scaler is None else self.scaler.state_dict(),
            "step": self.step,
            "elapsed": self.elapsed,
            "train_config": self.config.to_dict(),
            "data": plain(self.data.describe()),
            "best": plain(self._best),
            "base_model": plain(self.base),
        }
        atomic_write(path, lambda tmp: torch_save(payload, tmp), overwrite=True)

    def run(self) -> Generator[dict[str, Any], None, EmbeddingModel]:
        """Train until ``config.steps``, yielding after every step.

        Yields
        ------
        dict
            ``step`` (steps done), ``steps``, ``loss`` and its parts, ``lr``, ``grad_norm``,
            ``time`` (training seconds so far), and ``val`` (the :func:`evaluate` scores) after
            validation steps.

        Returns
        -------
        EmbeddingModel
            :attr:`result_model` (via ``StopIteration.value``, or ``yield from``).
        """
        c = self.config
        self.stopped_early = True
        in_step = False
        try:
            while self.step < c.steps:
                in_step, started = True, time.perf_counter()
                if self.threads is not None:
                    self.threads.update()
                rng = np.random.default_rng([c.seed, self.step])
                batch = self.data.sample(
                    rng,
                    batch_size=c.batch_size,
                    crop=c.crop,
                    clip_length=c.clip_length,
                    augment=c.augment,
                    foreground_crops=c.foreground_crops,
                )
                lr = self.lr_at(self.step)
                for group in self.optimiser.param_groups:
                    group["lr"] = lr
                devices = []
                if self.device.type == "cuda":
                    index = self.device.index
                    devices = [torch.cuda.current_device() if index is None else index]
                with torch.random.fork_rng(devices=devices):
                    torch.manual_seed(c.seed * 1_000_003 + self.step)
                    info = train_step(
                        self.model, batch, self.loss_fn, self.optimiser, self.scaler,
                        bptt=c.bptt, grad_clip=c.grad_clip, amp_dtype=self.amp_dtype,
                    )  # fmt: skip
                self.step += 1
                in_step, self.stopped_early = False, self.step < c.steps
                if self.val_data is not None and (
                    self.step == c.steps or (c.val_every and self.step % c.val_every == 0)
                ):
                    info["val"] = self.validate()
                self.elapsed += time.perf_counter() - started
                if (
                    self.state_path is not None
                    and c.checkpoint_every
                    and self.step % c.checkpoint_every == 0
                ):
                    self.save_state(self.state_path)
                yield {"step": self.step, "steps": c.steps, "lr": lr, "time": self.elapsed, **info}
        finally:
            # Also reached on close() (GeneratorExit at a yield, after a complete step) and on
            # an exception inside a step, when the weights may be half updated: not saved then.
            if self.state_path is not None and not in_step:
                self.save_state(self.state_path)
        return self.result_model


def _read_state(path: str | os.PathLike) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises many types for truncated or foreign files
        raise InputError(f"{path}: not a readable training-state file ({exc})") from exc
    if not isinstance(state, dict) or state.get("format") != TRAIN_STATE_FORMAT:
        raise InputError(f"{path}: not a napari-cosine-embed training-state file")
    return state


def train(
    model: EmbeddingModel | None,
    data: TrainingData,
    config: TrainConfig = _DEFAULT_CONFIG,
    *,
    val_data: TrainingData | None = None,
    resume_from: str | os.PathLike | None = None,
    state_path: str | os.PathLike | None = None,
) -> Generator[dict[str, Any], None, EmbeddingModel]:
    """Train an embedding model; a generator of per-step dicts returning the best model.

    A thin wrapper of ``Trainer(...).run()``; build the :class:`Trainer` yourself to keep hold
    of ``best_model`` after stopping early. See :class:`Trainer` for the parameters.
    """
    trainer = Trainer(
        model, data, config, val_data=val_data, resume_from=resume_from, state_path=state_path
    )
    return (yield from trainer.run())


def finetune(
    base: EmbeddingModel,
    data: TrainingData,
    config: TrainConfig = FINETUNE_DEFAULTS,
    *,
    val_data: TrainingData | None = None,
    threads: ThreadGovernor | None = None,
) -> Generator[dict[str, Any], None, EmbeddingModel]:
    """Fine-tune ``base`` (left unchanged) on ``data``; the record names the base model.

    The defaults (:data:`FINETUNE_DEFAULTS`: 200 steps, lr 1e-3, every layer learning) suit a
    few curated frames.
    After the last step the returned model's foreground threshold is calibrated
    (:meth:`Trainer.iter_calibrate`); that part yields nothing.
    """
    trainer = Trainer(base, data, config, val_data=val_data, base_model=True, threads=threads)
    model = yield from trainer.run()
    for _ in trainer.iter_calibrate(model):
        pass
    return model


def _trainable(network: torch.nn.Module, frozen_stacks: int) -> list[torch.nn.Parameter]:
    """Freeze the stem and the first ``frozen_stacks`` stacks, always leaving the last stack
    to learn (a one-stack model trains whole); the parameters left to train."""
    frozen_stacks = min(frozen_stacks, len(network.hourglasses) - 1)
    network.requires_grad_(True)  # a copied network may carry an earlier run's freeze
    if frozen_stacks:
        frozen = [network.stem]
        frozen += [network.hourglasses[i] for i in range(frozen_stacks)]
        frozen += [network.embedding_heads[i] for i in range(frozen_stacks)]
        for module in frozen:
            module.requires_grad_(False)
    return [p for p in network.parameters() if p.requires_grad]
