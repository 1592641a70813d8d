"""The typed configuration of the embedding network, stored inside every checkpoint.

A checkpoint holds ``{"config": ModelConfig.to_dict(), "state_dict": ...}``. ``to_dict`` returns
only ``str``, ``int`` and ``bool`` values, so ``torch.load(path, weights_only=True)`` reads it back
and ``ModelConfig.from_dict`` rebuilds the exact network that wrote it.
"""

from __future__ import annotations

import numbers
from dataclasses import asdict, dataclass, fields
from typing import Any

from ..limits import MODEL, check_choice, check_fields, check_flag

NORMS = ("none", "batch", "group", "instance")
POOLINGS = ("avg", "max")
MERGES = ("add", "concat")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a :class:`RecurrentStackedHourglass`.

    The defaults are the recommended network: 0.5 M parameters, 17 GFLOP for a 512 x 512 frame,
    which takes about 0.13 s on two CPU cores (``benchmarks/bench_model_forward.py``; the budget
    is 0.4 s). ``input_stride=1, filters=16`` keeps full resolution throughout for about the same
    cost, with less capacity.

    The sizes must lie within :data:`~napari_cosine_embed.core.limits.MODEL` (e.g. at most 8
    stacks, 8 levels, 256 filters); anything else raises ``ValueError`` naming the field.

    Parameters
    ----------
    stacks : int
        Number S of stacked hourglasses; each one outputs an embedding.
    levels : int
        Number L of resolution levels of each hourglass (L - 1 poolings by 2).
    filters : int
        Number F of feature channels, the same at every level (as in Payer et al. 2018).
    embedding_dim : int
        Length D of the pixel embeddings.
    recurrent : bool
        True: the parallel (skip) path of a level is a ConvGRU whose hidden state is carried
        from frame to frame. False: it is a plain convolution and frames are independent.
    in_channels : int
        Channels of the input frames.
    foreground_head : bool
        Add a 1-channel foreground logit computed from the last stack's features.
    norm : {"none", "batch", "group", "instance"}
        Normalisation after each convolution of the contracting and expanding paths. "none"
        (the default, as Payer et al.) and "batch" (fixed statistics at inference) make a tile's
        output independent of the tiling; "group" and "instance" normalise with each tile's own
        statistics, which can leave seams between tiles.
    pooling : {"avg", "max"}
        How the contracting path halves the resolution.
    merge : {"add", "concat"}
        How the expanding path joins the upsampled coarser level with the parallel path.
    separable : bool
        Use depthwise-separable 3 x 3 convolutions (depthwise 3 x 3, then pointwise 1 x 1).
    first_recurrent_level : int
        In recurrent mode, levels finer than this one (0 = the hourglasses' finest level) keep a
        plain convolution in their parallel path. A ConvGRU at the finest level nearly doubles
        the cost of a frame, while the coarse levels, which see whole nuclei and their motion,
        carry the memory that matters.
    input_stride : {1, 2}
        2: fold each 2 x 2 pixel block into channels at the input (pixel unshuffle) and unfold the
        heads' outputs back (pixel shuffle), so the hourglasses run at half resolution while the
        embeddings stay at full resolution. Four times less work per frame.
    """

    stacks: int = 2
    levels: int = 4
    filters: int = 32
    embedding_dim: int = 16
    recurrent: bool = True
    in_channels: int = 1
    foreground_head: bool = True
    norm: str = "none"
    pooling: str = "avg"
    merge: str = "add"
    separable: bool = False
    first_recurrent_level: int = 1
    input_stride: int = 2

    def __post_init__(self) -> None:
        # Checkpoints and --config text reach here too: a string, a float or an absurd size
        # must fail with the field's name, not as a shape error deep inside the network.
        # (InputError is a ValueError, which loading a checkpoint turns into a clear refusal.)
        check_fields(self, MODEL, prefix="ModelConfig.")
        for name in ("recurrent", "foreground_head", "separable"):
            object.__setattr__(self, name, check_flag(getattr(self, name), f"ModelConfig.{name}"))
        for name, allowed in (("norm", NORMS), ("pooling", POOLINGS), ("merge", MERGES)):
            check_choice(getattr(self, name), f"ModelConfig.{name}", allowed)
        stride = self.input_stride
        integral = isinstance(stride, numbers.Integral) and not isinstance(stride, bool)
        if not integral or stride not in (1, 2):
            raise ValueError(f"ModelConfig.input_stride must be 1 or 2, got {stride!r}")
        object.__setattr__(self, "input_stride", int(stride))
        if not 0 <= self.first_recurrent_level < self.levels:
            raise ValueError(
                f"ModelConfig.first_recurrent_level must be in [0, levels={self.levels}), "
                f"got {self.first_recurrent_level}"
            )

    @property
    def size_multiple(self) -> int:
        """Input height and width are padded internally to a multiple of this."""
        return self.input_stride * 2 ** (self.levels - 1)

    def recurrent_levels(self) -> list[int]:
        """Levels whose parallel path is a ConvGRU (empty when not recurrent)."""
        if not self.recurrent:
            return []
        return list(range(self.first_recurrent_level, self.levels))

    def to_dict(self) -> dict[str, Any]:
        """Plain ``{name: value}`` dict (str, int, bool only), safe for ``weights_only`` loading."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ModelConfig:
        """Rebuild a config from :meth:`to_dict` output.

        Keys missing from ``values`` take their default (checkpoints written before a field
        existed); unknown keys raise ``ValueError`` rather than being silently dropped.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown ModelConfig fields {unknown}; known: {sorted(known)}")
        return cls(**values)
