"""Fine-tune widget: train the current model on the frames a user corrected and marked curated.

The training data are built on the main thread from the image layer and the corrected labels
layer (copies of the curated frames only, so later edits cannot race with the worker); the
training loop (:class:`~..core.training.Trainer`, as :func:`~..core.training.finetune` runs
it) then runs in a worker. Cancel stops after the current step and keeps the model so
far. Each run is saved as a new file (``finetuned-001.pt``, ``-002``, ...; never
overwritten); a button then offers to make it the session's model, which drops the
embeddings made with the old one.
"""

from __future__ import annotations

import contextlib
import math
import re
import threading
from collections.abc import Generator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import ComboBox, Container, FloatSpinBox, Label, PushButton, SpinBox
from qtpy.QtCore import QPointF, Qt
from qtpy.QtGui import QColor, QPainter, QPen, QPolygonF
from qtpy.QtWidgets import QSizePolicy, QWidget

from ..core.errors import InputError, OutputExistsError
from ._jobs import JobControl, notify_error
from ._paths import elide
from ._session import session_for
from .embed import layer_choices

if TYPE_CHECKING:
    import napari

__all__ = ["FinetuneWidget", "LossPlot", "next_model_path"]

_NAME = re.compile(r"^finetuned-(\d+)\.pt$")


def next_model_path(folder: Path) -> Path:
    """``folder / "finetuned-NNN.pt"`` with ``NNN`` one above the highest already there."""
    numbers = [int(m.group(1)) for p in folder.glob("finetuned-*.pt") if (m := _NAME.match(p.name))]
    return folder / f"finetuned-{max(numbers, default=0) + 1:03d}.pt"


