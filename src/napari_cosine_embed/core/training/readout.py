"""Did fine-tuning help? Held-out curated frames scored with the base and the tuned model.

The same measure as the benchmarks (CTC SEG: the mean Jaccard index of the curated objects with
the segmented object covering more than half of each) on curated frames that training never saw,
each segmented as ``segment`` segments a movie: its warm-up frames first, the model's own
threshold and object size (:func:`~..pipeline.run_pipeline`, without tracking).
"""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["HeldOutScores", "held_out_scores"]


@dataclass(frozen=True)
class HeldOutScores:
    """SEG of the held-out ``frames`` before (base model) and after (tuned model)."""

    frames: tuple[int, ...]
    before: float
    after: float

    def describe(self) -> str:
        which = ", ".join(map(str, self.frames))
        change = self.after - self.before
        verdict = "better" if change > 0.005 else "worse" if change < -0.005 else "no change"
        return (
            f"held-out frame(s) {which}: SEG {self.before:.3f} -> {self.after:.3f} "
            f"({change:+.3f}, {verdict})"
        )


def _segment(model: Any, image: Any, t: int, warmup: int) -> np.ndarray:
    from .._generators import result_of
    from ..pipeline import PipelineConfig, run_pipeline

    start = max(0, t - warmup)
    clip = np.stack([np.asarray(image[s]) for s in range(start, t + 1)])
    import torch

    device = torch.device(model.device).type  # where the model is: it stays there
    config = PipelineConfig(model="given", device=device, track=False, warmup=warmup)
    return result_of(run_pipeline(clip, config, model=model)).labels[-1]


def held_out_scores(
    base: Any,
    tuned: Any,
    image: Any,
    labels: Mapping[int, np.ndarray],
    frames: Sequence[int],
    *,
    warmup: int = 3,
) -> Generator[tuple[int, int], None, HeldOutScores]:
    """Score ``frames`` of ``image`` against their curated ``labels`` with both models.

    A generator: yields ``(done, total)`` after each frame and model, returns
    :class:`HeldOutScores`.
    """
    from ..metrics.ctc import seg_score

    stack = image[None] if np.ndim(image) == 2 else image
    truth = {i: np.asarray(labels[t]) for i, t in enumerate(frames)}
    total, done = 2 * len(frames), 0
    scores = []
    for model in (base, tuned):
        segmented = {}
        for i, t in enumerate(frames):
            segmented[i] = _segment(model, stack, int(t), warmup)
            done += 1
            yield done, total
        scores.append(seg_score(truth, segmented))
    return HeldOutScores(tuple(int(t) for t in frames), *scores)
