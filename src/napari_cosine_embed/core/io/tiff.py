"""Read grayscale 2D images and 2D+t stacks from TIFF / OME-TIFF; write label TIFFs.

The axes of a file come from ``tifffile``'s first series (OME, ImageJ or tifffile's own
metadata; ``I`` or ``Q`` where the file says nothing). What this reader accepts:

* ``YX``: a single image, returned as (Y, X).
* one extra axis before ``YX``, whatever its letter (``T``, ``Z``, ``I``, ``Q``): a movie,
  returned as (T, Y, X). A stack whose planes are labelled ``Z`` is read as time points too:
  plain ImageJ stacks and files without metadata call their planes slices, and this package
  works on 2D+t only. An OME-TIFF that declares a ``Z`` axis gets a :class:`UserWarning`
  saying so.
* RGB(A) samples (``S`` axis of 3 or 4 with RGB photometric interpretation): converted to
  grayscale luminance with a :class:`UserWarning`; alpha is dropped.

Anything else (3D+t, several channels, two or more axes before ``YX`` whose meaning is
unknown) raises :class:`~napari_cosine_embed.core.errors.InputError`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from ..errors import InputError
from ._atomic import atomic_write

__all__ = [
    "TIFF_SUFFIXES",
    "check_label_dtype",
    "parallel_map",
    "read_label_frame",
    "read_tiff",
    "read_tiff_frame",
    "read_tiff_frames",
    "rgb_to_gray",
    "write_labels_tiff",
]

TIFF_SUFFIXES = (".tif", ".tiff")

# ITU-R BT.709 luminance weights (the sRGB primaries).
_LUMA = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)

_STACK_AXES = set("TZIQ")

# What reading a file that is not a TIFF, is cut short or has a damaged header raises: besides
# tifffile's own error, a corrupt header surfaces as whatever the parsing code trips on
# (found by fuzzing: struct.error on a cut header, ZeroDivisionError and TypeError on
# nonsense tag values, MemoryError when a damaged shape claims hundreds of GiB).
_TIFF_ERRORS = (
    tifffile.TiffFileError,
    ValueError,
    OSError,
    EOFError,
    RuntimeError,
    IndexError,
    KeyError,
    TypeError,
    ZeroDivisionError,
    struct.error,
    MemoryError,
)

# Other formats people save under a .tif name, by their first bytes.
_FOREIGN_MAGIC = (
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"\x89HDF", "an HDF5 file"),
)


def _tiff_error(path: Path, exc: BaseException) -> InputError:
    """An :class:`InputError` saying in plain words why ``path`` could not be read as a TIFF."""
    if isinstance(exc, OSError) and exc.errno is not None:
        # The operating system refused (permissions, a folder, a failing disk): not the content.
        return InputError(f"{path}: cannot be read ({exc.strerror or exc})")
    if isinstance(exc, MemoryError):
        return InputError(
            f"{path}: not a readable TIFF file: its header declares more pixels than fit in "
            f"memory (a corrupt header, or an image too large to read at once)"
        )
    try:
        with open(path, "rb") as file:
            head = file.read(256)
    except OSError:
        head = None
    if head == b"":
        what = "the file is empty (0 bytes)"
    elif head is not None and not head.startswith((b"II", b"MM")):
        named = [name for magic, name in _FOREIGN_MAGIC if head.startswith(magic)]
        if named:
            what = f"it is {named[0]} under a TIFF name"
        elif all(32 <= b < 127 or b in b"\t\r\n" for b in head):
            what = "it holds text, not image data"
        else:
            what = "it does not start with a TIFF header"
    else:
        what = f"the file is corrupt or truncated ({type(exc).__name__}: {exc})"
    return InputError(f"{path}: not a readable TIFF file: {what}")


def rgb_to_gray(image: np.ndarray) -> np.ndarray:
    """Luminance of RGB or RGBA pixels.

    Parameters
    ----------
    image : ndarray of shape (..., 3) or (..., 4)
        Colour pixels on the last axis; a fourth (alpha) channel is ignored.

    Returns
    -------
    ndarray of shape (...)
        ``uint8`` and ``uint16`` input keeps its dtype (rounded); any other dtype gives
        ``float32``.

    Examples
    --------
    >>> rgb_to_gray(np.array([[[255, 255, 255], [0, 0, 0]]], dtype=np.uint8)).tolist()
    [[255, 0]]
    """
    image = np.asarray(image)
    if image.ndim < 3 or image.shape[-1] not in (3, 4):
        raise InputError(f"expected RGB(A) pixels on the last axis, got shape {image.shape}")
    out_dtype = image.dtype if image.dtype in (np.uint8, np.uint16) else np.dtype(np.float32)
    out = np.empty(image.shape[:-1], dtype=out_dtype)
    # One leading index at a time keeps the float temporary small for long movies.
    planes = image.reshape((-1, *image.shape[-3:])) if image.ndim > 3 else image[None]
    flat_out = out.reshape((-1, *image.shape[-3:-1]))
    for i, plane in enumerate(planes):
        gray = plane[..., :3].astype(np.float32) @ _LUMA
        if np.issubdtype(out_dtype, np.integer):
            gray = np.clip(np.rint(gray), 0, np.iinfo(out_dtype).max)
        flat_out[i] = gray
    return out


class _ErrorCollector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def _tifffile_errors() -> Iterator[list[str]]:
    """Collect the error messages tifffile logs while the block runs."""
    logger = logging.getLogger("tifffile")
    handler = _ErrorCollector()
    logger.addHandler(handler)
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)


def _unsupported(path: Path, axes: str, shape: tuple, why: str) -> InputError:
    return InputError(
        f"{path}: {why} data (axes {axes!r}, shape {shape}) is not supported yet; this "
        f"package reads 2D images (YX) and 2D time-lapses (TYX), grayscale or RGB"
    )


class TiffFrames:
    """A (T, Y, X) TIFF stack read a frame (a page) at a time, for a movie that should not be
    held whole in memory: ``segment`` reads each frame when it embeds it.

    Indexing with a frame number (or a tuple starting with one) reads that page; a slice of
    frames reads those pages; ``np.asarray`` reads them all. Reads are serialised (one file
    handle), and a page that cannot be decoded raises :class:`InputError` naming the file.
    """

    ndim = 3

    def __init__(self, path: Path, tif: Any, pages: list, shape: tuple, dtype: Any) -> None:
        import threading

        self.path, self._tif, self._pages = path, tif, pages
        self.shape, self.dtype = tuple(int(s) for s in shape), np.dtype(dtype)
        self._lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def close(self) -> None:
        """Close the file (reads after this fail)."""
        self._tif.close()

    def _frame(self, t: int) -> np.ndarray:
        t = range(self.shape[0])[t]  # negative and out-of-range frames, as numpy treats them
        try:
            with self._lock, _tifffile_errors() as errors:
                frame = self._pages[t].asarray()
        except _TIFF_ERRORS as exc:
            raise _tiff_error(self.path, exc) from exc
        if errors or frame.shape != self.shape[1:]:
            raise InputError(f"{self.path}: frame {t} cannot be read: corrupt or truncated TIFF")
        return frame

    def __getitem__(self, key: Any) -> np.ndarray:
        rest: tuple = ()
        if isinstance(key, tuple):
            key, rest = (key[0] if key else slice(None)), key[1:]
        if isinstance(key, int | np.integer):
            frame = self._frame(int(key))
            return frame[rest] if rest else frame
        frames = range(self.shape[0])[key] if isinstance(key, slice) else np.asarray(key)
        picked = [self._frame(int(t)) for t in np.ravel(frames)]
        empty = np.empty((0, *self.shape[1:]), self.dtype)
        stack = (np.stack(picked) if picked else empty).reshape(
            (*np.shape(frames), *self.shape[1:])
        )
        return stack[(slice(None), *rest)] if rest else stack

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        data = self[:]
        return data if dtype is None else data.astype(dtype, copy=False)

    def __repr__(self) -> str:
        return f"TiffFrames({str(self.path)!r}, shape={self.shape}, dtype={self.dtype})"


def _lazy_stack(path: Path, tif: Any, series: Any) -> TiffFrames | None:
    """A :class:`TiffFrames` for a plain stack of single-frame pages, else None (read whole)."""
    axes, shape = series.axes, tuple(series.shape)
    if len(axes) != 3 or axes[0] not in _STACK_AXES or axes[0] == "C" or "S" in axes:
        return None
    pages = list(series.pages)
    if len(pages) != shape[0] or any(p is None or p.shape != shape[1:] for p in pages):
        return None
    size = path.stat().st_size
    for page in pages:  # a truncated file is refused now, not at frame 180 of a long run
        ends = [o + n for o, n in zip(page.dataoffsets, page.databytecounts, strict=False)]
        if max(ends, default=0) > size:
            raise InputError(f"{path}: corrupt or truncated TIFF file (page data past its end)")
    return TiffFrames(path, tif, pages, shape, series.dtype)


def read_tiff(path: str | os.PathLike, *, lazy: bool = False) -> Any:
    """Read a grayscale 2D image or 2D time-lapse from a TIFF or OME-TIFF file.

    Parameters
    ----------
    path : path-like
        A ``.tif`` / ``.tiff`` / ``.ome.tif`` file. Only its first series is read (for a
        pyramidal file, the full-resolution level).
    lazy : bool
        For a stack of single-frame pages, return a :class:`TiffFrames` that reads a frame
        when it is indexed, so memory does not grow with the movie; other layouts are read
        whole.

    Returns
    -------
    ndarray of shape (Y, X) or (T, Y, X)
        The pixels in their stored dtype (RGB(A) converted to luminance, see
        :func:`rgb_to_gray`). A stack labelled ``Z`` is returned as (T, Y, X); see the
        module notes.

    Raises
    ------
    InputError
        The file is missing, not a TIFF, corrupt, or holds data this package does not
        handle (3D+t, several channels, ambiguous 4D and more).

    Warns
    -----
    UserWarning
        When RGB(A) is converted to grayscale, and when an OME-TIFF's Z axis is read as time.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a folder, expected a TIFF file")
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    frames = None
    try:
        with _tifffile_errors() as errors:
            tif = tifffile.TiffFile(path)
            try:
                series = tif.series[0] if tif.series else None
                if series is not None:
                    axes, shape = series.axes, tuple(series.shape)
                    photometric = series.keyframe.photometric
                    is_ome = tif.is_ome
                    frames = _lazy_stack(path, tif, series) if lazy else None
                    data = frames if frames is not None else series.asarray()
            finally:
                if frames is None:
                    tif.close()
    except _TIFF_ERRORS as exc:
        raise _tiff_error(path, exc) from exc
    if errors:
        # tifffile logs (rather than raises) broken page chains and then returns only the
        # pages it could reach; silently reading part of a movie would be worse than failing.
        raise InputError(f"{path}: corrupt or truncated TIFF file ({'; '.join(errors)})")
    if series is None:
        raise InputError(f"{path}: the TIFF file holds no image data")
    if np.dtype(data.dtype).kind == "c":
        raise InputError(
            f"{path}: the pixels have dtype {data.dtype}; complex values are not supported, "
            f"expected real-valued intensities (integer or float)"
        )

    if not axes.replace("S", "").endswith("YX"):
        raise _unsupported(path, axes, shape, "non-planar")
    if "S" in axes:
        s_axis = axes.index("S")
        n_samples = shape[s_axis]
        if photometric != tifffile.PHOTOMETRIC.RGB or n_samples not in (3, 4):
            raise _unsupported(path, axes, shape, f"multichannel ({n_samples} samples per pixel)")
        data = np.moveaxis(data, s_axis, -1)
        axes = axes.replace("S", "")
        warnings.warn(
            f"{path.name}: RGB{'A' if n_samples == 4 else ''} image converted to grayscale "
            f"(luminance{', alpha dropped' if n_samples == 4 else ''}).",
            UserWarning,
            stacklevel=2,
        )
        data = rgb_to_gray(data)

    extra = axes[:-2]
    if len(extra) == 0:
        return data
    if len(extra) == 1:
        if extra == "C":
            raise _unsupported(path, axes, shape, f"multichannel ({data.shape[0]} channels)")
        if extra not in _STACK_AXES:
            raise _unsupported(path, axes, shape, f"a stack along axis {extra!r}")
        if extra == "Z" and is_ome:
            warnings.warn(
                f"{path.name}: the OME metadata declares {data.shape[0]} Z slices; they are "
                f"read as {data.shape[0]} time points.",
                UserWarning,
                stacklevel=2,
            )
        return data
    if "C" in extra:
        why = "multichannel"
    elif "T" in extra and "Z" in extra:
        why = "3D+t"
    else:
        why = f"{len(extra) + 2}D (axes of unknown meaning)"
    raise _unsupported(path, axes, shape, why)


