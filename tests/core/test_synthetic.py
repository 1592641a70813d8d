"""Tests of the synthetic nuclei movies: ground truth that is consistent, and images that match it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_cosine_embed.core.errors import InputError
from napari_cosine_embed.core.synthetic import (
    SyntheticConfig,
    SyntheticMovie,
    synthetic_image,
    synthetic_timelapse,
)
from napari_cosine_embed.core.synthetic_random import random_config

SMALL = SyntheticConfig(shape=(96, 112), n_frames=12, n_cells=6, radius=(6.0, 10.0), seed=5)


@pytest.fixture(scope="module")
def movie() -> SyntheticMovie:
    """The default movie: 30 frames of 256 x 256 with divisions and open borders."""
    return synthetic_timelapse(seed=0)


@pytest.fixture(scope="module")
def dense() -> SyntheticMovie:
    """A crowded field: nuclei cover about a third of it."""
    return synthetic_timelapse(shape=(128, 128), n_frames=8, n_cells=26, radius=(6.0, 10.0), seed=2)


def _presence(labels: np.ndarray) -> dict[int, list[int]]:
    frames: dict[int, list[int]] = {}
    for t, frame in enumerate(labels):
        for value in np.unique(frame[frame > 0]):
            frames.setdefault(int(value), []).append(t)
    return frames


def _touching_pairs(frame: np.ndarray) -> set[tuple[int, int]]:
    pairs = set()
    for a, b in ((frame[1:], frame[:-1]), (frame[:, 1:], frame[:, :-1])):
        hit = (a > 0) & (b > 0) & (a != b)
        pairs |= {(int(min(p, q)), int(max(p, q))) for p, q in zip(a[hit], b[hit], strict=True)}
    return pairs


def test_same_seed_same_movie_and_other_seed_differs():
    a, b = synthetic_timelapse(SMALL), synthetic_timelapse(SMALL)
    c = synthetic_timelapse(SMALL, seed=6)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.lineage, b.lineage)
    assert not np.array_equal(a.image, c.image)
    assert not np.array_equal(a.labels, c.labels)


def test_shapes_dtypes_and_config_kept():
    m = synthetic_timelapse(SMALL, dtype="uint8")
    assert m.image.shape == m.labels.shape == (12, 96, 112)
    assert m.image.dtype == np.uint8
    assert m.labels.dtype == np.uint16
    assert m.lineage.dtype == np.int64
    assert m.lineage.shape[1] == 4
    assert m.config == dataclasses.replace(SMALL, dtype="uint8")
    assert synthetic_timelapse(SMALL).image.dtype == np.uint16
    image, labels = synthetic_image(SMALL)
    assert image.shape == labels.shape == (96, 112)
    assert labels.max() > 0


def test_overrides_replace_fields_and_bad_values_are_refused():
    assert synthetic_timelapse(n_frames=2, shape=(32, 48), n_cells=1).image.shape == (2, 32, 48)
    with pytest.raises(InputError, match="dtype"):
        SyntheticConfig(dtype="float32")
    with pytest.raises(InputError, match="radius"):
        SyntheticConfig(radius=(10.0, 5.0))
    with pytest.raises(TypeError):
        synthetic_timelapse(no_such_field=1)


def test_lineage_describes_labels_exactly(movie):
    presence = _presence(movie.labels)
    table = {int(r[0]): (int(r[1]), int(r[2]), int(r[3])) for r in movie.lineage}
    assert len(table) == len(movie.lineage)  # no label used twice
    assert set(presence) == set(table)
    for label, frames in presence.items():
        first, last, _ = table[label]
        assert frames == list(range(first, last + 1)), f"track {label} is not contiguous"


def test_divisions_give_two_daughters_right_after_the_mother(movie):
    table = {int(r[0]): (int(r[1]), int(r[2]), int(r[3])) for r in movie.lineage}
    children: dict[int, list[int]] = {}
    for label, (_, _, parent) in table.items():
        if parent:
            children.setdefault(parent, []).append(label)
    assert children, "the default movie should contain at least one division"
    for mother, daughters in children.items():
        assert len(daughters) == 2
        for d in daughters:
            assert table[d][0] == table[mother][1] + 1
        # away from the border, each daughter has roughly half the mother's area
        masks = [movie.labels[table[mother][1]] == mother]
        masks += [movie.labels[table[d][0]] == d for d in daughters]
        if any(mask[[0, -1]].any() or mask[:, [0, -1]].any() for mask in masks):
            continue
        areas = [mask.sum() for mask in masks]
        assert 0.25 < areas[1] / areas[0] < 0.75, areas
        assert 0.25 < areas[2] / areas[0] < 0.75, areas
        assert 0.7 < (areas[1] + areas[2]) / areas[0] < 1.35, areas


def test_no_divisions_without_a_cycle():
    m = synthetic_timelapse(SMALL, cycle_length=None, n_frames=40)
    assert (m.lineage[:, 3] == 0).all()


def test_closed_boundary_keeps_every_nucleus_for_the_whole_movie():
    m = synthetic_timelapse(SMALL, cycle_length=None, open_boundary=False, n_frames=25)
    assert len(m.lineage) == SMALL.n_cells
    assert (m.lineage[:, 1] == 0).all()
    assert (m.lineage[:, 2] == 24).all()


def test_open_boundary_lets_nuclei_leave_and_enter():
    m = synthetic_timelapse(SMALL, cycle_length=None, n_frames=60, speed=3.0)
    tracks = m.lineage
    assert ((tracks[:, 2] < 59) & (tracks[:, 3] == 0)).any()  # one leaves
    assert ((tracks[:, 1] > 0) & (tracks[:, 3] == 0)).any()  # one arrives


def test_objects_are_single_components_above_the_minimum_size(movie, dense):
    for m in (movie, dense):
        for frame in m.labels:
            for label in np.unique(frame[frame > 0]):
                mask = frame == label
                assert ndi.label(mask)[1] == 1
                assert mask.sum() >= m.config.min_area


def test_dense_field_has_touching_nuclei(dense):
    assert max(len(_touching_pairs(frame)) for frame in dense.labels) >= 3


def test_nuclei_are_bright_where_labelled(movie):
    image, labels = movie.image.astype(float), movie.labels
    inside = ndi.binary_erosion(labels > 0, iterations=2, border_value=1)
    far = ~ndi.binary_dilation(labels > 0, iterations=6)
    background = image[far]
    snr = (image[inside].mean() - background.mean()) / background.std()
    assert snr > 5, snr
    # every nucleus is brighter than a thin ring just outside it: labels and image line up
    frame, lab = image[10], labels[10]
    for label in np.unique(lab[lab > 0]):
        mask = lab == label
        ring = ndi.binary_dilation(mask, iterations=3) & ~ndi.binary_dilation(mask) & (lab == 0)
        if ring.sum() > 20:
            assert frame[mask].mean() > frame[ring].mean() + 2 * background.std()


def test_centroids_move_no_faster_than_the_speed_limit():
    m = synthetic_timelapse(SMALL, cycle_length=None, open_boundary=False, n_frames=20, speed=2.5)
    labels = m.lineage[:, 0]
    centres = np.array([ndi.center_of_mass(f > 0, f, labels) for f in m.labels])
    step = np.sqrt((np.diff(centres, axis=0) ** 2).sum(-1))
    assert step.max() <= 2.5 + 1.0, step.max()  # deformation moves a centroid a little
    assert step.mean() > 0.3  # and they do move


def test_out_of_focus_nuclei_are_visible_but_unlabelled():
    m = synthetic_timelapse(SMALL, out_of_focus=1.0, n_frames=2)
    assert m.labels.max() == 0
    assert len(m.lineage) == 0
    empty = synthetic_timelapse(SMALL, n_cells=0, n_frames=2)
    assert m.image.astype(float).std() > 1.5 * empty.image.astype(float).std()


def test_bleaching_dims_nuclei_over_time():
    m = synthetic_timelapse(SMALL, bleaching=0.05, cycle_length=None, n_frames=15, offset=0.0)
    signal = [m.image[t][m.labels[t] > 0].mean() for t in (0, 14)]
    assert signal[1] < 0.7 * signal[0]


def test_clumps_dim_the_body_under_bright_spots_and_leave_the_scene_alone():
    """Chromatin clumps (the look of Fluo-N2DH-SIM+): same nuclei, a body far below its spots.

    Only the first frame is compared: the camera noise draws depend on the signal, so later
    frames' motion differs."""
    plain = synthetic_timelapse(SMALL, n_frames=1, texture=0.2, read_noise=0.0, offset=0.0)
    clumpy = synthetic_timelapse(SMALL, n_frames=1, texture=0.2, read_noise=0.0, offset=0.0,
                                 clumps=15.0)  # fmt: skip
    np.testing.assert_array_equal(clumpy.labels, plain.labels)

    def spread(m):  # per nucleus: brightest pixels over the median pixel
        img, lab = m.image[0].astype(float), m.labels[0]
        return np.median([np.percentile(img[lab == i], 95) / np.median(img[lab == i])
                          for i in np.unique(lab)[1:]])  # fmt: skip

    assert spread(clumpy) > 2.0 * spread(plain)
    with pytest.raises(InputError, match="clumps"):
        synthetic_timelapse(SMALL, clumps=-1.0)


