"""Overlap linking of per-frame instance labels, with divisions moved back where seen late."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from functools import partial

import numpy as np
from scipy import ndimage as ndi
from scipy.optimize import linear_sum_assignment

from ..errors import InputError
from ..grouping import relabel_consecutive
from ._table import _CLEANUP_DOC, TrackingResult, _finish, _overlaps
from .frames import FrameStack
from .pins import Pin, apply_pins, pair_pins, pins_by_frame


def _link_pair(
    a: np.ndarray,
    b: np.ndarray,
    *,
    min_iou: float,
    min_child_overlap: float,
    free_a: np.ndarray | None = None,
    free_b: np.ndarray | None = None,
) -> dict[int, list[int]]:
    """Overlap links ``{i: [j, ...]}`` from ids of frame ``a`` (1..na) to those of ``b``.

    ``free_a``/``free_b`` (boolean, indexed by id) restrict linking to those instances.
    """
    na, nb = int(a.max(initial=0)), int(b.max(initial=0))
    if na == 0 or nb == 0:
        return {}
    inter = _overlaps(a, b, na, nb)
    area_a, area_b = inter.sum(1)[1:], inter.sum(0)[1:]
    inter = inter[1:, 1:].astype(np.float64)
    if free_a is not None:
        inter[~free_a[1:]] = 0
    if free_b is not None:
        inter[:, ~free_b[1:]] = 0
    iou = inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1)
    rows, cols = linear_sum_assignment(iou, maximize=True)
    good = iou[rows, cols] >= min_iou
    children = {int(i): [int(j)] for i, j in zip(rows[good], cols[good], strict=True)}
    parent_of = {j[0]: i for i, j in children.items()}
    # A division: two instances of b that both lie mostly inside one instance of a.
    inside = inter / np.maximum(area_b[None, :], 1) >= min_child_overlap
    for i in np.flatnonzero(inside.sum(1) >= 2):
        cand = [int(j) for j in np.flatnonzero(inside[i]) if parent_of.get(int(j), i) == i]
        if len(cand) < 2:
            continue
        pair = sorted(cand, key=lambda j: -inter[i, j])[:2]
        for j in children.get(int(i), []):
            parent_of.pop(j, None)
        children[int(i)] = pair
        parent_of.update(dict.fromkeys(pair, int(i)))
    return {i + 1: [j + 1 for j in js] for i, js in children.items()}


def frame_for_linking(labels) -> np.ndarray:
    """One frame's labels as :func:`link_labels` links them: ids ``1 .. N`` in order, int32."""
    return relabel_consecutive(np.asarray(labels)).astype(np.int32, copy=False)


def link_pair(
    a, b, *, min_iou: float = 0.3, min_child_overlap: float = 0.5
) -> dict[int, list[int]]:
    """The overlap links of frames ``a -> b`` as :func:`link_labels` first finds them.

    For linking in parallel: computed anywhere (a worker that has just segmented both frames),
    passed to ``link_labels(pair_links=...)``, they save it the overlap and the assignment of
    that pair and give exactly the links it would compute. Ids are those of
    :func:`frame_for_linking`; pins and moved divisions are applied later, by ``link_labels``.
    """
    return _link_pair(
        frame_for_linking(a),
        frame_for_linking(b),
        min_iou=min_iou,
        min_child_overlap=min_child_overlap,
    )


class _RecentFrames:
    """The frames being linked, the last ``keep`` read held decompressed.

    The linking loop reads frames ``t`` and ``t + 1`` and split-back the few before them, once
    per division it tries: from a compressed :class:`~.frames.FrameStack` each read would
    decompress a whole frame again. A frame read here is the same array until it leaves the
    window, so a change to it must be written back (``frames[k] = frame``) at once, as
    :func:`_split_back` does.
    """

    def __init__(self, frames: FrameStack, keep: int) -> None:
        self.frames, self.keep = frames, max(int(keep), 2)
        self._recent: OrderedDict[int, np.ndarray] = OrderedDict()

    def __len__(self) -> int:
        return len(self.frames)

    def _hold(self, t: int, frame: np.ndarray) -> np.ndarray:
        self._recent[t] = frame
        self._recent.move_to_end(t)
        while len(self._recent) > self.keep:
            self._recent.popitem(last=False)
        return frame

    def __getitem__(self, t: int) -> np.ndarray:
        if t in self._recent:
            self._recent.move_to_end(t)
            return self._recent[t]
        return self._hold(t, self.frames[t])

    def __setitem__(self, t: int, frame: np.ndarray) -> None:
        self.frames[t] = frame
        self._hold(t, frame)


