"""The embedding network and the recurrent grouping module, on tiny models and inputs."""

from __future__ import annotations

import doctest
import itertools
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from napari_cosine_embed.core.models import (
    ConvGRUCell,
    ModelConfig,
    RecurrentMeanShift,
    RecurrentStackedHourglass,
    detach_state,
)
from napari_cosine_embed.core.models import grouping as grouping_module
from napari_cosine_embed.core.models import hourglass as hourglass_module

pytestmark = pytest.mark.usefixtures("one_torch_thread")


TINY = ModelConfig(stacks=2, levels=3, filters=6, embedding_dim=4, input_stride=1)


def _model(config: ModelConfig = TINY, seed: int = 0) -> RecurrentStackedHourglass:
    torch.manual_seed(seed)
    return RecurrentStackedHourglass(config).eval()


def _frames(*shape: int, seed: int = 1) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("module", [grouping_module, hourglass_module])
def test_docstring_examples_run(module):
    result = doctest.testmod(module, extraglobs={"torch": torch})
    assert result.attempted > 0
    assert result.failed == 0


# --- network ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [
        TINY,
        replace(TINY, recurrent=False),
        replace(TINY, input_stride=2, first_recurrent_level=0),
        replace(TINY, stacks=1, levels=4, merge="concat", pooling="max", norm="group"),
        replace(TINY, separable=True, norm="batch", foreground_head=False, in_channels=2),
        replace(TINY, stacks=3, norm="instance", embedding_dim=3),
    ],
    ids=["recurrent", "plain", "stride2-allgru", "concat-max-group", "separable-bn", "3stacks"],
)
@pytest.mark.parametrize(("height", "width"), [(61, 77), (32, 16), (5, 3)])
def test_output_shapes(config, height, width):
    model = _model(config)
    frame = _frames(2, config.in_channels, height, width)
    with torch.no_grad():
        out = model(frame)
        again = model(frame, out.state)
    for result in (out, again):
        assert len(result.embeddings) == config.stacks
        for embedding in result.embeddings:
            assert embedding.shape == (2, config.embedding_dim, height, width)
            assert torch.isfinite(embedding).all()
        if config.foreground_head:
            assert result.foreground.shape == (2, 1, height, width)
        else:
            assert result.foreground is None
        assert len(result.state) == config.stacks * len(config.recurrent_levels())


def test_forward_sequence_matches_frame_by_frame():
    model, frames = _model(), _frames(1, 3, 1, 20, 24)
    with torch.no_grad():
        seq = model.forward_sequence(frames)
        state = None
        for t in range(3):
            out = model(frames[:, t], state)
            state = out.state
            for s in range(TINY.stacks):
                torch.testing.assert_close(seq.embeddings[s][:, t], out.embeddings[s])
            torch.testing.assert_close(seq.foreground[:, t], out.foreground)
    assert seq.embeddings[0].shape == (1, 3, TINY.embedding_dim, 20, 24)
    for a, b in zip(seq.state, state, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("recurrent", [True, False])
def test_output_depends_on_previous_frame_only_when_recurrent(recurrent):
    model = _model(replace(TINY, recurrent=recurrent))
    first_a, first_b, second = _frames(3, 1, 1, 24, 20).unbind(0)
    with torch.no_grad():
        after_a = model(second, model(first_a).state)
        after_b = model(second, model(first_b).state)
    for a, b in zip(after_a.embeddings, after_b.embeddings, strict=True):
        assert (not torch.allclose(a, b)) is recurrent
    assert (not torch.allclose(after_a.foreground, after_b.foreground)) is recurrent


def test_state_none_equals_zero_state():
    model, frame = _model(replace(TINY, first_recurrent_level=0)), _frames(2, 1, 61, 77)
    zeros = model.zero_state(2, 61, 77)
    with torch.no_grad():
        from_none, from_zeros = model(frame, None), model(frame, zeros)
    assert [z.shape for z in zeros] == [h.shape for h in from_none.state]
    for a, b in zip(
        from_none.embeddings + from_none.state,
        from_zeros.embeddings + from_zeros.state,
        strict=True,
    ):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_wrong_state_length_is_rejected():
    model = _model()
    with pytest.raises(ValueError, match="state has 1 tensors"):
        model(_frames(1, 1, 8, 8), [torch.zeros(1, 6, 8, 8)])


def test_config_round_trip_and_checkpoint_rebuilds_identical_model(tmp_path: Path):
    config = replace(TINY, norm="batch", merge="concat", separable=True)
    values = config.to_dict()
    assert all(type(v) in (int, bool, str) for v in values.values())
    assert ModelConfig.from_dict(values) == config

    model = _model(config)
    model.train()
    with torch.no_grad():  # move the batch-norm running statistics off their initial values
        model(_frames(2, 1, 16, 16))
    model.eval()
    torch.save(model.to_checkpoint(), tmp_path / "model.pt")
    checkpoint = torch.load(tmp_path / "model.pt", weights_only=True)
    rebuilt = RecurrentStackedHourglass.from_checkpoint(checkpoint).eval()
    assert rebuilt.config == config

    frames = _frames(1, 2, 1, 21, 19)
    with torch.no_grad():
        expected, got = model.forward_sequence(frames), rebuilt.forward_sequence(frames)
    for a, b in zip(expected.embeddings, got.embeddings, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"norm": "layer"}, "norm must be one of"),
        ({"levels": 0}, r"levels must be an integer in \[1, 8\]"),
        ({"filters": 2.0}, "filters must be an integer"),
        ({"input_stride": 4}, "input_stride must be 1 or 2"),
        ({"first_recurrent_level": 3}, "first_recurrent_level must be in"),
    ],
)
def test_invalid_config_is_rejected(changes, message):
    with pytest.raises(ValueError, match=message):
        replace(TINY, **changes)


