"""Atomic writes: a reader never sees a half-written file or folder.

Files are written to a temporary name in the destination folder and renamed into place
(``os.replace`` is atomic on POSIX and Windows within one file system). Folders are assembled
in a temporary sibling and renamed in one step; an existing destination is only replaced when
the caller says ``overwrite=True``, and then it is moved aside first and removed only after the
new folder is in place.

Temporary names come from :mod:`tempfile`, which creates them private (0600 files, 0700
folders); results are given the permissions an ordinary ``open``/``mkdir`` would have given
them under the user's umask, so a shared results folder stays readable by the group.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from ..errors import OutputExistsError

_UMASK_LOCK = threading.Lock()


def _umask() -> int:
    """The process umask, read without changing it where the system allows."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    with _UMASK_LOCK:  # os.umask can only be read by setting it
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _public(path: Path, *, folder: bool) -> None:
    """Give ``path`` the mode a plain open/mkdir would have: 0666 or 0777 less the umask."""
    os.chmod(path, (0o777 if folder else 0o666) & ~_umask())


def _fsync_dir(path: Path) -> None:
    # Make the rename itself durable; not supported everywhere (e.g. Windows), hence the guard.
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(
    path: str | os.PathLike, write: Callable[[Path], None], *, overwrite: bool = False
) -> Path:
    """Write a file through ``write(tmp_path)`` and move it to ``path`` atomically.

    Parameters
    ----------
    path : path-like
        Destination file.
    write : callable
        Called with a temporary path in the destination folder; must create that file.
    overwrite : bool, optional
        Replace an existing file. Without it an existing ``path`` raises
        :class:`~napari_cosine_embed.core.errors.OutputExistsError` and nothing is written.

    Returns
    -------
    Path
        The destination path.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path} already exists; pass overwrite=True to replace it.")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent
    )
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        if path.exists():  # a replaced file keeps its permissions
            os.chmod(tmp_path, path.stat().st_mode & 0o7777)
        else:
            _public(tmp_path, folder=False)
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Build a folder in a temporary sibling and move it to ``path`` when the block succeeds.

    If the block raises (or is interrupted with Ctrl-C), the temporary folder is removed and
    ``path`` is left exactly as it was.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_folder(root / "result") as tmp:
    ...     _ = (tmp / "a.txt").write_text("hello")
    >>> (root / "result" / "a.txt").read_text()
    'hello'
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(
            f"{path} already exists; pass overwrite=True (--overwrite) to replace it."
        )
    if path.exists() and not path.is_dir():
        raise OutputExistsError(f"{path} exists and is not a folder; refusing to replace it.")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
    try:
        _public(tmp, folder=True)
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    try:
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            old.rmdir()
            os.replace(path, old)
    except BaseException:
        if old is not None and not old.exists() and not path.exists():
            old = None  # nothing was moved
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        os.replace(tmp, path)
    except BaseException:
        if old is not None:
            os.replace(old, path)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    _fsync_dir(path.parent)
