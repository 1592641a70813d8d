"""The core must stay usable without napari or Qt: it is what the CLI and scripts import."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import napari_cosine_embed.core as core

GUI_MODULES = (
    "napari",
    "qtpy",
    "magicgui",
    "PyQt5",
    "PyQt6",
    "PySide2",
    "PySide6",
    "superqt",
    "vispy",
)


def _core_files() -> list[Path]:
    return sorted(Path(core.__file__).parent.rglob("*.py"))


def test_no_gui_import_statements_in_core():
    offenders = []
    for path in _core_files():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in GUI_MODULES]
    assert not offenders, f"core imports GUI code: {offenders}"


def test_importing_every_core_module_loads_no_gui_package():
    modules = [
        m.name for m in pkgutil.walk_packages(core.__path__, prefix="napari_cosine_embed.core.")
    ]
    assert len(modules) >= 3, modules
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {GUI_MODULES!r})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"importing the core pulled in: {out.stdout.strip()}"
