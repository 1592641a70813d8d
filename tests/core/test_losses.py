"""Embedding losses: agreement with slow loop references, gradients, and training behaviour."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from napari_cosine_embed.core.losses import (
    LOSSES,
    LossConfig,
    cosine_embedding_loss,
    discriminative_loss,
    make_loss,
    pairwise_loss,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
    ),
]

# Image 0: background plus four instances, two of which touch only diagonally (at (2,3)/(3,4)).
# Image 1: three instances with non-contiguous ids, and a label split into two far-apart parts.
TINY_LABELS = np.array(
    [
        [
            [0, 0, 1, 1, 0, 0, 0],
            [0, 1, 1, 1, 0, 0, 0],
            [2, 2, 1, 1, 0, 3, 3],
            [2, 2, 0, 0, 3, 3, 3],
            [2, 2, 4, 4, 0, 0, 0],
            [0, 0, 4, 4, 0, 0, 0],
        ],
        [
            [7, 7, 7, 0, 0, 9, 9],
            [7, 7, 7, 0, 0, 9, 9],
            [0, 0, 0, 0, 2, 2, 9],
            [0, 0, 0, 0, 2, 2, 0],
            [0, 0, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 0, 2],
        ],
    ]
)


def tiny_inputs(*, seed: int = 0, dim: int = 3, dtype=torch.float64, device="cpu"):
    """Random embeddings (2, dim, 6, 7) and the labels above."""
    generator = torch.Generator().manual_seed(seed)
    emb = torch.randn(2, dim, 6, 7, generator=generator, dtype=torch.float64)
    return emb.to(device=device, dtype=dtype), torch.as_tensor(TINY_LABELS, device=device)


def cheap_options(name: str) -> dict:
    """Options for tiny inputs: the pairwise loss draws 64 pixels, the same ones every time."""
    if name == "pairwise":
        return {"n_pixels": 64, "generator": torch.Generator().manual_seed(1)}
    return {}


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _pixels(emb: np.ndarray, labels: np.ndarray, ignore, background_is_instance: bool):
    """Per image: pixel coordinates, embeddings (N, D) and {label: [pixel indices]}."""
    for b in range(labels.shape[0]):
        coords = list(np.ndindex(labels.shape[1:]))
        vectors = [emb[(b, slice(None), *c)] for c in coords]
        members: dict[int, list[int]] = {}
        for p, c in enumerate(coords):
            label = int(labels[(b, *c)])
            if (ignore is not None and ignore[(b, *c)]) or (
                label == 0 and not background_is_instance
            ):
                continue
            members.setdefault(label, []).append(p)
        if any(label > 0 for label in members):
            yield np.array(coords, dtype=float), vectors, members


def reference_cosine(emb, labels, radius, ignore=None, background_is_instance=True) -> float:
    """Payer et al.'s loss with explicit loops over instances and pixels."""
    losses = []
    for coords, vectors, members in _pixels(emb, labels, ignore, background_is_instance):
        e = [_unit(v) for v in vectors]
        means = {i: _unit(sum(e[p] for p in ps)) for i, ps in members.items()}
        terms = []
        for i, ps in members.items():
            intra = 1 - np.mean([e[p] @ means[i] for p in ps])
            others = [
                q
                for j, qs in members.items()
                if j != i
                and any(np.linalg.norm(coords[p] - coords[q]) <= radius for p in ps for q in qs)
                for q in qs
            ]
            inter = np.mean([(e[q] @ means[i]) ** 2 for q in others]) if others else 0.0
            terms.append(intra + inter)
        losses.append(np.mean(terms))
    return float(np.mean(losses)) if losses else 0.0


def reference_pairwise(emb, labels, alpha, ignore=None, background_is_instance=True) -> float:
    """Kong & Fowlkes' loss over every pair of distinct pixels, instance-balanced."""
    losses = []
    for _, vectors, members in _pixels(emb, labels, ignore, background_is_instance):
        owner = {p: i for i, ps in members.items() for p in ps}
        total = weights = 0.0
        for p, q in itertools.permutations(owner, 2):
            s = (1 + _unit(vectors[p]) @ _unit(vectors[q])) / 2
            cost = 1 - s if owner[p] == owner[q] else max(s - alpha, 0.0)
            w = 1 / len(members[owner[p]]) / len(members[owner[q]])
            total, weights = total + w * cost, weights + w
        losses.append(total / weights)
    return float(np.mean(losses)) if losses else 0.0


