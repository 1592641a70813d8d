"""napari writers: labels TIFF, CTC result folder, CTC ground-truth folder.

napari hands writers plain layer data; the work is done by the core writers, which write
atomically and never replace an existing file or folder. napari's save dialog has already asked
the user whether to replace an existing file, so a TIFF over an existing file is replaced; a
folder is never replaced from the GUI (choose a new name).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .core.errors import InputError
from .core.io.ctc import write_ctc_gt as _write_ctc_gt
from .core.io.ctc import write_ctc_result as _write_ctc_result
from .core.io.lineage import lineage_from_labels, split_track_gaps
from .core.io.tiff import write_labels_tiff as _write_labels_tiff

LayerData = tuple[Any, dict[str, Any], str]


def write_labels_tiff(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Save one labels layer as a (T, Y, X) or (Y, X) TIFF."""
    out = _write_labels_tiff(path, np.asarray(data), overwrite=True)
    return [str(out)]


def _labels_and_parents(layer_data: list[LayerData]) -> tuple[np.ndarray, dict[int, int], dict]:
    labels = next(d for d, _, kind in layer_data if kind == "labels")
    meta = next(m for _, m, kind in layer_data if kind == "labels")
    labels = np.asarray(labels)
    if labels.ndim == 2:
        labels = labels[None]
    if labels.ndim != 3:
        raise InputError(
            f"a CTC folder needs a (T, Y, X) or (Y, X) labels layer; got shape {labels.shape}"
        )
    parents: dict[int, int] = {}
    for _, tmeta, kind in layer_data:
        if kind == "tracks":
            # napari's graph maps a track id to its parents; track ids equal label values here.
            for child, ps in (tmeta.get("graph") or {}).items():
                ps = [ps] if np.isscalar(ps) else list(ps)
                if ps:
                    parents[int(child)] = int(ps[0])
    return labels, parents, meta


def _ctc_tracks(labels: np.ndarray, parents: dict[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Lineage for a label movie; a track with a gap continues under a new label (CTC rule)."""
    lineage = lineage_from_labels(labels, parents=parents or None)
    fixed, split = split_track_gaps(labels, parents=parents or None)
    if len(split) != len(lineage):
        warnings.warn(
            f"{len(split) - len(lineage)} track(s) skip frames; in the saved folder each piece "
            "after a gap is a new label whose parent is the piece before (the layer is unchanged)",
            UserWarning,
            stacklevel=3,
        )
        return fixed, split
    return labels, lineage


def write_ctc_result(path: str, layer_data: list[LayerData]) -> list[str]:
    """Save a labels layer (label values = track ids) and optional tracks as a CTC result."""
    labels, parents, _ = _labels_and_parents(layer_data)
    labels, lineage = _ctc_tracks(labels, parents)
    return [str(_write_ctc_result(Path(path), labels, lineage))]


def write_ctc_gt(path: str, layer_data: list[LayerData]) -> list[str]:
    """Save a labels layer as a CTC ground-truth folder (SEG + TRA + man_track.txt).

    When the layer's metadata lists ``curated_frames``, SEG is written for those frames only.
    """
    labels, parents, meta = _labels_and_parents(layer_data)
    labels, lineage = _ctc_tracks(labels, parents)
    curated = (meta.get("metadata") or {}).get("curated_frames")
    seg = {int(t): labels[int(t)] for t in curated} if curated else labels
    return [str(_write_ctc_gt(Path(path), tra=labels, lineage=lineage, seg=seg))]