def test_from_dict_rejects_unknown_fields_and_fills_missing_ones():
    with pytest.raises(ValueError, match="unknown ModelConfig fields"):
        ModelConfig.from_dict({**TINY.to_dict(), "dropout": 0.1})
    values = TINY.to_dict()
    del values["merge"]
    assert ModelConfig.from_dict(values).merge == ModelConfig().merge


def test_gradients_reach_every_parameter_through_two_frames():
    model = _model(replace(TINY, first_recurrent_level=0, input_stride=2)).train()
    frames = _frames(2, 2, 1, 16, 16).requires_grad_(True)
    out = model.forward_sequence(frames)
    # Only the second frame is supervised: the first frame and the GRUs' first step get their
    # gradient through the carried state (backpropagation through time).
    loss = sum(e[:, 1].square().mean() for e in out.embeddings) + out.foreground[:, 1].mean()
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name
    assert frames.grad[:, 0].abs().sum() > 0


def test_detached_state_stops_gradient_at_the_frame_boundary():
    model = _model()
    first = _frames(1, 1, 16, 16).requires_grad_(True)
    state = detach_state(model(first).state)
    assert all(not h.requires_grad for h in state)
    model(_frames(1, 1, 16, 16, seed=2), state).embeddings[-1].sum().backward()
    assert first.grad is None


def test_convgru_cell_update():
    cell = ConvGRUCell(3, 5, 3)
    x = _frames(2, 3, 7, 9)
    h1 = cell(x)
    torch.testing.assert_close(h1, cell(x, torch.zeros(2, 5, 7, 9)))
    assert h1.shape == (2, 5, 7, 9)
    assert h1.abs().max() < 1  # a convex mix of the zero state and a tanh candidate
    assert not torch.allclose(cell(x, h1), h1)


# --- grouping --------------------------------------------------------------------------------


