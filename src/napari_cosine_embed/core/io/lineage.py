"""Lineage tables of label movies: derive them, check them, turn them into napari tracks.

A lineage table is an int64 array of shape (N, 4) with one row per track,
``[label, first_frame, last_frame, parent]``, the Cell Tracking Challenge ``L B E P`` rows
(``parent`` is 0 for a track without a parent). A track is one label that is present in every
frame from ``first_frame`` to ``last_frame`` and in no other frame; a division (or a gap in a
track) starts new labels whose parent is the label that ended before them.

On disk a lineage table is the CTC text file (``man_track.txt``, ``res_track.txt``): one line
``L B E P`` per track, read and written by :func:`read_lineage` and :func:`write_lineage`.

Label movies may be numpy or dask arrays of shape (T, Y, X); they are read one frame at a time,
so a lazy movie is never held in memory as a whole.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..errors import InputError
from ._atomic import atomic_write

__all__ = [
    "check_lineage",
    "lineage_from_labels",
    "lineage_problems",
    "read_lineage",
    "split_track_gaps",
    "tracks_from_labels",
    "validate_ctc_lineage",
    "write_lineage",
]


def _check_movie(labels) -> None:
    if getattr(labels, "ndim", None) != 3:
        raise InputError(
            f"expected a label movie of shape (T, Y, X), got shape {getattr(labels, 'shape', None)}"
        )
    dtype = np.dtype(labels.dtype)
    if not (np.issubdtype(dtype, np.integer) or dtype == np.bool_):
        raise InputError(f"expected integer labels, got dtype {dtype}")


def _frame_labels(frame: np.ndarray) -> np.ndarray:
    """Sorted non-zero labels of one (Y, X) frame, as int64."""
    frame = np.asarray(frame)
    # Objects cover a small part of a frame: sorting only the foreground is much faster.
    fg = frame[frame != 0].astype(np.int64, copy=False)
    if fg.size == 0:
        return np.zeros(0, dtype=np.int64)
    if fg.min() < 0:
        raise InputError(f"labels must be >= 0, found {fg.min()}")
    if fg.max() < 1 << 20:
        return np.flatnonzero(np.bincount(fg)).astype(np.int64)
    return np.unique(fg)


def _presence(labels) -> dict[int, list[int]]:
    """Map each label to the sorted list of frames it appears in."""
    frames: dict[int, list[int]] = {}
    for t in range(labels.shape[0]):
        for lab in _frame_labels(labels[t]).tolist():
            frames.setdefault(lab, []).append(t)
    return frames


def _as_lineage(lineage) -> np.ndarray:
    arr = np.asarray(lineage)
    if arr.size == 0:
        return np.zeros((0, 4), dtype=np.int64)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise InputError(
            f"expected a lineage table of shape (N, 4) [label, first, last, parent], "
            f"got shape {arr.shape}"
        )
    whole = np.issubdtype(arr.dtype, np.integer) or (
        np.issubdtype(arr.dtype, np.floating) and bool(np.all(np.mod(arr, 1) == 0))
    )
    if not whole:
        raise InputError(f"lineage entries must be whole numbers, got dtype {arr.dtype}")
    return arr.astype(np.int64)


def _presence_and_parents(labels, parents: Mapping[int, int] | None):
    """Check the movie; its label -> frames map, and ``parents`` as a dict of labels in it."""
    _check_movie(labels)
    presence = _presence(labels)
    parents = dict(parents or {})
    unknown = sorted(set(parents) - set(presence))
    if unknown:
        raise InputError(f"parents given for labels that are not in the movie: {unknown[:10]}")
    return presence, parents


def lineage_from_labels(labels, *, parents: Mapping[int, int] | None = None) -> np.ndarray:
    """Derive the lineage table of a label movie.

    Parameters
    ----------
    labels : array of shape (T, Y, X)
        Integer label movie (numpy or dask); 0 is background.
    parents : mapping of int to int, optional
        Parent label of each label that has one (0 or absent means no parent). Keys that are
        not in the movie raise :class:`InputError`.

    Returns
    -------
    ndarray of shape (N, 4), int64
        Rows ``[label, first_frame, last_frame, parent]`` sorted by label. A label that
        disappears and reappears keeps one row spanning both; :func:`check_lineage` rejects
        such a movie.

    Examples
    --------
    >>> movie = np.zeros((3, 4, 4), dtype=np.uint16)
    >>> movie[0:2, 0, 0] = 1
    >>> movie[2, 0, 0], movie[2, 3, 3] = 2, 3
    >>> lineage_from_labels(movie, parents={2: 1, 3: 1}).tolist()
    [[1, 0, 1, 0], [2, 2, 2, 1], [3, 2, 2, 1]]
    """
    presence, parents = _presence_and_parents(labels, parents)
    rows = [
        [lab, frames[0], frames[-1], int(parents.get(lab, 0))]
        for lab, frames in sorted(presence.items())
    ]
    if not rows:
        return np.zeros((0, 4), dtype=np.int64)
    return np.asarray(rows, dtype=np.int64)


def split_track_gaps(
    labels, *, parents: Mapping[int, int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Give each gap-separated piece of a track its own label, the CTC way.

    In the CTC format a label covers consecutive frames only; a track that disappears and
    comes back continues under a new label whose parent is the piece before the gap.

    Parameters
    ----------
    labels : array of shape (T, Y, X)
        Integer label movie (numpy or dask); 0 is background.
    parents : mapping of int to int, optional
        Parent label of each label that has one, as in :func:`lineage_from_labels`. A child
        is attached to the last piece of its parent that ends before the child starts.

    Returns
    -------
    labels : ndarray of shape (T, Y, X)
        A relabelled copy; the first piece of each track keeps its label, later pieces get
        new labels above the largest one (the dtype widens to int64 if they do not fit).
    lineage : ndarray of shape (N, 4), int64
        Rows ``[label, first_frame, last_frame, parent]`` sorted by label; it passes
        :func:`check_lineage` whenever every parent ends before its child starts.

    Examples
    --------
    >>> movie = np.zeros((4, 2, 2), dtype=np.uint8)
    >>> movie[[0, 1, 3], 0, 0] = 1
    >>> fixed, lineage = split_track_gaps(movie)
    >>> lineage.tolist(), int(fixed[3, 0, 0])
    ([[1, 0, 1, 0], [2, 3, 3, 1]], 2)
    """
    presence, parents = _presence_and_parents(labels, parents)
    out = np.array(labels)
    next_label = max(presence, default=0) + 1
    pieces: dict[int, list[list[int]]] = {}  # original label -> [[label, first, last], ...]
    for lab, frames in sorted(presence.items()):
        breaks = np.flatnonzero(np.diff(frames) > 1) + 1
        for i, run in enumerate(np.split(np.asarray(frames), breaks)):
            if i == 0:
                new = lab
            else:
                new, next_label = next_label, next_label + 1
            pieces.setdefault(lab, []).append([new, int(run[0]), int(run[-1])])
    if out.dtype == np.bool_:
        out = out.astype(np.uint8)
    if next_label - 1 > np.iinfo(out.dtype).max:
        out = out.astype(np.int64)
    rows = []
    for lab, runs in pieces.items():
        for i, (new, first, last) in enumerate(runs):
            if i > 0:
                block = out[first : last + 1]
                block[block == lab] = new
                parent = runs[i - 1][0]
            else:
                parent = int(parents.get(lab, 0))
                earlier = [r[0] for r in pieces.get(parent, []) if r[2] < first]
                parent = earlier[-1] if earlier else parent
            rows.append([new, first, last, parent])
    lineage = np.asarray(rows, dtype=np.int64).reshape(-1, 4)
    return out, lineage[np.argsort(lineage[:, 0], kind="stable")]


