"""A training run on the command line, from checked outputs to a saved model.

``train`` and ``finetune`` share it: outputs and the training state are checked before any
step (:func:`prepare_run`), progress is printed, Ctrl-C or SIGTERM stops after the current step,
the model is saved (or rescued elsewhere when its file cannot be written) and a stopped run says
how to resume (:func:`run_trainer`).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..core.errors import InputError


def _is_path(value) -> bool:
    return value is not None and Path(value).exists()


def prepare_run(args: argparse.Namespace, reads: list[tuple[str, object]]) -> None:
    """Check the outputs before hours of training, not after.

    Neither the model nor the training state may be, contain or sit inside anything read;
    an existing model file is replaced only with ``--overwrite``, or when it is the model an
    interrupted run left and ``--resume`` continues that run.
    """
    from ..core.io.outputs import check_output, check_writable

    reads = [(what, path) for what, path in reads if _is_path(path)]
    state = state_path(args)
    check_output(args.out, [*reads, ("--state file", state)])
    # the state of a resumed run is the file it continues: it is replaced atomically as it goes
    continued = [(w, p) for w, p in reads if w != "--resume state"]
    check_output(state, [*continued, ("--out file", args.out)], name="--state")
    overwrite = args.overwrite or (args.resume is not None and _interrupted_model(args.out))
    check_writable(args.out, kind="file", overwrite=overwrite)
    check_writable(state, kind="file", overwrite=True, name="--state")
    args.replace_out = overwrite


def governor(args: argparse.Namespace):
    """The thread policy of a run: ``--threads N`` fixed, else adapted to the machine's load."""
    from ..core.threads import ThreadGovernor

    return ThreadGovernor(max_threads=args.threads or None, adaptive=not args.threads)


def state_path(args: argparse.Namespace) -> Path:
    return args.state or args.out.with_name(args.out.stem + ".state.pt")


def _interrupted_model(path: Path) -> bool:
    """Whether ``path`` holds a model saved by a run that was stopped before its last step."""
    if not path.is_file():
        return False
    from ..core.checkpoint import load_model

    try:
        return bool(load_model(path, device="cpu").record.get("stopped_early"))
    except (InputError, OSError):
        return False


def _save(out: Path, model, *, overwrite: bool) -> Path:
    """Save the model; if ``out`` cannot be written, save it elsewhere and say where."""
    import tempfile

    from ..core.checkpoint import save_model

    try:
        return save_model(out, model, overwrite=overwrite)
    except (OSError, RuntimeError) as exc:  # torch's writer says RuntimeError on a full disk
        reason = getattr(exc, "strerror", None) or str(exc).strip().splitlines()[-1]
    for folder in (Path(tempfile.gettempdir()), Path.home()):
        rescue = folder / f"{out.stem}-rescued-{os.getpid()}{out.suffix or '.pt'}"
        try:
            save_model(rescue, model)
        except (OSError, RuntimeError):
            continue
        raise InputError(
            f"cannot write {out} ({reason}); the trained model was saved to {rescue} instead"
        )
    raise InputError(f"cannot write {out} ({reason}), nor a rescue copy; see the training state")


def _format_step(info: dict, started_step: int, wall: float) -> str:
    done = max(1, info["step"] - started_step)
    per_step = wall / done
    eta = per_step * (info["steps"] - info["step"])
    parts = [
        f"step {info['step']}/{info['steps']}",
        f"loss {info['loss']:.4f}",
        f"(emb {info.get('embedding_loss', float('nan')):.4f}",
        f"fg {info.get('foreground_loss', float('nan')):.4f})",
        f"lr {info['lr']:.1e}",
        f"{per_step:.2f} s/step",
        f"eta {eta / 60:.0f} min",
    ]
    return "  ".join(parts)


def _format_val(scores: dict, best: dict | None) -> str:
    text = (
        f"  val: score {scores['score']:.3f}  separation {scores['neighbour_separation']:.3f}  "
        f"within {scores['within_cosine']:.3f}  pairs {scores['n_pairs']}"
    )
    if "foreground_iou" in scores:
        text += f"  fg-IoU {scores['foreground_iou']:.3f}"
    if best is not None:
        text += f"  (best {best['score']:.3f} at step {best['step']})"
    return text


