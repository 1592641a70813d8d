"""Autosave of the Correct widget's labels layer into a project folder.

Every change of the watched labels layer (an edit of the widget, napari's brush, an undo of a
saved frame) marks its frame; a short single-shot timer then writes the changed frames, and the
curated list, into the project folder (:class:`~..core.project.Project`), atomically, on the main
thread (one compressed TIFF per frame). Without a chosen folder, the first edit creates
``<labels name>-<date>`` in a ``napari-cosine-embed-projects`` folder beside the image's file
(or in the home folder when the image came from no file, or its folder is not writable). Each
labels layer keeps its own folder; the dock shows the folder's tail, the tooltip all of it.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import re
import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from qtpy.QtCore import QObject, Signal

from ..core.errors import InputError, OutputExistsError
from ..core.project import Project, is_project
from ._paths import data_folder, elide
from ._session import Session

__all__ = ["AUTOSAVE_MS", "PROJECTS_FOLDER", "Autosave", "default_project_dir", "frame_of"]

PROJECTS_FOLDER = "napari-cosine-embed-projects"
AUTOSAVE_MS = 300


def default_project_dir(labels_name: str, *, root: Path | None = None) -> Path:
    """A new folder ``<root>/<labels name>-<date-time>`` (root: ~/napari-cosine-embed-projects)."""
    root = Path.home() / PROJECTS_FOLDER if root is None else Path(root)
    safe = re.sub(r"[^\w.-]+", "_", labels_name).strip("._") or "labels"
    base = root / f"{safe}-{_dt.datetime.now():%Y%m%d-%H%M%S}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


class _Reporter(QObject):
    """Carries a background save's failure to the main thread (Qt queues the signal)."""

    failed = Signal(str, list)


def frame_of(layer: Any, t: int) -> np.ndarray:
    """Frame ``t`` of a (T, Y, X) labels layer, or the whole of a (Y, X) one."""
    return layer.data if layer.ndim == 2 else layer.data[t]


def _digest(frame: np.ndarray) -> str:
    return hashlib.blake2b(np.ascontiguousarray(frame).tobytes(), digest_size=16).hexdigest()


