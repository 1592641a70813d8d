"""Corrupt, truncated and mislabelled files: every reader refuses them with a message that names
the file and says what is wrong, and the user's files are left as they were.

Command-line cases run ``main(argv)`` in-process and check the exit status 2, the message on
stderr and that nothing under the test folder changed; reader-level cases (the napari reader,
``read_any``, ``load_model``) check the :class:`InputError` itself.
"""

from __future__ import annotations

import os
import pickle
import shutil
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from _files import checksums

from napari_cosine_embed._reader import read_layers
from napari_cosine_embed.cli import main
from napari_cosine_embed.core.checkpoint import (
    EmbeddingModel,
    checkpoint_payload,
    load_model,
    save_model,
)
from napari_cosine_embed.core.errors import InputError
from napari_cosine_embed.core.io import read_any, read_ctc_gt, read_ctc_sequence, read_lineage
from napari_cosine_embed.core.io.ctc import write_ctc_result
from napari_cosine_embed.core.models import ModelConfig

TINY = ModelConfig(filters=8, levels=2, embedding_dim=4)


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    """A 4-frame 64x64 CTC dataset (``01``, ``01_GT``) and a perfect result ``01_RES``."""
    root = tmp_path_factory.mktemp("corrupt") / "sample"
    assert main(["sample", str(root), "--frames", "4", "--size", "64", "64", "--cells", "6"]) == 0
    gt = read_ctc_gt(root / "01_GT")
    write_ctc_result(root / "01_RES", gt.tra, gt.lineage)
    return root


@pytest.fixture
def data(sample, tmp_path) -> Path:
    """A private copy of the sample to break."""
    return Path(shutil.copytree(sample, tmp_path / "data"))


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    return save_model(
        tmp_path_factory.mktemp("model") / "tiny.pt", EmbeddingModel.new(TINY, seed=0)
    )


def refused(capsys, root: Path, argv: list[str], *words: str) -> str:
    """Run the command line, expect exit 2 with ``words`` on stderr and ``root`` unchanged."""
    before = checksums(root)
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.startswith(f"napari-cosine-embed {argv[0]}: error: ")
    for word in words:
        assert word in err, f"{word!r} not in {err!r}"
    assert checksums(root) == before, "the command changed the user's files"
    return err


def _evaluate(data: Path) -> list[str]:
    return ["evaluate", "--gt", str(data / "01_GT"), "--res", str(data / "01_RES")]


def _png_bytes() -> bytes:
    import io

    import imageio.v3 as iio

    buffer = io.BytesIO()
    iio.imwrite(buffer, np.zeros((8, 8), np.uint8), extension=".png")
    return buffer.getvalue()


# --- TIFF files ------------------------------------------------------------------------------


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


TIFF_DAMAGE = {
    "truncated": (_truncate, ["corrupt or truncated"]),
    "header only": (lambda p: p.write_bytes(p.read_bytes()[:6]), ["corrupt or truncated"]),
    "zero bytes": (lambda p: p.write_bytes(b""), ["empty (0 bytes)"]),
    "text": (lambda p: p.write_text("frame 1: nothing\n"), ["holds text"]),
    "png": (lambda p: p.write_bytes(_png_bytes()), ["PNG image"]),
}


@pytest.mark.parametrize("damage", list(TIFF_DAMAGE))
def test_damaged_result_mask_is_named(capsys, data, damage):
    breaks, words = TIFF_DAMAGE[damage]
    breaks(data / "01_RES" / "mask002.tif")
    refused(capsys, data, _evaluate(data), "mask002.tif", "not a readable TIFF file", *words)


@pytest.mark.parametrize("damage", ["truncated", "text"])
def test_damaged_ground_truth_marker_is_named(capsys, data, damage):
    breaks, words = TIFF_DAMAGE[damage]
    breaks(data / "01_GT" / "TRA" / "man_track001.tif")
    refused(capsys, data, _evaluate(data), "man_track001.tif", *words)


def test_damaged_movie_is_named_by_segment(capsys, tmp_path):
    movie = tmp_path / "movie.tif"
    tifffile.imwrite(movie, np.zeros((3, 32, 32), np.uint16))
    _truncate(movie)
    out = tmp_path / "out"
    refused(capsys, tmp_path, ["segment", str(movie), "-o", str(out)], "movie.tif", "truncated")
    assert not out.exists()


