"""How fast track curation is on a long, large movie, in a real viewer.

Run under a display (Xvfb on a server)::

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python benchmarks/bench_curation.py
        [--frames 100] [--size 1024] [--cells 150] [--view-tracks 1000 --view-frames 150]

Two measurements:

- **Track edits.** A synthetic tracked movie of ``--frames`` frames of ``--size`` x ``--size``
  (``--cells`` cells, 14 px squares on a slow random walk, all tracked from the first frame to
  the last) is opened as a labels layer with its tracks in a real viewer with the Lineage
  widget docked. The index is built (in a worker; its time is printed). Then each edit is made
  from the widget, at the frame in the middle of the movie, and undone with Ctrl-Z
  (``layer.undo()``): for each, the main thread's time for the action (the edit, written as an
  undo step, and the index refreshed) and for the redraw that follows (tracks layer, lineage
  view, review list), separately.
  The autosave that follows an edit (300 ms later, by a timer) is timed too: its part on the
  main thread, and the whole of it (the frames are written by a background thread).
- **Lineage view.** A random lineage of ``--view-tracks`` tracks over ``--view-frames``
  frames, drawn in the lineage view: the time of ``set_lineage`` and of the repaint after it.

Prints one line per measurement, ``NAME ms=N``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

PLUGIN = "napari-cosine-embed"


def tracked_movie(frames: int, size: int, cells: int, seed: int = 0) -> np.ndarray:
    """``cells`` 14 px squares on a slow random walk; label k is cell k in every frame."""
    rng = np.random.default_rng(seed)
    grid = int(np.ceil(np.sqrt(cells)))
    step = size // (grid + 1)
    ys, xs = np.meshgrid(np.arange(1, grid + 1) * step, np.arange(1, grid + 1) * step)
    pos = np.column_stack([ys.ravel(), xs.ravel()])[:cells].astype(float)
    movie = np.zeros((frames, size, size), np.uint16)
    for t in range(frames):
        pos += rng.normal(0, 1.0, pos.shape)
        for k, (y, x) in enumerate(pos.astype(int), start=1):
            movie[t, y - 7 : y + 7, x - 7 : x + 7] = k
    return movie


def random_lineage(n_tracks: int, n_frames: int, seed: int = 0) -> np.ndarray:
    """A lineage of ``n_tracks`` rows: roots, and daughters in pairs after their mother."""
    rng = np.random.default_rng(seed)
    rows: list[list[int]] = []
    open_ends: list[int] = []
    while len(rows) < n_tracks:
        if open_ends and len(rows) + 2 <= n_tracks and rng.random() < 0.7:
            mother = open_ends.pop(int(rng.integers(len(open_ends))))
            end = rows[mother - 1][2]
            if end + 1 >= n_frames:
                continue
            for _ in range(2):
                last = int(rng.integers(end + 1, n_frames))
                rows.append([len(rows) + 1, end + 1, last, mother])
                open_ends.append(len(rows))
        else:
            first = int(rng.integers(0, n_frames // 2))
            rows.append([len(rows) + 1, first, int(rng.integers(first, n_frames)), 0])
            open_ends.append(len(rows))
    return np.asarray(rows, np.int64)


def ms(seconds: float) -> str:
    return f"{1000 * seconds:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--cells", type=int, default=150)
    parser.add_argument("--view-tracks", type=int, default=1000)
    parser.add_argument("--view-frames", type=int, default=150)
    args = parser.parse_args()

    import napari
    from qtpy.QtWidgets import QApplication

    from napari_cosine_embed.core.curation import TrackIndex

    print(f"# {platform.node()}, {os.cpu_count()} cores, napari {napari.__version__}")
    movie = tracked_movie(args.frames, args.size, args.cells)
    print(f"# movie {movie.shape}, {args.cells} tracks")
    tic = time.perf_counter()
    TrackIndex.of(movie)
    print(f"index_build ms={ms(time.perf_counter() - tic)}  (in a worker in the widget)")

    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1600, 1000)
    layer = viewer.add_labels(movie, name="tracked")
    viewer.add_tracks(TrackIndex.of(movie).tracks_data(), name="tracks")
    import tempfile

    from napari_cosine_embed._widgets._session import session_for

    project = tempfile.mkdtemp(prefix="bench-curation-")
    session_for(viewer).project_dir = None
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Lineage")
    widget._autosave.set_dir(os.path.join(project, "project"))
    widget.show_lineage()
    app = QApplication.instance()
    deadline = time.perf_counter() + 120
    while not (widget.state is not None and widget.state.ready):
        app.processEvents()
        if time.perf_counter() > deadline:
            raise TimeoutError("indexing did not finish")
    app.processEvents()

    mid = args.frames // 2
    viewer.dims.set_point(0, mid)
    app.processEvents()
    edits = [
        ("break", "7", widget.break_here),
        ("swap", "8, 9", widget.swap_from_here),
        ("delete", "10", widget.delete_from_here),
        ("divide", "11, 12, 13", widget.divide),
        ("pin", "14", widget.pin_tracks),
    ]
    for name, ids, action in edits:
        widget._ids.value = ids
        tic = time.perf_counter()
        action()
        edit = time.perf_counter() - tic
        tic = time.perf_counter()
        app.processEvents()  # the coalesced redraw runs on the next turn
        redraw = time.perf_counter() - tic
        tic = time.perf_counter()
        widget._autosave.flush(wait=False)  # what the autosave timer does 300 ms later
        main_thread = time.perf_counter() - tic
        widget._autosave._join()
        saved = time.perf_counter() - tic
        print(
            f"edit_{name} ms={ms(edit)} redraw_ms={ms(redraw)} "
            f"autosave_main_ms={ms(main_thread)} autosave_background_ms={ms(saved)}"
        )
        if name != "pin":
            tic = time.perf_counter()
            layer.undo()
            undo = time.perf_counter() - tic
            tic = time.perf_counter()
            app.processEvents()
            print(f"undo_{name} ms={ms(undo)} redraw_ms={ms(time.perf_counter() - tic)}")
    # the divide needs a mother one frame before two daughters; undo restored all, so redo it
    # for the join: break then join back
    widget._ids.value = "15"
    widget.break_here()
    app.processEvents()
    new = widget.state.index.next_free() - 1
    widget._ids.value = f"15, {new}"
    tic = time.perf_counter()
    widget.join()
    edit = time.perf_counter() - tic
    tic = time.perf_counter()
    app.processEvents()
    print(f"edit_join ms={ms(edit)} redraw_ms={ms(time.perf_counter() - tic)}")

    from napari_cosine_embed._widgets.lineage_view import LineageView

    lineage = random_lineage(args.view_tracks, args.view_frames)
    view = LineageView()
    view.resize(1200, 400)
    view.show()
    app.processEvents()
    for run in range(3):
        tic = time.perf_counter()
        view.set_lineage(lineage)
        drawn = time.perf_counter() - tic
        tic = time.perf_counter()
        view.repaint()
        app.processEvents()
        print(
            f"lineage_view_{run} tracks={len(lineage)} frames={args.view_frames} "
            f"ms={ms(drawn)} repaint_ms={ms(time.perf_counter() - tic)}"
        )
    viewer.close()


if __name__ == "__main__":
    main()
