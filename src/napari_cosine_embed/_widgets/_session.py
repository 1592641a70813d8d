"""State shared by the dock widgets of one viewer: model, embedding caches, curated frames.

One :class:`Session` per viewer, created by the first widget docked in it
(:func:`session_for`) and handed to each widget; nothing here touches Qt or layers' data
outside the main thread.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from pathlib import Path
from typing import Any

import numpy as np
from psygnal import Signal

from ..core.embedding_store import EmbeddingStore, image_fingerprint, model_fingerprint

__all__ = ["Session", "session_for"]

_SESSIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class Session:
    """What the widgets of one viewer share.

    Attributes
    ----------
    model_source : str
        Bundled model name or checkpoint path of the current model.
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"mps"``.
    curated : dict of str to set of int
        Frames marked as curated, per labels layer name.
    pins : dict of str to list of Pin
        Pinned links, per labels layer name.
    project_dir : Path or None
        Where corrections are autosaved (None: nowhere yet).
    busy : set of str
        Kinds of job running now ("embed", "group", "track", "finetune", "export").

    Signals
    -------
    model_changed()
        The model was replaced; every embedding cache was dropped.
    embeddings_changed(str, int)
        Frame ``t`` of the image layer named ``name`` has a (new) embedding.
    curated_changed(str)
        The curated frames of a labels layer changed.
    busy_changed()
        A job started or ended.
    embed_requested(object)
        Another widget asks for the embeddings of this image layer (the Embed widget runs).
    """

    model_changed = Signal()
    embeddings_changed = Signal(str, int)
    curated_changed = Signal(str)
    busy_changed = Signal()
    embed_requested = Signal(object)

    def __init__(self, viewer: Any = None) -> None:
        self._viewer = None if viewer is None else weakref.ref(viewer)
        self.model_source: str = "default"
        self.device: str = "auto"
        # inference options of every embedding (the pipeline's defaults: a bounded state history)
        from ..core.pipeline import PipelineConfig

        defaults = PipelineConfig()
        self.embed_options: dict = {
            "state_window": defaults.state_window,
            "warmup": defaults.warmup,
        }
        self._model = None
        self._model_id: str | None = None
        self._model_lock = threading.Lock()  # the warm-up thread and the main thread
        # image layer (weak) -> (store, image fingerprint)
        self._stores: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self.curated: dict[str, set[int]] = {}
        # labels layer name -> links the user made or confirmed (core.tracking.Pin), kept when
        # tracking again (the Lineage widget fills it, the Track widget reads it)
        self.pins: dict[str, list] = {}
        self.project_dir: Path | None = None
        self.busy: set[str] = set()
        self._warming = False

    @property
    def viewer(self):
        return None if self._viewer is None else self._viewer()

    # -- model -------------------------------------------------------------------------
    def model(self):
        """The current :class:`~..core.checkpoint.EmbeddingModel`, loaded on first use.

        Raises :class:`~..core.errors.InputError` for a missing or corrupt checkpoint, and
        leaves the previous model in place.
        """
        with self._model_lock:
            if self._model is None:
                from ..core.checkpoint import load_model

                model = load_model(self.model_source)
                self._model_id = model_fingerprint(model)
                self._model = model
            return self._model

    def warm_up(self) -> None:
        """Load the model in a background thread now (once), so the first click that needs it
        does not load it on the main thread (0.1-0.5 s). A failure is left for that click to
        report."""
        if self._model is not None or self._warming:
            return
        self._warming = True

        def run() -> None:
            with contextlib.suppress(Exception):
                self.model()

        threading.Thread(target=run, name="nce-model-warm-up", daemon=True).start()

    def known_store(self, layer: Any) -> EmbeddingStore | None:
        """The embedding cache last made for ``layer`` and the current model, without
        checking the image's fingerprint (cheap: for display, not for computing)."""
        entry = self._stores.get(_unwrap(layer))
        return entry[0] if entry is not None and entry[2] == self._model_id else None

    def foreground_threshold(self) -> float:
        """The threshold to group the current model's output at (its calibrated one, if any).

        Does not load a model: before one is loaded, the bundled default's.
        """
        from ..core.training.calibrate import recommended_threshold

        return recommended_threshold(self._model)

    @property
    def model_id(self) -> str:
        self.model()
        return self._model_id

    def set_model(self, source: Any) -> None:
        """Use another model (a bundled name, a path, or a loaded ``EmbeddingModel``).

        Loads it first, so a bad checkpoint raises and changes nothing; then drops every
        embedding cache made with the old model.
        """
        from ..core.checkpoint import EmbeddingModel, load_model

        model = source if isinstance(source, EmbeddingModel) else load_model(source)
        new_id = model_fingerprint(model)
        with self._model_lock:
            self._model = model
        if isinstance(source, EmbeddingModel):
            self.model_source = model.path or model.name
        else:
            self.model_source = str(source)
        if new_id != self._model_id:
            self._model_id = new_id
            self._stores.clear()
        self.model_changed.emit()

    # -- embeddings ----------------------------------------------------------------------
    def store_for(self, layer: Any, *, create: bool = True) -> EmbeddingStore | None:
        """The embedding cache of an image layer (one per layer, for the current model).

        A cache whose image changed (another fingerprint) is replaced by an empty one.
        The layer's data must be (T, Y, X) or (Y, X).
        """
        layer = _unwrap(layer)
        data = layer.data
        fingerprint = image_fingerprint(data)
        entry = self._stores.get(layer)
        if entry is not None and entry[1] == fingerprint and entry[2] == self._model_id:
            return entry[0]
        if not create:
            return None
        model = self.model()
        shape = tuple(data.shape)
        n_frames = 1 if len(shape) == 2 else shape[0]
        store = EmbeddingStore(
            n_frames,
            model.config.embedding_dim,
            shape[-2:],
            model_id=self._model_id,
            image_id=fingerprint,
        )
        self._stores[layer] = (store, fingerprint, self._model_id)
        return store

    def frame(self, layer: Any, t: int) -> tuple[np.ndarray, np.ndarray | None] | None:
        """Cached ``(embedding, foreground)`` of frame ``t`` of an image layer, or None."""
        store = self.store_for(layer, create=False)
        if store is None or not store.has(t):
            return None
        return store.get(t)

    # -- curated frames ------------------------------------------------------------------
    def set_curated(self, labels_name: str, t: int, curated: bool = True) -> None:
        frames = self.curated.setdefault(labels_name, set())
        before = set(frames)
        (frames.add if curated else frames.discard)(int(t))
        if frames != before:
            self.curated_changed.emit(labels_name)

    def curated_frames(self, labels_name: str) -> list[int]:
        return sorted(self.curated.get(labels_name, ()))

    # -- jobs ----------------------------------------------------------------------------
    def claim(self, kind: str) -> bool:
        """Mark a job of ``kind`` as running; False if one already is."""
        if kind in self.busy:
            return False
        self.busy.add(kind)
        self.busy_changed.emit()
        return True

    def release(self, kind: str) -> None:
        self.busy.discard(kind)
        self.busy_changed.emit()


def _unwrap(obj: Any) -> Any:
    """The napari object behind the ``PublicOnlyProxy`` napari hands to plugin widgets.

    Each access through a proxy returns a new proxy, so a weak key made from one (the viewer of
    a session, the layer of a cache) dies as soon as that proxy does.
    """
    return getattr(obj, "__wrapped__", obj)


def session_for(viewer: Any) -> Session:
    """The session of ``viewer``, created on first use (one per viewer, never shared)."""
    viewer = _unwrap(viewer)
    session = _SESSIONS.get(viewer)
    if session is None:
        session = _SESSIONS[viewer] = Session(viewer)
    return session
