"""Re-tracking around pinned links: the links a user made or confirmed survive tracking again,
also after a new segmentation gives the objects other ids and shapes."""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import embed_labels

from napari_cosine_embed.core.tracking import Pin, link_labels, pins_from_tracks, track_pairs
from napari_cosine_embed.core.tracking.pins import inner_point, pinned_links

T = 6


def conveyor():
    """Three 8x8 cells in a row, each moving 12 px right per frame, so that every cell lands
    where its right neighbour was: overlap linking takes each for its neighbour. A fourth
    cell divides at frame 3 into daughters that jump apart (nothing overlaps its mother)."""
    movie = np.zeros((T, 64, 120), np.uint16)
    for t in range(T):
        for k, label in enumerate((1, 2, 3)):
            x = 10 + 12 * k + 12 * t
            movie[t, 10:18, x : x + 8] = label
        if t < 3:
            movie[t, 40:50, 50:60] = 4
        else:
            movie[t, 40:48, 20:28] = 5
            movie[t, 40:48, 90:98] = 6
    lineage = np.array(
        [[1, 0, 5, 0], [2, 0, 5, 0], [3, 0, 5, 0], [4, 0, 2, 0], [5, 3, 5, 4], [6, 3, 5, 4]]
    )
    return movie, lineage


def linked(result, pin: Pin) -> bool:
    """Whether the result links the objects under the pin: one track, or parent and child."""
    a = int(result.labels[pin.t][pin.source])
    b = int(result.labels[pin.t + 1][pin.target])
    if not a or not b:
        return False
    parent = {int(r[0]): int(r[3]) for r in result.lineage}
    return a == b or parent.get(b) == a


def test_pins_from_a_lineage_hold_every_link():
    movie, lineage = conveyor()
    links = pinned_links(lineage)
    assert (2, 4, 5) in links
    assert (2, 4, 6) in links
    assert (0, 1, 1) in links
    assert len(links) == 3 * 5 + 2 + 2 + 2 * 2
    pins = pins_from_tracks(movie, lineage, frames=[0, 1])
    assert len(pins) == 4  # 1, 2, 3 and 4 from frame 0 to 1
    for pin in pins:
        assert movie[pin.t][pin.source] == movie[pin.t + 1][pin.target]
    assert inner_point(movie[0] == 4) == (44, 54)


def test_retrack_keeps_three_pinned_links_the_tracker_gets_wrong():
    movie, lineage = conveyor()
    truth = pins_from_tracks(movie, lineage, frames=[1, 2])[:3]  # cells 1, 2, 3 at frame 1
    plain = link_labels(movie)
    assert not any(linked(plain, pin) for pin in truth)  # the tracker gets all three wrong
    pinned = link_labels(movie, pins=truth)
    assert all(linked(pinned, pin) for pin in truth)
    assert pinned.missed_pins == []
    # The rest is solved around them: the cells stay separate tracks, none merged or lost.
    assert len(np.unique(pinned.labels[2])) == len(np.unique(movie[2]))


def test_a_pinned_division_the_tracker_misses_is_kept():
    movie, lineage = conveyor()
    division = [p for p in pins_from_tracks(movie, lineage, tracks=[5, 6]) if p.t == 2]
    assert len(division) == 2
    plain = link_labels(movie)
    assert not (plain.lineage[:, 3] > 0).any()
    result = link_labels(movie, pins=division)
    mother = int(result.labels[2][division[0].source])
    daughters = {int(result.labels[3][p.target]) for p in division}
    assert len(daughters) == 2
    assert {int(r[0]) for r in result.lineage if r[3] == mother} == daughters


def test_pins_survive_a_new_segmentation():
    """Other ids per frame and objects shrunk by a pixel: the same pins still hold."""
    movie, lineage = conveyor()
    pins = pins_from_tracks(movie, lineage, frames=[1, 2])
    rng = np.random.default_rng(1)
    from scipy import ndimage as ndi

    new = np.zeros_like(movie)
    for t in range(T):
        ids = np.unique(movie[t])[1:]
        for label, other in zip(ids, rng.permutation(np.arange(10, 10 + ids.size)), strict=True):
            new[t][ndi.binary_erosion(movie[t] == label)] = other
    result = link_labels(new, pins=pins)
    assert all(linked(result, pin) for pin in pins)


