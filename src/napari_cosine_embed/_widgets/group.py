"""The Group widget: cluster cached embeddings into instances, with a live preview of one frame.

HDBSCAN has an expensive part (the tree, which depends on the frame, ``min_samples``, the
coordinate weight and the foreground mask) and a cheap one (cutting the tree for a
``min_cluster_size``, epsilon and selection method). The preview keeps one
:class:`~..core.grouping.HDBSCANGrouper` per expensive combination, so moving a cheap control
re-cuts a cached tree, while an expensive change builds a new tree. Both run in a worker (a cut
and its clean-up take 0.1-0.2 s on a 1024x1024 frame, too long for the main thread), one at a
time, and the old preview stays until the new one is ready. Control changes are debounced (a
single-shot timer); a result whose parameters changed meanwhile is cached but not shown, and the
latest parameters are run when the worker ends. Mean shift runs in the worker too.

"Apply to all frames" groups every frame with the current parameters into a labels layer called
``instances``; "Auto-tune" grid-searches the parameters on the frames of a labels layer marked as
curated and sets the best ones into the controls. What needs no GUI (the parameters, grouping a
frame, the workers' generators, the tuning inputs) is in :mod:`._grouping`.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FloatSlider,
    FloatSpinBox,
    Label,
    PushButton,
    Slider,
    SpinBox,
)

from ..core.errors import InputError
from ._grouping import TUNE_SPACES as TUNE_SPACES
from ._grouping import (
    GroupParams,
    _group_job,
    _preview_job,
    _tune_job,
    tune_inputs,
    tune_steps,
    tuned_fields,
)
from ._grouping import build_grouper as build_grouper
from ._grouping import group_frame as group_frame
from ._jobs import JobControl
from ._layers import build_layer
from ._session import session_for
from .embed import (
    check_image_layer,
    connect_while_alive,
    frames_of,
    layer_choices,
    layer_events,
    named_layer,
    real_viewer,
)

if TYPE_CHECKING:
    import napari

__all__ = ["INSTANCES_LAYER", "PREVIEW_LAYER", "GroupParams", "GroupWidget", "group_frame"]

PREVIEW_LAYER = "preview"
INSTANCES_LAYER = "instances"
DEBOUNCE_MS = 50
_CACHED_GROUPERS = 8


class GroupWidget(Container):
    """Group an image layer's cached embeddings into instances.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        Injected by napari.

    Attributes
    ----------
    preview_latencies : dict of str to list of float
        Seconds from the last change of a control (keyed by its name, e.g.
        ``"min_cluster_size"``, ``"min_samples"``, or ``"frame"`` for the slider) to the preview
        layer showing its result.
    builds : int
        Groupers built for the preview so far (a cheap change builds none).
    preview_frame : int or None
        Frame the preview layer shows.
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        from qtpy.QtCore import QTimer

        self._viewer = viewer = real_viewer(viewer)
        self._session = session = session_for(viewer)
        d = GroupParams()
        self._image = ComboBox(label="image", choices=layer_choices(viewer, "Image"))
        self._diameter = FloatSpinBox(
            label="object diameter (px)", min=0.0, max=2000.0, step=1.0, value=d.diameter
        )
        self._diameter.tooltip = (
            "Typical diameter of your objects in pixels (0: not set). Setting it sets the min "
            "cluster size and min object size for objects this large, and HDBSCAN's sense of "
            "distance; Estimate measures it from the embeddings."
        )
        self._estimate = PushButton(text="Estimate diameter")
        self._auto_diameter = CheckBox(text="estimate when embeddings arrive", value=True)
        self._auto_diameter.tooltip = (
            "While the diameter is 0 (not set), measure it once from the first embeddings of "
            "each image, as the command line does by default."
        )
        self._auto_sized: set[int] = set()
        # the estimate's own line: the preview's status line is rewritten on every build
        self._size_note = Label(value="")
        self._method = ComboBox(label="method", choices=["hdbscan", "meanshift"], value=d.method)
        self._method.tooltip = "How pixels are grouped: HDBSCAN (default) or mean shift."
        self._min_samples = SpinBox(label="min samples", min=1, max=200, value=d.min_samples)
        self._min_samples.tooltip = (
            "HDBSCAN's smoothing: higher makes grouping more conservative (fewer, surer "
            "objects) and each change rebuilds the tree (slower than the other settings)."
        )
        self._min_cluster_size = Slider(
            label="min cluster size", min=2, max=5000, value=d.min_cluster_size
        )
        self._min_cluster_size.tooltip = (
            "The fewest pixels HDBSCAN keeps as a group of their own: raise it when objects "
            "come out split in parts. It is not the smallest object: background pixels given "
            "to the nearest group and neck cuts can leave smaller pieces; 'smallest object' "
            "removes those. Set by the diameter."
        )
        self._coord_weight = FloatSlider(
            label="coordinate weight", min=0.0, max=5.0, step=0.1, value=d.coord_weight
        )
        self._epsilon = FloatSpinBox(label="epsilon", min=0.0, max=2.0, step=0.01, value=0.0)
        self._selection = ComboBox(label="selection", choices=["eom", "leaf"], value=d.selection)
        self._bandwidth = FloatSpinBox(
            label="bandwidth", min=0.01, max=1.0, step=0.01, value=d.bandwidth
        )
        self._threshold = FloatSlider(
            label="object certainty",
            min=0.0,
            max=1.0,
            step=0.01,
            value=self._session.foreground_threshold(),
        )
        self._threshold.tooltip = (
            "How sure the model must be that a pixel is object (its foreground probability, "
            "0-1) for the pixel to be grouped. Higher: tighter outlines, faint objects "
            "dropped; lower: fuller outlines, faint objects kept, more background taken in. "
            "A fine-tuned model brings its own calibrated value, set here when it is used."
        )
        self._min_size = SpinBox(label="smallest object (px)", min=0, max=100_000, value=d.min_size)
        self._min_size.tooltip = (
            "Objects with fewer pixels than this are removed (debris, fragments). Set by the "
            "diameter."
        )
        self._split = CheckBox(text="split disconnected pieces", value=d.split)
        self._split.tooltip = "An object in pieces that do not touch becomes one object per piece."
        self._split_depth = FloatSpinBox(
            label="split touching objects", min=0.0, max=0.95, step=0.05, value=d.split_depth
        )
        self._split_depth.tooltip = (
            "How readily an object shaped like round blobs joined by a neck (touching nuclei "
            "grouped as one) is cut at the neck: it is cut when the neck is at least this "
            "deep, relative to the object's half-width. Lower splits more readily; 0 never cuts."
        )
        self._advanced = CheckBox(text="show clustering settings (advanced)", value=False)
        self._advanced.tooltip = (
            "The grouping method and HDBSCAN's own parameters; the settings above are usually "
            "all you need."
        )
        self._live = CheckBox(text="live preview of the frame in view", value=True)
        self._status = Label(value="")
        self._apply = JobControl(session, "group", "Apply to all frames")
        self._curated = ComboBox(label="curated labels", choices=self._labels_choices)
        self._tune = JobControl(session, "tune", "Auto-tune on curated frames")
        self._controls = {
            "image": self._image,
            "diameter": self._diameter,
            "threshold": self._threshold,
            "split_depth": self._split_depth,
            "min_size": self._min_size,
            "live": self._live,
            "method": self._method,
            "min_samples": self._min_samples,
            "min_cluster_size": self._min_cluster_size,
            "coord_weight": self._coord_weight,
            "epsilon": self._epsilon,
            "selection": self._selection,
            "bandwidth": self._bandwidth,
            "split": self._split,
        }
        # the object diameter first, then two plain controls; the clustering under "advanced"
        below = [self._status, self._apply, self._curated, self._tune]
        widgets = list(self._controls.values())
        widgets[2:2] = [self._estimate, self._auto_diameter, self._size_note]
        widgets.insert(widgets.index(self._method), self._advanced)
        super().__init__(widgets=[*widgets, *below])
        self.preview_latencies: dict[str, list[float]] = {}
        self.builds = 0
        self.preview_frame: int | None = None
        self._groupers: OrderedDict[tuple, tuple[Any, Any]] = OrderedDict()  # key -> (store, g)
        self._worker = None
        self._changed: tuple[str, float] | None = None  # (control, when) not yet shown
        self._timer = QTimer(self.native)  # deleted with the widget, so it never fires after
        self._timer.setSingleShot(True)
        self._timer.setInterval(DEBOUNCE_MS)
        self._timer.timeout.connect(self.refresh_preview)
        for name, widget in self._controls.items():
            widget.changed.connect(partial(self._control_changed, name))
        self._diameter.changed.connect(self._diameter_set)
        self._advanced.changed.connect(self._show_method_controls)
        self._estimate.changed.connect(self.estimate_diameter)
        self._estimator = None
        self._apply.on_click(self.apply_to_all)
        self._tune.on_click(self.auto_tune)
        connect_while_alive(
            self,
            [
                (viewer.dims.events.current_step, self._frame_moved),
                (session.embeddings_changed, self._embedding_arrived),
                (session.model_changed, self._model_replaced),
                *layer_events(viewer, self._layers_changed),
            ],
        )
        # a preview worker may finish after the dock widget is closed: then it must not redraw
        self._closed = False
        self.native.destroyed.connect(self._mark_closed)
        self._coord_by_method = {"hdbscan": d.coord_weight, "meanshift": 0.0}
        self._shown_method = d.method
        self._show_method_controls()
        self._control_changed("image")

    def _mark_closed(self, *_: Any) -> None:
        self._closed = True

    # -- object size --------------------------------------------------------------------------
    def _diameter_set(self, value: float) -> None:
        """The size controls follow a diameter (as ``segment``'s do); 0 leaves them alone."""
        if value <= 0:
            return
        from ..core.diameter import size_parameters

        sizes = size_parameters(value)
        for name in ("min_cluster_size", "min_size"):
            control = self._controls[name]
            control.value = min(control.max, max(control.min, sizes[name]))

    def estimate_diameter(self) -> None:
        """Measure the typical object diameter from the embeddings of up to 3 frames (worker)."""
        layer = self._image.value
        if layer is None or self._estimator is not None:
            return
        store = self._session.store_for(layer, create=False)
        done = [] if store is None else [t for t in range(store.n_frames) if store.has(t)]
        if not done:
            self._size_note.value = "no embedding yet: compute embeddings in the Embed widget first"
            return
        from napari.qt.threading import create_worker

        frames = [done[round(i)] for i in np.linspace(0, len(done) - 1, min(3, len(done)))]
        self._size_note.value = "estimating the object diameter..."
        worker = create_worker(_estimate_job, store, sorted(set(frames)), _start_thread=False)
        worker.returned.connect(self._estimated)
        worker.errored.connect(self._estimate_failed)
        worker.finished.connect(partial(setattr, self, "_estimator", None))
        self._estimator = worker
        worker.start()

    def _estimate_failed(self, exc: BaseException) -> None:
        if not self._closed:
            self._size_note.value = f"estimate failed: {exc}"

    def _estimated(self, estimate: Any) -> None:
        if self._closed:
            return
        if estimate.diameter is None:
            why = estimate.reason or "no object found to measure"
            self._size_note.value = f"{why} (check the foreground threshold)"
            return
        self._diameter.value = round(estimate.diameter, 1)
        self._size_note.value = (
            f"object diameter {estimate.diameter:.1f} px, from {estimate.pieces} objects in "
            f"frame(s) {', '.join(map(str, estimate.frames))}"
        )

    # -- parameters ---------------------------------------------------------------------------
    def params(self) -> GroupParams:
        """The parameters the controls show now."""
        return GroupParams.from_values({n: w.value for n, w in self._controls.items()})

    def set_params(self, **values: Any) -> None:
        """Set controls by :class:`GroupParams` field name (one debounced preview follows)."""
        for name, value in values.items():
            self._controls[name].value = value

    def _show_method_controls(self, *_: Any) -> None:
        # each method keeps its own coordinate weight (mean shift's default is 0, as in
        # ``segment --grouping meanshift``), so switching back and forth restores it
        shown, method = self._shown_method, self._method.value
        if shown != method:
            self._coord_by_method[shown] = float(self._coord_weight.value)
            with self._coord_weight.changed.blocked():
                self._coord_weight.value = self._coord_by_method[method]
        self._shown_method = method
        hdbscan, advanced = method == "hdbscan", bool(self._advanced.value)
        for widget in (self._min_samples, self._min_cluster_size, self._epsilon, self._selection):
            widget.visible = advanced and hdbscan
        self._bandwidth.visible = advanced and not hdbscan
        for widget in (self._method, self._coord_weight, self._split):
            widget.visible = advanced

    # -- live preview --------------------------------------------------------------------------
    def _control_changed(self, name: str, *_: Any) -> None:
        if name == "method":
            self._show_method_controls()
        self._changed = (name, time.perf_counter())
        self._timer.start()  # restarts: only the last of a burst of changes runs

    def _frame_moved(self, *_: Any) -> None:
        layer = self._image.value
        if layer is not None and layer.ndim == 3 and self._frame_index(layer) != self.preview_frame:
            self._control_changed("frame")

    def _embedding_arrived(self, name: str, t: int) -> None:
        layer = self._image.value
        if layer is None or layer.name != name:
            return
        self._auto_estimate(layer)
        if t == self._frame_index(layer):
            self._control_changed("frame")

    def _auto_estimate(self, layer: Any) -> None:
        """Measure the diameter once per embedded image, as ``segment --diameter auto`` does,
        unless the user has set one (a diameter they set, or set back to 0, is kept)."""
        if self._diameter.value > 0 or not self._auto_diameter.value:
            return
        store = self._session.store_for(layer, create=False)
        if store is None or id(store) in self._auto_sized:
            return
        self._auto_sized.add(id(store))
        self.estimate_diameter()

    def _model_replaced(self) -> None:
        self._groupers.clear()
        threshold = self._session.foreground_threshold()
        if abs(float(self._threshold.value) - threshold) > 1e-6:
            self._threshold.value = threshold  # its change refreshes the preview
        else:
            self._control_changed("image")

    def _layers_changed(self, *_: Any) -> None:
        self._image.reset_choices()
        self._curated.reset_choices()

    def _labels_choices(self, *_: Any) -> list[tuple[str, Any]]:
        choices = layer_choices(self._viewer, "Labels")()
        return [(name, layer) for name, layer in choices if name != PREVIEW_LAYER]

    def _frame_index(self, layer: Any) -> int:
        if layer.data.ndim == 2:
            return 0
        t = layer.world_to_data(self._viewer.dims.point)[0]
        return int(np.clip(round(float(t)), 0, layer.data.shape[0] - 1))

    def refresh_preview(self) -> None:
        """Show the instances of the frame in view for the current parameters (debounced)."""
        layer = self._image.value
        if not self._live.value or layer is None:
            return
        try:
            check_image_layer(layer)
        except InputError as exc:
            self._status.value = str(exc)
            return
        t = self._frame_index(layer)
        store = self._session.store_for(layer, create=False)  # hashes 3 frames: once per call
        if store is None or not store.has(t):
            self._status.value = f"frame {t} has no embedding yet: compute it in the Embed widget"
            return
        params = self.params()
        key = (id(store), t, *params.build_key())
        entry = self._groupers.get(key)
        grouper = entry[1] if entry is not None and entry[0] is store else None
        if self._worker is not None:
            return  # the running job re-checks the parameters when it ends: the latest wins
        from napari.qt.threading import create_worker

        # Even a cut of a built tree runs in the worker (with its clean-up it takes 0.1-0.2 s
        # on a 1024x1024 frame); the old preview stays until the new one is ready.
        if grouper is None:
            self._status.value = f"frame {t}: building..."
        else:
            self._groupers.move_to_end(key)
        # The first preview's layer object is built in the worker too (see ._layers).
        place = None if named_layer(self._viewer, PREVIEW_LAYER) else _preview_place(layer, t)
        worker = create_worker(
            _preview_with_layer, store, t, params, grouper, place, _start_thread=False
        )
        built = grouper is None
        worker.returned.connect(partial(self._preview_built, layer, t, params, key, store, built))
        worker.errored.connect(self._preview_failed)
        worker.finished.connect(partial(self._preview_finished, worker))
        self._worker = worker
        worker.start()

    def _preview_built(self, layer, t, params, key, store, built, result) -> None:
        if self._closed:
            return  # the widget was closed while the build ran: its controls are gone
        grouper, labels, seconds, new_layer = result
        self.builds += built
        self._groupers[key] = (store, grouper)
        while len(self._groupers) > _CACHED_GROUPERS:
            self._groupers.popitem(last=False)
        current = self._image.value
        if current is layer and self._frame_index(layer) == t and self.params() == params:
            how = "computed" if built else "cut"
            self._show(layer, t, labels, f"{how} in {1000 * seconds:.0f} ms", new_layer)
        # otherwise stale: _preview_finished asks again with the parameters of now

    def _preview_failed(self, exc: BaseException) -> None:
        if not self._closed:
            self._status.value = f"failed: {exc}"

    def _preview_finished(self, worker) -> None:
        if self._worker is worker:
            self._worker = None
            if self._changed is not None and not self._closed:
                self.refresh_preview()

    def _show(
        self, layer: Any, t: int, labels: np.ndarray, how: str, new_layer: Any = None
    ) -> None:
        data = labels if layer.data.ndim == 2 else labels[None]
        translate = _preview_place(layer, t)["translate"]
        viewer = self._viewer
        target = named_layer(viewer, PREVIEW_LAYER)
        if target is None or type(target).__name__ != "Labels" or target.ndim != data.ndim:
            if target is not None:
                viewer.layers.remove(target)
            if new_layer is not None and new_layer.data.shape == data.shape:
                viewer.layers.append(new_layer)  # built in the worker: only inserted here
            else:
                viewer.add_labels(data, name=PREVIEW_LAYER, opacity=0.5, **_preview_place(layer, t))
            viewer.layers.selection.active = layer
        else:
            if target.data.shape == data.shape and target.data.dtype == data.dtype:
                target.data[...] = data  # in place: half the cost of a new array (no dims update)
                target.refresh()
            else:
                target.data = data
            if not np.array_equal(target.translate, translate):  # each set redoes the dims
                target.translate = translate
        self.preview_frame = t
        if self._changed is not None:
            name, when = self._changed
            self.preview_latencies.setdefault(name, []).append(time.perf_counter() - when)
            self._changed = None
        self._status.value = f"frame {t}: {int(labels.max())} objects ({how})"

    # -- all frames ------------------------------------------------------------------------------
    def _cached_store(self, layer: Any):
        check_image_layer(layer)
        store = self._session.store_for(layer, create=False)
        missing = list(range(frames_of(layer))) if store is None else store.missing()
        if missing:
            raise InputError(
                f"{len(missing)} of {frames_of(layer)} frames of '{layer.name}' have no "
                "embedding yet: run Compute embeddings in the Embed widget first"
            )
        return store

    def apply_to_all(self) -> None:
        """Group every frame into the ``instances`` labels layer (the button's action)."""
        layer = self._image.value
        store = self._cached_store(layer)
        shape = tuple(layer.data.shape)
        viewer = self._viewer
        target = named_layer(viewer, INSTANCES_LAYER)
        if target is not None and (
            type(target).__name__ != "Labels" or tuple(target.data.shape) != shape
        ):
            raise InputError(
                f"a layer called '{INSTANCES_LAYER}' of shape {tuple(target.data.shape)} exists "
                f"and is not a labels layer of the image's shape {shape}: rename or delete it"
            )
        place = None
        if target is None:  # the layer object is built in the worker, inserted at its yield
            place = {"shape": shape, "scale": layer.scale, "translate": layer.translate}
        self._apply.start(
            _with_instances_layer(_group_job(store, self.params()), place),
            on_yield=partial(self._write_frame, layer, [target]),
        )

    def _write_frame(self, source: Any, target: list, payload: Any) -> None:
        if not isinstance(payload, tuple):  # the new instances layer
            if named_layer(self._viewer, INSTANCES_LAYER) is None:
                self._viewer.layers.append(payload)
                self._viewer.layers.selection.active = source
                target[0] = payload
            return
        t, labels = payload
        target = target[0] if target[0] is not None else named_layer(self._viewer, INSTANCES_LAYER)
        if target is None:
            return  # deleted while the job ran
        if target.data.ndim == 2:
            target.data[:] = labels
        else:
            target.data[t] = labels
            if self._frame_index(source) != t:
                return  # written in place: napari reads it when that frame is shown
        target.refresh()

    # -- auto-tune -------------------------------------------------------------------------------
    def auto_tune(self) -> None:
        """Search parameters on the curated frames of the chosen labels layer (the button's)."""
        layer, labels = self._image.value, self._curated.value
        check_image_layer(layer)
        steps, total = tune_steps(*tune_inputs(self._session, layer, labels), self.params())
        self._tune.start(
            _tune_job(steps, total), on_yield=self._tune_progress, on_return=self._tune_done
        )

    def _tune_progress(self, result: Any) -> None:
        self._tune.set_status(
            f"{len(result.trials)} trials, best {result.metric} {result.best_score:.3f}"
        )

    def _tune_done(self, result: Any) -> None:
        if result is None or not result.best_params:
            self._tune.set_status("no trial could be scored")
            return
        values = tuned_fields(result.best_params)
        self.set_params(**values)
        shown = ", ".join(f"{k} {v}" for k, v in values.items())
        self._tune.set_status(f"best {result.metric} {result.best_score:.3f}: {shown}")


