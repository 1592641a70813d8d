"""Training and fine-tuning as plain functions and one generator (torchvision-references style).

* :func:`train_step` runs one batch of clips: the network embeds each clip frame by frame with
  its recurrent state carried; with ``bptt`` the clip is cut into segments, the gradient flows
  back through one segment only and the state is detached between segments (truncated
  backpropagation through time). The loss is the embedding loss of every stack's output
  (averaged over stacks) plus ``foreground_weight`` x binary cross-entropy of the foreground
  head against ``labels > 0``; ignored pixels take no part in either.
* :func:`evaluate` embeds whole validation frames (state carried through movies) and scores
  them with :func:`~napari_cosine_embed.core.embedding_quality.embedding_quality`.
* :class:`Trainer` owns the optimiser and the schedule; :meth:`Trainer.run` is a generator
  yielding one dict per step. Closing it (a Cancel button, Ctrl-C handled by the caller)
  stops after the current step and keeps :attr:`Trainer.best_model`.

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
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..checkpoint import EmbeddingModel, checkpoint_payload, model_from_payload, plain
from ..device import resolve_device
from ..embedding_quality import aggregate_quality, embedding_quality
from ..errors import InputError
from ..io._atomic import atomic_write
from ..losses import LossConfig
from ..models import ModelConfig, ModelOutput, detach_state
from .augment import AugmentConfig
from .data import Batch, TrainingData

__all__ = [
    "FINETUNE_DEFAULTS",
    "TRAIN_STATE_FORMAT",
    "TrainConfig",
    "Trainer",
    "TrainingLoss",
    "evaluate",
    "finetune",
    "train",
    "train_step",
]

TRAIN_STATE_FORMAT = "napari-cosine-embed/training-state-v1"


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run; stored in the record of the trained model.

    Attributes
    ----------
    steps, batch_size, crop : int
        Optimiser steps; clips per batch; side of the square crops.
    clip_length : int
        Frames per clip (1: independent frames; 2D images always give 1).
    bptt : int
        Frames per truncated-backpropagation segment; 0 backpropagates through the whole clip.
    lr, weight_decay : float
        AdamW learning rate (peak) and weight decay.
    warmup : int
        Steps of linear learning-rate warm-up.
    schedule : {"cosine", "constant"}
        After warm-up: cosine decay to ``min_lr * lr`` at the last step, or constant.
    min_lr : float
        Final learning rate as a fraction of ``lr``.
    loss : LossConfig
        The embedding loss. Unless its options say otherwise, the cosine loss uses
        ``neighbour_radius``, and the background is an instance only for a network without a
        foreground head.
    foreground_weight : float
        Weight of the foreground BCE (ignored without a foreground head).
    neighbour_radius : float
        Neighbourhood of the cosine loss and of the validation score.
    amp : bool
        Mixed precision on CUDA (bf16 where supported, else fp16 with a gradient scaler).
    device : str
        "auto", "cpu", "cuda"...
    seed : int
        Seeds the initial weights (when training from scratch) and every batch.
    val_every, log_every, checkpoint_every : int
        Validate, print (CLI) and save the training state every so many steps (0: never;
        validation also runs after the last step).
    grad_clip : float
        Largest gradient norm (0: no clipping).
    augment : AugmentConfig
    """

    steps: int = 2500
    batch_size: int = 4
    crop: int = 192
    clip_length: int = 2
    bptt: int = 0
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup: int = 100
    schedule: str = "cosine"
    min_lr: float = 0.02
    loss: LossConfig = field(default_factory=LossConfig)
    foreground_weight: float = 1.0
    neighbour_radius: float = 5.0
    amp: bool = True
    device: str = "auto"
    seed: int = 0
    val_every: int = 250
    log_every: int = 10
    checkpoint_every: int = 250
    grad_clip: float = 1.0
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "crop", "clip_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"schedule must be 'cosine' or 'constant', got {self.schedule!r}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for records and training-state files)."""
        values = asdict(self)
        values["loss"] = {"name": self.loss.name, "options": dict(self.loss.options)}
        values["augment"] = self.augment.to_dict()
        return plain(values)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        values = dict(values)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig fields {unknown}")
        if "loss" in values:
            values["loss"] = LossConfig(values["loss"]["name"], dict(values["loss"]["options"]))
        if "augment" in values:
            values["augment"] = AugmentConfig.from_dict(values["augment"])
        return cls(**values)


#: Fine-tuning on a few curated frames: 200 steps of 2 crops of 192 x 192 px at a low learning
#: rate, about 0.4 CPU-seconds a step (under a minute on two idle CPU cores, against a budget of
#: two; benchmarks/bench_finetune.py). The cosine loss costs pixels x instances, so larger crops
#: grow faster than their area.
FINETUNE_DEFAULTS = TrainConfig(
    steps=200,
    batch_size=2,
    crop=192,
    clip_length=1,
    lr=2e-4,
    warmup=10,
    val_every=0,
    checkpoint_every=0,
)


class TrainingLoss:
    """Embedding loss on every stack (mean) + weighted foreground BCE.

    Parameters
    ----------
    config : TrainConfig
    model_config : ModelConfig

    Attributes
    ----------
    loss_config : LossConfig
        The embedding loss with its effective options (recorded with the model).
    """

    def __init__(self, config: TrainConfig, model_config: ModelConfig) -> None:
        options = dict(config.loss.options)
        if config.loss.name == "cosine":
            options.setdefault("neighbour_radius", config.neighbour_radius)
        options.setdefault("background_is_instance", not model_config.foreground_head)
        self.loss_config = LossConfig(config.loss.name, options)
        self.embedding_loss = self.loss_config.build()
        self.foreground_weight = config.foreground_weight if model_config.foreground_head else 0.0

    def __call__(
        self, output: ModelOutput, labels: torch.Tensor, ignore: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss of a (segment of a) clip.

        ``output`` comes from ``forward_sequence`` (embeddings (B, T, D, Y, X)); ``labels``
        and ``ignore`` have shape (B, T, Y, X). Returns the scalar loss and its parts.
        """
        labels, ignore = labels.flatten(0, 1), ignore.flatten(0, 1)
        per_stack = [
            self.embedding_loss(e.flatten(0, 1), labels, ignore) for e in output.embeddings
        ]
        embedding = torch.stack(per_stack).mean()
        total, parts = embedding, {"embedding_loss": float(embedding.detach())}
        if output.foreground is not None and self.foreground_weight:
            logits = output.foreground.flatten(0, 2).float()
            bce = F.binary_cross_entropy_with_logits(logits, (labels > 0).float(), reduction="none")
            valid = (~ignore).float()
            foreground = (bce * valid).sum() / valid.sum().clamp_min(1)
            total = total + self.foreground_weight * foreground
            parts["foreground_loss"] = float(foreground.detach())
        return total, parts


