"""Embedding quality of a model on data it was not trained on.

Run: ``.venv/bin/python benchmarks/eval_embedding_quality.py [--model default] [--data ../shared/data]``

For each image: the model's embedding of the whole frame, then, over the annotated instances,
- ``separation``: the fraction of neighbouring instance pairs (touching or within 5 px) whose
  mean embeddings have cosine below 0.5 (pairs that grouping can tell apart);
- ``within``: the mean cosine of an instance's pixels to the instance's mean direction;
- ``fg IoU``: IoU of the foreground head's mask (probability > 0.5) with the annotated objects.
Sets: the DSB 2018 images held out from training (the fixed hash split in
``core.training.data.dsb_held_out``), synthetic movies with seeds never used in training, and
(evaluation only, never training) annotated frames of the two CTC sequences.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import tifffile

from napari_cosine_embed.core.checkpoint import load_model
from napari_cosine_embed.core.embed import embed_with_foreground
from napari_cosine_embed.core.embedding_quality import aggregate_quality, embedding_quality
from napari_cosine_embed.core.io.ctc import read_ctc_gt, read_ctc_sequence
from napari_cosine_embed.core.synthetic import synthetic_timelapse
from napari_cosine_embed.core.synthetic_random import random_config
from napari_cosine_embed.core.training.data import dsb_held_out


def _fg_iou(fg: np.ndarray | None, labels: np.ndarray) -> float:
    if fg is None:
        return float("nan")
    pred, truth = fg > 0.5, labels > 0
    union = np.logical_or(pred, truth).sum()
    return float(np.logical_and(pred, truth).sum() / union) if union else 1.0


def _score(model, frames: list[tuple[np.ndarray, np.ndarray]]) -> dict:
    results, ious, seconds = [], [], []
    for image, labels in frames:
        t0 = time.perf_counter()
        emb, fg = embed_with_foreground(model, image)
        seconds.append((time.perf_counter() - t0) / emb.shape[0])
        for t in range(emb.shape[0]):
            lab = labels if labels.ndim == 2 else labels[t]
            if not lab.any():  # context frames of a CTC clip: seen by the network, not scored
                continue
            results.append(embedding_quality(emb[t], lab, neighbour_radius=5.0))
            ious.append(_fg_iou(None if fg is None else fg[t], lab))
    out = aggregate_quality(results)
    out["fg_iou"] = float(np.nanmean(ious))
    out["s_per_frame"] = float(np.median(seconds))
    out["n_frames"] = len(ious)
    return out


def dsb_frames(folder: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    ids = sorted(p.stem for p in (folder / "images").glob("*.tif"))
    held = [i for i in ids if dsb_held_out(i)]
    return [
        (
            tifffile.imread(folder / "images" / f"{i}.tif"),
            tifffile.imread(folder / "masks" / f"{i}.tif"),
        )
        for i in held
    ]


def synthetic_frames(n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    out = []
    for k in range(n):
        movie = synthetic_timelapse(random_config(seed=2_000_000 + k), n_frames=6)
        out.append((movie.image, movie.labels))
    return out


def ctc_frames(seq: Path, limit: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Annotated SEG frames, each embedded after the movie's preceding frames (state carried)."""
    gt = read_ctc_gt(seq.with_name(seq.name + "_GT"))
    movie = read_ctc_sequence(seq, lazy=True)
    out = []
    # frames with many annotated nuclei first (GOWT1 has 16 SEG frames with a single nucleus)
    frames = sorted(gt.seg, key=lambda t: -len(np.unique(gt.seg[t])))[:limit]
    for t in sorted(frames):
        start = max(0, t - 3)
        clip = np.asarray(movie[start : t + 1])
        labels = np.zeros(clip.shape, dtype=np.int32)
        labels[-1] = gt.seg[t]
        out.append((clip, labels))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument(
        "--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data"
    )
    parser.add_argument("--synthetic", type=int, default=6, help="held-out synthetic movies")
    parser.add_argument("--ctc-frames", type=int, default=4, help="annotated frames per sequence")
    args = parser.parse_args()
    model = load_model(args.model, device="cpu")
    print(f"model: {args.model} ({model.record.get('steps', '?')} steps)")
    sets = {"synthetic, held-out seeds": synthetic_frames(args.synthetic)}
    dsb = args.data / "dsb2018-fluo"
    if dsb.is_dir():
        sets["DSB 2018 held-out images"] = dsb_frames(dsb)
    for name in ("Fluo-N2DH-SIM+", "Fluo-N2DH-GOWT1"):
        seq = args.data / "ctc" / name / "02"
        if seq.is_dir():
            sets[f"{name} 02, annotated frames (eval only)"] = ctc_frames(seq, args.ctc_frames)
    print(
        "| data | frames | instances | neighbour pairs | separation (cos < 0.5) | within cosine | fg IoU |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, frames in sets.items():
        s = _score(model, frames)
        print(
            f"| {name} | {s['n_frames']} | {s['n_instances']} | {s['n_pairs']} | "
            f"{s['neighbour_separation']:.3f} | {s['within_cosine']:.3f} | {s['fg_iou']:.3f} |"
        )


if __name__ == "__main__":
    main()
