"""Frame-by-frame embedding: shapes, unit norms, recurrence, tiling, laziness, input errors."""

from __future__ import annotations

import itertools
import subprocess
import sys

import dask
import dask.array as da
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from napari_cosine_embed.core.checkpoint import EmbeddingModel, save_model
from napari_cosine_embed.core.embed import (
    FrameEmbedding,
    embed,
    embed_with_foreground,
    iter_embed,
    tile_spans,
)
from napari_cosine_embed.core.errors import InputError
from napari_cosine_embed.core.models import ModelConfig

TINY = ModelConfig(stacks=1, levels=2, filters=8, embedding_dim=4)
#: Full resolution, no ConvGRU: receptive-field radius about 10 pixels (3 x 3 convs: stem,
#: level 0 down and parallel; level 1 down and parallel at half resolution; up).
LOCAL = ModelConfig(stacks=1, levels=2, filters=8, embedding_dim=4, recurrent=False, input_stride=1)


def make_model(config: ModelConfig = TINY, seed: int = 0) -> EmbeddingModel:
    return EmbeddingModel.new(config, seed=seed)


def movie(t: int = 3, y: int = 37, x: int = 45, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 4000, (t, y, x)).astype(np.uint16)


def reference(model: EmbeddingModel, frames: np.ndarray) -> np.ndarray:
    """Straightforward untiled inference: (T, Y, X) -> (T, D, Y, X) unit vectors."""
    state, out = None, []
    with torch.inference_mode():
        for frame in frames:
            x = torch.from_numpy(model.normalisation(frame))[None, None]
            result = model.network.eval()(x, state)
            state = result.state
            out.append(F.normalize(result.embeddings[-1][0], dim=0).numpy())
    return np.stack(out)


def test_shapes_dtype_unit_norm_and_foreground():
    model = make_model()
    emb, fg = embed_with_foreground(model, movie())
    assert emb.shape == (3, 4, 37, 45)
    assert emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert fg.shape == (3, 37, 45)
    assert fg.dtype == np.float32
    assert fg.min() >= 0.0
    assert fg.max() <= 1.0
    single = embed(model, movie()[0])
    assert single.shape == (1, 4, 37, 45)
    assert single.dtype == np.float32
    np.testing.assert_allclose(single[0], emb[0], atol=1e-6)  # frame 0 has no history


def test_matches_reference_and_iter_yields_each_frame():
    model, frames = make_model(), movie()
    results = list(iter_embed(model, frames))
    assert [type(r) for r in results] == [FrameEmbedding] * 3
    assert [r.t for r in results] == [0, 1, 2]
    np.testing.assert_allclose(
        np.stack([r.embedding for r in results]), reference(model, frames), atol=1e-5
    )
    model.network.train()
    assert [r.t for r in iter_embed(model, frames, frames=[2, -3])] == [2, 0]
    assert embed(model, frames, frames=[1, 2]).shape == (2, 4, 37, 45)
    assert model.network.training  # the caller's mode is restored


def test_no_foreground_head_gives_none():
    model = make_model(ModelConfig(stacks=1, levels=2, filters=8, foreground_head=False))
    emb, fg = embed_with_foreground(model, movie(t=1))
    assert fg is None
    assert emb.shape == (1, 16, 37, 45)
    assert next(iter_embed(model, movie(t=1))).foreground is None


@pytest.mark.parametrize(("config", "carried"), [(TINY, True), (LOCAL, False)])
def test_recurrent_state_is_carried_only_by_recurrent_models(config, carried):
    model, a, b = make_model(config), movie(t=2, seed=1), movie(t=2, seed=2)
    b[1] = a[1]  # same frame 1, different frame 0
    diff = np.abs(embed(model, a)[1] - embed(model, b)[1]).max()
    assert (diff > 1e-3) if carried else (diff == 0)


@pytest.mark.parametrize(("length", "size", "overlap", "multiple"), [(250, 96, 16, 8),
    (200, 96, 32, 2), (97, 96, 32, 4), (1000, 128, 0, 16), (4096, 1024, 128, 16), (64, 96, 8, 1)])  # fmt: skip
