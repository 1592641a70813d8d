"""Grouping pixel embeddings into instances: HDBSCAN, mean shift, seeds, post-processing."""

from .hdbscan import HDBSCANGrouper, hdbscan_labels, single_linkage_tree
from .meanshift import MeanShiftGrouper, blurring_meanshift, meanshift_labels
from .points import embedding_points
from .postprocess import (
    fill_holes,
    postprocess,
    relabel_consecutive,
    remove_small,
    split_components,
    split_necks,
)
from .seeds import seed_mask, seediness
from .tune import DEFAULT_SPACES, METRICS, TuneResult, iter_tune, tune

__all__ = [
    "DEFAULT_SPACES",
    "METRICS",
    "HDBSCANGrouper",
    "MeanShiftGrouper",
    "TuneResult",
    "blurring_meanshift",
    "embedding_points",
    "fill_holes",
    "hdbscan_labels",
    "iter_tune",
    "meanshift_labels",
    "postprocess",
    "relabel_consecutive",
    "remove_small",
    "seed_mask",
    "seediness",
    "single_linkage_tree",
    "split_components",
    "split_necks",
    "tune",
]
