"""The reader's display range: robust percentiles, so a dim movie opens visible."""

from __future__ import annotations

import numpy as np
import tifffile

from napari_cosine_embed._reader import read_layers


def test_a_dim_8_bit_movie_gets_a_display_range_from_its_pixels(tmp_path):
    # like Fluo-N2DH-GOWT1: 8-bit, nearly every pixel under 50
    rng = np.random.default_rng(0)
    movie = rng.integers(0, 12, (5, 64, 64)).astype(np.uint8)
    movie[:, 20:30, 20:30] = 45
    movie[2, 0, 0] = 255  # one hot pixel does not set the range
    tifffile.imwrite(tmp_path / "dim.tif", movie)
    _, kwargs, kind = read_layers(tmp_path / "dim.tif")[0]
    assert kind == "image"
    lo, hi = kwargs["contrast_limits"]
    assert lo == 0
    assert 40 <= hi <= 45  # the nuclei are bright, not a fifth of the range


def test_a_flat_or_nan_movie_still_gets_a_usable_range(tmp_path):
    flat = np.full((4, 16, 16), 7, np.uint16)
    tifffile.imwrite(tmp_path / "flat.tif", flat)
    assert read_layers(tmp_path / "flat.tif")[0][1]["contrast_limits"] == [7.0, 8.0]
    nan = np.full((2, 16, 16), np.nan, np.float32)
    nan[1, :8] = 1.0
    tifffile.imwrite(tmp_path / "nan.tif", nan)
    lo, hi = read_layers(tmp_path / "nan.tif")[0][1]["contrast_limits"]
    assert np.isfinite([lo, hi]).all()
    assert hi > lo


def test_a_movie_s_layers_name_their_axes_so_the_slider_reads_t(tmp_path, make_napari_viewer):
    from napari_cosine_embed._sample_data import synthetic_timelapse_sample
    from napari_cosine_embed.core.io.ctc import write_ctc_result

    movie = np.zeros((5, 32, 32), np.uint16)
    movie[:, 8:16, 8:16] = 1
    tifffile.imwrite(tmp_path / "movie.tif", movie * 100)
    write_ctc_result(tmp_path / "res", movie, np.array([[1, 0, 4, 0]]))
    tifffile.imwrite(tmp_path / "image.tif", movie[0] * 100)
    layers = read_layers(tmp_path / "movie.tif") + read_layers(tmp_path / "res")
    assert [kind for *_, kind in layers] == ["image", "labels", "tracks"]
    for _, kwargs, _ in layers:
        assert kwargs["axis_labels"] == ("t", "y", "x")
    assert read_layers(tmp_path / "image.tif")[0][1]["axis_labels"] == ("y", "x")
    viewer = make_napari_viewer()
    for data, kwargs, kind in synthetic_timelapse_sample() + layers:
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    assert viewer.dims.axis_labels == ("t", "y", "x")