def _table_problems(
    frame_labels: Sequence[np.ndarray], table: np.ndarray, *, allow_gaps: bool = False
) -> list[str]:
    """Every way ``table`` fails to describe a movie whose frames hold ``frame_labels``.

    Works from the labels present in each frame (found once by the caller), so the movie is
    not read again. Problems with the table itself come first, then those against the
    movie in frame order; each label is named once per kind of problem, with a count of the
    other frames concerned.
    """
    n_frames = len(frame_labels)
    problems: list[str] = []
    ids, counts = np.unique(table[:, 0], return_counts=True)
    if np.any(counts > 1):
        problems.append(f"lineage has duplicate labels: {ids[counts > 1][:10].tolist()}")
    rows: dict[int, tuple[int, int, int]] = {}
    for lab, first, last, parent in table.tolist():
        rows.setdefault(lab, (first, last, parent))
    ranges: dict[int, tuple[int, int]] = {}  # rows whose range can be checked against frames
    for lab, (first, last, parent) in rows.items():
        if lab <= 0:
            problems.append(f"lineage label {lab} is not positive")
            continue
        if last < first:
            problems.append(f"label {lab} ends in frame {last}, before it begins in frame {first}")
        elif first < 0 or last >= n_frames:
            problems.append(
                f"label {lab} has frame range {first}..{last}, which is not inside the "
                f"movie's frames 0..{n_frames - 1}"
            )
        else:
            ranges[lab] = (first, last)
        if parent == 0:
            continue
        if parent < 0:
            problems.append(f"label {lab} has a negative parent {parent}")
        elif parent == lab:
            problems.append(f"label {lab} is its own parent")
        elif parent not in rows:
            problems.append(f"label {lab} has parent {parent}, which is not in the lineage")
        elif rows[parent][1] >= first:
            problems.append(
                f"label {lab} starts in frame {first} but its parent {parent} ends in frame "
                f"{rows[parent][1]}; a parent must end before its child starts"
            )

    # (first frame concerned, kind, label, message): kind 0 = present where it should not
    # be, 1 = absent where it should be; sorted, they read like a walk through the movie.
    found: list[tuple[int, int, int, str]] = []

    def misplaced(lab: int, frames: np.ndarray, span: tuple, *, missing: bool, note="") -> None:
        """Note that ``lab`` is in (or missing from) ``frames``, against its range ``span``."""
        if frames.size == 0:
            return
        n = frames.size - 1
        more = f" (and {n} more frame{'s' if n > 1 else ''})" if n else ""
        where, side = ("missing from", "inside") if missing else ("present in", "outside")
        message = (
            f"label {lab} is {where} frame {frames[0]}, {side} its lineage range "
            f"{span[0]}..{span[1]}{more}{note}"
        )
        found.append((int(frames[0]), int(missing), lab, message))

    present = np.concatenate([np.zeros(0, np.int64), *map(np.asarray, frame_labels)])
    frame = np.repeat(np.arange(n_frames), [len(x) for x in frame_labels])
    order = np.lexsort((frame, present))
    present, frame = present[order], frame[order]
    labels, starts = np.unique(present, return_index=True)
    # np.split of an empty movie still gives one (empty) piece, hence the slice.
    frames_of = dict(zip(labels.tolist(), np.split(frame, starts[1:])[: labels.size], strict=True))
    for lab, frames in frames_of.items():
        if lab not in rows:
            message = f"label {lab} is in frame {frames[0]} but has no lineage row"
            found.append((int(frames[0]), 0, lab, message))
    for lab, span in ranges.items():
        first, last = span
        frames = frames_of.get(lab, np.zeros(0, np.int64))
        misplaced(lab, frames[(frames < first) | (frames > last)], span, missing=False)
        expected = np.unique([first, last]) if allow_gaps else np.arange(first, last + 1)
        absent = np.setdiff1d(expected, frames, assume_unique=True)
        note = "" if frames.size else "; it is in no frame at all"
        misplaced(lab, absent, span, missing=True, note=note)
    return problems + [message for *_, message in sorted(found)]


