"""Where every track of a label movie is, frame by frame, kept current as the movie is edited.

A track edit touches one or two tracks over many frames of a movie that may hold 100 frames of
1024 x 1024: reading every pixel of the movie for it would take longer than a user waits. The
index records, once, the bounding box, area and centroid of every label in every frame; an edit
then reads only the boxes of the tracks it changes, and the index is refreshed only inside the
pixels the edit wrote.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from ..errors import InputError
from ..io.lineage import _check_movie

__all__ = ["Box", "TrackIndex"]


@dataclass(frozen=True)
class Box:
    """One label in one frame: its bounding box, area and centroid.

    Attributes
    ----------
    rows, cols : slice
        The bounding box within the frame.
    area : int
        Pixel count.
    y, x : float
        Centroid in pixels.
    """

    rows: slice
    cols: slice
    area: int
    y: float
    x: float


def _frame_boxes(frame: np.ndarray, offset: tuple[int, int] = (0, 0)) -> dict[int, Box]:
    """Every non-zero label of ``frame`` with its box (shifted by ``offset``), area, centroid."""
    frame = np.asarray(frame)
    if frame.ndim != 2:
        raise InputError(f"a label frame must have shape (Y, X), got {frame.shape}")
    if not frame.size:
        return {}
    top = int(frame.max())
    if top <= 0:
        if frame.min() < 0:
            raise InputError(f"labels must be >= 0, found {frame.min()}")
        return {}
    if frame.min() < 0:
        raise InputError(f"labels must be >= 0, found {frame.min()}")
    flat = frame.ravel()
    fg = np.flatnonzero(flat)
    lab = flat[fg].astype(np.int64, copy=False)
    present, inverse, counts = np.unique(lab, return_inverse=True, return_counts=True)
    rows, cols = np.divmod(fg, frame.shape[1])
    sum_y = np.bincount(inverse, weights=rows)
    sum_x = np.bincount(inverse, weights=cols)
    r0 = np.full(present.size, np.iinfo(np.int64).max)
    c0 = r0.copy()
    r1 = np.full(present.size, -1)
    c1 = r1.copy()
    np.minimum.at(r0, inverse, rows)
    np.maximum.at(r1, inverse, rows)
    np.minimum.at(c0, inverse, cols)
    np.maximum.at(c1, inverse, cols)
    dy, dx = offset
    return {
        int(label): Box(
            slice(int(r0[i]) + dy, int(r1[i]) + dy + 1),
            slice(int(c0[i]) + dx, int(c1[i]) + dx + 1),
            int(counts[i]),
            float(sum_y[i] / counts[i]) + dy,
            float(sum_x[i] / counts[i]) + dx,
        )
        for i, label in enumerate(present.tolist())
    }


def _frame_boxes_fast(frame: np.ndarray) -> dict[int, Box]:
    """:func:`_frame_boxes` of a whole frame, with ``find_objects`` for the boxes (faster)."""
    frame = np.asarray(frame)
    if frame.ndim != 2:
        raise InputError(f"a label frame must have shape (Y, X), got {frame.shape}")
    if not frame.size or not frame.any():
        return {}
    if frame.min() < 0:
        raise InputError(f"labels must be >= 0, found {frame.min()}")
    flat = frame.ravel()
    fg = np.flatnonzero(flat)
    lab = flat[fg].astype(np.int64, copy=False)
    if int(lab.max()) >= 1 << 24:  # sparse huge ids: bincount would allocate too much
        return _frame_boxes(frame)
    counts = np.bincount(lab)
    present = np.flatnonzero(counts)
    rows, cols = np.divmod(fg, frame.shape[1])
    sum_y = np.bincount(lab, weights=rows, minlength=counts.size)
    sum_x = np.bincount(lab, weights=cols, minlength=counts.size)
    # find_objects takes integers up to int64; uint64 ids below 2**24 convert losslessly.
    slices = ndi.find_objects(frame if frame.dtype.itemsize < 8 else frame.astype(np.int64))
    out = {}
    for label in present.tolist():
        rs, cs = slices[label - 1]
        n = int(counts[label])
        out[label] = Box(rs, cs, n, float(sum_y[label] / n), float(sum_x[label] / n))
    return out


class TrackIndex:
    """The boxes, areas and centroids of every label of a (T, Y, X) label movie.

    Build it with :meth:`build` (a generator, for progress) or :meth:`of`; after writing a
    change into the movie, :meth:`refresh` brings the frames it touched up to date.

    Parameters
    ----------
    shape : tuple of int
        The movie's shape (T, Y, X).
    frames : list of dict of int to Box
        For each frame, its labels.

    Examples
    --------
    >>> movie = np.zeros((2, 4, 4), dtype=np.uint16)
    >>> movie[0, :2, :2] = 3
    >>> movie[1, 2:, 2:] = 3
    >>> index = TrackIndex.of(movie)
    >>> index.span(3), index.box(1, 3).area
    ((0, 1), 4)
    """

    def __init__(self, shape: tuple[int, int, int], frames: list[dict[int, Box]]) -> None:
        if len(shape) != 3 or len(frames) != shape[0]:
            raise InputError(f"an index needs one entry per frame of a (T, Y, X) movie: {shape}")
        self.shape = tuple(int(s) for s in shape)
        self._frames = frames
        self._frames_of: dict[int, set[int]] = {}
        for t, boxes in enumerate(frames):
            for label in boxes:
                self._frames_of.setdefault(label, set()).add(t)

    @classmethod
    def build(cls, movie) -> Iterator[tuple[int, int] | TrackIndex]:
        """Index ``movie`` one frame at a time: yields ``(done, total)``, then the index.

        Parameters
        ----------
        movie : array of shape (T, Y, X), int
            numpy, dask or zarr; read one frame at a time.
        """
        _check_movie(movie)
        n = movie.shape[0]
        frames = []
        for t in range(n):
            frames.append(_frame_boxes_fast(np.asarray(movie[t])))
            yield t + 1, n
        yield cls(tuple(movie.shape), frames)

    @classmethod
    def of(cls, movie) -> TrackIndex:
        """The index of ``movie``, built in one call (see :meth:`build`)."""
        *_, index = cls.build(movie)
        return index

    # -- reading ----------------------------------------------------------------------------
    @property
    def n_frames(self) -> int:
        return self.shape[0]

    def labels(self) -> list[int]:
        """Every label present somewhere in the movie, ascending."""
        return sorted(self._frames_of)

    def labels_at(self, t: int) -> dict[int, Box]:
        """The labels of frame ``t`` with their boxes (do not modify)."""
        return self._frames[self._check_t(t)]

    def frames_of(self, label: int) -> list[int]:
        """The frames ``label`` is present in, ascending (empty when it is nowhere)."""
        return sorted(self._frames_of.get(int(label), ()))

    def span(self, label: int) -> tuple[int, int]:
        """First and last frame of ``label``; InputError when it is in no frame."""
        frames = self._frames_of.get(int(label))
        if not frames:
            raise InputError(f"track {label} is in no frame of the movie")
        return min(frames), max(frames)

    def has(self, label: int, t: int) -> bool:
        return int(label) in self._frames[self._check_t(t)]

    def box(self, t: int, label: int) -> Box:
        try:
            return self._frames[self._check_t(t)][int(label)]
        except KeyError:
            raise InputError(f"track {label} is not in frame {t}") from None

    def next_free(self) -> int:
        """One more than the largest label of the movie (1 for an empty movie)."""
        return max(self._frames_of, default=0) + 1

    def lineage(self, parents: Mapping[int, int]) -> np.ndarray:
        """CTC rows ``[label, first, last, parent]`` for every present label, sorted by label.

        A parent that is not present anywhere is written as 0.
        """
        rows = []
        for label in self.labels():
            first, last = self.span(label)
            parent = int(parents.get(label, 0))
            rows.append([label, first, last, parent if parent in self._frames_of else 0])
        return np.asarray(rows, dtype=np.int64).reshape(-1, 4)

    def tracks_data(self) -> np.ndarray:
        """napari Tracks data ``[label, t, y, x]`` (centroids), sorted by label, then time."""
        rows = [
            (label, t, box.y, box.x)
            for t, boxes in enumerate(self._frames)
            for label, box in boxes.items()
        ]
        data = np.asarray(rows, dtype=np.float64).reshape(-1, 4)
        return data[np.lexsort((data[:, 1], data[:, 0]))]

    # -- keeping up with edits --------------------------------------------------------------
    def refresh(self, movie, t: int, labels, region: tuple[slice, slice] | None) -> None:
        """Re-read ``labels`` of frame ``t`` after the pixels in ``region`` were written.

        Each label's new extent lies within its old box joined with ``region``, so only that
        part of the frame is read. ``region=None`` re-reads the whole frame.
        """
        t = self._check_t(t)
        frame = movie[t]
        if region is None:
            new = _frame_boxes_fast(np.asarray(frame))
            changed = set(new) | set(self._frames[t])
        else:
            changed = {int(label) for label in labels if int(label) != 0}
            old = self._frames[t]
            new = dict(old)
            for label in changed:
                box = _join(old[label], region) if label in old else region
                crop = np.asarray(frame[box])
                found = _frame_boxes(
                    np.where(crop == label, label, 0), (box[0].start, box[1].start)
                )
                if label in found:
                    new[label] = found[label]
                else:
                    new.pop(label, None)
        self._frames[t] = new
        for label in changed:
            frames = self._frames_of.setdefault(label, set())
            if label in new:
                frames.add(t)
            else:
                frames.discard(t)
            if not frames:
                del self._frames_of[label]

    def _check_t(self, t: int) -> int:
        t = int(t)
        if not 0 <= t < self.shape[0]:
            raise InputError(f"frame {t} is outside the movie's frames 0..{self.shape[0] - 1}")
        return t


def _join(box: Box, region: tuple[slice, slice]) -> tuple[slice, slice]:
    rows, cols = region
    return (
        slice(min(box.rows.start, rows.start), max(box.rows.stop, rows.stop)),
        slice(min(box.cols.start, cols.start), max(box.cols.stop, cols.stop)),
    )
