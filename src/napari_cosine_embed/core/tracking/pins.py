"""Pinned links: links and divisions a user made or confirmed, kept when tracking runs again.

A pin joins an object of frame ``t`` to one of frame ``t + 1``. It is held by a point inside
each object (the pixel farthest from the object's edge), not by label ids, so it survives a new
segmentation of the movie (after fine-tuning, say): the objects under the two points are linked
whatever their ids. Two pins from one object are a division. A tracker given pins links those
objects first, solves the rest around them (the pinned objects take part in no other link), and
its clean-up leaves tracks that hold a pinned link alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from ..errors import InputError

__all__ = [
    "Pin",
    "apply_pins",
    "inner_point",
    "pair_pins",
    "pinned_links",
    "pins_by_frame",
    "pins_from_tracks",
    "read_pins",
    "scale_pins",
    "write_pins",
]


@dataclass(frozen=True)
class Pin:
    """A link from the object at ``source`` in frame ``t`` to the one at ``target`` in ``t + 1``.

    Attributes
    ----------
    t : int
        Frame of the source object.
    source, target : tuple of int
        ``(y, x)`` of a pixel inside each object.
    """

    t: int
    source: tuple[int, int]
    target: tuple[int, int]

    def as_list(self) -> list[int]:
        """``[t, y, x, y', x']``, for JSON."""
        return [self.t, *self.source, *self.target]

    @classmethod
    def from_list(cls, values: Iterable[int]) -> Pin:
        t, y0, x0, y1, x1 = (int(v) for v in values)
        return cls(t, (y0, x0), (y1, x1))


def inner_point(mask: np.ndarray) -> tuple[int, int]:
    """The pixel of ``mask`` farthest from its edge (the first such, in raster order)."""
    rows, cols = np.nonzero(mask)
    if not rows.size:
        raise InputError("an empty mask has no inner point")
    r0, c0 = rows.min(), cols.min()
    crop = np.pad(mask[r0 : rows.max() + 1, c0 : cols.max() + 1], 1)
    dist = ndi.distance_transform_edt(crop)
    y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return int(y - 1 + r0), int(x - 1 + c0)


def pinned_links(lineage: np.ndarray) -> list[tuple[int, int, int]]:
    """Every link of a lineage as ``(t, label at t, label at t + 1)``: a track's consecutive
    frames, and each parent's last frame to its child's first (when they are consecutive)."""
    rows = {int(r[0]): (int(r[1]), int(r[2]), int(r[3])) for r in np.asarray(lineage)}
    links = []
    for label, (first, last, parent) in rows.items():
        links.extend((t, label, label) for t in range(first, last))
        if parent and parent in rows and rows[parent][1] == first - 1:
            links.append((first - 1, parent, label))
    return sorted(links)


def pins_from_tracks(
    labels, lineage, *, frames: Iterable[int] | None = None, tracks: Iterable[int] | None = None
) -> list[Pin]:
    """Pins for the links of a tracked movie, all of them or those in chosen frames or tracks.

    Parameters
    ----------
    labels : array of shape (T, Y, X), int
        One label per track (numpy or dask).
    lineage : array-like of shape (N, 4)
        Rows ``[label, first, last, parent]``.
    frames : iterable of int, optional
        Keep links whose two frames are both among these (e.g. the curated frames).
    tracks : iterable of int, optional
        Keep links that touch these tracks.

    Returns
    -------
    list of Pin
    """
    links = pinned_links(np.asarray(lineage).reshape(-1, 4))
    if frames is not None:
        chosen = {int(t) for t in frames}
        links = [link for link in links if link[0] in chosen and link[0] + 1 in chosen]
    if tracks is not None:
        chosen = {int(k) for k in tracks}
        links = [link for link in links if link[1] in chosen or link[2] in chosen]
    points: dict[tuple[int, int], tuple[int, int]] = {}

    def point(t: int, label: int) -> tuple[int, int]:
        if (t, label) not in points:
            frame = np.asarray(labels[t])
            slices = ndi.find_objects((frame == label).astype(np.uint8))
            if not slices:
                raise InputError(f"track {label} is not in frame {t}, as its lineage says")
            box = slices[0]
            y, x = inner_point(frame[box] == label)
            points[(t, label)] = (y + box[0].start, x + box[1].start)
        return points[(t, label)]

    return [Pin(t, point(t, a), point(t + 1, b)) for t, a, b in links]


def pins_by_frame(pins: Iterable[Pin]) -> dict[int, list[Pin]]:
    """The pins grouped by the frame of their source, each group in a fixed order."""
    grouped: dict[int, list[Pin]] = {}
    for pin in sorted(set(pins), key=lambda p: (p.t, p.source, p.target)):
        grouped.setdefault(pin.t, []).append(pin)
    return grouped


def pair_pins(
    a: np.ndarray, b: np.ndarray, pins: Iterable[Pin]
) -> tuple[dict[int, list[int]], list[Pin]]:
    """The pins of one frame pair as node links ``{i: [j, ...]}``, and those no object holds.

    ``a`` and ``b`` are the instance ids of frames ``t`` and ``t + 1``. A pin whose point falls
    outside the frame or on the background of the (new) segmentation, or one that would give
    an object a second parent, is returned as missed.
    """
    links: dict[int, list[int]] = {}
    parent_of: dict[int, int] = {}
    missed = []
    for pin in pins:
        inside = all(0 <= v < s for v, s in zip(pin.source, a.shape, strict=True))
        inside &= all(0 <= v < s for v, s in zip(pin.target, b.shape, strict=True))
        i = int(a[pin.source]) if inside else 0
        j = int(b[pin.target]) if inside else 0
        if i == 0 or j == 0 or parent_of.get(j, i) != i:
            missed.append(pin)
            continue
        kids = links.setdefault(i, [])
        if j not in kids:
            kids.append(j)
        parent_of[j] = i
    return links, missed


def apply_pins(
    links: Mapping[int, list[int]],
    pinned: Mapping[int, list[int]],
    relink: Callable[[np.ndarray, np.ndarray], dict[int, list[int]]],
    n_a: int,
    n_b: int,
) -> dict[int, list[int]]:
    """One frame pair's links with its pins imposed and the rest solved again around them.

    ``links`` are the tracker's links, ``pinned`` the pins (both ``{i: [j, ...]}``); every
    link touching a pinned node is dropped, the pins are added, and ``relink(free_a, free_b)``
    (boolean masks by id, 0 included) links the nodes this left without a link.
    """
    if not pinned:
        return dict(links)
    sources = set(pinned)
    targets = {j for js in pinned.values() for j in js}
    kept = {i: [j for j in js if j not in targets] for i, js in links.items() if i not in sources}
    kept = {i: js for i, js in kept.items() if js}
    free_a = np.ones(n_a + 1, bool)
    free_b = np.ones(n_b + 1, bool)
    free_a[0] = free_b[0] = False
    free_a[list(sources) + list(kept)] = False
    free_b[list(targets) + [j for js in kept.values() for j in js]] = False
    if free_a.any() and free_b.any():
        for i, js in relink(free_a, free_b).items():
            kept.setdefault(i, []).extend(js)
    kept.update({i: list(js) for i, js in pinned.items()})
    return kept


def scale_pins(pins: Iterable[Pin], scale: float) -> list[Pin]:
    """The pins for frames resized by ``scale`` (points land on the same objects)."""
    if scale == 1:
        return list(pins)

    def at(point: tuple[int, int]) -> tuple[int, int]:
        return int(point[0] * scale), int(point[1] * scale)

    return [Pin(p.t, at(p.source), at(p.target)) for p in pins]


def write_pins(path, pins: Iterable[Pin], *, overwrite: bool = True) -> None:
    """Write pins as JSON, ``{"pins": [[t, y, x, y', x'], ...]}``, atomically."""
    import json

    from ..io._atomic import atomic_write

    text = json.dumps({"pins": [p.as_list() for p in pins]}) + "\n"
    atomic_write(path, lambda tmp: tmp.write_text(text), overwrite=overwrite)


def read_pins(path) -> list[Pin]:
    """Pins from a JSON file (:func:`write_pins`), or every link of a tracked movie on disk.

    Parameters
    ----------
    path : path-like
        A ``.json`` file of pins, or a CTC result folder, CTC ground truth or GEFF whose
        links all become pins (a curated result, say).

    Raises
    ------
    InputError
        Unreadable or malformed.
    """
    import json
    from pathlib import Path

    from ..io.tracked import is_tracked, read_tracked

    path = Path(path)
    if path.is_dir() and is_tracked(path):
        tracked = read_tracked(path)
        if tracked.labels is None:
            raise InputError(f"{path}: tracks without a segmentation cannot be pinned")
        return pins_from_tracks(tracked.labels, tracked.lineage)
    try:
        content = json.loads(path.read_text())
        return [Pin.from_list(values) for values in content["pins"]]
    except OSError as exc:
        raise InputError(f"{path}: cannot read pins ({exc.strerror or exc})") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(
            f"{path}: not a pins file ({{\"pins\": [[t, y, x, y', x'], ...]}}): {exc}"
        ) from None
