"""A band of each curated frame kept out of the foreground loss, to calibrate the tuned model on.

A model fine-tuned on a few frames is surer of itself on those frames than anywhere else: on
whole cells (Fluo-C2DL-MSC 02) the foreground threshold that fitted its own training frames
best (0.6) was four times the one that fitted the rest of the movie (0.15; docs/benchmarks.md).
Calibrating on the pixels the foreground loss learned therefore sets the threshold too high.
So a band of every curated frame is kept out of the foreground loss, and the threshold is
calibrated on that band alone. The embedding loss still learns the band's objects (how its
pixels group says nothing about where the foreground ends), so the curated objects all teach
the model to tell neighbours apart.

The band runs across the frame (along its longer side), and every object it touches is held
out whole: the foreground loss never learns part of an object it is then scored on. Of a few
candidate bands we take the one whose labelled foreground is closest to the frame's share (a
fair sample of the frame), among those that hold some foreground and do not take much more
than their share of the frame with them.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .data import LabelledSequence, TrainingData, _Pool

__all__ = ["hold_out_bands"]

#: A band, with the objects it touches, may take at most this many times its share.
_MAX_GROWTH = 2.0


def hold_out_bands(data: TrainingData, fraction: float) -> tuple[TrainingData, TrainingData] | None:
    """Split every labelled frame of ``data`` into a part to train on and a band to score.

    Parameters
    ----------
    data : TrainingData
    fraction : float
        The band's share of the frame, in (0, 0.5].

    Returns
    -------
    (train, held) : tuple of TrainingData, or None
        ``train`` marks the held-out pixels as ``holdout`` (the foreground loss skips them);
        ``held`` scores nothing else (its ``ignore`` covers the rest). Both share ``data``'s
        frames and labels (no copies of them). None when no labelled frame has a band worth
        holding out (e.g. frames too small, or no labelled foreground).
    """
    if not 0 < fraction <= 0.5:
        raise ValueError(f"the held-out band's share must be in (0, 0.5], got {fraction}")
    train_pools, held_pools, any_held = [], [], False
    for pool in data.pools:
        train_seqs, held_seqs = [], []
        for seq in pool.sequences:
            ignore = _ignore_of(seq)
            holdout = np.zeros_like(ignore)
            held_ignore = np.ones_like(ignore)
            held_labelled = np.zeros_like(seq.labelled)
            for t in np.flatnonzero(seq.labelled):
                region = _band(np.asarray(seq.labels[t]), ignore[t], fraction)
                if region is None:
                    continue
                held_ignore[t] = ~region
                holdout[t] = region
                held_labelled[t] = True
            train_seqs.append(replace(seq, holdout=holdout if held_labelled.any() else None))
            if held_labelled.any():
                any_held = True
                held_seqs.append(replace(seq, ignore=held_ignore, labelled=held_labelled))
        train_pools.append(_Pool(train_seqs, pool.weight, pool.description))
        if held_seqs:
            held_pools.append(_Pool(held_seqs, pool.weight, pool.description))
    if not any_held:
        return None
    return (
        TrainingData(train_pools, data.normalisation),
        TrainingData(held_pools, data.normalisation),
    )


def _ignore_of(seq: LabelledSequence) -> np.ndarray:
    if seq.ignore is None:
        return np.zeros(seq.labels.shape, bool)
    return np.array(seq.ignore, bool)


def _band(labels: np.ndarray, ignore: np.ndarray, fraction: float) -> np.ndarray | None:
    """The held-out region of one frame (a band and the objects it touches), or None."""
    ny, nx = labels.shape
    across = 0 if ny >= nx else 1  # the band's width runs along the longer side
    length = labels.shape[across]
    width = round(fraction * length)
    if width < 8:
        return None
    n = max(2, round(1 / fraction))
    starts = np.linspace(0, length - width, n).round().astype(int)
    scored = ~ignore
    foreground = (labels > 0) & scored
    share = foreground.sum() / max(1, scored.sum())
    best, best_cost = None, np.inf
    for start in starts:
        band = np.zeros(labels.shape, bool)
        index = [slice(None), slice(None)]
        index[across] = slice(start, start + width)
        band[tuple(index)] = True
        touched = np.unique(labels[band & (labels > 0)])
        region = band | np.isin(labels, touched)
        region &= scored
        if not (region & foreground).any():
            continue
        if region.sum() > _MAX_GROWTH * fraction * scored.sum():
            continue
        if region.sum() == scored.sum():
            continue
        cost = abs((region & foreground).sum() / max(1, region.sum()) - share)
        if cost < best_cost:
            best, best_cost = region, cost
    return best
