"""Checks made before any work that writes: an output never touches what the run reads.

A result folder written with ``--overwrite`` replaces whatever sits at its path, so an output
that is an input (``segment 02 -o 02 --overwrite``), contains one (``-o`` the dataset's parent
folder) or sits inside one (a result inside a CTC ground-truth folder, which later readers would
take for part of it) could destroy or corrupt the user's data. :func:`check_output` refuses such
a path before anything is computed, comparing real paths (symbolic links followed, ``..``
resolved), so a link or a relative path cannot slip past it. :func:`check_writable` tries the
destination for real (creates and removes a scratch file), so a read-only folder or file system
is reported before hours of work rather than after.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path

from ..errors import InputError, OutputExistsError

__all__ = ["check_name", "check_output", "check_writable", "real_path"]

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")


def real_path(path: str | os.PathLike) -> Path:
    """The absolute path with every symbolic link and ``..`` resolved, existing or not."""
    return Path(os.path.realpath(os.path.abspath(os.fspath(path))))


def _related(a: Path, b: Path) -> str | None:
    """How ``a`` stands to ``b``: "is", "contains", "is inside", or None."""
    if a == b:
        return "is"
    if a in b.parents:
        return "contains"
    if b in a.parents:
        return "is inside"
    return None


def check_output(
    out: str | os.PathLike,
    reads: Iterable[tuple[str, str | os.PathLike | None]],
    *,
    name: str = "--out",
) -> None:
    """Refuse an output that is, contains or sits inside anything the run reads.

    Parameters
    ----------
    out : path-like
        The file or folder about to be written (it need not exist yet).
    reads : iterable of (str, path-like or None)
        What the run reads, each with the name the user knows it by (``"input"``,
        ``"--settings"``, ``"--cache"``...); None entries are skipped. Names that are not
        paths on disk (a bundled model's name) may be given: they exist nowhere and never match.
    name : str
        The option that gave ``out``, for the message.

    Raises
    ------
    InputError
        Naming both paths and how they are related.

    Examples
    --------
    >>> check_output("/data/movie/02_RES", [("input", "/data/movie/02")])
    >>> check_output("/data/movie", [("input", "/data/movie/02")])
    Traceback (most recent call last):
    ...
    napari_cosine_embed.core.errors.InputError: --out /data/movie contains the input \
/data/movie/02: writing there could destroy it; choose an output outside it
    """
    target = real_path(out)
    for what, path in reads:
        if path is None or str(path) == "":
            continue
        relation = _related(target, real_path(path))
        if relation is None:
            continue
        verb = {"is": "is", "contains": "contains", "is inside": "is inside"}[relation]
        raise InputError(
            f"{name} {out} {verb} the {what} {path}: writing there could destroy it; "
            f"choose an output outside it"
        )


def check_writable(
    out: str | os.PathLike,
    *,
    kind: str,
    overwrite: bool,
    name: str = "--out",
) -> None:
    """Check, before the work, that ``out`` can be written as a ``kind`` ("file" or "folder").

    An existing output is refused unless ``overwrite``; a file is never replaced by a folder
    nor a folder by a file, even with ``overwrite``. The nearest existing ancestor must accept
    a new file (tried for real: permissions alone miss read-only file systems and root).

    Raises
    ------
    OutputExistsError
        ``out`` exists and ``overwrite`` is False, or it is of the other kind.
    InputError
        The destination cannot be created or written.
    """
    path = Path(out)
    if kind not in ("file", "folder"):
        raise ValueError(f"kind must be 'file' or 'folder', got {kind!r}")
    if path.exists() or path.is_symlink():
        if kind == "file" and path.is_dir():
            raise OutputExistsError(f"{name} {path} is a folder; give a file name")
        if kind == "folder" and not path.is_dir():
            raise OutputExistsError(
                f"{name} {path} exists and is not a folder; refusing to replace it"
            )
        if not overwrite:
            raise OutputExistsError(f"{name} {path} already exists; pass --overwrite to replace it")
        here = Path.cwd().resolve()
        if real_path(path) in (here, *here.parents):
            raise InputError(
                f"{name} {path} is the current folder or holds it; replacing it would delete "
                "the folder you are working in"
            )
    parent = real_path(path).parent
    while not parent.exists():
        if parent.parent == parent:
            break
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(
            f"{name} {path}: {parent} is not a folder, so nothing can be written there"
        )
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise InputError(
            f"{name} {path}: cannot write in {parent} ({exc.strerror or exc})"
        ) from None


def check_name(value: str, *, name: str) -> str:
    """A name used as one folder or file inside another: no separators, no ``..``, no leading dot.

    Raises
    ------
    InputError
        For a name that could leave its parent folder or hide itself.

    Examples
    --------
    >>> check_name("01", name="--sequence")
    '01'
    """
    if not _NAME.fullmatch(value or "") or value in (".", ".."):
        raise InputError(
            f"{name} {value!r}: must be a plain name (letters, digits, '_', '-', '.', not "
            "starting with '.' or '-'), not a path"
        )
    return value
