"""A batch's pixels grouped by instance ("slots"), and the sums the embedding losses take over them.

Each image's pixels are numbered into K slots, one per instance present (the background one more
where it counts as an instance); pixels that take no part (ignored, or background when it does
not count) go to slot K, which every sum drops. Sums over slots are scatter-adds or small
batched matmuls, so nothing loops over pixels or instances. The neighbour relation of slots
(instances within a radius of each other) and the per-slot Gram matrices of the cosine loss live
here too. Used by :mod:`.losses`.
"""

from __future__ import annotations

import itertools
import math
from typing import NamedTuple

import torch
from torch import Tensor

__all__ = [
    "Slots",
    "batch_mean",
    "gram_layout",
    "mean_over_slots",
    "neighbour_slots",
    "number_slots",
    "prepare",
    "slot_grams",
    "slot_sum",
]


class Slots(NamedTuple):
    """Pixels of a batch grouped into per-image instance slots."""

    index: Tensor  # (B, N) int64: slot of each pixel in [0, K); K for pixels taking no part
    size: Tensor  # (B, K) float32: pixels per slot, 0 for slots an image does not use
    present: Tensor  # (B, K) bool: slots holding an instance (counts differ between images)
    has_foreground: Tensor  # (B,) bool: images with annotated foreground, the ones averaged

    @property
    def n_slots(self) -> int:
        return self.present.shape[1]


def prepare(
    emb: Tensor,
    labels: Tensor,
    ignore: Tensor | None,
    *,
    background_is_instance: bool,
    slots: Slots | None = None,
) -> tuple[Tensor, Slots]:
    """Validate the inputs; return the embeddings as (B, N, D), float32 or float64, and slots
    (``slots`` as given when the same labels were prepared before)."""
    if emb.ndim < 3 or labels.shape != emb.shape[:1] + emb.shape[2:]:
        raise ValueError(
            f"labels of shape {tuple(labels.shape)} do not match embeddings of shape "
            f"{tuple(emb.shape)}: expected (B, D, *S) embeddings and (B, *S) labels"
        )
    if labels.is_floating_point() or labels.is_complex():
        raise ValueError(f"labels must hold integers, not {labels.dtype}")
    if ignore is not None and ignore.shape != labels.shape:
        raise ValueError(f"ignore of shape {tuple(ignore.shape)} does not match the labels")
    batch = emb.shape[0]
    x = emb.to(torch.promote_types(emb.dtype, torch.float32)).reshape(batch, emb.shape[1], -1)
    if slots is not None:
        return x.transpose(1, 2).contiguous(), slots
    labels = labels.to(device=emb.device, dtype=torch.int64).reshape(batch, -1)
    valid = torch.ones_like(labels, dtype=torch.bool)
    if ignore is not None:
        valid = ~ignore.to(device=emb.device, dtype=torch.bool).reshape(batch, -1)
    if bool((labels[valid] < 0).any()):
        raise ValueError("labels must be non-negative (0 = background) where not ignored")
    if not background_is_instance:
        valid = valid & (labels > 0)
    return x.transpose(1, 2).contiguous(), number_slots(labels, valid)


