"""Shared fixtures.

Tests that need the real microscopy in ``../shared/data`` (beside the repository) use the
``shared_data`` fixture, which skips with a reason where that folder is absent (a fresh clone
elsewhere). Set ``NAPARI_COSINE_EMBED_DATA`` to point at another copy.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def _shared_data_dir() -> Path:
    env = os.environ.get("NAPARI_COSINE_EMBED_DATA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of the shared, licensed microscopy data; skips where it is not available."""
    root = _shared_data_dir()
    if not (root / "README.md").is_file():
        pytest.skip(f"shared microscopy data not found at {root} (set NAPARI_COSINE_EMBED_DATA)")
    return root


def _folder(path: Path) -> Path:
    if not path.is_dir():
        pytest.skip(f"{path} not found")
    return path


@pytest.fixture(scope="session")
def sim_plus(shared_data: Path) -> Path:
    """The Fluo-N2DH-SIM+ sequence folder ``02`` (its ground truth is the sibling ``02_GT``)."""
    return _folder(shared_data / "ctc" / "Fluo-N2DH-SIM+" / "02")


@pytest.fixture(scope="session")
def gowt1(shared_data: Path) -> Path:
    """The Fluo-N2DH-GOWT1 sequence folder ``02`` (its ground truth is the sibling ``02_GT``)."""
    return _folder(shared_data / "ctc" / "Fluo-N2DH-GOWT1" / "02")


@pytest.fixture(scope="session")
def dsb(shared_data: Path) -> Path:
    """The dsb2018-fluo folder (``images/``, ``masks/``, ``index.csv``)."""
    return _folder(shared_data / "dsb2018-fluo")


@pytest.fixture(scope="session")
def dsb_nonfluo(shared_data: Path) -> Path:
    """The dsb2018-nonfluo folder (dark nuclei on bright backgrounds), the same layout."""
    return _folder(shared_data / "dsb2018-nonfluo")
