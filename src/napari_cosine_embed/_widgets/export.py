"""Export widget: save results as a CTC result folder or a GEFF store (tracks, lineage and
segmentation, for motile-tracker and other GEFF readers), curated frames as CTC ground truth,
or labels as a TIFF.

The core writers (:mod:`..core.io.ctc`, :mod:`..core.io.geff_store`, :mod:`..core.io.tiff`) build everything in a temporary
sibling and move it into place when complete, so a cancelled or failed export leaves nothing
half-written. An existing output is replaced only when "overwrite" is ticked; otherwise the
user is told and the output is left as it was. The arrays are copied on the main thread and
written in a worker, so a long movie does not freeze napari.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit

from ..core.errors import InputError, OutputExistsError
from ._jobs import JobControl
from ._paths import data_folder
from ._session import session_for
from .embed import layer_choices, watch_layers
from .track import LABELS_NAME as TRACKED_LABELS
from .track import TRACKS_NAME as TRACKS_LAYER

if TYPE_CHECKING:
    import napari

__all__ = ["ExportWidget", "suggested_output"]

RESULT = "CTC result folder"
GROUND_TRUTH = "CTC ground truth (curated frames)"
TIFF = "labels TIFF"
GEFF = "GEFF (tracks + segmentation)"


def _parents(tracks_layer: Any) -> dict[int, int]:
    """``{child: parent}`` from a Tracks layer's graph (track ids are the label values)."""
    if tracks_layer is None:
        return {}
    parents = {}
    for child, ps in (tracks_layer.graph or {}).items():
        ps = [ps] if np.isscalar(ps) else list(ps)
        if ps:
            parents[int(child)] = int(ps[0])
    return parents