def number_slots(labels: Tensor, valid: Tensor) -> Slots:
    """Number the instances of each image 0..K_b-1 from (B, N) labels and validity mask."""
    batch = labels.shape[0]
    # Keys image * stride + label order the instances by image, then by label. Pixels that
    # take no part may hold any label, even a negative one: their slot is overwritten below.
    stride = max(int(labels.max()), 0) + 1 if labels.numel() else 1
    image = torch.arange(batch, device=labels.device)
    key = image[:, None] * stride + labels
    keys = torch.unique(key[valid])  # sorted, so each image's keys are contiguous
    per_image = torch.bincount(keys // stride, minlength=batch)
    n_slots = int(per_image.max()) if batch else 0
    first = torch.cumsum(per_image, 0) - per_image
    index = torch.searchsorted(keys, key) - first[:, None]
    index = torch.where(valid, index, n_slots)
    size = torch.zeros(batch, n_slots + 1, device=labels.device)
    size = size.scatter_add(1, index, torch.ones_like(size[:, :1]).expand_as(index))[:, :n_slots]
    present = torch.arange(n_slots, device=labels.device) < per_image[:, None]
    has_foreground = (valid & (labels > 0)).any(1)
    return Slots(index, size, present, has_foreground)


def slot_sum(values: Tensor, slots: Slots) -> Tensor:
    """Sum per-pixel values within each slot: (B, N, C) -> (B, K, C)."""
    batch, _, channels = values.shape
    target = values.new_zeros(batch, slots.n_slots + 1, channels)
    index = slots.index[:, :, None].expand(-1, -1, channels)
    return target.scatter_add(1, index, values)[:, : slots.n_slots]


# Pixels per block of the slot Gram matrices: each slot's pixels fill whole blocks (the last
# padded with zeros), so the padding is under one block per slot.
_GRAM_BLOCK = 64


@torch.no_grad()
def gram_layout(slots: Slots, block: int = _GRAM_BLOCK) -> tuple[Tensor, Tensor, Tensor]:
    """Where each taking-part pixel goes when the slots' pixels are laid out in blocks.

    Returns the flat (B * N) indices of the pixels that take part, their rows in a padded
    (R * block) layout in which every block of ``block`` rows holds one slot's pixels, and
    the global slot (b * K + k) of each of the R blocks.
    """
    batch, n = slots.index.shape
    k = slots.n_slots
    index = slots.index.reshape(-1)
    pixel = torch.nonzero(index < k).squeeze(1)
    slot = torch.div(pixel, n, rounding_mode="floor") * k + index[pixel]
    slot, order = torch.sort(slot, stable=True)
    pixel = pixel[order]
    counts = torch.bincount(slot, minlength=batch * k)
    blocks = torch.div(counts + block - 1, block, rounding_mode="floor")
    start = torch.cumsum(counts, 0) - counts  # of each slot among the sorted pixels
    padded_start = (torch.cumsum(blocks, 0) - blocks) * block
    rank = torch.arange(len(slot), device=slot.device) - start[slot]
    row = padded_start[slot] + rank
    owner = torch.repeat_interleave(torch.arange(batch * k, device=slot.device), blocks)
    return pixel, row, owner


def slot_grams(x: Tensor, slots: Slots, layout: tuple[Tensor, Tensor, Tensor]) -> Tensor:
    """Per slot, the sum of outer products of its pixels' vectors: (B, N, D) -> (B, K, D, D).

    Pixels are grouped into blocks of one slot each and every block's Gram matrix is one
    small matmul, so the cost is O(N * D^2) whatever the number of instances (a per-pixel
    term against every instance would be O(N * K)).
    """
    batch, _, dim = x.shape
    k = slots.n_slots
    pixel, row, owner = layout  # gram_layout(slots), shared by the calls on one batch
    laid = x.new_zeros(len(owner) * _GRAM_BLOCK, dim)
    laid = laid.index_put((row,), x.reshape(-1, dim)[pixel])
    blocks = laid.reshape(len(owner), _GRAM_BLOCK, dim)
    grams = blocks.transpose(1, 2) @ blocks  # (R, D, D)
    total = x.new_zeros(batch * k, dim, dim).index_add(0, owner, grams)
    return total.reshape(batch, k, dim, dim)


def mean_over_slots(per_slot: Tensor, slots: Slots) -> Tensor:
    """Average a (B, K) value over each image's present slots: -> (B,)."""
    present = slots.present.to(per_slot.dtype)
    return (per_slot * present).sum(1) / present.sum(1).clamp_min(1)


def batch_mean(per_image: Tensor, slots: Slots) -> Tensor:
    """Average a (B,) value over the images that have foreground; 0 when none does."""
    weight = slots.has_foreground.to(per_image.dtype)
    return (per_image * weight).sum() / weight.sum().clamp_min(1)


def _ball_offsets(radius: float, ndim: int) -> list[tuple[int, ...]]:
    """Integer offsets o != 0 with |o| <= radius, one of each pair (o, -o)."""
    reach = math.floor(radius)
    span = range(-reach, reach + 1)
    return [
        o
        for o in itertools.product(span, repeat=ndim)
        if 0 < sum(c * c for c in o) <= radius * radius and o > (0,) * ndim
    ]


#: At most this many (pixel, offset) pairs are looked up at once by :func:`neighbour_slots`.
_PAIRS_PER_CHUNK = 1 << 22


def _edge_pixels(grid: Tensor) -> Tensor:
    """Pixels of ``grid`` (B, *S) with an axis neighbour of another value: (B, *S) bool."""
    edge = torch.zeros_like(grid, dtype=torch.bool)
    for axis in range(1, grid.ndim):
        n = grid.shape[axis]
        if n < 2:
            continue
        differs = grid.narrow(axis, 0, n - 1) != grid.narrow(axis, 1, n - 1)
        edge.narrow(axis, 0, n - 1).logical_or_(differs)
        edge.narrow(axis, 1, n - 1).logical_or_(differs)
    return edge


@torch.no_grad()
def neighbour_slots(slots: Slots, spatial: tuple[int, ...], radius: float) -> Tensor:
    """Which slots of an image come within ``radius`` pixels (Euclidean): (B, K, K) bool.

    Only pixels on the edge of their slot (an axis neighbour in another slot) are looked at:
    of the closest pair of pixels of two slots, each is on its slot's edge (a step from it
    towards the other would be closer still, so that step leaves its slot). Each edge pixel
    is paired with the pixel at every offset of a half ball (the other half is the same pairs
    seen from the other slot's edge) in one gather over a padded copy of the grid, so the
    work grows with the edge pixels times the ball, not with the image. Symmetric, diagonal
    false.
    """
    batch, k = slots.index.shape[0], slots.n_slots
    grid = slots.index.reshape(batch, *spatial)
    hit = torch.zeros(batch * (k + 1) ** 2, dtype=torch.bool, device=grid.device)
    offsets = _ball_offsets(radius, len(spatial))
    if offsets and grid.numel():
        reach = math.floor(radius)
        # slot k (taking no part) around the grid: an offset never leaves the padded copy
        padded = torch.nn.functional.pad(grid, [reach, reach] * len(spatial), value=k)
        strides = padded.stride()
        edge = _edge_pixels(grid) & (grid < k)
        where = edge.nonzero()  # (M, 1 + len(spatial)), row-major like grid[edge]
        flat = where[:, 0] * strides[0]
        for axis in range(1, where.shape[1]):
            flat = flat + (where[:, axis] + reach) * strides[axis]
        row = (where[:, 0] * (k + 1) + grid[edge]) * (k + 1)
        shifts = torch.tensor(
            [sum(o * s for o, s in zip(offset, strides[1:], strict=True)) for offset in offsets],
            dtype=torch.int64,
            device=grid.device,
        )
        cells = padded.reshape(-1)
        chunk = max(1, _PAIRS_PER_CHUNK // max(1, shifts.numel()))
        for lo in range(0, flat.numel(), chunk):
            partner = cells[flat[lo : lo + chunk, None] + shifts[None, :]]
            hit[(row[lo : lo + chunk, None] + partner).reshape(-1)] = True
    near = hit.reshape(batch, k + 1, k + 1)[:, :k, :k]
    near = near | near.transpose(1, 2)
    return near & ~torch.eye(k, dtype=torch.bool, device=grid.device)
