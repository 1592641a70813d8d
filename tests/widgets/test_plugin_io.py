"""The plugin's readers, writers and sample data, driven through napari and the manifest."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cosine_embed.cli import main as cli_main
from napari_cosine_embed.core.io.ctc import read_ctc_gt, read_ctc_result

PLUGIN = "napari-cosine-embed"


def _layer_kinds(viewer):
    return [type(layer).__name__ for layer in viewer.layers]


def test_synthetic_sample_opens_with_ground_truth_and_tracks(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "timelapse")
    assert _layer_kinds(viewer) == ["Image", "Labels", "Tracks"]
    image, labels, tracks = viewer.layers
    assert image.data.ndim == 3
    assert labels.data.shape == image.data.shape
    # every labelled object appears in the tracks layer at its frame
    t_ids = {(int(t), int(i)) for i, t in tracks.data[:, :2]}
    for t in (0, image.data.shape[0] - 1):
        for lab in np.unique(labels.data[t])[1:]:
            assert (t, int(lab)) in t_ids
    assert len(tracks.graph) >= 1, "the sample should contain at least one division"


def test_dsb_sample_opens_images_with_masks(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "dsb2018")
    kinds = _layer_kinds(viewer)
    assert kinds == ["Image", "Labels"] * 4
    for img, lab in zip(viewer.layers[::2], viewer.layers[1::2], strict=True):
        assert img.data.shape == lab.data.shape
        assert lab.data.max() >= 10  # each bundled image has at least ten nuclei


def test_ctc_folder_written_by_cli_opens_with_its_ground_truth(make_napari_viewer, tmp_path):
    assert cli_main(["sample", str(tmp_path / "ds"), "--frames", "12", "--seed", "3"]) == 0
    viewer = make_napari_viewer()
    layers = viewer.open(str(tmp_path / "ds" / "01"), plugin=PLUGIN)
    assert [type(x).__name__ for x in layers] == ["Image", "Labels", "Tracks"]
    gt = read_ctc_gt(tmp_path / "ds" / "01_GT")
    np.testing.assert_array_equal(layers[1].data, np.stack([gt.seg[t] for t in range(12)]))
    assert layers[0].data.shape == (12, 256, 256)


def test_ctc_result_writer_round_trips_labels_and_divisions(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "timelapse")
    labels, tracks = viewer.layers[1], viewer.layers[2]
    viewer.layers.selection = {labels, tracks}
    out = tmp_path / "result"
    written = viewer.layers.save(str(out), selected=True, plugin=PLUGIN)
    assert written == [str(out)]
    res, lineage = read_ctc_result(out)
    np.testing.assert_array_equal(res, labels.data)
    parents = {int(r[0]): int(r[3]) for r in lineage if r[3]}
    assert parents == {int(c): int(p[0]) for c, p in tracks.graph.items()}
    # a second save to the same folder is refused and leaves the first intact
    with pytest.raises(Exception, match="exists"):
        viewer.layers.save(str(out), selected=True, plugin=PLUGIN)
    np.testing.assert_array_equal(read_ctc_result(out)[0], labels.data)


def test_labels_tiff_writer(make_napari_viewer, tmp_path):
    import tifffile

    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "dsb2018")
    masks = viewer.layers[1]
    viewer.layers.selection = {masks}
    path = tmp_path / "masks.tif"
    viewer.layers.save(str(path), selected=True, plugin=PLUGIN)
    np.testing.assert_array_equal(tifffile.imread(path), masks.data)


@pytest.mark.slow
def test_opens_real_ctc_sequence_with_gt(make_napari_viewer, sim_plus):
    viewer = make_napari_viewer()
    layers = viewer.open(str(sim_plus), plugin=PLUGIN)
    assert [type(x).__name__ for x in layers] == ["Image", "Labels", "Tracks"]
    assert layers[0].data.shape[0] == 150
    assert layers[1].data.shape == layers[0].data.shape


def test_demo_window_renders_the_sample(qtbot):
    from napari_cosine_embed._demo import make_demo_viewer

    viewer = make_demo_viewer(show=True)
    try:
        shot = viewer.screenshot(canvas_only=True, flash=False)
        assert shot.ndim == 3
        assert shot.shape[2] == 4
        # the canvas shows nuclei and labels, not a blank frame
        assert shot[..., :3].std() > 5
        assert viewer.dims.current_step[0] == viewer.layers[0].data.shape[0] // 2
    finally:
        viewer.close()
