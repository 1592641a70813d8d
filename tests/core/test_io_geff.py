"""GEFF in and out: round trips, files written by geff's own API with other tools' conventions,
lossless conversion to and from CTC result folders, and what is refused."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from napari_cosine_embed.cli import main
from napari_cosine_embed.core.errors import InputError, OutputExistsError
from napari_cosine_embed.core.io.ctc import read_ctc_result, write_ctc_result
from napari_cosine_embed.core.io.geff_store import is_geff, read_geff, write_geff
from napari_cosine_embed.core.io.tracked import read_tracked, tracked_kind

geff = pytest.importorskip("geff")
nx = pytest.importorskip("networkx")


def tracked_movie():
    """Eight 24x24 frames: 1 divides into 2 and 3 at frame 3; 4 vanishes in frame 4 and comes
    back as 5 (a gap link); 6 enters at frame 2."""
    movie = np.zeros((8, 24, 24), np.uint16)
    movie[0:3, 2:6, 2:6] = 1
    movie[3:8, 1:3, 2:6] = 2
    movie[3:8, 6:9, 2:6] = 3
    movie[0:4, 12:16, 12:16] = 4
    movie[5:8, 13:17, 12:16] = 5
    movie[2:8, 18:22, 2:5] = 6
    lineage = np.array(
        [[1, 0, 2, 0], [2, 3, 7, 1], [3, 3, 7, 1], [4, 0, 3, 0], [5, 5, 7, 4], [6, 2, 7, 0]]
    )
    return movie, lineage


def graph_of(group):
    """Nodes as ``{(t, track): (y, x)}`` and edges as a set of ``((t, track), (t, track))``."""
    graph, _ = geff.read(str(group))
    key = {n: (int(d["t"]), int(d["track_id"])) for n, d in graph.nodes(data=True)}
    nodes = {key[n]: (round(d["y"], 6), round(d["x"], 6)) for n, d in graph.nodes(data=True)}
    return nodes, {(key[a], key[b]) for a, b in graph.edges()}


@pytest.mark.parametrize("name", ["tracks.geff", "tracks.zarr"])
def test_round_trip_keeps_masks_labels_and_graph(tmp_path, name):
    movie, lineage = tracked_movie()
    group = write_geff(tmp_path / name, movie, lineage)
    assert is_geff(tmp_path / name)
    geff.validate_structure(str(group))
    back = read_geff(tmp_path / name)
    np.testing.assert_array_equal(back.labels, movie)
    np.testing.assert_array_equal(back.lineage, lineage)
    assert back.graph == {2: [1], 3: [1], 5: [4]}
    assert back.notes == []
    nodes, edges = graph_of(group)
    assert len(nodes) == int(sum(len(np.unique(f)) - 1 for f in movie))
    assert ((2, 1), (3, 2)) in edges  # the division
    assert ((3, 4), (5, 5)) in edges  # the link across the gap
    assert ((0, 1), (1, 1)) in edges
    assert nodes[(0, 1)] == (3.5, 3.5)
    # Written again from what was read: the same graph.
    again = write_geff(tmp_path / f"again-{name}", back.labels, back.lineage)
    assert graph_of(again) == (nodes, edges)


def test_geff_read_by_geffs_own_ctc_converter(tmp_path):
    """geff's converter names tracks ``tracklet_id`` and keeps the segmentation elsewhere."""
    convert = pytest.importorskip("geff.convert")
    movie, lineage = tracked_movie()
    folder = write_ctc_result(tmp_path / "01_RES", movie, lineage)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        convert.from_ctc_to_geff(folder, tmp_path / "other.geff", tmp_path / "seg.zarr")
    back = read_geff(tmp_path / "other.geff")
    np.testing.assert_array_equal(back.labels, movie)
    np.testing.assert_array_equal(back.lineage, lineage)


def test_geff_with_motile_tracker_conventions(tmp_path):
    """Node ids from 1000, a ``seg_id`` per node painted into the segmentation, ``track_id``
    that changes at a division, in a Zarr container beside ``segmentation``."""
    import zarr

    movie, lineage = tracked_movie()
    graph = nx.DiGraph()
    seg = np.zeros(movie.shape, np.uint32)
    node_of = {}
    next_id = 1000
    for t in range(movie.shape[0]):
        for label in np.unique(movie[t])[1:]:
            ys, xs = np.nonzero(movie[t] == label)
            graph.add_node(
                next_id,
                t=t,
                y=float(ys.mean()),
                x=float(xs.mean()),
                seg_id=next_id,
                track_id=int(label),
            )
            seg[t][movie[t] == label] = next_id
            node_of[(t, int(label))] = next_id
            next_id += 1
    for (t, label), node in node_of.items():
        if (t + 1, label) in node_of:
            graph.add_edge(node, node_of[(t + 1, label)])
    for child, first, _, parent in lineage:
        if parent:
            end = int(lineage[lineage[:, 0] == parent][0, 2])
            graph.add_edge(node_of[(end, int(parent))], node_of[(int(first), int(child))])
    container = tmp_path / "motile.zarr"
    zarr.open_group(str(container), mode="w", zarr_format=2)
    zarr.open_array(
        str(container / "segmentation"), mode="w", shape=seg.shape, dtype=seg.dtype, zarr_format=2
    )[:] = seg
    metadata = geff.GeffMetadata(
        geff_version="1.3.0",
        directed=True,
        axes=[
            {"name": "t", "type": "time"},
            {"name": "y", "type": "space"},
            {"name": "x", "type": "space"},
        ],
        node_props_metadata={},
        edge_props_metadata={},
        track_node_props={"tracklet": "track_id"},
        related_objects=[{"type": "labels", "path": "../segmentation", "node_prop": "seg_id"}],
    )
    geff.write(graph, str(container / "tracks.geff"), metadata=metadata)
    assert tracked_kind(container) == "geff"
    back = read_tracked(container)
    np.testing.assert_array_equal(back.labels, movie)
    np.testing.assert_array_equal(back.lineage, lineage)


