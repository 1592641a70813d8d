"""Instance-level detection scores for sets of 2D label images.

A predicted object is a true positive when it is matched one-to-one to a ground-truth object
with an intersection over union (IoU) strictly above a threshold. Above 0.5 such matches are
unique by construction (two disjoint objects cannot both overlap a third by more than half);
below 0.5 the matching is the one with the most matches, ties broken by the largest summed
IoU (``scipy.optimize.linear_sum_assignment``).

``AP`` follows the 2018 Data Science Bowl: ``TP / (TP + FP + FN)``, which is what that
challenge called average precision (it is closer to a critical success index than to the area
under a precision-recall curve). :func:`instance_scores` pools the counts over all images
before dividing, so large images weigh by their object count; the mean of the per-image values
(the challenge's own averaging) is reported beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..errors import InputError
from ._overlap import overlap

#: The 2018 Data Science Bowl thresholds 0.5, 0.55, ..., 0.95 (rounded, so 0.6 is 0.6).
IOU_THRESHOLDS = tuple(np.round(np.arange(0.5, 1.0, 0.05), 2).tolist())


@dataclass(frozen=True)
class InstanceMatch:
    """One-to-one matching of ground-truth and predicted objects in one image.

    Attributes
    ----------
    tp, fp, fn : int
        Matched pairs, unmatched predictions, unmatched ground-truth objects.
    pairs : ndarray of shape (tp, 2)
        ``[ground-truth label, predicted label]`` of each match.
    ious : ndarray of shape (tp,)
        IoU of each match.
    """

    tp: int
    fp: int
    fn: int
    pairs: np.ndarray
    ious: np.ndarray

    @property
    def n_true(self) -> int:
        """Number of ground-truth objects."""
        return self.tp + self.fn

    @property
    def n_pred(self) -> int:
        """Number of predicted objects."""
        return self.tp + self.fp


def _iou_matrix(gt: np.ndarray, pred: np.ndarray):
    """Labels of both images and their dense IoU matrix of shape (G, P)."""
    gt, pred = np.asarray(gt), np.asarray(pred)
    if gt.shape != pred.shape:
        raise InputError(f"ground truth {gt.shape} and prediction {pred.shape} differ in shape")
    ov = overlap(gt, pred)
    iou = np.zeros((ov.ref_labels.size, ov.comp_labels.size))
    iou[ov.ref_index, ov.comp_index] = ov.iou()
    return ov.ref_labels, ov.comp_labels, iou


def _assign(iou: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of the one-to-one matches with IoU above ``threshold``."""
    candidate = iou > threshold
    if threshold >= 0.5:
        return np.nonzero(candidate)
    rows = np.flatnonzero(candidate.any(axis=1))
    cols = np.flatnonzero(candidate.any(axis=0))
    if rows.size == 0:
        return rows, cols
    ok = candidate[np.ix_(rows, cols)]
    # The IoU term sums to less than 1 over any matching, so one more match always wins.
    gain = ok * (1.0 + iou[np.ix_(rows, cols)] / (min(ok.shape) + 1))
    r, c = linear_sum_assignment(gain, maximize=True)
    keep = ok[r, c]
    return rows[r[keep]], cols[c[keep]]


def match_instances(gt: np.ndarray, pred: np.ndarray, *, iou_threshold: float = 0.5):
    """Match predicted to ground-truth objects one-to-one at an IoU threshold.

    Parameters
    ----------
    gt, pred : ndarray of shape (Y, X)
        Label images, 0 = background; label values need not be consecutive.
    iou_threshold : float
        A pair can match when its IoU is strictly greater than this.

    Returns
    -------
    InstanceMatch
        Counts, matched label pairs and their IoUs.

    Examples
    --------
    >>> gt = np.zeros((4, 8), np.uint8); gt[:, :4] = 1; gt[:, 4:] = 2
    >>> pred = np.zeros_like(gt); pred[:, :3] = 5
    >>> m = match_instances(gt, pred)
    >>> m.tp, m.fp, m.fn, m.ious.tolist()
    (1, 0, 1, [0.75])
    """
    gt_labels, pred_labels, iou = _iou_matrix(gt, pred)
    r, c = _assign(iou, iou_threshold)
    return InstanceMatch(
        tp=int(r.size),
        fp=int(pred_labels.size - r.size),
        fn=int(gt_labels.size - r.size),
        pairs=np.stack([gt_labels[r], pred_labels[c]], axis=1),
        ious=iou[r, c],
    )