def reference_discriminative(emb, labels, *, delta_v, delta_d, alpha, beta, gamma, normalise):
    """De Brabandere et al.'s loss with explicit loops."""
    losses = []
    for _, vectors, members in _pixels(emb, labels, None, True):
        x = [_unit(v) if normalise else v for v in vectors]
        means = {i: np.mean([x[p] for p in ps], axis=0) for i, ps in members.items()}
        var = np.mean(
            [
                np.mean([max(np.linalg.norm(means[i] - x[p]) - delta_v, 0) ** 2 for p in ps])
                for i, ps in members.items()
            ]
        )
        pairs = list(itertools.permutations(means, 2))
        dist = sum(
            max(2 * delta_d - np.linalg.norm(means[a] - means[b]), 0) ** 2 for a, b in pairs
        ) / max(len(pairs), 1)
        reg = np.mean([np.linalg.norm(m) for m in means.values()])
        losses.append(alpha * var + beta * dist + gamma * reg)
    return float(np.mean(losses))


# --- agreement with the references -------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("radius", [1.0, 1.5, 2.5])
@pytest.mark.parametrize("background_is_instance", [True, False])
def test_cosine_matches_reference(device, radius, background_is_instance):
    emb, labels = tiny_inputs(device=device)
    ignore = torch.zeros_like(labels, dtype=torch.bool)
    ignore[0, 4:, :3] = True
    got = cosine_embedding_loss(
        emb,
        labels,
        neighbour_radius=radius,
        ignore=ignore,
        background_is_instance=background_is_instance,
    )
    want = reference_cosine(
        emb.cpu().numpy(), TINY_LABELS, radius, ignore.cpu().numpy(), background_is_instance
    )
    assert got.item() == pytest.approx(want, abs=1e-5)


def test_cosine_matches_reference_on_frame_stacks():
    """A (B, D, T, Y, X) stack: the neighbourhood is a ball across frames too."""
    emb = torch.randn(1, 3, 2, 6, 7, generator=torch.Generator().manual_seed(3))
    labels = torch.as_tensor(TINY_LABELS)[None]
    got = cosine_embedding_loss(emb, labels, neighbour_radius=1.5)
    assert got.item() == pytest.approx(reference_cosine(emb.numpy(), labels.numpy(), 1.5), abs=1e-5)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("alpha", [0.5, 0.8])
def test_pairwise_all_pixels_matches_reference(device, alpha):
    emb, labels = tiny_inputs(device=device)
    ignore = torch.zeros_like(labels, dtype=torch.bool)
    ignore[1, :2] = True
    got = pairwise_loss(emb, labels, alpha=alpha, n_pixels=None, ignore=ignore)
    want = reference_pairwise(emb.cpu().numpy(), TINY_LABELS, alpha, ignore.cpu().numpy())
    assert got.item() == pytest.approx(want, abs=1e-5)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("normalise", [False, True])
def test_discriminative_matches_reference(device, normalise):
    emb, labels = tiny_inputs(device=device)
    options = dict(delta_v=0.3, delta_d=0.9, alpha=1.0, beta=0.7, gamma=0.01, normalise=normalise)
    got = discriminative_loss(emb, labels, **options)
    want = reference_discriminative(emb.cpu().numpy(), TINY_LABELS, **options)
    assert got.item() == pytest.approx(want, abs=1e-5)


def test_sampled_pairwise_estimates_the_full_loss():
    emb, labels = tiny_inputs(seed=1)
    full = pairwise_loss(emb, labels, n_pixels=None).item()
    draws = [
        pairwise_loss(emb, labels, n_pixels=200, generator=torch.Generator().manual_seed(s)).item()
        for s in range(20)
    ]
    assert np.mean(draws) == pytest.approx(full, rel=0.05)


def test_pairwise_draw_is_deterministic_given_a_generator():
    emb, labels = tiny_inputs()

    def draw(seed):
        return pairwise_loss(
            emb, labels, n_pixels=64, generator=torch.Generator().manual_seed(seed)
        )

    assert draw(5).item() == draw(5).item()
    assert draw(5).item() != draw(6).item()


# --- gradients ---------------------------------------------------------------------------


def _gradcheck_inputs():
    emb, labels = tiny_inputs(seed=2)
    emb = emb[:, :, :4, :5].clone().requires_grad_(True)
    return emb, labels[:, :4, :5].contiguous()