def _network(model: EmbeddingModel | torch.nn.Module) -> torch.nn.Module:
    return model.network if isinstance(model, EmbeddingModel) else model


def train_step(
    model: EmbeddingModel | torch.nn.Module,
    batch: Batch,
    loss_fn: TrainingLoss,
    optimiser: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None = None,
    *,
    bptt: int = 0,
    grad_clip: float = 0.0,
    amp_dtype: torch.dtype | None = None,
) -> dict[str, float]:
    """One optimiser step on a batch of clips, the recurrent state carried through each clip.

    Parameters
    ----------
    model : EmbeddingModel or RecurrentStackedHourglass
    batch : Batch
        Images (B, T, 1, Y, X), labels and ignore (B, T, Y, X); moved to the model's device.
    loss_fn : TrainingLoss
    optimiser : torch.optim.Optimizer
    scaler : torch.amp.GradScaler, optional
        For fp16 autocast.
    bptt : int, keyword-only
        Frames per truncated-BPTT segment (0: the whole clip); the state is detached between
        segments and the gradients of all segments are accumulated before the step.
    grad_clip : float, keyword-only
        Largest gradient norm (0: none).
    amp_dtype : torch.dtype, optional
        Autocast dtype (None: full precision).

    Returns
    -------
    dict
        ``loss`` and its parts (frame-weighted means over segments), ``grad_norm``, and
        ``skipped`` (1.0 when a non-finite gradient made the step be skipped).
    """
    network = _network(model)
    network.train()
    device = next(network.parameters()).device
    images, labels, ignore = (t.to(device) for t in batch)
    n_frames = images.shape[1]
    segment = bptt if 0 < bptt < n_frames else n_frames
    optimiser.zero_grad(set_to_none=True)
    state, totals = None, {"loss": 0.0}
    for start in range(0, n_frames, segment):
        part = slice(start, min(n_frames, start + segment))
        share = (part.stop - part.start) / n_frames
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            output = network.forward_sequence(images[:, part], state)
        loss, parts = loss_fn(output, labels[:, part], ignore[:, part])
        (scaler.scale(loss * share) if scaler is not None else loss * share).backward()
        state = detach_state(output.state)
        totals["loss"] += float(loss.detach()) * share
        for key, value in parts.items():
            totals[key] = totals.get(key, 0.0) + value * share
    if scaler is not None:
        scaler.unscale_(optimiser)
    params = [p for p in network.parameters() if p.grad is not None]
    grad_norm = torch.nn.utils.clip_grad_norm_(params, grad_clip or math.inf)
    finite = bool(torch.isfinite(grad_norm))
    if scaler is not None:
        scaler.step(optimiser)  # skips the step itself on inf/NaN gradients
        scaler.update()
    elif finite:
        optimiser.step()
    return {**totals, "grad_norm": float(grad_norm), "skipped": float(not finite)}


