"""Segmentation and tracking scores on Cell Tracking Challenge sequences, beside a plain baseline.

Run::

    .venv/bin/python benchmarks/bench_ctc.py [--data ../shared/data] [--model default]
        [--sequences Fluo-N2DH-SIM+ Fluo-N2DH-GOWT1] [--finetune] [--set key=value ...]
        [--no-baseline]

For each sequence ``<data>/ctc/<name>/02`` it runs, in one process:

* our pipeline (:func:`napari_cosine_embed.core.pipeline.run_pipeline`) with the default
  parameters (:class:`PipelineConfig`) and the chosen model;
* two baselines: Gaussian smoothing, Otsu threshold (of the intensities, and of their
  logarithm), distance-transform watershed, and the same overlap linking
  (:func:`~napari_cosine_embed.core.tracking.link_labels`, same options);
* with ``--finetune``, the loop users run: fine-tune the model on 5 curated frames with the
  ``finetune`` command, segment again, and score on the frames not trained on.

Scores are ours (:func:`~napari_cosine_embed.core.metrics.ctc_scores`), identical to
py-ctcmetrics (see docs/evaluation.md). Prints Markdown tables for docs/benchmarks.md.

Curated frames for fine-tuning: on SIM+ (complete SEG on every frame) the SEG masks of 5
evenly spaced frames. GOWT1's SEG annotates only a few nuclei per frame, which would teach the
other nuclei as background, so there a user's correction is simulated: our own labels of 5
frames, keeping each instance that holds exactly one TRA marker (false positives deleted, false
splits merged into the marker's instance), which is what a user would do in the Correct widget
in a few minutes; nuclei we missed stay missed (the honest worst case of a quick curation).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
from scipy import ndimage as ndi

from napari_cosine_embed.cli import main as cli
from napari_cosine_embed.core._generators import result_of
from napari_cosine_embed.core.checkpoint import load_model
from napari_cosine_embed.core.embedding_store import (
    EmbeddingStore,
    embedding_id,
    image_fingerprint,
    model_fingerprint,
)
from napari_cosine_embed.core.grouping import postprocess
from napari_cosine_embed.core.io.ctc import (
    read_ctc_gt,
    read_ctc_result,
    read_ctc_sequence,
    write_ctc_result,
)
from napari_cosine_embed.core.metrics import ctc_scores, division_scores
from napari_cosine_embed.core.pipeline import PipelineConfig, model_input, run_pipeline
from napari_cosine_embed.core.tracking import link_labels


def baseline_frame(
    image: np.ndarray, *, sigma: float = 2.0, min_distance: int = 12, log: bool = False
) -> np.ndarray:
    """Otsu threshold of the smoothed frame, split by a watershed on the distance transform.

    ``log``: threshold the logarithm of the smoothed intensities above their minimum instead.
    On nuclei with bright clumps over a dim body (SIM+), Otsu on the raw intensities separates
    the clumps from everything else; on the log scale it falls between background and body.
    """
    from skimage.feature import peak_local_max
    from skimage.filters import threshold_otsu
    from skimage.segmentation import watershed

    smooth = ndi.gaussian_filter(image.astype(np.float32), sigma)
    if log:
        smooth = np.log1p(smooth - smooth.min())
    mask = smooth > threshold_otsu(smooth)
    mask = ndi.binary_fill_holes(ndi.binary_opening(mask, iterations=2))
    distance = ndi.distance_transform_edt(mask)
    components, _ = ndi.label(mask)
    peaks = peak_local_max(distance, min_distance=min_distance, labels=components)
    markers = np.zeros(mask.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    labels = watershed(-distance, markers, mask=mask).astype(np.int32)
    # the same clean-up as ours: drop objects smaller than PipelineConfig().min_size
    return postprocess(labels, min_size=PipelineConfig().min_size)


def config_overrides(items: list[str]) -> dict:
    """``["key=value", ...]`` as PipelineConfig fields, each value cast to its field's type."""
    overrides = {}
    for item in items:
        key, value = item.split("=", 1)
        default = getattr(PipelineConfig(), key)
        if value.lower() == "none":
            overrides[key] = None
        else:
            overrides[key] = float(value) if default is None else type(default)(value)
    return overrides


def _gt_subset(gt_dir: Path, out: Path, *, exclude_seg: set[int]) -> Path:
    """A copy of a GT folder without the SEG frames trained on."""
    shutil.copytree(gt_dir / "TRA", out / "TRA")
    (out / "SEG").mkdir(parents=True)
    for path in (gt_dir / "SEG").glob("man_seg*.tif"):
        if int(path.stem[len("man_seg") :]) not in exclude_seg:
            shutil.copy(path, out / "SEG" / path.name)
    return out


