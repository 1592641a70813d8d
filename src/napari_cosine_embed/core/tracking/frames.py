"""Label frames held compressed, so that tracking a long movie needs memory for a few frames.

A 1024 x 1024 label frame is 2-4 MB as an array but a few tens of kB compressed (labels are
large runs of equal values), so :class:`FrameStack` keeps each frame compressed
(Blosc/zstd, lossless) and decompresses it when read; a tracking of 200 such frames then holds
some 10 MB of frames instead of 800 MB. :class:`RelabelledFrames` is the tracking's result in the
same spirit: each frame is relabelled (a lookup table applied) only when read, so writing the
result streams it frame by frame.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

__all__ = ["FrameStack", "RelabelledFrames"]


class FrameStack:
    """A growing sequence of (Y, X) integer frames, kept compressed or as they are.

    Parameters
    ----------
    shape : tuple of int
        (Y, X) of every frame.
    compressed : bool
        Keep frames compressed (reads decompress a copy) or as the arrays given.

    Examples
    --------
    >>> stack = FrameStack((4, 4))
    >>> stack.append(np.eye(4, dtype=np.uint16))
    >>> stack[0].sum(), stack.shape, stack.dtype
    (np.uint64(4), (1, 4, 4), dtype('uint16'))
    """

    ndim = 3

    def __init__(self, shape: tuple[int, int], *, compressed: bool = True) -> None:
        from numcodecs import Blosc

        self.frame_shape = tuple(int(s) for s in shape)
        self.compressed = compressed
        self._codec = Blosc(cname="zstd", clevel=1, shuffle=Blosc.BITSHUFFLE)
        self._frames: list[Any] = []
        self._dtypes: list[np.dtype] = []

    def _pack(self, frame: np.ndarray) -> Any:
        frame = np.asarray(frame)
        if frame.shape != self.frame_shape:
            raise ValueError(f"a frame of shape {frame.shape}, not {self.frame_shape}")
        return self._codec.encode(np.ascontiguousarray(frame)) if self.compressed else frame

    def append(self, frame: np.ndarray) -> None:
        self._frames.append(self._pack(frame))
        self._dtypes.append(np.asarray(frame).dtype)

    def packed(self, t: int) -> tuple[bytes, str]:
        """Frame ``t`` as stored (compressed bytes) with its dtype, to send elsewhere."""
        if not self.compressed:
            raise ValueError("only a compressed stack hands out packed frames")
        return self._frames[t], str(self._dtypes[t])

    def append_packed(self, blob: bytes, dtype: str) -> None:
        """Append a frame that :meth:`packed` of another compressed stack gave."""
        if not self.compressed:
            raise ValueError("only a compressed stack takes packed frames")
        self._frames.append(blob)
        self._dtypes.append(np.dtype(dtype))

    def __len__(self) -> int:
        return len(self._frames)

    def __getitem__(self, t: int) -> np.ndarray:
        stored = self._frames[t]
        if not self.compressed:
            return stored
        flat = np.frombuffer(self._codec.decode(stored), dtype=self._dtypes[t])
        return flat.reshape(self.frame_shape).copy()

    def __setitem__(self, t: int, frame: np.ndarray) -> None:
        self._frames[t] = self._pack(frame)
        self._dtypes[t] = np.asarray(frame).dtype

    def __iter__(self) -> Iterator[np.ndarray]:
        for t in range(len(self)):
            yield self[t]

    @property
    def shape(self) -> tuple[int, int, int]:
        return (len(self), *self.frame_shape)

    @property
    def dtype(self) -> np.dtype:
        return np.result_type(*self._dtypes) if self._dtypes else np.dtype(np.uint16)

    @property
    def stored_bytes(self) -> int:
        """Bytes the frames take as stored."""
        return sum(len(f) if self.compressed else f.nbytes for f in self._frames)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = np.stack(list(self)) if len(self) else np.zeros((0, *self.frame_shape), self.dtype)
        return out if dtype is None else out.astype(dtype)


class RelabelledFrames:
    """A (T, Y, X) label movie read as ``luts[t][frames[t]]``, one frame at a time.

    Indexing with a frame number gives that frame; anything else (slices, ``np.asarray``)
    builds the whole movie first.
    """

    ndim = 3

    def __init__(self, frames: Sequence, luts: Sequence[np.ndarray], dtype: Any) -> None:
        self._frames, self._luts, self.dtype = frames, list(luts), np.dtype(dtype)
        first = frames[0] if len(frames) else np.zeros((0, 0))
        self.shape = (len(frames), *np.asarray(first).shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            t = int(key) % max(len(self), 1)
            return self._luts[t][self._frames[t]].astype(self.dtype, copy=False)
        return np.asarray(self)[key]

    def __iter__(self) -> Iterator[np.ndarray]:
        for t in range(len(self)):
            yield self[t]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = np.stack(list(self)) if len(self) else np.zeros(self.shape, self.dtype)
        return out if dtype is None else out.astype(dtype)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * self.dtype.itemsize
