"""Paths in the dock: where the user's files are, and paths short enough to show.

A long path in a label widens the whole dock and squeezes the canvas, so labels show
:func:`elide`'s tail of the path (the folder names that tell it apart) and keep the full path
in their tooltip. :func:`data_folder` is the folder of the file an image was opened from, where
the plugin suggests putting what it makes for that image (projects, exports).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["data_folder", "elide"]


def elide(path: str | os.PathLike, width: int = 40) -> str:
    """``path`` shortened from the left to at most ``width`` characters ("…/data/movie_RES").

    Whole folder names are dropped first; a last name longer than ``width`` is cut.

    Examples
    --------
    >>> elide("/home/ana/experiments/2026-12/plate-3/movie_RES", 24)
    '…/plate-3/movie_RES'
    >>> elide("/tmp/a", 24)
    '/tmp/a'
    """
    text = os.fspath(path)
    if len(text) <= width:
        return text
    parts = Path(text).parts
    kept = parts[-1]
    for part in reversed(parts[:-1]):
        candidate = f"{part}/{kept}"
        if len(candidate) + 2 > width:
            break
        kept = candidate
    return ("…/" + kept)[: width - 1] + ("…" if len(kept) + 2 > width else "")


def data_folder(layer: Any) -> Path | None:
    """The folder of the file ``layer`` was opened from, if it still exists and is writable."""
    source = getattr(getattr(layer, "source", None), "path", None)
    if not source:
        return None
    folder = Path(source).expanduser().parent
    return folder if folder.is_dir() and os.access(folder, os.W_OK) else None