def test_unnamed_tracks_are_numbered_and_said(tmp_path):
    movie, lineage = tracked_movie()
    group = write_geff(tmp_path / "t.geff", movie, lineage)
    graph, metadata = geff.read(str(group))
    for _, data in graph.nodes(data=True):
        data["track_id"] = 7  # one id for everything: not a track id any more
    geff.write(graph, str(tmp_path / "renamed.geff"), metadata=metadata)
    import shutil

    shutil.copytree(group / "segmentation", tmp_path / "renamed.geff" / "segmentation")
    back = read_geff(tmp_path / "renamed.geff")
    assert sorted(back.lineage[:, 0].tolist()) == [1, 2, 3, 4, 5, 6]
    assert "numbered 1..6" in back.notes[0]
    assert len(np.unique(back.labels)) == 7


def test_refuses_what_is_no_lineage(tmp_path):
    movie, lineage = tracked_movie()
    group = write_geff(tmp_path / "t.geff", movie, lineage)
    graph, metadata = geff.read(str(group))
    ends = [n for n, d in graph.nodes(data=True) if d["t"] == 2 and d["track_id"] in (1, 6)]
    child = next(n for n, d in graph.nodes(data=True) if d["t"] == 3 and d["track_id"] == 6)
    for n in ends:
        graph.add_edge(n, child)  # 1 and 6 both lead into one node: a merge
    geff.write(graph, str(tmp_path / "merge.geff"), metadata=metadata)
    with pytest.raises(InputError, match="predecessors"):
        read_geff(tmp_path / "merge.geff")
    with pytest.raises(InputError, match="no GEFF here"):
        read_geff(tmp_path)
    (tmp_path / "t.geff" / "segmentation").rename(tmp_path / "elsewhere")
    with pytest.raises(InputError, match="segmentation"):
        read_geff(tmp_path / "t.geff")


def test_write_refuses_to_overwrite_and_bad_lineage(tmp_path):
    movie, lineage = tracked_movie()
    write_geff(tmp_path / "t.geff", movie, lineage)
    with pytest.raises(OutputExistsError):
        write_geff(tmp_path / "t.geff", movie, lineage)
    bad = lineage.copy()
    bad[1, 3] = 2  # its own parent
    with pytest.raises(InputError, match="own parent"):
        write_geff(tmp_path / "u.geff", movie, bad)
    assert not (tmp_path / "u.geff").exists()


def test_convert_is_lossless_both_ways(tmp_path, capsys):
    movie, lineage = tracked_movie()
    res = write_ctc_result(tmp_path / "01_RES", movie, lineage)
    assert main(["convert", str(res), "-o", str(tmp_path / "t.zarr")]) == 0
    assert "6 tracks" in capsys.readouterr().out
    assert main(["convert", str(tmp_path / "t.zarr"), "-o", str(tmp_path / "back_RES")]) == 0
    labels, back_lineage = read_ctc_result(tmp_path / "back_RES")
    np.testing.assert_array_equal(labels, movie)
    np.testing.assert_array_equal(back_lineage, lineage)
    assert (tmp_path / "back_RES" / "res_track.txt").read_text() == (
        res / "res_track.txt"
    ).read_text()
    # GEFF -> CTC -> GEFF: the same graph.
    assert main(["convert", str(tmp_path / "back_RES"), "-o", str(tmp_path / "t2.geff")]) == 0
    assert graph_of(tmp_path / "t2.geff") == graph_of(tmp_path / "t.zarr" / "tracks.geff")


def test_convert_refuses_without_overwrite_and_on_nothing(tmp_path, capsys):
    movie, lineage = tracked_movie()
    res = write_ctc_result(tmp_path / "01_RES", movie, lineage)
    (tmp_path / "taken.geff").mkdir()
    assert main(["convert", str(res), "-o", str(tmp_path / "taken.geff")]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["convert", str(tmp_path / "taken.geff"), "-o", str(tmp_path / "x_RES")]) == 2
    assert "neither a CTC result" in capsys.readouterr().err
    assert main(["convert", str(res), "-o", str(res / "inside.geff")]) == 2
