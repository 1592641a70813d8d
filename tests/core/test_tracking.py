"""Tracking: overlap linking of per-frame labels, and pair clustering of embeddings."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cosine_embed.core.errors import InputError
from napari_cosine_embed.core.grouping._synthetic import embedding_from_labels
from napari_cosine_embed.core.io.lineage import check_lineage, split_track_gaps
from napari_cosine_embed.core.metrics import tra_score
from napari_cosine_embed.core.synthetic import synthetic_timelapse
from napari_cosine_embed.core.tracking import TrackingResult, link_labels, track_pairs


@pytest.fixture(scope="module")
def movie():
    m = synthetic_timelapse(n_frames=30, shape=(192, 192), n_cells=8, seed=1)
    assert (m.lineage[:, 3] > 0).sum() >= 4  # at least two divisions
    return m


def _shuffle_per_frame(labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """Relabel every frame with random ids, so ids carry no information across frames."""
    rng = np.random.default_rng(seed)
    out = np.zeros(labels.shape, np.int32)
    for t in range(labels.shape[0]):
        lut = rng.permutation(10_000)[: int(labels.max()) + 1] + 1
        lut[0] = 0
        out[t] = lut[labels[t]]
    return out


def _track_mapping(gt: np.ndarray, res: np.ndarray) -> dict[int, int]:
    """GT id -> result id, asserting the two movies partition pixels identically."""
    assert np.array_equal(gt > 0, res > 0)
    pairs = np.unique(np.stack([gt[gt > 0], res[gt > 0]]), axis=1)
    assert np.unique(pairs[0]).size == pairs.shape[1] == np.unique(pairs[1]).size
    return dict(zip(pairs[0].tolist(), pairs[1].tolist(), strict=True))


def _run(gen):
    progress = []
    while True:
        try:
            progress.append(next(gen))
        except StopIteration as stop:
            return stop.value, progress


def test_link_labels_recovers_shuffled_ground_truth(movie):
    result = link_labels(_shuffle_per_frame(movie.labels))
    assert isinstance(result, TrackingResult)
    assert result.labels.shape == movie.labels.shape
    assert result.labels.dtype == np.uint16
    check_lineage(result.labels, result.lineage)
    mapping = _track_mapping(movie.labels, result.labels)
    expected = sorted(
        [mapping[lab], first, last, mapping.get(parent, 0)]
        for lab, first, last, parent in movie.lineage.tolist()
    )
    assert result.lineage.tolist() == expected
    assert tra_score(movie.labels, movie.lineage, result.labels, result.lineage) == 1.0
    assert set(np.unique(result.tracks[:, 0]).astype(int)) == set(result.lineage[:, 0].tolist())
    assert result.graph == {int(r[0]): [int(r[3])] for r in result.lineage if r[3]}


def _bar_movie() -> np.ndarray:
    """One bar over 6 frames, cut in two in frame 2 only; a 2-frame blob elsewhere."""
    movie = np.zeros((6, 20, 20), np.uint8)
    movie[:, 2:12, 2:6] = 3
    movie[2, 6:12, 2:6] = 7
    movie[2, 6, 2:6] = 0
    movie[1:3, 15:18, 15:18] = 9
    return movie


def test_spurious_split_is_merged_back():
    movie = _bar_movie()
    kept = link_labels(movie)
    check_lineage(kept.labels, kept.lineage)
    assert (kept.lineage[:, 3] > 0).sum() == 2  # the cut reads as a division by default
    merged = link_labels(movie, min_split_frames=2)
    check_lineage(merged.labels, merged.lineage)
    bar = merged.labels[2, 2, 2]
    assert merged.lineage.tolist() == [[1, 0, 5, 0], [2, 1, 2, 0]]
    assert np.all(merged.labels[2][movie[2] > 0][: 4 * 4] == bar)
    assert np.unique(merged.labels[2][(movie[2] == 3) | (movie[2] == 7)]).tolist() == [bar]


def test_small_child_is_merged_back():
    movie = np.zeros((4, 20, 20), np.uint8)
    movie[:, 2:12, 2:10] = 1
    movie[2:, 11, 8:10] = 2  # a two-pixel fragment splits off in frames 2 and 3
    result = link_labels(movie, min_child_ratio=0.2)
    check_lineage(result.labels, result.lineage)
    assert result.lineage.tolist() == [[1, 0, 3, 0]]


def test_min_track_length_drops_short_tracks():
    result = link_labels(_bar_movie(), min_split_frames=2, min_track_length=3)
    check_lineage(result.labels, result.lineage)
    assert result.lineage.tolist() == [[1, 0, 5, 0]]
    assert not result.labels[1:3, 15:18, 15:18].any()


def test_gap_bridging_links_the_pieces_by_parent(movie):
    gt = movie.labels.copy()
    track = 2  # present in frames 0..29
    gt[15][gt[15] == track] = 0
    expected_labels, expected_lineage = split_track_gaps(gt, parents=dict(movie.lineage[:, [0, 3]]))
    shuffled = _shuffle_per_frame(gt, seed=1)

    plain = link_labels(shuffled)
    check_lineage(plain.labels, plain.lineage)
    assert tra_score(expected_labels, expected_lineage, plain.labels, plain.lineage) < 1.0

    bridged = link_labels(shuffled, max_gap=1)
    check_lineage(bridged.labels, bridged.lineage)
    mapping = _track_mapping(expected_labels, bridged.labels)
    before, after = mapping[track], mapping[int(expected_lineage[-1, 0])]
    assert bridged.lineage[bridged.lineage[:, 0] == after, 3].tolist() == [before]
    assert tra_score(expected_labels, expected_lineage, bridged.labels, bridged.lineage) == 1.0


def test_link_labels_rejects_non_movies():
    with pytest.raises(InputError):
        link_labels(np.zeros((4, 4), np.uint8))


def test_track_pairs_on_synthetic_embeddings():
    m = synthetic_timelapse(n_frames=12, shape=(128, 128), n_cells=6, seed=0)
    assert (m.lineage[:, 3] > 0).sum() >= 2
    # One direction per track, the same in every frame; daughters get new ones.
    emb = embedding_from_labels(m.labels.astype(np.int64), dim=8, noise=0.1, seed=0)
    frames = np.moveaxis(emb, 1, 0)  # (T, D, Y, X), indexed by frame
    result, progress = _run(
        track_pairs(frames, m.labels > 0, min_samples=5, min_cluster_size=30, coord_weight=1.0)
    )
    assert progress == [(t, 11) for t in range(1, 12)]
    check_lineage(result.labels, result.lineage)
    assert tra_score(m.labels, m.lineage, result.labels, result.lineage) >= 0.95


def test_track_pairs_detects_a_division_by_split_cluster():
    movie = np.zeros((4, 24, 24), np.int64)
    movie[:2, 4:20, 6:14] = 1
    movie[2:, 2:10, 6:14] = 1  # the daughters keep the mother's direction...
    movie[2:, 14:22, 6:14] = 1
    movie[:, 4:20, 18:22] = 2  # HDBSCAN needs a second cluster
    emb = np.moveaxis(embedding_from_labels(movie, dim=4, noise=0.05, seed=0), 1, 0)
    result, _ = _run(
        track_pairs(
            emb, movie > 0, min_samples=4, min_cluster_size=20, coord_weight=1.0, object_size=4
        )
    )
    check_lineage(result.labels, result.lineage)
    # ...so only the split of the pair cluster (1, 2) tells the division.
    mother = result.labels[0, 10, 10]
    children = result.lineage[result.lineage[:, 3] == mother]
    assert len(result.lineage) == 4
    assert children[:, 1:3].tolist() == [[2, 3], [2, 3]]


def test_track_pairs_single_frame():
    labels = np.zeros((1, 16, 16), np.int64)
    labels[0, 2:8, 2:8] = 1
    labels[0, 10:15, 10:15] = 2
    emb = np.moveaxis(embedding_from_labels(labels, dim=4, seed=0), 1, 0)
    result, progress = _run(
        track_pairs(emb, labels > 0, min_samples=3, min_cluster_size=10, coord_weight=0.0)
    )
    assert progress == [(1, 1)]
    assert result.lineage.tolist() == [[1, 0, 0, 0], [2, 0, 0, 0]]


def test_track_pairs_cleans_each_frame_up_as_group_frame_does():
    from napari_cosine_embed.core.pipeline import PipelineConfig, group_frame

    yy, xx = np.indices((48, 64))
    truth = np.zeros((1, 48, 64), np.int64)
    truth[0][((yy - 24) ** 2 + (xx - 14) ** 2 < 81) | ((yy - 24) ** 2 + (xx - 29) ** 2 < 81)] = 1
    truth[0][(yy - 24) ** 2 + (xx - 52) ** 2 < 64] = 2  # a second cluster for HDBSCAN
    truth[0, 2:5, 2:5] = 3  # a speck below min_size
    emb = np.moveaxis(embedding_from_labels(truth, dim=4, noise=0.05, seed=0), 1, 0)
    config = PipelineConfig(
        min_samples=4, min_cluster_size=20, coord_weight=0.5, min_size=12, split_depth=0.2
    )
    result, _ = _run(
        track_pairs(
            emb,
            truth > 0,
            min_samples=config.min_samples,
            min_cluster_size=config.min_cluster_size,
            coord_weight=config.coord_weight,
            min_size=config.min_size,
            fill_holes=config.fill_holes,
            split_depth=config.split_depth,
        )
    )
    single = group_frame(emb[0], (truth[0] > 0).astype(np.float32), config)
    assert single.max() == 3  # the two joined discs are cut apart, the speck is dropped
    pairs = np.unique(np.stack([single.ravel(), result.labels[0].ravel()]), axis=1)
    assert pairs.shape[1] == 4  # the same partition: background and three objects


def test_false_split_with_dividing_child_keeps_a_valid_lineage():
    """A small child that itself divides is not merged back: its daughters would start inside
    the merged track (a lineage the CTC format cannot express)."""
    m = np.zeros((10, 32, 32), np.int32)
    m[0:3, 2:11, 2:11] = 1
    m[3:10, 2:11, 2:8] = 2  # the big child lives to the end
    m[3:6, 2:11, 9:11] = 3  # the small child (a third of its sibling) divides at frame 6
    m[6:10, 2:5, 9:11] = 4
    m[6:10, 7:11, 9:11] = 5
    result = link_labels(m, min_child_ratio=0.5, min_split_frames=1)
    check_lineage(result.labels, result.lineage)
    assert result.lineage.tolist() == [
        [1, 0, 2, 0],
        [2, 3, 9, 1],
        [3, 3, 5, 1],
        [4, 6, 9, 3],
        [5, 6, 9, 3],
    ]


# ---------------------------------------------------------------- late divisions, split back


def _discs(shape, *discs):
    """A label image of discs (label, centre y, centre x, radius); later ones paint over."""
    yy, xx = np.indices(shape)
    out = np.zeros(shape, np.int32)
    for label, cy, cx, r in discs:
        out[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = label
    return out


def _late_division_movie() -> np.ndarray:
    """A round mother (frames 0-2) whose daughters touch in frames 3-4, segmented as one
    instance with a neck there, and are apart from frame 5 on."""
    shape = (40, 60)
    frames = [_discs(shape, (1, 20, 30, 9)) for _ in range(3)]
    frames += [_discs(shape, (1, 20, 23, 7), (1, 20, 37, 7))]  # touching at one pixel, one id
    frames += [_discs(shape, (1, 20, 22, 7), (1, 20, 38, 7))]
    frames[4][19:22, 29:32] = 1
    frames += [_discs(shape, (1, 20, 20, 7), (2, 20, 40, 7)) for _ in range(3)]
    return np.stack(frames)


def test_split_back_moves_a_late_division_to_where_the_daughters_appear():
    movie = _late_division_movie()
    late = link_labels(movie, split_back=0)
    check_lineage(late.labels, late.lineage)
    assert sorted(late.lineage[:, 1:].tolist()) == [[0, 4, 0], [5, 7, 1], [5, 7, 1]]

    early = link_labels(movie, split_back=4)
    check_lineage(early.labels, early.lineage)
    assert sorted(early.lineage[:, 1:].tolist()) == [[0, 2, 0], [3, 7, 1], [3, 7, 1]]
    for t in (3, 4):  # each daughter of the merged instance is her own disc
        left, right = early.labels[t, 20, 22], early.labels[t, 20, 38]
        assert left != right
        assert left == early.labels[7, 20, 20]
        assert right == early.labels[7, 20, 40]
        assert (early.labels[t] > 0).sum() == (movie[t] > 0).sum()  # no pixel gained or lost
    assert len(np.unique(early.labels[2])) == 2  # the round mother is not cut
    # at most split_back frames: one frame back only
    one = link_labels(movie, split_back=1)
    assert sorted(one.lineage[:, 1:].tolist()) == [[0, 3, 0], [4, 7, 1], [4, 7, 1]]


def test_split_back_separates_two_nuclei_that_touched_for_a_while():
    shape = (40, 70)
    apart = [_discs(shape, (1, 20, 24 + t, 7), (2, 20, 46 - t, 7)) for t in range(4)]
    touching = [_discs(shape, (1, 20, 28, 7), (1, 20, 42, 7)) for _ in range(2)]  # one id
    after = [_discs(shape, (1, 20, 27 - t, 7), (2, 20, 43 + t, 7)) for t in range(4)]
    movie = np.stack(apart + touching + after)
    plain = link_labels(movie, split_back=0)
    assert (plain.lineage[:, 3] > 0).sum() == 2  # read as a division
    assert len(plain.lineage) == 4
    fixed = link_labels(movie, split_back=4)
    check_lineage(fixed.labels, fixed.lineage)
    assert sorted(fixed.lineage[:, 1:].tolist()) == [[0, 9, 0], [0, 9, 0]]
    assert fixed.labels[0, 20, 24] == fixed.labels[5, 20, 28] == fixed.labels[9, 20, 24]
    assert fixed.labels[0, 20, 46] == fixed.labels[5, 20, 42] == fixed.labels[9, 20, 46]


def test_split_back_keeps_a_round_nucleus_whole_and_checks_its_options():
    movie = _late_division_movie()
    deep = link_labels(movie, split_back=4, split_back_depth=0.9)  # no neck is that deep
    assert sorted(deep.lineage[:, 1:].tolist()) == [[0, 4, 0], [5, 7, 1], [5, 7, 1]]
    for bad in ({"split_back": -1}, {"split_back_depth": 1.0}):
        with pytest.raises(InputError, match="split_back"):
            link_labels(movie, **bad)


def test_split_back_on_synthetic_daughters_merged_after_mitosis(movie):
    """Daughters given one id in their first two frames: the division is seen two frames late
    without split back, and at the right frame with it."""
    from napari_cosine_embed.core.metrics import division_scores

    labels = movie.labels.copy()
    divisions = {}
    for parent in np.unique(movie.lineage[movie.lineage[:, 3] > 0, 3]):
        kids = movie.lineage[movie.lineage[:, 3] == parent]
        if len(kids) == 2 and kids[0, 2] - kids[0, 1] >= 4 and kids[1, 2] - kids[1, 1] >= 4:
            divisions[int(parent)] = kids
            for t in (kids[0, 1], kids[0, 1] + 1):
                labels[t][labels[t] == kids[1, 0]] = kids[0, 0]
    assert len(divisions) >= 2
    n_divisions = len(np.unique(movie.lineage[movie.lineage[:, 3] > 0, 3]))
    shuffled = _shuffle_per_frame(labels)
    late = link_labels(shuffled, split_back=0)
    s = division_scores(movie.labels, movie.lineage, late.labels, late.lineage, tolerance=1)
    assert s.tp <= n_divisions - len(divisions)  # 2 frames late: not found within 1
    fixed = link_labels(shuffled, split_back=3)
    check_lineage(fixed.labels, fixed.lineage)
    s = division_scores(movie.labels, movie.lineage, fixed.labels, fixed.lineage, tolerance=1)
    assert s.bc == 1.0  # every division found (one a frame early: its mother has a neck)
    assert tra_score(movie.labels, movie.lineage, fixed.labels, fixed.lineage) > tra_score(
        movie.labels, movie.lineage, late.labels, late.lineage
    )


def test_a_chain_of_single_children_becomes_one_track():
    """Two false divisions in a row whose slivers vanish at once (dropped as short and small)
    leave a track whose only child has an only child: all three are one object (this chain
    once crashed the clean-up with a KeyError)."""
    movie = np.zeros((7, 40, 40), np.uint16)
    movie[0:2, 10:30, 10:30] = 1
    movie[2, 10:30, 10:27], movie[2, 10:30, 28:30] = 1, 2  # slivers: far below a typical size
    movie[3, 10:30, 10:27] = 1
    movie[4, 10:30, 10:21], movie[4, 10:30, 22:24] = 1, 2
    movie[5:7, 10:30, 10:21] = 1
    result = link_labels(movie, min_track_length=2, min_split_frames=1, min_child_ratio=0)
    assert result.lineage.tolist() == [[1, 0, 6, 0]]
    assert np.array_equal(result.labels > 0, movie == 1)  # the one-frame pieces are dropped


def test_short_tracks_of_whole_objects_are_kept_and_slivers_dropped():
    """A whole object whose track broke (seen for one frame only) is kept; a one-frame sliver is
    noise and dropped; a one-frame piece lying under a neighbour's track joins that track."""
    movie = np.zeros((5, 60, 60), np.uint16)
    movie[:, 5:25, 5:25] = 1  # a steady object
    movie[2, 35:55, 35:55] = 2  # a whole object, one frame only
    movie[2, 40:42, 5:7] = 3  # a sliver, one frame only
    movie[1:4, 5:25, 30:50] = 4  # a second steady object...
    movie[2, 5:25, 30:50], movie[2, 5:25, 44:50] = 4, 5  # ...cut in two at frame 2
    result = link_labels(movie, min_track_length=2, min_split_frames=1, min_child_ratio=0)
    frame = result.labels[2]
    assert frame[45, 45] > 0  # kept
    assert frame[41, 6] == 0  # dropped
    assert frame[15, 46] == frame[15, 35] > 0  # the piece joined its object
    assert len(np.unique(frame)) == 4  # background and three objects


