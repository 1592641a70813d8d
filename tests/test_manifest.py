"""The npe2 manifest the installed package ships is valid and declares what napari lists."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import npe2

import napari_cosine_embed

PLUGIN = "napari-cosine-embed"


def test_manifest_is_found_through_the_entry_point_and_is_the_only_copy():
    eps = [ep for ep in entry_points(group="napari.manifest") if ep.name == PLUGIN]
    assert len(eps) == 1
    assert eps[0].value == "napari_cosine_embed:napari.yaml"
    pkg_dir = Path(napari_cosine_embed.__file__).parent
    repo = pkg_dir.parents[1]
    copies = [p for p in repo.rglob("napari.yaml") if ".venv" not in p.parts]
    assert copies == [pkg_dir / "napari.yaml"]


def test_manifest_validates_with_npe2_cli():
    npe2_cli = Path(sys.executable).with_name("npe2")
    res = subprocess.run([str(npe2_cli), "validate", PLUGIN], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "valid" in (res.stdout + res.stderr).lower()


def test_manifest_contributions_resolve_to_real_callables():
    pm = npe2.PluginManager.instance()
    pm.discover()
    mf = pm.get_manifest(PLUGIN)
    contrib = mf.contributions
    assert {r.command for r in contrib.readers} == {f"{PLUGIN}.get_reader"}
    assert {w.display_name for w in contrib.writers} == {
        "labels TIFF",
        "CTC result folder",
        "CTC ground-truth folder",
    }
    assert {s.key for s in contrib.sample_data} == {"timelapse", "dsb2018"}
    for cmd in contrib.commands:
        func = npe2.manifest.utils.import_python_name(cmd.python_name)
        assert callable(func), cmd.python_name
