"""Helpers for the generators that long work is written as (they yield progress, then return)."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, TypeVar

__all__ = ["result_of"]

R = TypeVar("R")


def result_of(generator: Generator[Any, Any, R]) -> R:
    """Run ``generator`` to its end, dropping what it yields, and return its return value.

    >>> def work():
    ...     yield 1
    ...     return "done"
    >>> result_of(work())
    'done'
    """
    while True:
        try:
            next(generator)
        except StopIteration as stop:
            return stop.value