def _summary(problems: Sequence[str], *, listed: int = 5) -> str:
    """The problems as one message: all of them when few, else the first few and a count."""
    if len(problems) == 1:
        return problems[0]
    shown = "; ".join(problems[:listed])
    rest = len(problems) - listed
    return f"{len(problems)} problems: {shown}" + (f"; and {rest} more" if rest > 0 else "")


def lineage_problems(labels, lineage, *, allow_gaps: bool = False) -> list[str]:
    """Every way in which a lineage table fails to describe a label movie.

    Parameters
    ----------
    labels : array of shape (T, Y, X)
        Integer label movie (numpy or dask); 0 is background. Read one frame at a time.
    lineage : array-like of shape (N, 4)
        Rows ``[label, first_frame, last_frame, parent]``.
    allow_gaps : bool, optional
        Accept a label that is missing from frames strictly inside its range (it must still
        be in its first and last frame). CTC ground truth may have such gaps, where a marker
        was not drawn; a CTC result may not.

    Returns
    -------
    list of str
        One plain sentence per problem, empty when the table describes the movie: duplicate
        or non-positive labels, a range that ends before it begins or lies outside the
        movie's frames, an unknown or negative parent, a label that is its own parent, a
        child that does not start after its parent ends, a movie label without a row, a label
        present outside its range or missing from a frame of it.

    Examples
    --------
    >>> movie = np.zeros((3, 4, 4), dtype=np.uint16)
    >>> movie[:, 1, 1] = 5
    >>> lineage_problems(movie, [[5, 0, 2, 0]])
    []
    >>> lineage_problems(movie, [[5, 0, 1, 5]])
    ['label 5 is its own parent', 'label 5 is present in frame 2, outside its lineage range 0..1']
    """
    _check_movie(labels)
    table = _as_lineage(lineage)
    frame_labels = [_frame_labels(labels[t]) for t in range(labels.shape[0])]
    return _table_problems(frame_labels, table, allow_gaps=allow_gaps)