def _ratio(num: np.ndarray, den: np.ndarray, empty: float) -> np.ndarray:
    num, den = np.asarray(num, float), np.asarray(den, float)
    return np.divide(num, den, out=np.full(np.broadcast(num, den).shape, empty), where=den > 0)


def instance_scores(
    gts: Sequence[np.ndarray],
    preds: Sequence[np.ndarray],
    *,
    thresholds: Sequence[float] | np.ndarray = IOU_THRESHOLDS,
) -> dict:
    """Detection scores of predicted label images against ground truth, over IoU thresholds.

    Parameters
    ----------
    gts, preds : sequence of ndarray of shape (Y, X)
        Ground-truth and predicted label images, paired by position; sizes may differ
        between pairs.
    thresholds : sequence of float
        IoU thresholds for the per-threshold entries and ``mAP``; the ``*_50`` entries are
        always computed at 0.5.

    Returns
    -------
    dict
        ``AP50``, ``F1_50``, ``precision_50``, ``recall_50`` (pooled counts, floats);
        ``AP50_per_image`` (mean of per-image AP); ``mAP`` and ``mAP_per_image`` (mean of the
        per-threshold AP); per threshold, arrays of shape (K,): ``thresholds``, ``AP``,
        ``AP_per_image``, ``F1``, ``precision``, ``recall``, ``tp``, ``fp``, ``fn``; and
        ``n_images``, ``n_true``, ``n_pred``.

        Conventions for empty sets: AP and F1 are 1 where there is nothing to find and nothing
        was predicted; precision (recall) is 0 where nothing was predicted (nothing is there).

    Examples
    --------
    >>> gt = np.zeros((4, 8), np.uint8); gt[:, :4] = 1; gt[:, 4:] = 2
    >>> scores = instance_scores([gt], [gt])
    >>> scores["AP50"], scores["mAP"]
    (1.0, 1.0)
    """
    if len(gts) != len(preds):
        raise InputError(f"{len(gts)} ground-truth images but {len(preds)} predictions")
    thresholds = np.atleast_1d(np.asarray(thresholds, dtype=float))
    grid = np.concatenate([[0.5], thresholds])  # column 0 feeds the *_50 entries
    tp = np.zeros((len(gts), grid.size), dtype=np.int64)
    n_true = np.zeros(len(gts), dtype=np.int64)
    n_pred = np.zeros(len(gts), dtype=np.int64)
    for i, (gt, pred) in enumerate(zip(gts, preds, strict=True)):
        gt_labels, pred_labels, iou = _iou_matrix(gt, pred)
        n_true[i], n_pred[i] = gt_labels.size, pred_labels.size
        tp[i] = [_assign(iou, t)[0].size for t in grid]
    fp = n_pred[:, None] - tp
    fn = n_true[:, None] - tp
    TP, FP, FN = tp.sum(axis=0), fp.sum(axis=0), fn.sum(axis=0)
    ap = _ratio(TP, TP + FP + FN, empty=1.0)
    ap_image = _ratio(tp, tp + fp + fn, empty=1.0).mean(axis=0) if len(gts) else ap
    precision = _ratio(TP, TP + FP, empty=0.0)
    recall = _ratio(TP, TP + FN, empty=0.0)
    f1 = _ratio(2 * TP, 2 * TP + FP + FN, empty=1.0)
    return {
        "AP50": float(ap[0]),
        "AP50_per_image": float(ap_image[0]),
        "F1_50": float(f1[0]),
        "precision_50": float(precision[0]),
        "recall_50": float(recall[0]),
        "mAP": float(ap[1:].mean()),
        "mAP_per_image": float(ap_image[1:].mean()),
        "thresholds": thresholds,
        "AP": ap[1:],
        "AP_per_image": ap_image[1:],
        "F1": f1[1:],
        "precision": precision[1:],
        "recall": recall[1:],
        "tp": TP[1:],
        "fp": FP[1:],
        "fn": FN[1:],
        "n_images": len(gts),
        "n_true": int(n_true.sum()),
        "n_pred": int(n_pred.sum()),
    }
