"""The Embed widget: pick an image layer, a model and a device; embed the movie frame by frame.

Frames go into the session's embedding cache (:meth:`~._session.Session.store_for`) as they are
computed, so the Group widget can preview a frame long before the movie is done, a cancelled run
keeps what it computed, and a second run with the same image and model computes nothing. The
network is recurrent (its state runs from frame to frame), so a run resumes at the first missing
frame and recomputes every frame after it, never a lone frame in the middle.

This module also holds the small layer-picking helpers the other widgets share.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Generator
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, Label

from ..core.errors import InputError
from ._jobs import JobControl, notify_error
from ._layers import build_layer
from ._pca import PCAColours
from ._session import session_for

if TYPE_CHECKING:
    import napari

__all__ = [
    "PCA_LAYER",
    "EmbedWidget",
    "check_image_layer",
    "connect_while_alive",
    "frames_of",
    "layer_choices",
    "layer_events",
    "named_layer",
    "real_viewer",
    "watch_layers",
]

CHOOSE_FILE = "Choose file..."
PCA_LAYER = "embedding PCA"


# -- helpers shared by the widgets -------------------------------------------------------------
#: Layers the widgets write as transient previews (see group.py and correct.py).
SCRATCH_LAYERS = ("preview", "click-to-add preview")


def layer_choices(viewer: napari.viewer.Viewer, kind: str) -> Callable[[Any], list]:
    """Choices callback of a ComboBox listing the layers of one type ("Image", "Labels"...).

    The widgets' own scratch layers (the Group preview, the click-to-add preview) are not
    offered: they hold one frame of a suggestion, never the user's labels.
    """

    def choices(*_: Any) -> list[tuple[str, Any]]:
        return [
            (layer.name, layer)
            for layer in viewer.layers
            if type(layer).__name__ == kind and layer.name not in SCRATCH_LAYERS
        ]

    return choices


def connect_while_alive(widget: Container, connections: list[tuple[Any, Callable]]) -> None:
    """Connect each ``(signal, callback)`` pair; disconnect them when ``widget`` is deleted.

    The viewer and the session outlive a closed dock widget; without this, their next event
    (a layer removed while the viewer closes, a frame embedded) would reach deleted Qt widgets.
    Works for napari event emitters and psygnal signals alike.
    """
    for signal, callback in connections:
        signal.connect(callback)

    def disconnect(*_: Any) -> None:
        for signal, callback in connections:
            signal.disconnect(callback)

    widget.native.destroyed.connect(disconnect)


def layer_events(viewer: napari.viewer.Viewer, callback: Callable) -> list[tuple[Any, Callable]]:
    """``(signal, callback)`` pairs for layers added, removed or renamed."""
    events = viewer.layers.events
    return [(events.inserted, callback), (events.removed, callback), (events.renamed, callback)]


def next_turn(parent: Any, callback: Callable[[], None]) -> Callable[[], None]:
    """A function that runs ``callback()`` on the next turn of the event loop, once however
    often it is called before then; its timer is a child of the Qt object ``parent`` and is
    deleted with it (so it never fires after)."""
    from qtpy.QtCore import QTimer

    timer = QTimer(parent)
    timer.setSingleShot(True)
    timer.setInterval(0)
    timer.timeout.connect(lambda: callback())
    return timer.start


def watch_layers(viewer: napari.viewer.Viewer, callback: Callable[[], None]) -> None:
    """Call ``callback()`` whenever a layer is added, removed or renamed.

    When ``callback`` is a method of a built widget, it runs on the next turn of the event loop
    (once for a burst of events), not inside napari's insertion of a layer, which is a long
    enough pause of its own; it is disconnected when the widget is deleted (see
    :func:`connect_while_alive`).
    """

    def changed(*_: Any) -> None:
        callback()

    owner = getattr(callback, "__self__", None)
    if isinstance(owner, Container) and hasattr(owner, "native"):
        later = next_turn(owner.native, callback)
        connect_while_alive(owner, layer_events(viewer, lambda *_: later()))
        return
    for signal, slot in layer_events(viewer, changed):
        signal.connect(slot)


def real_viewer(viewer: napari.viewer.Viewer) -> napari.viewer.Viewer:
    """The viewer behind the ``PublicOnlyProxy`` napari gives plugin widgets.

    Through the proxy every layer access returns a new proxy (so layers cannot be compared or
    used as cache keys) and every attribute access inspects the call stack, which costs
    milliseconds per preview update.
    """
    return getattr(viewer, "__wrapped__", viewer)


def check_image_layer(layer: Any) -> None:
    """Raise :class:`InputError` unless ``layer`` is a grey (Y, X) or (T, Y, X) image layer."""
    if layer is None:
        raise InputError("no image layer: open a movie (File > Open) or a sample first")
    shape = tuple(layer.data.shape)
    if getattr(layer, "rgb", False):
        raise InputError(
            f"'{layer.name}' is an RGB image {shape}: convert it to grey levels first "
            "(e.g. Layers > Convert or image.mean(axis=-1))"
        )
    if getattr(layer, "multiscale", False):
        raise InputError(f"'{layer.name}' is multiscale: open its full-resolution level alone")
    if len(shape) not in (2, 3):
        raise InputError(
            f"'{layer.name}' has shape {shape}: a (T, Y, X) movie or a (Y, X) image is needed; "
            "for a multi-channel or 3D movie (TCYX, TZYX) split out one channel or plane first"
        )


def named_layer(viewer: napari.viewer.Viewer, name: str) -> Any:
    """The layer called ``name``, or None (a LayerList has no ``get``)."""
    return next((layer for layer in viewer.layers if layer.name == name), None)


def frames_of(layer: Any) -> int:
    """Number of frames of a (T, Y, X) or (Y, X) image layer."""
    return 1 if layer.data.ndim == 2 else int(layer.data.shape[0])


# -- the widget ------------------------------------------------------------------------------------
class _PCAState:
    """The PCA colours of one embedding cache and which frames the PCA layer shows."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.colours: PCAColours | None = None
        self.data: np.ndarray | None = None  # the PCA layer's array when it was last written
        self.shown: set[int] = set()