@torch.inference_mode()
def evaluate(
    model: EmbeddingModel, val_data: TrainingData, *, neighbour_radius: float = 5.0
) -> dict[str, float]:
    """Score a model on whole validation frames.

    Each sequence is embedded frame by frame with the state carried (as inference does), and
    every labelled frame's last-stack embedding is scored with :func:`embedding_quality`
    (ignored pixels count as background there); the results are pooled with
    :func:`aggregate_quality`.

    Returns
    -------
    dict
        ``score``, ``neighbour_separation``, ``within_cosine``, the counts, ``n_frames``, and
        ``foreground_iou`` (the sigmoid > 0.5 mask against ``labels > 0``) with a foreground head.
    """
    network = model.network
    was_training = network.training
    network.eval()
    device = model.device
    data = val_data.normalised(model.normalisation)
    results, inter, union = [], 0, 0
    for seq in data.sequences:
        state = None
        for t, frame in enumerate(seq.image):
            output = network(torch.from_numpy(frame)[None, None].to(device), state)
            state = output.state
            if not seq.labelled[t]:
                continue
            labels = np.asarray(seq.labels[t])
            valid = np.ones(labels.shape, bool) if seq.ignore is None else ~seq.ignore[t]
            labels = np.where(valid, labels, 0)
            results.append(
                embedding_quality(
                    output.embeddings[-1][0], labels, neighbour_radius=neighbour_radius
                )
            )
            if output.foreground is not None:
                predicted = (output.foreground[0, 0] > 0).cpu().numpy() & valid
                truth = labels > 0
                inter += int((predicted & truth).sum())
                union += int((predicted | truth).sum())
    network.train(was_training)
    scores = aggregate_quality(results)
    scores["n_frames"] = len(results)
    if model.config.foreground_head:
        scores["foreground_iou"] = inter / union if union else math.nan
    return scores


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
        with the default :class:`ModelConfig`, initialised from ``config.seed``.
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

    Examples
    --------
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
        config: TrainConfig = TrainConfig(),
        *,
        val_data: TrainingData | None = None,
        resume_from: str | os.PathLike | None = None,
        state_path: str | os.PathLike | None = None,
        base_model: bool = False,
    ) -> None:
        state = None
        if resume_from is not None:
            state = _read_state(resume_from)
            config = replace(TrainConfig.from_dict(state["train_config"]), device=config.device)
            model = model_from_payload(state["model"], path=os.fspath(resume_from))
            if state["data"] != plain(data.describe()):
                raise InputError(
                    f"{resume_from}: was trained on {state['data'].get('summary')!r}, not on "
                    f"{data.describe()['summary']!r}; give the same data to resume"
                )
        elif model is None:
            model = EmbeddingModel.new(seed=config.seed, name="trained")
        else:
            model = model.copy()
        self.config = config
        self.device = resolve_device(config.device)
        self.model = model.to(self.device)
        self.data = data.normalised(model.normalisation)
        self.val_data = None if val_data is None else val_data.normalised(model.normalisation)
        self.loss_fn = TrainingLoss(config, model.config)
        self.optimiser = torch.optim.AdamW(
            self.model.network.parameters(), lr=config.lr, weight_decay=config.weight_decay
        )
        self.amp_dtype, self.scaler = _amp(self.device, config.amp)
        self.state_path = state_path
        self.step, self.elapsed, self.stopped_early = 0, 0.0, False
        self.base = _base_summary(model) if base_model else None
        self._best: dict[str, Any] | None = None
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
        }

    def _snapshot(self, state_dict: dict | None, **record: Any) -> EmbeddingModel:
        model = self.model.copy()
        if state_dict is not None:
            model.network.load_state_dict(state_dict)
        model.record = self.record(**record)
        return model.eval()

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

    def validate(self) -> dict[str, float]:
        """Score the current weights on ``val_data`` and keep them if they are the best."""
        scores = evaluate(self.model, self.val_data, neighbour_radius=self.config.neighbour_radius)
        score = scores["score"] if math.isfinite(scores["score"]) else -math.inf
        if self._best is None or score > self._best["score"]:
            weights = self.model.network.state_dict()
            self._best = {
                "score": score,
                "step": self.step,
                "scores": scores,
                "state_dict": {k: v.detach().cpu().clone() for k, v in weights.items()},
            }
        return scores

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
        atomic_write(path, lambda tmp: torch.save(payload, tmp), overwrite=True)

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
            :attr:`best_model` (via ``StopIteration.value``, or ``yield from``).
        """
        c = self.config
        self.stopped_early = True
        in_step = False
        try:
            while self.step < c.steps:
                in_step, started = True, time.perf_counter()
                rng = np.random.default_rng([c.seed, self.step])
                batch = self.data.sample(
                    rng,
                    batch_size=c.batch_size,
                    crop=c.crop,
                    clip_length=c.clip_length,
                    augment=c.augment,
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
        return self.best_model


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
    config: TrainConfig = TrainConfig(),
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
) -> Generator[dict[str, Any], None, EmbeddingModel]:
    """Fine-tune ``base`` (left unchanged) on ``data``; the record names the base model.

    The defaults (:data:`FINETUNE_DEFAULTS`: 200 steps, lr 2e-4) suit a few curated frames.
    """
    trainer = Trainer(base, data, config, val_data=val_data, base_model=True)
    return (yield from trainer.run())
