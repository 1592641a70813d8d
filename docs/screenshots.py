"""Regenerate the screenshots in docs/images (run under Xvfb: ``make screenshots``)."""

from __future__ import annotations

import sys
from pathlib import Path

from qtpy.QtWidgets import QApplication

from napari_cosine_embed._demo import make_demo_viewer


def main(out_dir: str) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    viewer = make_demo_viewer(show=True)
    viewer.window._qt_window.resize(1400, 900)
    for _ in range(20):  # let Qt lay out and paint the window before grabbing it
        QApplication.processEvents()
    viewer.screenshot(str(out / "demo.png"), canvas_only=False, flash=False)
    viewer.close()
    print(f"wrote {out / 'demo.png'}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/images")
