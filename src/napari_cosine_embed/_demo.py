"""``make demo``: napari with the synthetic sample loaded and the plugin's widgets docked."""

from __future__ import annotations

import napari

PLUGIN = "napari-cosine-embed"


def make_demo_viewer(*, show: bool = True) -> napari.Viewer:
    """Open a viewer with the synthetic time-lapse sample (image, ground truth, tracks)."""
    viewer = napari.Viewer(title="napari-cosine-embed demo", show=show)
    viewer.open_sample(PLUGIN, "timelapse")
    # Show the middle of the movie, where cells have moved and some have divided.
    nframes = viewer.layers[0].data.shape[0]
    viewer.dims.set_current_step(0, nframes // 2)
    return viewer


def main() -> None:
    make_demo_viewer()
    napari.run()


if __name__ == "__main__":
    main()
