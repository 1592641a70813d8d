"""Differentiable recurrent grouping: Gaussian-blurring mean shift on the unit sphere.

Kong & Fowlkes, "Recurrent Pixel Embedding for Instance Grouping" (CVPR 2018), unroll a few
iterations of blurring mean shift with a von Mises-Fisher kernel on top of the embedding network:
every pixel embedding moves to the kernel-weighted mean of all embeddings and is projected back on
the sphere,

    X <- normalise(X K D^-1),   K_ij = exp(kappa x_i . x_j),   D = diag(sum_j K_ij),

with ``kappa = 1 / bandwidth``. Embeddings of one object contract towards a common direction, so a
loss applied after every iteration trains the network to produce embeddings that cluster easily,
and at inference the contracted embeddings are trivial to group.

Bounded memory
--------------
K has N x N entries for N pixels (6.9e10 for a 512 x 512 frame), so it is never formed. Two
measures bound the memory:

* **Anchors.** The kernel's columns are restricted to M <= ``max_anchors`` of the pixels being
  grouped (the foreground when a mask is given), drawn at random once per call. Every pixel moves
  to the kernel-weighted mean of the anchors' current positions, and the anchors move with
  everybody else; with N <= ``max_anchors`` this is exact blurring mean shift, otherwise a
  consistent estimate of it. An object of fewer than about N / M pixels may get no anchor and be
  pulled towards a neighbour: give a foreground mask (fewer pixels to group) or a larger M.
* **Chunks.** Pixels are shifted ``chunk_size`` at a time, so at most ``chunk_size x M`` kernel
  entries exist at once. When gradients are needed each chunk is wrapped in activation
  checkpointing: the backward pass recomputes the chunk's kernel instead of keeping it, so
  training memory is ``O(iterations * N * D + chunk_size * M)`` too.

Row-normalising ``exp(kappa x_i . a_j)`` is a softmax over anchors, computed stably for any kappa.
Cost per iteration is ``N * M * D`` multiply-adds plus ``N * M`` exponentials, in matrix products;
on a GPU a larger ``chunk_size`` (fewer Python-level chunks) and M = N are affordable.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint


def _shift(points: torch.Tensor, anchors: torch.Tensor, kappa: float) -> torch.Tensor:
    """Move (n, D) unit points to the vMF-weighted mean of (M, D) anchors, back on the sphere."""
    weights = torch.softmax(kappa * (points @ anchors.T), dim=1)  # K D^-1, (n, M)
    return F.normalize(weights @ anchors, dim=1)


class RecurrentMeanShift(nn.Module):
    """K unrolled blurring mean-shift iterations on the sphere (no learnable parameters).

    Parameters
    ----------
    iterations : int
        Number K of unrolled iterations.
    bandwidth : float
        Kernel bandwidth; the vMF concentration is ``kappa = 1 / bandwidth``. Two embeddings at
        cosine similarity ``c`` pull on each other with relative weight ``exp((c - 1) / bandwidth)``.
    max_anchors : int
        Most pixels used as kernel centres (see the module docstring).
    chunk_size : int
        Pixels shifted at once; memory holds ``chunk_size * max_anchors`` kernel entries.

    Examples
    --------
    >>> grouping = RecurrentMeanShift(iterations=3, bandwidth=0.2)
    >>> steps = grouping(torch.randn(1, 8, 32, 32))
    >>> len(steps), tuple(steps[-1].shape)
    (3, (1, 8, 32, 32))
    """

    def __init__(
        self,
        iterations: int = 3,
        bandwidth: float = 0.1,
        *,
        max_anchors: int = 1024,
        chunk_size: int = 8192,
    ) -> None:
        super().__init__()
        if iterations < 1 or bandwidth <= 0 or max_anchors < 1 or chunk_size < 1:
            raise ValueError(
                "need iterations >= 1, bandwidth > 0, max_anchors >= 1 and chunk_size >= 1, got "
                f"{iterations}, {bandwidth}, {max_anchors}, {chunk_size}"
            )
        self.iterations = iterations
        self.kappa = 1.0 / bandwidth
        self.max_anchors = max_anchors
        self.chunk_size = chunk_size

    def extra_repr(self) -> str:
        return (
            f"iterations={self.iterations}, bandwidth={1 / self.kappa:g}, "
            f"max_anchors={self.max_anchors}, chunk_size={self.chunk_size}"
        )

    def _anchors(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        """Indices (M,) of the anchors among n points: all, or ``max_anchors`` drawn at random."""
        if n <= self.max_anchors:
            return torch.arange(n)
        return torch.randperm(n, generator=generator)[: self.max_anchors].sort().values

    def _step(self, points: torch.Tensor, anchor_idx: torch.Tensor) -> torch.Tensor:
        """One iteration for (n, D) unit points, chunk by chunk."""
        anchors = points[anchor_idx]
        use_checkpoint = torch.is_grad_enabled() and points.requires_grad
        chunks = []
        for chunk in points.split(self.chunk_size):
            if use_checkpoint:
                chunks.append(checkpoint(_shift, chunk, anchors, self.kappa, use_reentrant=False))
            else:
                chunks.append(_shift(chunk, anchors, self.kappa))
        return torch.cat(chunks)

    def _iterate(
        self, points: torch.Tensor, mask: torch.Tensor | None, generator: torch.Generator | None
    ) -> list[torch.Tensor]:
        """The K iterations for the (N, D) points of one image; pixels outside mask (N,) stay."""
        selected = None if mask is None else mask.nonzero().squeeze(1)
        moving = points if selected is None else points[selected]
        anchor_idx = self._anchors(moving.shape[0], generator).to(points.device)
        steps = []
        for _ in range(self.iterations):
            if moving.shape[0] > 0:
                moving = self._step(moving, anchor_idx)
            steps.append(moving if selected is None else points.index_copy(0, selected, moving))
        return steps

    def forward(
        self,
        embeddings: torch.Tensor,
        mask: torch.Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> list[torch.Tensor]:
        """Run the iterations.

        Parameters
        ----------
        embeddings : Tensor of shape (B, D, ...)
            Embeddings, normalised here first; any trailing pixel axes, e.g. (B, D, Y, X), or
            (B, D, N) for a set of pixels sampled by the caller.
        mask : bool Tensor of shape (B, ...), optional
            Pixels to group, e.g. the foreground: only they move and serve as anchors; the others
            keep their normalised input. None: all pixels.
        generator : torch.Generator, optional
            CPU generator for drawing anchors, for reproducible results.

        Returns
        -------
        list of Tensor, each of shape (B, D, ...)
            Unit-norm embeddings after each of the K iterations (differentiable when the input
            requires grad).
        """
        shape = embeddings.shape
        points = F.normalize(embeddings.flatten(2), dim=1).transpose(1, 2).contiguous()  # (B, N, D)
        per_image = [
            self._iterate(p, None if mask is None else mask[b].flatten(), generator)
            for b, p in enumerate(points)
        ]
        return [
            torch.stack(step).transpose(1, 2).reshape(shape)
            for step in zip(*per_image, strict=True)
        ]
