"""Track widget: link per-frame instances into tracks with divisions.

Two methods, both from :mod:`..core.tracking`: overlap linking of any labels layer of
per-frame instances (:func:`~..core.tracking.link_labels`; the instances may come from the
Group widget or from any other tool), or Payer et al.'s clustering of frame pairs
(:func:`~..core.tracking.track_pairs`), which segments and tracks at once from the embeddings
cached for an image layer. The result is written to a labels layer "tracked" (one id per
track) and a Tracks layer "tracks" (centroids, with the division graph).

Links the user made or confirmed in the Lineage widget on "tracked" are pinned: tracking again
(after a new segmentation or a fine-tuned model) keeps them and solves the rest around them,
unless "keep pinned links" is unticked.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, SpinBox

from ..core.errors import InputError
from ..core.pipeline import PipelineConfig
from ._jobs import JobControl
from ._layers import Turns, build_layer, one_per_turn
from ._session import session_for
from .embed import connect_while_alive, layer_choices

if TYPE_CHECKING:
    import napari

    from ..core.tracking import TrackingResult

__all__ = ["TrackWidget"]

OVERLAP = "overlap linking"
PAIRS = "pair clustering (Payer)"
LABELS_NAME, TRACKS_NAME = "tracked", "tracks"


class _StoreFrames:
    """An embedding store seen as a sequence of embeddings or of foreground masks.

    ``track_pairs`` indexes its inputs frame by frame, so the worker reads one frame at a
    time and the movie's embeddings are never all decompressed at once.
    """

    def __init__(self, store: Any, part: int, threshold: float = 0.5) -> None:
        self._store, self._part, self._threshold = store, part, threshold

    def __len__(self) -> int:
        return self._store.n_frames

    def __getitem__(self, t: int) -> np.ndarray:
        emb, fg = self._store.get(t)
        if self._part == 0:
            return emb
        if fg is None:  # a model without a foreground head: every pixel is grouped
            return np.ones(emb.shape[1:], bool)
        return fg >= self._threshold


def _link(labels: np.ndarray, options: dict) -> Generator[tuple[int, int, None], None, Any]:
    """:func:`link_labels` as a job: it is one call, so progress is only its start and end."""
    from ..core.tracking import link_labels

    yield 0, 1, None
    result = link_labels(labels, **options)
    yield 1, 1, None
    return result


def _pairs(
    store: Any, options: dict, threshold: float
) -> Generator[tuple[int, int, None], None, Any]:
    """:func:`track_pairs` as a job, one progress step per clustered frame pair."""
    from ..core.tracking import track_pairs

    tracker = track_pairs(_StoreFrames(store, 0), _StoreFrames(store, 1, threshold), **options)
    while True:
        try:
            done, total = next(tracker)
        except StopIteration as stop:
            return stop.value
        yield done, total, None


def _with_layers(
    job: Generator[tuple[int, int, None], None, Any], place: dict
) -> Generator[tuple[int, int, None], None, tuple[Any, dict]]:
    """``job``, then the output layers built from its result in the worker (they are
    inserted on the main thread only if the viewer has no such layer yet)."""
    result = yield from job
    built = {LABELS_NAME: build_layer("labels", result.labels, name=LABELS_NAME, **place)}
    if len(result.tracks):
        built[TRACKS_NAME] = build_layer(
            "tracks", result.tracks, graph=result.graph, name=TRACKS_NAME, tail_length=10, **place
        )
    return result, built


class TrackWidget(Container):
    """Dock widget: link instances over time; writes the "tracked" and "tracks" layers.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        Injected by napari.
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        self._viewer = viewer
        self._session = session_for(viewer)
        self._method = ComboBox(label="method", choices=[OVERLAP, PAIRS], value=OVERLAP)
        self._labels_choice = ComboBox(label="instances", choices=layer_choices(viewer, "Labels"))
        self._image = ComboBox(label="image", choices=layer_choices(viewer, "Image"))
        d = PipelineConfig()  # the defaults of `segment`
        self._min_samples = SpinBox(label="min samples", value=d.min_samples, min=1, max=1000)
        self._min_cluster_size = SpinBox(
            label="min cluster size", value=d.min_cluster_size, min=2, max=1_000_000, step=10
        )
        self._coord_weight = FloatSpinBox(
            label="coord weight", value=d.coord_weight, min=0, max=100
        )
        self._threshold = FloatSpinBox(
            label="foreground threshold",
            value=self._session.foreground_threshold(),
            min=0.0,
            max=1.0,
            step=0.01,
        )
        self._min_track_length = SpinBox(
            label="min track length", value=d.min_track_length, min=1, max=10_000
        )
        self._min_split_frames = SpinBox(
            label="min split frames", value=d.min_split_frames, min=1, max=10_000
        )
        self._min_child_ratio = FloatSpinBox(
            label="min child ratio", value=d.min_child_ratio, min=0.0, max=1.0, step=0.05
        )
        self._max_gap = SpinBox(label="max gap", value=d.max_gap, min=0, max=100)
        self._split_back = SpinBox(
            label="split back (frames)",
            value=d.split_back,
            min=0,
            max=100,
            tooltip="cut a mother along her daughters up to this many frames before a division "
            "that is seen late because the daughters touched; 0: never",
        )
        self._keep_pins = CheckBox(text="keep pinned links", value=True)
        self._keep_pins.tooltip = (
            "links and divisions you made or pinned in the Lineage widget stay as they are"
        )
        self._control = JobControl(self._session, "track", "Track")
        #: The showing of the last result: ``shown_result.done`` once both layers are in place.
        self.shown_result: Turns | None = None
        super().__init__(
            widgets=[
                self._method,
                self._labels_choice,
                self._image,
                self._min_samples,
                self._min_cluster_size,
                self._coord_weight,
                self._threshold,
                self._min_track_length,
                self._min_split_frames,
                self._min_child_ratio,
                self._max_gap,
                self._split_back,
                self._keep_pins,
                self._control,
            ]
        )
        self._control.on_click(self._run)
        self._method.changed.connect(self._show_method_options)
        self._show_method_options()
        connect_while_alive(self, [(self._session.model_changed, self._model_replaced)])

    def _model_replaced(self) -> None:
        self._threshold.value = self._session.foreground_threshold()

    @property
    def control(self) -> JobControl:
        return self._control

    def _layer_named(self, name: str) -> Any:
        return next((x for x in self._viewer.layers if x.name == name), None)

    def _show_method_options(self, *_: Any) -> None:
        pairs = self._method.value == PAIRS
        self._labels_choice.visible = not pairs
        self._split_back.visible = not pairs
        for widget in (
            self._image,
            self._min_samples,
            self._min_cluster_size,
            self._coord_weight,
            self._threshold,
        ):
            widget.visible = pairs

    def _cleanup_options(self) -> dict:
        return {
            "min_track_length": int(self._min_track_length.value),
            "min_split_frames": int(self._min_split_frames.value),
            "min_child_ratio": float(self._min_child_ratio.value),
            "max_gap": int(self._max_gap.value),
        }

    def pins(self, shape: tuple | None = None) -> list:
        """The links pinned in the Lineage widget to keep (none when unticked): those of the
        tracked labels, and of any other labels layer of the movie's shape (tracks opened from
        another tool, say)."""
        if not self._keep_pins.value:
            return []
        pins = list(self._session.pins.get(LABELS_NAME, []))
        for name, more in self._session.pins.items():
            layer = self._layer_named(name)
            same = layer is not None and shape is not None and layer.data.shape == shape
            if name != LABELS_NAME and same:
                pins += [p for p in more if p not in pins]
        return pins

    # -- run -----------------------------------------------------------------------------
    def _run(self) -> None:
        """Read and check the inputs on the main thread, then track in a worker."""
        if self._method.value == PAIRS:
            gen, source = self._pairs_job()
        else:
            gen, source = self._link_job()
        place = {"scale": source.scale[-3:], "translate": source.translate[-3:]}
        self._control.start(_with_layers(gen, place), on_return=lambda out: self._show(*out))

    def _link_job(self):
        layer = self._labels_choice.value
        if layer is None:
            raise InputError("Choose a labels layer of per-frame instances to track.")
        if layer.data.ndim != 3:
            raise InputError(
                f"'{layer.name}' has shape {tuple(layer.data.shape)}; tracking needs per-frame "
                "instances of shape (T, Y, X)"
            )
        # A copy, so that painting in the layer while the worker runs cannot race with it.
        labels = np.array(layer.data, copy=True)
        options = self._cleanup_options() | {
            "split_back": int(self._split_back.value),
            "pins": self.pins(tuple(layer.data.shape)),
        }
        return _link(labels, options), layer

    def _pairs_job(self):
        layer = self._image.value
        if layer is None:
            raise InputError("Choose the image layer whose embeddings to cluster.")
        if layer.data.ndim != 3 or getattr(layer, "rgb", False):
            raise InputError(
                f"'{layer.name}' has shape {tuple(layer.data.shape)}; pair clustering needs a "
                "grayscale movie of shape (T, Y, X)"
            )
        store = self._session.store_for(layer, create=False)
        missing = list(range(layer.data.shape[0])) if store is None else store.missing()
        if missing:
            raise InputError(
                f"{len(missing)} frame(s) of '{layer.name}' have no embedding for the current "
                "model; embed the whole movie first (Embed widget)"
            )
        d = PipelineConfig()
        options = {
            "min_samples": int(self._min_samples.value),
            # the clusters span two frames, so they hold about twice an instance's pixels
            "min_cluster_size": 2 * int(self._min_cluster_size.value),
            "coord_weight": float(self._coord_weight.value),
            # each frame is cleaned up as the Group widget and `segment` do
            "object_size": d.object_size,
            "min_size": d.min_size,
            "fill_holes": d.fill_holes,
            "split_depth": d.split_depth,
            **self._cleanup_options(),
            "pins": self.pins(tuple(layer.data.shape)),
        }
        return _pairs(store, options, float(self._threshold.value)), layer

    def _show(self, result: TrackingResult, built: dict[str, Any]) -> None:
        """Show the result (main thread): existing output layers are updated in place, new
        ones (built in the worker) inserted one per turn of the event loop."""
        n_tracks = len(result.lineage)
        n_divisions = len({p[0] for p in result.graph.values()})
        status = f"{n_tracks} tracks, {n_divisions} divisions"
        if result.missed_pins:
            status += f"; {len(result.missed_pins)} pinned link(s) not kept (no object there)"
        self._control.set_status(status)

        def show_labels() -> None:
            labels = self._layer_named(LABELS_NAME)
            if type(labels).__name__ == "Labels":
                labels.data = result.labels
            else:
                self._viewer.layers.append(built[LABELS_NAME])

        def show_tracks() -> None:
            tracks = self._layer_named(TRACKS_NAME)
            if len(result.tracks) == 0:
                if type(tracks).__name__ == "Tracks":
                    self._viewer.layers.remove(tracks)  # our own stale output; no track now
            elif type(tracks).__name__ == "Tracks":
                # The old graph may name ids absent from the new data: clear it first.
                tracks.graph = {}
                tracks.data = result.tracks
                tracks.graph = result.graph
            else:
                self._viewer.layers.append(built[TRACKS_NAME])

        self.shown_result = one_per_turn([show_labels, show_tracks])