def _split_by_seeds(
    mask: np.ndarray, seed_a: np.ndarray, seed_b: np.ndarray, *, depth: float, min_ratio: float
) -> np.ndarray | None:
    """Cut ``mask`` in two along the watershed of its distance transform between two seeds.

    Returns the part grown from ``seed_a`` (the rest grew from ``seed_b``), or None unless
    both seeds touch the mask, the smaller part holds at least ``min_ratio`` of the larger,
    and the cut runs through a neck: each part's highest distance to the edge rises above
    the highest distance on the cut by at least ``depth`` times the mask's highest distance
    (the depth of :func:`~..grouping.postprocess.split_necks`).
    """
    from skimage.segmentation import watershed

    a, b = seed_a & mask, seed_b & mask
    if not a.any() or not b.any():
        return None
    box = ndi.find_objects(mask.astype(np.uint8))[0]
    box = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in box)
    m = mask[box]
    dist = ndi.distance_transform_edt(np.pad(m, 1))[1:-1, 1:-1]
    markers = a[box].astype(np.int32) + 2 * (b[box] & ~a[box])
    parts = watershed(-dist, markers, mask=m)
    part_a = parts == 1
    size_a, size_b = int(part_a.sum()), int((parts == 2).sum())
    if min(size_a, size_b) < min_ratio * max(size_a, size_b) or min(size_a, size_b) == 0:
        return None
    cut = part_a & ndi.binary_dilation(parts == 2)
    saddle = dist[cut].max() if cut.any() else 0.0
    rise = min(dist[part_a].max(), dist[parts == 2].max()) - saddle
    if rise < depth * dist.max():
        return None
    out = np.zeros_like(mask)
    out[box] = part_a
    return out


def _split_back(
    frames: list[np.ndarray],
    edges: list[dict[int, list[int]]],
    t: int,
    *,
    max_frames: int,
    depth: float,
    min_ratio: float,
    link: Callable[[int, np.ndarray, np.ndarray], dict[int, list[int]]],
    pinned: list[dict[int, list[int]]],
) -> None:
    """Move the divisions of ``edges[t]`` (frame t -> t + 1) back while the mother looks like two.

    Daughters often touch for a few frames after mitosis and are segmented as one, so the
    division is seen late. Here the mother of a division at ``t -> t + 1`` is cut in frame
    ``t`` along her daughters (:func:`_split_by_seeds`); if that works the frame's links are
    rebuilt, and the same is tried one frame earlier, at most ``max_frames`` frames back.
    A pinned object (``pinned[t]``: ``{i: [j, ...]}`` of the pair ``t, t + 1``) is never cut.
    ``frames`` and ``edges`` are changed in place.

    Each try reads only the box around the mother and her daughters (the boxes of a frame's
    objects are found once, and again only after a cut), not whole frames: a dense movie has
    hundreds of divisions to try.
    """
    boxes: dict[int, list] = {}

    def box_of(k: int, node: int) -> tuple[slice, slice] | None:
        if k not in boxes:
            boxes[k] = ndi.find_objects(frames[k])
        found = boxes[k]
        return found[node - 1] if 0 < node <= len(found) else None

    for mother, kids in list(edges[t].items()):
        if len(kids) != 2:
            continue
        k, node, pair = t, mother, kids
        for _ in range(max_frames):
            held = k > 0 and any(node in js for js in pinned[k - 1].values())
            if node in pinned[k] or held:
                break
            parts = [box_of(k, node), box_of(k + 1, pair[0]), box_of(k + 1, pair[1])]
            if any(b is None for b in parts):
                break  # an object with no pixel: nothing to cut
            frame = frames[k]  # (a copy when the frames are kept compressed)
            height, width = frame.shape
            region = (
                slice(max(min(b[0].start for b in parts) - 1, 0),
                      min(max(b[0].stop for b in parts) + 1, height)),
                slice(max(min(b[1].start for b in parts) - 1, 0),
                      min(max(b[1].stop for b in parts) + 1, width)),
            )  # fmt: skip
            here, nxt = frame[region], frames[k + 1][region]
            mask = here == node
            part = _split_by_seeds(
                mask, nxt == pair[0], nxt == pair[1], depth=depth, min_ratio=min_ratio
            )
            if part is None:
                break
            new = len(boxes[k]) + 1  # find_objects lists every id up to the frame's largest
            here[mask & ~part] = new  # a view of the frame
            frames[k] = frame
            boxes.pop(k)
            edges[k][node] = [pair[0]]
            edges[k][new] = [pair[1]]
            if k == 0:
                break
            edges[k - 1] = link(k - 1, frames[k - 1], frames[k])
            before = [p for p, js in edges[k - 1].items() if sorted(js) == sorted([node, new])]
            if not before:
                break
            k, node, pair = k - 1, before[0], edges[k - 1][before[0]]


