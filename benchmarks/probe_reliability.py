"""Reliability probe of the ``napari-cosine-embed`` command line: bad inputs and faults.

Run::

    .venv/bin/python benchmarks/probe_reliability.py              # every case; rewrites the table
    .venv/bin/python benchmarks/probe_reliability.py --list       # what would run
    .venv/bin/python benchmarks/probe_reliability.py --only 'signal|lineage' --no-write

A script, not a test: it runs the command line as a user would (one subprocess per case, in a
scratch folder of its own) and reports what happened; it never fails. Each case has an id, a
category, a one-line description, the files it needs (copied from fixtures built once at the
start: a 6-frame 96x96 crop of the Cell Tracking Challenge sequence Fluo-N2DH-SIM+ 02 from
``/work/shared/data`` with its ground truth and a lineage made consistent with the crop, a TIFF
stack, a 2D TIFF and PNG, a zarr store, small synthetic CTC datasets written by
``napari-cosine-embed sample`` and a perfect result for them, model files), a setup that damages
or rearranges them, the argv, and optionally a signal to send (when a line appears on the
output, when a file appears, or after a delay), a stdout that is closed, cut after one line
(``| head -1``) or ``/dev/full``, a file-size limit, extra environment variables, and runs made
before the judged one (a run killed with SIGKILL, then resumed).

Expectations:

``refuse``       exit 2 with a message (the last stderr line), no traceback, no output left;
``ok``           exit 0 (plus a case-specific check of what was written);
``error``        a fault of the machine (disk full, unwritable output, stdout on /dev/full):
                 non-zero exit other than Python's own 120, a message, no traceback;
``interrupted``  non-zero exit after the signal and no output left behind (or, where the
                 signal came too late to stop anything, exit 0 and a complete output);
``stopped``      training stopped by a signal: exit 0, 130 or 143, and the model file, if any,
                 complete (after Ctrl-C it must be there);
``clean``        either ``ok`` or ``refuse`` is fine (a judgement call), but no traceback;
``pipe``         stdout closed early: exit 0, 141 or killed by SIGPIPE, without a traceback
                 or Python's "Exception ignored" noise.

Every case is also judged on: no ``Traceback`` in stderr; every file and folder that existed
before the run and is not the output is byte-for-byte unchanged (nothing added, removed or
modified under an input folder either); no litter (names containing ``.partial``, ``.tmp``,
``.old`` or ``.embeddings-`` that were not there before, TMPDIR included, and anything else
left in TMPDIR but torch's compile cache); nothing written outside the declared outputs; new
files and folders have the permissions ``open``/``mkdir`` give under the umask (the child runs
with umask 002, so 0664 and 0775); where a case says so, the message names what is wrong.
Cases whose signal never fired (the run ended first) are SKIPs, as are real-data cases when
``/work/shared/data`` is absent.

Emulations, because this runs as root in a container: ``chmod`` cannot make a folder read-only
for root and there is neither a read-only bind mount nor a small tmpfs, so an unwritable output
is a path under ``/proc`` or under an existing file, and a full disk is a file-size limit
(``RLIMIT_FSIZE``: writes past it fail with EFBIG, Python ignores SIGXFSZ). Children run with
``OMP_NUM_THREADS=1``, their own ``TMPDIR`` in the case folder and an address-space limit
(``--mem-limit-gb``, default 6) so that a huge allocation fails with MemoryError instead of
taking the machine down.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import hashlib
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tifffile

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("NCE_DATA", "/work/shared/data"))
SIM = DATA / "ctc" / "Fluo-N2DH-SIM+" / "02"
DOC = REPO / "docs" / "reliability.md"
BEGIN, END = "<!-- probe:begin -->", "<!-- probe:end -->"
LITTER = (".partial", ".tmp", ".old", ".embeddings-")
CHILD_UMASK = 0o002
TMP = "_tmp"  # the child's TMPDIR, inside the case folder
THIRD_PARTY_TMP = ("torchinductor_", "numba", "matplotlib")  # caches in TMPDIR that are not litter
CROP, N_FRAMES = 96, 6

# --------------------------------------------------------------------------------------------
# cases


@dataclass
class Signal:
    """Send ``sig`` when ``when`` happens: ``re:REGEX`` on stdout+stderr, ``glob:PATTERN`` in
    the case folder, or ``after:SECONDS``; ``delay`` seconds later; ``repeat`` times 0.2 s
    apart (a double Ctrl-C)."""

    sig: int
    when: str
    delay: float = 0.0
    repeat: int = 1

    def describe(self) -> str:
        what = self.when.split(":", 1)[1]
        kind = self.when.split(":", 1)[0]
        when = {"re": f"on {what!r}", "glob": f"when {what} appears", "after": f"after {what} s"}
        times = "2x " if self.repeat == 2 else ""
        return f"{times}{signal.Signals(self.sig).name} {when[kind]}"


@dataclass
class Run:
    argv: list[str]
    signal: Signal | None = None
    stdout: str = "pipe"  # pipe | closed | head1 | devfull
    stderr: str = "pipe"  # pipe | devfull
    env: dict[str, str | None] = field(default_factory=dict)
    fsize: int | None = None  # RLIMIT_FSIZE in bytes: emulates a full disk
    timeout: float | None = None


@dataclass
class Case:
    id: str
    category: str
    what: str
    run: Run
    expect: str
    uses: tuple[str, ...] = ()
    setup: Callable | None = None
    before: tuple[Run, ...] = ()
    check: Callable | None = None  # (case_dir, Result) -> failure reason or None
    outputs: tuple[str, ...] | None = None
    needs_data: bool = False
    warning_ok: str | None = None  # "refuse" is also met by exit 0 with a warning matching this
    says: str | None = None  # the message must match this (it must name what is wrong)

    def command(self) -> str:
        text = " ".join(shlex.quote(a) for a in self.run.argv) or "(no arguments)"
        if len(text) > 90:
            text = text[:87] + "..."
        notes = []
        if self.before:
            notes.append("after: " + "; ".join(_describe_run(r) for r in self.before))
        if self.run.signal:
            notes.append(self.run.signal.describe())
        notes += {
            "closed": ["stdout closed"],
            "head1": ["| head -1"],
            "devfull": ["> /dev/full"],
        }.get(self.run.stdout, [])
        if self.run.stderr == "devfull":
            notes.append("2> /dev/full")
        if self.run.fsize:
            notes.append(f"file size limit {self.run.fsize} B")
        if self.run.env:
            notes.append(
                " ".join(
                    f"{k}={v if v is not None else '(unset)'}" for k, v in self.run.env.items()
                )
            )
        return text + (f" [{'; '.join(notes)}]" if notes else "")


def _describe_run(run: Run) -> str:
    text = run.argv[0]
    if run.signal:
        text += " " + run.signal.describe()
    return text


@dataclass
class Result:
    rc: int | None
    wall: float
    stdout: str
    stderr: str
    timed_out: bool = False
    fired: int = 0


# --------------------------------------------------------------------------------------------
# running one command


def _env(tmpdir: Path, extra: dict[str, str | None]) -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TMPDIR=str(tmpdir))
    env.pop("PYTHONUNBUFFERED", None)
    for key, value in extra.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


class _Reader:
    """Collect a pipe in a thread; ``head1`` closes it after the first line (``| head -1``)."""

    def __init__(self, fobj, head1: bool = False) -> None:
        self.buf = bytearray()
        self.fobj, self.head1 = fobj, head1
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        fd = self.fobj.fileno()
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            self.buf += chunk
            if self.head1 and b"\n" in self.buf:
                del self.buf[self.buf.index(b"\n") + 1 :]
                break
        self.fobj.close()

    def text(self) -> str:
        return bytes(self.buf).decode("utf-8", "replace")


class Runner:
    def __init__(self, mem_limit: int, default_timeout: float) -> None:
        self.mem_limit, self.default_timeout = mem_limit, default_timeout

    def execute(self, run: Run, cwd: Path) -> Result:
        tmpdir = cwd / TMP
        tmpdir.mkdir(exist_ok=True)
        argv = [a.replace("{case}", str(cwd)) for a in run.argv]
        cmd = [sys.executable, "-m", "napari_cosine_embed.cli", *argv]
        mem, fsize = self.mem_limit, run.fsize

        def preexec() -> None:
            os.umask(CHILD_UMASK)
            if mem:
                resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
            if fsize:
                resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

        to_close = []
        if run.stdout == "closed":
            r, w = os.pipe()
            os.close(r)  # nobody will ever read: the first write fails with EPIPE
            stdout = w
            to_close.append(w)
        elif run.stdout == "devfull":
            stdout = os.open("/dev/full", os.O_WRONLY)
            to_close.append(stdout)
        else:
            stdout = subprocess.PIPE
        if run.stderr == "devfull":
            stderr = os.open("/dev/full", os.O_WRONLY)
            to_close.append(stderr)
        else:
            stderr = subprocess.PIPE
        timeout = run.timeout or self.default_timeout
        tic = time.monotonic()
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=_env(tmpdir, run.env),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            preexec_fn=preexec,
            start_new_session=True,
        )
        for fd in to_close:
            os.close(fd)
        out = _Reader(proc.stdout, head1=run.stdout == "head1") if proc.stdout else None
        err = _Reader(proc.stderr) if proc.stderr else None
        fired, fire_at, timed_out = 0, None, False
        sig = run.signal
        while proc.poll() is None:
            now = time.monotonic()
            if now - tic > timeout:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                timed_out = True
                proc.wait()
                break
            if sig is not None and fired < sig.repeat:
                if (
                    fired == 0
                    and fire_at is None
                    and self._triggered(sig, cwd, out, err, now - tic)
                ):
                    fire_at = now + sig.delay
                if fire_at is not None and now >= fire_at:
                    with contextlib.suppress(ProcessLookupError):
                        if sig.sig == signal.SIGINT:  # a terminal's Ctrl-C hits the whole group
                            os.killpg(proc.pid, sig.sig)
                        else:
                            os.kill(proc.pid, sig.sig)
                    fired += 1
                    fire_at = now + 0.2 if fired < sig.repeat else None
            time.sleep(0.02)
        rc = proc.wait()
        wall = time.monotonic() - tic
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # anything the command left running
        for reader in (out, err):
            if reader is not None:
                reader.thread.join(10)
        return Result(
            rc=None if timed_out else rc,
            wall=wall,
            stdout=out.text() if out else "",
            stderr=err.text() if err else "",
            timed_out=timed_out,
            fired=fired,
        )

    @staticmethod
    def _triggered(sig: Signal, cwd: Path, out, err, elapsed: float) -> bool:
        kind, _, what = sig.when.partition(":")
        if kind == "after":
            return elapsed >= float(what)
        if kind == "glob":
            return any(True for _ in cwd.glob(what))
        text = (err.text() if err else "") + (out.text() if out else "")
        return re.search(what, text) is not None


# --------------------------------------------------------------------------------------------
# fixtures


def _sha(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Fixtures:
    """Small inputs, built once on first use (thread-safe) under ``root``."""

    def __init__(self, root: Path, runner: Runner) -> None:
        self.root, self.runner = root, runner
        self.root.mkdir(parents=True, exist_ok=True)
        self.real = (SIM / "t000.tif").is_file() and (SIM.parent / "02_GT" / "SEG").is_dir()
        self._lock = threading.RLock()
        self._built: set[str] = set()
        self._base = None
        self.source = ""
        self._builders = {
            "seq": self._seq,
            "syn": self._syn,
            "res": self._res,
            "long": self._long,
            "long_ref": self._long_ref,
            "movie.tif": self._arrays,
            "labels.tif": self._arrays,
            "frame.tif": self._arrays,
            "frame.png": self._arrays,
            "imgs": self._arrays,
            "inst": self._arrays,
            "movie.zarr": self._zarr,
            "model.pt": self._models,
            "model_nan.pt": self._models,
            "model_other.pt": self._models,
            "notes.txt": self._notes,
        }

    def path(self, name: str) -> Path:
        with self._lock:
            if name not in self._built:
                self._builders[name]()
                self._built.add(name)
            return self.root / name

    def copy_into(self, case_dir: Path, name: str) -> None:
        src = self.path(name)
        dst = case_dir / name
        if src.is_dir():
            shutil.copytree(src, dst, symlinks=True)
        else:
            shutil.copy(src, dst)

    def cli(self, cwd: Path, *argv: str) -> Result:
        """Run the command line for a setup; raise when it fails (the case is then an error)."""
        result = self.runner.execute(Run(list(argv), timeout=300), cwd)
        if result.rc != 0:
            raise RuntimeError(
                f"setup command {' '.join(argv)} failed: {_last_line(result.stderr)}"
            )
        return result

    # the 6-frame crop (real SIM+ 02, else synthetic) every image fixture comes from
    def base(self) -> tuple[np.ndarray, np.ndarray]:
        with self._lock:
            if self._base is None:
                if self.real:
                    images, labels, _ = self._real_crop()
                    self.source = f"Fluo-N2DH-SIM+ 02 frames 0-{N_FRAMES - 1}, {CROP}x{CROP} crop"
                else:
                    images, labels = self._synthetic_crop()
                    self.source = "synthetic (no shared data)"
                self._base = (images, labels)
            return self._base

    def _real_crop(self):
        from scipy import ndimage as ndi

        t0 = tifffile.imread(SIM.parent / "02_GT" / "SEG" / "man_seg000.tif")
        boxes = [b for b in ndi.find_objects(t0) if b is not None]
        best, where = -1, (0, 0)
        for y in range(0, t0.shape[0] - CROP, 16):
            for x in range(0, t0.shape[1] - CROP, 16):
                inside = sum(
                    1
                    for b in boxes
                    if b[0].start >= y
                    and b[0].stop <= y + CROP
                    and b[1].start >= x
                    and b[1].stop <= x + CROP
                )
                if inside > best:
                    best, where = inside, (y, x)
        y, x = where
        window = (slice(y, y + CROP), slice(x, x + CROP))
        images = np.stack([tifffile.imread(SIM / f"t{t:03d}.tif")[window] for t in range(N_FRAMES)])
        seg = np.stack(
            [
                tifffile.imread(SIM.parent / "02_GT" / "SEG" / f"man_seg{t:03d}.tif")[window]
                for t in range(N_FRAMES)
            ]
        )
        tra = np.stack(
            [
                tifffile.imread(SIM.parent / "02_GT" / "TRA" / f"man_track{t:03d}.tif")[window]
                for t in range(N_FRAMES)
            ]
        )
        parents = {}
        for line in (SIM.parent / "02_GT" / "TRA" / "man_track.txt").read_text().split("\n"):
            if line.strip():
                lab, _, _, par = (int(v) for v in line.split())
                parents[lab] = par
        # one row per label: its first contiguous run of frames; later reappearances are erased
        rows = {}
        for lab in np.unique(tra[tra > 0]):
            frames = [t for t in range(N_FRAMES) if (tra[t] == lab).any()]
            end = frames[0]
            while end + 1 in frames:
                end += 1
            for t in frames:
                if t > end:
                    tra[t][tra[t] == lab] = 0
                    seg[t][seg[t] == lab] = 0
            rows[int(lab)] = [int(lab), frames[0], end, parents.get(int(lab), 0)]
        for row in rows.values():
            parent = rows.get(row[3])
            if parent is None or row[1] != parent[2] + 1:
                row[3] = 0
        seg[~np.isin(seg, list(rows))] = 0
        return images, seg.astype(np.uint16), (tra.astype(np.uint16), sorted(rows.values()))

    def _synthetic_crop(self):
        tmp = self.root / "_base_syn"
        if not tmp.exists():
            self.cli(
                self.root,
                "sample",
                "_base_syn",
                "--frames",
                str(N_FRAMES),
                "--size",
                str(CROP),
                str(CROP),
                "--cells",
                "6",
            )
        images = np.stack([tifffile.imread(tmp / "01" / f"t{t:03d}.tif") for t in range(N_FRAMES)])
        labels = np.stack(
            [
                tifffile.imread(tmp / "01_GT" / "SEG" / f"man_seg{t:03d}.tif")
                for t in range(N_FRAMES)
            ]
        )
        return images, labels.astype(np.uint16)

    def _seq(self) -> None:
        images, _, (tra, rows) = self._real_crop()
        _, seg = self.base()
        root = self.root / "seq"
        for sub in ("02", "02_GT/SEG", "02_GT/TRA"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        for t in range(N_FRAMES):
            tifffile.imwrite(root / "02" / f"t{t:03d}.tif", images[t])
            tifffile.imwrite(root / "02_GT" / "SEG" / f"man_seg{t:03d}.tif", seg[t])
            tifffile.imwrite(root / "02_GT" / "TRA" / f"man_track{t:03d}.tif", tra[t])
        text = "".join(" ".join(str(v) for v in row) + "\n" for row in rows)
        (root / "02_GT" / "TRA" / "man_track.txt").write_text(text)

    def _syn(self) -> None:
        self.cli(
            self.root,
            "sample",
            "syn",
            "--frames",
            "8",
            "--size",
            "96",
            "96",
            "--cells",
            "5",
            "--seed",
            "3",
        )

    def _res(self) -> None:
        """A perfect result for ``syn``: its TRA markers (full masks there) as maskNNN.tif."""
        gt = self.path("syn") / "01_GT" / "TRA"
        res = self.root / "res"
        res.mkdir()
        for src in sorted(gt.glob("man_track*.tif")):
            shutil.copy(src, res / src.name.replace("man_track", "mask"))
        shutil.copy(gt / "man_track.txt", res / "res_track.txt")

    def _long(self) -> None:
        self.cli(
            self.root,
            "sample",
            "long",
            "--frames",
            "16",
            "--size",
            "128",
            "128",
            "--cells",
            "8",
            "--seed",
            "1",
        )

    def _long_ref(self) -> None:
        self.path("long")
        self.cli(self.root, "segment", "long/01", "-o", "long_ref")

    def _arrays(self) -> None:
        import imageio.v3 as iio

        if "movie.tif" in self._built:
            return
        images, labels = self.base()
        tifffile.imwrite(self.root / "movie.tif", images)
        tifffile.imwrite(self.root / "labels.tif", labels)
        tifffile.imwrite(self.root / "frame.tif", images[0])
        iio.imwrite(self.root / "frame.png", to_uint8(images[0]))
        (self.root / "imgs").mkdir()
        tifffile.imwrite(self.root / "imgs" / "a.tif", images[1])
        iio.imwrite(self.root / "imgs" / "b.png", to_uint8(images[2]))
        for sub in ("gt", "res"):
            (self.root / "inst" / sub).mkdir(parents=True)
            tifffile.imwrite(self.root / "inst" / sub / "a.tif", labels[0])
            tifffile.imwrite(self.root / "inst" / sub / "b.tif", labels[1])
        self._built.update({"movie.tif", "labels.tif", "frame.tif", "frame.png", "imgs", "inst"})

    def _zarr(self) -> None:
        import zarr

        images, _ = self.base()
        array = zarr.create_array(
            store=str(self.root / "movie.zarr"),
            shape=images.shape,
            chunks=(1, *images.shape[1:]),
            dtype=images.dtype,
        )
        array[:] = images

    def _models(self) -> None:
        import torch

        from napari_cosine_embed.core.checkpoint import bundled_models_dir

        if "model.pt" in self._built:
            return
        src = bundled_models_dir() / "default.pt"
        shutil.copy(src, self.root / "model.pt")
        payload = torch.load(src, map_location="cpu", weights_only=True)
        state = payload["state_dict"]
        name = next(k for k, v in state.items() if v.is_floating_point() and v.numel() > 1)
        other = {
            **payload,
            "state_dict": {k: (v * 1.01 if v.is_floating_point() else v) for k, v in state.items()},
        }
        torch.save(other, self.root / "model_other.pt")
        state[name] = state[name].clone()
        state[name].view(-1)[: max(1, state[name].numel() // 2)] = float("nan")
        torch.save(payload, self.root / "model_nan.pt")
        self._built.update({"model.pt", "model_other.pt", "model_nan.pt"})

    def _notes(self) -> None:
        (self.root / "notes.txt").write_text("my notes: not an image, not a model\n")


def to_uint8(image: np.ndarray) -> np.ndarray:
    image = image.astype(np.float64)
    lo, hi = image.min(), image.max()
    return ((image - lo) / max(hi - lo, 1e-9) * 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------
# setup helpers: each returns a callable (case_dir, fixtures) -> None


def chain(*steps):
    def run(d: Path, fx: Fixtures) -> None:
        for step in steps:
            step(d, fx)

    return run


def put_text(rel: str, text: str):
    def run(d: Path, fx: Fixtures) -> None:
        p = d / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)

    return run


def put_bytes(rel: str, data: bytes):
    def run(d: Path, fx: Fixtures) -> None:
        p = d / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)

    return run


def put_tiff(rel: str, make: Callable):
    """``make(images, labels)`` -> the array to write."""

    def run(d: Path, fx: Fixtures) -> None:
        p = d / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        images, labels = fx.base()
        tifffile.imwrite(p, make(images.copy(), labels.copy()))

    return run


def put_png(rel: str, make: Callable):
    def run(d: Path, fx: Fixtures) -> None:
        import imageio.v3 as iio

        p = d / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        images, labels = fx.base()
        iio.imwrite(p, make(images.copy(), labels.copy()))

    return run


def symlink(rel: str, target: str):
    def run(d: Path, fx: Fixtures) -> None:
        os.symlink(target, d / rel)

    return run


def mkdirs(*rels: str):
    def run(d: Path, fx: Fixtures) -> None:
        for rel in rels:
            (d / rel).mkdir(parents=True, exist_ok=True)

    return run


def copy(src: str, dst: str):
    def run(d: Path, fx: Fixtures) -> None:
        (d / dst).parent.mkdir(parents=True, exist_ok=True)
        if (d / src).is_dir():
            shutil.copytree(d / src, d / dst)
        else:
            shutil.copy(d / src, d / dst)

    return run


def remove(rel: str):
    def run(d: Path, fx: Fixtures) -> None:
        p = d / rel
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()

    return run


def truncate(rel: str, keep: float = 0.5):
    def run(d: Path, fx: Fixtures) -> None:
        p = d / rel
        data = p.read_bytes()
        p.write_bytes(data[: int(len(data) * keep)])

    return run


def garble(rel: str, start: float = 0.3, length: int = 4096):
    """Overwrite bytes in the middle of a file with seeded random bytes (same size)."""

    def run(d: Path, fx: Fixtures) -> None:
        p = d / rel
        data = bytearray(p.read_bytes())
        i = int(len(data) * start)
        n = min(length, len(data) - i)
        data[i : i + n] = np.random.default_rng(0).integers(0, 256, n, dtype=np.uint8).tobytes()
        p.write_bytes(bytes(data))

    return run


def edit_rows(rel: str, fn: Callable):
    """Edit a CTC lineage file: ``fn(rows)`` gets ``[[L, B, E, P], ...]`` and returns rows or
    the new text."""

    def run(d: Path, fx: Fixtures) -> None:
        p = d / rel
        rows = [
            [int(v) for v in line.split()] for line in p.read_text().splitlines() if line.strip()
        ]
        new = fn(rows)
        if not isinstance(new, str):
            new = "".join(" ".join(str(v) for v in row) + "\n" for row in new)
        p.write_text(new)

    return run


def run_cli(*argv: str):
    def run(d: Path, fx: Fixtures) -> None:
        fx.cli(d, *argv)

    return run


def _long_row(rows):
    """The first row whose track lasts more than one frame."""
    return next(i for i, r in enumerate(rows) if r[2] > r[1])


def _swap_first_long(rows):
    i = _long_row(rows)
    rows[i][1], rows[i][2] = rows[i][2], rows[i][1]
    return rows


def _own_parent(rows):
    rows[0][3] = rows[0][0]
    return rows


def _child_early(rows):
    i = _long_row(rows)
    j = next(k for k, r in enumerate(rows) if k != i and r[1] <= rows[i][1])
    rows[j][3] = rows[i][0]
    return rows


def _set(i: int, col: int, value: int):
    def fn(rows):
        rows[i][col] = value
        return rows

    return fn


def _cycle(rows):
    rows[0][3], rows[1][3] = rows[1][0], rows[0][0]
    return rows


# --------------------------------------------------------------------------------------------
# checks: (case_dir, Result) -> failure reason or None


def _masks(folder: Path) -> list[np.ndarray]:
    return [tifffile.imread(p) for p in sorted(folder.glob("mask*.tif"))]


def ctc_result(rel: str, frames: int, tracked: bool = True):
    def check(d: Path, res: Result) -> str | None:
        out = d / rel
        if not out.is_dir():
            return f"no result folder {rel}"
        n = len(list(out.glob("mask*.tif")))
        if n != frames:
            return f"{rel} has {n} mask files, expected {frames}"
        if tracked and not (out / "res_track.txt").is_file():
            return f"{rel} has no res_track.txt"
        return None

    return check


def has_objects(rel: str, frames: int):
    base = ctc_result(rel, frames)

    def check(d: Path, res: Result) -> str | None:
        problem = base(d, res)
        if problem:
            return problem
        if not any(m.max() > 0 for m in _masks(d / rel)):
            return "every mask is empty (the damaged pixels spoilt the whole movie)"
        return None

    return check


def files_exist(*rels: str):
    def check(d: Path, res: Result) -> str | None:
        missing = [r for r in rels if not (d / r).exists()]
        return f"missing {', '.join(missing)}" if missing else None

    return check


def same_as_reference(rel: str, ref: str):
    """The resumed result equals the clean run's result (masks and lineage)."""

    def check(d: Path, res: Result) -> str | None:
        problem = ctc_result(rel, 16)(d, res)
        if problem:
            return problem
        refdir = FIXTURES.path(ref)
        got, want = _masks(d / rel), _masks(refdir)
        diff = [
            t for t, (a, b) in enumerate(zip(got, want, strict=True)) if not np.array_equal(a, b)
        ]
        if diff:
            return f"resumed result differs from a clean run in frames {diff[:5]}"
        if (d / rel / "res_track.txt").read_text() != (refdir / "res_track.txt").read_text():
            return "resumed lineage differs from a clean run"
        return None

    return check


