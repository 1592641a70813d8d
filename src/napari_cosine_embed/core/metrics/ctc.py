"""The Cell Tracking Challenge measures SEG, DET and TRA.

Definitions: Matula et al., "Cell tracking accuracy measurement based on comparison of acyclic
oriented graphs", PLoS ONE 2015 (AOGM, DET, TRA) and Ulman et al., Nature Methods 2017 (SEG).
Results agree with the reference package ``py-ctcmetrics`` to floating-point precision; the
tests check that on synthetic and real movies with known errors.

Conventions shared by all functions here:

* Movies are indexed by frame first: ``ndarray of shape (T, Y, X)`` (or (T, Z, Y, X)), or any
  sequence whose items are frames. Labels are non-negative integers, 0 = background.
* A lineage is an integer array of shape (N, 4) with rows ``[label, first_frame, last_frame,
  parent]``, parent 0 meaning none: the content of a CTC ``man_track.txt`` / ``res_track.txt``.
* A computed object *matches* a reference object when it covers more than half of the
  reference object's pixels, so each reference object has at most one match.
* Track graph edges: a *link* joins a label in two consecutive frames where it is present (a
  reference track missing from a frame is not linked across the gap, as in py-ctcmetrics);
  a *parent link* joins a parent in its last frame to each child in the child's first frame,
  whether it records a division or a CTC gap-closing (single child). The result lineage must
  describe its masks exactly, as the CTC demands; the reference lineage is taken as it is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import NamedTuple

import numpy as np

from ..errors import InputError
from ._overlap import Overlap, overlap

#: Cost of each graph operation in AOGM (Matula et al. 2015, as used by the CTC): split a
#: vertex, add a missed one, delete a spurious one, delete / add an edge, fix edge semantics.
AOGM_WEIGHTS: Mapping[str, float] = MappingProxyType(
    {"NS": 5.0, "FN": 10.0, "FP": 1.0, "ED": 1.0, "EA": 1.5, "EC": 1.0}
)

MEASURES = ("SEG", "DET", "TRA")


class _Vertices(NamedTuple):
    """The objects of a movie as graph vertices, numbered frame by frame in label order."""

    labels: list[np.ndarray]  # per frame, the sorted labels present
    offsets: np.ndarray  # (T + 1,): index of each frame's first vertex

    def find(self, frame: int, label: int, what: str) -> int:
        """Vertex index of ``label`` in ``frame``; InputError when it is not there."""
        if 0 <= frame < len(self.labels):
            labels = self.labels[frame]
            i = int(np.searchsorted(labels, label))
            if i < labels.size and labels[i] == label:
                return int(self.offsets[frame]) + i
        raise InputError(
            f"{what}: track {label} is missing from frame {frame}, where its lineage puts it"
        )


def _matched_pairs(ov: Overlap) -> np.ndarray:
    """Boolean selection of the pairs in which computed covers > 1/2 of the reference object."""
    return 2 * ov.intersection > ov.ref_area[ov.ref_index]


def _frame(movie, t: int, what: str) -> np.ndarray:
    try:
        return np.asarray(movie[t])
    except (IndexError, KeyError):
        raise InputError(f"{what} has no frame {t}") from None


def seg_score(gt_seg: Mapping[int, np.ndarray], res) -> float:
    """CTC SEG: mean Jaccard index of the annotated reference objects with their match.

    Each reference object in each annotated frame scores the Jaccard index (IoU) with the
    computed object covering more than half of it, or 0 when there is none. Computed objects
    that cover no annotated object are ignored, so sparse ground truth (a few frames, a few
    nuclei per frame) is scored the CTC way: unannotated nuclei are not false positives.

    Parameters
    ----------
    gt_seg : mapping of int to ndarray of shape (Y, X)
        Reference segmentation of the annotated frames, keyed by frame index.
    res : ndarray of shape (T, Y, X) or mapping of int to ndarray of shape (Y, X)
        Computed labels; only the frames in ``gt_seg`` are read.

    Returns
    -------
    float
        SEG in [0, 1]; NaN when ``gt_seg`` holds no object (py-ctcmetrics says 0 there).

    Examples
    --------
    >>> gt = np.zeros((4, 4), np.uint16); gt[:2, :2] = 1
    >>> res = np.zeros((1, 4, 4), np.uint16); res[0, :2, :3] = 7
    >>> round(seg_score({0: gt}, res), 3)
    0.667
    """
    total, count = 0.0, 0
    for t, ref in gt_seg.items():
        ov = overlap(ref, _frame(res, t, "the result"))
        total += float(ov.iou()[_matched_pairs(ov)].sum())
        count += ov.ref_labels.size
    return total / count if count else float("nan")


class _Matching(NamedTuple):
    ref: _Vertices
    comp: _Vertices
    ref_vertex: np.ndarray  # (M,) matched pairs, as global vertex indices
    comp_vertex: np.ndarray


def _match_movies(gt_tra, res) -> _Matching:
    """Vertices of both movies and every (reference, computed) match, frame by frame."""
    n_frames = len(gt_tra)
    if len(res) != n_frames:
        raise InputError(f"the result has {len(res)} frames, the reference {n_frames}")
    ref_labels, comp_labels, ref_v, comp_v = [], [], [], []
    ref_off, comp_off = [0], [0]
    for t in range(n_frames):
        ov = overlap(_frame(gt_tra, t, "the reference"), _frame(res, t, "the result"))
        hit = _matched_pairs(ov)
        ref_v.append(ov.ref_index[hit] + ref_off[-1])
        comp_v.append(ov.comp_index[hit] + comp_off[-1])
        ref_labels.append(ov.ref_labels)
        comp_labels.append(ov.comp_labels)
        ref_off.append(ref_off[-1] + ov.ref_labels.size)
        comp_off.append(comp_off[-1] + ov.comp_labels.size)
    return _Matching(
        _Vertices(ref_labels, np.asarray(ref_off)),
        _Vertices(comp_labels, np.asarray(comp_off)),
        np.concatenate([np.zeros(0, np.int64), *ref_v]).astype(np.int64),
        np.concatenate([np.zeros(0, np.int64), *comp_v]).astype(np.int64),
    )


def _as_lineage(lineage, what: str) -> np.ndarray:
    table = np.asarray(lineage, dtype=np.int64)
    if table.size == 0:
        return table.reshape(0, 4)
    if table.ndim != 2 or table.shape[1] != 4:
        raise InputError(f"{what} lineage must have shape (N, 4), not {table.shape}")
    return table


def _check_result_tracks(labels_per_frame: Sequence[np.ndarray], lineage: np.ndarray) -> None:
    """Raise InputError where the CTC would reject a result as invalid.

    Works from the labels already found frame by frame, so the movie is not read again. A
    valid result has unique positive track labels, non-negative parents that exist and end
    before their children begin, and each track present in exactly the frames
    ``first_frame..last_frame`` of its lineage row, with no label missing from the lineage
    (the checks of :func:`napari_cosine_embed.core.io.lineage.lineage_problems`).

    Parameters
    ----------
    labels_per_frame : sequence of ndarray of shape (n_t,)
        Sorted labels present in each frame of the result masks.
    lineage : ndarray of shape (N, 4)
        The result lineage, rows ``[label, first_frame, last_frame, parent]``.
    """
    from ..io.lineage import _summary, _table_problems

    problems = _table_problems(labels_per_frame, _as_lineage(lineage, "the result"))
    if problems:
        raise InputError("the result is not a valid CTC result: " + _summary(problems))


def _edges(vertices: _Vertices, lineage: np.ndarray, what: str):
    """Edges of the track graph: (source, target, semantic), semantic 0 = link, 1 = parent.

    Temporal links join a label in two consecutive frames where it appears (a track missing
    from a frame is broken there, as in py-ctcmetrics); parent links join a parent in its
    lineage's last frame to each child in the child's first frame.
    """
    sources, targets = [], []
    for t in range(len(vertices.labels) - 1):
        _, i, j = np.intersect1d(
            vertices.labels[t], vertices.labels[t + 1], assume_unique=True, return_indices=True
        )
        sources.append(i + vertices.offsets[t])
        targets.append(j + vertices.offsets[t + 1])
    n_links = sum(s.size for s in sources)
    last_frame = {int(row[0]): int(row[2]) for row in lineage}
    for label, begin, _, parent in lineage[lineage[:, 3] != 0]:
        if int(parent) not in last_frame:
            raise InputError(f"{what}: the parent {parent} of track {label} is no track")
        sources.append([vertices.find(last_frame[int(parent)], parent, what)])
        targets.append([vertices.find(begin, label, what)])
    source = np.concatenate([np.zeros(0, np.int64), *sources]).astype(np.int64)
    target = np.concatenate([np.zeros(0, np.int64), *targets]).astype(np.int64)
    semantic = (np.arange(source.size) >= n_links).astype(np.int8)
    return source, target, semantic


def aogm_counts(gt_tra, res, gt_lineage=None, res_lineage=None) -> dict[str, float]:
    """Count the graph operations that turn the computed tracks into the reference.

    Parameters
    ----------
    gt_tra : ndarray of shape (T, Y, X)
        Reference markers (CTC ``TRA/man_trackNNN.tif``), labelled by track.
    res : ndarray of shape (T, Y, X)
        Computed labels.
    gt_lineage, res_lineage : ndarray of shape (N, 4), optional
        Lineages of both; give both to count edge operations, or neither for DET only.
        The result lineage must describe ``res`` exactly, as in
        :func:`napari_cosine_embed.core.io.lineage.check_lineage`, else InputError: the CTC
        refuses such results.

    Returns
    -------
    dict
        ``n_vertices`` (reference objects), ``TP`` (matched ones), ``NS`` (vertex splits
        needed: a computed object matching k > 1 references costs k - 1), ``FN``, ``FP``,
        ``AOGM_D`` and ``AOGM_D0``; with lineages also ``n_edges`` (reference edges), ``ED``,
        ``EA``, ``EC``, ``AOGM`` and ``AOGM_0``. The ``*0`` costs are those of building the
        reference graph from nothing.
    """
    if (gt_lineage is None) != (res_lineage is None):
        raise InputError("give both lineages (for TRA) or neither (for DET)")
    m = _match_movies(gt_tra, res)
    n_ref, n_comp = int(m.ref.offsets[-1]), int(m.comp.offsets[-1])
    per_comp = np.bincount(m.comp_vertex, minlength=n_comp)
    w = AOGM_WEIGHTS
    out: dict[str, float] = {
        "n_vertices": n_ref,
        "TP": int(m.ref_vertex.size),
        "NS": int(np.maximum(per_comp - 1, 0).sum()),
        "FN": n_ref - int(m.ref_vertex.size),
        "FP": int(np.count_nonzero(per_comp == 0)),
    }
    out["AOGM_D"] = w["NS"] * out["NS"] + w["FN"] * out["FN"] + w["FP"] * out["FP"]
    out["AOGM_D0"] = w["FN"] * n_ref
    if gt_lineage is None:
        return out

    gt_lin = _as_lineage(gt_lineage, "the reference")
    res_lin = _as_lineage(res_lineage, "the result")
    _check_result_tracks(m.comp.labels, res_lin)
    ref_src, ref_dst, ref_sem = _edges(m.ref, gt_lin, "the reference")
    comp_src, comp_dst, comp_sem = _edges(m.comp, res_lin, "the result")
    # Only computed objects matching exactly one reference object keep their edges: the
    # others are split (NS) or deleted (FP), and their edges go with them.
    to_ref = np.full(n_comp, -1, dtype=np.int64)
    unique = per_comp[m.comp_vertex] == 1
    to_ref[m.comp_vertex[unique]] = m.ref_vertex[unique]
    keep = (to_ref[comp_src] >= 0) & (to_ref[comp_dst] >= 0)
    ref_key = ref_src * n_ref + ref_dst
    comp_key = to_ref[comp_src[keep]] * n_ref + to_ref[comp_dst[keep]]
    _, i_ref, i_comp = np.intersect1d(ref_key, comp_key, assume_unique=True, return_indices=True)
    out.update(
        n_edges=int(ref_key.size),
        ED=int(comp_key.size - i_comp.size),
        EA=int(ref_key.size - i_ref.size),
        EC=int(np.count_nonzero(ref_sem[i_ref] != comp_sem[keep][i_comp])),
    )
    out["AOGM"] = out["AOGM_D"] + sum(w[k] * out[k] for k in ("ED", "EA", "EC"))
    out["AOGM_0"] = out["AOGM_D0"] + w["EA"] * out["n_edges"]
    return out


def _normalised(cost: float, cost_from_nothing: float) -> float:
    if cost_from_nothing == 0:
        return float("nan")
    return 1.0 - min(cost, cost_from_nothing) / cost_from_nothing


def det_score(gt_tra, res) -> float:
    """CTC DET: 1 - AOGM-D / AOGM-D0, clipped at 0.

    AOGM-D weighs vertex splits 5, missed reference objects 10 and spurious computed objects
    1; AOGM-D0 = 10 x (number of reference objects) is the cost of adding them all.

    Parameters
    ----------
    gt_tra : ndarray of shape (T, Y, X)
        Reference markers, one label per object and frame.
    res : ndarray of shape (T, Y, X)
        Computed labels.

    Returns
    -------
    float
        DET in [0, 1]; NaN when the reference holds no object.

    Examples
    --------
    >>> gt = np.zeros((2, 6, 6), np.uint16); gt[:, :2, :2] = 1; gt[:, 4:, 4:] = 2
    >>> det_score(gt, gt * (gt == 1))  # object 2 missed twice: 1 - 20 / 40
    0.5
    """
    counts = aogm_counts(gt_tra, res)
    return _normalised(counts["AOGM_D"], counts["AOGM_D0"])


def tra_score(gt_tra, gt_lineage, res, res_lineage) -> float:
    """CTC TRA: 1 - AOGM / AOGM0, clipped at 0.

    AOGM adds to the DET costs edge deletions (1), edge additions (1.5) and edge semantic
    changes (1); AOGM0 adds 1.5 per reference edge to AOGM-D0.

    Parameters
    ----------
    gt_tra : ndarray of shape (T, Y, X)
        Reference markers, labelled by track.
    gt_lineage : ndarray of shape (N, 4)
        Reference lineage, rows ``[label, first_frame, last_frame, parent]``.
    res : ndarray of shape (T, Y, X)
        Computed labels, labelled by track.
    res_lineage : ndarray of shape (M, 4)
        Computed lineage; it must describe ``res`` exactly (see :func:`aogm_counts`).

    Returns
    -------
    float
        TRA in [0, 1]; NaN when the reference holds no object.

    Examples
    --------
    >>> gt = np.zeros((3, 6, 6), np.uint16); gt[:, :2, :2] = 1
    >>> tra_score(gt, [[1, 0, 2, 0]], gt, [[1, 0, 2, 0]])
    1.0
    """
    counts = aogm_counts(gt_tra, res, gt_lineage, res_lineage)
    return _normalised(counts["AOGM"], counts["AOGM_0"])


def ctc_scores(
    gt_dir: str | Path, res_dir: str | Path, *, measures: Sequence[str] = MEASURES
) -> dict[str, float | None]:
    """Score a CTC result folder against a CTC ground-truth folder.

    Parameters
    ----------
    gt_dir : path
        Ground truth in the CTC layout (``SEG/man_segNNN.tif``, ``TRA/man_trackNNN.tif``,
        ``TRA/man_track.txt``), e.g. ``02_GT``.
    res_dir : path
        Result folder with ``maskNNN.tif`` and ``res_track.txt``, e.g. ``02_RES``.
    measures : sequence of str
        What to compute: any of "SEG", "DET", "TRA" and "BC(i)", the branching correctness
        with a tolerance of i frames (:func:`~napari_cosine_embed.core.metrics.divisions.
        division_scores`).

    Returns
    -------
    dict of str to float or None
        One entry per requested measure, in the order asked. It is None where the data for it
        are missing: no annotated SEG frame (SEG), no TRA markers (DET, TRA, BC), no lineage on
        either side (TRA, BC) or no division in the reference (BC).

    Raises
    ------
    InputError
        Naming the folder or file: unreadable or missing frames, frames of the wrong dtype,
        a result whose frame count or frame size differs from the ground truth, or a track
        file (``man_track.txt``, ``res_track.txt``) that does not describe its masks. A
        ground-truth track may miss frames inside its range (a marker not drawn); a result
        track may not, as in the CTC's own validation.
    """
    measures = list(measures)
    bc_tolerance = {m: _bc_tolerance(m) for m in measures if m not in MEASURES}
    from ..io.ctc import read_ctc_gt, read_ctc_result
    from ..io.lineage import validate_ctc_lineage
    from .divisions import division_scores

    gt_dir, res_dir = Path(gt_dir), Path(res_dir)
    gt = read_ctc_gt(gt_dir)
    if (res_dir / "res_track.txt").is_file():
        labels, lineage = read_ctc_result(res_dir)
    else:
        labels, lineage = _read_masks(res_dir), None
    _check_folders_agree(gt_dir, gt.shape, res_dir, labels.shape, gt_has_tra=gt.tra is not None)
    if gt.lineage is not None:
        track_file = gt_dir / "TRA" / "man_track.txt"
        validate_ctc_lineage(gt.tra, gt.lineage, track_file=track_file, allow_gaps=True)
    if lineage is not None:
        validate_ctc_lineage(labels, lineage, track_file=res_dir / "res_track.txt")
    scores: dict[str, float | None] = {}
    if "SEG" in measures:
        scores["SEG"] = seg_score(gt.seg, labels) if gt.seg else None
    if gt.tra is not None and ("DET" in measures or "TRA" in measures):
        with_edges = "TRA" in measures and gt.lineage is not None and lineage is not None
        if with_edges:
            counts = aogm_counts(gt.tra, labels, gt.lineage, lineage)
        else:
            counts = aogm_counts(gt.tra, labels)
        scores["DET"] = _normalised(counts["AOGM_D"], counts["AOGM_D0"])
        if with_edges:
            scores["TRA"] = _normalised(counts["AOGM"], counts["AOGM_0"])
    for name, tolerance in bc_tolerance.items():
        if gt.tra is not None and gt.lineage is not None and lineage is not None:
            bc = division_scores(gt.tra, gt.lineage, labels, lineage, tolerance=tolerance).bc
            scores[name] = None if np.isnan(bc) else bc
    return {k: scores.get(k) for k in measures}


def _bc_tolerance(measure: str) -> int:
    """The i of a "BC(i)" measure name; InputError for any other unknown name."""
    inner = measure[3:-1] if measure.startswith("BC(") and measure.endswith(")") else ""
    if not inner.isdigit():
        raise InputError(f"unknown measure {measure!r}; choose from {MEASURES} or BC(i), i >= 0")
    return int(inner)


def _read_masks(folder: Path):
    """The ``maskNNN.tif`` frames of a result folder that has no ``res_track.txt``."""
    from ..io.ctc import _consecutive, _existing_folder, list_frames, read_label_frames

    folder = _existing_folder(folder)
    return read_label_frames(_consecutive(folder, list_frames(folder, "mask"), "maskNNN.tif"))


def _check_folders_agree(
    gt_dir: Path, gt_shape: tuple, res_dir: Path, res_shape: tuple, *, gt_has_tra: bool
) -> None:
    """InputError, naming both folders, when the result's frames do not fit the ground truth.

    Without TRA markers the ground truth's length is only that of its last SEG frame, so the
    result may then be longer, not shorter.
    """
    if tuple(res_shape[1:]) != tuple(gt_shape[1:]):
        raise InputError(
            f"{res_dir}: the masks are {res_shape[1]}x{res_shape[2]} pixels but the ground "
            f"truth frames in {gt_dir} are {gt_shape[1]}x{gt_shape[2]}"
        )
    if res_shape[0] < gt_shape[0]:
        raise InputError(
            f"{res_dir}: {res_shape[0]} mask frames (mask000..), but the ground truth in "
            f"{gt_dir} has {gt_shape[0]} frames; mask frames are missing"
        )
    if gt_has_tra and res_shape[0] > gt_shape[0]:
        raise InputError(
            f"{res_dir}: {res_shape[0]} mask frames (mask000..), but the ground truth in "
            f"{gt_dir} has only {gt_shape[0]} TRA frames; are ground-truth frames missing, or "
            f"is this the result of another sequence?"
        )
