"""Why the embedding view paints most nuclei alike: how far apart touching objects point.

For the CTC dev sequences with complete SEG masks, the bundled model embeds the annotated frames
that hold touching objects (as the Embed widget does: diameter estimated, first frame
embedded too); for every pair of annotated objects within 2 px of each other it prints the
cosine between the two objects' mean embeddings (pixels 2 px inside each outline), and the
share of pairs the Embed widget's PCA view (fitted on the first frame, as the widget fits it)
shows in clearly different colours (mean colours more than 100 apart in 0-255 RGB), over all
pairs and over the pairs the model itself points apart.

Run: ``cd benchmarks && ../.venv/bin/python bench_embedding_view.py [--frames 40]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy import ndimage

from napari_cosine_embed._widgets._pca import PCAColours
from napari_cosine_embed.core.checkpoint import load_model
from napari_cosine_embed.core.io.ctc import read_ctc_gt, read_ctc_sequence
from napari_cosine_embed.core.size_plan import iter_embed_at_size, plan_size

SEQUENCES = ("Fluo-N2DH-SIM+", "Fluo-C2DL-MSC")  # SEG masks complete (GOWT1's are partial)


def touching_pairs(labels: np.ndarray) -> set[tuple[int, int]]:
    """Pairs of labels that come within 2 px of each other."""
    grown = ndimage.grey_dilation(labels, size=5)
    edge = (labels > 0) & (grown > 0) & (grown != labels)
    return {tuple(sorted(p)) for p in zip(labels[edge], grown[edge], strict=True)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    root = Path(__file__).parents[1] / ".." / "shared" / "data"
    parser.add_argument("--data", type=Path, default=root)
    parser.add_argument("--frames", type=int, default=40, help="annotated frames per sequence")
    args = parser.parse_args()
    model = load_model("default")
    print(
        "| sequence | pairs | cosine of touching pairs: 10/25/50/75/90 % | PCA view tells apart: all | cos < 0.5 | cos < 0.8 |"
    )
    print("|---|---:|---|---:|---:|---:|")
    for name in SEQUENCES:
        folder = args.data / "ctc" / name
        movie, gt = read_ctc_sequence(folder / "02"), read_ctc_gt(folder / "02_GT")
        frames = [t for t in sorted(gt.seg) if touching_pairs(gt.seg[t])][: args.frames]
        plan = plan_size(model, movie, "auto")
        wanted = sorted({0, *frames})
        results = {r.t: r for r in iter_embed_at_size(model, movie, wanted, plan=plan)}
        pca = PCAColours.fit(results[0].embedding, results[0].foreground)
        cosines, apart = [], []
        for t in frames:
            labels, emb = gt.seg[t], results[t].embedding
            rgb = pca.rgb(emb, results[t].foreground).astype(np.float64)
            for a, b in touching_pairs(labels):
                inner_a = ndimage.binary_erosion(labels == a, iterations=2)
                inner_b = ndimage.binary_erosion(labels == b, iterations=2)
                if not inner_a.any() or not inner_b.any():
                    continue
                ma, mb = emb[:, inner_a].mean(1), emb[:, inner_b].mean(1)
                cosines.append(float(ma @ mb / np.linalg.norm(ma) / np.linalg.norm(mb)))
                gap = np.linalg.norm(rgb[inner_a].mean(0) - rgb[inner_b].mean(0))
                apart.append(gap > 100)
        cos, told = np.array(cosines), np.array(apart)
        quantiles = " / ".join(f"{q:.2f}" for q in np.percentile(cos, [10, 25, 50, 75, 90]))
        shares = [
            f"{told[sel].mean():.0%} of {sel.sum()}" if sel.any() else "- of 0"
            for sel in (cos < 2, cos < 0.5, cos < 0.8)
        ]
        print(f"| {name} 02 | {len(cos)} | {quantiles} | " + " | ".join(shares) + " |")


if __name__ == "__main__":
    main()