def loadable_model(rel: str, required: bool = False):
    """``rel`` is a complete model file (or, unless ``required``, absent)."""

    def check(d: Path, res: Result) -> str | None:
        path = d / rel
        if not path.exists():
            return f"no model {rel} saved" if required else None
        import torch

        try:
            torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            return f"{rel} is not a readable model ({type(exc).__name__})"
        return None

    return check


def whole_or_nothing(d: Path, res: Result) -> str | None:
    """After a signal that came too late to stop the run (exit 0): a complete result."""
    return ctc_result("out", 16)(d, res)


def valid_json(res_dir: Path, res: Result) -> str | None:
    try:
        json.loads(res.stdout)
    except ValueError as exc:
        return f"stdout is not JSON ({exc})"
    return None


def all_checks(*checks):
    def check(d: Path, res: Result) -> str | None:
        for c in checks:
            problem = c(d, res)
            if problem:
                return problem
        return None

    return check


# --------------------------------------------------------------------------------------------
# the cases

SEG = ["segment", "movie.tif", "-o", "out"]
TRK = ["track", "labels.tif", "-o", "out"]
SMP = ["sample", "out", "--frames", "3", "--size", "48", "48", "--cells", "3"]
TRN = [
    "train", "--out", "m.pt", "--synthetic-movies", "1", "--synthetic-frames", "2",
    "--synthetic-size", "64", "--val-synthetic", "0", "--steps", "2", "--crop", "32",
    "--batch-size", "1", "--config", "stacks=1,levels=2,filters=8", "--warmup", "0",
    "--val-every", "0", "--checkpoint-every", "0", "--device", "cpu",
]  # fmt: skip
FT = [
    "finetune", "--images", "movie.tif", "--labels", "labels.tif", "--out", "m.pt",
    "--steps", "2", "--crop", "32", "--batch-size", "1", "--clip-length", "2", "--device", "cpu",
]  # fmt: skip
EVAL = ["evaluate", "--gt", "syn/01_GT", "--res", "res"]
USES = {
    "segment": ("movie.tif",),
    "track": ("labels.tif",),
    "sample": (),
    "train": (),
    "finetune": ("movie.tif", "labels.tif"),
    "evaluate": ("syn", "res"),
}
NARGS = {"--size": 2}