def link_labels(
    labels,
    *,
    min_iou: float = 0.3,
    min_child_overlap: float = 0.5,
    min_track_length: int = 1,
    min_split_frames: int = 1,
    min_child_ratio: float = 0.0,
    max_gap: int = 0,
    max_gap_distance: float = 20.0,
    split_back: int = 0,
    split_back_depth: float = 0.05,
    pins: Iterable[Pin] = (),
    lazy: bool = False,
    pair_links: Mapping[int, Mapping[int, list[int]]] | None = None,
) -> TrackingResult:
    """Link per-frame instance labels into tracks by overlap.

    Parameters
    ----------
    labels : array of shape (T, Y, X)
        Integer instance labels per frame (numpy or dask); ids need not agree across frames.
        0 is background; an id counts as one instance even if its pixels are not connected.
    min_iou : float
        Smallest IoU of a continuation (one-to-one Hungarian assignment on IoU).
    min_child_overlap : float
        A division is two instances of ``t + 1`` with at least this fraction of their pixels
        inside one instance of ``t`` (and not continuing another instance).
    split_back : int
        Daughters that still touch after mitosis are often segmented as one for a few
        frames, so their division is seen late. At most this many frames before a division,
        the mother is cut along her daughters' masks while the cut runs through a neck (see
        ``split_back_depth``), moving the division back to where she first looks like two
        nuclei. Two nuclei that touched for a while and part again are separated the same way
        (then linked to their own tracks, with no division). 0 cuts nothing.
    split_back_depth : float
        Smallest neck of such a cut, in [0, 1): each part's largest distance to the edge must
        exceed the largest on the cut by this fraction of the mother's largest distance.
    pins : iterable of Pin
        Links to keep (:mod:`.pins`): the objects under each pin's points are linked, take part
        in no other link, are never cut, and their tracks are left alone by the clean-up. Pins
        no object holds are listed in the result's ``missed_pins``.
    lazy : bool
        For a long movie: keep the frames compressed while tracking (:mod:`.frames`; a few
        tens of kB per 1024 x 1024 frame instead of 4 MB) and return the labels as
        :class:`~.frames.RelabelledFrames`, relabelled as each frame is read, so that memory
        does not grow with the movie's length. ``labels`` may then be read frame by frame
        from anywhere (a :class:`~.frames.FrameStack`, zarr, dask).
    pair_links : mapping of int to links, optional
        Links of some frame pairs ``t -> t + 1`` computed beforehand with :func:`link_pair`
        (with this call's ``min_iou`` and ``min_child_overlap``), e.g. in parallel on the
        workers that segmented the frames. They are used as found, so the result is the same
        as without them; pairs not given are linked here.
    {cleanup}

    Returns
    -------
    TrackingResult

    Examples
    --------
    >>> movie = np.zeros((3, 8, 8), np.uint8)
    >>> movie[0, 1:7, 1:5], movie[1, 1:7, 1:5] = 5, 9
    >>> movie[2, 1:4, 1:5], movie[2, 4:7, 1:5] = 1, 2
    >>> link_labels(movie).lineage.tolist()
    [[1, 0, 1, 0], [2, 2, 2, 1], [3, 2, 2, 1]]
    """
    if getattr(labels, "ndim", None) != 3:
        raise InputError(f"labels must have shape (T, Y, X), got {getattr(labels, 'shape', None)}")
    if split_back < 0 or not 0.0 <= split_back_depth < 1.0:
        raise InputError(
            f"split_back must be >= 0 and split_back_depth in [0, 1), got {split_back} and "
            f"{split_back_depth}"
        )
    frames = FrameStack(tuple(labels.shape[1:]), compressed=lazy)
    for t in range(labels.shape[0]):
        frames.append(frame_for_linking(labels[t]))
    link = partial(_link_pair, min_iou=min_iou, min_child_overlap=min_child_overlap)
    grouped = pins_by_frame(pins)
    pinned: list[dict[int, list[int]]] = [{} for _ in range(max(len(frames) - 1, 0))]
    missed = [p for t, ps in grouped.items() if not 0 <= t < len(frames) - 1 for p in ps]
    for t in [t for t in grouped if 0 <= t < len(frames) - 1]:
        pinned[t], lost = pair_pins(frames[t], frames[t + 1], grouped[t])
        missed.extend(lost)

    def link_t(t: int, a, b, found=None) -> dict[int, list[int]]:
        links = link(a, b) if found is None else {i: list(js) for i, js in found.items()}
        if not pinned[t]:
            return links
        return apply_pins(
            links,
            pinned[t],
            lambda free_a, free_b: link(a, b, free_a=free_a, free_b=free_b),
            int(a.max(initial=0)),
            int(b.max(initial=0)),
        )

    given = pair_links or {}
    edges = []
    recent = _RecentFrames(frames, split_back + 2)  # t + 1 back to t - split_back
    for t in range(len(frames) - 1):
        # frames t and t + 1 are still as segmented here (only _split_back cuts, and only
        # frames up to t, after this): links of the pair found beforehand are the same
        found = given.get(t)
        if found is None or pinned[t]:
            edges.append(link_t(t, recent[t], recent[t + 1], found))
        else:
            edges.append(link_t(t, None, None, found))
        if split_back > 0:
            _split_back(
                recent,
                edges,
                t,
                max_frames=split_back,
                depth=split_back_depth,
                min_ratio=min_child_ratio,
                link=link_t,
                pinned=pinned,
            )
    return _finish(
        frames,
        edges,
        min_track_length=min_track_length,
        min_split_frames=min_split_frames,
        min_child_ratio=min_child_ratio,
        max_gap=max_gap,
        max_gap_distance=max_gap_distance,
        pinned=pinned,
        missed_pins=missed,
    )


link_labels.__doc__ = link_labels.__doc__.replace("{cleanup}", _CLEANUP_DOC)