class EmbedWidget(Container):
    """Compute the pixel embeddings of an image layer into the session's cache.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        Injected by napari.

    Attributes
    ----------
    last_run_frames : list of int
        Frames embedded by the last run that started (empty when everything was cached).
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        from ..core.checkpoint import list_models
        from ..core.device import available_devices

        self._viewer = viewer = real_viewer(viewer)
        self._session = session = session_for(viewer)
        self._image = ComboBox(label="image", choices=layer_choices(viewer, "Image"))
        self._bundled = [entry["name"] for entry in list_models() if "error" not in entry]
        self._model = ComboBox(label="model", choices=self._model_choices())
        self._model.value = session.model_source
        devices = ["auto", *available_devices()]
        self._device = ComboBox(label="device", choices=devices)
        self._device.value = session.device if session.device in devices else "auto"
        self._show_pca = CheckBox(text="Show embedding (PCA)", value=False)
        self._info = Label(value="")
        self._control = JobControl(session, "embed", "Compute embeddings")
        super().__init__(
            widgets=[
                self._image,
                self._model,
                self._device,
                self._show_pca,
                self._control,
                self._info,
            ]
        )
        self.last_run_frames: list[int] = []
        self._pca: _PCAState | None = None
        # per embedding cache: how its frames met the model (the size plan, described)
        self._plans: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._control.on_click(self.compute)
        self._model.changed.connect(self._model_chosen)
        self._device.changed.connect(self._device_chosen)
        self._image.changed.connect(self._describe)
        self._show_pca.changed.connect(self._pca_toggled)
        connect_while_alive(
            self,
            [
                (session.model_changed, self._model_replaced),
                (session.embeddings_changed, self._describe),
                (session.embed_requested, self._embed_requested),
                *layer_events(viewer, self._layers_changed),
            ],
        )
        self._describe()
        session.warm_up()  # the model loads in the background, not at the first click

    # -- model and device -------------------------------------------------------------------
    def _model_choices(self, *_: Any) -> list[str]:
        current = self._session.model_source
        extra = [] if current in self._bundled else [current]
        return [*self._bundled, *extra, CHOOSE_FILE]

    def _show_model(self) -> None:
        with self._model.changed.blocked():
            self._model.choices = self._model_choices()
            self._model.value = self._session.model_source

    def _model_chosen(self, value: str) -> None:
        if value == self._session.model_source:
            return
        if value == CHOOSE_FILE:
            from qtpy.QtWidgets import QFileDialog

            path, _ = QFileDialog.getOpenFileName(
                self.native, "Choose a model checkpoint", "", "Checkpoints (*.pt *.pth *.ckpt)"
            )
            if path:
                self.load_model(path)
            else:
                self._show_model()
            return
        self.load_model(value)

    def load_model(self, source: str) -> bool:
        """Make ``source`` (a bundled name or a checkpoint path) the session's model.

        A corrupt or foreign file is reported and changes nothing. Returns whether it loaded.
        """
        if "embed" in self._session.busy:
            notify_error("Embeddings are being computed; cancel that first to change the model.")
            self._show_model()
            return False
        try:
            self._session.set_model(source)
        except InputError as exc:
            notify_error(f"Model not loaded; keeping '{self._session.model_source}'. {exc}")
            self._show_model()
            return False
        return True

    def _model_replaced(self) -> None:
        self._pca = None
        self._show_model()
        self._describe()

    def _device_chosen(self, value: str) -> None:
        self._session.device = value

    # -- status ----------------------------------------------------------------------------
    def _layers_changed(self, *_: Any) -> None:
        self._image.reset_choices()
        self._describe()

    def _describe(self, *_: Any) -> None:
        layer = self._image.value
        if layer is None:
            self._info.value = "no image layer"
            return
        try:
            check_image_layer(layer)
        except InputError as exc:
            self._info.value = str(exc)
            return
        store = self._session.store_for(layer, create=False)
        done = 0 if store is None else store.n_frames - len(store.missing())
        text = f"{done} / {frames_of(layer)} frames embedded"
        plan = self._plans.get(store) if store is not None else None
        self._info.value = text if plan is None else f"{text}\n{plan}"

    # -- computing ---------------------------------------------------------------------------
    def _embed_requested(self, layer: Any) -> None:
        """Another widget (Fine-tune, after a model change) asks for ``layer``'s embeddings."""
        if self._control.running or layer not in self._viewer.layers:
            return
        self._image.reset_choices()
        self._image.value = layer
        self._control.press()

    def compute(self) -> None:
        """Embed the frames of the chosen layer that are not cached yet (the button's action)."""
        layer = self._image.value
        check_image_layer(layer)
        model = self._session.model()
        store = self._session.store_for(layer)
        missing = store.missing()
        todo = list(range(missing[0], store.n_frames)) if missing else []
        pca = self._pca_state(store) if self._show_pca.value else None
        # cached frames the PCA layer does not show yet (those in ``todo`` come with them)
        pca_only = [] if pca is None else [t for t in range(store.n_frames) if t not in pca.shown]
        pca_only = [t for t in pca_only if t not in todo and store.has(t)]
        self.last_run_frames = todo
        if not todo and not pca_only:
            self._control.set_status(f"all {store.n_frames} frames already embedded (reused)")
            return
        results = iter(())
        if todo:
            # checked here, on the main thread, so a bad device is a notification at once
            from ..core.device import resolve_device

            resolve_device(self._session.device)
            # as ``segment --diameter auto``: the object diameter is estimated (in the
            # worker) and frames reach the model at the sizes it knows; the embeddings come
            # back at the layer's pixels
            results = _sized_embedding(
                model,
                layer.data,
                todo,
                {"device": self._session.device, **self._session.embed_options},
            )
        new_pca = None  # where a new PCA layer goes: its object is built in the worker
        if pca is not None:
            target = self._pca_layer(layer, create=False)
            if target is not None:
                pca.data = target.data
            else:
                new_pca = {"shape": (*layer.data.shape, 3), "scale": layer.scale}
                new_pca["translate"] = layer.translate
        worker = self._control.start(
            _embed_job(results, store, len(todo), pca_only, pca, new_pca),
            on_yield=partial(self._frame_done, layer),
            on_finish=self._describe,
        )
        if worker is not None and todo and not pca_only:
            self._control.set_status("estimating the object diameter...")

    def _frame_done(self, layer: Any, payload: Any) -> None:
        if isinstance(payload, str):  # how the frames meet the model
            self._plans[self._session.store_for(layer, create=False)] = payload
            self._describe()
            return
        if not isinstance(payload, tuple):  # the new PCA layer, built in the worker
            if self._pca is not None and self._pca_layer(layer, create=False) is None:
                self._viewer.layers.append(payload)
                self._viewer.layers.selection.active = layer
                self._pca.data = payload.data
            return
        t, rgb, embedded = payload
        if embedded:
            self._session.embeddings_changed.emit(layer.name, t)
        if rgb is not None and self._pca is not None:
            target = self._pca_layer(layer)
            if target.data.ndim == 3:
                target.data = rgb
            else:
                target.data[t] = rgb
                target.refresh()
            self._pca.data = target.data
            self._pca.shown.add(t)

    # -- PCA layer ---------------------------------------------------------------------------
    def _pca_state(self, store: Any) -> _PCAState:
        if self._pca is None or self._pca.store is not store:
            self._pca = _PCAState(store)
        pca = self._pca
        layer = named_layer(self._viewer, PCA_LAYER)
        if layer is None or layer.data is not pca.data:  # deleted or replaced: show all again
            pca.shown = set()
        if pca.colours is None:
            cached = [t for t in range(store.n_frames) if store.has(t)]
            if cached:
                pca.colours = PCAColours.fit(*store.get(cached[0]))
        return pca

    def _pca_layer(self, layer: Any, *, create: bool = True):
        """The RGB layer showing the PCA colours of ``layer``, created (unless not
        ``create``: then None) or resized as needed."""
        shape = (*layer.data.shape, 3)
        viewer = self._viewer
        target = named_layer(viewer, PCA_LAYER)
        if target is None or type(target).__name__ != "Image" or not target.rgb:
            if not create:
                return None
            target = viewer.add_image(
                np.zeros(shape, np.uint8),
                name=PCA_LAYER,
                rgb=True,
                scale=layer.scale,
                translate=layer.translate,
                visible=True,
            )
            viewer.layers.selection.active = layer
        elif target.data.shape != shape:
            target.data = np.zeros(shape, np.uint8)
        return target

    def _pca_toggled(self, on: bool) -> None:
        if on and not self._control.running and self._image.value is not None:
            try:
                self.compute()
            except InputError as exc:
                notify_error(str(exc))