def test_a_pin_on_nothing_is_reported_missed():
    movie, _ = conveyor()
    lost = Pin(0, (60, 110), (60, 110))
    outside = Pin(9, (0, 0), (0, 0))
    result = link_labels(movie, pins=[lost, outside])
    assert len(result.missed_pins) == 2
    assert set(result.missed_pins) == {lost, outside}


def test_clean_up_leaves_a_pinned_short_track():
    movie = np.zeros((5, 32, 32), np.uint16)
    movie[:, 4:12, 4:12] = 1
    movie[2:4, 20:24, 20:24] = 2  # two frames: removed as short unless pinned
    assert 2 not in link_labels(movie, min_track_length=3).labels[2]
    pin = Pin(2, (21, 21), (21, 21))
    result = link_labels(movie, min_track_length=3, pins=[pin])
    assert linked(result, pin)


def test_track_pairs_keeps_pins_too():
    movie, lineage = conveyor()
    truth = pins_from_tracks(movie, lineage, frames=[1, 2])[:3]
    emb = [embed_labels(movie[t], dim=8, seed=t) for t in range(T)]
    fg = [movie[t] > 0 for t in range(T)]
    options = {
        "min_samples": 3,
        "min_cluster_size": 20,
        "coord_weight": 0.0,
        "object_size": 8.0,
    }

    def run(**extra):
        gen = track_pairs(emb, fg, **options, **extra)
        while True:
            try:
                next(gen)
            except StopIteration as stop:
                return stop.value

    assert not any(linked(run(), pin) for pin in truth)
    result = run(pins=truth)
    assert all(linked(result, pin) for pin in truth)


@pytest.mark.parametrize("values", [[0, 1, 2, 3, 4], [7, 10, 20, 30, 40]])
def test_pin_list_round_trip(values):
    assert Pin.from_list(values).as_list() == values


def test_pins_file_round_trip_and_bad_file(tmp_path):
    from napari_cosine_embed.core.errors import InputError
    from napari_cosine_embed.core.tracking.pins import read_pins, write_pins

    pins = [Pin(0, (1, 2), (3, 4)), Pin(5, (6, 7), (8, 9))]
    write_pins(tmp_path / "pins.json", pins)
    assert read_pins(tmp_path / "pins.json") == pins
    (tmp_path / "bad.json").write_text('{"pins": [[1, 2]]}')
    with pytest.raises(InputError, match="not a pins file"):
        read_pins(tmp_path / "bad.json")
    with pytest.raises(InputError, match="cannot read pins"):
        read_pins(tmp_path / "missing.json")


def test_track_command_keeps_the_links_of_a_curated_result(tmp_path):
    import tifffile

    from napari_cosine_embed.cli import main
    from napari_cosine_embed.core.io.ctc import read_ctc_result, write_ctc_result

    movie, lineage = conveyor()
    tifffile.imwrite(tmp_path / "labels.tif", movie)
    curated = write_ctc_result(tmp_path / "curated_RES", movie, lineage)
    assert main(["track", str(tmp_path / "labels.tif"), "-o", str(tmp_path / "plain")]) == 0
    argv = ["track", str(tmp_path / "labels.tif"), "-o", str(tmp_path / "pinned")]
    assert main([*argv, "--pins", str(curated)]) == 0
    for folder, expect in (("plain", False), ("pinned", True)):
        labels, found = read_ctc_result(tmp_path / folder)
        result = type("R", (), {"labels": labels, "lineage": found})
        pins = pins_from_tracks(movie, lineage)
        assert all(linked(result, p) for p in pins) is expect


def test_a_projects_tracks_file_is_a_pins_file(tmp_path):
    """The Lineage widget's tracks.json can be given to --pins as it is."""
    from napari_cosine_embed.core.project import Project
    from napari_cosine_embed.core.tracking.pins import read_pins

    movie, lineage = conveyor()
    pins = pins_from_tracks(movie, lineage, frames=[0, 1])
    project = Project.create(tmp_path / "p", shape=movie.shape, labels_name="tracked")
    project.save_tracks(lineage, pins=[p.as_list() for p in pins], reviewed=["jump:3:1"])
    assert read_pins(tmp_path / "p" / "tracks.json") == pins
    saved_lineage, saved_pins, reviewed = project.load_tracks()
    np.testing.assert_array_equal(saved_lineage, lineage)
    assert saved_pins == [p.as_list() for p in pins]
    assert reviewed == ["jump:3:1"]