def _with_instances_layer(job: Any, place: dict | None) -> Any:
    """Worker: the ``instances`` layer object first when ``place`` (shape, scale, translate)
    says one is needed, then ``job``'s frames."""
    if place is not None:
        shape = place.pop("shape")
        yield 0, 1, build_layer("labels", np.zeros(shape, np.int32), name=INSTANCES_LAYER, **place)
    return (yield from job)


def _preview_place(layer: Any, t: int) -> dict[str, Any]:
    """Scale and translation of the one-frame preview of frame ``t`` of ``layer``."""
    translate = np.array(layer.translate, float)
    if layer.data.ndim == 3:
        translate[0] += t * layer.scale[0]
    return {"scale": np.array(layer.scale, float), "translate": translate}


def _preview_with_layer(
    store: Any, t: int, params: GroupParams, grouper: Any, place: dict | None
) -> tuple[Any, np.ndarray, float, Any]:
    """Worker: :func:`._grouping._preview_job`, and the preview layer object built from its
    labels when ``place`` says where one is needed (the viewer has none yet)."""
    grouper, labels, seconds = _preview_job(store, t, params, grouper)
    if place is None:
        return grouper, labels, seconds, None
    data = labels if len(place["scale"]) == 2 else labels[None]  # a (Y, X) or (T, Y, X) image
    return (
        grouper,
        labels,
        seconds,
        build_layer("labels", data, name=PREVIEW_LAYER, opacity=0.5, **place),
    )


def _estimate_job(store: Any, frames: list[int]) -> Any:
    """The diameter estimate from stored embeddings (runs in a worker thread)."""
    from ..core.diameter import estimate_from_embeddings

    return estimate_from_embeddings([store.get(t) for t in frames], frames)