def test_tile_spans_partition_the_axis(length, size, overlap, multiple):
    spans = tile_spans(length, size, overlap, multiple)
    assert (spans[0][0], spans[-1][1]) == (0, length)  # the tiles cover the axis
    assert (spans[0][2], spans[-1][3]) == (0, length)  # so do the kept parts ...
    assert [s[2] for s in spans[1:]] == [s[3] for s in spans[:-1]]  # ... which abut
    for b, e, kb, ke in spans:
        assert b % multiple == 0
        assert 0 < e - b <= size
        assert b <= kb < ke <= e
    for (_, e, _, seam), (b, _, _, _) in itertools.pairwise(spans):
        assert e - b >= overlap
        assert min(seam - b, e - seam) >= overlap // 2


def test_tiled_equals_untiled_when_the_receptive_field_fits_in_the_overlap():
    # LOCAL sees about 10 pixels around a pixel; overlap 32 keeps every kept pixel >= 16 pixels
    # from its tile's inner edges, so the stitched result must equal one pass over the frame.
    model, frames = make_model(LOCAL), movie(t=1, y=200, x=250)
    assert len(tile_spans(200, 96, 32, 2)) * len(tile_spans(250, 96, 32, 2)) == 12
    tiled = embed(model, frames, tile_size=96, tile_overlap=32)
    np.testing.assert_allclose(tiled, reference(model, frames), atol=1e-5)
    # With overlap 4 the seams are 2 pixels from tile edges: differences appear, near seams only.
    rough = embed(model, frames, tile_size=96, tile_overlap=4)
    rows, cols = ([span[2] for span in tile_spans(n, 96, 4, 2)[1:]] for n in (200, 250))
    bad_y, bad_x = np.nonzero(np.abs(rough - tiled).max(axis=(0, 1)) > 1e-4)
    near = [
        min(abs(y - s) for s in rows) < 12 or min(abs(x - s) for s in cols) < 12
        for y, x in zip(bad_y, bad_x, strict=True)
    ]
    assert near, "overlap 4 should leave visible seams"
    assert all(near)


def test_each_tile_position_keeps_its_own_state():
    model, frames = make_model(TINY), movie(t=3, y=120, x=150, seed=3)
    tiled = embed(model, frames, tile_size=64, tile_overlap=16)
    np.testing.assert_allclose(np.linalg.norm(tiled, axis=1), 1.0, atol=1e-5)
    expected = np.empty_like(tiled)
    norm = np.stack([model.normalisation(f) for f in frames])  # whole-frame percentiles
    for y0, y1, ky0, ky1 in tile_spans(120, 64, 16, TINY.size_multiple):
        for x0, x1, kx0, kx1 in tile_spans(150, 64, 16, TINY.size_multiple):
            state = None
            for t in range(3):  # an independent movie of this tile alone
                with torch.inference_mode():
                    x = torch.from_numpy(norm[t, y0:y1, x0:x1].copy())[None, None]
                    out = model.network(x, state)
                state, e = out.state, F.normalize(out.embeddings[-1][0], dim=0).numpy()
                expected[t, :, ky0:ky1, kx0:kx1] = e[:, ky0 - y0 : ky1 - y0, kx0 - x0 : kx1 - x0]
    np.testing.assert_allclose(tiled, expected, atol=1e-5)


class CountingMovie:
    """A (T, Y, X) array-like that records which frames were read."""

    def __init__(self, data: np.ndarray) -> None:
        self.data, self.reads = data, []
        self.shape, self.dtype, self.ndim = data.shape, data.dtype, data.ndim

    def __getitem__(self, t: int) -> np.ndarray:
        self.reads.append(t)
        return self.data[t]


def test_closing_the_generator_stops_the_work():
    frames = CountingMovie(movie(t=10))
    gen = iter_embed(make_model(), frames)
    assert frames.reads == []  # nothing runs before iteration
    assert [next(gen).t, next(gen).t] == [0, 1]
    gen.close()
    assert frames.reads == [0, 1]
    with pytest.raises(StopIteration):
        next(gen)


def test_dask_input_reads_only_the_requested_frames():
    data, calls = movie(t=6), []

    def load(t: int) -> np.ndarray:
        calls.append(t)
        return data[t]

    lazy = da.stack(
        [da.from_delayed(dask.delayed(load)(t), data.shape[1:], data.dtype) for t in range(6)]
    )
    model = make_model()
    out = embed(model, lazy, frames=[3, 4])
    assert sorted(calls) == [3, 4]
    np.testing.assert_allclose(out, embed(model, data, frames=[3, 4]), atol=1e-6)


