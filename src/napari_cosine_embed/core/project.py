"""A project folder that keeps a user's corrections: edited label frames and curated frames.

Layout::

    project.json        manifest: marker, format version, shape, image and labels names,
                        image fingerprint, creation time
    curated.json        {"frames": [0, 3, 7]}: frames the user checked by hand
    tracks.json         the curated lineage ({"lineage": [[label, first, last, parent], ...]}),
                        the pinned links ({"pins": [[t, y, x, y', x'], ...]}) and the review
                        list's rows marked reviewed ({"reviewed": [...]})
    labels/t0003.tif    one label frame (Y, X) per edited frame, uint16 (uint32 when needed)

Only edited (and curated) frames are written, so autosaving after each edit costs one small
compressed TIFF. Every file is written to a temporary name and renamed into place
(:func:`~.io._atomic.atomic_write`), so a crash or a full disk during a write leaves the
previous version of that file intact. A folder that is neither empty nor a project is never
written to.

Examples
--------
>>> import tempfile, pathlib
>>> root = pathlib.Path(tempfile.mkdtemp()) / "my-project"
>>> project = Project.create(root, shape=(5, 4, 4), labels_name="cells")
>>> frame = np.zeros((4, 4), np.uint16); frame[1:3, 1:3] = 7
>>> project.save_frame(2, frame)
>>> project.save_curated([2])
>>> again = Project.open(root)
>>> again.saved_frames(), again.load_curated(), int(again.load_frame(2).max())
([2], [2], 7)
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .errors import InputError, OutputExistsError
from .io._atomic import atomic_write

__all__ = ["Project", "ProjectManifest", "is_project"]

MANIFEST = "project.json"
CURATED = "curated.json"
TRACKS = "tracks.json"
LABELS = "labels"
_MARKER = "napari-cosine-embed project"
_VERSION = 1
_FRAME = re.compile(r"^t(\d+)\.tif$")


@dataclass
class ProjectManifest:
    """What a project folder is for.

    Attributes
    ----------
    shape : tuple of int
        Shape of the labels, ``(T, Y, X)`` or ``(Y, X)``.
    image_name, labels_name : str
        Names of the image and labels layers (or files) it was made from.
    image_fingerprint : str
        :func:`~.embedding_store.image_fingerprint` of the image, to recognise it again.
    created : str
        ISO 8601 time of creation.
    """

    shape: tuple[int, ...]
    image_name: str = ""
    labels_name: str = ""
    image_fingerprint: str = ""
    created: str = field(default_factory=lambda: _dt.datetime.now().isoformat(timespec="seconds"))

    @property
    def n_frames(self) -> int:
        return 1 if len(self.shape) == 2 else int(self.shape[0])


def is_project(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a project folder (has a manifest with the project marker)."""
    try:
        return json.loads((Path(path) / MANIFEST).read_text()).get("marker") == _MARKER
    except (OSError, ValueError, AttributeError):
        return False


def _write_json(path: Path, content: dict) -> None:
    text = json.dumps(content, indent=2) + "\n"
    atomic_write(path, lambda tmp: tmp.write_text(text), overwrite=True)