def _ctc_tracks(labels: np.ndarray, parents: dict[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Labels and lineage in CTC form: a track that skips frames continues under a new label."""
    from ..core.io.lineage import split_track_gaps

    return split_track_gaps(labels, parents=parents or None)


def suggested_output(fmt: str, labels_name: str, image_path: Path | None, folder: Path) -> Path:
    """Where to export by default: beside the movie, named after it, never an existing path.

    A CTC result goes to ``<movie>_RES``, ground truth to ``<movie>_GT`` (the CTC layout), a
    GEFF to ``<movie>_tracks.geff``, a TIFF to ``<labels>.tif``; ``<movie>`` is the image file's stem, or the labels layer's name
    when the image came from no file. ``folder`` is the image file's folder when there is one.
    """
    stem = image_path.stem.split(".")[0] if image_path is not None else labels_name
    names = {RESULT: f"{stem}_RES", GROUND_TRUTH: f"{stem}_GT", GEFF: f"{stem}_tracks.geff"}
    name = names.get(fmt, f"{labels_name}.tif")
    path, n = folder / name, 2
    while path.exists():
        stem_, dot, suffix = name.rpartition(".")
        base, suffix = (stem_, f".{suffix}") if dot and suffix in ("tif", "geff") else (name, "")
        path, n = folder / f"{base}-{n}{suffix}", n + 1
    return path


def _write(write: Callable[[], Path]) -> Generator[tuple[int, int, None], None, Path]:
    """A writer as a job; the core writers are single calls, so progress is start and end."""
    yield 0, 1, None
    out = write()
    yield 1, 1, None
    return out


class ExportWidget(Container):
    """Dock widget: export a labels layer (and its tracks) to disk.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        Injected by napari.
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        self._viewer = viewer
        self._session = session_for(viewer)
        self._format = ComboBox(label="export as", choices=[RESULT, GEFF, GROUND_TRUTH, TIFF])
        self._labels_choice = ComboBox(label="labels", choices=layer_choices(viewer, "Labels"))
        self._tracks = ComboBox(
            label="tracks", choices=layer_choices(viewer, "Tracks"), nullable=True, value=None
        )
        self._path = FileEdit(label="output", mode="d")
        self._overwrite = CheckBox(label="overwrite", value=False)
        self._control = JobControl(self._session, "export", "Export")
        super().__init__(
            widgets=[
                self._format,
                self._labels_choice,
                self._tracks,
                self._path,
                self._overwrite,
                self._control,
            ]
        )
        self._control.on_click(self._run)
        # Until the user sets them, the choices follow the newest results: the tracked labels
        # and their tracks, and an output path beside the movie.
        # Only what the user does counts (Qt's activated, textEdited, a click on the file
        # button), not a choice napari resets when layers come and go.
        self._auto = {"labels": True, "tracks": True, "path": True}
        self._labels_choice.native.activated.connect(partial(self._user_set, "labels"))
        self._tracks.native.activated.connect(partial(self._user_set, "tracks"))
        self._path.line_edit.native.textEdited.connect(partial(self._user_set, "path"))
        self._path.choose_btn.changed.connect(partial(self._user_set, "path"))
        self._format.changed.connect(self._format_changed)
        self._format_changed()
        watch_layers(viewer, self._follow_results)
        self._follow_results()

    @property
    def control(self) -> JobControl:
        return self._control

    def _format_changed(self, *_: Any) -> None:
        tiff = self._format.value == TIFF
        self._path.mode = "w" if tiff else "d"
        self._path.filter = "*.tif *.tiff" if tiff else None
        self._tracks.visible = not tiff
        self._follow_results()

    def _user_set(self, key: str, *_: Any) -> None:
        self._auto[key] = False
        if key == "labels":
            self._follow_results()  # the tracks and the path follow the chosen labels

    def _follow_results(self) -> None:
        """Choose the newest results and a path beside the movie, where the user has not."""
        self._labels_choice.reset_choices()
        self._tracks.reset_choices()
        labels_layers = list(self._labels_choice.choices)
        if self._auto["labels"] and labels_layers:
            tracked = [x for x in labels_layers if x.name == TRACKED_LABELS]
            self._labels_choice.value = (tracked or labels_layers)[-1]
        labels = self._labels_choice.value
        if self._auto["tracks"]:  # the Track widget's tracks go with its labels, only
            made = [x for x in self._tracks.choices if x is not None and x.name == TRACKS_LAYER]
            paired = made and labels is not None and labels.name == TRACKED_LABELS
            self._tracks.value = made[-1] if paired else None
        if self._auto["path"] and labels is not None:
            image = next((x for x in self._viewer.layers if data_folder(x) is not None), None)
            source = None if image is None else Path(image.source.path)
            folder = Path.cwd() if image is None else data_folder(image)
            self._path.value = suggested_output(self._format.value, labels.name, source, folder)

    def _output(self) -> Path:
        path = self._path.value
        if path is None or str(path) in ("", "."):
            raise InputError("Choose where to export (the output path is empty).")
        path = Path(path).expanduser()
        if self._format.value == TIFF and path.suffix.lower() not in (".tif", ".tiff"):
            path = path.with_name(path.name + ".tif")
        if self._format.value == GEFF and path.suffix.lower() not in (".geff", ".zarr"):
            path = path.with_name(path.name + ".geff")
        self._check_not_over_sources(path)
        if path.exists() and not self._overwrite.value:
            raise OutputExistsError(
                f"{path} already exists; tick 'overwrite' to replace it, or choose another path"
            )
        return path

    def _check_not_over_sources(self, path: Path) -> None:
        """Refuse an output that is, holds or sits inside a file a layer was opened from, or
        the project folder the corrections are autosaved to (even with overwrite ticked)."""
        from ..core.io.outputs import check_output

        reads = [
            (f"file layer '{layer.name}' was opened from", layer.source.path)
            for layer in self._viewer.layers
            if getattr(layer.source, "path", None)
        ]
        project = self._session.project_dir
        reads.append(("project folder of your autosaved corrections", project))
        check_output(path, reads, name="the export path")

    def _run(self) -> None:
        """Check the inputs and copy the data on the main thread, then write in a worker."""
        layer = self._labels_choice.value
        if layer is None:
            raise InputError("Choose a labels layer to export.")
        path = self._output()
        overwrite = bool(self._overwrite.value)
        labels = np.array(layer.data, copy=True)  # later edits must not race with the writer
        fmt = self._format.value
        if fmt == TIFF:
            from ..core.io.tiff import write_labels_tiff

            def write() -> Path:
                return write_labels_tiff(path, labels, overwrite=overwrite)
        else:
            write = self._ctc_writer(fmt, layer, labels, path, overwrite)
        self._control.start(_write(write), on_return=self._done)

    def _ctc_writer(
        self, fmt: str, layer: Any, labels: np.ndarray, path: Path, overwrite: bool
    ) -> Callable[[], Path]:
        from ..core.io.ctc import write_ctc_gt, write_ctc_result
        from ..core.io.geff_store import write_geff

        if labels.ndim == 2:
            labels = labels[None]
        if labels.ndim != 3:
            raise InputError(
                f"'{layer.name}' has shape {labels.shape}; a CTC folder needs labels of shape "
                "(T, Y, X) or (Y, X)"
            )
        parents = _parents(self._tracks.value)
        missing = sorted(set(parents) - set(np.unique(labels).tolist()))
        if missing:
            raise InputError(
                f"the tracks layer names tracks {missing[:5]} that are not labels of "
                f"'{layer.name}'; choose the tracks made from these labels, or none"
            )
        if fmt == RESULT:
            return lambda: write_ctc_result(
                path, *_ctc_tracks(labels, parents), overwrite=overwrite
            )
        if fmt == GEFF:
            return lambda: write_geff(path, *_ctc_tracks(labels, parents), overwrite=overwrite)
        curated = self._session.curated_frames(layer.name)
        if not curated:
            raise InputError(
                f"'{layer.name}' has no curated frame; mark the corrected frames as curated to "
                "export them as ground truth"
            )
        if curated[-1] >= labels.shape[0]:
            raise InputError(f"curated frames {curated} do not fit '{layer.name}'")

        def write() -> Path:
            tra, lineage = _ctc_tracks(labels, parents)
            seg = {t: tra[t] for t in curated}  # the same ids as TRA, even after a gap split
            return write_ctc_gt(path, tra=tra, lineage=lineage, seg=seg, overwrite=overwrite)

        return write

    def _done(self, path: Path) -> None:
        self._control.set_status(f"wrote {path}")