def _sized_embedding(
    model: Any, movie: Any, frames: list[int], options: dict
) -> Generator[Any, None, None]:
    """Worker: the size plan's description (a str) first, then each frame's embedding."""
    from ..core.size_plan import iter_embed_at_size, plan_size

    stack = movie[None] if movie.ndim == 2 else movie
    plan = plan_size(model, stack, "auto")
    yield plan.describe()
    yield from iter_embed_at_size(model, movie, frames, plan=plan, **options)


def _embed_job(
    results: Any,
    store: Any,
    n_embed: int,
    pca_only: list[int],
    pca: _PCAState | None,
    new_pca: dict | None = None,
) -> Generator[tuple[int, int, Any], None, None]:
    """Worker: colour cached frames, then store each new frame; yield ``(t, rgb, embedded)``
    (or, once, the description of how the frames meet the model). With ``new_pca`` (shape,
    scale, translate), the PCA layer object is built first and yielded for the main thread
    to insert."""
    total = len(pca_only) + n_embed
    done = 0
    if new_pca is not None:
        shape = new_pca.pop("shape")
        yield (
            done,
            total,
            build_layer("image", np.zeros(shape, np.uint8), name=PCA_LAYER, rgb=True, **new_pca),
        )
    for t in pca_only:
        done += 1
        yield done, total, (t, pca.colours.rgb(*store.get(t)), False)
    from ..core.threads import ThreadGovernor

    # the viewer competes for the cores: re-decided before each frame (in this thread,
    # which is the one computing)
    threads = ThreadGovernor()
    for result in results:
        if isinstance(result, str):
            yield done, total, result
            continue
        threads.update()
        store.put(result.t, result.embedding, result.foreground)
        rgb = None
        if pca is not None:
            if pca.colours is None:  # the first frame of the movie with an embedding
                pca.colours = PCAColours.fit(result.embedding, result.foreground)
            rgb = pca.colours.rgb(result.embedding, result.foreground)
        done += 1
        yield done, total, (result.t, rgb, True)