@pytest.mark.parametrize(
    "loss",
    [
        lambda e, lab: cosine_embedding_loss(e, lab, neighbour_radius=1.5),
        lambda e, lab: pairwise_loss(e, lab, n_pixels=None, alpha=0.6),
        lambda e, lab: pairwise_loss(
            e, lab, n_pixels=32, generator=torch.Generator().manual_seed(0)
        ),
        lambda e, lab: discriminative_loss(e, lab, delta_v=0.2, delta_d=1.0),
        lambda e, lab: discriminative_loss(e, lab, delta_v=0.1, delta_d=0.6, normalise=True),
    ],
    ids=["cosine", "pairwise-all", "pairwise-sampled", "discriminative", "discriminative-unit"],
)
def test_gradients_match_finite_differences(loss):
    emb, labels = _gradcheck_inputs()
    assert torch.autograd.gradcheck(lambda e: loss(e, labels), (emb,), eps=1e-6, atol=1e-5)


# --- behaviour ---------------------------------------------------------------------------


def touching_blocks(size: int = 24) -> torch.Tensor:
    """(2, size, size) labels: a 2x3 grid of touching blocks inside a background border."""
    labels = torch.zeros(2, size, size, dtype=torch.int64)
    step = (size - 4) // 3
    for label, (row, col) in enumerate(itertools.product(range(2), range(3)), start=1):
        rows = slice(2 + row * step, 2 + (row + 1) * step)
        cols = slice(2 + col * step, 2 + (col + 1) * step)
        labels[:, rows, cols] = label
    labels[1] = labels[1].T.clone()  # a different layout in the second image
    return labels


def instance_directions(emb: torch.Tensor, labels: torch.Tensor) -> list[torch.Tensor]:
    """Per image, the unit mean direction of each label 0..max, shape (L, D)."""
    directions = []
    for unit, image in zip(F.normalize(emb, dim=1), labels, strict=True):
        means = [unit[:, image == i].mean(1) for i in range(int(image.max()) + 1)]
        directions.append(F.normalize(torch.stack(means), dim=1))
    return directions


def touching_pairs(labels: torch.Tensor) -> set[tuple[int, int, int]]:
    """(image, a, b) for labels that share a 4-connected edge."""
    pairs = set()
    for a, b in ((labels[:, 1:], labels[:, :-1]), (labels[:, :, 1:], labels[:, :, :-1])):
        for image, i, j in zip(*torch.nonzero(a != b, as_tuple=True), strict=True):
            pair = sorted((int(a[image, i, j]), int(b[image, i, j])))
            pairs.add((int(image), *pair))
    return pairs


def test_perfect_embedding_costs_nothing_and_a_collapsed_one_a_lot():
    labels = touching_blocks(12)
    perfect = F.one_hot(labels, 8).permute(0, 3, 1, 2).double()
    collapsed = torch.ones_like(perfect)
    assert cosine_embedding_loss(perfect, labels, neighbour_radius=3).item() < 1e-6
    assert pairwise_loss(perfect, labels, n_pixels=None).item() < 1e-6
    assert discriminative_loss(3 * perfect, labels).item() < 0.01  # only gamma * |mean|
    assert cosine_embedding_loss(collapsed, labels, neighbour_radius=3).item() > 0.9
    assert pairwise_loss(collapsed, labels, n_pixels=None).item() > 0.3
    assert discriminative_loss(collapsed, labels).item() > 5


