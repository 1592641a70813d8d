"""The training step and the validation score, as plain functions (torchvision-references style).

* :func:`train_step` runs one batch of clips: the network embeds each clip frame by frame with
  its recurrent state carried; with ``bptt`` the clip is cut into segments, the gradient flows
  back through one segment only and the state is detached between segments (truncated
  backpropagation through time). The loss is the embedding loss of every stack's output
  (averaged over stacks) plus ``foreground_weight`` x binary cross-entropy of the foreground
  head against ``labels > 0``; ignored pixels take no part in either.
* :func:`evaluate` embeds whole validation frames (state carried through movies) and scores
  them with :func:`~napari_cosine_embed.core.embedding_quality.embedding_quality`.

:class:`TrainConfig` decides a run; :mod:`.trainer` drives the steps.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..checkpoint import EmbeddingModel, plain
from ..embedding_quality import aggregate_quality, embedding_quality
from ..limits import TRAIN, check_choice, check_fields, check_flag, check_text
from ..losses import LossConfig
from ..models import ModelConfig, ModelOutput, detach_state
from .augment import AugmentConfig
from .data import Batch, TrainingData

__all__ = [
    "FINETUNE_DEFAULTS",
    "TrainConfig",
    "TrainingLoss",
    "evaluate",
    "train_step",
]


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run; stored in the record of the trained model.

    Numbers must lie within :data:`~napari_cosine_embed.core.limits.TRAIN` (e.g. a batch of
    at most 256 clips, crops of 32 to 2048 pixels, ``lr`` in (0, 1]); anything else raises
    ``ValueError`` naming the field.

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
    foreground_crops : float
        Share of the crops placed around a labelled nucleus pixel (the rest uniform; see
        :meth:`~.data.TrainingData.sample`).
    frozen_stacks : int
        Leading hourglass stacks (with the stem) whose weights stay fixed, at most all but the
        last (a one-stack model trains whole); the loss then looks at the outputs of the
        stacks that learn. Fewer weights to move on a few curated
        frames, and no backward pass through the frozen part.
    stack_loss : {"all", "last"}
        The embedding loss on every stack that learns (the mean; deep supervision, as in
        training from scratch) or on the last stack only: the earlier stacks then learn from
        the last one's loss alone, and a step with every layer learning costs some 15 % less.
    calibration_holdout : float
        A fine-tune without validation frames keeps a band of this share of every curated
        frame (with the objects it touches) out of the foreground loss and calibrates the
        foreground threshold on it (:mod:`.holdout`); 0 calibrates on the training frames
        themselves.
    keep : {"best", "last"}
        Which weights a run with validation data returns: those that scored best on it
        (:func:`evaluate`), or the last step's. The score looks at the embedding alone; a
        fine-tune that learns mostly where objects end can lower it while segmenting better
        (the sample movie, one curated frame: score 0.62 -> 0.37 while the held-out frame's
        SEG rose 0.77 -> 0.95), so fine-tuning keeps the last step, as it was measured.
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
    foreground_crops: float = 0.0
    frozen_stacks: int = 0
    stack_loss: str = "all"
    calibration_holdout: float = 0.0
    keep: str = "best"

    def __post_init__(self) -> None:
        # Also what a training-state file or a model record holds: checked field by field,
        # against the ranges the command line's options use (InputError is a ValueError).
        check_fields(self, TRAIN, prefix="TrainConfig.")
        check_choice(self.schedule, "TrainConfig.schedule", ("cosine", "constant"))
        check_choice(self.stack_loss, "TrainConfig.stack_loss", ("all", "last"))
        check_choice(self.keep, "TrainConfig.keep", ("best", "last"))
        object.__setattr__(self, "amp", check_flag(self.amp, "TrainConfig.amp"))
        check_text(self.device, "TrainConfig.device")
        for name, kind in (("loss", LossConfig), ("augment", AugmentConfig)):
            if not isinstance(getattr(self, name), kind):
                raise ValueError(
                    f"TrainConfig.{name} must be a {kind.__name__}, got {getattr(self, name)!r}"
                )

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


#: Fine-tuning on a few curated frames: 200 steps of 2 crops of 192 x 192 px, every layer
#: learning, the foreground loss weighed 25 times the embedding loss
#: (benchmarks/bench_finetune.py for the time, and bench_learning_loop.py for what it buys).
#: The cosine loss costs pixels x instances, so larger crops grow faster than their area.
# Clips of 3 frames (2 unlabelled warm-up frames, then a curated one): fine-tuned on single
# frames (zero state), the network learned a foreground that swelled once a state ran (SIM+:
# IoU 0.71 stateless, 0.54 with state); 2 warm-up frames suffice and cost less than 3.
# Every layer and a heavy foreground loss (2026-12-07): on whole cells (Fluo-C2DL-MSC 02, 3
# curated frames, held-out SEG from 0.437) the stem and first stack frozen at weight 1 gave
# 0.553 (mean of 3 seeds), frozen at weight 25 0.595, every layer at weight 25 0.629 (3
# seeds); on SIM+ 02 and GOWT1 02 every layer at weight 25 raised every score (2 seeds;
# BC(1) on SIM+ 0.558 -> 0.687), where the frozen recipe at weight 25 lowered BC(1). It costs 1.5 times the steps' time
# of the frozen recipe (docs/benchmarks.md, "The learning loop"); the embedding loss on the
# last stack only (stack_loss="last") with 150 steps was as fast as the frozen recipe but
# gave MSC 0.608. Where the model should only be nudged: frozen_stacks=1, foreground_weight=1.
# Half the crops sit on a curated nucleus: on SIM+ (773 x 739 frames, nuclei on 3-7 % of the
# pixels) most uniform 192 px crops hold no nucleus; with half of them placed on one, held-out
# SEG after 100 steps rose from 0.56 to 0.59 (docs/benchmarks.md).
FINETUNE_DEFAULTS = TrainConfig(
    steps=200,
    batch_size=2,
    crop=192,
    clip_length=3,
    lr=1e-3,
    warmup=10,
    val_every=0,
    checkpoint_every=0,
    foreground_crops=0.5,
    foreground_weight=25.0,
    neighbour_radius=10.0,
    frozen_stacks=0,
    calibration_holdout=0.2,
    keep="last",
)


class TrainingLoss:
    """Embedding loss on every stack that learns (mean; or the last, ``stack_loss``) + weighted
    foreground BCE.

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
        self.stack_loss = config.stack_loss

    def __call__(
        self,
        output: ModelOutput,
        labels: torch.Tensor,
        ignore: torch.Tensor,
        foreground_ignore: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss of a (segment of a) clip.

        ``output`` comes from ``forward_sequence`` (embeddings (B, T, D, Y, X)); ``labels``,
        ``ignore`` and ``foreground_ignore`` (pixels the foreground loss skips, None:
        ``ignore``) have shape (B, T, Y, X). Returns the scalar loss and its parts.
        """
        labels, ignore = labels.flatten(0, 1), ignore.flatten(0, 1)
        skip = ignore if foreground_ignore is None else foreground_ignore.flatten(0, 1)
        # the outputs of frozen stacks teach nothing (when some stack learns, only those)
        stacks = [e for e in output.embeddings if e.requires_grad] or output.embeddings
        if self.stack_loss == "last":
            stacks = stacks[-1:]
        # one call for every stack: the labels' share of the work is done once
        embedding = self.embedding_loss([e.flatten(0, 1) for e in stacks], labels, ignore)
        total, parts = embedding, {"embedding_loss": float(embedding.detach())}
        if output.foreground is not None and self.foreground_weight:
            logits = output.foreground.flatten(0, 2).float()
            bce = F.binary_cross_entropy_with_logits(logits, (labels > 0).float(), reduction="none")
            valid = (~skip).float()
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
        Images (B, T, 1, Y, X), labels and ignore (B, T, Y, X), moved to the model's device;
        ``fresh`` restarts a clip's state from zeros where its padding ends.
    loss_fn : TrainingLoss
    optimiser : torch.optim.Optimizer
    scaler : torch.amp.GradScaler, optional
        For fp16 autocast.
    bptt : int, keyword-only
        Frames per truncated-BPTT segment (0: the whole clip); the state is detached between
        segments and the gradients of all segments are accumulated before the step. With 0,
        leading frames entirely ignored by the losses (warm-up frames) run without a graph.
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
    images, labels, ignore = (t.to(device) for t in batch[:3])
    # a Batch's optional parts (a plain (images, labels, ignore) tuple has none)
    fresh, skip = (
        None if part is None else part.to(device)
        for part in (getattr(batch, "fresh", None), getattr(batch, "foreground_ignore", None))
    )
    # Trailing frames that no loss looks at (in any clip of the batch) change nothing: drop them.
    n_frames = images.shape[1]
    while n_frames > 1 and bool(ignore[:, n_frames - 1].all()):
        n_frames -= 1
    images, labels, ignore = images[:, :n_frames], labels[:, :n_frames], ignore[:, :n_frames]
    skip = None if skip is None else skip[:, :n_frames]
    segment = bptt if 0 < bptt < n_frames else n_frames
    optimiser.zero_grad(set_to_none=True)
    state, totals, first = None, {"loss": 0.0}, 0
    if segment == n_frames:
        # Leading frames that no loss looks at (every pixel ignored in every clip: the
        # warm-up frames before a curated one) only carry the state in; run them without a
        # graph. The loss is the same; its gradient stops at the state they hand over (as
        # truncated BPTT would), and a step of a 4-frame fine-tuning clip costs about half.
        while first < n_frames - 1 and bool(ignore[:, first].all()):
            first += 1
        if first:
            with (
                torch.no_grad(),
                torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None),
            ):
                warm = network.forward_sequence(
                    images[:, :first], None, fresh=fresh, state_only=True
                )
                state = detach_state(warm.state)
                del warm
            segment = n_frames - first
    for start in range(first, n_frames, segment):
        part = slice(start, min(n_frames, start + segment))
        share = (part.stop - part.start) / (n_frames - first)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            output = network.forward_sequence(
                images[:, part], state, fresh=None if fresh is None else fresh - start
            )
        loss, parts = loss_fn(
            output, labels[:, part], ignore[:, part], None if skip is None else skip[:, part]
        )
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
