"""Embedding network (recurrent stacked hourglass) and the recurrent mean-shift grouping module."""

from .config import ModelConfig
from .convgru import ConvGRUCell
from .grouping import RecurrentMeanShift
from .hourglass import (
    Hourglass,
    ModelOutput,
    RecurrentStackedHourglass,
    State,
    detach_state,
)

__all__ = [
    "ConvGRUCell",
    "Hourglass",
    "ModelConfig",
    "ModelOutput",
    "RecurrentMeanShift",
    "RecurrentStackedHourglass",
    "State",
    "detach_state",
]
