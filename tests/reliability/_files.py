"""Helpers of the reliability tests."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path


def checksums(root: Path) -> dict[str, str]:
    """Path (relative to ``root``) -> sha256 of every file below it, plus its folders."""
    sums = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        sums[key] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
    return sums


ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def signal_after(module: str, owner: str, name: str, calls: int, signum: str) -> str:
    """Python source that makes ``module.owner.name`` send ``signum`` to its own process
    right after its ``calls``-th call: a real signal at a known point, with no race."""
    target = f"{owner}.{name}" if owner else name
    # Ctrl-C as at a terminal: a job that a non-interactive shell started in the background
    # (as some CI runners do) inherits SIGINT ignored, and Python then keeps ignoring it.
    return textwrap.dedent(f"""
        import os, signal
        signal.signal(signal.SIGINT, signal.default_int_handler)
        import {module} as _m
        _owner = _m{"." + owner if owner else ""}
        _real, _count = _owner.{name}, []
        def _hooked(*a, **k):
            result = _real(*a, **k)
            _count.append(1)
            if len(_count) == {calls}:
                os.kill(os.getpid(), signal.{signum})
            return result
        _owner.{name} = _hooked  # {target}
    """)


def cli_command(argv: list[str], *, prelude: str = "") -> list[str]:
    """A command running the command line with ``argv`` in a fresh process, after ``prelude``."""
    main = "import sys\nfrom napari_cosine_embed.cli import main\n"
    return [sys.executable, "-c", f"{prelude}\n{main}sys.exit(main({argv!r}))\n"]


def run_cli(argv: list[str], *, prelude: str = "", **kwargs) -> subprocess.CompletedProcess:
    """The command line in a fresh process with one thread, after running ``prelude``."""
    if "stdout" not in kwargs and "stderr" not in kwargs:
        kwargs["capture_output"] = True
    command = cli_command(argv, prelude=prelude)
    return subprocess.run(command, env=ENV, text=True, timeout=300, **kwargs)


def litter(root: Path) -> list[str]:
    """Temporary files or folders left below ``root``."""
    marks = (".partial", ".tmp", ".old", ".embeddings-", ".write-test-")
    return [str(p) for p in root.rglob("*") if any(m in p.name for m in marks)]