def test_some_random_configs_have_clumps():
    drawn = [random_config(seed=s).clumps for s in range(40)]
    assert 5 < sum(c > 0 for c in drawn) < 30
    assert all(c == 0 or 2 <= c <= 25 for c in drawn)


def test_crowded_draws_pack_nuclei_together_and_leave_the_rest_alone():
    plain = [random_config(seed=s, shape=(128, 128), n_frames=1) for s in range(30)]
    crowded = [random_config(seed=s, shape=(128, 128), n_frames=1, crowded=0.5) for s in range(30)]
    assert plain == [
        random_config(seed=s, shape=(128, 128), n_frames=1, crowded=0) for s in range(30)
    ]
    changed = [(p, c) for p, c in zip(plain, crowded, strict=True) if p != c]
    assert 5 < len(changed) < 25
    for p, c in changed:  # only the crowding fields differ
        assert c.n_cells >= 1.5 * p.n_cells - 1
        assert 0.15 <= c.overlap <= 0.3
        assert c == dataclasses.replace(p, n_cells=c.n_cells, overlap=c.overlap)
    pairs = [
        sum(len(_touching_pairs(synthetic_timelapse(cfg).labels[0])) for cfg in configs)
        for configs in zip(*changed, strict=True)
    ]
    assert pairs[1] > 1.5 * pairs[0], pairs


