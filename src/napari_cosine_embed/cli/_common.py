"""What the command groups share: JSON output."""

from __future__ import annotations

import json


def _json_default(value):
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def print_json(value) -> None:
    """Print plain data (NumPy scalars and arrays included) as indented JSON."""
    print(json.dumps(value, indent=2, default=_json_default))