def test_zarr_input_matches_numpy():
    zarr = pytest.importorskip("zarr")
    data = movie(t=2)
    store = zarr.create_array(store={}, shape=data.shape, chunks=(1, 37, 45), dtype=data.dtype)
    store[:] = data
    model = make_model()
    np.testing.assert_allclose(embed(model, store), embed(model, data), atol=1e-6)


@pytest.mark.parametrize("dtype", [bool, np.int8, np.uint8, np.int32, np.float16, np.float64])
def test_any_numeric_dtype(dtype):
    data = (np.random.default_rng(0).random((2, 24, 24)) * 100).astype(dtype)
    out = embed(make_model(), data)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def test_nan_pixels_are_filled_and_bf16_gives_float32():
    data = movie(t=2).astype(np.float32)
    data[0, :5] = np.nan
    out = embed(make_model(), data, amp="bf16")
    assert out.dtype == np.float32
    assert np.isfinite(out).all()
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-3)


@pytest.mark.parametrize(
    ("image", "options", "message"),
    [
        (np.zeros((2, 3, 32, 32)), {}, r"\(T, Y, X\) movie or a \(Y, X\) frame.*\(2, 3, 32, 32\)"),
        (np.zeros((2, 3, 32, 32)), {}, "multi-channel"),
        (np.zeros((2, 32, 32, 3)), {}, "RGB"),
        (np.zeros((32, 32, 3)), {}, "RGB"),
        (np.zeros(32), {}, r"shape \(32,\)"),
        (np.full((16, 16), "a"), {}, "must hold numbers"),
        (np.zeros((16, 16), complex), {}, "must hold numbers"),
        (np.zeros((0, 16, 16)), {}, "empty"),
        (np.zeros((4, 5)), {}, "too small"),
        (np.full((2, 16, 16), np.nan), {}, "frame 0 has no finite pixel"),
        (np.zeros((2, 16, 16)), {"frames": [2]}, "frame 2 does not exist"),
        (np.zeros((2, 16, 16)), {"frames": [0.5]}, "integer indices"),
        (np.zeros((2, 16, 16)), {"amp": "int8"}, "amp must be one of"),
        (np.zeros((2, 99, 99)), {"tile_size": 40, "tile_overlap": 38}, "at least 4"),
        (np.zeros((2, 16, 16)), {"tile_overlap": -1}, "tile_overlap >= 0"),
    ],
)
def test_bad_input_raises_input_error(image, options, message):
    with pytest.raises(InputError, match=message):
        embed(make_model(), image, **options)


def test_missing_gpu_is_an_input_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(InputError, match="no CUDA GPU"):
        iter_embed(make_model(), movie(), device="cuda")  # checked before the first frame


def test_explicit_cpu_device():
    out = embed(make_model(), movie(t=1), device="cpu")
    assert out.shape == (1, 4, 37, 45)


def test_model_given_by_path_is_loaded(tmp_path):
    import napari_cosine_embed as nce

    model, frames = make_model(), movie(t=2)
    path = save_model(tmp_path / "tiny.pt", model)
    np.testing.assert_allclose(nce.embed(str(path), frames), embed(model, frames), atol=1e-6)
    assert [r.t for r in nce.iter_embed(path, frames, device="cpu")] == [0, 1]
    assert nce.load_model(path, device="cpu").config == TINY


def test_package_import_does_not_import_torch():
    code = (
        "import sys, napari_cosine_embed as nce\n"
        "assert 'torch' not in sys.modules, 'torch imported by the package'\n"
        "assert {'embed', 'iter_embed', 'load_model'} <= set(dir(nce))\n"
        "from napari_cosine_embed.core.embed import embed\n"
        "assert nce.embed is embed and 'torch' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)


def test_state_window_bounds_the_history_of_every_frame():
    model, frames = make_model(), movie(t=7)
    windowed = embed(model, frames, state_window=3, warmup=2)
    # frame 3 starts a window: its state comes from frames 1 and 2 only
    np.testing.assert_allclose(windowed[3], embed(model, frames[1:4])[2], atol=1e-5)
    # frame 5 is two frames into that window: history 1..4
    np.testing.assert_allclose(windowed[5], embed(model, frames[1:6])[4], atol=1e-5)
    # the first window has no frames before it
    np.testing.assert_allclose(windowed[:3], embed(model, frames[:3]), atol=1e-5)
    # and the unbounded state differs from the bounded one on a recurrent model
    assert np.abs(embed(model, frames)[5] - windowed[5]).max() > 1e-4
    with pytest.raises(InputError, match="state_window"):
        embed(model, frames, state_window=0)