def run_ours(movie, model, config: PipelineConfig, cache: Path, res: Path) -> dict:
    n, dim = movie.shape[0], model.config.embedding_dim
    tic = time.perf_counter()
    config, size, view = model_input(movie, config.for_model(model), model)
    print(f"<!-- {size.describe()} -->", flush=True)
    ids = {
        "model_id": embedding_id(model, **config.embed_options()),
        "image_id": f"{image_fingerprint(movie)} x{size.scale}",
    }
    key = f"{model_fingerprint(model)}-{image_fingerprint(movie)}-{config.state_window}"
    key += "" if size.scale == 1 else f"-x{size.scale}"
    store = EmbeddingStore(n, dim, view.shape[1:], path=cache / f"{key}.zarr", **ids)
    cached = n - len(store.missing())
    result = result_of(run_pipeline(movie, config, model=model, store=store))
    write_ctc_result(res, result.labels, result.lineage, overwrite=True)
    seconds = dict(result.seconds)
    seconds["total"] = time.perf_counter() - tic
    seconds["cached_frames"] = cached
    return seconds


def run_baseline(movie, config: PipelineConfig, res: Path, *, log: bool = False) -> dict:
    tic = time.perf_counter()
    labels = np.stack([baseline_frame(np.asarray(frame), log=log) for frame in movie])
    t_seg = time.perf_counter() - tic
    tracked = link_labels(
        labels,
        min_iou=config.min_iou,
        min_child_overlap=config.min_child_overlap,
        min_track_length=config.min_track_length,
        min_split_frames=config.min_split_frames,
        min_child_ratio=config.min_child_ratio,
        max_gap=config.max_gap,
        max_gap_distance=config.max_gap_distance,
    )
    write_ctc_result(res, tracked.labels, tracked.lineage, overwrite=True)
    return {"group": t_seg, "total": time.perf_counter() - tic}


def curated_labels(name: str, gt_dir: Path, predicted: Path, frames: list[int]) -> np.ndarray:
    """Labels of the curated frames (others 0): GT SEG where complete, else a simulated fix."""
    gt = read_ctc_gt(gt_dir)
    shape = gt.tra.shape
    out = np.zeros(shape, np.uint16)
    if "SIM" in name:
        for t in frames:
            out[t] = gt.seg[t]
        return out
    from napari_cosine_embed.core.io.ctc import read_ctc_result

    pred, _ = read_ctc_result(predicted)
    for t in frames:
        markers, ours = np.asarray(gt.tra[t]), np.asarray(pred[t])
        for i, marker in enumerate(np.unique(markers)[1:], start=1):
            hit = np.unique(ours[(markers == marker) & (ours > 0)])
            mine = np.isin(ours, hit)
            # an instance that holds another marker too is a false merge: not curated
            if hit.size and len(np.unique(markers[mine & (markers > 0)])) == 1:
                out[t][mine] = i
    return out


def unfixed_mask(
    gt_dir: Path, predicted: Path, labels: np.ndarray, frames: list[int]
) -> np.ndarray:
    """Where a simulated fix (:func:`curated_labels`) left a nucleus unfixed: no loss there.

    A user who curates a frame splits false merges and draws missed nuclei; the simulation
    cannot (GOWT1 has no masks for them), so their pixels are marked unsure rather than taught
    as background: the predicted instances under each uncurated TRA marker, and a disk of the
    curated nuclei's median radius around the marker.
    """
    from napari_cosine_embed.core.diameter import equivalent_diameters
    from napari_cosine_embed.core.io.ctc import read_ctc_result

    gt = read_ctc_gt(gt_dir)
    pred, _ = read_ctc_result(predicted)
    out = np.zeros(labels.shape, bool)
    for t in frames:
        mine = np.asarray(labels[t])
        diameters = equivalent_diameters(mine)
        radius = max(2, round(float(np.median(diameters)) / 2)) if diameters.size else 10
        markers, ours = np.asarray(gt.tra[t]), np.asarray(pred[t])
        for marker in np.unique(markers)[1:]:
            at = markers == marker
            if (mine[at] > 0).any():
                continue
            hit = np.unique(ours[at & (ours > 0)])
            near = ndi.distance_transform_edt(~at) <= radius
            out[t] |= np.isin(ours, hit[hit > 0]) | near
        out[t] &= mine == 0
    return out


def pick_frames(gt_dir: Path, n: int = 5) -> list[int]:
    seg = sorted(int(p.stem[len("man_seg") :]) for p in (gt_dir / "SEG").glob("man_seg*.tif"))
    n_frames = len(list((gt_dir / "TRA").glob("man_track*.tif")))
    candidates = seg if "SIM" in str(gt_dir) else list(range(n_frames))
    idx = np.linspace(0, len(candidates) - 1, n + 2)[1:-1].round().astype(int)
    return [candidates[i] for i in idx]


MEASURES = ("SEG", "DET", "TRA", "BC(1)")


def _scores(gt: Path, res: Path) -> dict:
    return ctc_scores(gt, res, measures=MEASURES)


def _row(label: str, scores: dict, seconds: dict, n: int) -> str:
    fmt = " | ".join("-" if scores.get(k) is None else f"{scores[k]:.3f}" for k in MEASURES)
    return f"| {label} | {fmt} | {seconds['total'] / n:.2f} |"


