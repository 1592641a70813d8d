"""Division detection: the Cell Tracking Challenge's branching correctness BC(i).

Definition: Ulman et al., "An objective comparison of cell-tracking algorithms", Nature
Methods 2017, as refined in py-ctcmetrics (its issue 22: daughters are compared where each
begins). A *division* is a track with two or more children in its lineage; it happens at the
parent's last frame. A computed division counts as found for a reference division when

* both have the same number of children and the parents end at most ``i`` frames apart;
* in the earlier of the two last frames, the reference parent is matched to the computed
  parent, and that computed object matches no other reference object there;
* every reference daughter has its own computed daughter that begins at most ``i`` frames
  from it and, in the later of the two first frames, is matched to it (and to nothing else).

Matching is the DET one of :mod:`.ctc`: a computed object matches a reference object when it
covers more than half of it. BC(i) is the F1 score of found divisions.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .ctc import _as_lineage, _match_movies


class DivisionScores(NamedTuple):
    """Counts and scores of :func:`division_scores`."""

    tp: int  # reference divisions found
    fp: int  # computed divisions that match none
    fn: int  # reference divisions missed
    precision: float  # tp / (tp + fp); NaN when nothing was computed
    recall: float  # tp / (tp + fn); NaN when the reference has no division
    bc: float  # F1 of precision and recall: BC(i); NaN when the reference has no division


def _divisions(lineage: np.ndarray) -> dict[int, tuple[int, list[tuple[int, int]]]]:
    """{parent: (last frame, [(child, first frame), ...])} for parents of 2 or more children."""
    rows = {int(r[0]): r for r in lineage}
    children: dict[int, list[tuple[int, int]]] = {}
    for label, first, _, parent in lineage[lineage[:, 3] > 0]:
        children.setdefault(int(parent), []).append((int(label), int(first)))
    return {
        p: (int(rows[p][2]), kids) for p, kids in children.items() if len(kids) > 1 and p in rows
    }


def _frame_matches(gt_tra, res) -> list[tuple[dict[int, int], np.ndarray]]:
    """Per frame: {reference label: computed label} and how many references each computed
    label matches (indexed by computed label through ``np.searchsorted`` on the labels)."""
    m = _match_movies(gt_tra, res)
    out = []
    for t in range(len(m.ref.labels)):
        lo, hi = m.ref.offsets[t], m.ref.offsets[t + 1]
        sel = (m.ref_vertex >= lo) & (m.ref_vertex < hi)
        ref = m.ref.labels[t][m.ref_vertex[sel] - lo]
        comp = m.comp.labels[t][m.comp_vertex[sel] - m.comp.offsets[t]]
        out.append((dict(zip(ref.tolist(), comp.tolist(), strict=True)), comp))
    return out


def _matched_alone(matches, t: int, ref: int, comp: int) -> bool:
    """Whether, in frame t, reference ``ref`` is matched to ``comp`` and comp to nothing else."""
    if not 0 <= t < len(matches):
        return False
    pairs, comps = matches[t]
    return pairs.get(ref) == comp and int(np.count_nonzero(comps == comp)) == 1


def division_scores(gt_tra, gt_lineage, res, res_lineage, *, tolerance: int = 0):
    """Found, spurious and missed divisions, and BC(tolerance).

    Parameters
    ----------
    gt_tra : ndarray of shape (T, Y, X)
        Reference markers (CTC ``TRA/man_trackNNN.tif``), labelled by track.
    gt_lineage, res_lineage : ndarray of shape (N, 4)
        Lineages, rows ``[label, first_frame, last_frame, parent]``.
    res : ndarray of shape (T, Y, X)
        Computed labels, labelled by track.
    tolerance : int
        The ``i`` of BC(i): how many frames a computed division may be early or late.

    Returns
    -------
    DivisionScores

    Examples
    --------
    >>> gt = np.zeros((3, 8, 8), np.uint16)
    >>> gt[0, 2:6, 2:6] = 1; gt[1:, :3, :3] = 2; gt[1:, 5:, 5:] = 3
    >>> lineage = [[1, 0, 0, 0], [2, 1, 2, 1], [3, 1, 2, 1]]
    >>> division_scores(gt, lineage, gt, lineage).bc
    1.0
    """
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, not {tolerance}")
    ref_div = _divisions(_as_lineage(gt_lineage, "the reference"))
    comp_div = _divisions(_as_lineage(res_lineage, "the result"))
    matches = _frame_matches(gt_tra, res) if ref_div and comp_div else []
    found = 0
    for comp, (t_comp, comp_kids) in comp_div.items():
        for ref, (t_ref, ref_kids) in ref_div.items():
            if len(ref_kids) != len(comp_kids) or abs(t_ref - t_comp) > tolerance:
                continue
            if not _matched_alone(matches, min(t_ref, t_comp), ref, comp):
                continue
            used: set[int] = set()
            for kid, start in ref_kids:
                for ckid, cstart in comp_kids:
                    if abs(start - cstart) > tolerance:
                        continue
                    if _matched_alone(matches, max(start, cstart), kid, ckid):
                        used.add(ckid)
                        break
            if len(used) == len(ref_kids):
                found += 1
    n_ref, n_comp = len(ref_div), len(comp_div)
    precision = found / n_comp if n_comp else float("nan")
    recall = found / n_ref if n_ref else float("nan")
    if not n_ref:
        bc = float("nan")
    elif found == 0:
        bc = 0.0
    else:
        bc = 2 * precision * recall / (precision + recall)
    return DivisionScores(found, n_comp - found, n_ref - found, precision, recall, bc)
