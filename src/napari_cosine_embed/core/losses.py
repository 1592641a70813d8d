"""Instance-embedding losses: cosine (Payer et al. 2018), pairwise (Kong & Fowlkes 2018) and
discriminative (De Brabandere et al. 2017).

All take the raw network output ``emb`` of shape (B, D, *S) (S: spatial axes, usually (Y, X)),
instance ``labels`` of shape (B, *S) with 0 = background, and an optional boolean ``ignore``
mask of shape (B, *S) for unannotated pixels, which take no part at all. Each image's pixels
are grouped into K "slots", one per instance present (background included where it counts as
an instance), and every term is a scatter-sum or a batched matmul over slots: nothing loops over
pixels or instances. Losses are computed in float32 (float64 stays float64), also under
autocast. An image without annotated foreground contributes nothing and the batch loss is the
mean over the others; if no image has any, the result is a zero still connected to ``emb``, so
a training step can always call ``backward``.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ._slots import (
    batch_mean,
    gram_layout,
    mean_over_slots,
    neighbour_slots,
    prepare,
    slot_grams,
    slot_sum,
)

__all__ = [
    "LOSSES",
    "LossConfig",
    "cosine_embedding_loss",
    "discriminative_loss",
    "make_loss",
    "pairwise_loss",
]

LossFn = Callable[..., Tensor]

# Below this squared length a vector's norm is treated as constant, so that a collapsed
# embedding (two equal cluster means, a pixel sitting on its mean) has a zero gradient
# instead of the NaN of d|v|/dv at v = 0.
_NORM_EPS = 1e-12


def _safe_norm(v: Tensor) -> Tensor:
    """Euclidean norm over the last axis with a finite gradient at 0."""
    return v.square().sum(-1).clamp_min(_NORM_EPS).sqrt()


def _full_precision(emb: Tensor) -> torch.autocast:
    """A region where autocast is off, so the loss is computed in the dtype we choose."""
    return torch.autocast(emb.device.type, enabled=False)


def cosine_embedding_loss(
    emb: Tensor | Sequence[Tensor],
    labels: Tensor,
    *,
    neighbour_radius: float = 5.0,
    ignore: Tensor | None = None,
    background_is_instance: bool = True,
) -> Tensor:
    """Cosine embedding loss of Payer et al. 2018.

    Embeddings are normalised to unit length. For each instance i with mean direction m_i
    (the normalised mean of its unit embeddings) the loss adds an intra term
    ``1 - mean_{p in i} cos(e_p, m_i)`` and an inter term, the mean of ``cos(e_p, m_i)**2``
    over all pixels p of the neighbouring instances, which pushes neighbours to be orthogonal.
    Two instances are neighbours when some of their pixels lie within ``neighbour_radius``
    (Euclidean, in pixels) of each other; far-apart instances may share a direction, which is
    what lets a D-dimensional embedding separate many more than D instances. The image loss is
    the mean of (intra + inter) over its instances, and the batch loss the mean over images.

    Parameters
    ----------
    emb : Tensor of shape (B, D, *S), or a sequence of them
        Raw network output; S are the spatial axes, (Y, X) or (T, Y, X) for a stack of frames
        (the neighbourhood is then a ball across frames too). Several embeddings of the same
        images (one per stack of the network) give the mean of their losses; what depends on
        the labels alone (instances, neighbours) is then worked out once.
    labels : Tensor of shape (B, *S), integer
        Instance ids, 0 = background; under ``ignore`` any value (say -1) is accepted.
    neighbour_radius : float, keyword-only
        Distance r_N within which two instances are neighbours; ``1`` means 4-connected
        touching, ``sqrt(2)`` 8-connected. The cost grows with r_N ** len(S).
    ignore : Tensor of shape (B, *S), bool, optional
        Pixels without annotation: they take part in no term and in no neighbourhood.
    background_is_instance : bool, keyword-only
        If true (the paper's choice) the background is one more instance, with its own terms,
        and a neighbour of every instance it comes near. If false, background pixels are
        treated like ignored ones and the network needs another cue for foreground.

    Returns
    -------
    Tensor of shape ()
        The loss, float32 (float64 for float64 input).

    Examples
    --------
    >>> emb = torch.randn(2, 8, 32, 32, requires_grad=True)
    >>> labels = torch.zeros(2, 32, 32, dtype=torch.int64)
    >>> labels[:, 4:14, 4:14], labels[:, 14:24, 10:20] = 1, 2
    >>> loss = cosine_embedding_loss(emb, labels, neighbour_radius=3)
    >>> loss.backward()
    """
    if neighbour_radius < 0:
        raise ValueError(f"neighbour_radius must be >= 0, got {neighbour_radius}")
    embs = [emb] if isinstance(emb, Tensor) else list(emb)
    if not embs:
        raise ValueError("no embedding to score")
    with _full_precision(embs[0]):
        slots = near = layout = None
        total = []
        for e in embs:
            x, slots = prepare(
                e, labels, ignore, background_is_instance=background_is_instance, slots=slots
            )
            x = F.normalize(x, dim=-1)
            sums = slot_sum(x, slots)  # (B, K, D)
            means = F.normalize(sums, dim=-1)
            # The mean cosine of an instance's pixels to its own direction is |sum| / size.
            intra = 1 - (sums * means).sum(-1) / slots.size.clamp_min(1)
            # spread[b, j, i]: sum over the pixels of instance j of cos^2 to the direction of
            # i, = m_i^T G_j m_i with G_j the sum of instance j's outer products e_p e_p^T.
            if layout is None:
                layout = gram_layout(slots)
                near = neighbour_slots(slots, tuple(labels.shape[1:]), neighbour_radius)
                near = near.to(x.dtype)
            grams = slot_grams(x, slots, layout)  # (B, K, D, D)
            spread = torch.einsum("bjde,bie,bid->bji", grams, means, means)
            inter = (spread * near).sum(1) / (slots.size[:, :, None] * near).sum(1).clamp_min(1)
            total.append(batch_mean(mean_over_slots(intra + inter, slots), slots))
        return total[0] if len(total) == 1 else torch.stack(total).mean()


def _sample_pixels(weight: Tensor, n: int, generator: torch.Generator | None) -> Tensor:
    """Draw (B, n) pixel indices, with replacement, with probability proportional to weight.

    ``weight`` of shape (B, N) is non-negative; a row of zeros yields arbitrary indices, which
    the caller masks out.
    """
    cdf = weight.double().cumsum(1)
    draw = torch.rand(
        weight.shape[0], n, generator=generator, device=weight.device, dtype=torch.float64
    )
    pick = torch.searchsorted(cdf, draw * cdf[:, -1:], right=True)
    return pick.clamp_max(weight.shape[1] - 1)


def _pair_terms(x: Tensor, slot: Tensor, pixel: Tensor, weight: Tensor, *, alpha: float) -> Tensor:
    """Weighted mean pair cost of each image, shape (B,).

    ``x`` (B, n, D) holds unit embeddings of n chosen pixels, ``slot`` and ``pixel`` (B, n) their
    instance slots and pixel indices (a pixel is never paired with itself), ``weight`` (B, n)
    their weights: a pair weighs the product of its two.
    """
    similarity = (1 + x @ x.transpose(1, 2)) / 2
    same = slot[:, :, None] == slot[:, None, :]
    cost = torch.where(same, 1 - similarity, (similarity - alpha).clamp_min(0))
    pair_weight = weight[:, :, None] * weight[:, None, :]
    pair_weight = pair_weight * (pixel[:, :, None] != pixel[:, None, :])
    total = pair_weight.sum((1, 2)).clamp_min(torch.finfo(x.dtype).tiny)  # 0 / 0 -> 0
    return (pair_weight * cost).sum((1, 2)) / total


def pairwise_loss(
    emb: Tensor,
    labels: Tensor,
    *,
    alpha: float = 0.5,
    n_pixels: int | None = 1024,
    generator: torch.Generator | None = None,
    ignore: Tensor | None = None,
    background_is_instance: bool = True,
) -> Tensor:
    """Pairwise similarity loss of Kong & Fowlkes 2018.

    With unit embeddings and ``s = (1 + cos(x_p, x_q)) / 2``, a pair in the same instance
    costs ``1 - s`` and a pair in different instances ``max(s - alpha, 0)``. Each pixel weighs
    ``1 / |its instance|`` so every instance counts equally, a pair weighs the product of its
    two, and the image loss is the weighted mean over pairs of distinct pixels.

    All pairs of a whole image would need O(N**2) memory, so by default ``n_pixels`` pixels
    per image are drawn (with replacement) with probability proportional to their weight and
    all pairs among them are used, unweighted: an estimate of the same loss whose cost does not
    depend on the image size.

    Parameters
    ----------
    emb : Tensor of shape (B, D, *S)
        Raw network output.
    labels : Tensor of shape (B, *S), integer
        Instance ids, 0 = background.
    alpha : float, keyword-only
        Similarity below which different instances cost nothing; 0.5 means orthogonal.
    n_pixels : int or None, keyword-only
        Pixels drawn per image. None uses every pixel, exactly and deterministically, with
        memory B * N**2: meant for tiny inputs and tests.
    generator : torch.Generator, optional
        Source of the draw, on the device of ``emb``; the same seed gives the same loss.
    ignore : Tensor of shape (B, *S), bool, optional
        Pixels without annotation: never drawn.
    background_is_instance : bool, keyword-only
        If false, background pixels are treated like ignored ones.

    Returns
    -------
    Tensor of shape ()

    Examples
    --------
    >>> emb = torch.randn(2, 8, 64, 64, requires_grad=True)
    >>> labels = torch.zeros(2, 64, 64, dtype=torch.int64)
    >>> labels[:, 8:30, 8:30], labels[:, 30:50, 20:40] = 1, 2
    >>> loss = pairwise_loss(emb, labels, n_pixels=256, generator=torch.Generator().manual_seed(0))
    >>> loss.backward()
    """
    if n_pixels is not None and n_pixels < 2:
        raise ValueError(f"n_pixels must be at least 2 (or None for all), got {n_pixels}")
    with _full_precision(emb):
        x, slots = prepare(emb, labels, ignore, background_is_instance=background_is_instance)
        # Pixels weigh 1 / |instance|; those in the no-slot index K weigh 0.
        padded = F.pad(slots.size.to(x.dtype), (0, 1), value=math.inf)
        weight = 1 / padded.gather(1, slots.index)
        if n_pixels is None:
            pixel = torch.arange(x.shape[1], device=x.device).expand_as(weight)
        else:
            pixel = _sample_pixels(weight, n_pixels, generator)
            weight = weight.gather(1, pixel) > 0
        x = F.normalize(x.gather(1, pixel[:, :, None].expand(-1, -1, x.shape[2])), dim=-1)
        slot = slots.index.gather(1, pixel)
        per_image = _pair_terms(x, slot, pixel, weight.to(x.dtype), alpha=alpha)
        return batch_mean(per_image, slots)


def discriminative_loss(
    emb: Tensor,
    labels: Tensor,
    *,
    delta_v: float = 0.5,
    delta_d: float = 1.5,
    alpha: float = 1.0,
    beta: float = 1.0,
    gamma: float = 0.001,
    normalise: bool = False,
    ignore: Tensor | None = None,
    background_is_instance: bool = True,
) -> Tensor:
    """Discriminative loss of De Brabandere et al. 2017.

    With cluster means mu_c, per image: a variance term, the mean over clusters of the mean
    over their pixels of ``max(|mu_c - x_p| - delta_v, 0)**2``; a distance term, the mean over
    ordered pairs of distinct clusters of ``max(2 * delta_d - |mu_a - mu_b|, 0)**2``; and a
    regularisation term, the mean of ``|mu_c|``. The image loss is
    ``alpha * var + beta * dist + gamma * reg``, and the batch loss the mean over images.

    Parameters
    ----------
    emb : Tensor of shape (B, D, *S)
        Raw network output, used as is unless ``normalise``.
    labels : Tensor of shape (B, *S), integer
        Instance ids, 0 = background.
    delta_v, delta_d : float, keyword-only
        Pull margin around each mean and half the push margin between means. For unit
        embeddings (``normalise=True``) means are at most 2 apart, so pick delta_d <= 1.
    alpha, beta, gamma : float, keyword-only
        Weights of the variance, distance and regularisation terms.
    normalise : bool, keyword-only
        Normalise embeddings to unit length first.
    ignore : Tensor of shape (B, *S), bool, optional
        Pixels without annotation: they take no part.
    background_is_instance : bool, keyword-only
        If false, background pixels are treated like ignored ones.

    Returns
    -------
    Tensor of shape ()

    Examples
    --------
    >>> emb = torch.randn(2, 8, 32, 32, requires_grad=True)
    >>> labels = torch.zeros(2, 32, 32, dtype=torch.int64)
    >>> labels[:, 4:14, 4:14], labels[:, 14:24, 10:20] = 1, 2
    >>> discriminative_loss(emb, labels).backward()
    """
    with _full_precision(emb):
        x, slots = prepare(emb, labels, ignore, background_is_instance=background_is_instance)
        if normalise:
            x = F.normalize(x, dim=-1)
        means = slot_sum(x, slots) / slots.size.clamp_min(1)[:, :, None]  # (B, K, D)
        padded = F.pad(means, (0, 0, 0, 1))  # the no-slot index K reads a zero mean
        centre = padded.gather(1, slots.index[:, :, None].expand(-1, -1, x.shape[2]))
        pull = (_safe_norm(x - centre) - delta_v).clamp_min(0).square()
        pull = slot_sum(pull[:, :, None], slots)[:, :, 0] / slots.size.clamp_min(1)
        variance = mean_over_slots(pull, slots)
        push = (2 * delta_d - _safe_norm(means[:, :, None] - means[:, None])).clamp_min(0)
        pairs = slots.present[:, :, None] & slots.present[:, None, :]
        pairs = (pairs & ~torch.eye(slots.n_slots, dtype=torch.bool, device=x.device)).to(x.dtype)
        distance = (push.square() * pairs).sum((1, 2)) / pairs.sum((1, 2)).clamp_min(1)
        regular = mean_over_slots(_safe_norm(means), slots)
        per_image = alpha * variance + beta * distance + gamma * regular
        return batch_mean(per_image, slots)


LOSSES: dict[str, LossFn] = {
    "cosine": cosine_embedding_loss,
    "pairwise": pairwise_loss,
    "discriminative": discriminative_loss,
}


def make_loss(name: str, **options: Any) -> Callable[[Tensor, Tensor, Tensor | None], Tensor]:
    """The loss called ``name`` with its keyword options fixed.

    Parameters
    ----------
    name : {"cosine", "pairwise", "discriminative"}
    **options
        Keyword options of that loss (``ignore`` excepted); a misspelt one fails here, not at
        the first training step.

    Returns
    -------
    callable
        ``loss(emb, labels, ignore=None) -> Tensor of shape ()``; ``emb`` may be a sequence
        of embeddings of the same images (one per stack), scored by the mean of their losses.

    Examples
    --------
    >>> loss = make_loss("cosine", neighbour_radius=3)
    >>> emb, labels = torch.randn(1, 4, 16, 16), torch.zeros(1, 16, 16, dtype=torch.int64)
    >>> float(loss(emb, labels))
    0.0
    """
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose one of {sorted(LOSSES)}")
    if "ignore" in options:
        raise ValueError("ignore is given with each call, not fixed in make_loss")
    fn = LOSSES[name]
    try:
        inspect.signature(fn).bind(None, None, **options)
    except TypeError as error:
        raise ValueError(f"bad options for the {name} loss: {error}") from None

    def loss(
        emb: Tensor | Sequence[Tensor], labels: Tensor, ignore: Tensor | None = None
    ) -> Tensor:
        if isinstance(emb, Tensor) or fn is cosine_embedding_loss:
            return fn(emb, labels, ignore=ignore, **options)
        # several embeddings of the same images: the mean of their losses
        return torch.stack([fn(e, labels, ignore=ignore, **options) for e in emb]).mean()

    return loss


@dataclass(frozen=True)
class LossConfig:
    """Which loss to train with, and its options: plain data, saved with every checkpoint.

    Examples
    --------
    >>> config = LossConfig("discriminative", {"delta_v": 0.3, "normalise": True})
    >>> loss = config.build()
    """

    name: str = "cosine"
    options: dict[str, Any] = field(default_factory=dict)

    def build(self) -> Callable[[Tensor, Tensor, Tensor | None], Tensor]:
        """The loss function this config describes (see :func:`make_loss`)."""
        return make_loss(self.name, **self.options)
