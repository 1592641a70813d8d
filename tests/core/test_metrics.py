"""CTC measures against hand counts and against py-ctcmetrics; instance scores by hand.

Every result with errors is written as a CTC result folder and scored twice: by
``ctc_scores`` and by the reference package ``py-ctcmetrics`` (``ctc_metrics``); the two must
agree on SEG, DET, TRA and on each AOGM operation count.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import pytest
import tifffile
from skimage.segmentation import expand_labels

from napari_cosine_embed.core.errors import InputError
from napari_cosine_embed.core.io.ctc import (
    read_ctc_gt,
    read_ctc_result,
    write_ctc_gt,
    write_ctc_result,
)
from napari_cosine_embed.core.metrics import (
    aogm_counts,
    ctc_scores,
    det_score,
    division_scores,
    instance_scores,
    match_instances,
    seg_score,
    tra_score,
)

OPS = ("NS", "FN", "FP", "ED", "EA", "EC")


# ---------------------------------------------------------------- synthetic movie


def _disc(shape, centre, radius):
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


# label: (first, last, parent, radius, centre of first frame, displacement per frame)
_CELLS = {
    1: (0, 7, 0, 6, (15, 12), (0, 4)),
    2: (0, 7, 0, 5, (62, 62), (0, 0)),
    3: (0, 3, 0, 6, (55, 20), (0, 0)),
    4: (4, 7, 3, 5, (48, 14), (-1, 0)),
    5: (4, 7, 3, 5, (62, 27), (1, 0)),
    6: (2, 7, 0, 5, (30, 62), (0, -1)),
    7: (0, 2, 0, 4, (12, 66), (1, 0)),
}


@pytest.fixture(scope="module")
def movie():
    """Eight 80 x 80 frames: a mover, a still cell, a division, an arrival, a departure.

    Returns full masks (the perfect result and the SEG truth), TRA markers (the masks shrunk
    by 2 pixels, like CTC markers) and the lineage.
    """
    shape, n_frames = (80, 80), 8
    masks = np.zeros((n_frames, *shape), np.uint16)
    markers = np.zeros_like(masks)
    for label, (first, last, _, radius, (y, x), (dy, dx)) in _CELLS.items():
        for t in range(first, last + 1):
            k = t - first
            centre = (y + k * dy, x + k * dx)
            masks[t][_disc(shape, centre, radius)] = label
            markers[t][_disc(shape, centre, radius - 2)] = label
    lineage = np.array([[lab, f, e, p] for lab, (f, e, p, *_) in _CELLS.items()], np.int64)
    return masks, markers, lineage


# ---------------------------------------------------------------- helpers


def _runs(frames):
    """Split a sorted list of frames into runs of consecutive frames."""
    cuts = np.flatnonzero(np.diff(frames) > 1) + 1
    return [run.tolist() for run in np.split(np.asarray(frames), cuts)]


def _relineage(labels, lineage):
    """Make an edited movie a valid CTC result again.

    A label that now skips frames keeps its first run; each later run gets a new label whose
    parent is the run before (a CTC gap link). Parents that vanished are dropped.
    """
    labels = labels.copy()
    parent_of = {int(r[0]): int(r[3]) for r in lineage}
    presence: dict[int, list[int]] = {}
    for t, frame in enumerate(labels):
        for lab in np.unique(frame[frame > 0]).tolist():
            presence.setdefault(lab, []).append(t)
    next_label = max(presence, default=0) + 1
    rows, last_run, first_rows = [], {}, []
    for lab, frames in sorted(presence.items()):
        current = lab
        for k, run in enumerate(_runs(frames)):
            if k == 0:
                first_rows.append(len(rows))
                rows.append([lab, run[0], run[-1], parent_of.get(lab, 0)])
                continue
            for t in run:
                labels[t][labels[t] == lab] = next_label
            rows.append([next_label, run[0], run[-1], current])
            current, next_label = next_label, next_label + 1
        last_run[lab] = current
    end = {r[0]: r[2] for r in rows}
    for i in first_rows:
        parent = last_run.get(rows[i][3], 0)
        rows[i][3] = parent if parent and end[parent] < rows[i][1] else 0
    return labels, np.array(rows, np.int64).reshape(-1, 4)


def _steady(labels, t):
    """Labels present in frames t - 1, t and t + 1, sorted."""
    sets = [set(np.unique(labels[s]).tolist()) - {0} for s in (t - 1, t, t + 1)]
    return sorted(set.intersection(*sets))


def _free_square(frame, size):
    """Top-left corner of the first size x size background window of a frame."""
    fg = np.pad(np.cumsum(np.cumsum(frame > 0, 0), 1), ((1, 0), (1, 0)))
    window = fg[size:, size:] - fg[:-size, size:] - fg[size:, :-size] + fg[:-size, :-size]
    free = np.argwhere(window == 0)
    return free[len(free) // 2]


def _erode(labels, iterations):
    """Remove the outer pixel ring of every object, ``iterations`` times."""
    out = labels.copy()
    for _ in range(iterations):
        p = np.pad(out, ((0, 0), (1, 1), (1, 1)), mode="edge")
        same = (
            (p[:, :-2, 1:-1] == out)
            & (p[:, 2:, 1:-1] == out)
            & (p[:, 1:-1, :-2] == out)
            & (p[:, 1:-1, 2:] == out)
        )
        out = np.where(same, out, 0).astype(labels.dtype)
    return out


def _first_division(lineage):
    """(parent, first frame of its children) of the earliest division in a lineage."""
    parents, counts = np.unique(lineage[lineage[:, 3] > 0, 3], return_counts=True)
    rows = [r for r in lineage if r[3] in parents[counts > 1]]
    row = min(rows, key=lambda r: r[1])
    return int(row[3]), int(row[1])


def perturb(kind, labels, lineage, t=None):
    """Return (labels, lineage) of a valid CTC result with one kind of error.

    Errors that touch one frame touch ``t`` (default: the middle frame) and the two
    lowest labels present in frames t - 1 to t + 1, called a and b below.
    """
    labels, lineage = labels.copy(), lineage.copy()
    t = len(labels) // 2 if t is None else t
    steady = _steady(labels, t)
    a, b = steady[0], steady[1]
    if kind == "identity":
        pass
    elif kind == "drop_track":
        labels[labels == a] = 0
    elif kind == "drop_in_frame":
        labels[t][labels[t] == a] = 0
    elif kind == "merge":
        labels[t][labels[t] == b] = a
    elif kind == "split":
        ys, xs = np.nonzero(labels[t] == a)
        right = xs > xs.mean()
        labels[t][ys[right], xs[right]] = labels.max() + 1
    elif kind == "swap":
        frame = labels[t].copy()
        labels[t][frame == a], labels[t][frame == b] = b, a
    elif kind == "unlink_division":
        lineage[np.flatnonzero(lineage[:, 3])[0], 3] = 0
    elif kind == "relabel_midway":  # a track continues under a new label: EC on one edge
        new = labels.max() + 1
        labels[t:][labels[t:] == a] = new
        lineage = np.vstack([lineage, [new, t, lineage[lineage[:, 0] == a, 2][0], a]])
        lineage[lineage[:, 0] == a, 2] = t - 1
    elif kind == "daughter_keeps_parent_label":  # the tracker saw no division
        child, parent = lineage[np.flatnonzero(lineage[:, 3])[0], [0, 3]]
        labels[labels == child] = parent
        lineage = lineage[lineage[:, 0] != child]
    elif kind == "erode":
        labels = _erode(labels, 1)
    elif kind == "false_positives":
        for s in (0, t, len(labels) - 1):
            y, x = _free_square(labels[s], 5)
            labels[s, y : y + 5, x : x + 5] = labels.max() + 1
    elif kind == "late_division":  # the first division is seen one frame late
        parent, first = _first_division(lineage)
        kids = lineage[lineage[:, 3] == parent, 0]
        labels[first][labels[first] == kids[0]] = parent
        labels[first][np.isin(labels[first], kids[1:])] = 0
    elif kind == "false_division":  # steady track a splits in two at t, for good
        n1, n2 = labels.max() + 1, labels.max() + 2
        for s in range(t, len(labels)):
            ys, xs = np.nonzero(labels[s] == a)
            right = xs > xs.mean()
            labels[s][ys[right], xs[right]] = n2
            labels[s][ys[~right], xs[~right]] = n1
        lineage = np.vstack([lineage, [n1, t, len(labels) - 1, a], [n2, t, len(labels) - 1, a]])
    elif kind == "combined":  # one of most kinds, spread over frames 1 to 4
        labels, lineage = perturb("unlink_division", labels, lineage)
        for s, k in enumerate(("merge", "split", "swap", "drop_in_frame"), start=1):
            labels, lineage = perturb(k, labels, lineage, t=s)
        for k in ("erode", "false_positives"):
            labels, lineage = perturb(k, labels, lineage)
    else:
        raise AssertionError(kind)
    return _relineage(labels, lineage)


KINDS = (
    "identity",
    "drop_track",
    "drop_in_frame",
    "merge",
    "split",
    "swap",
    "unlink_division",
    "relabel_midway",
    "daughter_keeps_parent_label",
    "erode",
    "false_positives",
    "combined",
)


def _reference(gt_dir: Path, res_dir: Path) -> dict:
    """SEG, DET, TRA and the AOGM counts from py-ctcmetrics."""
    evaluate = pytest.importorskip("ctc_metrics.scripts.evaluate")
    with contextlib.redirect_stdout(io.StringIO()):  # it prints every result
        out = evaluate.evaluate_sequence(
            str(res_dir), str(gt_dir), ["SEG", "DET", "TRA"], threads=1
        )
    return {k: out[k] for k in ("SEG", "DET", "TRA")} | {k: out[f"AOGM_{k}"] for k in OPS}


def _assert_agree(gt_dir: Path, res_dir: Path) -> dict:
    ours = ctc_scores(gt_dir, res_dir)
    gt = read_ctc_gt(gt_dir)
    labels, lineage = read_ctc_result(res_dir)
    counts = aogm_counts(gt.tra, labels, gt.lineage, lineage)
    ref = _reference(gt_dir, res_dir)
    for key in ("SEG", "DET", "TRA"):
        assert ours[key] == pytest.approx(ref[key], abs=1e-6), (key, ours, ref)
    assert {k: counts[k] for k in OPS} == {k: int(ref[k]) for k in OPS}
    return ours | {k: counts[k] for k in OPS}


def _clip(gt, start, stop):
    """Frames start..stop-1 of a ground truth, renumbered from 0, with a matching lineage.

    py-ctcmetrics picks the result mask for ``man_segNNN.tif`` by its position in the sorted
    mask list, so a clip must be renumbered from 0. Parents that end before the clip are
    dropped; the others end before their children begin, so the clipped lineage stays valid.
    """
    lin = gt.lineage[(gt.lineage[:, 1] < stop) & (gt.lineage[:, 2] >= start)].copy()
    lin[:, 1] = np.maximum(lin[:, 1], start) - start
    lin[:, 2] = np.minimum(lin[:, 2], stop - 1) - start
    lin[~np.isin(lin[:, 3], lin[:, 0]), 3] = 0
    seg = {t - start: f for t, f in gt.seg.items() if start <= t < stop}
    return np.asarray(gt.tra[start:stop]), lin, seg


# ---------------------------------------------------------------- CTC, synthetic


@pytest.fixture(scope="module")
def synthetic_gt(movie, tmp_path_factory):
    masks, markers, lineage = movie
    folder = tmp_path_factory.mktemp("synthetic") / "01_GT"
    return write_ctc_gt(folder, tra=markers, lineage=lineage, seg=masks)


def test_perfect_result_scores_one(movie):
    masks, markers, lineage = movie
    assert seg_score(dict(enumerate(masks)), masks) == 1.0
    assert det_score(markers, masks) == 1.0
    assert tra_score(markers, lineage, masks, lineage) == 1.0
    assert tra_score(markers, lineage, markers, lineage) == 1.0


@pytest.mark.parametrize("kind", KINDS)
def test_synthetic_agrees_with_py_ctcmetrics(kind, movie, synthetic_gt, tmp_path):
    labels, lineage = perturb(kind, movie[0], movie[2])
    res = write_ctc_result(tmp_path / "01_RES", labels, lineage)
    scores = _assert_agree(synthetic_gt, res)
    if kind == "identity":
        assert scores["SEG"] == scores["DET"] == scores["TRA"] == 1.0


# Operation counts worked out by hand for the synthetic movie (middle frame t = 4, a = 1,
# b = 2; only the listed operations are non-zero).
EXPECTED_OPS = {
    "drop_track": {"FN": 8, "EA": 7},
    "drop_in_frame": {"FN": 1, "EA": 2, "ED": 1},  # the gap link 1(3) -> new(5) is extra
    "merge": {"NS": 1, "EA": 4, "ED": 1},  # both cells lose their links into and out of t
    "swap": {"EA": 4, "ED": 4},
    "unlink_division": {"EA": 1},
    "relabel_midway": {"EC": 1},  # a parent link where the truth has a track link
    "daughter_keeps_parent_label": {"EC": 1, "EA": 1},
    "false_positives": {"FP": 3},
}


@pytest.mark.parametrize("kind", sorted(EXPECTED_OPS))
def test_operation_counts_by_hand(kind, movie):
    masks, markers, lineage = movie
    labels, res_lineage = perturb(kind, masks, lineage)
    counts = aogm_counts(markers, labels, lineage, res_lineage)
    assert {k: counts[k] for k in OPS} == {k: EXPECTED_OPS[kind].get(k, 0) for k in OPS}
    n_vertices = sum(e - f + 1 for f, e, *_ in _CELLS.values())
    n_edges = n_vertices - len(_CELLS) + 2  # one link per frame step, plus 2 division links
    assert counts["n_vertices"] == n_vertices
    assert counts["n_edges"] == n_edges
    cost = sum(
        {"NS": 5, "FN": 10, "FP": 1, "ED": 1, "EA": 1.5, "EC": 1}[k] * v
        for k, v in EXPECTED_OPS[kind].items()
    )
    assert tra_score(markers, lineage, labels, res_lineage) == pytest.approx(
        1 - cost / (10 * n_vertices + 1.5 * n_edges)
    )


def test_sparse_seg_ignores_unannotated_objects(movie, tmp_path):
    """Only the annotated nuclei of the annotated frames count, as in the CTC."""
    masks, markers, lineage = movie
    # Frame 1 annotates cells 1 and 3, frame 5 only cell 4, under unrelated SEG labels.
    sparse = {1: np.where(np.isin(masks[1], [1, 3]), masks[1] * 10, 0), 5: (masks[5] == 4) * 9}
    gt = write_ctc_gt(tmp_path / "01_GT", tra=markers, lineage=lineage, seg=sparse)
    labels, _ = perturb("false_positives", masks, lineage)
    assert seg_score(sparse, labels) == 1.0
    eroded, eroded_lineage = _relineage(_erode(masks, 1), lineage)
    # Eroded objects lie inside the truth and keep more than half of it: IoU = area ratio.
    ratios = [
        (eroded[t] == lab).sum() / (masks[t] == lab).sum() for t, lab in [(1, 1), (1, 3), (5, 4)]
    ]
    assert min(ratios) > 0.5
    expected = np.mean(ratios)
    assert seg_score(sparse, eroded) == pytest.approx(expected)
    res = write_ctc_result(tmp_path / "01_RES", eroded, eroded_lineage)
    assert _assert_agree(gt, res)["SEG"] == pytest.approx(expected)


def test_gap_in_reference_track_is_not_linked(movie, tmp_path):
    """A reference track missing from a frame has no link across the gap (py-ctcmetrics)."""
    masks, markers, lineage = movie
    gapped = markers.copy()
    gapped[4][gapped[4] == 2] = 0  # the lineage still says 2 spans frames 0..7
    gt = tmp_path / "01_GT"
    for sub in ("TRA", "SEG"):
        (gt / sub).mkdir(parents=True)
    for t, frame in enumerate(gapped):
        tifffile.imwrite(gt / "TRA" / f"man_track{t:03d}.tif", frame)
    tifffile.imwrite(gt / "SEG" / "man_seg004.tif", masks[4])
    np.savetxt(gt / "TRA" / "man_track.txt", lineage, fmt="%d")
    # The complete result: its cell 2 in frame 4 is a false positive, and its links lead
    # nowhere in the reference graph, which lacks 2(3) -> 2(4) -> 2(5).
    counts = aogm_counts(gapped, masks, lineage, lineage)
    n_vertices = sum(e - f + 1 for f, e, *_ in _CELLS.values())
    assert counts["n_edges"] == n_vertices - len(_CELLS) + 2 - 2
    assert {k: counts[k] for k in OPS} == {k: int(k == "FP") for k in OPS}
    # A result with the same gap, closed by a CTC gap link 2(3) -> new(5): an extra edge.
    labels, res_lineage = _relineage(np.where(gapped > 0, masks, 0), lineage)
    res = write_ctc_result(tmp_path / "01_RES", labels, res_lineage)
    assert _assert_agree(gt, res)["ED"] == 1


def test_input_errors(movie):
    masks, markers, lineage = movie
    with pytest.raises(InputError, match="not a valid CTC result"):
        tra_score(markers, lineage, masks, lineage[1:])  # track 1 has no row
    bad = lineage.copy()
    bad[0, 2] = 5  # track 1 is present until frame 7
    with pytest.raises(InputError, match=r"label 1 is present in frame 6, outside .* 0\.\.5"):
        tra_score(markers, lineage, masks, bad)
    with pytest.raises(InputError, match="frames"):
        det_score(markers, masks[:-1])
    with pytest.raises(InputError, match="both lineages"):
        aogm_counts(markers, masks, lineage, None)
    with pytest.raises(InputError, match="no frame 9"):
        seg_score({9: masks[0]}, masks)


def test_empty_reference_gives_nan():
    empty = np.zeros((2, 5, 5), np.uint8)
    assert np.isnan(det_score(empty, empty))
    assert np.isnan(seg_score({0: empty[0]}, empty))


def test_missing_measures_are_none(movie, tmp_path):
    masks, markers, lineage = movie
    gt = write_ctc_gt(tmp_path / "01_GT", tra=markers, lineage=lineage)  # no SEG folder
    res = tmp_path / "01_RES"
    res.mkdir()
    for t, frame in enumerate(masks):  # masks without res_track.txt
        tifffile.imwrite(res / f"mask{t:03d}.tif", frame)
    assert ctc_scores(gt, res) == {"SEG": None, "DET": 1.0, "TRA": None}
    assert ctc_scores(gt, res, measures=["DET"]) == {"DET": 1.0}
    for bad in ("HOTA", "BC(x)", "BC(-1)", "BC"):
        with pytest.raises(InputError, match="unknown measure"):
            ctc_scores(gt, res, measures=[bad])
    assert ctc_scores(gt, res, measures=["BC(1)"]) == {"BC(1)": None}  # no res_track.txt


# ---------------------------------------------------------------- CTC, real data

# Six-frame clips that hold a division and (GOWT1) sparse SEG frames 80 and 82.
CLIPS = {"sim_plus": (10, 16), "gowt1": (78, 84)}


@pytest.fixture(scope="module", params=sorted(CLIPS))
def real_gt(request):
    sequence = request.getfixturevalue(request.param)
    return request.param, read_ctc_gt(sequence.parent / f"{sequence.name}_GT")


def test_real_gt_against_itself_full_sequence(real_gt):
    _, gt = real_gt
    assert seg_score(gt.seg, gt.seg) == 1.0
    assert det_score(gt.tra, gt.tra) == 1.0
    assert tra_score(gt.tra, gt.lineage, gt.tra, gt.lineage) == 1.0


def _real_case(real_gt, kind, tmp_path):
    name, gt = real_gt
    tra, lineage, seg = _clip(gt, *CLIPS[name])
    gt_dir = write_ctc_gt(tmp_path / "02_GT", tra=tra, lineage=lineage, seg=seg)
    # A result with SEG-like masks: the markers grown by 2 pixels (they cover every marker).
    base = np.stack([expand_labels(f, 2) for f in tra])
    labels, res_lineage = perturb(kind, base, lineage)
    res_dir = write_ctc_result(tmp_path / "02_RES", labels, res_lineage)
    return _assert_agree(gt_dir, res_dir)


def test_real_clip_agrees_with_py_ctcmetrics(real_gt, tmp_path):
    scores = _real_case(real_gt, "combined", tmp_path)
    assert 0 < scores["DET"] < 1
    assert 0 < scores["TRA"] < 1


@pytest.mark.slow
@pytest.mark.parametrize("kind", [k for k in KINDS if k != "combined"])
def test_real_clip_each_error_agrees(real_gt, kind, tmp_path):
    _real_case(real_gt, kind, tmp_path)


# ---------------------------------------------------------------- divisions, BC(i)

DIVISION_KINDS = (
    "identity",
    "unlink_division",
    "daughter_keeps_parent_label",
    "late_division",
    "false_division",
    "drop_in_frame",
    "swap",
    "combined",
)

# (tp, fp, fn) at tolerance 0 and 1 for the synthetic movie (one division, 3 -> 4 + 5).
EXPECTED_DIVISIONS = {
    "identity": ((1, 0, 0), (1, 0, 0)),
    "unlink_division": ((0, 0, 1), (0, 0, 1)),  # one child left: no division
    "daughter_keeps_parent_label": ((0, 0, 1), (0, 0, 1)),
    "late_division": ((0, 1, 1), (1, 0, 0)),  # found within 1 frame only
    "false_division": ((1, 1, 0), (1, 1, 0)),
}


def _reference_divisions(gt_dir: Path, res_dir: Path, tolerance: int) -> tuple[int, int, int]:
    evaluate = pytest.importorskip("ctc_metrics.scripts.evaluate")
    with contextlib.redirect_stdout(io.StringIO()):
        out = evaluate.evaluate_sequence(str(res_dir), str(gt_dir), ["BC"], threads=1)
    return tuple(int(out[f"{k}_div({tolerance})"]) for k in ("tp", "fp", "fn"))


@pytest.mark.parametrize("kind", sorted(EXPECTED_DIVISIONS))
def test_division_counts_by_hand(kind, movie):
    masks, markers, lineage = movie
    labels, res_lineage = perturb(kind, masks, lineage)
    for tolerance, expected in enumerate(EXPECTED_DIVISIONS[kind]):
        s = division_scores(markers, lineage, labels, res_lineage, tolerance=tolerance)
        assert (s.tp, s.fp, s.fn) == expected, tolerance
    s = division_scores(markers, lineage, labels, res_lineage, tolerance=1)
    if kind == "false_division":
        assert (s.precision, s.recall, s.bc) == pytest.approx((0.5, 1.0, 2 / 3))
    elif kind == "unlink_division":
        assert np.isnan(s.precision)
        assert s.recall == s.bc == 0.0


@pytest.mark.parametrize("kind", DIVISION_KINDS)
def test_divisions_agree_with_py_ctcmetrics(kind, movie, synthetic_gt, tmp_path):
    labels, lineage = perturb(kind, movie[0], movie[2])
    res = write_ctc_result(tmp_path / "01_RES", labels, lineage)
    gt = read_ctc_gt(synthetic_gt)
    for tolerance in (0, 1, 2):
        s = division_scores(gt.tra, gt.lineage, labels, lineage, tolerance=tolerance)
        assert (s.tp, s.fp, s.fn) == _reference_divisions(synthetic_gt, res, tolerance)


@pytest.mark.parametrize("kind", ["identity", "late_division", "false_division", "combined"])
def test_real_clip_divisions_agree_with_py_ctcmetrics(real_gt, kind, tmp_path):
    name, gt = real_gt
    tra, lineage, seg = _clip(gt, *CLIPS[name])
    gt_dir = write_ctc_gt(tmp_path / "02_GT", tra=tra, lineage=lineage, seg=seg)
    labels, res_lineage = perturb(kind, np.stack([expand_labels(f, 2) for f in tra]), lineage)
    res_dir = write_ctc_result(tmp_path / "02_RES", labels, res_lineage)
    for tolerance in (0, 1):
        s = division_scores(tra, lineage, labels, res_lineage, tolerance=tolerance)
        assert (s.tp, s.fp, s.fn) == _reference_divisions(gt_dir, res_dir, tolerance)
        if kind == "identity":
            assert s.fp == s.fn == 0
            assert s.tp >= 1
            assert s.bc == 1.0


def test_ctc_scores_reports_bc(movie, synthetic_gt, tmp_path):
    labels, lineage = perturb("late_division", movie[0], movie[2])
    res = write_ctc_result(tmp_path / "01_RES", labels, lineage)
    scores = ctc_scores(synthetic_gt, res, measures=["BC(1)", "SEG", "BC(0)"])
    assert list(scores) == ["BC(1)", "SEG", "BC(0)"]
    assert scores["BC(1)"] == 1.0
    assert scores["BC(0)"] == 0.0


def test_division_scores_without_divisions(movie):
    masks, markers, lineage = movie
    flat = lineage.copy()
    flat[:, 3] = 0
    s = division_scores(markers, flat, masks, lineage)
    assert (s.tp, s.fp, s.fn) == (0, 1, 0)
    assert np.isnan(s.bc)
    assert s.precision == 0.0
    s = division_scores(markers, lineage, masks, flat)
    assert (s.tp, s.fp, s.fn, s.bc) == (0, 0, 1, 0.0)
    with pytest.raises(ValueError, match="tolerance"):
        division_scores(markers, lineage, masks, lineage, tolerance=-1)


# ---------------------------------------------------------------- instance scores


def _strip(*spans, width=20):
    """A 1 x width label image with label i + 1 on columns spans[i] = (start, stop)."""
    out = np.zeros((1, width), np.uint16)
    for i, (start, stop) in enumerate(spans):
        out[0, start:stop] = i + 1
    return out


def test_instance_scores_by_hand():
    # Image 1: A exact (IoU 1), B half covered (IoU 0.5, not > 0.5), one false positive.
    gt1 = _strip((0, 4), (6, 10))
    pred1 = _strip((0, 4), (6, 8), (14, 17))
    m = match_instances(gt1, pred1)
    assert (m.tp, m.fp, m.fn) == (1, 2, 1)
    assert m.pairs.tolist() == [[1, 1]]
    assert m.ious.tolist() == [1.0]
    s = instance_scores([gt1], [pred1])
    assert s["AP50"] == pytest.approx(1 / 4)
    assert (s["precision_50"], s["recall_50"], s["F1_50"]) == pytest.approx((1 / 3, 1 / 2, 0.4))
    assert s["mAP"] == pytest.approx(1 / 4)  # the exact match survives every threshold
    # Image 2 is perfect: pooled 2 / (2 + 2 + 1), per image (1/4 + 1) / 2.
    gt2 = _strip((3, 9))
    s = instance_scores([gt1, gt2], [pred1, gt2])
    assert s["AP50"] == pytest.approx(2 / 5)
    assert s["AP50_per_image"] == pytest.approx(0.625)
    assert s["tp"].tolist() == [2] * 10
    assert s["fn"].tolist() == [1] * 10


def test_per_threshold_values():
    gt = _strip((0, 10))
    pred = _strip((0, 8))  # IoU 0.8
    s = instance_scores([gt], [pred])
    assert s["thresholds"].tolist() == pytest.approx([0.5 + 0.05 * k for k in range(10)])
    assert s["AP"].tolist() == [1.0] * 6 + [0.0] * 4  # 0.8 > 0.75 but not > 0.8
    assert s["mAP"] == pytest.approx(0.6)


def test_low_threshold_matching_is_optimal():
    # P1 overlaps G1 (IoU 6/14) and G2 (4/16); P2 only G1 (3/10). Greedy pairing P1-G1
    # leaves one match; the optimum pairs P2-G1 and P1-G2.
    gt = _strip((0, 10), (10, 20))
    pred = _strip((4, 14), (0, 3))
    m = match_instances(gt, pred, iou_threshold=0.2)
    assert m.tp == 2
    assert sorted(map(tuple, m.pairs.tolist())) == [(1, 2), (2, 1)]
    assert sorted(m.ious.tolist()) == pytest.approx([4 / 16, 3 / 10])
    assert match_instances(gt, pred, iou_threshold=0.4).tp == 1


def test_identical_empty_and_permuted(movie):
    masks = list(movie[0])
    same = instance_scores(masks, masks)
    assert same["AP50"] == same["mAP"] == same["F1_50"] == same["AP50_per_image"] == 1.0
    none = instance_scores(masks, [np.zeros_like(m) for m in masks])
    assert none["AP50"] == none["F1_50"] == none["precision_50"] == none["recall_50"] == 0.0
    rng = np.random.default_rng(0)
    preds = [_erode(m[None], 1)[0] for m in masks]
    lut_gt = rng.permutation(1000)[:10] + 50
    lut_pred = rng.permutation(60000)[:10] + 5
    lut_gt[0] = lut_pred[0] = 0
    original = instance_scores(masks, preds)
    permuted = instance_scores([lut_gt[m] for m in masks], [lut_pred[m] for m in preds])
    for key in ("AP", "F1", "precision", "recall", "tp"):
        np.testing.assert_array_equal(original[key], permuted[key])
    assert 0 < original["mAP"] < original["AP50"] == 1.0


def test_empty_image_conventions():
    empty = np.zeros((4, 4), np.uint8)
    s = instance_scores([empty], [empty])
    assert s["AP50"] == s["F1_50"] == 1.0
    assert s["precision_50"] == 0.0
    with pytest.raises(InputError):
        instance_scores([empty], [])
    with pytest.raises(InputError):
        match_instances(empty, np.zeros((4, 5), np.uint8))
