"""Tracks as GEFF (the Graph Exchange File Format of the tracking tools), through ``geff``.

**Written.** A tracked label movie and its lineage become a graph with one node per object per
frame (properties ``t``, ``y``, ``x`` (centroid, pixels), ``area``, ``track_id`` (the label)
and ``seg_id`` (its value in the segmentation)), an edge from each node to the same track's
node in the next frame, and one from the last node of a parent to the first node of each
child. The segmentation goes with it as a (T, Y, X) label array named in the metadata's
``related_objects`` (``type: labels``, ``node_prop: seg_id``). Two layouts, by the path's
suffix:

- ``OUT.zarr``: a Zarr group holding the graph in ``tracks.geff`` and the labels in
  ``segmentation`` beside it (the layout motile-tracker exports and the spec recommends);
- ``OUT.geff``: the graph is the group itself, the labels its member ``segmentation``.

**Read.** Any GEFF whose nodes carry a time and two spatial axes: the group itself, or a Zarr
group holding one GEFF group. Tracks are rebuilt from the graph, the CTC way: an edge from a
node with one successor to a node with one predecessor in the next frame continues a track;
every other edge (a division, or a link across missing frames) starts a child track whose
parent is the source's track. When the file names a track property
(``track_node_props.tracklet``) that agrees with those tracks, its values are kept as the
labels, so a movie written here reads back with its own labels; otherwise tracks are numbered
from 1. The labels are painted from the related segmentation (by its ``node_prop``, or node
ids when it names none); a file without one gives tracks without labels.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ._atomic import atomic_folder
from .lineage import _as_lineage, _check_movie, check_lineage, lineage_from_labels

__all__ = ["GEFF_SUFFIXES", "GeffTracks", "find_geff_group", "is_geff", "read_geff", "write_geff"]

GEFF_SUFFIXES = (".geff", ".zarr")
GRAPH_NAME = "tracks.geff"
LABELS_NAME = "segmentation"


@dataclass
class GeffTracks:
    """Tracks read from a GEFF.

    Attributes
    ----------
    labels : ndarray of shape (T, Y, X) or None
        Label movie, one label per track (None when the file holds no segmentation).
    lineage : ndarray of shape (N, 4), int64
        Rows ``[label, first_frame, last_frame, parent]``.
    tracks : ndarray of shape (M, 4), float64
        napari Tracks data ``[label, t, y, x]``: one row per node, in pixels.
    graph : dict of int to list of int
        napari Tracks graph ``{child: [parent]}``.
    source : Path
        The GEFF group read.
    notes : list of str
        What the reader had to adapt (renumbered tracks, segmentation pixels of no node).
    """

    labels: np.ndarray | None
    lineage: np.ndarray
    tracks: np.ndarray
    graph: dict[int, list[int]]
    source: Path
    notes: list[str] = field(default_factory=list)


# --- finding a GEFF ---------------------------------------------------------------------------


def _geff_attrs(path: Path) -> bool:
    """Whether the Zarr group at ``path`` carries GEFF metadata (Zarr v2 or v3)."""
    import json

    for name, key in ((".zattrs", None), ("zarr.json", "attributes")):
        meta = path / name
        if meta.is_file():
            try:
                attrs = json.loads(meta.read_text())
            except (OSError, ValueError):
                return False
            attrs = attrs.get(key, {}) if key else attrs
            if isinstance(attrs, dict) and "geff" in attrs:
                return True
    return False


def find_geff_group(path: str | os.PathLike) -> Path | None:
    """The GEFF group at ``path``: the folder itself, or the one GEFF group directly inside it."""
    path = Path(path)
    if not path.is_dir():
        return None
    if _geff_attrs(path):
        return path
    found = [child for child in sorted(path.iterdir()) if child.is_dir() and _geff_attrs(child)]
    return found[0] if len(found) == 1 else None


def is_geff(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a GEFF group or a Zarr group holding exactly one."""
    return find_geff_group(path) is not None


# --- writing ----------------------------------------------------------------------------------


def _nodes(labels) -> tuple[np.ndarray, np.ndarray]:
    """``[label, t]`` (int64) and ``[y, x, area]`` (float64) of every object in every frame."""
    keys, values = [], []
    height, width = labels.shape[1:]
    ys, xs = np.divmod(np.arange(height * width), width)
    for t in range(labels.shape[0]):
        flat = np.asarray(labels[t]).ravel()
        fg = np.flatnonzero(flat)
        if not fg.size:
            continue
        present, inverse, counts = np.unique(flat[fg], return_inverse=True, return_counts=True)
        sum_y = np.bincount(inverse, weights=ys[fg])
        sum_x = np.bincount(inverse, weights=xs[fg])
        keys.append(np.column_stack([present.astype(np.int64), np.full(present.size, t)]))
        values.append(np.column_stack([sum_y / counts, sum_x / counts, counts]))
    if not keys:
        return np.zeros((0, 2), np.int64), np.zeros((0, 3))
    keys, values = np.concatenate(keys), np.concatenate(values)
    order = np.lexsort((keys[:, 1], keys[:, 0]))
    return keys[order], values[order]


