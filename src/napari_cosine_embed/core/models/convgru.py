"""Convolutional GRU cell and the convolution it is built from.

The ConvGRU (Ballas et al., ICLR 2016) is a GRU whose matrix products are convolutions, so its
hidden state is an image: each pixel remembers what it saw in the previous frames of the movie.
"""

from __future__ import annotations

import torch
from torch import nn


def conv2d(
    in_ch: int, out_ch: int, kernel_size: int = 3, *, separable: bool = False, bias: bool = True
) -> nn.Module:
    """A 'same'-padded convolution, optionally depthwise-separable.

    Parameters
    ----------
    in_ch, out_ch : int
        Input and output channels.
    kernel_size : int
        Odd spatial size of the kernel.
    separable : bool
        Factor the convolution into a depthwise ``kernel_size`` convolution followed by a
        pointwise 1 x 1 convolution (``k*k*in + in*out`` weights instead of ``k*k*in*out``).
    bias : bool
        Whether the (last) convolution has a bias.

    Returns
    -------
    nn.Module
        Maps a tensor of shape (B, in_ch, Y, X) to one of shape (B, out_ch, Y, X).
    """
    if kernel_size % 2 != 1:
        raise ValueError(f"kernel_size must be odd, got {kernel_size}")
    pad = kernel_size // 2
    if not separable or kernel_size == 1:
        return nn.Conv2d(in_ch, out_ch, kernel_size, padding=pad, bias=bias)
    return nn.Sequential(
        nn.Conv2d(in_ch, in_ch, kernel_size, padding=pad, groups=in_ch, bias=False),
        nn.Conv2d(in_ch, out_ch, 1, bias=bias),
    )


class ConvGRUCell(nn.Module):
    """One step of a convolutional GRU.

    ``z, r = sigmoid(conv([x, h]))``, ``c = tanh(conv([x, r * h]))``, ``h' = (1 - z) h + z c``.

    Parameters
    ----------
    in_ch : int
        Channels of the input x.
    hidden_ch : int
        Channels of the hidden state h (and of the output, which is the new hidden state).
    kernel_size : int
        Odd spatial size of the gate and candidate convolutions.
    separable : bool
        Use depthwise-separable convolutions (see :func:`conv2d`).
    """

    def __init__(
        self, in_ch: int, hidden_ch: int, kernel_size: int = 3, *, separable: bool = False
    ) -> None:
        super().__init__()
        self.hidden_ch = hidden_ch
        self.gates = conv2d(in_ch + hidden_ch, 2 * hidden_ch, kernel_size, separable=separable)
        self.candidate = conv2d(in_ch + hidden_ch, hidden_ch, kernel_size, separable=separable)

    def zero_state(self, x: torch.Tensor) -> torch.Tensor:
        """Hidden state of zeros matching ``x`` of shape (B, in_ch, Y, X) -> (B, hidden_ch, Y, X)."""
        b, _, y, x_ = x.shape
        return x.new_zeros((b, self.hidden_ch, y, x_))

    def forward(self, x: torch.Tensor, h: torch.Tensor | None = None) -> torch.Tensor:
        """Advance the state by one frame.

        Parameters
        ----------
        x : Tensor of shape (B, in_ch, Y, X)
            Input at this frame.
        h : Tensor of shape (B, hidden_ch, Y, X), optional
            Hidden state after the previous frame; None means zeros (the first frame).

        Returns
        -------
        Tensor of shape (B, hidden_ch, Y, X)
            The new hidden state, which is also the cell's output.
        """
        if h is None:
            h = self.zero_state(x)
        update, reset = torch.sigmoid(self.gates(torch.cat([x, h], dim=1))).chunk(2, dim=1)
        candidate = torch.tanh(self.candidate(torch.cat([x, reset * h], dim=1)))
        return torch.lerp(h, candidate, update)