class Autosave:
    """Which frames of the watched labels layer changed, and writing them into its project.

    Parameters
    ----------
    session : Session
        Holds the project folder (``project_dir``) and the curated frames.
    label : magicgui.widgets.Label
        Shows the project folder, or why the last save failed.
    image : magicgui.widgets.ComboBox
        The chosen image layer (or None), recorded in a new project's manifest.
    current_t : callable
        The frame of a labels layer in view.
    guarded : callable
        Wraps an action so that its error becomes a notification (the timer's and a switch's
        flush).
    parent : QWidget
        Owns the timer, so that it never fires after the widget is gone, and the dialogs.

    Attributes
    ----------
    layer : napari.layers.Labels or None
        The watched labels layer.
    project : Project or None
        The open project (made on the first save when None).
    dirty : set of int
        Frames to check and write on the next save.
    curated_dirty : bool
        The curated list is to be written on the next save.
    extra_save : callable or None
        Writes more of the layer's state into the project (the Tracks widget: lineage, pins,
        reviewed rows); called on the next save after :meth:`mark` ``(extra=True)``.
    digests : dict of int to str
        Frame -> digest of what the project holds for it.
    """

    def __init__(
        self,
        session: Session,
        label: Any,
        image: Any,
        current_t: Callable[[Any], int],
        guarded: Callable[[Callable[[], Any]], Callable[..., None]],
        *,
        parent: Any,
    ) -> None:
        from qtpy.QtCore import QTimer

        self._session, self._label, self._image = session, label, image
        self._current_t, self._guarded, self._parent = current_t, guarded, parent
        self.timer = QTimer(parent)
        self.timer.setSingleShot(True)
        self.timer.setInterval(AUTOSAVE_MS)
        self.timer.timeout.connect(guarded(lambda: self.flush(wait=False)))
        self._writer: threading.Thread | None = None
        self._lock = threading.Lock()  # the digests, shared with the writer thread
        self._reporter = _Reporter(parent)
        self._reporter.failed.connect(self._failed)
        self.layer: Any = None
        self.project: Project | None = None
        self.dirty: set[int] = set()
        self.curated_dirty = False
        self.extra_save: Callable[[Project], None] | None = None
        self.extra_dirty = False
        self.digests: dict[int, str] = {}
        self._data_ref: weakref.ref | None = None  # the layer's array, to see it replaced
        self._project_dirs: dict[str, Path] = {}  # labels layer name -> its project folder
        self.show()

    def show(self) -> None:
        """Show the project folder in the label."""
        path = self._session.project_dir
        if path:
            self._label.value = f"project: {elide(path)}"
            self._label.tooltip = f"corrections are autosaved to {path}"
        else:
            self._label.value = "project: none yet (made on the first edit)"
            self._label.tooltip = (
                f"made beside the image's file (in {PROJECTS_FOLDER}), or in your home folder "
                "for an image opened from no file; 'Project folder...' chooses another"
            )

    def watch(self, layer: Any) -> None:
        """Flush the watched layer, then follow ``layer`` (or none), in its own project folder."""
        previous = self.layer
        if previous is not None:
            self._guarded(self.flush)()
            previous.events.paint.disconnect(self.on_paint)
            previous.events.set_data.disconnect(self.on_set_data)
        self.layer = layer
        self.dirty.clear()
        self._data_ref = None
        if previous is not None and layer is not None:
            # Each labels layer keeps its own project: back to its folder (or a new one).
            if self._session.project_dir is not None:
                self._project_dirs[previous.name] = self._session.project_dir
            self._session.project_dir = self._project_dirs.get(layer.name)
            self.project, self.digests = None, {}
            self.show()
        if layer is not None:
            if isinstance(layer.data, np.ndarray):
                self._data_ref = weakref.ref(layer.data)
            layer.events.paint.connect(self.on_paint)
            layer.events.set_data.connect(self.on_set_data)

    def mark(self, frames=(), *, extra: bool = False) -> None:
        """Save these frames (and the extra state) soon: what an undo of a multi-frame edit
        changed, which napari does not say."""
        self.dirty.update(int(t) for t in frames)
        self.extra_dirty = self.extra_dirty or extra
        self.timer.start()

    def curated_changed(self) -> None:
        """The watched layer's curated frames changed: save them soon."""
        self.curated_dirty = True
        self.timer.start()

    def on_paint(self, event: Any) -> None:
        """Mark the frames a paint event of the watched layer touched; save them soon."""
        layer = self.layer
        for atom in getattr(event, "value", None) or []:
            key = getattr(atom, "slice_key", None)  # napari's brush, fill and polygon edits
            first = key[0] if key is not None else np.asarray(atom[0][0])
            if layer.ndim == 2:
                self.dirty.add(0)
            elif isinstance(first, slice) and first.stop is not None:
                self.dirty.update(range(first.start or 0, first.stop))
            elif isinstance(first, (int, np.integer)):
                self.dirty.add(int(first))
            elif isinstance(first, np.ndarray) and first.ndim == 1:
                self.dirty.update(int(v) for v in np.unique(first))
            else:
                self.dirty.add(self._current_t(layer))
        self.timer.start()

    def on_set_data(self, *_: Any) -> None:
        """New data in the watched layer, or an undo or redo of it."""
        layer = self.layer
        if self._data_ref is None or self._data_ref() is not layer.data:
            # New content (e.g. a re-run of Group): the project keeps the corrections it holds,
            # and a frame is written again only when it is edited.
            self._data_ref = weakref.ref(layer.data) if isinstance(layer.data, np.ndarray) else None
            self.digests.clear()
            return
        # An undo or redo only refreshes the layer: re-check the frame in view if it was saved.
        t = self._current_t(layer)
        if t in self.digests:
            self.dirty.add(t)
            self.timer.start()

    def _ensure_project(self, layer: Any) -> Project:
        shape = tuple(layer.data.shape)
        path = self._session.project_dir
        if self.project is not None and path == self.project.path:
            if self.project.manifest.shape != shape:
                raise InputError(
                    f"the project in {path} is for labels of shape "
                    f"{self.project.manifest.shape}; choose another project folder"
                )
            return self.project
        image = self._image.value
        names = {"labels_name": layer.name}
        if image is not None and tuple(image.data.shape) == shape:
            from ..core.embedding_store import image_fingerprint

            names.update(image_name=image.name, image_fingerprint=image_fingerprint(image.data))
        if path is None:  # beside the image's file when it has one, else in the home folder
            folder = data_folder(image) or data_folder(layer)
            path = (
                default_project_dir(layer.name)
                if folder is None
                else default_project_dir(layer.name, root=folder / PROJECTS_FOLDER)
            )
        self.project = Project.open_or_create(path, shape=shape, **names)
        self._session.project_dir = self.project.path
        self.show()
        return self.project

    def flush(self, *, wait: bool = True) -> Project | None:
        """Write the changed frames, the curated list and the extra state; returns the project.

        With ``wait`` (switching layers or folders, loading, an explicit save) everything is
        written before this returns, and a failure raises. Without it (the timer after an
        edit) the frames are written by a background thread, so that a track edit across 100
        large frames does not hold the viewer for the half second their compression takes;
        the frames are read from the layer's array as it was when the save began, and a frame
        edited again meanwhile is marked and written again by the next save.
        """
        self.timer.stop()
        layer = self.layer
        if layer is None or not (self.dirty or self.curated_dirty or self.extra_dirty):
            if wait:
                self._join()
            return self.project
        if not wait and self._writer is not None and self._writer.is_alive():
            self.timer.start()  # the last save is still being written: try again shortly
            return self.project
        try:
            self._join()
            project = self._ensure_project(layer)
            frames, self.dirty = sorted(self.dirty), set()
            if self.curated_dirty:
                project.save_curated(self._session.curated_frames(layer.name))
                self.curated_dirty = False
            if self.extra_dirty and self.extra_save is not None:
                self.extra_save(project)
            self.extra_dirty = False
        except (InputError, OutputExistsError, OSError) as exc:
            self._label.value = f"autosave failed: {exc}"
            raise
        data = layer.data
        if wait:
            self._write_frames(project, data, layer.ndim, frames, raise_errors=True)
        elif frames:
            self._writer = threading.Thread(
                target=self._write_frames,
                args=(project, data, layer.ndim, frames),
                name="autosave",
                daemon=True,
            )
            self._writer.start()
        return project

    def _write_frames(
        self, project: Project, data: Any, ndim: int, frames: list[int], *, raise_errors=False
    ) -> None:
        """Write the frames whose content differs from what the project holds."""
        try:
            for t in frames:
                frame = np.array(data if ndim == 2 else data[t], copy=True)
                digest = _digest(frame)
                with self._lock:
                    same = self.digests.get(t) == digest
                if not same:
                    project.save_frame(t, frame)
                    with self._lock:
                        self.digests[t] = digest
        except (InputError, OutputExistsError, OSError) as exc:
            if raise_errors:
                self._label.value = f"autosave failed: {exc}"
                raise
            self._reporter.failed.emit(f"autosave failed: {exc}", frames)

    @property
    def pending(self) -> bool:
        """Whether something is still to be saved or being written."""
        writing = self._writer is not None and self._writer.is_alive()
        return bool(self.dirty or self.curated_dirty or self.extra_dirty or writing)

    def _join(self) -> None:
        """Wait for a background save to finish."""
        if self._writer is not None:
            self._writer.join()
            self._writer = None

    def _failed(self, text: str, frames: list) -> None:
        """A background save failed (main thread): say so, and keep its frames to save."""
        self._label.value = text
        self.dirty.update(frames)

    def set_dir(self, path: str | Path) -> None:
        """Save into ``path`` from now on (an empty or new folder, or a project)."""
        path = Path(path)
        if path.exists() and not is_project(path) and (not path.is_dir() or any(path.iterdir())):
            raise OutputExistsError(
                f"{path} is not empty and is not a napari-cosine-embed project; "
                "choose an empty folder or a project"
            )
        # Pending edits go to the previous folder if it takes them, else to the new one.
        with contextlib.suppress(InputError, OutputExistsError, OSError):
            self.flush()
        self._session.project_dir, self.project = path, None
        # what was saved elsewhere is written again into the new folder on the next save
        self.dirty.update(self.digests)
        self.curated_dirty = True
        self.digests = {}
        self.show()

    def load(self, path: str | Path) -> tuple[Project, dict[int, np.ndarray]]:
        """Flush what is pending, then open the project in ``path``; returns it and its frames."""
        with contextlib.suppress(InputError, OutputExistsError, OSError):
            self.flush()  # best effort: a broken folder must not block loading
        project = Project.open(path)
        return project, project.load_frames()

    def adopt(self, project: Project, layer: Any, frames: dict[int, np.ndarray]) -> None:
        """Save into ``project`` from now on; its ``frames`` and curated list are in ``layer``."""
        self.project = project
        self._session.project_dir = project.path
        self.show()
        self.dirty.clear()
        self.digests = {t: _digest(np.asarray(frame_of(layer, t))) for t in frames}
        for t in project.load_curated():
            self._session.set_curated(layer.name, t, True)
        self.curated_dirty = False

    def ask_dir(self) -> None:
        """Ask for the folder to save into."""
        path = self._ask("Project folder", self._session.project_dir or Path.home())
        if path:
            self.set_dir(path)

    def ask_project(self) -> str:
        """Ask for a project folder to load; returns it, or "" when cancelled."""
        return self._ask("Load project", self._session.project_dir or Path.home() / PROJECTS_FOLDER)

    def _ask(self, title: str, start: Path) -> str:
        from qtpy.QtWidgets import QFileDialog

        return QFileDialog.getExistingDirectory(self._parent, title, str(start))