def write_geff(path: str | os.PathLike, labels, lineage=None, *, overwrite: bool = False) -> Path:
    """Write a tracked label movie and its lineage as a GEFF with its segmentation.

    Parameters
    ----------
    path : path-like
        ``*.zarr`` (a group with ``tracks.geff`` and ``segmentation``) or ``*.geff`` (the
        graph group, holding ``segmentation``). Built in a temporary sibling, moved into place
        when complete.
    labels : array of shape (T, Y, X), int
        One label per track (numpy or dask; read one frame at a time).
    lineage : array-like of shape (N, 4), optional
        Rows ``[label, first, last, parent]``; derived from ``labels`` (no parents) when
        omitted. Checked against ``labels``.
    overwrite : bool
        Replace an existing ``path``.

    Returns
    -------
    Path
        The GEFF group written (``path/tracks.geff`` or ``path``).
    """
    import geff_spec
    import zarr
    from geff.core_io import write_arrays

    path = Path(path)
    if not path.name.lower().endswith(GEFF_SUFFIXES):
        raise InputError(f"{path}: a GEFF is written to a folder named *.geff or *.zarr")
    _check_movie(labels)
    lineage = lineage_from_labels(labels) if lineage is None else _as_lineage(lineage)
    check_lineage(labels, lineage)
    keys, values = _nodes(labels)
    node_ids = np.arange(len(keys), dtype=np.uint64)
    same_track = (keys[1:, 0] == keys[:-1, 0]) if len(keys) else np.zeros(0, bool)
    edges = [np.column_stack([node_ids[:-1][same_track], node_ids[1:][same_track]])]
    first_node = {int(k): i for i, k in reversed(list(enumerate(keys[:, 0])))}
    last_node = {int(k): i for i, k in enumerate(keys[:, 0])}
    links = [(last_node[int(p)], first_node[int(c)]) for c, _, _, p in lineage if p]
    edges.append(np.asarray(links, dtype=np.uint64).reshape(-1, 2))
    edge_ids = np.concatenate(edges).astype(np.uint64)
    container = path.name.lower().endswith(".zarr")
    metadata = geff_spec.GeffMetadata(
        geff_version=geff_spec.__version__,
        directed=True,
        axes=[
            geff_spec.Axis(name="t", type="time"),
            geff_spec.Axis(name="y", type="space"),
            geff_spec.Axis(name="x", type="space"),
        ],
        node_props_metadata={},
        edge_props_metadata={},
        track_node_props={"tracklet": "track_id"},
        related_objects=[
            geff_spec.RelatedObject(
                type="labels",
                path=f"../{LABELS_NAME}" if container else LABELS_NAME,
                node_prop="seg_id",
            )
        ],
    )

    def prop(values: np.ndarray) -> dict[str, Any]:
        return {"values": values, "missing": None}

    node_props = {
        "t": prop(keys[:, 1].astype(np.int64)),
        "y": prop(values[:, 0]),
        "x": prop(values[:, 1]),
        "area": prop(values[:, 2].astype(np.int64)),
        "track_id": prop(keys[:, 0].astype(np.int64)),
        "seg_id": prop(keys[:, 0].astype(np.int64)),
    }
    with atomic_folder(path, overwrite=overwrite) as tmp:
        graph_at = tmp / GRAPH_NAME if container else tmp
        if container:
            zarr.open_group(str(tmp), mode="w", zarr_format=2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # zarr/geff on the labels member
            write_arrays(
                str(graph_at),
                node_ids,
                node_props,
                edge_ids,
                None,
                metadata,
                zarr_format=2,
                overwrite=True,  # into our own fresh temporary folder
            )
            dtype = np.dtype(labels.dtype)
            out = zarr.open_array(
                str(tmp / LABELS_NAME),
                mode="w",
                shape=tuple(labels.shape),
                chunks=(1, *labels.shape[1:]),
                dtype=dtype if dtype.kind in "ui" else np.uint32,
                zarr_format=2,
            )
            for t in range(labels.shape[0]):
                out[t] = np.asarray(labels[t])
    return path / GRAPH_NAME if container else path


# --- reading ----------------------------------------------------------------------------------


def _prop(memory: dict, name: str) -> np.ndarray | None:
    entry = memory["node_props"].get(name)
    if entry is None:
        return None
    values = np.asarray(entry["values"])
    missing = entry.get("missing")
    if missing is not None and np.any(missing):
        raise InputError(f"node property {name!r} is missing for {int(np.sum(missing))} nodes")
    return values


def _axes(metadata) -> tuple[str, list[str]]:
    axes = list(metadata.axes or [])
    time = [a.name for a in axes if a.type == "time"]
    space = [a.name for a in axes if a.type == "space"]
    if not axes:  # no axes recorded: the common names
        time, space = ["t"], ["y", "x"]
    if len(time) != 1:
        raise InputError("the GEFF's nodes need exactly one time axis to be read as tracks")
    if len(space) != 2:
        raise InputError(
            f"the GEFF's nodes have {len(space)} spatial axes ({', '.join(space)}); only 2D "
            f"movies (y, x) can be read here"
        )
    return time[0], space


def _tracklets(t: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, dict[int, int]]:
    """Track index of every node and ``{child track: parent track}`` from the edges."""
    n = t.size
    indeg = np.bincount(edges[:, 1], minlength=n)
    outdeg = np.bincount(edges[:, 0], minlength=n)
    if np.any(indeg > 1):
        node = int(np.flatnonzero(indeg > 1)[0])
        raise InputError(
            f"node {node} has {int(indeg[node])} predecessors (a merge): a lineage cannot hold "
            f"it; fix the graph first"
        )
    back = edges[t[edges[:, 1]] <= t[edges[:, 0]]]
    if back.size:
        raise InputError(f"edge {back[0].tolist()} does not go forward in time")
    previous = np.full(n, -1)
    previous[edges[:, 1]] = edges[:, 0]
    track = np.full(n, -1)
    parent_of: dict[int, int] = {}
    count = 0
    for node in np.argsort(t, kind="stable").tolist():
        source = int(previous[node])
        if source >= 0 and outdeg[source] == 1 and t[node] == t[source] + 1:
            track[node] = track[source]
            continue
        track[node] = count
        if source >= 0:
            parent_of[count] = int(track[source])
        count += 1
    return track, parent_of


def _segmentation(group: Path, metadata):
    """The related labels array and the node property that indexes it, or (None, None)."""
    import zarr

    related = [r for r in (metadata.related_objects or []) if r.type == "labels"]
    if not related:
        return None, None
    obj = related[0]
    where = (group / obj.path).resolve()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        key = obj.node_prop or getattr(obj, "label_prop", None)
    if not where.exists():
        raise InputError(f"the GEFF's segmentation {obj.path!r} is not at {where}")
    try:
        array = zarr.open_array(str(where), mode="r")
    except Exception as exc:  # zarr raises several kinds for a folder that is no array
        raise InputError(f"{where}: cannot read the GEFF's segmentation: {exc}") from exc
    if not np.issubdtype(array.dtype, np.integer):
        raise InputError(f"{where}: segmentation of dtype {array.dtype} is not labels")
    shape = tuple(array.shape)
    extra = [i for i, s in enumerate(shape[1:-2], start=1) if s != 1]
    if len(shape) < 3 or extra:
        raise InputError(f"{where}: segmentation of shape {shape} is not a 2D movie (T, Y, X)")
    return array, key


def read_geff(path: str | os.PathLike) -> GeffTracks:
    """Read tracks, their lineage and (when there is one) their segmentation from a GEFF.

    Parameters
    ----------
    path : path-like
        A GEFF group, or a Zarr group holding one (e.g. motile-tracker's export).

    Returns
    -------
    GeffTracks

    Raises
    ------
    InputError
        No GEFF there, or one that cannot be a lineage of a 2D movie: not 2D, a node with
        two predecessors (a merge), an edge backwards in time, a segmentation that does not
        match the nodes.
    """
    from geff.core_io import read_to_memory

    group = find_geff_group(path)
    if group is None:
        raise InputError(f"{path}: no GEFF here (no Zarr group with GEFF metadata)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            memory = read_to_memory(str(group))
    except (ValueError, KeyError, OSError) as exc:
        raise InputError(f"{group}: not a valid GEFF: {exc}") from exc
    metadata = memory["metadata"]
    time_name, (y_name, x_name) = _axes(metadata)
    ids = np.asarray(memory["node_ids"]).astype(np.int64)
    t = _prop(memory, time_name)
    if t is None or _prop(memory, y_name) is None:
        raise InputError(f"{group}: nodes have no {time_name!r}, {y_name!r} properties")
    t = np.rint(t).astype(np.int64)
    y, x = _prop(memory, y_name).astype(float), _prop(memory, x_name).astype(float)
    position = {int(node): i for i, node in enumerate(ids)}
    raw_edges = np.asarray(memory["edge_ids"]).astype(np.int64).reshape(-1, 2)
    try:
        edges = np.vectorize(position.__getitem__, otypes=[np.int64])(raw_edges)
    except KeyError as exc:
        raise InputError(f"{group}: an edge names node {exc}, which is not a node") from None
    edges = edges.reshape(-1, 2)
    if t.size and t.min() < 0:
        raise InputError(f"{group}: node times must be >= 0, found {t.min()}")
    track, parent_of = _tracklets(t, edges)
    notes: list[str] = []

    # Labels: the file's own track ids when they name exactly these tracks.
    n_tracks = int(track.max()) + 1 if track.size else 0
    label_of = np.arange(1, n_tracks + 1)
    track_key = (metadata.track_node_props or {}).get("tracklet")
    given = _prop(memory, track_key) if track_key else None
    if given is not None and n_tracks:
        given = np.asarray(given).astype(np.int64)
        per_track = [np.unique(given[track == k]) for k in range(n_tracks)]
        candidate = None
        if all(v.size == 1 for v in per_track):
            values = np.array([int(v[0]) for v in per_track])
            if values.min() > 0 and np.unique(values).size == n_tracks:
                candidate = values
        if candidate is None:
            notes.append(
                f"the file's {track_key!r} does not name one track per label; tracks were "
                f"numbered 1..{n_tracks}"
            )
        else:
            label_of = candidate
    node_label = label_of[track] if track.size else np.zeros(0, np.int64)
    first = np.full(n_tracks, np.iinfo(np.int64).max)
    last = np.full(n_tracks, -1)
    np.minimum.at(first, track, t)
    np.maximum.at(last, track, t)
    lineage = np.array(
        [
            [label_of[k], first[k], last[k], label_of[parent_of[k]] if k in parent_of else 0]
            for k in range(n_tracks)
        ],
        dtype=np.int64,
    ).reshape(-1, 4)
    lineage = lineage[np.argsort(lineage[:, 0], kind="stable")]
    tracks = np.column_stack([node_label, t, y, x]).astype(np.float64)
    tracks = tracks[np.lexsort((tracks[:, 1], tracks[:, 0]))]
    graph = {int(c): [int(p)] for c, _, _, p in lineage if p}

    labels = None
    array, key = _segmentation(group, metadata)
    if array is not None:
        seg_ids = ids if key is None else _prop(memory, key)
        if seg_ids is None:
            raise InputError(f"{group}: nodes have no {key!r} property for the segmentation")
        labels = _paint(array, np.asarray(seg_ids).astype(np.int64), t, node_label, notes)
        check_lineage(labels, lineage)
    return GeffTracks(labels, lineage, tracks, graph, group, notes)


def _paint(array, seg_ids, t, node_label, notes) -> np.ndarray:
    """The label movie: each frame's segment ids replaced by their nodes' track labels."""
    n_frames = max(int(array.shape[0]), int(t.max()) + 1 if t.size else 0)
    if n_frames > array.shape[0]:
        raise InputError(
            f"nodes reach frame {int(t.max())}, but the segmentation has {array.shape[0]} frames"
        )
    top = int(node_label.max()) if node_label.size else 0
    dtype = np.uint16 if top <= np.iinfo(np.uint16).max else np.uint32
    height, width = array.shape[-2:]
    labels = np.zeros((n_frames, height, width), dtype)
    stray = 0
    for frame in range(n_frames):
        seg = np.asarray(array[frame]).reshape(height, width)
        here = t == frame
        keys, values = seg_ids[here], node_label[here]
        if np.unique(keys).size != keys.size:
            raise InputError(f"two nodes of frame {frame} share a segmentation id")
        order = np.argsort(keys)
        keys, values = keys[order], values[order]
        flat = seg.ravel()
        fg = np.flatnonzero(flat)
        if not fg.size:
            continue
        found = flat[fg].astype(np.int64)
        at = np.clip(np.searchsorted(keys, found), 0, max(keys.size - 1, 0))
        hit = keys.size > 0
        known = (keys[at] == found) if hit else np.zeros(found.size, bool)
        stray += int(np.count_nonzero(~known))
        out = labels[frame].reshape(-1)
        out[fg[known]] = values[at[known]]
    if stray:
        notes.append(f"{stray} segmentation pixels belong to no node and were left out")
    return labels
