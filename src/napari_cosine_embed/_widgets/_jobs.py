"""Run a core generator in a napari worker: a Run button that turns into Cancel, a progress bar.

Convention: the generator given to :meth:`JobControl.start` runs in a worker thread and yields
``(done, total, payload)`` tuples; the progress bar shows ``done / total`` and ``on_yield``
receives ``payload`` **on the main thread**, which is the only place layers may be changed.
Its return value goes to ``on_return`` (main thread). Cancel asks the worker to stop at its
next yield; the generator's ``finally`` blocks run, so a core generator that writes atomically
leaves nothing half-done.

Only one job of a kind runs per viewer (:meth:`~._session.Session.claim`): while an "embed" job
runs, every other "embed" button says so and is disabled.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from typing import Any

from magicgui.widgets import Container, Label, ProgressBar, PushButton

from ._session import Session

__all__ = ["JobControl", "guarded", "notify_error"]


def notify_error(message: str) -> None:
    """Show ``message`` as a napari error notification (and never raise)."""
    from napari.utils.notifications import show_error

    show_error(message)


def guarded(action: Callable[..., Any], *, with_args: bool = False) -> Callable[..., None]:
    """``action`` with any error shown as a notification instead of raised (a bad input in a
    widget is the user's to fix, not a crash); a signal's arguments are passed on only
    ``with_args`` (a button's ``changed`` sends its value)."""

    def run(*args: Any) -> None:
        try:
            action(*args) if with_args else action()
        except Exception as exc:  # any bad input becomes a notification
            notify_error(_message(exc))

    return run


def _message(exc: BaseException) -> str:
    from ..core.errors import InputError, OutputExistsError

    if isinstance(exc, (InputError, OutputExistsError, ValueError, FileNotFoundError)):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class JobControl(Container):
    """A run/cancel button, a progress bar and a status line for one kind of job.

    Parameters
    ----------
    session : Session
        Whose ``busy`` set guards against two jobs of one kind.
    kind : str
        e.g. ``"embed"``.
    text : str
        The button's text when idle.
    """

    def __init__(self, session: Session, kind: str, text: str) -> None:
        self._session, self._kind, self._text = session, kind, text
        self._button = PushButton(text=text)
        self._progress = ProgressBar(value=0, min=0, max=1, visible=False)
        self._status = Label(value="")
        super().__init__(widgets=[self._button, self._progress, self._status], labels=False)
        self.worker = None
        self.started_at: float | None = None
        self._on_click: Callable[[], None] | None = None
        self._button.changed.connect(self._clicked)
        session.busy_changed.connect(self._refresh)
        # closing the viewer mid-job: stop the worker before its handlers reach dead widgets
        self.native.destroyed.connect(self._stop_on_destroy)

    def _stop_on_destroy(self, *_: Any) -> None:
        self._session.busy_changed.disconnect(self._refresh)
        worker, self.worker = self.worker, None
        if worker is not None:
            for signal in (worker.yielded, worker.returned, worker.errored, worker.finished):
                signal.disconnect()
            worker.quit()
            self._session.release(self._kind)

    @property
    def running(self) -> bool:
        return self.worker is not None

    @property
    def button(self) -> PushButton:
        return self._button

    @property
    def progress(self) -> ProgressBar:
        return self._progress

    def set_status(self, text: str) -> None:
        self._status.value = text

    def on_click(self, callback: Callable[[], None]) -> None:
        """What the button does when no job runs (usually: read inputs, then :meth:`start`)."""
        self._on_click = callback

    def press(self) -> None:
        """What a click on the button does: cancel the running job, or start one."""
        self._clicked()

    def _clicked(self, *_: Any) -> None:
        if self.running:
            self.cancel()
        elif self._on_click is not None:
            try:
                self._on_click()
            except Exception as exc:  # any bad input becomes a notification
                # ...and the status line no longer tells of an earlier success
                self.set_status(f"not started: {_message(exc)}")
                notify_error(_message(exc))

    def _refresh(self) -> None:
        if self.running:
            return
        other = self._kind in self._session.busy
        self._button.enabled = not other
        self._button.text = f"{self._text} (a {self._kind} job is running)" if other else self._text

    def start(
        self,
        generator: Generator[tuple[int, int, Any], None, Any],
        *,
        on_yield: Callable[[Any], None] | None = None,
        on_return: Callable[[Any], None] | None = None,
        on_finish: Callable[[], None] | None = None,
    ):
        """Run ``generator`` in a worker thread; see the module docstring.

        Returns the worker, or None when a job of this kind already runs (the user is told).
        """
        from napari.qt.threading import create_worker

        if not self._session.claim(self._kind):
            notify_error(f"A {self._kind} job is already running; wait for it or cancel it.")
            generator.close()
            return None
        worker = create_worker(lambda: (yield from generator), _start_thread=False)
        self.worker = worker
        self.started_at = time.perf_counter()
        self._progress.visible = True
        self._progress.max, self._progress.value = 1, 0
        self._button.text = "Cancel"
        # claim() above ran _refresh before self.worker was set, which disabled the button
        self._button.enabled = True
        self.set_status("starting...")

        def yielded(item: tuple[int, int, Any]) -> None:
            done, total, payload = item
            self._progress.max = max(int(total), 1)
            self._progress.value = min(int(done), self._progress.max)
            self.set_status(f"{done} / {total}")
            if on_yield is not None:
                on_yield(payload)

        def returned(value: Any) -> None:
            self.set_status(f"done in {time.perf_counter() - self.started_at:.1f} s")
            if on_return is not None:
                on_return(value)

        def errored(exc: BaseException) -> None:
            self.set_status("failed")
            notify_error(_message(exc))

        def finished() -> None:
            if self.worker is worker:
                self.worker = None
                self._progress.visible = False
                self._button.text = self._text
                self._session.release(self._kind)
                if on_finish is not None:
                    on_finish()

        worker.yielded.connect(yielded)
        worker.returned.connect(returned)
        worker.errored.connect(errored)
        worker.aborted.connect(lambda: self.set_status("cancelled"))
        worker.finished.connect(finished)
        worker.start()
        return worker

    def cancel(self) -> None:
        """Ask the running job to stop at its next yield."""
        if self.worker is not None:
            self.set_status("cancelling...")
            self.worker.quit()