@pytest.mark.parametrize("split_back", [0, 4])
def test_pair_links_found_beforehand_give_the_same_tracks(movie, split_back, monkeypatch):
    """Links of frame pairs computed elsewhere (a worker) change nothing, and save the work."""
    from napari_cosine_embed.core.tracking import link_pair, overlap, pins_from_tracks

    labels = _shuffle_per_frame(movie.labels)
    labels[3:5] = np.where(labels[3:5] > 0, 1 + (labels[3:5] > 0), 0)  # two merged frames
    late = _late_division_movie()
    pins = pins_from_tracks(movie.labels, movie.lineage, frames=[10, 11])[:2]
    calls, real = [], overlap._link_pair

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    for frames in (labels, late):
        options = {"split_back": split_back, "min_track_length": 2, "max_gap": 2}
        options["pins"] = pins if frames is labels else ()
        plain = link_labels(frames, **options)
        given = {t: link_pair(frames[t], frames[t + 1]) for t in range(0, len(frames) - 1, 2)}
        calls.clear()
        monkeypatch.setattr(overlap, "_link_pair", counted)
        found = link_labels(frames, **options, pair_links=given)
        monkeypatch.setattr(overlap, "_link_pair", real)
        np.testing.assert_array_equal(found.labels, plain.labels)
        np.testing.assert_array_equal(found.lineage, plain.lineage)
        if split_back == 0:  # each pair linked once, here or before
            assert len(calls) == len(frames) - 1 - len(given)
    # the links given are used as they are: a pair given no link breaks every track there
    broken = link_labels(late, pair_links={5: {}})
    assert len(broken.lineage) == len(link_labels(late).lineage) + 2
