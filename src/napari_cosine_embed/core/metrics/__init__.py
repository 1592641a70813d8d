"""Accuracy measures: the Cell Tracking Challenge's SEG, DET and TRA, and instance-level
detection scores (AP, F1 at IoU thresholds) for sets of 2D label images, and division
detection (BC(i))."""

from ._overlap import Overlap, overlap
from .ctc import (
    AOGM_WEIGHTS,
    aogm_counts,
    ctc_scores,
    det_score,
    seg_score,
    tra_score,
)
from .divisions import DivisionScores, division_scores
from .instances import IOU_THRESHOLDS, InstanceMatch, instance_scores, match_instances

__all__ = [
    "AOGM_WEIGHTS",
    "IOU_THRESHOLDS",
    "DivisionScores",
    "InstanceMatch",
    "Overlap",
    "aogm_counts",
    "ctc_scores",
    "det_score",
    "division_scores",
    "instance_scores",
    "match_instances",
    "overlap",
    "seg_score",
    "tra_score",
]
