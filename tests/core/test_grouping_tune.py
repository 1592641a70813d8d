"""Grid search of grouping parameters against curated labels."""

from __future__ import annotations

import functools
import importlib.util

import numpy as np
import pytest
from _helpers import embed_labels

from napari_cosine_embed.core.errors import InputError
from napari_cosine_embed.core.grouping.tune import TuneResult, iter_tune, tune
from napari_cosine_embed.core.synthetic import synthetic_image

pytestmark = pytest.mark.usefixtures("one_torch_thread")

HAS_HDBSCAN = importlib.util.find_spec("napari_cosine_embed.core.grouping.hdbscan") is not None


@pytest.fixture(scope="module")
def frames():
    gts, embs = [], []
    for seed in (1, 2):
        _, labels = synthetic_image(shape=(96, 96), n_cells=6, seed=seed)
        gts.append(labels.astype(np.int32))
        embs.append(embed_labels(labels, dim=12, seed=seed))
    return embs, gts, [gt > 0 for gt in gts]


@pytest.mark.parametrize("metric", ["SEG", "AP50"])
def test_meanshift_tuning_beats_a_bad_default(frames, metric):
    embs, gts, fgs = frames
    space = {"bandwidth": [2.0, 0.8, 0.1], "min_size": [0, 10]}
    result = tune(embs, gts, grouper="meanshift", space=space, metric=metric, foregrounds=fgs)
    assert isinstance(result, TuneResult)
    assert result.complete
    assert len(result.trials) == 6
    assert result.metric == metric
    assert result.grouper == "meanshift"
    assert result.best_params["bandwidth"] == 0.1
    assert result.best_score >= 0.9
    bad = next(t["score"] for t in result.trials if t["bandwidth"] == 2.0)
    assert result.best_score > bad + 0.3
    assert max(t["score"] for t in result.trials) == result.best_score
    assert set(result.trials[0]) == {"bandwidth", "min_size", "score", "seconds"}


def test_outer_parameters_and_postprocess(frames):
    embs, gts, fgs = frames
    result = tune(
        embs,
        gts,
        grouper="meanshift",
        space={"coord_weight": [0.0, 1.0], "bandwidth": [0.1]},
        foregrounds=fgs,
        fixed={"device": "cpu", "n_seeds": 64},
        postprocess={"min_size": 5},
    )
    assert [t["coord_weight"] for t in result.trials] == [0.0, 1.0]
    assert result.best_score >= 0.9


def test_budget_stops_early_and_generator_reports_progress(frames):
    embs, gts, fgs = frames
    space = {"bandwidth": [0.1, 0.2, 0.3, 0.4]}
    result = tune(embs, gts, grouper="meanshift", space=space, foregrounds=fgs, budget_seconds=1e-6)
    assert len(result.trials) == 1
    assert not result.complete
    steps = list(iter_tune(embs, gts, grouper="meanshift", space=space, foregrounds=fgs))
    assert [len(s.trials) for s in steps] == [1, 2, 3, 4]
    assert steps[-1].complete


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"grouper": "kmeans"}, "unknown grouper"),
        ({"metric": "IoU"}, "unknown metric"),
        ({"space": {"bandwith": [0.1]}}, "not a parameter"),
        ({"space": {"bandwidth": []}}, "non-empty"),
        ({"space": {"bandwidth": 0.1}}, "non-empty"),
        ({"fixed": {"colour": 1}}, "not meanshift parameters"),
        ({"budget_seconds": 0}, "budget_seconds"),
        ({"foregrounds": []}, "foregrounds"),
    ],
)
def test_bad_options_raise(frames, kwargs, match):
    embs, gts, _ = frames
    kwargs = {"grouper": "meanshift", "space": {"bandwidth": [0.1]}, **kwargs}
    with pytest.raises(InputError, match=match):
        tune(embs, gts, **kwargs)


def test_bad_frames_raise(frames):
    embs, gts, _ = frames
    space = {"bandwidth": [0.1]}
    with pytest.raises(InputError):
        tune(embs, gts[:1], grouper="meanshift", space=space)
    with pytest.raises(InputError):
        tune([], [], grouper="meanshift", space=space)
    with pytest.raises(InputError):
        tune(embs, [gt[:10] for gt in gts], grouper="meanshift", space=space)
    with pytest.raises(InputError):
        tune(embs, [np.zeros_like(gt) for gt in gts], grouper="meanshift", space=space)
    with pytest.raises(InputError):
        tune(embs, [gt.astype(float) for gt in gts], grouper="meanshift", space=space)
    with pytest.raises(InputError):
        tune(np.stack(embs), np.stack(gts), grouper="meanshift", space=space)


@pytest.mark.skipif(not HAS_HDBSCAN, reason="the HDBSCAN grouper (grouping/hdbscan.py) is missing")
def test_hdbscan_tuning_reuses_the_tree(frames, monkeypatch):
    from napari_cosine_embed.core.grouping import hdbscan

    built = []
    original = hdbscan.HDBSCANGrouper.__init__

    @functools.wraps(original)  # keeps the signature that tune() reads
    def counting_init(self, *args, **kwargs):
        built.append(kwargs["min_samples"])
        original(self, *args, **kwargs)

    monkeypatch.setattr(hdbscan.HDBSCANGrouper, "__init__", counting_init)
    embs, gts, fgs = frames
    space = {
        "min_samples": [3, 8],
        "coord_weight": [0.0],
        "min_cluster_size": [5000, 20],
        "method": ["eom", "leaf"],
    }
    result = tune(embs, gts, grouper="hdbscan", space=space, foregrounds=fgs)
    assert built == [3, 3, 8, 8]  # one tree per frame and outer combination
    assert len(result.trials) == 8
    assert result.best_params["min_cluster_size"] == 20
    assert result.best_score >= 0.9
    assert result.best_score > min(t["score"] for t in result.trials) + 0.5
