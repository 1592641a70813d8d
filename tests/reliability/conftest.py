"""Fixtures of the reliability tests: a small crop of a real CTC sequence, and its checksums.

The data-loss cases run end to end on real frames (Fluo-N2DH-SIM+ 02, 8 frames of 128 x 192
around a few nuclei, with its ground truth cropped alike) and check afterwards that every input
file is byte-for-byte what it was.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

CROP = np.s_[480:608, 240:432]
FRAMES = 8


@pytest.fixture(scope="session")
def sim_crop_source(sim_plus, tmp_path_factory) -> Path:
    """``.../data`` holding ``01/tNNN.tif`` and ``01_GT/{SEG,TRA}``: a crop of SIM+ 02."""
    from napari_cosine_embed.core.io.ctc import write_ctc_gt
    from napari_cosine_embed.core.io.lineage import lineage_from_labels

    root = tmp_path_factory.mktemp("sim-crop") / "data"
    (root / "01").mkdir(parents=True)
    gt = sim_plus.parent / "02_GT"
    tra = []
    for t in range(FRAMES):
        frame = tifffile.imread(sim_plus / f"t{t:03d}.tif")[CROP]
        tifffile.imwrite(root / "01" / f"t{t:03d}.tif", frame, compression="zlib")
        tra.append(tifffile.imread(gt / "TRA" / f"man_track{t:03d}.tif")[CROP])
    tra = np.stack(tra)
    seg = {t: tifffile.imread(gt / "SEG" / f"man_seg{t:03d}.tif")[CROP] for t in (0, 5)}
    write_ctc_gt(root / "01_GT", tra=tra, lineage=lineage_from_labels(tra), seg=seg)
    return root


@pytest.fixture
def sim_crop(sim_crop_source, tmp_path) -> Path:
    """A fresh copy of the crop for one test (which may try to destroy it)."""
    import shutil

    root = tmp_path / "data"
    shutil.copytree(sim_crop_source, root)
    return root