def check_lineage(labels, lineage) -> None:
    """Check that a lineage table describes a label movie exactly.

    Parameters
    ----------
    labels : array of shape (T, Y, X)
        Integer label movie (numpy or dask); 0 is background.
    lineage : array-like of shape (N, 4)
        Rows ``[label, first_frame, last_frame, parent]``.

    Raises
    ------
    InputError
        Naming the problems found (the first few and a count when there are many), as
        :func:`lineage_problems` lists them.

    Examples
    --------
    >>> movie = np.zeros((2, 4, 4), dtype=np.uint16)
    >>> movie[:, 1, 1] = 5
    >>> check_lineage(movie, [[5, 0, 1, 0]])
    >>> check_lineage(movie, [[5, 0, 0, 0]])
    Traceback (most recent call last):
    ...
    napari_cosine_embed.core.errors.InputError: label 5 is present in frame 1, outside its lineage range 0..0
    """
    problems = lineage_problems(labels, lineage)
    if problems:
        raise InputError(_summary(problems))


def validate_ctc_lineage(
    labels, lineage, *, track_file: str | os.PathLike, allow_gaps: bool = False
) -> None:
    """Check a CTC track file (``man_track.txt``, ``res_track.txt``) against its masks.

    Parameters
    ----------
    labels : array of shape (T, Y, X)
        The masks or markers the track file belongs to (numpy or dask).
    lineage : array-like of shape (N, 4)
        The track file's rows ``[label, first_frame, last_frame, parent]``.
    track_file : path-like
        The track file, named in the message.
    allow_gaps : bool, optional
        Accept labels missing from frames strictly inside their range, as CTC ground truth
        may have (see :func:`lineage_problems`).

    Raises
    ------
    InputError
        Naming ``track_file`` and listing the first few problems with their count.
    """
    problems = lineage_problems(labels, lineage, allow_gaps=allow_gaps)
    if problems:
        n_frames = labels.shape[0]
        raise InputError(
            f"{track_file} does not match its {n_frames} mask frames: {_summary(problems)}"
        )