@pytest.mark.parametrize(
    ("dtype", "photometric"), [(np.float32, None), (np.complex64, None), (np.uint8, "rgb")]
)
def test_result_masks_of_the_wrong_dtype_are_refused(capsys, data, dtype, photometric):
    for path in sorted((data / "01_RES").glob("mask*.tif")):
        labels = tifffile.imread(path)
        if photometric == "rgb":
            image = np.stack([labels.astype(np.uint8)] * 3, axis=-1)
            tifffile.imwrite(path, image, photometric="rgb")
        else:
            tifffile.imwrite(path, labels.astype(dtype), photometric="minisblack")
    if photometric == "rgb":
        words = ["mask000.tif", "RGB(A) colour image", "(64, 64, 3)"]
    else:
        words = ["mask000.tif", "wrong dtype for labels", np.dtype(dtype).name]
    refused(capsys, data, _evaluate(data), *words)


def test_instance_label_images_are_checked_file_by_file(capsys, tmp_path):
    gt, res = tmp_path / "gt", tmp_path / "res"
    gt.mkdir()
    res.mkdir()
    truth = np.zeros((16, 16), np.uint16)
    truth[2:6, 2:6] = 1
    tifffile.imwrite(gt / "a.tif", truth)
    argv = ["evaluate", "--gt", str(gt), "--res", str(res)]
    tifffile.imwrite(res / "a.tif", truth.astype(np.float64))
    refused(capsys, tmp_path, argv, str(res / "a.tif"), "wrong dtype", "float64")
    tifffile.imwrite(res / "a.tif", truth[:8])
    refused(capsys, tmp_path, argv, str(res / "a.tif"), "8x16 pixels", "16x16")
    (res / "a.tif").write_text("not labels")
    refused(capsys, tmp_path, argv, str(res / "a.tif"), "holds text")
    (res / "a.tif").unlink()
    (res / "a.tif").mkdir()
    refused(capsys, tmp_path, argv, str(res / "a.tif"), "is a folder")


def test_frames_of_different_shapes_in_one_folder(capsys, data):
    tifffile.imwrite(data / "01_RES" / "mask001.tif", np.zeros((32, 64), np.uint16))
    refused(capsys, data, _evaluate(data), "01_RES", "mask001.tif", "must share shape", "(32, 64)")
    tifffile.imwrite(data / "01" / "t002.tif", np.zeros((8, 8), np.uint16))
    with pytest.raises(InputError, match=r"01: frames must share shape.*t002\.tif is \(8, 8\)"):
        read_ctc_sequence(data / "01")


def test_empty_and_misplaced_folders(capsys, data):
    for mask in (data / "01_RES").glob("mask*.tif"):
        mask.unlink()
    refused(capsys, data, _evaluate(data), "01_RES", "no maskNNN.tif files found")
    mask_file = data / "01_GT" / "TRA" / "man_track000.tif"
    argv = ["evaluate", "--gt", str(data / "01_GT"), "--res", str(mask_file)]
    refused(capsys, data, argv, "man_track000.tif", "is not a folder", "it is a file")
    for frame in (data / "01").glob("t*.tif"):
        frame.unlink()
    with pytest.raises(InputError, match=r"01: folder is neither a Zarr store nor"):
        read_any(data / "01")


# --- lineage text files ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("hello world\n", ["line 1", "expected four integers"]),
        ("1 0 3\n", ["line 1", "expected four integers", "'1 0 3'"]),
        ("1 0 3 0\n2 0 -3 0\n", ["line 2", "negative number"]),
        ("1 0 2.5 0\n", ["line 1", "expected four integers"]),
        ("0 0 3 0\n", ["line 1", "label 0"]),
        ("\x00\xff\xfe binary", ["not a lineage text file"]),
    ],
    ids=["garbage", "three-columns", "negative", "non-integer", "label-zero", "binary"],
)
def test_malformed_track_file_is_named_with_its_line(capsys, data, text, words):
    track_file = data / "01_GT" / "TRA" / "man_track.txt"
    track_file.write_bytes(text.encode("latin-1"))
    refused(capsys, data, _evaluate(data), str(track_file), *words)


def test_track_file_that_is_a_folder(data):
    track_file = data / "01_RES" / "res_track.txt"
    track_file.unlink()
    track_file.mkdir()
    with pytest.raises(InputError, match=r"res_track\.txt: is a folder, expected a lineage"):
        read_lineage(track_file)


# --- Zarr stores, videos and the napari reader ------------------------------------------------


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_zarr_without_metadata_is_refused(capsys, tmp_path, zarr_format):
    import zarr

    store = tmp_path / "movie.zarr"
    zarr.create_array(
        store, shape=(3, 16, 16), chunks=(1, 16, 16), dtype="uint8", zarr_format=zarr_format
    )[:] = 7
    (store / (".zarray" if zarr_format == 2 else "zarr.json")).unlink()
    out = tmp_path / "out"
    refused(
        capsys,
        tmp_path,
        ["segment", str(store), "-o", str(out)],
        "movie.zarr",
        "no Zarr metadata file",
    )