def _noisy_directions(per_cluster: int = 60, noise: float = 0.25, seed: int = 0):
    """(1, 3, N) points around three orthogonal directions, and their (N,) cluster ids."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(3).repeat_interleave(per_cluster)
    points = torch.eye(3)[labels] + noise * torch.randn(labels.numel(), 3, generator=g)
    return points.T.unsqueeze(0), labels


def _mean_cosines(points: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """Mean cosine similarity of (1, D, N) points within clusters and between clusters."""
    x = torch.nn.functional.normalize(points[0].T, dim=1)
    cos = x @ x.T
    same = labels[:, None] == labels[None, :]
    return cos[same].mean().item(), cos[~same].mean().item()


def test_grouping_returns_unit_vectors_for_each_iteration():
    steps = RecurrentMeanShift(iterations=4, bandwidth=0.3)(_frames(2, 5, 9, 11))
    assert len(steps) == 4
    for step in steps:
        assert step.shape == (2, 5, 9, 11)
        torch.testing.assert_close(step.norm(dim=1), torch.ones(2, 9, 11))


@pytest.mark.parametrize("max_anchors", [1000, 40], ids=["exact", "anchors"])
def test_grouping_contracts_clusters_and_keeps_them_apart(max_anchors):
    points, labels = _noisy_directions()
    grouping = RecurrentMeanShift(
        iterations=3, bandwidth=0.15, max_anchors=max_anchors, chunk_size=50
    )
    steps = grouping(points, generator=torch.Generator().manual_seed(0))
    within, between = zip(*(_mean_cosines(p, labels) for p in [points, *steps]), strict=True)
    assert all(b > a - 2e-3 for a, b in itertools.pairwise(within)), within
    assert within[-1] > within[0] + 0.08, within
    assert max(between) < 0.1, between
    nearest_centre = steps[-1][0].argmax(dim=0)
    assert (nearest_centre == labels).float().mean() >= (
        points[0].argmax(dim=0) == labels
    ).float().mean() - 0.02


def test_grouping_moves_only_masked_pixels():
    points, labels = _noisy_directions()
    unit = torch.nn.functional.normalize(points, dim=1)
    first = labels == 0
    steps = RecurrentMeanShift(iterations=3, bandwidth=0.15)(points, first[None])
    torch.testing.assert_close(steps[-1][..., ~first], unit[..., ~first])
    assert _mean_cosines(steps[-1][..., first], labels[first])[0] > 0.95
    empty = RecurrentMeanShift(iterations=2)(points, torch.zeros_like(first)[None])
    torch.testing.assert_close(empty[-1], unit)


@pytest.mark.parametrize(
    ("max_anchors", "masked"),
    [(10, False), (4, False), (10, True)],
    ids=["exact", "anchors", "mask"],
)
def test_grouping_gradcheck(max_anchors, masked):
    x = torch.randn(1, 3, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    mask = torch.tensor([[1, 1, 0, 1, 0, 1, 1]], dtype=torch.bool) if masked else None
    grouping = RecurrentMeanShift(
        iterations=2, bandwidth=0.5, max_anchors=max_anchors, chunk_size=3
    )

    def run(inp):
        return grouping(inp, mask, generator=torch.Generator().manual_seed(0))

    assert torch.autograd.gradcheck(run, (x.requires_grad_(True),))


class _LargestTensor(TorchDispatchMode):
    """Records the largest tensor (in elements) that any operation creates."""

    largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in torch.utils._pytree.tree_leaves(out):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


@pytest.mark.parametrize("grad", [False, True], ids=["inference", "training"])
def test_grouping_memory_is_bounded_on_a_512_frame(grad):
    # The full kernel would have 262144^2 entries (275 GB). Here no tensor may exceed one
    # embedding copy (N x D) or one chunk's kernel (chunk_size x max_anchors), and in training
    # the tensors kept for the backward pass must not include the N x M kernels: checkpointing
    # recomputes them chunk by chunk.
    n, d, anchors, chunk, iterations = 512 * 512, 8, 64, 4096, 2
    grouping = RecurrentMeanShift(
        iterations=iterations, bandwidth=0.2, max_anchors=anchors, chunk_size=chunk
    )
    x = torch.randn(1, d, 512, 512).requires_grad_(grad)
    saved = []
    with (
        torch.set_grad_enabled(grad),
        torch.autograd.graph.saved_tensors_hooks(
            lambda t: saved.append(t.numel()) or t, lambda t: t
        ),
        _LargestTensor() as largest,
    ):
        steps = grouping(x)
        if grad:
            sum(s.sum() for s in steps).backward()
    assert largest.largest <= max(n * d, chunk * anchors)
    assert sum(saved) < 4 * iterations * n * d  # an N x M kernel alone is 8 n d
    if grad:
        assert torch.isfinite(x.grad).all()


def test_the_last_stack_alone_gives_the_same_outputs():
    """Inference asks only for the last stack (less memory); the values must not change."""
    torch.manual_seed(0)
    model = RecurrentStackedHourglass(ModelConfig(filters=8, levels=3, embedding_dim=4, stacks=3))
    model.eval()
    frames = torch.randn(2, 1, 1, 45, 67)
    with torch.inference_mode():
        state_all = state_last = None
        for frame in frames:
            every = model(frame, state_all)
            last = model(frame, state_last, all_stacks=False)
            state_all, state_last = every.state, last.state
            assert len(every.embeddings) == 3
            assert len(last.embeddings) == 1
            assert torch.equal(last.embeddings[0], every.embeddings[-1])
            assert torch.equal(last.foreground, every.foreground)
            assert all(torch.equal(a, b) for a, b in zip(last.state, every.state, strict=True))


def test_a_warm_up_frame_computes_the_same_state_alone():
    """``state_only`` (warm-up frames) skips the last stack's decoder and heads, not the state."""
    torch.manual_seed(0)
    model = RecurrentStackedHourglass(ModelConfig(filters=8, levels=3, embedding_dim=4, stacks=2))
    frames = torch.randn(2, 3, 1, 40, 36)
    with torch.no_grad():
        every = model.forward_sequence(frames)
        warm = model.forward_sequence(frames, state_only=True)
        single = model(frames[:, 0], state_only=True)
    assert warm.embeddings == []
    assert warm.foreground is None
    assert single.embeddings == []
    assert all(torch.equal(a, b) for a, b in zip(warm.state, every.state, strict=True))
    assert all(
        torch.equal(a, b) for a, b in zip(single.state, model(frames[:, 0]).state, strict=True)
    )


def test_fresh_restarts_a_clip_from_zeros_where_its_padding_ends():
    """Clip 0 begins at frame 2 (frames 0-1 padding), clip 1 at frame 0: clip 0's outputs from
    frame 2 on are those of its real frames embedded from a zero state."""
    torch.manual_seed(0)
    model = _model(replace(TINY, first_recurrent_level=0))
    frames = _frames(2, 4, 1, 24, 20)
    with torch.no_grad():
        mixed = model.forward_sequence(frames, fresh=torch.tensor([2, 0]))
        alone = model.forward_sequence(frames[:1, 2:])
        whole = model.forward_sequence(frames[1:])
        leaky = model.forward_sequence(frames[:1])
    for s in range(TINY.stacks):
        torch.testing.assert_close(mixed.embeddings[s][:1, 2:], alone.embeddings[s])
        torch.testing.assert_close(mixed.embeddings[s][1:], whole.embeddings[s])
        # without the restart the padding's state would leak into frame 2
        assert not torch.allclose(mixed.embeddings[s][:1, 2], leaky.embeddings[s][:, 2])
