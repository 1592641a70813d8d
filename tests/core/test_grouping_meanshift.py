"""Mean-shift grouping of cosine embeddings: accuracy on synthetic embeddings, bounded memory."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _helpers import embed_labels
from sklearn.metrics import adjusted_rand_score

from napari_cosine_embed.core.errors import InputError
from napari_cosine_embed.core.grouping.meanshift import (
    MeanShiftGrouper,
    _kernel_mean,
    blurring_meanshift,
    meanshift_labels,
)
from napari_cosine_embed.core.synthetic import synthetic_image

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def scene():
    _, labels = synthetic_image(shape=(128, 128), n_cells=8, seed=3)
    return labels.astype(np.int32), embed_labels(labels)


def ari(gt, pred, mask):
    return adjusted_rand_score(gt[mask], pred[mask])


@pytest.mark.parametrize("seeding", ["farthest", "random"])
def test_seeded_recovers_instances(scene, seeding):
    gt, emb = scene
    fg = gt > 0
    pred = meanshift_labels(emb, bandwidth=0.1, foreground=fg, device="cpu", seeding=seeding)
    assert pred.dtype == np.int32
    assert pred.shape == gt.shape
    assert ari(gt, pred, fg) >= 0.95
    assert not pred[~fg].any()
    assert set(np.unique(pred[fg])) == set(range(1, pred.max() + 1))


def test_blurring_recovers_instances(scene):
    gt, emb = scene
    fg = gt > 0
    pred = blurring_meanshift(emb, bandwidth=0.1, foreground=fg, device="cpu")
    assert ari(gt, pred, fg) >= 0.95
    assert not pred[~fg].any()


def test_background_is_an_object_without_foreground(scene):
    gt, emb = scene
    pred = meanshift_labels(emb, bandwidth=0.1, device="cpu")
    assert pred.min() >= 1
    assert ari(gt, pred, np.ones_like(gt, bool)) >= 0.95


def test_too_large_bandwidth_merges(scene):
    gt, emb = scene
    fg = gt > 0
    good = MeanShiftGrouper(emb, foreground=fg, device="cpu")
    n_objects = len(np.unique(gt)) - 1
    assert good.labels(0.1).max() == n_objects
    assert good.labels(3.0).max() < n_objects / 2
    assert good.labels(3.0, method="blurring").max() < n_objects / 2


def test_grouper_is_reusable_and_deterministic(scene):
    gt, emb = scene
    fg = gt > 0
    grouper = MeanShiftGrouper(emb, foreground=fg, device="cpu", seed=4)
    first = grouper.labels(0.1)
    grouper.labels(0.5)
    np.testing.assert_array_equal(grouper.labels(0.1), first)
    again = MeanShiftGrouper(emb, foreground=fg, device="cpu", seed=4).labels(0.1)
    np.testing.assert_array_equal(again, first)
    assert "n_seeds=128" in repr(grouper)


def test_coord_weight_separates_distant_objects_with_one_direction():
    labels = np.zeros((20, 60), np.int32)
    labels[5:15, 5:15] = 1
    labels[5:15, 45:55] = 2
    emb = embed_labels(np.where(labels > 0, 1, 0), dim=8, noise=0.02)
    fg = labels > 0
    merged = meanshift_labels(emb, bandwidth=0.1, foreground=fg, device="cpu")
    assert merged.max() == 1
    split = meanshift_labels(emb, bandwidth=0.1, foreground=fg, device="cpu", coord_weight=1.0)
    assert adjusted_rand_score(labels[fg], split[fg]) == 1.0
    blurred = blurring_meanshift(emb, bandwidth=0.1, foreground=fg, coord_weight=1.0)
    assert adjusted_rand_score(labels[fg], blurred[fg]) == 1.0


def test_min_size_and_assign_threshold():
    labels = np.zeros((30, 30), np.int32)
    labels[2:20, 2:20] = 1
    labels[22:25, 22:25] = 2  # 9 pixels
    labels[0, 29] = 3  # an outlier pixel
    emb = embed_labels(labels, dim=8, noise=0.02)
    fg = labels > 0
    grouper = MeanShiftGrouper(emb, foreground=fg, device="cpu")
    assert grouper.labels(0.1).max() == 3
    dropped = grouper.labels(0.1, min_size=5)
    assert dropped.max() == 2
    assert dropped[0, 29] in (1, 2)
    small = grouper.labels(0.1, min_size=5, assign_threshold=0.8)
    assert small[0, 29] == 0
    assert small.max() == 2


def test_empty_foreground_and_tiny_inputs(scene):
    _, emb = scene
    assert not meanshift_labels(emb, bandwidth=0.1, foreground=np.zeros(emb.shape[1:], bool)).any()
    one = meanshift_labels(np.ones((3, 1, 1)), bandwidth=0.1, n_seeds=5)
    np.testing.assert_array_equal(one, [[1]])
    assert meanshift_labels(np.ones((2, 2, 2), np.uint8), bandwidth=0.1).max() == 1


def test_streaming_kernel_matches_softmax_at_any_bandwidth():
    gen = torch.Generator().manual_seed(0)
    points = torch.nn.functional.normalize(torch.randn(500, 6, generator=gen), dim=1)
    x = points[:37]
    bias = torch.zeros(500)
    for bandwidth in (1e-3, 0.1, 10.0):
        weights = torch.softmax(x @ points.T / bandwidth, dim=1)
        mean, lse = _kernel_mean(x, points, bias, bandwidth, chunk=64)  # 1-2 rows x 64 columns
        torch.testing.assert_close(mean, weights @ points, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(
            lse, torch.logsumexp(x @ points.T / bandwidth, 1), rtol=1e-5, atol=1e-4
        )
        assert torch.isfinite(mean).all()


def test_chunking_gives_the_same_labels(scene):
    gt, emb = scene
    fg = gt > 0
    big = MeanShiftGrouper(emb, foreground=fg, device="cpu").labels(0.1)
    small = MeanShiftGrouper(emb, foreground=fg, device="cpu", chunk=5000).labels(0.1)
    np.testing.assert_array_equal(small, big)


def test_large_frame_runs_in_bounded_memory():
    labels = np.zeros((1024, 1024), np.int32)
    for i in range(8):
        for j in range(8):
            labels[i * 128 + 10 : i * 128 + 110, j * 128 + 10 : j * 128 + 110] = 1 + (i + j) % 4
    rng = np.random.default_rng(0)
    dirs = np.linalg.qr(rng.normal(size=(8, 8)))[0][:5]  # orthonormal directions
    emb = dirs[labels].transpose(2, 0, 1).astype(np.float32)
    emb += 0.05 * rng.normal(size=emb.shape).astype(np.float32)
    grouper = MeanShiftGrouper(emb, foreground=labels > 0, device="cpu", chunk=1 << 18)
    pred = grouper.labels(0.1)
    fg = labels > 0
    assert adjusted_rand_score(labels[fg][::97], pred[fg][::97]) == 1.0


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((np.zeros((4, 4)),), {"bandwidth": 0.1}),
        ((np.zeros((2, 4, 4)),), {"bandwidth": 0.1, "foreground": np.ones((4, 5), bool)}),
        ((np.zeros((2, 4, 4)),), {"bandwidth": 0.0}),
        ((np.zeros((2, 4, 4)),), {"bandwidth": 0.1, "method": "kmeans"}),
        ((np.zeros((2, 4, 4)),), {"bandwidth": 0.1, "seeding": "grid"}),
        ((np.zeros((2, 4, 4)),), {"bandwidth": 0.1, "n_seeds": 0}),
        ((np.zeros((2, 4, 4)),), {"bandwidth": 0.1, "coord_weight": -1.0}),
        ((np.zeros((2, 4, 4)),), {"bandwidth": 0.1, "max_points": 0}),
        ((np.full((2, 4, 4), np.nan),), {"bandwidth": 0.1}),
        ((np.array([[["a"]]]),), {"bandwidth": 0.1}),
        ((np.zeros((2, 4, 4)),), {"bandwidth": 0.1, "device": "tpu"}),
    ],
)
def test_bad_inputs_raise_input_error(args, kwargs):
    with pytest.raises(InputError):
        meanshift_labels(*args, **kwargs)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_matches_cpu(scene):
    gt, emb = scene
    fg = gt > 0
    cpu = meanshift_labels(emb, bandwidth=0.1, foreground=fg, device="cpu")
    gpu = meanshift_labels(emb, bandwidth=0.1, foreground=fg, device="cuda")
    assert ari(cpu, gpu, fg) >= 0.99
