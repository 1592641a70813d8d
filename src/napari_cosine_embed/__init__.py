"""Instance segmentation and tracking of microscopy time-lapses with cosine pixel embeddings.

The numerical work lives in :mod:`napari_cosine_embed.core`, which never imports napari or Qt;
the napari dock widgets in ``_widgets`` and the command line in :mod:`napari_cosine_embed.cli`
are thin layers over it.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
