"""Recurrent stacked hourglass network that embeds every pixel of a frame.

The architecture follows Payer et al., "Instance Segmentation and Tracking with Cosine Embeddings
and Recurrent Hourglass Networks" (MICCAI 2018): each hourglass is a U-Net-like contracting and
expanding path with the same number of filters at every level, whose skip ("parallel") path is a
ConvGRU, so the embedding of a pixel at frame t depends on frames t-1, t-2, ... Several hourglasses
are stacked; each outputs an embedding, and the next one refines it from the image features.

Separating background from objects
----------------------------------
Payer et al. treat the background as one more instance. Grouping must then find that large,
diffuse cluster among the nuclei, and uncertain background pixels near a nucleus direction become
spurious objects. We add a foreground head instead: a 1 x 1 convolution of the last stack's
features to one logit per pixel, trained with binary cross-entropy. Its sigmoid is a mask that
thresholds robustly (a simple, per-pixel task that does not depend on where clusters land on the
sphere); grouping runs on foreground pixels only (fewer points, no background cluster to reject);
and the embedding loss can ignore the background and spend its capacity on separating touching
nuclei. It costs one 1 x 1 convolution; ``ModelConfig(foreground_head=False)`` removes it.

Efficiency
----------
Frames of any size are padded (mirroring the border) to a multiple of ``config.size_multiple``
and the outputs cropped back. With ``input_stride=2`` (the default) 2 x 2 pixel blocks are folded
into channels at the input and the heads' outputs unfolded back, so the hourglasses run at half
resolution while the embeddings keep full resolution. Everything is whole-tensor convolutions, so
the same code runs on a GPU; on a CPU, ``channels_last`` and ``torch.inference_mode`` help.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig
from .convgru import ConvGRUCell, conv2d

#: The recurrent state: the hidden state of each ConvGRU, stack by stack and coarse level last.
State = list[torch.Tensor]


class ModelOutput(NamedTuple):
    """What :class:`RecurrentStackedHourglass` returns for a frame (or a sequence)."""

    #: One raw (not normalised) embedding per stack, each (B, D, Y, X) (or (B, T, D, Y, X)).
    embeddings: list[torch.Tensor]
    #: The recurrent state after the (last) frame; empty when the model is not recurrent.
    state: State
    #: Foreground logits (B, 1, Y, X) (or (B, T, 1, Y, X)); None without a foreground head.
    foreground: torch.Tensor | None


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        groups = next(g for g in (8, 4, 2, 1) if channels % g == 0)
        return nn.GroupNorm(groups, channels)
    if kind == "instance":
        return nn.GroupNorm(channels, channels)
    return nn.Identity()


class ConvBlock(nn.Sequential):
    """3 x 3 convolution, optional normalisation, ReLU: (B, in_ch, Y, X) -> (B, out_ch, Y, X)."""

    def __init__(self, in_ch: int, out_ch: int, *, norm: str = "none", separable: bool = False):
        super().__init__(
            conv2d(in_ch, out_ch, 3, separable=separable, bias=norm == "none"),
            _norm(norm, out_ch),
            nn.ReLU(inplace=True),
        )
        for module in self.modules():
            if isinstance(module, nn.Conv2d) and module.groups == 1:
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)


class Hourglass(nn.Module):
    """One contracting/expanding path with a parallel path at every level.

    Level 0 is the input resolution, level ``levels - 1`` the coarsest. Going down, each level
    convolves and pools by 2; its parallel path (a ConvGRU for the levels in
    ``recurrent_levels``, a plain convolution otherwise) carries the features across. Going up,
    the coarser result is upsampled (nearest), merged with the parallel path and convolved.

    Parameters
    ----------
    in_ch, filters : int
        Input channels; channels at every level and of the output.
    levels : int
        Number of resolution levels.
    recurrent_levels : sequence of int
        Levels whose parallel path is a ConvGRU.
    norm, pooling, merge : str; separable : bool
        As in :class:`ModelConfig`.
    """

    def __init__(
        self,
        in_ch: int,
        filters: int,
        levels: int,
        *,
        recurrent_levels: tuple[int, ...] | list[int] = (),
        norm: str = "none",
        pooling: str = "avg",
        merge: str = "add",
        separable: bool = False,
    ) -> None:
        super().__init__()
        self.merge = merge
        self.pool = nn.AvgPool2d(2) if pooling == "avg" else nn.MaxPool2d(2)
        block = {"norm": norm, "separable": separable}
        self.down = nn.ModuleList(
            ConvBlock(in_ch if level == 0 else filters, filters, **block) for level in range(levels)
        )
        self.parallel = nn.ModuleList(
            ConvGRUCell(filters, filters, 3, separable=separable)
            if level in recurrent_levels
            else ConvBlock(filters, filters, **block)
            for level in range(levels)
        )
        up_in = filters if merge == "add" else 2 * filters
        self.up = nn.ModuleList(ConvBlock(up_in, filters, **block) for _ in range(levels - 1))

    def forward(
        self, x: torch.Tensor, hidden: State | list[None], *, state_only: bool = False
    ) -> tuple[torch.Tensor | None, State]:
        """Run one frame.

        Parameters
        ----------
        x : Tensor of shape (B, in_ch, Y, X)
            Y and X divisible by ``2 ** (levels - 1)``.
        hidden : list of Tensor or None, one per ConvGRU (fine to coarse)
            Hidden states after the previous frame (None: zeros).
        state_only : bool, keyword-only
            Compute only the new hidden states (the encoder and its ConvGRUs), not ``y``:
            what a warm-up frame, whose output nobody reads, needs of the last stack.

        Returns
        -------
        y : Tensor of shape (B, filters, Y, X), or None with ``state_only``
        new_hidden : list of Tensor, one per ConvGRU (fine to coarse)
        """
        hidden_in = iter(hidden)
        skips, new_hidden = [], []
        for level, (down, parallel) in enumerate(zip(self.down, self.parallel, strict=True)):
            x = down(x if level == 0 else self.pool(x))
            if isinstance(parallel, ConvGRUCell):
                skips.append(parallel(x, next(hidden_in)))
                new_hidden.append(skips[-1])
            elif not state_only:
                skips.append(parallel(x))
        if state_only:
            return None, new_hidden
        y = skips.pop()
        for up, skip in zip(reversed(self.up), reversed(skips), strict=True):
            y = F.interpolate(y, scale_factor=2.0, mode="nearest")
            y = up(y + skip if self.merge == "add" else torch.cat([y, skip], dim=1))
        return y, new_hidden


class RecurrentStackedHourglass(nn.Module):
    """S stacked hourglasses mapping a frame to S pixel embeddings (and a foreground logit).

    A stem convolution turns the frame into image features; the first hourglass takes them, every
    next one takes them concatenated with the previous stack's embedding. Each stack's output
    goes through its own 1 x 1 embedding head. See the module docstring for the foreground head.

    Parameters
    ----------
    config : ModelConfig
        The architecture; kept as ``self.config`` and saved by :meth:`to_checkpoint`.

    Examples
    --------
    >>> model = RecurrentStackedHourglass(ModelConfig(filters=8, levels=3, embedding_dim=4))
    >>> out = model(torch.zeros(1, 1, 61, 77))
    >>> [tuple(e.shape) for e in out.embeddings], tuple(out.foreground.shape)
    ([(1, 4, 61, 77), (1, 4, 61, 77)], (1, 1, 61, 77))
    >>> out = model(torch.zeros(1, 1, 61, 77), out.state)  # the next frame
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = c = config
        fold = c.input_stride**2
        self.stem = ConvBlock(c.in_channels * fold, c.filters, norm=c.norm)
        self.hourglasses = nn.ModuleList(
            Hourglass(
                c.filters if stack == 0 else c.filters + c.embedding_dim * fold,
                c.filters,
                c.levels,
                recurrent_levels=c.recurrent_levels(),
                norm=c.norm,
                pooling=c.pooling,
                merge=c.merge,
                separable=c.separable,
            )
            for stack in range(c.stacks)
        )
        self.embedding_heads = nn.ModuleList(
            nn.Conv2d(c.filters, c.embedding_dim * fold, 1) for _ in range(c.stacks)
        )
        self.foreground_head = nn.Conv2d(c.filters, fold, 1) if c.foreground_head else None

    def zero_state(self, batch: int, height: int, width: int, *, device=None, dtype=None) -> State:
        """The state before the first frame, as explicit zeros (equivalent to ``state=None``)."""
        c, m = self.config, self.config.size_multiple
        ph, pw = -(-height // m) * m // c.input_stride, -(-width // m) * m // c.input_stride
        return [
            torch.zeros(batch, c.filters, ph >> level, pw >> level, device=device, dtype=dtype)
            for _ in range(c.stacks)
            for level in c.recurrent_levels()
        ]

    def forward(
        self,
        frame: torch.Tensor,
        state: State | None = None,
        *,
        all_stacks: bool = True,
        state_only: bool = False,
    ) -> ModelOutput:
        """Embed one frame, given the state left by the previous one.

        Parameters
        ----------
        frame : Tensor of shape (B, in_channels, Y, X)
            Any Y, X (padded internally to ``config.size_multiple``, outputs cropped back).
        state : list of Tensor, optional
            ``output.state`` of the previous frame (same B, Y, X); None or
            :meth:`zero_state` at the first frame. Ignored (may be None) when not recurrent.
        all_stacks : bool, keyword-only
            Return every stack's embedding (training needs them all). False returns only the
            last stack's, the same values, and lets each intermediate result go as soon as it
            is used: embedding a 1024 x 1024 frame then peaks some 0.15 GB lower.
        state_only : bool, keyword-only
            Compute only the new state (a warm-up frame): the last stack stops after its
            ConvGRUs, and no embedding or foreground is made. About a fifth cheaper.

        Returns
        -------
        ModelOutput
            ``embeddings``: S raw embeddings of shape (B, D, Y, X) (only the last with
            ``all_stacks=False``); ``state``: the new state; ``foreground``: logits of shape
            (B, 1, Y, X), or None.
        """
        height, width = frame.shape[-2:]
        features = self.stem(self._fold(frame))
        x, folded, new_state = features, [], []
        last = len(self.hourglasses) - 1
        for stack, (hourglass, head, hidden) in enumerate(
            zip(self.hourglasses, self.embedding_heads, self._split_state(state), strict=True)
        ):
            if state_only and stack == last:
                new_state += hourglass(x, hidden, state_only=True)[1]
                return ModelOutput([], new_state, None)
            y, hidden = hourglass(x, hidden)
            new_state += hidden
            folded.append(head(y))
            if stack < last:  # the next stack's input: the image features and this embedding
                x = torch.cat([features, folded[-1]], dim=1)
                if not all_stacks:  # x holds all the next stack needs of them
                    folded[-1] = None
                    if stack + 1 == last:
                        features = None
        del x, features
        foreground = None if self.foreground_head is None else self.foreground_head(y)
        del y
        embeddings = [self._unfold(e, height, width) for e in folded if e is not None]
        del folded
        if foreground is not None:
            foreground = self._unfold(foreground, height, width)
        return ModelOutput(embeddings, new_state, foreground)

    def _fold(self, frame: torch.Tensor) -> torch.Tensor:
        """Pad (B, C, Y, X) to the size multiple, then fold 2 x 2 blocks into channels if asked."""
        m, stride = self.config.size_multiple, self.config.input_stride
        pad_x, pad_y = -frame.shape[-1] % m, -frame.shape[-2] % m
        # Mirroring keeps the noise and texture of the border natural; replicating the last row
        # makes streaks that the network reads as structure (false objects along the edge).
        # Reflection needs the pad to be smaller than the frame; tiny frames replicate.
        mode = "reflect" if pad_x < frame.shape[-1] and pad_y < frame.shape[-2] else "replicate"
        frame = F.pad(frame, (0, pad_x, 0, pad_y), mode=mode)
        return F.pixel_unshuffle(frame, stride) if stride > 1 else frame

    def _unfold(self, t: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """Inverse of :meth:`_fold` for a head's output: (B, C * stride^2, ...) -> (B, C, Y, X)."""
        stride = self.config.input_stride
        return (F.pixel_shuffle(t, stride) if stride > 1 else t)[..., :height, :width]

    def _split_state(self, state: State | None) -> list[State] | list[list[None]]:
        """The flat state as one list per stack (of None at the first frame)."""
        c, per_stack = self.config, len(self.config.recurrent_levels())
        if state is None or per_stack == 0:
            return [[None] * per_stack for _ in range(c.stacks)]
        if len(state) != per_stack * c.stacks:
            raise ValueError(
                f"state has {len(state)} tensors, the model needs {per_stack * c.stacks}"
            )
        return [list(state[i * per_stack : (i + 1) * per_stack]) for i in range(c.stacks)]

    def forward_sequence(
        self,
        frames: torch.Tensor,
        state: State | None = None,
        *,
        fresh: torch.Tensor | None = None,
        state_only: bool = False,
    ) -> ModelOutput:
        """Embed a movie frame by frame, carrying the state.

        Parameters
        ----------
        frames : Tensor of shape (B, T, in_channels, Y, X)
        state : list of Tensor, optional
            State before the first frame (None: zeros).
        fresh : int Tensor of shape (B,), keyword-only, optional
            Per clip, the frame at which its history begins: the state is zeros there, as at
            the first frame of a movie, whatever came before (padding frames of a clip that
            starts near the beginning of its movie). Values outside ``1..T-1`` change nothing.
        state_only : bool, keyword-only
            Only carry the state through (warm-up frames): no embeddings, no foreground.

        Returns
        -------
        ModelOutput
            ``embeddings``: S tensors of shape (B, T, D, Y, X); ``state``: after the last frame;
            ``foreground``: (B, T, 1, Y, X) or None.
        """
        outputs = []
        for t in range(frames.shape[1]):
            if state and fresh is not None and bool((fresh == t).any()):
                keep = (fresh != t).to(state[0].dtype).reshape(-1, *([1] * (state[0].ndim - 1)))
                state = [h * keep for h in state]
            outputs.append(self(frames[:, t], state, state_only=state_only))
            state = outputs[-1].state
        if state_only:
            return ModelOutput([], state, None)
        embeddings = [
            torch.stack(per_stack, dim=1)
            for per_stack in zip(*(o.embeddings for o in outputs), strict=True)
        ]
        foreground = None
        if self.foreground_head is not None:
            foreground = torch.stack([o.foreground for o in outputs], dim=1)
        return ModelOutput(embeddings, state, foreground)

    def to_checkpoint(self) -> dict:
        """``{"config": dict, "state_dict": ...}``, loadable with ``torch.load(weights_only=True)``."""
        return {"config": self.config.to_dict(), "state_dict": self.state_dict()}

    @classmethod
    def from_checkpoint(cls, checkpoint: dict) -> RecurrentStackedHourglass:
        """Rebuild the network saved by :meth:`to_checkpoint` (weights included)."""
        model = cls(ModelConfig.from_dict(checkpoint["config"]))
        model.load_state_dict(checkpoint["state_dict"])
        return model


def detach_state(state: State) -> State:
    """Cut the graph behind a state, for truncated backpropagation through time."""
    return [h.detach() for h in state]