def opt(base: list[str], option: str, *values: str) -> list[str]:
    """``base`` with ``option`` set to ``values`` (replaced where present, else appended)."""
    argv = list(base)
    if option in argv:
        i = argv.index(option)
        n = NARGS.get(option, 1)
        argv[i + 1 : i + 1 + n] = list(values)
        return argv
    return [*argv, option, *values]


def without(argv: list[str], option: str) -> list[str]:
    """``argv`` less ``option`` and its value."""
    i = argv.index(option)
    return argv[:i] + argv[i + 2 :]


def _cuda() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:
        return False


def build_cases() -> list[Case]:
    cases: list[Case] = []

    def add(category, cid, what, argv, expect, **kw):
        run_kw = {
            k: kw.pop(k)
            for k in ("signal", "stdout", "stderr", "env", "fsize", "timeout")
            if k in kw
        }
        uses = kw.pop("uses", USES.get(argv[0], ()) if argv else ())
        cases.append(
            Case(cid, category, what, Run(list(argv), **run_kw), expect, uses=tuple(uses), **kw)
        )

    seg_ok = ctc_result("out", N_FRAMES)
    # ---------------------------------------------------------------- paths: output vs input
    add(
        "paths",
        "out-eq-input-file",
        "segment output = the input TIFF",
        ["segment", "movie.tif", "-o", "movie.tif"],
        "refuse",
    )
    add(
        "paths",
        "out-eq-input-overwrite",
        "segment output = the input CTC folder, --overwrite",
        ["segment", "syn/01", "-o", "syn/01", "--overwrite"],
        "refuse",
        uses=("syn",),
    )
    add(
        "paths",
        "out-parent-of-input",
        "output = parent of the input folder, --overwrite",
        ["segment", "syn/01", "-o", "syn", "--overwrite"],
        "refuse",
        uses=("syn",),
    )
    add(
        "paths",
        "out-inside-input",
        "output folder inside the input CTC folder",
        ["segment", "syn/01", "-o", "syn/01/res"],
        "refuse",
        uses=("syn",),
    )
    add(
        "paths",
        "out-is-cwd",
        "output = '.', the folder holding the input, --overwrite",
        ["segment", "movie.tif", "-o", ".", "--overwrite"],
        "refuse",
    )
    add(
        "paths",
        "out-dotdot-input",
        "output spelled syn/../syn/01 = the input, --overwrite",
        ["segment", "syn/01", "-o", "syn/../syn/01", "--overwrite"],
        "refuse",
        uses=("syn",),
    )
    add(
        "paths",
        "out-symlink-to-input",
        "output is a symlink to the input folder, --overwrite",
        ["segment", "syn/01", "-o", "link", "--overwrite"],
        "refuse",
        uses=("syn",),
        setup=symlink("link", "syn/01"),
    )
    add(
        "paths",
        "out-under-symlink-into-input",
        "output under a symlink that points into the input",
        ["segment", "syn/01", "-o", "link/res"],
        "refuse",
        uses=("syn",),
        setup=symlink("link", "syn/01"),
        outputs=("link/res",),
    )
    add(
        "paths",
        "out-existing-file",
        "output is an existing file (no --overwrite)",
        ["segment", "movie.tif", "-o", "notes.txt"],
        "refuse",
        uses=("movie.tif", "notes.txt"),
    )
    add(
        "paths",
        "out-existing-file-overwrite",
        "output is an existing file, --overwrite",
        ["segment", "movie.tif", "-o", "notes.txt", "--overwrite"],
        "refuse",
        uses=("movie.tif", "notes.txt"),
    )
    add(
        "paths",
        "out-existing-folder",
        "output folder exists (no --overwrite)",
        [*SEG],
        "refuse",
        setup=mkdirs("out"),
    )
    add(
        "paths",
        "track-out-eq-input",
        "track output = its input result folder, --overwrite",
        ["track", "res", "-o", "res", "--overwrite"],
        "refuse",
        uses=("res",),
    )
    add(
        "paths",
        "sample-out-existing-file",
        "sample OUT_DIR is an existing file",
        ["sample", "notes.txt", "--frames", "2"],
        "refuse",
        uses=("notes.txt",),
    )
    add(
        "paths",
        "sample-out-cwd",
        "sample OUT_DIR '.', --overwrite (would replace the working folder)",
        ["sample", ".", "--frames", "2", "--size", "32", "32", "--cells", "1", "--overwrite"],
        "refuse",
        uses=("notes.txt",),
        outputs=(),
    )
    add(
        "paths",
        "sample-seq-escape",
        "sample --sequence ../escape writes outside OUT_DIR",
        opt(SMP, "--sequence", "../escape"),
        "refuse",
    )
    add(
        "paths",
        "sample-seq-absolute",
        "sample --sequence an absolute path",
        opt(SMP, "--sequence", "{case}/abs"),
        "refuse",
    )
    add("paths", "sample-seq-empty", "sample --sequence ''", opt(SMP, "--sequence", ""), "refuse")
    add(
        "paths",
        "sample-seq-nested",
        "sample --sequence a/b (a path, not a name)",
        opt(SMP, "--sequence", "a/b"),
        "refuse",
    )
    add(
        "paths",
        "finetune-out-eq-images",
        "finetune --out = the --images file, --overwrite",
        opt(opt(FT, "--out", "movie.tif"), "--overwrite"),
        "refuse",
    )
    add(
        "paths",
        "finetune-out-eq-base",
        "finetune --out = its --base model file, --overwrite",
        [*opt(opt(FT, "--out", "model.pt"), "--base", "model.pt"), "--overwrite"],
        "refuse",
        uses=("movie.tif", "labels.tif", "model.pt"),
    )
    add(
        "paths",
        "train-out-folder",
        "train --out is an existing folder",
        [*TRN],
        "refuse",
        setup=mkdirs("m.pt"),
        outputs=("m.pt",),
    )
    add(
        "paths",
        "finetune-out-folder",
        "finetune --out is an existing folder",
        [*FT],
        "refuse",
        setup=mkdirs("m.pt"),
        outputs=("m.pt",),
    )
    add(
        "paths",
        "train-state-eq-out",
        "train --state = --out",
        opt(TRN, "--state", "m.pt"),
        "refuse",
    )
    add(
        "paths",
        "train-out-new-dirs",
        "train --out in folders that do not exist yet",
        opt(TRN, "--out", "new/sub/m.pt"),
        "ok",
        outputs=("new",),
        check=files_exist("new/sub/m.pt"),
    )
    add(
        "paths",
        "out-new-dirs",
        "segment output in folders that do not exist yet",
        opt(SEG, "-o", "a/b/out"),
        "ok",
        outputs=("a",),
        check=ctc_result("a/b/out", N_FRAMES),
    )
    add(
        "paths",
        "cache-inside-input",
        "--cache inside the input CTC folder",
        ["segment", "syn/01", "-o", "out", "--cache", "syn/01/c.zarr"],
        "refuse",
        uses=("syn",),
    )
    add(
        "paths",
        "cache-inside-output",
        "--cache inside the output folder",
        [*SEG, "--cache", "out/c.zarr"],
        "refuse",
    )
    add(
        "paths",
        "cache-eq-input-zarr",
        "--cache = the input zarr store",
        ["segment", "movie.zarr", "-o", "out", "--cache", "movie.zarr"],
        "refuse",
        uses=("movie.zarr",),
    )
    add(
        "paths",
        "cache-existing-file",
        "--cache is an existing non-zarr file",
        [*SEG, "--cache", "notes.txt"],
        "refuse",
        uses=("movie.tif", "notes.txt"),
    )
    add(
        "paths",
        "cache-user-folder",
        "--cache is a folder of user files",
        [*SEG, "--cache", "imgs"],
        "refuse",
        uses=("movie.tif", "imgs"),
    )
    add(
        "paths",
        "missing-input",
        "input does not exist",
        ["segment", "nope.tif", "-o", "out"],
        "refuse",
        uses=(),
    )
    add(
        "paths",
        "dir-instead-of-file",
        "finetune --images is an empty folder",
        opt(FT, "--images", "empty"),
        "refuse",
        setup=mkdirs("empty"),
    )
    add(
        "paths",
        "file-instead-of-dir",
        "evaluate --gt is a file",
        ["evaluate", "--gt", "movie.tif", "--res", "res"],
        "refuse",
        uses=("movie.tif", "res"),
    )
    add(
        "paths",
        "duplicate-inputs",
        "segment --no-track the same image twice",
        ["segment", "--no-track", "frame.tif", "frame.tif", "-o", "out"],
        "refuse",
        uses=("frame.tif",),
    )
    add(
        "paths",
        "duplicate-stems",
        "segment --no-track a/x.tif and b/x.tif (same stem)",
        ["segment", "--no-track", "a/x.tif", "b/x.tif", "-o", "out"],
        "refuse",
        uses=("frame.tif",),
        setup=chain(copy("frame.tif", "a/x.tif"), copy("frame.tif", "b/x.tif")),
    )
    add(
        "paths",
        "unicode-space-paths",
        "input and output with accents and spaces",
        ["segment", "données été/film 1.tif", "-o", "résultat über/out 1"],
        "ok",
        setup=copy("movie.tif", "données été/film 1.tif"),
        outputs=("résultat über",),
        check=ctc_result("résultat über/out 1", N_FRAMES),
    )
    add(
        "paths",
        "dotdot-input",
        "input spelled sub/../movie.tif",
        ["segment", "sub/../movie.tif", "-o", "out"],
        "ok",
        setup=mkdirs("sub"),
        check=seg_ok,
    )
    add(
        "paths",
        "out-under-file",
        "output under an existing file (unwritable: emulates a read-only folder)",
        opt(SEG, "-o", "notes.txt/out"),
        "error",
        uses=("movie.tif", "notes.txt"),
        outputs=("notes.txt/out",),
    )
    add(
        "paths",
        "out-in-proc",
        "output in /proc (unwritable: emulates a read-only mount)",
        opt(SEG, "-o", "/proc/nce-probe-out"),
        "error",
        outputs=(),
    )
    add(
        "paths",
        "evaluate-gt-eq-res",
        "evaluate --gt and --res the same GT folder",
        ["evaluate", "--gt", "syn/01_GT", "--res", "syn/01_GT"],
        "refuse",
        uses=("syn",),
    )

    # ---------------------------------------------------------------- signals
    long_seg = ["segment", "long/01", "-o", "out"]
    add(
        "signals",
        "segment-sigterm",
        "SIGTERM while segmenting frame by frame",
        long_seg,
        "interrupted",
        uses=("long",),
        check=whole_or_nothing,
        signal=Signal(signal.SIGTERM, "re:segment: 1/"),
    )
    add(
        "signals",
        "segment-sigint",
        "Ctrl-C while segmenting frame by frame",
        long_seg,
        "interrupted",
        uses=("long",),
        check=whole_or_nothing,
        signal=Signal(signal.SIGINT, "re:segment: 1/"),
    )
    add(
        "signals",
        "segment-sigterm-embed-cache",
        "SIGTERM while embedding into --cache",
        [*long_seg, "--cache", "c.zarr"],
        "interrupted",
        uses=("long",),
        check=whole_or_nothing,
        signal=Signal(signal.SIGTERM, "re:embed: 1/"),
    )
    add(
        "signals",
        "segment-sigint-writing",
        "Ctrl-C as the result folder is being written (after tracking)",
        long_seg,
        "interrupted",
        uses=("long",),
        check=whole_or_nothing,
        signal=Signal(signal.SIGINT, "re:track: 1/1"),
    )
    add(
        "signals",
        "segment-sigterm-writing",
        "SIGTERM as the result folder is being written (after tracking)",
        long_seg,
        "interrupted",
        uses=("long",),
        check=whole_or_nothing,
        signal=Signal(signal.SIGTERM, "re:track: 1/1"),
    )
    for delay in (0.02, 0.06):  # the write takes tens of ms: land the signal inside it
        add(
            "signals",
            f"segment-sigterm-writing-{int(delay * 1000)}ms",
            f"SIGTERM {int(delay * 1000)} ms after tracking, while writing (racy)",
            long_seg,
            "interrupted",
            uses=("long",),
            check=whole_or_nothing,
            signal=Signal(signal.SIGTERM, "re:track: 1/1", delay=delay),
        )
    add(
        "signals",
        "segment-notrack-sigint",
        "Ctrl-C while labelling 2D images one by one",
        ["segment", "--no-track", "long/01", "-o", "out"],
        "interrupted",
        uses=("long",),
        signal=Signal(signal.SIGINT, "re:embed: 1/"),
    )
    add(
        "signals",
        "segment-sigkill-resume-frames",
        "SIGKILL while segmenting, then the same command with --resume",
        [*long_seg, "--resume"],
        "ok",
        uses=("long",),
        before=(Run(long_seg, signal=Signal(signal.SIGKILL, "re:segment: 1/", delay=0.3)),),
        check=same_as_reference("out", "long_ref"),
    )
    resume = [*long_seg, "--cache", "c.zarr"]
    add(
        "signals",
        "segment-sigkill-resume-group",
        "SIGKILL while grouping, then the same command with --cache",
        resume,
        "ok",
        uses=("long",),
        before=(Run(resume, signal=Signal(signal.SIGKILL, "re:group: 1/")),),
        check=same_as_reference("out", "long_ref"),
    )
    add(
        "signals",
        "segment-sigkill-resume-embed",
        "SIGKILL while embedding into --cache, then resume",
        resume,
        "ok",
        uses=("long",),
        before=(Run(resume, signal=Signal(signal.SIGKILL, "re:embed: 1/", delay=0.3)),),
        check=same_as_reference("out", "long_ref"),
    )
    add(
        "signals",
        "sample-sigterm-writing",
        "sample: SIGTERM while writing",
        ["sample", "out", "--frames", "200", "--size", "256", "256"],
        "interrupted",
        signal=Signal(signal.SIGTERM, "glob:.out.*partial/01/t000.tif"),
    )
    add(
        "signals",
        "sample-sigint-writing",
        "sample: Ctrl-C while writing",
        ["sample", "out", "--frames", "200", "--size", "256", "256"],
        "interrupted",
        signal=Signal(signal.SIGINT, "glob:.out.*partial/01/t000.tif"),
    )
    ft_long = opt(opt(FT, "--steps", "400"), "--log-every", "1")
    add(
        "signals",
        "finetune-sigint",
        "finetune: Ctrl-C stops after the step and saves",
        ft_long,
        "stopped",
        signal=Signal(signal.SIGINT, "re:step 3/"),
        check=loadable_model("m.pt", required=True),
    )
    add(
        "signals",
        "finetune-sigint-twice",
        "finetune: Ctrl-C twice (aborts, or skips the calibration)",
        ft_long,
        "stopped",
        signal=Signal(signal.SIGINT, "re:step 3/", repeat=2),
        check=loadable_model("m.pt"),
    )
    add(
        "signals",
        "finetune-sigterm",
        "finetune: SIGTERM (saving the model so far is fine)",
        ft_long,
        "stopped",
        signal=Signal(signal.SIGTERM, "re:step 3/"),
        check=loadable_model("m.pt"),
    )
    trn_long = opt(opt(TRN, "--steps", "400"), "--log-every", "1")
    add(
        "signals",
        "train-sigint",
        "train: Ctrl-C stops after the step and saves",
        trn_long,
        "stopped",
        signal=Signal(signal.SIGINT, "re:step 3/"),
        check=loadable_model("m.pt", required=True),
    )
    add(
        "signals",
        "train-sigterm",
        "train: SIGTERM (saving the model so far is fine)",
        trn_long,
        "stopped",
        signal=Signal(signal.SIGTERM, "re:step 3/"),
        check=loadable_model("m.pt"),
    )
    trn_ckpt = opt(opt(TRN, "--steps", "300"), "--checkpoint-every", "20")
    add(
        "signals",
        "train-sigkill-resume",
        "train: SIGKILL after a checkpoint, then --resume",
        [*trn_ckpt, "--resume", "m.state.pt"],
        "ok",
        before=(
            Run(opt(trn_ckpt, "--log-every", "1"), signal=Signal(signal.SIGKILL, "re:step 45/")),
        ),
        check=files_exist("m.pt"),
        outputs=("m.pt", "m.state.pt"),
    )

    # ---------------------------------------------------------------- streams and disk
    add(
        "streams",
        "evaluate-stdout-closed",
        "evaluate with stdout closed before it prints",
        EVAL,
        "pipe",
        stdout="closed",
    )
    add(
        "streams",
        "models-stdout-closed",
        "models with stdout closed",
        ["models"],
        "pipe",
        stdout="closed",
    )
    add(
        "streams",
        "models-head",
        "models --json | head -1",
        ["models", "--json"],
        "pipe",
        stdout="head1",
    )
    add(
        "streams",
        "train-head",
        "train --log-every 1 | head -1 (many lines)",
        opt(opt(TRN, "--steps", "300"), "--log-every", "1"),
        "pipe",
        stdout="head1",
    )
    add(
        "streams", "sample-stdout-closed", "sample with stdout closed", SMP, "pipe", stdout="closed"
    )
    add(
        "streams",
        "evaluate-devfull",
        "evaluate > /dev/full (stdout: no space left)",
        EVAL,
        "error",
        stdout="devfull",
    )
    add("streams", "models-devfull", "models > /dev/full", ["models"], "error", stdout="devfull")
    add("streams", "segment-devfull", "segment > /dev/full", SEG, "error", stdout="devfull")
    add(
        "streams",
        "segment-stderr-devfull",
        "segment 2> /dev/full (progress cannot be written)",
        SEG,
        "ok",
        stderr="devfull",
        check=seg_ok,
    )
    add(
        "streams",
        "segment-disk-full",
        "segment, disk full while writing masks (RLIMIT_FSIZE 512 B)",
        SEG,
        "error",
        fsize=512,
    )
    add(
        "streams",
        "segment-cache-disk-full",
        "segment --cache, disk full while caching (RLIMIT_FSIZE 16 KiB)",
        [*SEG, "--cache", "c.zarr"],
        "error",
        fsize=16384,
    )
    add(
        "streams",
        "sample-disk-full",
        "sample, disk full (RLIMIT_FSIZE 2 KiB)",
        SMP,
        "error",
        fsize=2048,
    )
    add(
        "streams",
        "finetune-disk-full",
        "finetune, disk full when saving the model (RLIMIT_FSIZE 1 MiB)",
        FT,
        "error",
        fsize=1 << 20,
    )
    add(
        "streams",
        "train-disk-full",
        "train, disk full when saving (RLIMIT_FSIZE 16 KiB)",
        TRN,
        "error",
        fsize=16384,
    )
    add(
        "streams",
        "track-disk-full",
        "track, disk full (RLIMIT_FSIZE 512 B)",
        TRK,
        "error",
        fsize=512,
    )

    # ---------------------------------------------------------------- numeric options
    def numeric(cmd, base, option, values, expect="refuse", timeout=None):
        for value in values:
            vals = value if isinstance(value, tuple) else (value,)
            cid = f"{cmd}{option}={','.join(vals)}"
            kw = {"timeout": timeout} if timeout else {}
            add(
                f"numbers-{cmd}",
                cid,
                f"{cmd} {option} {' '.join(vals)}",
                opt(base, option, *vals),
                expect,
                **kw,
            )

    for option, values in (
        ("--min-samples", ["0"]),
        ("--min-cluster-size", ["0"]),
        ("--coord-weight", ["-1", "nan", "inf"]),
        ("--epsilon", ["-0.5", "nan", "inf"]),
        ("--bandwidth", ["0", "nan", "inf"]),
        ("--foreground-threshold", ["1.5", "nan", "inf"]),
        ("--min-size", ["-5"]),
        ("--split-depth", ["1.0", "nan", "inf"]),
        ("--object-size", ["0", "nan", "inf"]),
        ("--tile-size", ["0"]),
        ("--min-track-length", ["-1"]),
        ("--max-gap", ["-1"]),
        ("--split-back", ["-1"]),
        ("--min-size", ["2.5"]),
        ("--tile-size", ["abc"]),
    ):
        numeric("segment", SEG, option, values, timeout=60)
    for option, values in (
        ("--min-iou", ["1.5", "nan", "inf"]),
        ("--min-track-length", ["-1"]),
        ("--min-split-frames", ["-1"]),
        ("--min-child-ratio", ["-0.5", "nan", "inf"]),
        ("--max-gap", ["-1"]),
        ("--split-back", ["-1"]),
        ("--max-gap", ["x"]),
    ):
        numeric("track", TRK, option, values, timeout=60)
    for option, values in (
        ("--frames", ["0", "-2", "ten"]),
        ("--size", [("0", "0"), ("-8", "8")]),
        ("--cells", ["-1"]),
        ("--seed", ["-1"]),
    ):
        numeric("sample", SMP, option, values, timeout=60)
    for option, values in (
        ("--synthetic-movies", ["-1"]),
        ("--synthetic-frames", ["0"]),
        ("--synthetic-size", ["0"]),
        ("--crowded", ["1.5", "nan"]),
        ("--val-synthetic", ["-1"]),
        ("--val-dsb", ["-1"]),
        ("--steps", ["0", "1e3"]),
        ("--batch-size", ["0"]),
        ("--crop", ["0"]),
        ("--foreground-crops", ["1.5", "nan"]),
        ("--clip-length", ["0"]),
        ("--lr", ["-1", "nan", "inf"]),
        ("--threads", ["-1"]),
        ("--seed", ["-1"]),
        ("--bptt", ["-1"]),
        ("--warmup", ["-1"]),
        ("--neighbour-radius", ["-1", "nan", "inf"]),
        ("--foreground-weight", ["-1", "nan", "inf"]),
        ("--val-every", ["-1"]),
        ("--checkpoint-every", ["-1"]),
    ):
        numeric("train", TRN, option, values, timeout=90)
    numeric("train", TRN, "--log-every", ["-1"], expect="clean")
    for option, values in (
        ("--steps", ["0"]),
        ("--batch-size", ["0"]),
        ("--crop", ["0"]),
        ("--foreground-crops", ["nan"]),
        ("--clip-length", ["0", "100"]),
        ("--lr", ["nan", "inf"]),
        ("--threads", ["-1"]),
        ("--seed", ["-1"]),
        ("--frames", ["99", "a,b"]),
    ):
        numeric("finetune", FT, option, values, timeout=90)
    numeric("finetune", FT, "--log-every", ["-1"], expect="clean")
    numeric("finetune", FT, "--frames", ["0,0"], expect="clean")
    numeric("evaluate", EVAL, "--measures", ["BC(-1)", "FOO", "BC(x)"])
    numeric("evaluate", EVAL, "--measures", [""], expect="clean")

    # ---------------------------------------------------------------- huge sizes
    add(
        "huge",
        "sample-size-huge",
        "sample --size 100000 100000",
        opt(SMP, "--size", "100000", "100000"),
        "refuse",
        timeout=30,
    )
    add(
        "huge",
        "sample-frames-huge",
        "sample --frames 100000000",
        opt(SMP, "--frames", "100000000"),
        "refuse",
        timeout=30,
    )
    add(
        "huge",
        "sample-cells-millions",
        "sample --cells 5000000",
        opt(SMP, "--cells", "5000000"),
        "clean",
        timeout=30,
    )
    add(
        "huge",
        "train-synthetic-size-huge",
        "train --synthetic-size 100000",
        opt(TRN, "--synthetic-size", "100000"),
        "refuse",
        timeout=30,
    )
    add(
        "huge",
        "train-crop-huge",
        "train --crop 100000 (crop far larger than the images)",
        opt(TRN, "--crop", "100000"),
        "refuse",
        timeout=30,
    )
    add(
        "huge",
        "finetune-crop-huge",
        "finetune --crop 100000",
        opt(FT, "--crop", "100000"),
        "refuse",
        timeout=30,
    )
    add(
        "huge",
        "finetune-batch-huge",
        "finetune --batch-size 1000000",
        opt(FT, "--batch-size", "1000000"),
        "refuse",
        timeout=30,
    )
    add(
        "huge",
        "segment-min-samples-huge",
        "segment --min-samples 10**12",
        opt(SEG, "--min-samples", "1000000000000"),
        "clean",
        timeout=30,
    )
    add(
        "huge",
        "segment-tile-size-tiny",
        "segment --tile-size 8 (tiles smaller than their overlap)",
        opt(SEG, "--tile-size", "8"),
        "clean",
        timeout=30,
    )
    add(
        "huge",
        "segment-max-gap-huge",
        "segment --max-gap 100000",
        opt(SEG, "--max-gap", "100000"),
        "clean",
        timeout=30,
    )
    add(
        "huge",
        "track-split-back-huge",
        "track --split-back 1000000",
        opt(TRK, "--split-back", "1000000"),
        "clean",
        timeout=30,
    )
    add(
        "huge",
        "elongated-movie",
        "segment a 6x2x2048 movie",
        ["segment", "thin.tif", "-o", "out"],
        "clean",
        setup=put_tiff(
            "thin.tif", lambda im, lab: np.tile(im[:, :2, :], (1, 1, 2048 // CROP + 1))[:, :, :2048]
        ),
        uses=(),
        timeout=30,
    )

    # ---------------------------------------------------------------- options that empty every result
    add(
        "empty",
        "fg-threshold-1",
        "segment --foreground-threshold 1 (nothing is foreground)",
        opt(SEG, "--foreground-threshold", "1"),
        "ok",
        check=seg_ok,
    )
    add(
        "empty",
        "min-size-huge",
        "segment --min-size 1000000 (every instance too small)",
        opt(SEG, "--min-size", "1000000"),
        "ok",
        check=seg_ok,
    )
    add(
        "empty",
        "min-cluster-size-huge",
        "segment --min-cluster-size 1000000",
        opt(SEG, "--min-cluster-size", "1000000"),
        "ok",
        check=seg_ok,
    )
    add(
        "empty",
        "min-track-length-huge",
        "segment --min-track-length 1000 (every track too short)",
        opt(SEG, "--min-track-length", "1000"),
        "ok",
        check=seg_ok,
    )
    add(
        "empty",
        "notrack-empty",
        "segment --no-track --foreground-threshold 1",
        ["segment", "--no-track", "imgs", "-o", "out", "--foreground-threshold", "1"],
        "ok",
        uses=("imgs",),
        check=files_exist("out/a.tif", "out/b.tif"),
    )
    add(
        "empty",
        "track-min-length-huge",
        "track --min-track-length 1000",
        opt(TRK, "--min-track-length", "1000"),
        "ok",
        check=seg_ok,
    )
    add(
        "empty",
        "evaluate-empty-result",
        "evaluate a result whose masks are all empty",
        EVAL,
        "ok",
        setup=chain(
            put_text("res/res_track.txt", ""),
            *[
                put_tiff(f"res/mask{t:03d}.tif", lambda im, lab: np.zeros((96, 96), np.uint16))
                for t in range(8)
            ],
        ),
        check=valid_json,
    )
    add(
        "empty",
        "evaluate-empty-gt",
        "evaluate against ground truth with no objects",
        EVAL,
        "clean",
        setup=chain(
            put_text("syn/01_GT/TRA/man_track.txt", ""),
            *[
                put_tiff(
                    f"syn/01_GT/{k}/man_{k.lower().replace('tra', 'track')}{t:03d}.tif",
                    lambda im, lab: np.zeros((96, 96), np.uint16),
                )
                for t in range(8)
                for k in ("SEG", "TRA")
            ],
        ),
    )
    add(
        "empty",
        "constant-movie",
        "segment a movie of zeros",
        ["segment", "zeros.tif", "-o", "out"],
        "ok",
        setup=put_tiff("zeros.tif", lambda im, lab: np.zeros_like(im)),
        uses=(),
        check=seg_ok,
    )

    # ---------------------------------------------------------------- --settings files
    s_seg = [*SEG, "--settings", "s.json"]

    def settings(cid, what, text, expect="refuse", **kw):
        add("settings", cid, what, s_seg, expect, setup=put_text("s.json", text), **kw)

    settings("not-json", "--settings is not JSON", "min_size = 3\n")
    settings("empty", "--settings is an empty file", "")
    settings("list", "--settings holds a JSON list", "[1, 2]\n")
    settings("string", "--settings holds a JSON string", '"hello"\n')
    settings("parameters-null", '{"parameters": null}', '{"parameters": null}\n')
    settings("unknown-key", "an unknown parameter", '{"parameters": {"min_sise": 3}}\n')
    settings("wrong-type", '"min_size": "abc"', '{"parameters": {"min_size": "abc"}}\n')
    settings("null-value", '"min_size": null', '{"parameters": {"min_size": null}}\n')
    settings("bad-choice", '"grouping": "kmeans"', '{"parameters": {"grouping": "kmeans"}}\n')
    settings("nan", '"bandwidth": NaN', '{"parameters": {"bandwidth": NaN}}\n')
    settings("overflow", '"min_samples": 1e999 (inf)', '{"parameters": {"min_samples": 1e999}}\n')
    settings(
        "track-string", '"track": "no" (a string, truthy)', '{"parameters": {"track": "no"}}\n'
    )
    settings(
        "model-missing",
        "the model it names does not exist",
        '{"parameters": {"model": "gone.pt"}}\n',
    )
    settings(
        "model-not-model",
        "the model it names is a text file",
        '{"parameters": {"model": "notes.txt"}}\n',
        uses=("movie.tif", "notes.txt"),
    )
    add(
        "settings",
        "binary",
        "--settings is binary garbage",
        s_seg,
        "refuse",
        setup=put_bytes("s.json", b"\xff\xfe\x00garbage\x81"),
    )
    add(
        "settings",
        "is-folder",
        "--settings is a folder",
        [*SEG, "--settings", "imgs"],
        "refuse",
        uses=("movie.tif", "imgs"),
    )
    add(
        "settings",
        "missing",
        "--settings does not exist",
        [*SEG, "--settings", "nope.json"],
        "refuse",
    )
    first = ["segment", "movie.tif", "-o", "first", "--model", "mine.pt"]
    add(
        "settings",
        "model-changed",
        "settings.json of a run whose model file was replaced since",
        [*SEG, "--settings", "first/settings.json"],
        "refuse",
        uses=("movie.tif", "model.pt", "model_other.pt"),
        setup=chain(
            copy("model.pt", "mine.pt"), run_cli(*first), copy("model_other.pt", "mine.pt")
        ),
        warning_ok=r"(?i)fingerprint|changed|differ|replaced",
    )
    add(
        "settings",
        "model-deleted",
        "settings.json of a run whose model file was deleted since",
        [*SEG, "--settings", "first/settings.json"],
        "refuse",
        uses=("movie.tif", "model.pt"),
        setup=chain(copy("model.pt", "mine.pt"), run_cli(*first), remove("mine.pt")),
    )
    add(
        "settings",
        "from-track",
        "settings.json written by track",
        [*SEG, "--settings", "t/settings.json"],
        "clean",
        uses=("movie.tif", "labels.tif"),
        setup=run_cli("track", "labels.tif", "-o", "t"),
    )
    add(
        "settings",
        "round-trip",
        "settings.json of an earlier segment run (should just work)",
        [*SEG, "--settings", "first/settings.json"],
        "ok",
        uses=("movie.tif",),
        setup=run_cli("segment", "movie.tif", "-o", "first"),
        check=seg_ok,
    )

    # ---------------------------------------------------------------- models and devices
    seg_m = opt(SEG, "--model", "bad.pt")

    def model_case(cid, what, setup, expect="refuse", argv=seg_m, **kw):
        add("models", cid, what, argv, expect, setup=setup, **kw)

    model_case(
        "png",
        "--model is a PNG image",
        None,
        argv=opt(SEG, "--model", "frame.png"),
        uses=("movie.tif", "frame.png"),
    )
    model_case("text-pt", "--model is a text file named .pt", put_text("bad.pt", "not a model\n"))
    model_case("empty-pt", "--model is an empty file", put_bytes("bad.pt", b""))
    model_case(
        "truncated",
        "--model is a truncated checkpoint",
        chain(copy("model.pt", "bad.pt"), truncate("bad.pt")),
        uses=("movie.tif", "model.pt"),
    )
    model_case(
        "garbled",
        "--model has garbage in the middle",
        chain(copy("model.pt", "bad.pt"), garble("bad.pt", 0.5, 65536)),
        uses=("movie.tif", "model.pt"),
    )
    model_case(
        "nan-weights",
        "--model with NaN weights",
        None,
        argv=opt(SEG, "--model", "model_nan.pt"),
        uses=("movie.tif", "model_nan.pt"),
    )
    model_case(
        "finetune-nan-base",
        "finetune --base with NaN weights",
        None,
        argv=opt(FT, "--base", "model_nan.pt"),
        uses=("movie.tif", "labels.tif", "model_nan.pt"),
    )
    model_case(
        "train-init-nan",
        "train --init with NaN weights",
        None,
        argv=opt(without(TRN, "--config"), "--init", "model_nan.pt"),
        uses=("model_nan.pt",),
    )
    model_case("folder", "--model is a folder", mkdirs("bad.pt"))
    model_case(
        "unknown-name",
        "--model names no bundled model",
        None,
        argv=opt(SEG, "--model", "nosuchmodel"),
    )
    model_case(
        "pickle-object",
        "--model pickles a Python object (refused for safety)",
        lambda d, fx: _torch_save(d / "bad.pt", {"format": 1, "obj": argparse.Namespace(a=1)}),
    )
    model_case(
        "bare-state-dict",
        "--model is a bare state_dict",
        lambda d, fx: _torch_save(d / "bad.pt", {"w": _tensor([1.0])}),
    )
    model_case(
        "config-mismatch",
        "--model whose config does not fit its weights",
        lambda d, fx: _mismatched(fx, d / "bad.pt"),
    )
    model_case(
        "train-init-text",
        "train --init a text file",
        put_text("bad.pt", "x\n"),
        argv=opt(without(TRN, "--config"), "--init", "bad.pt"),
    )
    model_case(
        "train-resume-model",
        "train --resume a model file (not a training state)",
        None,
        argv=opt(TRN, "--resume", "model.pt"),
        uses=("model.pt",),
    )
    model_case(
        "train-resume-missing",
        "train --resume a missing file",
        None,
        argv=opt(TRN, "--resume", "nope.state.pt"),
    )
    model_case(
        "train-resume-corrupt",
        "train --resume a truncated state",
        chain(run_cli(*opt(TRN, "--out", "prev.pt")), truncate("prev.state.pt")),
        argv=opt(TRN, "--resume", "prev.state.pt"),
    )
    model_case(
        "train-init-and-resume",
        "train --init with --resume",
        run_cli(*opt(TRN, "--out", "prev.pt")),
        argv=[*opt(without(TRN, "--config"), "--init", "model.pt"), "--resume", "prev.state.pt"],
        uses=("model.pt",),
    )
    for i, cfg in enumerate(("stacks=abc", "nosuch=1", "filters=0", "levels=40")):
        model_case(
            f"train-config-{i}", f"train --config {cfg}", None, argv=opt(TRN, "--config", cfg)
        )
    cuda = _cuda()
    dev = "ok" if cuda else "refuse"
    model_case(
        "segment-cuda",
        "segment --device cuda" + ("" if cuda else " without a GPU"),
        None,
        dev,
        argv=opt(SEG, "--device", "cuda"),
        check=seg_ok if cuda else None,
    )
    model_case(
        "segment-cuda-7",
        "segment --device cuda:7 (no such GPU)",
        None,
        argv=opt(SEG, "--device", "cuda:7"),
    )
    model_case("segment-tpu", "segment --device tpu", None, argv=opt(SEG, "--device", "tpu"))
    model_case(
        "finetune-cuda",
        "finetune --device cuda" + ("" if cuda else " without a GPU"),
        None,
        dev,
        argv=opt(FT, "--device", "cuda"),
    )
    model_case(
        "train-mps", "train --device mps (not a Mac)", None, argv=opt(TRN, "--device", "mps")
    )

    # ---------------------------------------------------------------- corrupt and odd inputs
    def corrupt(cid, what, argv, setup, expect="refuse", **kw):
        add("corrupt", cid, what, argv, expect, setup=setup, **kw)

    corrupt(
        "tiff-random",
        "a .tif of random bytes",
        ["segment", "bad.tif", "-o", "out"],
        put_bytes(
            "bad.tif", np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8).tobytes()
        ),
    )
    corrupt("tiff-truncated", "a truncated TIFF stack", SEG, truncate("movie.tif", 0.6))
    corrupt(
        "tiff-empty",
        "an empty .tif",
        ["segment", "bad.tif", "-o", "out"],
        put_bytes("bad.tif", b""),
    )
    corrupt(
        "tiff-garbled-header", "a TIFF whose header is garbage", SEG, garble("movie.tif", 0.0, 16)
    )
    corrupt(
        "ctc-frame-garbage",
        "one frame of a CTC folder is garbage",
        ["segment", "syn/01", "-o", "out"],
        put_bytes("syn/01/t003.tif", b"\0" * 100),
        uses=("syn",),
    )
    corrupt(
        "ctc-frame-gap",
        "a CTC folder with a missing frame",
        ["segment", "syn/01", "-o", "out"],
        remove("syn/01/t003.tif"),
        uses=("syn",),
    )
    corrupt(
        "ctc-frame-shapes",
        "CTC frames of different sizes",
        ["segment", "syn/01", "-o", "out"],
        put_tiff("syn/01/t003.tif", lambda im, lab: im[0, :50, :70]),
        uses=("syn",),
    )
    corrupt(
        "ctc-frame-dtypes",
        "CTC frames of different dtypes",
        ["segment", "syn/01", "-o", "out"],
        put_tiff("syn/01/t003.tif", lambda im, lab: im[0].astype(np.float32)),
        "clean",
        uses=("syn",),
    )
    corrupt(
        "ctc-gt-corrupt",
        "segment a CTC folder whose (unneeded) ground truth is corrupt",
        ["segment", "syn/01", "-o", "out"],
        put_text("syn/01_GT/TRA/man_track.txt", "garbage\n"),
        "clean",
        uses=("syn",),
    )
    corrupt(
        "ctc-gt-shape",
        "segment a CTC folder whose ground truth has another size",
        ["segment", "syn/01", "-o", "out"],
        chain(
            *[
                put_tiff(f"syn/01_GT/TRA/man_track{t:03d}.tif", lambda im, lab: lab[0, :40, :40])
                for t in range(8)
            ]
        ),
        "clean",
        uses=("syn",),
    )
    corrupt(
        "zarr-meta-garbage",
        "a zarr store whose zarr.json is garbage",
        ["segment", "movie.zarr", "-o", "out"],
        put_text("movie.zarr/zarr.json", "{not json"),
        uses=("movie.zarr",),
    )
    corrupt(
        "zarr-chunk-garbage",
        "a zarr store with a garbage chunk",
        ["segment", "movie.zarr", "-o", "out"],
        lambda d, fx: _garble_chunk(d / "movie.zarr"),
        uses=("movie.zarr",),
    )
    corrupt(
        "png-garbage",
        "a .png of garbage (--no-track)",
        ["segment", "--no-track", "bad.png", "frame.png", "-o", "out"],
        put_bytes("bad.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 64),
        uses=("frame.png",),
    )
    corrupt(
        "video-garbage",
        "an .mp4 of garbage",
        ["segment", "bad.mp4", "-o", "out"],
        put_bytes("bad.mp4", b"\0\0\0\x18ftypmp42" + b"\1" * 500),
    )
    corrupt(
        "txt-input",
        "a .txt file as input",
        ["segment", "notes.txt", "-o", "out"],
        None,
        uses=("notes.txt",),
    )
    corrupt(
        "tif-named-png",
        "a TIFF named .png",
        ["segment", "--no-track", "fake.png", "frame.png", "-o", "out"],
        copy("frame.tif", "fake.png"),
        "clean",
        uses=("frame.png", "frame.tif"),
    )
    corrupt(
        "track-labels-garbage",
        "track a garbage label TIFF",
        ["track", "bad.tif", "-o", "out"],
        put_bytes("bad.tif", b"II*\0" + b"\xff" * 64),
    )
    corrupt(
        "track-mask-garbage",
        "track a result folder with a garbage mask",
        ["track", "res", "-o", "out"],
        put_bytes("res/mask002.tif", b"junk"),
        uses=("res",),
    )
    corrupt(
        "finetune-labels-truncated",
        "finetune with a truncated label TIFF",
        FT,
        truncate("labels.tif", 0.5),
    )
    corrupt(
        "evaluate-res-mask-garbage",
        "evaluate a result with a garbage mask",
        EVAL,
        put_bytes("res/mask002.tif", b"junk"),
    )
    corrupt(
        "evaluate-gt-seg-garbage",
        "evaluate against a garbage SEG mask",
        EVAL,
        put_bytes("syn/01_GT/SEG/man_seg002.tif", b"junk"),
    )

    # ---------------------------------------------------------------- lineage files (evaluate)
    res_txt, gt_txt = "res/res_track.txt", "syn/01_GT/TRA/man_track.txt"
    for where, path in (("res", res_txt), ("gt", gt_txt)):
        items = [
            ("end-before-begin", "a track ends before it begins", _swap_first_long),
            ("own-parent", "a track is its own parent", _own_parent),
            ("child-before-parent-ends", "a child starts before its parent ends", _child_early),
            ("duplicate-label", "a label has two rows", lambda rows: [*rows, list(rows[0])]),
            (
                "unknown-label",
                "a row for a label not in any mask",
                lambda rows: [*rows, [999, 0, 1, 0]],
            ),
            ("garbage-text", "a row that is not numbers", lambda rows: "1 0 x 0\n"),
        ]
        if where == "res":
            items += [
                ("missing-row", "a label in the masks without a row", lambda rows: rows[:-1]),
                ("unknown-parent", "a parent that is no track", _set(0, 3, 999)),
                ("negative-begin", "a negative first frame", _set(0, 1, -1)),
                ("three-columns", "rows of three numbers", lambda rows: [r[:3] for r in rows]),
                ("end-past-movie", "a track ending past the last frame", _set(0, 2, 99)),
                (
                    "wrong-span",
                    "a row whose span disagrees with the masks",
                    lambda rows: [
                        [r[0], r[1], r[1], r[3]] if i == _long_row(rows) else r
                        for i, r in enumerate(rows)
                    ],
                ),
                ("parent-cycle", "two tracks each the parent of the other", _cycle),
                ("empty-file", "an empty res_track.txt with non-empty masks", lambda rows: ""),
            ]
        for cid, what, fn in items:
            add(
                "lineage",
                f"{where}-{cid}",
                f"evaluate: {what} ({where} lineage)",
                EVAL,
                "refuse",
                setup=edit_rows(path, fn),
            )
    add(
        "lineage",
        "res-track-missing",
        "evaluate a result without res_track.txt",
        EVAL,
        "refuse",
        setup=remove(res_txt),
    )
    add(
        "lineage",
        "gt-track-missing",
        "evaluate against GT without man_track.txt",
        EVAL,
        "refuse",
        setup=remove(gt_txt),
    )
    add(
        "lineage",
        "res-frames-short",
        "evaluate a result with fewer frames than the GT",
        EVAL,
        "refuse",
        setup=chain(
            remove("res/mask007.tif"),
            edit_rows(
                res_txt, lambda rows: [[r[0], r[1], min(r[2], 6), r[3]] for r in rows if r[1] <= 6]
            ),
        ),
    )
    add(
        "lineage",
        "res-mask-size",
        "evaluate a result whose masks have another size",
        EVAL,
        "refuse",
        setup=chain(
            *[
                put_tiff(f"res/mask{t:03d}.tif", lambda im, lab: np.zeros((40, 40), np.uint16))
                for t in range(8)
            ]
        ),
    )
    add(
        "lineage",
        "res-mask-float",
        "evaluate a result with float masks",
        EVAL,
        "refuse",
        setup=put_tiff("res/mask000.tif", lambda im, lab: np.full((96, 96), 0.5, np.float32)),
    )
    add(
        "lineage",
        "res-mask-negative",
        "evaluate a result with negative labels (int16)",
        EVAL,
        "refuse",
        setup=put_tiff("res/mask000.tif", lambda im, lab: np.full((96, 96), -1, np.int16)),
    )
    add(
        "lineage",
        "instances-missing",
        "evaluate 2D labels: a result image is missing",
        ["evaluate", "--gt", "inst/gt", "--res", "inst/res"],
        "refuse",
        uses=("inst",),
        setup=remove("inst/res/b.tif"),
    )
    add(
        "lineage",
        "instances-shape",
        "evaluate 2D labels of different sizes",
        ["evaluate", "--gt", "inst/gt", "--res", "inst/res"],
        "refuse",
        uses=("inst",),
        setup=put_tiff("inst/res/b.tif", lambda im, lab: lab[1, :50, :50]),
    )
    add(
        "lineage",
        "instances-ok",
        "evaluate 2D labels (should just work)",
        ["evaluate", "--gt", "inst/gt", "--res", "inst/res"],
        "ok",
        uses=("inst",),
        check=valid_json,
    )
    add(
        "lineage",
        "ctc-ok",
        "evaluate a perfect result (should just work)",
        EVAL,
        "ok",
        check=valid_json,
    )

    # ---------------------------------------------------------------- image shapes and types
    def image(cid, what, make, expect, argv=None, **kw):
        argv = argv or ["segment", "x.tif", "-o", "out"]
        add(
            "images",
            cid,
            what,
            argv,
            expect,
            setup=put_tiff("x.tif", make),
            uses=kw.pop("uses", ()),
            **kw,
        )

    def nan_pixels(im, lab):
        out = im.astype(np.float32)
        out.reshape(-1)[::97] = np.nan
        return out

    def inf_pixels(im, lab):
        out = im.astype(np.float32)
        out.reshape(-1)[::97] = np.inf
        return out

    image(
        "one-pixel-2d",
        "a 1x1 image (--no-track)",
        lambda im, lab: im[0, :1, :1],
        "clean",
        argv=["segment", "--no-track", "x.tif", "-o", "out"],
    )
    image("one-pixel-movie", "a 6x1x1 movie", lambda im, lab: im[:, :1, :1], "clean")
    image("tiny-movie", "a 6x8x8 movie", lambda im, lab: im[:, :8, :8], "clean")
    image("single-frame-stack", "a (1, Y, X) stack", lambda im, lab: im[:1], "clean")
    image("zero-frames", "a TIFF stack with 0 frames", lambda im, lab: im[:0], "refuse")
    image(
        "4d", "a (3, 2, Y, X) TIFF", lambda im, lab: np.stack([im[:2], im[2:4], im[4:]]), "refuse"
    )
    image(
        "4d-planar-rgb",
        "a (2, 3, Y, X) TIFF, which tifffile stores as 2 planar RGB frames (read as grey, said)",
        lambda im, lab: np.stack([im[:3], im[3:]]),
        "clean",
    )
    image(
        "rgb-2d",
        "an RGB (Y, X, 3) TIFF as a movie",
        lambda im, lab: np.stack([to_uint8(im[0])] * 3, -1),
        "clean",
    )
    image("rgb-movie", "an RGB (T, Y, X, 3) TIFF", lambda im, lab: np.stack([im] * 3, -1), "clean")
    image("complex", "a complex64 movie", lambda im, lab: im.astype(np.complex64), "refuse")
    image("bool", "a boolean movie", lambda im, lab: im > np.median(im), "clean")
    image(
        "nan-pixels",
        "a float movie with NaN pixels (1 in 97)",
        nan_pixels,
        "ok",
        check=has_objects("out", N_FRAMES),
    )
    image(
        "inf-pixels",
        "a float movie with +inf pixels (1 in 97)",
        inf_pixels,
        "ok",
        check=has_objects("out", N_FRAMES),
    )
    image(
        "all-nan", "a movie of NaN", lambda im, lab: np.full(im.shape, np.nan, np.float32), "clean"
    )
    image(
        "int8-negative",
        "an int8 movie with negative values",
        lambda im, lab: (to_uint8(im).astype(np.int16) - 128).astype(np.int8),
        "ok",
        check=has_objects("out", N_FRAMES),
    )
    image(
        "uint32-huge",
        "a uint32 movie scaled to 4e9",
        lambda im, lab: (im.astype(np.uint64) * (4_000_000_000 // int(im.max()))).astype(np.uint32),
        "ok",
        check=has_objects("out", N_FRAMES),
    )
    image(
        "float64-1e30",
        "a float64 movie scaled by 1e30",
        lambda im, lab: im.astype(np.float64) * 1e30,
        "ok",
        check=has_objects("out", N_FRAMES),
    )
    add(
        "images",
        "2d-tracked",
        "a 2D image without --no-track",
        ["segment", "frame.tif", "-o", "out"],
        "refuse",
        uses=("frame.tif",),
    )
    add(
        "images",
        "folder-tracked",
        "a folder of 2D images without --no-track",
        ["segment", "imgs", "-o", "out"],
        "refuse",
        uses=("imgs",),
    )
    add(
        "images",
        "empty-folder",
        "an empty folder --no-track",
        ["segment", "--no-track", "e", "-o", "out"],
        "refuse",
        setup=mkdirs("e"),
    )
    add(
        "images",
        "folder-notrack",
        "a folder of a TIFF and a PNG --no-track (should just work)",
        ["segment", "--no-track", "imgs", "-o", "out"],
        "ok",
        uses=("imgs",),
        check=files_exist("out/a.tif", "out/b.tif"),
    )
    add(
        "images",
        "rgba-png",
        "an RGBA PNG --no-track",
        ["segment", "--no-track", "x.png", "-o", "out"],
        "ok",
        setup=put_png(
            "x.png",
            lambda im, lab: np.dstack(
                [to_uint8(im[0])] * 3 + [np.full(im.shape[1:], 255, np.uint8)]
            ),
        ),
        check=files_exist("out/x.tif"),
    )
    add(
        "images",
        "notrack-with-stack",
        "--no-track of a 2D image and a TIFF stack",
        ["segment", "--no-track", "frame.tif", "movie.tif", "-o", "out"],
        "refuse",
        uses=("frame.tif", "movie.tif"),
    )
    add(
        "images",
        "notrack-mixed-sizes",
        "--no-track of 2D images of different sizes",
        ["segment", "--no-track", "frame.tif", "small.tif", "-o", "out"],
        "ok",
        uses=("frame.tif",),
        setup=put_tiff("small.tif", lambda im, lab: im[0, :50, :70]),
        check=files_exist("out/frame.tif", "out/small.tif"),
    )
    add(
        "images",
        "real-ctc",
        "segment the real CTC crop (should just work)",
        ["segment", "seq/02", "-o", "out"],
        "ok",
        uses=("seq",),
        check=seg_ok,
        needs_data=True,
    )
    add(
        "images",
        "real-ctc-evaluate",
        "segment then evaluate the real crop against its GT",
        ["evaluate", "--gt", "seq/02_GT", "--res", "first"],
        "ok",
        uses=("seq",),
        setup=run_cli("segment", "seq/02", "-o", "first"),
        check=valid_json,
        needs_data=True,
    )
    add(
        "images",
        "zarr-ok",
        "segment a zarr store (should just work)",
        ["segment", "movie.zarr", "-o", "out"],
        "ok",
        uses=("movie.zarr",),
        check=seg_ok,
    )

    # ---------------------------------------------------------------- labels for track/finetune
    def labels(cid, what, argv, make, expect="refuse", **kw):
        add(
            "labels",
            cid,
            what,
            argv,
            expect,
            setup=put_tiff("lab.tif", make),
            uses=kw.pop("uses", ("movie.tif",)),
            **kw,
        )

    trk = ["track", "lab.tif", "-o", "out"]
    ftl = opt(FT, "--labels", "lab.tif")
    labels("track-float", "track float labels", trk, lambda im, lab: lab.astype(np.float32) + 0.5)
    labels("track-2d", "track a 2D label image", trk, lambda im, lab: lab[0])
    labels(
        "track-negative",
        "track int16 labels with negative values",
        trk,
        lambda im, lab: -lab.astype(np.int16),
    )
    labels(
        "track-one-frame", "track a single-frame label movie", trk, lambda im, lab: lab[:1], "clean"
    )
    labels("track-empty", "track all-zero labels", trk, lambda im, lab: np.zeros_like(lab), "clean")
    labels(
        "finetune-shape",
        "finetune: labels 64x64, images 96x96",
        ftl,
        lambda im, lab: lab[:, :64, :64],
    )
    labels(
        "finetune-fewer-frames",
        "finetune: 3 label frames for 6 images",
        ftl,
        lambda im, lab: lab[:3],
        says=r"\(3, 96, 96\)|\b3 (label )?frames|RGB",
    )
    labels(
        "finetune-no-objects",
        "finetune: labels without any object",
        ftl,
        lambda im, lab: np.zeros_like(lab),
    )
    labels(
        "finetune-float",
        "finetune: float labels",
        ftl,
        lambda im, lab: lab.astype(np.float32) + 0.5,
    )
    labels(
        "finetune-rgb", "finetune: RGB label image", ftl, lambda im, lab: np.stack([lab] * 3, -1)
    )
    add(
        "labels",
        "finetune-2d",
        "finetune on one 2D image and its labels (should just work)",
        opt(opt(FT, "--images", "frame.tif"), "--labels", "lab.tif"),
        "ok",
        uses=("frame.tif",),
        setup=put_tiff("lab.tif", lambda im, lab: lab[0]),
        check=files_exist("m.pt"),
    )
    add(
        "labels",
        "finetune-ctc",
        "finetune on the real CTC crop and its GT folder (should just work)",
        [
            "finetune",
            "--images",
            "seq/02",
            "--labels",
            "seq/02_GT",
            "--out",
            "m.pt",
            "--steps",
            "2",
            "--crop",
            "32",
            "--batch-size",
            "1",
            "--clip-length",
            "2",
            "--device",
            "cpu",
        ],
        "ok",
        uses=("seq",),
        check=files_exist("m.pt"),
        needs_data=True,
    )
    add(
        "labels",
        "finetune-ctc-seq",
        "finetune --labels the CTC sequence folder (uses its GT)",
        [
            "finetune",
            "--images",
            "seq/02",
            "--labels",
            "seq/02",
            "--out",
            "m.pt",
            "--steps",
            "2",
            "--crop",
            "32",
            "--batch-size",
            "1",
            "--clip-length",
            "2",
            "--device",
            "cpu",
        ],
        "ok",
        uses=("seq",),
        check=files_exist("m.pt"),
        needs_data=True,
    )
    add(
        "labels",
        "finetune-labels-no-seg",
        "finetune --labels a GT folder without SEG",
        [
            "finetune",
            "--images",
            "seq/02",
            "--labels",
            "seq/02_GT",
            "--out",
            "m.pt",
            "--steps",
            "2",
            "--crop",
            "32",
            "--batch-size",
            "1",
            "--device",
            "cpu",
        ],
        "refuse",
        uses=("seq",),
        setup=remove("seq/02_GT/SEG"),
        needs_data=True,
    )

    # ---------------------------------------------------------------- environment and basics
    add("env", "no-command", "no command at all", [], "refuse", uses=())
    add("env", "unknown-command", "an unknown command", ["segmnt", "movie.tif"], "refuse", uses=())
    add("env", "version", "--version", ["--version"], "ok", uses=())
    add("env", "missing-out", "segment without -o", ["segment", "movie.tif"], "refuse")
    add("env", "models-json", "models --json is JSON", ["models", "--json"], "ok", check=valid_json)
    add(
        "env",
        "home-unwritable",
        "HOME in /proc (caches cannot be written)",
        SEG,
        "ok",
        env={"HOME": "/proc/nce-home", "XDG_CACHE_HOME": "/proc/nce-cache"},
        check=seg_ok,
    )
    add(
        "env",
        "tmpdir-missing",
        "TMPDIR does not exist",
        SEG,
        "ok",
        env={"TMPDIR": "/nonexistent/tmp"},
        check=seg_ok,
    )
    add(
        "env",
        "c-locale-unicode",
        "LC_ALL=C with a non-ASCII path",
        ["segment", "é.tif", "-o", "ü"],
        "ok",
        env={"LC_ALL": "C", "LANG": "C"},
        setup=copy("movie.tif", "é.tif"),
        check=ctc_result("ü", N_FRAMES),
    )
    add(
        "env",
        "stdin-dash",
        "input '-' (stdin is not read)",
        ["segment", "-", "-o", "out"],
        "refuse",
        uses=(),
    )

    return cases


def _tensor(values):
    import torch

    return torch.tensor(values)


def _torch_save(path: Path, obj) -> None:
    import torch

    torch.save(obj, path)


def _mismatched(fx: Fixtures, path: Path) -> None:
    import torch

    payload = torch.load(fx.path("model.pt"), map_location="cpu", weights_only=True)
    payload["config"] = {
        **payload["config"],
        "filters": int(payload["config"].get("filters", 32)) * 2,
    }
    torch.save(payload, path)


def _garble_chunk(store: Path) -> None:
    chunks = sorted(
        p
        for p in store.rglob("*")
        if p.is_file() and p.name not in ("zarr.json", ".zarray", ".zgroup")
    )
    chunks[len(chunks) // 2].write_bytes(b"\x13\x37" * 50)


# --------------------------------------------------------------------------------------------
# judging


def _snapshot(root: Path) -> dict[str, str]:
    """``{relative path: sha256 | 'dir' | 'link:TARGET'}`` of everything under ``root``."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        if rel_dir == ".":
            rel_dir = ""
            dirnames[:] = [n for n in dirnames if n != TMP]
        for name in dirnames + filenames:
            rel = os.path.join(rel_dir, name)
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                found[rel] = "link:" + os.readlink(path)
            elif os.path.isdir(path):
                found[rel] = "dir"
            elif os.path.isfile(path):
                try:
                    found[rel] = _sha(Path(path))
                except OSError as exc:
                    found[rel] = f"unreadable:{exc.errno}"
            else:
                found[rel] = "special"
    return found


def _under(path: str, folder: str) -> bool:
    return folder in ("", ".") or path == folder or path.startswith(folder.rstrip("/") + "/")


def _is_litter(rel: str) -> bool:
    return any(p in part for part in Path(rel).parts for p in LITTER)


def default_outputs(argv: list[str], cwd: Path) -> tuple[str, ...]:
    outs = []
    for i, a in enumerate(argv[:-1]):
        if a in ("-o", "--out", "--cache", "--state", "--zarr"):
            outs.append(argv[i + 1])
    if argv and argv[0] == "segment" and "-o" in argv[:-1] and "--no-track" not in argv:
        # a stopped run keeps its finished frames beside the result, for --resume
        outs.append(argv[argv.index("-o") + 1].rstrip("/") + ".unfinished.zarr")
    if argv and argv[0] == "sample" and len(argv) > 1 and not argv[1].startswith("-"):
        outs.insert(0, argv[1])
    if argv and argv[0] in ("train", "finetune") and "--out" in argv and "--state" not in argv:
        out = Path(argv[argv.index("--out") + 1])
        outs.append(str(out.with_name(out.stem + ".state.pt")))
    norm = []
    for o in outs:
        o = o.replace("{case}", str(cwd))
        if os.path.isabs(o):
            if not _under(o, str(cwd)):
                continue
            o = os.path.relpath(o, cwd)
        norm.append(os.path.normpath(o))
    return tuple(norm)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.replace("\r", "\n").splitlines() if line.strip()]
    return lines[-1] if lines else ""


@dataclass
class Outcome:
    case: Case
    status: str  # PASS FAIL SKIP ERROR
    reasons: list[str]
    rc: int | None = None
    wall: float = 0.0
    message: str = ""
    number: int = 0


def judge(
    case: Case, d: Path, res: Result, pre: dict, base: dict, outputs: tuple[str, ...]
) -> list[str]:
    reasons = []
    rc, exp = res.rc, case.expect
    err = res.stderr
    message = _last_line(err)
    primary = outputs[0] if outputs else None
    if res.timed_out:
        reasons.append(f"timed out after {res.wall:.0f} s")
    elif exp == "ok" and rc != 0:
        reasons.append(f"exit {rc}, expected 0")
    elif exp == "refuse" and rc != 2:
        if not (rc == 0 and case.warning_ok and re.search(case.warning_ok, err)):
            reasons.append(
                "accepted (exit 0), expected a refusal" if rc == 0 else f"exit {rc}, expected 2"
            )
    elif exp == "error" and (rc is None or rc in (0, 120) or rc < 0):
        reasons.append(
            {
                0: "exit 0 although the write failed",
                120: "exit 120 (Python could not flush stdout)",
            }.get(rc, f"exit {rc}")
        )
    elif exp == "interrupted" and rc == 0 and case.check is None:
        reasons.append("exit 0 after the signal")
    elif exp == "stopped" and rc not in (0, 130, 143, -signal.SIGTERM):
        reasons.append(f"exit {rc}, expected 0, 130 or 143")
    elif exp == "clean" and rc not in (0, 2):
        reasons.append(f"exit {rc}, expected 0 or 2")
    elif exp == "pipe" and rc not in (0, 141, -signal.SIGPIPE):
        reasons.append(f"exit {rc}, expected 0 or 141")
    if "Traceback" in err:
        exc = [
            line
            for line in err.splitlines()
            if re.match(r"^[A-Za-z_.]+(Error|Exception|Interrupt)\b", line)
        ]
        reasons.append("traceback" + (f" ({exc[-1][:80]})" if exc else ""))
    if "Exception ignored" in err:
        reasons.append("'Exception ignored' on stderr")
    if (
        exp in ("refuse", "error")
        and rc not in (0, None)
        and not message
        and case.run.stderr == "pipe"
    ):
        reasons.append("no message")
    elif case.says and rc not in (0, None) and not re.search(case.says, err):
        reasons.append(f"the message does not say what is wrong (expected /{case.says}/)")
    stdout_fault = case.run.stdout != "pipe"  # the output may be complete when stdout fails
    if (
        exp in ("refuse", "error", "interrupted")
        and rc != 0
        and not stdout_fault
        and primary not in (None, ".", "")
        and primary not in pre
        and (d / primary).exists()
    ):
        what = "folder" if (d / primary).is_dir() else "file"
        reasons.append(f"left the output {what} {primary} behind after exit {rc}")
    post = _snapshot(d)
    # outputs that existed before the setup's own runs are inputs too (output = input cases);
    # an output placed in an input folder changes that folder
    mutable = tuple(o for o in outputs if o not in base and o not in ("", "."))
    inputs_changed = [
        f"added {o}" for o in mutable if base.get(os.path.dirname(o)) == "dir" and o in post
    ]
    for rel, digest in pre.items():
        if any(_under(rel, o) for o in mutable) or _is_litter(rel):
            continue
        if rel not in post:
            inputs_changed.append(f"removed {rel}")
        elif post[rel] != digest:
            inputs_changed.append(f"modified {rel}")
    outside = []
    for rel in post:
        if rel in pre or _is_litter(rel):
            continue
        if any(_under(rel, o) or _under(o, rel) for o in mutable):
            continue
        parent = os.path.dirname(rel)
        if parent and pre.get(parent) == "dir":
            inputs_changed.append(f"added {rel}")
        elif not parent:
            outside.append(rel)
    if inputs_changed:
        reasons.append(
            f"input changed: {', '.join(inputs_changed[:3])}"
            + (" ..." if len(inputs_changed) > 3 else "")
        )
    if outside:
        reasons.append(f"wrote outside its output: {', '.join(outside[:3])}")
    litter = [rel for rel in post if _is_litter(rel) and rel not in base]
    tmp = d / TMP
    if tmp.is_dir():
        litter += [f"$TMPDIR/{p.name}" for p in tmp.iterdir() if _is_litter(p.name)]
    if tmp.is_dir():  # anything else the command left in its TMPDIR (torch's compile cache aside)
        left = [
            p
            for p in tmp.iterdir()
            if not _is_litter(p.name) and not p.name.startswith(THIRD_PARTY_TMP)
        ]
        litter += [
            f"$TMPDIR/{p.name}" + (" (empty)" if p.is_dir() and not any(p.iterdir()) else "")
            for p in left
        ]
    if litter:
        top = sorted({rel.split("/")[0] if not rel.startswith("$") else rel for rel in litter})
        reasons.append(f"litter: {', '.join(top[:3])}")
    bad_modes = []
    for rel, digest in post.items():
        if rel in base or _is_litter(rel) or digest.startswith("link:"):
            continue
        mode = os.lstat(d / rel).st_mode & 0o777
        want = (0o777 if digest == "dir" else 0o666) & ~CHILD_UMASK
        if mode != want:
            bad_modes.append(f"{rel} {mode:04o}")
    if bad_modes:
        reasons.append(f"permissions (umask {CHILD_UMASK:03o}): {', '.join(bad_modes[:2])}")
    if case.check is not None and not res.timed_out and (rc == 0 or exp == "stopped"):
        # for "interrupted", exit 0 means the signal came too late: the output must be whole
        try:
            problem = case.check(d, res)
        except Exception as exc:
            problem = f"check failed: {type(exc).__name__}: {exc}"[:160]
        if problem:
            reasons.append(problem)
    return reasons


def run_case(case: Case, number: int, scratch: Path, fx: Fixtures, runner: Runner) -> Outcome:
    if (case.needs_data or "seq" in case.uses) and not fx.real:
        return Outcome(case, "SKIP", ["skipped: no shared data"], number=number)
    d = scratch / "cases" / f"{number:03d}-{case.id}"
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    (d / TMP).mkdir()
    try:
        for name in case.uses:
            fx.copy_into(d, name)
        if case.setup is not None:
            case.setup(d, fx)
    except Exception as exc:
        return Outcome(
            case, "ERROR", [f"setup failed: {type(exc).__name__}: {exc}"[:200]], number=number
        )
    base = _snapshot(d)
    for before in case.before:
        prior = runner.execute(before, d)
        if before.signal and not prior.fired:
            return Outcome(
                case,
                "SKIP",
                ["signal trigger not reached in the first run"],
                prior.rc,
                prior.wall,
                _last_line(prior.stderr),
                number,
            )
    outputs = case.outputs if case.outputs is not None else default_outputs(case.run.argv, d)
    pre = _snapshot(d)
    res = runner.execute(case.run, d)
    if case.run.signal and not res.fired and not res.timed_out:
        msg = _last_line(res.stderr)
        return Outcome(
            case,
            "SKIP",
            ["signal trigger not reached (the run ended first)"],
            res.rc,
            res.wall,
            msg,
            number,
        )
    reasons = judge(case, d, res, pre, base, outputs)
    logs = scratch / "logs"
    logs.mkdir(exist_ok=True)
    (logs / f"{number:03d}-{case.id}.log").write_text(
        f"$ {case.command()}\nexit {res.rc}  {res.wall:.1f} s\n--- stdout\n{res.stdout}\n--- stderr\n{res.stderr}\n"
    )
    message = _last_line(res.stderr)
    if res.timed_out:
        message = message or "(timed out)"
    return Outcome(case, "FAIL" if reasons else "PASS", reasons, res.rc, res.wall, message, number)


# --------------------------------------------------------------------------------------------
# report


def _cell(text: str, limit: int = 160) -> str:
    text = text.replace("|", "\\|").replace("`", "'").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def table(outcomes: list[Outcome]) -> str:
    rows = [
        "| # | category | case | command (shortened) | exit | outcome | message |",
        "|---|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        outcome = o.status if o.status == "PASS" else f"{o.status}: {'; '.join(o.reasons)}"
        rc = "" if o.rc is None else str(o.rc)
        if o.status != "SKIP" and o.rc is None:
            rc = "timeout"
        rows.append(
            f"| {o.number} | {o.case.category} | {_cell(o.case.id + ': ' + o.case.what, 120)} | "
            f"`{_cell(o.case.command(), 140)}` | {rc} | {_cell(outcome, 200)} | {_cell(o.message)} |"
        )
    return "\n".join(rows)


INTRO = """# Reliability probe of the command line

`benchmarks/probe_reliability.py` feeds the `napari-cosine-embed` command line bad inputs and
faults (outputs that are, contain or sit inside their inputs; corrupt TIFFs, zarr stores,
checkpoints and lineage files; out-of-range, NaN and infinite values of every numeric option;
bad `--settings` files; odd images; SIGTERM, Ctrl-C and SIGKILL-then-resume; stdout closed,
cut by `head -1` or on `/dev/full`; a full disk) and records, for each, the exit status, the last
line on stderr, whether a traceback appeared, whether any input changed, whether temporary
files were left behind and whether new files got the permissions the umask asks for. Each case
runs in a fresh scratch folder; the inputs are tiny (a 6-frame 96x96 crop of Fluo-N2DH-SIM+ 02
and small synthetic movies), so a full run takes minutes on two cores. It is a probe, not a
test: it reports and never fails. Its docstring lists the expectations and the emulations
(no read-only mount or small tmpfs here: an unwritable output is a path under `/proc` or under a
file, a full disk is a file-size limit).

Run it with

    .venv/bin/python benchmarks/probe_reliability.py              # all cases; rewrites the table below
    .venv/bin/python benchmarks/probe_reliability.py --list
    .venv/bin/python benchmarks/probe_reliability.py --only 'signals|lineage' --no-write

Text outside the markers below is kept when the table is rewritten.

"""


def write_doc(doc: Path, outcomes: list[Outcome], header: str) -> None:
    block = f"{BEGIN}\n{header}\n\n{table(outcomes)}\n{END}"
    if doc.exists():
        text = doc.read_text()
        if BEGIN in text and END in text:
            start, stop = text.index(BEGIN), text.index(END) + len(END)
            text = text[:start] + block + text[stop:]
        else:
            text = text.rstrip("\n") + "\n\n" + block + "\n"
    else:
        text = INTRO + block + "\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)


FIXTURES: Fixtures  # set in main(); checks that need a fixture read it


def main(argv: list[str] | None = None) -> int:
    global FIXTURES
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="run the cases whose 'category/id' matches this regex")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--jobs", type=int, default=1, help="cases run at once (default 1)")
    parser.add_argument(
        "--workdir", type=Path, help="scratch folder (kept); default a temporary one"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary scratch folder")
    parser.add_argument(
        "--no-write", action="store_true", help=f"do not rewrite {DOC.relative_to(REPO)}"
    )
    parser.add_argument(
        "--doc", type=Path, default=DOC, help=f"the markdown file (default {DOC.relative_to(REPO)})"
    )
    parser.add_argument("--write", action="store_true", help="rewrite the table even with --only")
    parser.add_argument(
        "--timeout", type=float, default=120.0, help="seconds per command (default 120)"
    )
    parser.add_argument(
        "--mem-limit-gb", type=float, default=6.0, help="address-space limit of each command"
    )
    args = parser.parse_args(argv)

    cases = build_cases()
    ids = Counter(c.id for c in cases)
    dup = [i for i, n in ids.items() if n > 1]
    if dup:
        raise SystemExit(f"duplicate case ids: {dup}")
    numbered = list(enumerate(cases, 1))
    if args.only:
        pattern = re.compile(args.only)
        numbered = [(n, c) for n, c in numbered if pattern.search(f"{c.category}/{c.id}")]
    if args.list:
        for n, c in numbered:
            print(f"{n:3d}  {c.category:18s} {c.id:38s} {c.expect:11s} {c.command()}")
        counts = Counter(c.category for _, c in numbered)
        print(
            f"\n{len(numbered)} cases: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        )
        return 0

    scratch = args.workdir or Path(tempfile.mkdtemp(prefix="nce-probe-"))
    scratch.mkdir(parents=True, exist_ok=True)
    for sub in ("fixtures", "cases", "logs"):  # a reused --workdir starts afresh
        shutil.rmtree(scratch / sub, ignore_errors=True)
    runner = Runner(int(args.mem_limit_gb * (1 << 30)), args.timeout)
    FIXTURES = fx = Fixtures(scratch / "fixtures", runner)
    print(
        f"scratch folder: {scratch}; {len(numbered)} cases; data: {'yes' if fx.real else 'no (real-data cases skipped)'}",
        flush=True,
    )
    tic = time.monotonic()
    outcomes: list[Outcome] = []
    lock = threading.Lock()

    def one(item):
        n, c = item
        try:
            o = run_case(c, n, scratch, fx, runner)
        except Exception as exc:  # a bug of the probe: report it, keep going
            o = Outcome(c, "ERROR", [f"probe error: {type(exc).__name__}: {exc}"[:200]], number=n)
        with lock:
            outcomes.append(o)
            why = "" if o.status == "PASS" else "  " + "; ".join(o.reasons)
            print(
                f"[{len(outcomes):3d}/{len(numbered)}] {o.status:5s} {c.category}/{c.id} ({o.wall:.1f} s, exit {o.rc}){why}",
                flush=True,
            )
        return o

    if args.jobs > 1:
        with ThreadPoolExecutor(args.jobs) as pool:
            list(pool.map(one, numbered))
    else:
        for item in numbered:
            one(item)
    wall = time.monotonic() - tic
    outcomes.sort(key=lambda o: o.number)

    status = Counter(o.status for o in outcomes)
    print(
        f"\n{len(outcomes)} cases in {wall / 60:.1f} min: "
        + ", ".join(f"{k} {v}" for k, v in sorted(status.items()))
    )
    per_cat: dict[str, Counter] = {}
    for o in outcomes:
        per_cat.setdefault(o.case.category, Counter())[o.status] += 1
    for cat, counter in per_cat.items():
        print(f"  {cat:20s} " + "  ".join(f"{k} {v}" for k, v in sorted(counter.items())))
    failures = [o for o in outcomes if o.status in ("FAIL", "ERROR")]
    if failures:
        print("\nfailing cases:")
        for o in failures:
            print(f"  #{o.number} {o.case.category}/{o.case.id}: {'; '.join(o.reasons)}")
            if o.message:
                print(f"      {o.message[:160]}")

    if args.no_write or (args.only and not args.write):
        print(f"\n(not written to {args.doc})")
    else:
        import torch

        subset = f" (a subset: --only {args.only!r})" if args.only else ""
        header = (
            f"Last run {datetime.date.today().isoformat()}: {len(outcomes)} cases{subset} in "
            f"{wall / 60:.1f} min ({', '.join(f'{k} {v}' for k, v in sorted(status.items()))}) on "
            f"{os.cpu_count()} CPU cores, Python {platform.python_version()}, torch "
            f"{torch.__version__}; images: {fx.source or 'not built'}. Run: "
            f"`.venv/bin/python benchmarks/probe_reliability.py`."
        )
        write_doc(args.doc, outcomes, header)
        print(f"\nwrote {args.doc}")
    if args.workdir is None and not args.keep:
        shutil.rmtree(scratch, ignore_errors=True)
    else:
        print(f"scratch kept: {scratch} (logs in {scratch / 'logs'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
