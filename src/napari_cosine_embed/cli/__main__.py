"""``python -m napari_cosine_embed.cli``: the same as the ``napari-cosine-embed`` command."""

import sys

from . import main

sys.exit(main())