class Project:
    """An open project folder; make one with :meth:`create`, :meth:`open` or
    :meth:`open_or_create`.

    Attributes
    ----------
    path : Path
    manifest : ProjectManifest
    """

    def __init__(self, path: str | os.PathLike, manifest: ProjectManifest) -> None:
        self.path = Path(path)
        self.manifest = manifest

    def __repr__(self) -> str:
        return f"Project({str(self.path)!r}, shape={self.manifest.shape})"

    # -- opening -------------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        path: str | os.PathLike,
        *,
        shape: tuple[int, ...],
        image_name: str = "",
        labels_name: str = "",
        image_fingerprint: str = "",
    ) -> Project:
        """Make a new project in ``path``, which must not exist or be an empty folder.

        Raises
        ------
        OutputExistsError
            ``path`` is a file, a project already (use :meth:`open`) or a folder with content.
        InputError
            ``shape`` is not ``(T, Y, X)`` or ``(Y, X)``.
        """
        path = Path(path)
        shape = tuple(int(s) for s in shape)
        if len(shape) not in (2, 3) or min(shape) < 1:
            raise InputError(f"labels must have shape (T, Y, X) or (Y, X), got {shape}")
        if path.exists():
            if not path.is_dir():
                raise OutputExistsError(f"{path} is a file, not a project folder")
            if is_project(path):
                raise OutputExistsError(f"{path} is already a project; open it instead")
            if any(path.iterdir()):
                raise OutputExistsError(
                    f"{path} is not empty and is not a napari-cosine-embed project; "
                    "choose an empty or new folder"
                )
        manifest = ProjectManifest(shape, image_name, labels_name, image_fingerprint)
        project = cls(path, manifest)
        (path / LABELS).mkdir(parents=True, exist_ok=True)
        project._save_manifest()  # last: a folder without it is not a project yet
        return project

    @classmethod
    def open(cls, path: str | os.PathLike) -> Project:
        """Open an existing project.

        Raises
        ------
        InputError
            ``path`` is not a project or its manifest is unreadable.
        """
        path = Path(path)
        if not is_project(path):
            raise InputError(f"{path} is not a napari-cosine-embed project (no {MANIFEST})")
        meta = json.loads((path / MANIFEST).read_text())
        if int(meta.get("version", 0)) > _VERSION:
            raise InputError(
                f"{path} was written by a newer version of napari-cosine-embed "
                f"(format {meta.get('version')}); update the plugin to open it"
            )
        try:
            manifest = ProjectManifest(
                shape=tuple(int(s) for s in meta["shape"]),
                image_name=str(meta.get("image_name", "")),
                labels_name=str(meta.get("labels_name", "")),
                image_fingerprint=str(meta.get("image_fingerprint", "")),
                created=str(meta.get("created", "")),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise InputError(f"{path / MANIFEST} is damaged: {err}") from err
        return cls(path, manifest)

    @classmethod
    def open_or_create(
        cls, path: str | os.PathLike, *, shape: tuple[int, ...], **names: str
    ) -> Project:
        """Open the project in ``path`` if there is one (for labels of ``shape``), else create it.

        Raises
        ------
        InputError
            The project there is for labels of another shape.
        OutputExistsError
            ``path`` is a folder with content that is not a project.
        """
        if is_project(path):
            project = cls.open(path)
            if project.manifest.shape != tuple(int(s) for s in shape):
                raise InputError(
                    f"the project in {path} is for labels of shape {project.manifest.shape}, "
                    f"not {tuple(shape)}; choose another folder"
                )
            return project
        return cls.create(path, shape=shape, **names)

    def _save_manifest(self) -> None:
        meta = {"marker": _MARKER, "version": _VERSION, **asdict(self.manifest)}
        meta["shape"] = list(self.manifest.shape)
        _write_json(self.path / MANIFEST, meta)

    # -- label frames ----------------------------------------------------------------------------
    def _check_t(self, t: int) -> int:
        t = int(t)
        if not 0 <= t < self.manifest.n_frames:
            raise InputError(f"frame {t} is outside the project's {self.manifest.n_frames} frames")
        return t

    def frame_path(self, t: int) -> Path:
        """The file of frame ``t`` (which may not exist)."""
        return self.path / LABELS / f"t{self._check_t(t):04d}.tif"

    def save_frame(self, t: int, labels) -> None:
        """Write label frame ``t`` (Y, X) atomically, replacing its previous version."""
        from .io.tiff import write_labels_tiff

        frame = np.asarray(labels)
        if frame.shape != tuple(self.manifest.shape[-2:]):
            raise InputError(
                f"a frame of this project has shape {self.manifest.shape[-2:]}, got {frame.shape}"
            )
        write_labels_tiff(self.frame_path(t), frame, overwrite=True)

    def saved_frames(self) -> list[int]:
        """Frames that have a saved label image, in order."""
        folder = self.path / LABELS
        if not folder.is_dir():
            return []
        found = (_FRAME.match(p.name) for p in folder.iterdir())
        return sorted(int(m.group(1)) for m in found if m and int(m.group(1)) < self.n_frames)

    @property
    def n_frames(self) -> int:
        return self.manifest.n_frames

    def load_frame(self, t: int) -> np.ndarray:
        """Saved label frame ``t`` as (Y, X), uint16 or uint32.

        Raises
        ------
        FileNotFoundError
            Frame ``t`` was never saved.
        InputError
            The file is damaged or of another shape.
        """
        import tifffile

        path = self.frame_path(t)
        try:
            frame = tifffile.imread(path)
        except FileNotFoundError:
            raise
        except (OSError, ValueError, tifffile.TiffFileError) as err:
            raise InputError(f"{path} is damaged: {err}") from err
        if frame.shape != tuple(self.manifest.shape[-2:]):
            raise InputError(f"{path} has shape {frame.shape}, not {self.manifest.shape[-2:]}")
        return frame

    def load_frames(self) -> dict[int, np.ndarray]:
        """Every saved frame, ``{t: (Y, X) labels}``."""
        return {t: self.load_frame(t) for t in self.saved_frames()}

    # -- curated frames --------------------------------------------------------------------------
    def save_curated(self, frames) -> None:
        """Record which frames are curated (replaces the previous list)."""
        frames = sorted({self._check_t(t) for t in frames})
        _write_json(self.path / CURATED, {"frames": frames})

    def load_curated(self) -> list[int]:
        """The curated frames, in order (none when never saved)."""
        path = self.path / CURATED
        if not path.exists():
            return []
        try:
            frames = json.loads(path.read_text())["frames"]
            return sorted({self._check_t(t) for t in frames})
        except (ValueError, KeyError, TypeError) as err:
            raise InputError(f"{path} is damaged: {err}") from err

    # -- tracks: lineage, pins, review -----------------------------------------------------------
    def save_tracks(self, lineage, *, pins=(), reviewed=()) -> None:
        """Record the lineage of the labels, the pinned links and the reviewed rows."""
        rows = np.asarray(lineage, dtype=np.int64).reshape(-1, 4).tolist()
        content = {
            "lineage": rows,
            "pins": [list(map(int, p)) for p in pins],
            "reviewed": sorted(str(r) for r in reviewed),
        }
        _write_json(self.path / TRACKS, content)

    def load_tracks(self) -> tuple[np.ndarray, list[list[int]], list[str]] | None:
        """The saved lineage rows, pins (``[t, y, x, y', x']``) and reviewed rows, or None."""
        path = self.path / TRACKS
        if not path.exists():
            return None
        try:
            content = json.loads(path.read_text())
            lineage = np.asarray(content["lineage"], dtype=np.int64).reshape(-1, 4)
            pins = [[int(v) for v in p] for p in content.get("pins", [])]
            if any(len(p) != 5 for p in pins):
                raise ValueError("a pin has 5 numbers: t, y, x, y', x'")
            return lineage, pins, [str(r) for r in content.get("reviewed", [])]
        except (ValueError, KeyError, TypeError) as err:
            raise InputError(f"{path} is damaged: {err}") from err
