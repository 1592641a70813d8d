"""Instance segmentation and tracking of microscopy time-lapses with cosine pixel embeddings.

The numerical work lives in :mod:`napari_cosine_embed.core`, which never imports napari or Qt;
the napari dock widgets in ``_widgets`` and the command line in :mod:`napari_cosine_embed.cli`
are thin layers over it.

The public functions are imported on first use: napari imports this package at startup to find
the plugin's manifest, and that must not pay for importing torch.

>>> import napari_cosine_embed as nce
>>> model = nce.load_model("default")  # doctest: +SKIP
>>> nce.embed(model, movie).shape  # doctest: +SKIP
(92, 16, 1024, 1024)
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .core.checkpoint import load_model
    from .core.embed import embed, embed_with_foreground, iter_embed
    from .core.grouping import HDBSCANGrouper, meanshift_labels, seed_mask

__version__ = "0.1.0"

#: Public name -> the module that defines it, imported on first access.
_LAZY = {
    "load_model": ".core.checkpoint",
    "embed": ".core.embed",
    "iter_embed": ".core.embed",
    "embed_with_foreground": ".core.embed",
    "HDBSCANGrouper": ".core.grouping",
    "meanshift_labels": ".core.grouping",
    "seed_mask": ".core.grouping",
}

__all__ = [
    "HDBSCANGrouper",
    "__version__",
    "embed",
    "embed_with_foreground",
    "iter_embed",
    "load_model",
    "meanshift_labels",
    "seed_mask",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name], __name__), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