@pytest.mark.parametrize(
    ("name", "options", "factor"),
    [
        ("cosine", {"neighbour_radius": 2}, 50),  # seen: ~350x
        ("pairwise", {"n_pixels": 256}, 5),  # seen: 15-25x; the draw is noisy
        ("discriminative", {"delta_v": 0.2, "delta_d": 0.75, "normalise": True}, 50),  # ~500x
    ],
)
def test_training_a_free_embedding_separates_touching_instances(name, options, factor):
    """100 Adam steps from a nearly collapsed start; evaluated exactly (all pixel pairs)."""
    torch.manual_seed(0)
    labels = touching_blocks()
    emb = (1 + 0.3 * torch.randn(2, 8, *labels.shape[1:])).requires_grad_(True)
    if name == "pairwise":
        train_loss = make_loss(name, **options, generator=torch.Generator().manual_seed(0))
        exact_loss = make_loss(name, n_pixels=None)
    else:
        train_loss = exact_loss = make_loss(name, **options)
    before = exact_loss(emb, labels).item()
    optimiser = torch.optim.Adam([emb], lr=0.1)
    for _ in range(100):
        optimiser.zero_grad()
        train_loss(emb, labels).backward()
        optimiser.step()
    after = exact_loss(emb, labels).item()
    assert after < before / factor, (before, after)
    directions = instance_directions(emb.detach(), labels)
    cosines = [float(directions[b][i] @ directions[b][j]) for b, i, j in touching_pairs(labels)]
    assert max(cosines) < 0.5, cosines


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_ignored_pixels_change_nothing(name):
    emb, labels = tiny_inputs()
    emb.requires_grad_(True)
    ignore = torch.rand(labels.shape, generator=torch.Generator().manual_seed(0)) < 0.3
    loss = make_loss(name, **cheap_options(name))
    reference = loss(emb, labels, ignore)
    reference.backward()
    assert torch.all(emb.grad.permute(1, 0, 2, 3)[:, ignore] == 0)

    other_emb = torch.where(ignore[:, None], 5 * torch.randn_like(emb), emb)
    other_labels = torch.where(ignore, -1, labels)  # unannotated pixels may hold anything
    loss = make_loss(name, **cheap_options(name))  # the same draw again
    assert loss(other_emb, other_labels, ignore).item() == pytest.approx(
        reference.item(), abs=1e-12
    )


@pytest.mark.parametrize("name", sorted(LOSSES))
@pytest.mark.parametrize(
    ("labels", "ignore"),
    [
        (torch.zeros(2, 6, 7, dtype=torch.int64), None),
        (torch.as_tensor(TINY_LABELS), torch.ones(2, 6, 7, dtype=torch.bool)),
    ],
    ids=["background-only", "all-ignored"],
)
@pytest.mark.parametrize("background_is_instance", [True, False])
def test_empty_images_give_a_zero_with_a_gradient(name, labels, ignore, background_is_instance):
    emb = torch.randn(2, 3, 6, 7, requires_grad=True)
    loss = LOSSES[name](emb, labels, ignore=ignore, background_is_instance=background_is_instance)
    assert loss.item() == 0
    assert loss.grad_fn is not None
    loss.backward()
    assert torch.all(emb.grad == 0)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_a_batch_averages_its_images(name):
    """Images with different instance counts (one of them empty) mix in a batch."""
    emb, labels = tiny_inputs(dim=4)
    labels = torch.cat([labels, torch.zeros_like(labels[:1])])
    emb = torch.cat([emb, torch.randn_like(emb[:1])])
    options = {"n_pixels": None} if name == "pairwise" else {}
    loss = make_loss(name, **options)
    singles = [loss(emb[b : b + 1], labels[b : b + 1]).item() for b in range(2)]
    assert loss(emb, labels).item() == pytest.approx(np.mean(singles), abs=1e-9)


def test_sampled_pairwise_memory_does_not_grow_with_the_image():
    emb = torch.randn(1, 16, 512, 512, requires_grad=True)
    labels = torch.zeros(1, 512, 512, dtype=torch.int64)
    labels[:, 100:300, 100:300], labels[:, 300:400, 50:450] = 1, 2
    start = time.perf_counter()
    loss = pairwise_loss(emb, labels, n_pixels=1024, generator=torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss)
    assert time.perf_counter() - start < 10  # all 2.6e5 ** 2 pairs would need 270 GB


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_loss_is_float32_under_autocast(name):
    emb, labels = tiny_inputs(dtype=torch.float32)
    loss = make_loss(name, **({"n_pixels": None} if name == "pairwise" else {}))
    plain = loss(emb, labels)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cast = loss(emb, labels)
        half = loss(emb.bfloat16(), labels)
    assert cast.dtype == half.dtype == torch.float32
    assert cast.item() == pytest.approx(plain.item(), rel=1e-6)
    assert half.item() == pytest.approx(plain.item(), rel=0.05)


# --- dispatch and input checks -----------------------------------------------------------


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_make_loss_fixes_options(name):
    emb, labels = tiny_inputs()
    options = {"n_pixels": None} if name == "pairwise" else {}
    loss = LossConfig(name, options).build()
    assert loss(emb, labels).item() == LOSSES[name](emb, labels, **options).item()


def test_make_loss_rejects_unknown_names_and_options():
    with pytest.raises(ValueError, match="unknown loss"):
        make_loss("triplet")
    with pytest.raises(ValueError, match="bad options"):
        make_loss("cosine", neighbor_radius=3)
    with pytest.raises(ValueError, match="each call"):
        make_loss("cosine", ignore=None)