def tracks_from_labels(labels, lineage) -> tuple[np.ndarray, dict[int, list[int]]]:
    """Centroid tracks of a label movie, as data for a napari Tracks layer.

    Parameters
    ----------
    labels : array of shape (T, Y, X)
        Integer label movie (numpy or dask); 0 is background.
    lineage : array-like of shape (N, 4)
        Rows ``[label, first_frame, last_frame, parent]``; the track id is the label.

    Returns
    -------
    data : ndarray of shape (M, 4), float64
        One row ``[track_id, t, y, x]`` per label per frame it is present in, ``(y, x)`` its
        centroid in pixels; sorted by track id, then time.
    graph : dict of int to list of int
        ``{child: [parent]}`` for every lineage row with a parent, when both child and parent
        have at least one centroid (napari rejects graph nodes without track data).

    Examples
    --------
    >>> movie = np.zeros((2, 3, 3), dtype=np.uint8)
    >>> movie[0, 0, 0:2] = 1
    >>> movie[1, 2, 2] = 2
    >>> data, graph = tracks_from_labels(movie, [[1, 0, 0, 0], [2, 1, 1, 1]])
    >>> data.tolist(), graph
    ([[1.0, 0.0, 0.0, 0.5], [2.0, 1.0, 2.0, 2.0]], {2: [1]})
    """
    _check_movie(labels)
    table = _as_lineage(lineage)
    rows = []
    ys, xs = (g.ravel() for g in np.indices(labels.shape[1:]))
    for t in range(labels.shape[0]):
        frame = np.asarray(labels[t]).astype(np.int64, copy=False)
        if frame.size and frame.min() < 0:
            raise InputError(f"labels must be >= 0, found {frame.min()} in frame {t}")
        flat = frame.ravel()
        # Only foreground pixels matter; markers and nuclei cover a small part of a frame.
        fg = np.flatnonzero(flat)
        if fg.size == 0:
            continue
        lab = flat[fg]
        counts = np.bincount(lab)
        present = np.flatnonzero(counts)
        sum_y = np.bincount(lab, weights=ys[fg])[present]
        sum_x = np.bincount(lab, weights=xs[fg])[present]
        n = counts[present]
        rows.append(np.column_stack([present, np.full(present.size, t), sum_y / n, sum_x / n]))
    if rows:
        data = np.concatenate(rows).astype(np.float64)
        data = data[np.lexsort((data[:, 1], data[:, 0]))]
    else:
        data = np.zeros((0, 4), dtype=np.float64)
    have_data = set(np.unique(data[:, 0]).astype(np.int64).tolist())
    graph = {
        int(r[0]): [int(r[3])]
        for r in table
        if r[3] != 0 and r[0] in have_data and r[3] in have_data
    }
    return data, graph


def read_lineage(path: str | os.PathLike) -> np.ndarray:
    """Read a CTC lineage file (``man_track.txt`` / ``res_track.txt``).

    Parameters
    ----------
    path : path-like
        Text file with one ``L B E P`` line per track (spaces or tabs).

    Returns
    -------
    ndarray of shape (N, 4), int64
        Rows ``[label, first_frame, last_frame, parent]`` sorted by label.

    Raises
    ------
    InputError
        Naming the file (and line): missing, unreadable, not text, a line that is not four
        integers, a negative number or label 0. Whether the rows agree with each other and
        with the masks is checked by :func:`validate_ctc_lineage`.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a folder, expected a lineage text file")
    if not path.is_file():
        raise InputError(f"{path}: no such lineage file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{path}: not a lineage text file (byte {exc.object[exc.start]:#04x} at offset "
            f"{exc.start} is not text); expected one line 'L B E P' per track"
        ) from exc
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        try:
            values = [int(f) for f in fields]
        except ValueError:
            values = []
        if len(values) != 4 or any(abs(v) >= 2**62 for v in values):
            raise InputError(
                f"{path}, line {number}: expected four integers 'L B E P', got {line!r}"
            )
        if min(values) < 0:
            raise InputError(
                f"{path}, line {number}: negative number in {line.strip()!r}; label, first "
                f"frame, last frame and parent are all >= 0"
            )
        if values[0] == 0:
            raise InputError(
                f"{path}, line {number}: label 0 in {line.strip()!r}; 0 is the background, "
                f"track labels start at 1"
            )
        rows.append(values)
    table = np.asarray(rows, dtype=np.int64).reshape(-1, 4)
    return table[np.argsort(table[:, 0], kind="stable")]


def write_lineage(path: str | os.PathLike, lineage: np.ndarray, *, overwrite: bool = False) -> Path:
    """Write a lineage table as a CTC text file, atomically.

    Parameters
    ----------
    path : path-like
        Destination text file.
    lineage : array-like of shape (N, 4)
        Non-negative integer rows ``[label, first_frame, last_frame, parent]``.
    overwrite : bool, optional
        Replace an existing file.

    Returns
    -------
    Path
        The written file.
    """
    table = _as_lineage(lineage)
    if table.size and table.min() < 0:
        raise InputError(f"lineage entries must be >= 0, found {table.min()}")
    text = "".join(f"{a} {b} {c} {d}\n" for a, b, c, d in table.tolist())
    return atomic_write(path, lambda tmp: tmp.write_text(text), overwrite=overwrite)