def _calibrate(trainer, model):
    """Calibrate the fine-tuned model's foreground threshold, with a progress line."""
    import time

    tic, live = time.perf_counter(), sys.stdout.isatty()
    for done, total in trainer.iter_calibrate(model):
        if live:  # one line that counts up; a log gets only the result
            print(f"\rcalibrating the foreground threshold: frame {done}/{total}", end="")
            print("", end="", flush=True)
    if live:
        print()
    from ..core.training.calibrate import calibration

    found = calibration(model)
    if found:
        print(
            f"foreground threshold {found['threshold']:g} (foreground IoU {found['iou']:.3f} on "
            f"{found['frames']} {found['scored_on']}, {time.perf_counter() - tic:.0f} s): "
            "segment uses it unless --foreground-threshold says otherwise",
            flush=True,
        )
    return model


def run_trainer(
    trainer,
    out: Path,
    *,
    overwrite: bool,
    log_every: int,
    calibrate: bool = False,
    resume_hint: str = "",
    keep_state: bool = True,
) -> int:
    """Drive a Trainer with progress lines; Ctrl-C or SIGTERM stops cleanly and still saves.

    ``calibrate``: afterwards calibrate the foreground threshold (fine-tuning), also after a
    stop (a fine-tuned model grouped at the default threshold merges neighbouring nuclei);
    a Ctrl-C during the calibration skips it and saves the model without one.

    A stopped run saves the model so far and the training state, says how to resume, and
    exits 130 (143 for SIGTERM): a script sees that the run did not finish. ``keep_state``
    False removes the state file once the run has finished.
    """
    import signal
    import time

    stop = []
    signals = (signal.SIGINT, signal.SIGTERM)

    def request_stop(signum, frame):
        stop.append(signum)
        for sig, handler in previous.items():  # a second signal aborts at once
            signal.signal(sig, handler)
        print("\nstopping after this step (Ctrl-C again to abort)...", file=sys.stderr, flush=True)

    previous = {sig: signal.signal(sig, request_stop) for sig in signals}
    run, started_step, started = trainer.run(), trainer.step, time.perf_counter()
    skipped = 0
    try:
        for info in run:
            skipped += int(info.get("skipped", 0))
            wall = time.perf_counter() - started
            if info["step"] % max(1, log_every) == 0 or info["step"] in (1, info["steps"]):
                print(_format_step(info, started_step, wall), flush=True)
            if "val" in info:
                print(_format_val(info["val"], trainer.best), flush=True)
            if stop:
                break
    finally:
        try:
            run.close()  # saves the training state
        except (OSError, RuntimeError) as exc:  # a full disk, as torch's writer reports it
            print(
                f"warning: the training state could not be saved ({exc})",
                file=sys.stderr,
                flush=True,
            )
        for sig, handler in previous.items():
            if signal.getsignal(sig) is request_stop:
                signal.signal(sig, handler)
    model = trainer.result_model
    if stop:
        print(f"stopped at step {trainer.step} of {trainer.config.steps}", flush=True)
    if skipped:
        print(
            f"warning: {skipped} of {trainer.step - started_step} steps gave NaN or infinite "
            "gradients and changed nothing; if most did, lower --lr",
            file=sys.stderr,
            flush=True,
        )
    if calibrate and trainer.step > 0:
        try:
            if stop:
                print("calibrating the threshold (Ctrl-C again to skip)", flush=True)
            model = _calibrate(trainer, model)
        except KeyboardInterrupt:
            print(
                "\ncalibration skipped: the model groups at the default threshold unless "
                "--foreground-threshold says otherwise",
                flush=True,
            )
    path = _save(out, model, overwrite=overwrite)
    score = model.record.get("scores", {}).get("score")
    what = f"val score {score:.3f}, " if score is not None else ""
    print(f"saved model ({what}weights of step {model.record['steps']}) to {path}")
    state = trainer.state_path
    saved = state is not None and Path(state).exists()
    if stop:
        if saved:
            print(
                f"the run did not finish: continue it with {resume_hint}--resume {state}",
                file=sys.stderr,
                flush=True,
            )
        return 143 if stop[0] == signal.SIGTERM else 130
    if saved and keep_state:
        print(f"training state (for --resume): {state}")
    elif saved:
        Path(state).unlink(missing_ok=True)
    return 0