@pytest.mark.parametrize(
    ("emb", "labels", "match"),
    [
        (torch.randn(2, 3, 6, 7), torch.zeros(2, 6, 6, dtype=torch.int64), "do not match"),
        (torch.randn(2, 3, 6, 7), torch.zeros(2, 6, 7), "integers"),
        (torch.randn(2, 3, 6, 7), -torch.ones(2, 6, 7, dtype=torch.int64), "non-negative"),
    ],
)
def test_bad_inputs_are_explained(emb, labels, match):
    for fn in LOSSES.values():
        with pytest.raises(ValueError, match=match):
            fn(emb, labels)


def test_bad_options_are_explained():
    emb, labels = tiny_inputs()
    with pytest.raises(ValueError, match="neighbour_radius"):
        cosine_embedding_loss(emb, labels, neighbour_radius=-1)
    with pytest.raises(ValueError, match="n_pixels"):
        pairwise_loss(emb, labels, n_pixels=1)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_several_embeddings_of_one_batch_score_the_mean_of_their_losses(name):
    """One call for every stack of the network (the labels' work done once) is the mean."""
    torch.manual_seed(3)
    labels = torch.randint(0, 6, (2, 6, 6)).repeat_interleave(4, 1).repeat_interleave(4, 2)
    ignore = torch.rand(2, 24, 24) < 0.2
    embs = [torch.randn(2, 8, 24, 24, requires_grad=True) for _ in range(3)]
    options = {"n_pixels": None} if name == "pairwise" else {}  # every pixel: no draw
    together = make_loss(name, **options)(embs, labels, ignore)
    each = [LOSSES[name](e, labels, ignore=ignore, **options) for e in embs]
    torch.testing.assert_close(together, torch.stack(each).mean())
    together.backward()
    assert all(e.grad is not None and e.grad.abs().sum() > 0 for e in embs)


# --- which instances are neighbours -----------------------------------------------------


def _brute_force_neighbours(index: np.ndarray, k: int, radius: float) -> np.ndarray:
    """(B, K, K): slots with some pair of pixels at most ``radius`` apart, from every pair."""
    batch = index.shape[0]
    coords = np.argwhere(np.ones(index.shape[1:], bool)).astype(float)
    dist = np.sqrt(((coords[:, None] - coords[None]) ** 2).sum(-1))
    close = (dist <= radius) & (dist > 0)
    out = np.zeros((batch, k, k), bool)
    for b in range(batch):
        flat = index[b].reshape(-1)
        i, j = np.nonzero(close)
        a, c = flat[i], flat[j]
        keep = (a < k) & (c < k) & (a != c)
        out[b, a[keep], c[keep]] = True
    return out


@pytest.mark.parametrize("radius", [1.0, 1.5, 2.5, 5.0, 10.0])
@pytest.mark.parametrize("shape", [(2, 23, 29), (1, 3, 9, 11)])
def test_neighbour_slots_match_every_pixel_pair(radius, shape):
    """Looking only at the pixels on an instance's edge finds exactly the pairs that a
    comparison of every pair of pixels finds: blobs, thin and diagonal ones, ignored pixels
    (no slot) between them, instances touching the image's border."""
    from napari_cosine_embed.core._slots import neighbour_slots, prepare

    rng = np.random.default_rng(int(radius * 10) + len(shape))
    labels = np.zeros(shape, np.int64)
    grids = np.indices(shape[1:])
    for b in range(shape[0]):
        for i in range(1, 9):
            centre = [rng.uniform(0, s) for s in shape[1:]]
            r = rng.uniform(1, 5)
            blob = sum((g - c) ** 2 for g, c in zip(grids, centre, strict=True)) <= r * r
            labels[b][blob] = i
        labels[b][(grids[-1] == 5 + b)] = 11  # a 1 px wide line across
    ignore = rng.random(shape) < 0.1
    emb = torch.randn(shape[0], 2, *shape[1:], dtype=torch.float64)
    _, slots = prepare(
        emb, torch.as_tensor(labels), torch.as_tensor(ignore), background_is_instance=True
    )
    got = neighbour_slots(slots, shape[1:], radius).numpy()
    want = _brute_force_neighbours(slots.index.reshape(shape).numpy(), slots.n_slots, radius)
    assert want.any()
    np.testing.assert_array_equal(got, want)