def test_zarr_with_garbage_metadata_is_refused(tmp_path):
    import zarr

    store = tmp_path / "movie.zarr"
    zarr.create_array(store, shape=(3, 16, 16), chunks=(1, 16, 16), dtype="uint8", zarr_format=3)
    (store / "zarr.json").write_text("{not json")
    with pytest.raises(InputError, match=r"movie\.zarr: corrupt Zarr metadata: not valid JSON"):
        read_any(store)


def test_empty_video_is_refused(tmp_path):
    (tmp_path / "clip.mp4").write_bytes(b"")
    with pytest.raises(InputError, match=r"clip\.mp4: not a readable video file: .*empty"):
        read_any(tmp_path / "clip.mp4")


def test_napari_reader_names_the_broken_file(tmp_path, data):
    bad = tmp_path / "movie.tif"
    bad.write_bytes(_png_bytes())
    with pytest.raises(InputError, match=r"movie\.tif: not a readable TIFF file: it is a PNG"):
        read_layers(str(bad))
    for marker in (data / "01_GT" / "TRA").glob("man_track*.tif"):
        tifffile.imwrite(marker, tifffile.imread(marker).astype(np.float32))
    with pytest.raises(InputError, match=r"man_track000\.tif: wrong dtype for labels.*float32"):
        read_layers(str(data / "01"))


def test_unreadable_file_says_so(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads files whatever their permissions, so chmod 000 cannot fail")
    path = tmp_path / "locked.tif"
    tifffile.imwrite(path, np.zeros((4, 4), np.uint8))
    path.chmod(0)
    try:
        with pytest.raises(InputError, match=r"locked\.tif: cannot be read \(Permission denied"):
            read_any(path)
    finally:
        path.chmod(0o644)


# --- model checkpoints ------------------------------------------------------------------------


def _payload_without(key: str):
    def write(path: Path) -> None:
        payload = checkpoint_payload(EmbeddingModel.new(TINY, seed=0))
        del payload[key]
        torch.save(payload, path)

    return write


def _non_finite(value: float):
    def write(path: Path) -> None:
        payload = checkpoint_payload(EmbeddingModel.new(TINY, seed=0))
        first = next(iter(payload["state_dict"].values()))
        first.view(-1)[0] = value
        torch.save(payload, path)

    return write


def _cut(source: Path, fraction: float):
    def write(path: Path) -> None:
        data = source.read_bytes()
        path.write_bytes(data[: int(len(data) * fraction)])

    return write


MODEL_DAMAGE = {
    "truncated": ("cut", ["corrupt or truncated model file"]),
    "header only": ("head", ["corrupt or truncated model file"]),
    "random bytes": (
        lambda p: p.write_bytes(np.random.default_rng(0).bytes(4096)[1:]),
        ["not a model file"],
    ),
    "garbage pickle": (lambda p: p.write_bytes(b"\x80\x02garbage"), ["corrupt or truncated"]),
    "text": (lambda p: p.write_text("not a model\n"), ["not a model file", "holds text"]),
    "zero bytes": (lambda p: p.write_bytes(b""), ["empty file (0 bytes)"]),
    "no state_dict": (_payload_without("state_dict"), ["'state_dict' is missing"]),
    "no config": (_payload_without("config"), ["'config' is missing"]),
    "nan weights": (_non_finite(float("nan")), ["non-finite weights"]),
    "inf weights": (_non_finite(float("inf")), ["non-finite weights"]),
}


@pytest.mark.parametrize("damage", list(MODEL_DAMAGE))
def test_bad_model_file_is_refused_for_what_it_is(capsys, tmp_path, model_file, damage):
    make, words = MODEL_DAMAGE[damage]
    if make == "cut":
        make = _cut(model_file, 0.5)
    elif make == "head":
        make = _cut(model_file, 0.002)
    bad = tmp_path / "bad.pt"
    make(bad)
    movie = tmp_path / "movie.tif"
    tifffile.imwrite(movie, np.zeros((2, 32, 32), np.uint16))
    argv = ["segment", str(movie), "-o", str(tmp_path / "out"), "--model", str(bad)]
    err = refused(capsys, tmp_path, argv, "bad.pt", *words)
    # damage is not a safety matter: only a pickled Python object may be called unsafe
    assert "unsafe" not in err
    assert "safety" not in err


def test_pickled_object_is_refused_as_unsafe(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(pickle.dumps({"format": 1, "x": Fraction(1, 3)}, protocol=2))
    with pytest.raises(InputError, match=r"bad\.pt: unsafe model file.*fractions\.Fraction"):
        load_model(bad, device="cpu")


def test_folder_given_as_model(tmp_path):
    (tmp_path / "model.pt").mkdir()
    with pytest.raises(InputError, match=r"model\.pt: is a folder, expected a model file"):
        load_model(tmp_path / "model.pt", device="cpu")
