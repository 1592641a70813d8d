"""Per-frame embedding caches: in memory, or in a zarr folder on disk for long movies.

A movie of 200 frames of 1024 x 1024 has 13 GiB of float32 embeddings (D = 16), more than a
laptop holds, so the pipeline streams: each frame is embedded once, written to the store, and
read back when grouping or tracking needs it. The store records which model and which image
produced it (:func:`model_fingerprint`, :func:`image_fingerprint`); reopening a disk store made
by another model or image is refused, so stale embeddings are never mixed with fresh ones, and a
run that was stopped resumes from the frames already written.

Each stored frame also keeps :func:`frame_hash` of the image frame it came from. The recurrent
network makes a frame's embedding depend on the frames before it too, so before reusing a store
the pipeline compares the hashes of every frame in each stored frame's history with the movie
as it is now (:meth:`EmbeddingStore.stale`) and recomputes what an edit touched.

Embeddings are kept as float16 (unit vectors need no more: the rounding error of a cosine is
below 1e-3) and foreground probabilities as uint8 (steps of 1/255).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError, OutputExistsError

__all__ = [
    "EmbeddingStore",
    "embedding_id",
    "frame_hash",
    "image_fingerprint",
    "model_fingerprint",
]

_MARKER = "napari-cosine-embed embedding cache"


def model_fingerprint(model: Any) -> str:
    """A short hash of a model's weights and normalisation: equal exactly for equal models.

    Parameters
    ----------
    model : EmbeddingModel

    Returns
    -------
    str
        16 hexadecimal digits.
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(model.network.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    digest.update(repr(model.normalisation).encode())
    return digest.hexdigest()[:16]


def embedding_id(model: Any, **options: Any) -> str:
    """Identity of embeddings: the model's fingerprint plus the inference options that change
    them (e.g. ``state_window``, ``warmup``, ``tile_size``), for :class:`EmbeddingStore`.

    Examples
    --------
    >>> embedding_id(model, state_window=5, warmup=3)  # doctest: +SKIP
    '4f0c...:state_window=5,warmup=3'
    """
    extra = ",".join(f"{k}={options[k]}" for k in sorted(options))
    return f"{model_fingerprint(model)}:{extra}" if extra else model_fingerprint(model)


def image_fingerprint(image: Any, *, samples: int = 3) -> str:
    """A short hash of a movie's shape, dtype and a few of its frames (first, middle, last).

    Cheap for a lazy movie (reads ``samples`` frames), and it changes when the user loads
    another movie; an edit to an unsampled frame is not detected.

    Parameters
    ----------
    image : array-like of shape (T, Y, X) or (Y, X)
    samples : int
        Frames hashed.

    Returns
    -------
    str
        16 hexadecimal digits.
    """
    shape = tuple(int(s) for s in image.shape)
    digest = hashlib.sha256(f"{shape}{np.dtype(image.dtype).str}".encode())
    if len(shape) == 3 and shape[0]:
        picks = sorted({round(i) for i in np.linspace(0, shape[0] - 1, samples)})
        for t in picks:
            digest.update(np.ascontiguousarray(np.asarray(image[t])).tobytes())
    elif len(shape) == 2:
        digest.update(np.ascontiguousarray(np.asarray(image)).tobytes())
    return digest.hexdigest()[:16]


def frame_hash(frame: Any) -> int:
    """A 63-bit hash of one frame's shape, dtype and every pixel (never 0, which means unknown).

    About 1 ms per megapixel: cheap beside embedding the frame, and exact, so an edit of a
    single pixel is seen.

    Examples
    --------
    >>> a = np.zeros((4, 4), np.uint8)
    >>> b = a.copy(); b[1, 2] = 1
    >>> frame_hash(a) == frame_hash(a.copy()), frame_hash(a) == frame_hash(b)
    (True, False)
    """
    arr = np.ascontiguousarray(np.asarray(frame))
    digest = hashlib.blake2b(f"{arr.shape}{arr.dtype.str}".encode(), digest_size=8)
    digest.update(arr.view(np.uint8).reshape(-1) if arr.size else b"")
    return (int.from_bytes(digest.digest(), "little") >> 1) or 1


class EmbeddingStore:
    """Embeddings and foreground probabilities of the frames of one movie, frame by frame.

    Parameters
    ----------
    n_frames, dim : int
        Frames ``T`` and embedding dimensions ``D``.
    shape : tuple of int
        ``(Y, X)`` of a frame.
    path : path-like, optional
        A zarr folder to keep everything in; None keeps it in memory (frames are allocated as
        they arrive, so a store for a long movie costs nothing until frames are put).
    model_id, image_id : str
        Fingerprints (:func:`model_fingerprint`, :func:`image_fingerprint`) of what produced
        the embeddings. An existing folder made for the same ids and shape is reopened and its
        frames reused; one made for others raises :class:`OutputExistsError` unless
        ``overwrite``; a folder that is not an embedding cache is never touched.
    overwrite : bool
        Replace an existing cache of another model or image.

    Examples
    --------
    >>> store = EmbeddingStore(3, 2, (4, 4), model_id="m", image_id="i")
    >>> store.put(1, np.ones((2, 4, 4), np.float32) / np.sqrt(2), np.ones((4, 4), np.float32))
    >>> store.has(1), store.missing()
    (True, [0, 2])
    >>> store.get(1)[0].shape
    (2, 4, 4)
    >>> store.frame_hashes()[1]  # unknown: put without a hash
    0
    """

    def __init__(
        self,
        n_frames: int,
        dim: int,
        shape: tuple[int, int],
        *,
        path: str | os.PathLike | None = None,
        model_id: str = "",
        image_id: str = "",
        overwrite: bool = False,
    ) -> None:
        self.n_frames, self.dim, self.shape = int(n_frames), int(dim), tuple(int(s) for s in shape)
        self.model_id, self.image_id = model_id, image_id
        self.path = None if path is None else Path(path)
        self._memory: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}
        self._hashes = np.zeros(self.n_frames, np.uint64)
        self._group = None
        if self.path is not None:
            self._group = self._open_or_create(overwrite)

    @property
    def _meta(self) -> dict:
        return {
            "marker": _MARKER,
            "model_id": self.model_id,
            "image_id": self.image_id,
            "n_frames": self.n_frames,
            "dim": self.dim,
            "shape": list(self.shape),
        }

    def _open_or_create(self, overwrite: bool):
        import zarr

        path = self.path
        if path.exists():
            try:
                group = zarr.open_group(str(path), mode="r+")
                attrs = dict(group.attrs)
            except Exception as exc:  # an unreadable folder is "not ours"
                raise OutputExistsError(
                    f"{path} exists and is not an embedding cache ({exc}); choose another folder"
                ) from exc
            if attrs.get("marker") != _MARKER:
                raise OutputExistsError(
                    f"{path} exists and is not an embedding cache; choose another folder"
                )
            if attrs == self._meta:
                if "frame_hash" not in group:  # a cache from before frame hashes: trust none
                    group.create_array(
                        "frame_hash", shape=(self.n_frames,), chunks=(self.n_frames,),
                        dtype="uint64", fill_value=0,
                    )  # fmt: skip
                    group["done"][:] = False
                return group
            if not overwrite:
                raise OutputExistsError(
                    f"{path} holds embeddings of another model or image "
                    f"(model {attrs.get('model_id')}, image {attrs.get('image_id')}); "
                    "pass overwrite to replace it"
                )
            shutil.rmtree(path)
        group = zarr.open_group(str(path), mode="w")
        y, x = self.shape
        group.create_array(
            "embedding",
            shape=(self.n_frames, self.dim, y, x),
            chunks=(1, self.dim, min(y, 512), min(x, 512)),
            dtype="float16",
            fill_value=0,
        )
        group.create_array(
            "foreground",
            shape=(self.n_frames, y, x),
            chunks=(1, min(y, 1024), min(x, 1024)),
            dtype="uint8",
            fill_value=0,
        )
        group.create_array("done", shape=(self.n_frames,), chunks=(self.n_frames,), dtype="bool")
        group.create_array(
            "frame_hash", shape=(self.n_frames,), chunks=(self.n_frames,), dtype="uint64",
            fill_value=0,
        )  # fmt: skip
        group.attrs.update(self._meta)
        return group

    def _check_t(self, t: int) -> int:
        t = int(t)
        if not 0 <= t < self.n_frames:
            raise InputError(f"frame {t} is outside 0..{self.n_frames - 1}")
        return t

    def has(self, t: int) -> bool:
        """Whether frame ``t`` has been stored."""
        t = self._check_t(t)
        if self._group is None:
            return t in self._memory
        return bool(self._group["done"][t])

    def missing(self) -> list[int]:
        """Frames not stored yet, in order."""
        if self._group is None:
            return [t for t in range(self.n_frames) if t not in self._memory]
        return np.flatnonzero(~np.asarray(self._group["done"][:])).tolist()

    def put(
        self,
        t: int,
        embedding: np.ndarray,
        foreground: np.ndarray | None,
        *,
        source_hash: int = 0,
    ) -> None:
        """Store frame ``t``: ``embedding`` (D, Y, X) and ``foreground`` (Y, X) or None.

        ``source_hash`` is :func:`frame_hash` of the image frame ``t`` they came from (0:
        unknown: the caller vouches for it, and :meth:`stale` keeps it).
        """
        t = self._check_t(t)
        emb = np.asarray(embedding)
        if emb.shape != (self.dim, *self.shape):
            raise InputError(f"embedding of shape {emb.shape}, expected {(self.dim, *self.shape)}")
        fg = None
        if foreground is not None:
            fg = np.asarray(foreground)
            if fg.shape != self.shape:
                raise InputError(f"foreground of shape {fg.shape}, expected {self.shape}")
            fg = np.round(np.clip(fg, 0, 1) * 255).astype(np.uint8)
        if self._group is None:
            self._memory[t] = (emb.astype(np.float16), fg)
            self._hashes[t] = source_hash
            return
        self._group["embedding"][t] = emb.astype(np.float16)
        if fg is not None:
            self._group["foreground"][t] = fg
        self._group["frame_hash"][t] = np.uint64(source_hash)
        self._group["done"][t] = True  # last: a frame half-written when stopped is recomputed

    def frame_hashes(self) -> np.ndarray:
        """:func:`frame_hash` of the image frame behind each stored frame (uint64, 0: unknown)."""
        if self._group is None:
            return self._hashes.copy()
        return np.asarray(self._group["frame_hash"][:], np.uint64)

    def stale(self, hashes: Any, history: Any) -> list[int]:
        """Stored frames that no longer match the movie, given its frames' current hashes.

        Parameters
        ----------
        hashes : sequence of int
            :func:`frame_hash` of every frame of the movie as it is now.
        history : callable
            ``history(t)`` -> the frames whose pixels frame ``t``'s embedding depends on
            (``t`` itself and the frames its recurrent state came through).

        Returns
        -------
        list of int
            Stored frames with a changed frame in their history. A frame stored without a
            hash (``source_hash=0``, put by a caller who vouches for it) counts as unchanged.
        """
        current = np.asarray(hashes, np.uint64)
        if current.shape != (self.n_frames,):
            raise InputError(f"expected {self.n_frames} frame hashes, got {current.shape}")
        stored = self.frame_hashes()
        missing = set(self.missing())
        done = [t for t in range(self.n_frames) if t not in missing]
        changed = (stored != current) & (stored != 0)
        return [t for t in done if any(changed[u] for u in history(t))]

    def forget(self, frames: Any) -> None:
        """Mark ``frames`` as not stored, so they are computed again."""
        frames = [self._check_t(t) for t in frames]
        if self._group is None:
            for t in frames:
                self._memory.pop(t, None)
                self._hashes[t] = 0
            return
        if frames:
            done = np.asarray(self._group["done"][:])
            done[frames] = False
            self._group["done"][:] = done

    def get(self, t: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Frame ``t`` as float32 arrays: ``(embedding (D, Y, X), foreground (Y, X) or None)``.

        Raises
        ------
        KeyError
            The frame has not been stored.
        """
        if not self.has(t):
            raise KeyError(f"frame {t} has no embedding yet")
        if self._group is None:
            emb, fg = self._memory[int(t)]
        else:
            emb, fg = self._group["embedding"][t], self._group["foreground"][t]
        emb = np.asarray(emb, np.float32)
        fg = None if fg is None else np.asarray(fg, np.float32) / 255.0
        return emb, fg

    def clear(self) -> None:
        """Forget every frame (a disk store keeps its folder, marked empty)."""
        self._memory.clear()
        self._hashes[:] = 0
        if self._group is not None:
            self._group["done"][:] = False

    @property
    def nbytes(self) -> int:
        """Bytes held in memory (0 for a disk store)."""
        return sum(e.nbytes + (0 if f is None else f.nbytes) for e, f in self._memory.values())

    def __repr__(self) -> str:
        where = "memory" if self.path is None else str(self.path)
        done = self.n_frames - len(self.missing())
        return f"EmbeddingStore({done}/{self.n_frames} frames, D={self.dim}, {self.shape}, {where})"
