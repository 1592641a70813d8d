"""Mean-shift grouping of cosine pixel embeddings on the unit sphere, for inference.

Both variants use the von Mises-Fisher kernel ``k(x, p) = exp((x . p - 1) / bandwidth)``:

* **seeded** (Payer et al. 2018's code): seeds climb the kernel density estimate of the
  foreground embeddings, ``x <- normalise(sum_p k(x, p) p / sum_p k(x, p))``, to its modes; modes
  at similarity >= ``merge_threshold`` merge, and each pixel joins its most similar mode.
  Cost ``iterations x seeds x M x D``.
* **blurring** (Kong & Fowlkes 2018; the inference twin of
  :class:`~napari_cosine_embed.core.models.grouping.RecurrentMeanShift`): the points move and
  the density with them, so objects contract to points; these are grouped by the same threshold
  and each pixel joins the nearest group centre. Cost ``iterations x M^2 x D``.

Bounded cost and memory: the density is estimated from ``M <= max_points`` foreground pixels
drawn at random once (a consistent estimate; exact when there are fewer), and blurring moves the
first ``max_anchors`` of them. Kernel rows are normalised by a streaming log-sum-exp over column
blocks (as in flash attention): at most ``chunk`` kernel entries exist at once, and no weight
overflows at any bandwidth. :class:`MeanShiftGrouper` keeps the bandwidth-independent part (unit
embeddings on the device, support, seeds), so a new bandwidth costs only the iterations.

Seeds: ``seeding="farthest"`` (default) takes farthest-point samples of the support from a random
start, so every object with its own direction gets a seed however small; ``"random"`` (Payer et
al.) may leave objects under about ``N / n_seeds`` pixels without one, absorbed by a neighbour.

Coordinates: with ``coord_weight > 0`` a point is ``(e, c y, c x)``, ``c = coord_weight /
object_size``, as in the HDBSCAN grouper (:mod:`.points`). The kernel ``exp(-|x - p|^2 / (2
bandwidth))`` is then the vMF kernel times a spatial Gaussian of ``sqrt(bandwidth) / c`` pixels,
so distant objects sharing a direction form separate modes. "Similarity" means ``1 - |x - p|^2 /
2``, the cosine without coordinates. :func:`.postprocess.split_components` is the cheaper way.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..device import resolve_device
from ..errors import InputError
from ._validate import check_embedding

__all__ = ["MeanShiftGrouper", "blurring_meanshift", "meanshift_labels"]

METHODS = ("seeded", "blurring")
SEEDINGS = ("farthest", "random")


def _check_embedding(embedding, foreground) -> tuple[np.ndarray, np.ndarray]:
    emb = check_embedding(embedding)
    if foreground is None:
        fg = np.ones(emb.shape[1:], bool)
    else:
        fg = np.asarray(foreground)
        if fg.shape != emb.shape[1:]:
            raise InputError(
                f"foreground has shape {fg.shape} but the embedding's frame is {emb.shape[1:]}"
            )
        fg = fg.astype(bool, copy=False)
    return emb, fg


def _kernel_mean(x, points, bias, bandwidth: float, chunk: int):
    """Kernel-weighted means (n, F) of ``points`` (M, F) seen from rows ``x`` (n, F), and the
    log of the row sums of ``exp((x . p + bias_p) / bandwidth)`` (n,), in bounded memory."""
    rows = max(1, min(x.shape[0], chunk // max(1, min(points.shape[0], chunk))))
    cols = max(1, chunk // rows)
    means, lses = [], []
    for xr in x.split(rows):
        num = torch.zeros_like(xr)
        den = xr.new_zeros(xr.shape[0])
        top = xr.new_full((xr.shape[0],), -torch.inf)
        for pc, bc in zip(points.split(cols), bias.split(cols), strict=True):
            logits = torch.addmm(bc, xr, pc.T, beta=1.0, alpha=1.0).div_(bandwidth)
            new_top = torch.maximum(top, logits.amax(dim=1))
            scale = torch.exp(top - new_top)
            weights = torch.exp_(logits.sub_(new_top[:, None]))
            num = num * scale[:, None] + weights @ pc
            den = den * scale + weights.sum(dim=1)
            top = new_top
        means.append(num / den[:, None])
        lses.append(top + torch.log(den))
    return torch.cat(means), torch.cat(lses)


class MeanShiftGrouper:
    """Mean-shift grouping of one frame, with the bandwidth-independent work done once.

    Parameters
    ----------
    embedding : array_like of shape (D, Y, X)
        Pixel embeddings (any real dtype); normalised to unit length here.
    foreground : array_like of shape (Y, X), optional
        Pixels to group; the others get label 0. None: all pixels.
    coord_weight : float
        Distance added by moving ``object_size`` pixels (see the module docstring); 0 ignores
        position.
    object_size : float
        Typical object diameter in pixels, the unit of ``coord_weight``.
    device : str or torch.device
        ``"auto"``, ``"cpu"``, ``"cuda"``...; see :func:`~napari_cosine_embed.core.device.resolve_device`.
    max_points : int or None
        Most foreground pixels in the density estimate; None: all (slow on large frames).
    n_seeds : int
        Seeds of the seeded method.
    seeding : {"farthest", "random"}
        How the seeds are drawn from the support.
    seed : int
        Seed of the random draws.
    chunk : int
        Most kernel entries held at once.

    Examples
    --------
    >>> emb = np.zeros((2, 4, 6), np.float32); emb[0, :, :3] = 1; emb[1, :, 3:] = 1
    >>> MeanShiftGrouper(emb).labels(0.1)
    array([[1, 1, 1, 2, 2, 2],
           [1, 1, 1, 2, 2, 2],
           [1, 1, 1, 2, 2, 2],
           [1, 1, 1, 2, 2, 2]], dtype=int32)
    """

    def __init__(
        self,
        embedding,
        *,
        foreground=None,
        coord_weight: float = 0.0,
        object_size: float = 32.0,
        device="auto",
        max_points: int | None = 8192,
        n_seeds: int = 128,
        seeding: str = "farthest",
        seed: int = 0,
        chunk: int = 1 << 20,
    ) -> None:
        emb, fg = _check_embedding(embedding, foreground)
        if not (coord_weight >= 0 and object_size > 0 and n_seeds >= 1 and chunk >= 1):
            raise InputError(
                "need coord_weight >= 0, object_size > 0, n_seeds >= 1, chunk >= 1; got "
                f"{coord_weight}, {object_size}, {n_seeds}, {chunk}"
            )
        if max_points is not None and max_points < 1:
            raise InputError(f"max_points must be >= 1 or None, got {max_points}")
        if seeding not in SEEDINGS:
            raise InputError(f"unknown seeding {seeding!r}; choose one of {SEEDINGS}")
        self.device = resolve_device(device)
        self.shape = fg.shape
        self.dim = emb.shape[0]
        self.coord_weight = float(coord_weight)
        self.chunk = int(chunk)
        self._flat = np.flatnonzero(fg)
        n = self._flat.size
        generator = torch.Generator().manual_seed(seed)
        values = emb.reshape(self.dim, -1)[:, self._flat].T.astype(np.float32, copy=False)
        if not np.isfinite(values).all():
            raise InputError("embedding holds NaN or infinite values in the foreground")
        points = F.normalize(torch.from_numpy(np.ascontiguousarray(values)), dim=1)
        if self.coord_weight > 0:
            yx = np.stack(np.unravel_index(self._flat, fg.shape), axis=1).astype(np.float32)
            scale = self.coord_weight / object_size
            points = torch.cat([points, torch.from_numpy(yx) * scale], dim=1)
        self._points = points.to(self.device)
        self._bias = -0.5 * self._points[:, self.dim :].square().sum(dim=1)  # zeros without coords
        m = n if max_points is None else min(n, max_points)
        support = torch.randperm(n, generator=generator)[:m].to(self.device)
        self._support, self._support_bias = self._points[support], self._bias[support]
        self._seeds = self._draw_seeds(min(n_seeds, m), seeding, generator)

    def __repr__(self) -> str:
        return (
            f"MeanShiftGrouper(shape={self.shape}, dim={self.dim}, n_foreground={self._flat.size}, "
            f"n_support={self._support.shape[0]}, n_seeds={self._seeds.shape[0]}, "
            f"coord_weight={self.coord_weight:g}, device={self.device})"
        )

    def _draw_seeds(self, k: int, seeding: str, generator) -> torch.Tensor:
        m = self._support.shape[0]
        if seeding == "random" or k == 0:
            return torch.randperm(m, generator=generator)[:k].to(self.device)
        chosen = torch.empty(k, dtype=torch.long, device=self.device)
        chosen[0] = int(torch.randint(m, (1,), generator=generator))
        far = torch.full((m,), torch.inf, device=self.device)
        for i in range(1, k):
            newest = self._support[chosen[i - 1]]
            far = torch.minimum(far, -self._similarity(newest[None], self._support)[0])
            chosen[i] = far.argmax()
        return chosen

    def _similarity(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Similarity ``1 - |a - b|^2 / 2`` (the cosine without coordinates), shape (len a, len b)."""
        sim = a @ b.T
        if self.coord_weight > 0:
            sim += -0.5 * a[:, self.dim :].square().sum(1)[:, None]
            sim += -0.5 * b[:, self.dim :].square().sum(1)[None]
        return sim

    def _shift(self, x, points, bias, bandwidth):
        mean, lse = _kernel_mean(x, points, bias, bandwidth, self.chunk)
        mean[:, : self.dim] = F.normalize(mean[:, : self.dim], dim=1)
        return mean, lse

    def _seeded_modes(self, bandwidth, iterations, tol):
        x = self._support[self._seeds].clone()
        active = torch.arange(x.shape[0], device=self.device)
        for _ in range(iterations):
            new, _ = self._shift(x[active], self._support, self._support_bias, bandwidth)
            moved = (new - x[active]).norm(dim=1) > tol
            x[active] = new
            active = active[moved]
            if active.numel() == 0:
                break
        _, lse = self._shift(x, self._support, self._support_bias, bandwidth)
        return x, lse - 0.5 * x[:, self.dim :].square().sum(1) / bandwidth  # log density + const

    def _blurring_modes(self, bandwidth, iterations, tol, max_anchors, threshold):
        original = self._support[:max_anchors]
        x = original.clone()
        for _ in range(iterations):
            bias = -0.5 * x[:, self.dim :].square().sum(1)
            new, _ = self._shift(x, x, bias, bandwidth)
            shift = (new - x).norm(dim=1).median()  # outliers never settle; objects do
            x = new
            if float(shift) <= tol:
                break
        group, _ = self._leader_groups(x, None, threshold)
        count = torch.bincount(group)
        modes = torch.zeros(count.numel(), x.shape[1], device=self.device).index_add_(
            0, group, original
        )
        modes /= count[:, None]
        modes[:, : self.dim] = F.normalize(modes[:, : self.dim], dim=1)
        return modes

    def _leader_groups(self, x, density, threshold) -> tuple[torch.Tensor, np.ndarray]:
        """Group the rows of x: in order of decreasing density (default: the number of points at
        similarity >= threshold), each ungrouped point leads a group of the ungrouped points at
        similarity >= threshold, so groups never chain. Returns each row's group (n,), numbered
        by decreasing leader density, and the leaders' rows (K,). Memory O(chunk)."""
        rows = max(1, self.chunk // x.shape[0])
        if density is None:
            density = torch.cat(
                [(self._similarity(xr, x) >= threshold).sum(1) for xr in x.split(rows)]
            )
        group = np.full(x.shape[0], -1, np.int64)  # on the host: no device sync per point
        leaders = []
        for i in torch.argsort(density, descending=True).tolist():
            if group[i] >= 0:
                continue
            close = (self._similarity(x[i : i + 1], x)[0] >= threshold).cpu().numpy()
            close &= group < 0
            close[i] = True
            group[close] = len(leaders)
            leaders.append(i)
        return torch.from_numpy(group).to(self.device), np.asarray(leaders)

    def _assign(self, modes, keep, assign_threshold):
        """Index of the most similar kept mode per foreground pixel (-1 below the threshold)."""
        kept = modes[keep]
        offset = -0.5 * kept[:, self.dim :].square().sum(1)
        rows = max(1, self.chunk // max(1, kept.shape[0]))
        out = []
        for pts, bias in zip(self._points.split(rows), self._bias.split(rows), strict=True):
            score, idx = torch.addmm(offset, pts, kept.T).max(dim=1)
            if assign_threshold is not None:
                idx[score + bias < assign_threshold] = -1
            out.append(idx)
        idx = torch.cat(out)
        return torch.where(idx >= 0, keep[idx.clamp(min=0)], -1)

    def labels(
        self,
        bandwidth: float,
        *,
        method: str = "seeded",
        iterations: int | None = None,
        tol: float = 1e-3,
        merge_threshold: float | None = None,
        min_size: int = 0,
        assign_threshold: float | None = None,
        max_anchors: int = 1024,
    ) -> np.ndarray:
        """Group the foreground at one bandwidth.

        Parameters
        ----------
        bandwidth : float
            Kernel bandwidth: pixels at cosine similarity ``c`` weigh ``exp((c - 1) / bandwidth)``.
            Typical 0.05-0.3 for unit embeddings; too large merges objects.
        method : {"seeded", "blurring"}
            See the module docstring.
        iterations : int, optional
            Most mean-shift iterations; default 50 (seeded) or 10 (blurring, which would
            eventually merge everything into one point).
        tol : float
            Convergence tolerance on the Euclidean shift of a unit vector: a seed stops once it
            moves less; blurring stops once the median point does.
        merge_threshold : float, optional
            Modes (seeded) or contracted points (blurring) at similarity >= this are one object.
            Default ``1 - bandwidth / 2``.
        min_size : int
            Modes that win fewer pixels are dropped and their pixels go to the next best mode.
        assign_threshold : float, optional
            Pixels less similar than this to every mode get label 0. None: none are dropped.
        max_anchors : int
            Points moved by the blurring method (the first of the random support).

        Returns
        -------
        ndarray of shape (Y, X), int32
            Labels 1..K, ordered by decreasing density of the mode, 0 outside the foreground.
        """
        if iterations is None:
            iterations = 50 if method == "seeded" else 10
        if not bandwidth > 0 or iterations < 1 or tol < 0 or min_size < 0 or max_anchors < 1:
            raise InputError(
                "need bandwidth > 0, iterations >= 1, tol >= 0, min_size >= 0 and "
                f"max_anchors >= 1; got {bandwidth}, {iterations}, {tol}, {min_size}, "
                f"{max_anchors}"
            )
        if method not in METHODS:
            raise InputError(f"unknown method {method!r}; choose one of {METHODS}")
        out = np.zeros(self.shape, np.int32)
        if self._flat.size == 0:
            return out
        threshold = 1.0 - bandwidth / 2 if merge_threshold is None else float(merge_threshold)
        bandwidth = float(bandwidth)
        with torch.no_grad():
            if method == "seeded":
                x, density = self._seeded_modes(bandwidth, iterations, tol)
                _, leaders = self._leader_groups(x, density, threshold)
                modes = x[torch.from_numpy(leaders).to(self.device)]
            else:
                modes = self._blurring_modes(bandwidth, iterations, tol, max_anchors, threshold)
            keep = torch.arange(modes.shape[0], device=self.device)
            idx = self._assign(modes, keep, assign_threshold)
            while min_size > 0 and keep.numel() > 1:
                count = torch.bincount(idx[idx >= 0], minlength=modes.shape[0])[keep]
                small = count < min_size
                if not bool(small.any()) or bool(small.all()):
                    break
                keep = keep[~small]
                idx = self._assign(modes, keep, assign_threshold)
            rank = torch.full((modes.shape[0] + 1,), 0, dtype=torch.int32, device=self.device)
            rank[keep] = torch.arange(1, keep.numel() + 1, dtype=torch.int32, device=self.device)
            out.ravel()[self._flat] = rank[idx].cpu().numpy()
        return out


def meanshift_labels(
    embedding,
    *,
    bandwidth: float,
    foreground=None,
    device="auto",
    method: str = "seeded",
    n_seeds: int = 128,
    seeding: str = "farthest",
    iterations: int | None = None,
    tol: float = 1e-3,
    merge_threshold: float | None = None,
    min_size: int = 0,
    assign_threshold: float | None = None,
    coord_weight: float = 0.0,
    object_size: float = 32.0,
    max_points: int | None = 8192,
    max_anchors: int = 1024,
    seed: int = 0,
) -> np.ndarray:
    """Instance labels of one frame by mean shift of its cosine embeddings.

    A one-call form of ``MeanShiftGrouper(...).labels(bandwidth, ...)``; keep a
    :class:`MeanShiftGrouper` to try several bandwidths on the same frame.

    Parameters
    ----------
    embedding : array_like of shape (D, Y, X)
        Pixel embeddings; normalised to unit length here.
    bandwidth : float
        Kernel bandwidth (``exp((cos - 1) / bandwidth)``); Payer et al. used about 0.1.
    foreground : array_like of shape (Y, X), optional
        Pixels to group; the others get 0. None: all pixels (the background is then an object).
    device, n_seeds, seeding, coord_weight, object_size, max_points, seed
        As for :class:`MeanShiftGrouper`.
    method, iterations, tol, merge_threshold, min_size, assign_threshold, max_anchors
        As for :meth:`MeanShiftGrouper.labels`.

    Returns
    -------
    ndarray of shape (Y, X), int32
        Labels 1..K, 0 outside the foreground and for pixels below ``assign_threshold``.

    Examples
    --------
    >>> emb = np.zeros((2, 3, 4)); emb[0, :, :2] = 1; emb[1, :, 2:] = 1
    >>> meanshift_labels(emb, bandwidth=0.1, device="cpu")
    array([[1, 1, 2, 2],
           [1, 1, 2, 2],
           [1, 1, 2, 2]], dtype=int32)
    """
    grouper = MeanShiftGrouper(
        embedding,
        foreground=foreground,
        coord_weight=coord_weight,
        object_size=object_size,
        device=device,
        max_points=max_points,
        n_seeds=n_seeds,
        seeding=seeding,
        seed=seed,
    )
    return grouper.labels(
        bandwidth,
        method=method,
        iterations=iterations,
        tol=tol,
        merge_threshold=merge_threshold,
        min_size=min_size,
        assign_threshold=assign_threshold,
        max_anchors=max_anchors,
    )


def blurring_meanshift(embedding, *, bandwidth: float, **kwargs) -> np.ndarray:
    """Instance labels by Gaussian-blurring mean shift (Kong & Fowlkes 2018).

    ``meanshift_labels(embedding, bandwidth=..., method="blurring", **kwargs)``. Blurring mean
    shift keeps contracting (eventually everything to one point), so it runs a small number of
    ``iterations`` (default 10) unless most points stop moving first; objects whose embeddings
    are close may merge, which :func:`~napari_cosine_embed.core.grouping.postprocess.split_components`
    undoes when they are apart in the image.

    Examples
    --------
    >>> emb = np.zeros((2, 3, 4)); emb[0, :, :2] = 1; emb[1, :, 2:] = 1
    >>> blurring_meanshift(emb, bandwidth=0.1, device="cpu")[0]
    array([1, 1, 2, 2], dtype=int32)
    """
    return meanshift_labels(embedding, bandwidth=bandwidth, method="blurring", **kwargs)