def write_labels_tiff(
    path: str | os.PathLike, labels: np.ndarray, *, overwrite: bool = False
) -> Path:
    """Write a label image or label movie as a compressed TIFF, atomically.

    Parameters
    ----------
    path : path-like
        Destination ``.tif`` file.
    labels : array of shape (Y, X) or (T, Y, X)
        Non-negative integer labels (numpy or dask); 0 is background. Stored as ``uint16``
        when the largest label fits, else ``uint32``.
    overwrite : bool, optional
        Replace an existing file; without it an existing ``path`` raises
        :class:`~napari_cosine_embed.core.errors.OutputExistsError`.

    Returns
    -------
    Path
        The written file; :func:`read_tiff` reads it back with the same shape.

    Examples
    --------
    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp()) / "labels.tif"
    >>> _ = write_labels_tiff(out, np.eye(4, dtype=np.int64))
    >>> read_tiff(out).dtype
    dtype('uint16')
    """
    arr = np.asarray(labels)
    if arr.ndim not in (2, 3):
        raise InputError(f"labels must have shape (Y, X) or (T, Y, X), got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_):
        raise InputError(f"labels must be integers, got dtype {arr.dtype}")
    lo = int(arr.min()) if arr.size else 0
    hi = int(arr.max()) if arr.size else 0
    if lo < 0:
        raise InputError(f"labels must be >= 0, found {lo}")
    if hi > np.iinfo(np.uint32).max:
        raise InputError(f"label {hi} does not fit in uint32")
    dtype = np.uint16 if hi <= np.iinfo(np.uint16).max else np.uint32
    axes = "YX" if arr.ndim == 2 else "TYX"

    def write(tmp: Path) -> None:
        tifffile.imwrite(
            tmp,
            arr.astype(dtype, copy=False),
            compression="zlib",
            photometric="minisblack",
            metadata={"axes": axes},
        )

    return atomic_write(path, write, overwrite=overwrite)


# --- folders of single-frame files (CTC sequences, ground truth and results) -----------------


def _require_2d(path: Path, shape: tuple) -> None:
    if len(shape) == 3 and shape[-1] in (3, 4):
        raise InputError(
            f"{path}: expected a single-channel 2D (Y, X) frame, got shape {shape}, which looks "
            f"like an RGB(A) colour image; save one channel (grayscale or labels) instead"
        )
    if len(shape) != 2:
        raise InputError(
            f"{path}: expected a 2D (Y, X) frame, got shape {shape}; stacks of 3D frames are "
            f"not supported yet"
        )


def read_tiff_frame(path: str | os.PathLike) -> np.ndarray:
    """Read a TIFF file holding one 2D frame.

    Parameters
    ----------
    path : path-like
        A single-image TIFF file, e.g. a CTC ``t000.tif``.

    Returns
    -------
    ndarray of shape (Y, X)
        The frame in its stored dtype.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a folder, expected a TIFF file")
    try:
        frame = tifffile.imread(path)
    except _TIFF_ERRORS as exc:
        raise _tiff_error(path, exc) from exc
    _require_2d(path, frame.shape)
    return frame


def check_label_dtype(path: str | os.PathLike, dtype) -> None:
    """Raise :class:`InputError` naming ``path`` unless ``dtype`` can hold instance labels.

    Labels are whole numbers (any integer dtype, or bool for a single object); a float,
    complex or other dtype means the file holds an image rather than labels, or was saved
    the wrong way.
    """
    dtype = np.dtype(dtype)
    if not (np.issubdtype(dtype, np.integer) or dtype == np.bool_):
        raise InputError(
            f"{path}: wrong dtype for labels: the file stores {dtype} values, but label "
            f"images must have an integer dtype (CTC masks are uint16)"
        )


def read_label_frame(path: str | os.PathLike) -> np.ndarray:
    """Read a TIFF file holding one 2D label image.

    Parameters
    ----------
    path : path-like
        A single-image TIFF of instance labels, 0 = background.

    Returns
    -------
    ndarray of shape (Y, X)
        The labels in their stored (integer or bool) dtype.

    Raises
    ------
    InputError
        Naming the file: unreadable, not 2D, not an integer dtype, or negative labels.
    """
    path = Path(path)
    frame = read_tiff_frame(path)
    check_label_dtype(path, frame.dtype)
    if frame.dtype.kind == "i" and frame.size and frame.min() < 0:
        raise InputError(f"{path}: labels must be >= 0 (0 is the background), found {frame.min()}")
    return frame


def _frame_meta(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of a frame file, from its header (no pixels are decoded)."""
    if path.is_dir():
        raise InputError(f"{path}: is a folder, expected a TIFF file")
    try:
        with tifffile.TiffFile(path) as tif:
            shape, dtype = tuple(tif.series[0].shape), np.dtype(tif.series[0].dtype)
    except _TIFF_ERRORS as exc:
        raise _tiff_error(path, exc) from exc
    _require_2d(path, shape)
    return shape, dtype


def parallel_map(function: Callable, items: Iterable) -> list:
    """``[function(item) for item in items]`` on a few threads, results in order.

    TIFF (de)compression releases the GIL, so frame files are coded in parallel this way. The
    first exception cancels the calls not yet started and is raised here.
    """
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        futures = [pool.submit(function, item) for item in items]
        try:
            return [future.result() for future in futures]
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def read_tiff_frames(paths: Sequence[str | os.PathLike], *, lazy: bool = False):
    """Stack single-frame TIFF files into a movie.

    Parameters
    ----------
    paths : sequence of path-like
        One 2D TIFF file per frame, in time order (at least one).
    lazy : bool, optional
        Return a dask array that decodes each frame when it is computed. Every file's header
        is still checked up front.

    Returns
    -------
    ndarray or dask.array.Array of shape (T, Y, X)
        Frames in their stored dtype.

    Raises
    ------
    InputError
        A file is unreadable or not 2D, or the frames differ in shape or dtype.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise InputError("no frame files given")

    def mismatch(p: Path, s: tuple, d: np.dtype) -> InputError:
        return InputError(
            f"{p.parent}: frames must share shape and dtype; {paths[0].name} is "
            f"{shape} {dtype} but {p.name} is {s} {d}"
        )

    if lazy:
        import dask
        import dask.array as da

        shape, dtype = _frame_meta(paths[0])
        for p in paths[1:]:
            s, d = _frame_meta(p)
            if (s, d) != (shape, dtype):
                raise mismatch(p, s, d)
        frames = [da.from_delayed(dask.delayed(read_tiff_frame)(p), shape, dtype) for p in paths]
        return da.stack(frames)
    first = read_tiff_frame(paths[0])
    shape, dtype = first.shape, first.dtype
    out = np.empty((len(paths), *shape), dtype=dtype)
    out[0] = first

    def load(t: int) -> None:
        frame = read_tiff_frame(paths[t])
        if (frame.shape, frame.dtype) != (shape, dtype):
            raise mismatch(paths[t], frame.shape, frame.dtype)
        out[t] = frame

    parallel_map(load, range(1, len(paths)))
    return out