@pytest.mark.parametrize("seed", range(4))
def test_random_configs_are_valid_and_varied(seed):
    cfg = random_config(seed=seed, shape=(64, 64), n_frames=2)
    assert cfg.shape == (64, 64)
    assert cfg.seed == seed
    m = synthetic_timelapse(cfg)
    assert m.image.dtype == np.dtype(cfg.dtype)
    assert m.image.shape == (2, 64, 64)
    assert random_config(seed=seed) == random_config(seed=seed)
    assert random_config(seed=seed) != random_config(seed=seed + 10)


def test_lineage_passes_the_ctc_checker(movie, dense):
    lineage = pytest.importorskip("napari_cosine_embed.core.io.lineage")
    for m in (movie, dense):
        lineage.check_lineage(m.labels, m.lineage)


def test_transmitted_light_looks_have_dark_objects_on_a_bright_field():
    base = dataclasses.replace(SMALL, n_frames=2, background=5.0, read_noise=0.5)
    fluo = synthetic_timelapse(base)
    again = synthetic_timelapse(dataclasses.replace(base, look="fluorescence"))
    assert np.array_equal(again.image, fluo.image)
    for look in ("absorbing", "phase"):
        movie = synthetic_timelapse(dataclasses.replace(base, look=look, halo=1.0))
        # the same scene, imaged otherwise (later frames differ: noise draws use the rng)
        assert np.array_equal(movie.labels[0], fluo.labels[0])
        image, inside = movie.image[0].astype(float), movie.labels[0] > 0
        assert np.median(image[inside]) < 0.8 * np.median(image[~inside]), look
    phase = synthetic_timelapse(dataclasses.replace(base, look="phase", halo=1.5)).image[0]
    plain = synthetic_timelapse(dataclasses.replace(base, look="phase", halo=0.0)).image[0]
    inside = fluo.labels[0] > 0
    ring = ndi.binary_dilation(inside, iterations=3) & ~inside
    far = ~ndi.binary_dilation(inside, iterations=12)
    assert phase[ring].mean() > plain[ring].mean() + 0.1 * plain[far].mean()  # bright halos
    with pytest.raises(InputError, match="look"):
        SyntheticConfig(look="darkfield")
    with pytest.raises(InputError, match="contrast"):
        SyntheticConfig(contrast=-1.0)


def test_other_kinds_cover_rods_flat_cells_and_transmitted_light():
    plain = [random_config(seed=s, shape=(128, 128), n_frames=1) for s in range(40)]
    assert plain == [
        random_config(seed=s, shape=(128, 128), n_frames=1, other_kinds=0) for s in range(40)
    ]
    other = [
        random_config(seed=s, shape=(128, 128), n_frames=1, other_kinds=1.0) for s in range(40)
    ]
    looks = {cfg.look for cfg in other}
    assert looks == {"fluorescence", "absorbing", "phase"}
    rods = [c for c in other if c.aspect[0] >= 2.5]
    flat = [c for c in other if c.look == "fluorescence" and c.deformation >= 0.15]
    assert rods
    assert flat
    assert all(c.look == "phase" and c.radius[1] < 12 for c in rods)
    assert all(c.radius[1] > 23 for c in flat)  # 36-90 px across, as drawn
    for cfg in rods[:1] + flat[:1]:
        movie = synthetic_timelapse(cfg)
        assert movie.labels.max() > 0