def _division_counts(gt: Path, res: Path) -> str:
    """Divisions found, spurious and missed (BC(1)'s counts), as a Markdown comment."""
    truth = read_ctc_gt(gt)
    labels, lineage = read_ctc_result(res)
    s = division_scores(truth.tra, truth.lineage, labels, lineage, tolerance=1)
    return f"<!-- divisions within 1 frame: {s.tp} found, {s.fp} spurious, {s.fn} missed -->"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data", type=Path, default=Path(__file__).parents[1] / ".." / "shared" / "data"
    )
    parser.add_argument("--model", default="default")
    parser.add_argument("--sequences", nargs="+", default=["Fluo-N2DH-SIM+", "Fluo-N2DH-GOWT1"])
    parser.add_argument("--frames", type=int, default=0, help="first N frames only (0: all)")
    parser.add_argument("--finetune", action="store_true")
    parser.add_argument("--finetune-steps", type=int, default=200)
    parser.add_argument(
        "--cache", type=Path, default=Path(tempfile.gettempdir()) / "nce-bench-cache"
    )
    parser.add_argument("--set", nargs="*", default=[], help="PipelineConfig overrides k=v")
    parser.add_argument("--no-baseline", action="store_true", help="skip the Otsu baseline")
    args = parser.parse_args()

    config = PipelineConfig(model=args.model, **config_overrides(args.set))
    model = load_model(args.model)
    args.cache.mkdir(parents=True, exist_ok=True)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    shown = config.for_model(model).to_dict()  # the threshold filled in as the run will
    print(f"model {model.name} ({model_fingerprint(model)}); parameters: {shown}\n")
    print("| sequence / method | SEG | DET | TRA | BC(1) | s/frame |")
    print("|---|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name in args.sequences:
            seq, gt_dir = args.data / "ctc" / name / "02", args.data / "ctc" / name / "02_GT"
            movie = read_ctc_sequence(seq)
            if args.frames:
                movie = movie[: args.frames]
            n = movie.shape[0]
            gt = gt_dir
            if args.frames:
                gt = tmp / f"{name}-gt"
                _truncate_gt(gt_dir, gt, n)
            res = tmp / f"{name}-ours"
            seconds = run_ours(movie, model, config, args.cache, res)
            print(_row(f"{name} 02, ours ({model.name})", _scores(gt, res), seconds, n), flush=True)
            print(_division_counts(gt, res), flush=True)
            if not args.no_baseline:
                for log, what in ((False, "Otsu"), (True, "Otsu on log intensities")):
                    base = tmp / f"{name}-base{'-log' if log else ''}"
                    seconds_b = run_baseline(movie, config, base, log=log)
                    print(
                        _row(f"{name} 02, {what} + watershed", _scores(gt, base), seconds_b, n),
                        flush=True,
                    )
            print(f"<!-- ours: {seconds} -->", flush=True)
            if not args.finetune:
                continue
            frames = pick_frames(gt)
            labels = curated_labels(name, gt, res, frames)
            lab_path = tmp / f"{name}-curated.tif"
            tifffile.imwrite(lab_path, labels, compression="zlib")
            tuned = tmp / f"{name}-tuned.pt"
            images = tmp / f"{name}-images.tif"
            tifffile.imwrite(images, np.asarray(movie))
            tic = time.perf_counter()
            code = cli(["finetune", "--base", args.model, "--images", str(images), "--labels",
                        str(lab_path), "--frames", ",".join(map(str, frames)), "--out", str(tuned),
                        "--steps", str(args.finetune_steps), "--log-every", "50"])  # fmt: skip
            assert code == 0
            t_ft = time.perf_counter() - tic
            held = _gt_subset(gt, tmp / f"{name}-gt-held", exclude_seg=set(frames))
            tuned_model = load_model(tuned)
            res_t = tmp / f"{name}-tuned-res"
            seconds_t = run_ours(movie, tuned_model, config, args.cache, res_t)
            print(_row(f"{name} 02, default model, other frames", _scores(held, res), seconds, n))
            print(_row(f"{name} 02, fine-tuned on frames {frames} ({t_ft:.0f} s), other frames",
                       _scores(held, res_t), seconds_t, n), flush=True)  # fmt: skip


def _truncate_gt(gt_dir: Path, out: Path, n: int) -> None:
    (out / "SEG").mkdir(parents=True)
    (out / "TRA").mkdir()
    for kind, prefix in (("SEG", "man_seg"), ("TRA", "man_track")):
        for path in (gt_dir / kind).glob(f"{prefix}*.tif"):
            if int(path.stem[len(prefix) :]) < n:
                shutil.copy(path, out / kind / path.name)
    rows = []
    for line in (gt_dir / "TRA" / "man_track.txt").read_text().split("\n"):
        if line.strip():
            label, first, last, parent = map(int, line.split())
            if first < n:
                rows.append(f"{label} {first} {min(last, n - 1)} {parent}")
    (out / "TRA" / "man_track.txt").write_text("\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