class LossPlot(QWidget):
    """The training loss (and validation score) against the step, drawn with QPainter.

    Each series is scaled to its own range: the loss in the widget's palette colour, the
    validation score in orange, with their latest values written in the top-left corner.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.loss: list[tuple[int, float]] = []
        self.score: list[tuple[int, float]] = []
        self.setMinimumHeight(110)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def clear(self) -> None:
        self.loss.clear()
        self.score.clear()
        self.update()

    def add(self, step: int, loss: float, score: float | None = None) -> None:
        if math.isfinite(loss):
            self.loss.append((step, loss))
        if score is not None and math.isfinite(score):
            self.score.append((step, score))
        self.update()

    def _polygon(self, points: list[tuple[int, float]], last_step: int) -> QPolygonF:
        margin, width, height = 6, self.width() - 12, self.height() - 30
        values = [v for _, v in points]
        lo, hi = min(values), max(values)
        span = hi - lo or 1.0
        return QPolygonF(
            [
                QPointF(
                    margin + width * s / max(last_step, 1),
                    24 + height * (1 - (v - lo) / span),
                )
                for s, v in points
            ]
        )

    def paintEvent(self, event: Any) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        text_colour = self.palette().windowText().color()
        painter.setPen(QPen(text_colour.darker(250), 1))
        painter.drawRect(self.rect().adjusted(0, 0, -1, -1))
        if not self.loss:
            painter.setPen(text_colour)
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "loss: no step yet")
            return
        last = max(s for s, _ in self.loss + self.score)
        caption = f"step {last}   loss {self.loss[-1][1]:.4g}"
        painter.setPen(QPen(text_colour, 1.5))
        painter.drawPolyline(self._polygon(self.loss, last))
        if self.score:
            painter.setPen(QPen(QColor("orange"), 1.5))
            painter.drawPolyline(self._polygon(self.score, last))
            caption += f"   validation {self.score[-1][1]:.3f}"
        painter.setPen(text_colour)
        painter.drawText(8, 16, caption)


_warmed = threading.Event()


def warm_up_training_imports() -> None:
    """Import in a background thread, once, what the first optimizer imports on creation.

    torch builds its optimizers through ``torch._dynamo`` and imports it (0.7 s of imports,
    holding the GIL in pieces of up to 0.1 s) the first time one is made. Done when the widget
    is docked, these pauses fall where napari is busy docking anyway, not while the user
    watches the first fine-tune start (docs/benchmarks.md, "Main-thread stalls").
    """
    if _warmed.is_set():
        return
    _warmed.set()

    def run() -> None:
        with contextlib.suppress(Exception):  # only a head start: the fine-tune imports anyway
            import torch._dynamo  # noqa: F401

    threading.Thread(target=run, name="nce-warm-up", daemon=True).start()


class FinetuneWidget(Container):
    """Dock widget: fine-tune the current model on a corrected labels layer's curated frames.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        Injected by napari.
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        from ..core.training import FINETUNE_DEFAULTS

        self._viewer = viewer
        self._session = session_for(viewer)
        self._image = ComboBox(label="image", choices=layer_choices(viewer, "Image"))
        self._labels_choice = ComboBox(
            label="corrected labels", choices=layer_choices(viewer, "Labels")
        )
        self._curated = Label(value="")
        self._steps = SpinBox(label="steps", value=FINETUNE_DEFAULTS.steps, min=1, max=100_000)
        self._lr = FloatSpinBox(
            label="learning rate", value=FINETUNE_DEFAULTS.lr, min=1e-5, max=1e-2, step=1e-5
        )
        self._val_fraction = FloatSpinBox(
            label="held out for validation", value=0.25, min=0.0, max=0.9, step=0.05
        )
        self._crop = SpinBox(label="crop", value=FINETUNE_DEFAULTS.crop, min=32, max=1024, step=16)
        self._batch = SpinBox(label="batch size", value=FINETUNE_DEFAULTS.batch_size, min=1, max=64)
        self._foreground_weight = FloatSpinBox(
            label="foreground weight",
            value=FINETUNE_DEFAULTS.foreground_weight,
            min=0.0,
            max=100.0,
            step=1.0,
        )
        self._foreground_weight.tooltip = (
            "Weight of the foreground loss against the embedding loss: how much more it "
            "matters to learn where your objects end than how neighbours differ. 25 (the "
            "default) teaches a new kind of cell its extent (whole stem cells: SEG 0.44 -> "
            "0.63); 1 only nudges a model that already knows your cells (docs/models.md)."
        )
        self._control = JobControl(self._session, "finetune", "Fine-tune")
        self._result = Label(value="")
        self._use = PushButton(text="Use new model and re-embed", visible=False)
        super().__init__(
            widgets=[
                self._image,
                self._labels_choice,
                self._curated,
                self._steps,
                self._lr,
                self._val_fraction,
                self._crop,
                self._batch,
                self._foreground_weight,
                self._control,
                self._result,
                self._use,
            ]
        )
        self.plot = LossPlot()
        layout = self.native.layout()
        layout.insertWidget(layout.indexOf(self._result.native), self.plot)
        self._trainer = None
        self._held = None
        self._returned = self._aborted = self._calibrating = False
        self.saved: Path | None = None
        self._control.on_click(self._run)
        self._use.changed.connect(self._use_model)
        self._labels_choice.changed.connect(self._show_curated)
        self._session.curated_changed.connect(self._show_curated)
        self._show_curated()
        warm_up_training_imports()

    @property
    def control(self) -> JobControl:
        return self._control

    @property
    def models_dir(self) -> Path:
        """Where fine-tuned models go: the project's ``models`` folder, else one in the home."""
        if self._session.project_dir is not None:
            return Path(self._session.project_dir) / "models"
        return Path.home() / ".napari-cosine-embed" / "models"

    def _show_curated(self, *_: Any) -> None:
        layer = self._labels_choice.value
        frames = [] if layer is None else self._session.curated_frames(layer.name)
        if frames:
            shown = ", ".join(map(str, frames[:12])) + (" ..." if len(frames) > 12 else "")
            self._curated.value = f"curated frames: {shown}"
        else:
            self._curated.value = "no curated frame yet: mark corrected frames as curated"

    # -- run -----------------------------------------------------------------------------
    def _split(self, frames: list[int]) -> tuple[list[int], list[int]]:
        """Curated frames to train on and to hold out (none held out with fewer than two)."""
        n = len(frames)
        fraction = float(self._val_fraction.value)
        if n < 2 or fraction <= 0:
            return frames, []
        n_val = min(n - 1, max(1, round(fraction * n)))
        # spread over the movie, from its end, so validation is not one stretch of time
        held = {frames[i] for i in np.linspace(n - 1, 0, n_val).round().astype(int)}
        return [t for t in frames if t not in held], sorted(held)

    def _data(self, image: Any, labels: Any, frames: list[int], name: str):
        from ..core.training import FINETUNE_DEFAULTS, from_arrays

        # copies of the frames needed, taken now: the user may keep editing the layer
        data = labels.data
        sparse = {t: np.array(data[t] if data.ndim == 3 else data) for t in frames}
        # the frames before each curated one warm up the recurrent state, as in the pipeline
        context = FINETUNE_DEFAULTS.clip_length - 1
        return from_arrays(image.data, sparse, frames, context=context, name=name)

    def _run(self) -> None:
        """Check the inputs and build the data on the main thread, then train in a worker."""
        from ..core.device import resolve_device
        from ..core.training import FINETUNE_DEFAULTS

        image, labels = self._image.value, self._labels_choice.value
        if image is None or labels is None:
            raise InputError("Choose an image layer and its corrected labels layer.")
        if getattr(image, "rgb", False) or image.data.ndim not in (2, 3):
            raise InputError(
                f"'{image.name}' has shape {tuple(image.data.shape)}; fine-tuning needs a "
                "grayscale image (Y, X) or movie (T, Y, X)"
            )
        if tuple(labels.data.shape) != tuple(image.data.shape):
            raise InputError(
                f"'{labels.name}' has shape {tuple(labels.data.shape)}, but '{image.name}' has "
                f"{tuple(image.data.shape)}; they must match"
            )
        curated = self._session.curated_frames(labels.name)
        if not curated:
            raise InputError(
                f"'{labels.name}' has no curated frame: correct some frames and mark them as "
                "curated first"
            )
        train_frames, val_frames = self._split(curated)
        name = f"labels layer {labels.name!r}"
        data = self._data(image, labels, train_frames, name)
        val_data = self._data(image, labels, val_frames, name) if val_frames else None
        try:
            device = str(resolve_device(self._session.device))
        except InputError:
            device = "cpu"  # the accelerator asked for is absent: train on the CPU instead
        steps = int(self._steps.value)
        config = replace(
            FINETUNE_DEFAULTS,
            steps=steps,
            lr=float(self._lr.value),
            crop=int(self._crop.value),
            batch_size=int(self._batch.value),
            foreground_weight=float(self._foreground_weight.value),
            warmup=min(FINETUNE_DEFAULTS.warmup, steps // 10),
            # about ten validation points on the plot
            val_every=max(1, steps // 10) if val_data is not None else 0,
            device=device,
        )
        base = self._session.model()
        # the held-out curated frames, copied now: scored with both models after training
        self._held = None
        if val_frames:
            data_now = labels.data
            truth = {
                t: np.array(data_now[t] if data_now.ndim == 3 else data_now) for t in val_frames
            }
            self._held = (image.data, truth, val_frames, base)
        self.plot.clear()
        self._use.visible = False
        self._result.value = ""
        self._trainer = None
        self._run_job(self._train(base, data, config, val_data), calibrating=False)

    def _run_job(
        self, job: Generator[tuple[int, int, dict], None, Any], *, calibrating: bool
    ) -> bool:
        self._returned = self._aborted = False
        self._calibrating = calibrating  # the training job sets it when its steps are done
        worker = self._control.start(
            job, on_yield=self._step_done, on_return=self._finished, on_finish=self._stopped
        )
        if worker is not None:
            worker.aborted.connect(self._cancelled)
        return worker is not None

    def _train(self, base, data, config, val_data) -> Generator[tuple[int, int, dict], None, Any]:
        """Worker: the fine-tuning loop of :func:`~..core.training.finetune`.

        The :class:`Trainer` is kept so that a cancelled run still yields its model.
        """
        from ..core.threads import ThreadGovernor
        from ..core.training import Trainer

        # the viewer competes for the cores too: leave it the ones it keeps busy
        self._trainer = Trainer(
            base, data, config, val_data=val_data, base_model=True, threads=ThreadGovernor()
        )
        for info in self._trainer.run():
            yield info["step"], info["steps"], info
        model = yield from self._calibrate(self._trainer.result_model)
        if self._held is not None:
            model = yield from self._check(model)
        return model

    def _check(self, model) -> Generator[tuple[int, int, dict], None, Any]:
        """Worker: the held-out curated frames segmented with the base and the new model.

        The score (SEG, as the benchmarks measure it) goes into the model's record, so it is
        saved with it and shown with the result.
        """
        from ..core.training.readout import held_out_scores

        image, truth, frames, base = self._held
        run = held_out_scores(base, model, image, truth, frames)
        while True:
            try:
                done, total = next(run)
            except StopIteration as stop:
                scores = stop.value
                break
            yield done, total, {"checking": True}
        model.record["held_out_check"] = {
            "measure": "SEG",
            "frames": list(scores.frames),
            "before": round(scores.before, 4),
            "after": round(scores.after, 4),
        }
        return model

    def _calibrate(self, model) -> Generator[tuple[int, int, dict], None, Any]:
        """Worker: the foreground threshold suited to the new weights.

        A cancel here keeps the model without one (it then groups at the default threshold).
        """
        self._calibrating = True
        for done, total in self._trainer.iter_calibrate(model):
            yield done, total, {"calibrating": True}
        return model

    def _step_done(self, info: dict) -> None:
        if info.get("checking"):
            self._control.set_status(
                f"{self._control.progress.value} / {self._control.progress.max}: scoring the "
                "held-out frames with the old and the new model"
            )
            return
        if info.get("calibrating"):
            self._control.set_status(
                f"{self._control.progress.value} / "
                f"{self._control.progress.max}: calibrating the threshold"
            )
            return
        score = info["val"]["score"] if "val" in info else None
        self.plot.add(int(info["step"]), float(info["loss"]), score)

    def _finished(self, model: Any) -> None:
        self._returned = True
        self._save(model)

    def _cancelled(self) -> None:
        self._aborted = True

    def _stopped(self) -> None:
        """After a cancel or an error: keep what can be kept.

        A cancel during the steps keeps the model of the steps done (if any was done) and
        still calibrates its threshold, as its own job that a second cancel skips: a fine-tuned
        model grouped at the default threshold merges neighbouring nuclei. A cancel or an
        error during the calibration saves the model without a threshold. An error during the
        steps saves nothing: the weights may then be half updated.
        """
        trainer = self._trainer
        if self._returned or trainer is None or trainer.step == 0:
            self._trainer = None
        elif self._calibrating:
            self._save(trainer.result_model)
            self._trainer = None
        elif self._aborted:
            model = trainer.result_model
            if not self._run_job(self._calibrate(model), calibrating=True):
                self._save(model)
                self._trainer = None
        else:
            self._trainer = None

    def _save(self, model: Any) -> None:
        from ..core.checkpoint import save_model
        from ..core.training.calibrate import calibration

        folder = self.models_dir
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for _ in range(100):
                try:
                    path = save_model(next_model_path(folder), model)
                    break
                except OutputExistsError:
                    continue  # another session took that number in the meantime
            else:
                raise OSError("no free file name")
        except OSError as exc:
            notify_error(f"could not save the fine-tuned model in {folder}: {exc}")
            return
        self.saved = path
        record = model.record
        steps, run = record.get("steps"), record.get("steps_run")
        if run is not None and steps is not None and steps < run:
            # the best-validated weights, not the last: say so, or "4 steps" reads as a bug
            text = f"saved {path.name}\n(the weights of step {steps} of {run}: best validated)"
        else:
            text = f"saved {path.name} ({steps} steps)"
        # one fact per line: a long line widens the dock and squeezes the canvas
        text += f"\nin {elide(path.parent)}"
        scores = record.get("scores") or {}
        if "score" in scores and math.isfinite(scores["score"]):
            text += f"\nvalidation score {scores['score']:.3f}"
        found = calibration(model)
        if found:
            text += f"\nforeground threshold {found['threshold']:g}"
        check = record.get("held_out_check")
        if check:
            from ..core.training.readout import HeldOutScores

            scores = HeldOutScores(tuple(check["frames"]), check["before"], check["after"])
            text += f"\n{scores.describe()}"
        elif not self._held:
            text += "\n(hold out a curated frame to see the score before and after)"
        self._result.value = text
        self._result.tooltip = f"the new model: {path}"
        self._use.visible = True

    def _use_model(self, *_: Any) -> None:
        if self.saved is None:
            return
        try:
            self._session.set_model(self.saved)
        except InputError as exc:
            notify_error(str(exc))
            return
        self._use.visible = False
        layer = self._image.value
        if layer is not None and len(self._session.embed_requested):
            self._session.embed_requested.emit(layer)
            self._result.value = f"now using {self.saved.name}; re-embedding {layer.name}"
        else:  # no Embed widget is open to do it
            self._result.value = f"now using {self.saved.name}; open Embed to re-embed"
