"""Embed a movie frame by frame with a trained network, tiling frames too large for one pass.

Every frame is normalised on its own (``model.normalisation``), passed through the recurrent
stacked hourglass with the state left by the previous frame, and the last stack's embedding is
L2-normalised to unit vectors. :func:`iter_embed` is the streaming path: it reads one frame of
the input at a time (a dask or zarr movie is never loaded whole) and yields one
:class:`FrameEmbedding` per frame, which the GUI turns into progress and which stops as soon as
the generator is closed. :func:`embed` and :func:`embed_with_foreground` collect the frames into
one array allocated up front.

Tiling
------
A frame taller or wider than ``tile_size`` is cut into overlapping tiles. Each tile position keeps
its own recurrent state from frame to frame (a tile at position (i, j) of frame t continues from
the same tile of frame t - 1), so only a few tiles' activations are alive at once; the states
themselves cover the whole frame, as they must. Tile origins are aligned to the network's pooling
grid (``config.size_multiple``), so a tile pools exactly as the whole frame would: away from the
seams a tile's output equals untiled inference wherever the receptive field stays inside it.

Tiles are stitched by keeping each tile's centre: the seam between two tiles lies in the middle of
their overlap, and each output pixel comes from exactly one tile. Embeddings are *not* averaged
across the overlap: an embedding direction only means "same object as the pixels near me that
point the same way", and two tiles, which see different context, may place the same nucleus at
different directions on the sphere; the mean of two such unit vectors points somewhere neither
tile meant, possibly at another object's direction, and it is no longer unit length. Limitation:
an object crossing a seam can get different directions on its two sides (and be split by
grouping). An overlap larger than the objects (the default 128 pixels, for nuclei of 10-60
pixels) means every object lies wholly inside some tile's centre or near enough to it that both
tiles saw all of it, which makes the two sides agree in practice; it is not a guarantee.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from .device import resolve_device
from .errors import InputError

if TYPE_CHECKING:
    from .checkpoint import EmbeddingModel

__all__ = [
    "FrameEmbedding",
    "embed",
    "embed_with_foreground",
    "embedding_history",
    "iter_embed",
    "tile_spans",
]

#: Frames smaller than this (in Y or X) cannot hold a nucleus; they are refused.
MIN_FRAME_SIZE = 8
AMP_CHOICES = ("auto", "bf16", "fp16", "fp32")


@dataclass(frozen=True, eq=False)
class FrameEmbedding:
    """The result for one frame, as yielded by :func:`iter_embed`.

    Attributes
    ----------
    t : int
        Index of the frame in the input movie (0 for a single (Y, X) frame).
    embedding : ndarray of shape (D, Y, X), float32
        Unit-length embedding of every pixel.
    foreground : ndarray of shape (Y, X), float32, or None
        Foreground probability in [0, 1]; None when the model has no foreground head.
    nonfinite : int
        Pixels of the input frame that were NaN or infinite (filled before embedding).
    """

    t: int
    embedding: np.ndarray
    foreground: np.ndarray | None
    nonfinite: int = 0


def embedding_history(t: int, *, state_window: int | None, warmup: int) -> range:
    """The frames whose pixels the embedding of frame ``t`` depends on, ``t`` included.

    With a bounded history (``state_window``), windows of ``state_window`` frames start at
    multiples of it, each warmed up on the ``warmup`` frames before it, wherever a run starts:
    so frame ``t`` is embedded exactly alike whether a run covers the whole movie or resumes
    in the middle of it. Without one, the state runs from frame 0.

    Examples
    --------
    >>> embedding_history(7, state_window=5, warmup=3)
    range(2, 8)
    >>> embedding_history(7, state_window=None, warmup=3)
    range(0, 8)
    """
    t = int(t)
    if state_window is None:
        return range(0, t + 1)
    start = t - t % int(state_window)
    return range(max(0, start - int(warmup)), t + 1)


def tile_spans(
    length: int, tile_size: int, overlap: int, multiple: int = 1
) -> list[tuple[int, int, int, int]]:
    """Cut one axis into overlapping tiles and say which part of each tile to keep.

    Parameters
    ----------
    length : int
        Size of the axis.
    tile_size : int
        Largest tile; an axis no longer than this is one tile.
    overlap : int
        Least overlap between neighbouring tiles.
    multiple : int
        Tile starts are multiples of this (the network's pooling grid).

    Returns
    -------
    list of (start, stop, keep_start, keep_stop)
        Tile ``[start, stop)``; its part ``[keep_start, keep_stop)`` goes to the output. The kept
        parts partition ``[0, length)``; each seam is in the middle of an overlap.

    Examples
    --------
    >>> tile_spans(250, 96, 16, multiple=8)
    [(0, 96, 0, 88), (80, 176, 88, 168), (160, 250, 168, 250)]
    """
    if length <= tile_size:
        return [(0, length, 0, length)]
    step = (tile_size - overlap) // multiple * multiple
    if step < 1:
        raise InputError(
            f"tile_size - tile_overlap must be at least {multiple} for this model, got "
            f"tile_size={tile_size}, tile_overlap={overlap}"
        )
    # Regular starts while a tile ends before the border; the last tile ends at the border.
    starts = [*range(0, length - tile_size, step), -(-(length - tile_size) // multiple) * multiple]
    stops = [min(start + tile_size, length) for start in starts]
    keep = [0, *((stops[i] + starts[i + 1]) // 2 for i in range(len(starts) - 1)), length]
    return [
        (b, e, keep[i], keep[i + 1]) for i, (b, e) in enumerate(zip(starts, stops, strict=True))
    ]


def _check_image(image: Any) -> Any:
    """Validate shape and dtype without reading pixels; return an indexable array-like."""
    if not hasattr(image, "shape") or not hasattr(image, "dtype"):
        image = np.asarray(image)
    shape, dtype = tuple(image.shape), np.dtype(image.dtype)
    expected = "a (T, Y, X) movie or a (Y, X) frame is expected"
    if len(shape) not in (2, 3):
        hint = ""
        if len(shape) == 4 and shape[-1] in (3, 4):
            hint = "; it looks like an RGB(A) movie: convert it to grey levels first"
        elif len(shape) >= 4:
            hint = "; for a multi-channel or 3D movie (TCYX, TZYX) pick one channel or plane"
        raise InputError(f"{expected}, got an array of shape {shape}{hint}")
    if len(shape) == 3 and shape[-1] in (3, 4) and shape[0] >= MIN_FRAME_SIZE:
        raise InputError(
            f"{expected}, got shape {shape}, which looks like an RGB(A) image (Y, X, "
            f"{shape[-1]}): convert it to grey levels first (e.g. image.mean(axis=-1))"
        )
    if dtype != np.bool_ and not (
        np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)
    ):
        raise InputError(f"the image must hold numbers, got dtype {dtype} (shape {shape})")
    if 0 in shape:
        raise InputError(f"the image is empty (shape {shape})")
    if min(shape[-2:]) < MIN_FRAME_SIZE:
        raise InputError(
            f"frames of {shape[-2]} x {shape[-1]} pixels are too small to embed; "
            f"at least {MIN_FRAME_SIZE} x {MIN_FRAME_SIZE} is needed (shape {shape})"
        )
    return image


def _frame_indices(frames: Iterable[int] | None, count: int) -> list[int]:
    if frames is None:
        return list(range(count))
    indices = []
    for t in frames:
        if isinstance(t, bool) or not isinstance(t, int | np.integer):
            raise InputError(f"frames must be integer indices, got {t!r}")
        if not -count <= t < count:
            raise InputError(f"frame {t} does not exist: the movie has {count} frame(s)")
        indices.append(int(t) % count)
    return indices


def _autocast(amp: str, device: torch.device):
    if amp not in AMP_CHOICES:
        raise InputError(f"amp must be one of {AMP_CHOICES}, got {amp!r}")
    if amp == "auto":
        if device.type != "cuda":
            return nullcontext()
        amp = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if amp == "fp32":
        return nullcontext()
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def _resolve_model(model: Any, device: str | torch.device | None) -> tuple[Any, torch.device]:
    """Load a model given by name or path; move it to ``device`` if one is asked for."""
    if isinstance(model, str | os.PathLike):
        from .checkpoint import load_model

        model = load_model(model, device="auto" if device is None else device)
    if device is None:
        return model, torch.device(model.device)
    target = resolve_device(device)
    if torch.device(model.device) != target:
        model = model.to(target)
    return model, target


@dataclass(frozen=True)
class _Plan:
    """Everything checked and resolved before the first frame is read."""

    image: Any
    indices: list[int]
    network: torch.nn.Module
    normalise: Any
    device: torch.device
    autocast: Any
    ys: list[tuple[int, int, int, int]]
    xs: list[tuple[int, int, int, int]]
    state_window: int | None = None
    warmup: int = 0


def _plan(
    model,
    image,
    *,
    device=None,
    tile_size=1024,
    tile_overlap=128,
    amp="auto",
    frames=None,
    state_window=None,
    warmup=3,
):
    image = _check_image(image)
    indices = _frame_indices(frames, 1 if image.ndim == 2 else image.shape[0])
    model, dev = _resolve_model(model, device)
    network = model.network
    config = network.config
    if config.in_channels != 1:
        raise InputError(f"the model expects {config.in_channels} channels; only 1 is supported")
    if tile_overlap < 0 or tile_size < MIN_FRAME_SIZE:
        raise InputError(
            f"need tile_size >= {MIN_FRAME_SIZE} and tile_overlap >= 0, "
            f"got tile_size={tile_size}, tile_overlap={tile_overlap}"
        )
    if state_window is not None and (int(state_window) < 1 or int(warmup) < 0):
        raise InputError(f"need state_window >= 1 and warmup >= 0, got {state_window}, {warmup}")
    m = config.size_multiple
    ys, xs = (tile_spans(n, tile_size, tile_overlap, m) for n in image.shape[-2:])
    return _Plan(
        image,
        indices,
        network,
        model.normalisation,
        dev,
        _autocast(amp, dev),
        ys,
        xs,
        None if state_window is None else int(state_window),
        int(warmup),
    )


def iter_embed(
    model: EmbeddingModel | str | os.PathLike,
    image: Any,
    *,
    device: str | torch.device | None = None,
    tile_size: int = 1024,
    tile_overlap: int = 128,
    amp: str = "auto",
    frames: Iterable[int] | None = None,
    state_window: int | None = None,
    warmup: int = 3,
) -> Generator[FrameEmbedding, None, None]:
    """Embed a movie one frame at a time, carrying the recurrent state, yielding each frame.

    Parameters
    ----------
    model : EmbeddingModel, str or path
        A loaded model, or a name or checkpoint path for :func:`load_model`.
    image : array-like of shape (T, Y, X) or (Y, X)
        Any integer, float or bool dtype; a numpy, dask or zarr array. One frame is read at a
        time (``image[t]``), so a lazy movie is never loaded whole (a dask chunk spanning
        several frames is read once per frame). NaN or infinite pixels are filled by the
        normalisation (with the frame's lowest finite value); a frame with no finite pixel
        raises :class:`InputError` when it is reached.
    device : str or torch.device, optional
        None: the model's device. ``"auto"``, ``"cpu"``, ``"cuda"``, ...: the model is moved
        there (in place) first.
    tile_size, tile_overlap : int
        Frames taller or wider than ``tile_size`` are cut into tiles overlapping by at least
        ``tile_overlap`` pixels, each with its own recurrent state (see the module docstring).
        The normalisation percentiles are those of the whole frame, not of each tile.
    amp : {"auto", "bf16", "fp16", "fp32"}
        Mixed precision. "auto": bf16 (fp16 where bf16 is unsupported) autocast on CUDA, fp32
        elsewhere. Outputs are float32 in every case.
    frames : iterable of int, optional
        Which frames, in this order (default: all). Without ``state_window`` the state starts
        from zeros at the first one and is carried from each to the next, so give consecutive
        increasing indices from 0 for results that match a run over the whole movie. With
        ``state_window`` every frame gets its history (:func:`embedding_history`) wherever the
        run starts or jumps, and matches a whole-movie run exactly.
    state_window, warmup : int
        None (default): carry the recurrent state through the whole movie. An integer: start a
        fresh state at every multiple of ``state_window``, first re-running the ``warmup``
        frames before it (their results are discarded), so every frame is embedded with
        ``warmup`` to ``warmup + state_window - 1`` frames of history. The default model was trained on clips
        of two frames; on hundreds of frames its state drifts (foreground trails behind moving
        nuclei and misses new ones), and a bounded history keeps it where it was trained.
        Costs ``(state_window + warmup) / state_window`` times the computation.

    Returns
    -------
    generator of FrameEmbedding
        One per frame: ``t``, ``embedding`` (D, Y, X) float32 unit vectors, ``foreground``
        (Y, X) float32 probabilities or None. Nothing is computed until it is iterated;
        closing it stops the work. The arguments are checked before it is returned.

    Raises
    ------
    InputError
        For an image that is not a numeric (Y, X) or (T, Y, X) array of at least 8 x 8 pixels,
        an unknown ``amp``, bad ``frames`` or tiling, or an unavailable device.

    Examples
    --------
    >>> for result in iter_embed(model, movie):  # doctest: +SKIP
    ...     print(result.t, result.embedding.shape)
    """
    plan = _plan(
        model,
        image,
        device=device,
        tile_size=tile_size,
        tile_overlap=tile_overlap,
        amp=amp,
        frames=frames,
        state_window=state_window,
        warmup=warmup,
    )
    return _generate(plan)


def _generate(
    plan: _Plan, out: tuple[np.ndarray, np.ndarray | None] | None = None
) -> Generator[FrameEmbedding, None, None]:
    """Run the planned frames; write into ``out`` = (T, D, Y, X), (T, Y, X) arrays if given."""
    image, network, config = plan.image, plan.network, plan.network.config
    single, (height, width) = image.ndim == 2, image.shape[-2:]
    layout = torch.channels_last if plan.device.type in ("cpu", "cuda") else torch.contiguous_format
    states: dict[tuple[int, int], list[torch.Tensor]] = {}
    was_training = network.training
    network.eval()

    def run(t: int, emb: np.ndarray | None, fg: np.ndarray | None) -> int:
        """Embed frame ``t`` into ``emb`` and ``fg``; with ``emb`` None only the state moves on
        (a warm-up frame, whose outputs nobody reads)."""
        frame = np.asarray(image if single else image[t])
        if frame.dtype == np.bool_:
            frame = frame.astype(np.float32)
        finite = np.isfinite(frame)
        if not finite.any():
            raise InputError(f"frame {t} has no finite pixel (all NaN or infinite)")
        x = torch.from_numpy(plan.normalise(frame)).to(plan.device)[None, None]
        with torch.inference_mode(), plan.autocast:
            for iy, (y0, y1, ky0, ky1) in enumerate(plan.ys):
                for ix, (x0, x1, kx0, kx1) in enumerate(plan.xs):
                    tile = x[..., y0:y1, x0:x1].contiguous(memory_format=layout)
                    result = network(
                        tile, states.get((iy, ix)), all_stacks=False, state_only=emb is None
                    )
                    states[iy, ix] = result.state
                    if emb is None:
                        del result
                        continue
                    keep = (slice(ky0 - y0, ky1 - y0), slice(kx0 - x0, kx1 - x0))
                    raw = result.embeddings[-1][0][(slice(None), *keep)].float()
                    # eps guards an all-zero raw vector: it stays zero instead of NaN.
                    into = emb[:, ky0:ky1, kx0:kx1]
                    if (
                        raw.device.type == "cpu"
                        and into.dtype == np.float32
                        and into.flags.writeable
                    ):
                        # F.normalize's arithmetic, written straight into the output (no copy)
                        unit = raw.norm(2, 0, keepdim=True).clamp_min(1e-12)
                        torch.div(raw, unit, out=torch.from_numpy(into))
                    else:
                        unit = F.normalize(raw, dim=0, eps=1e-12)
                        into[...] = unit.cpu().numpy()
                    if fg is not None:
                        prob = torch.sigmoid(result.foreground[0, 0][keep].float())
                        fg[ky0:ky1, kx0:kx1] = prob.cpu().numpy()
                    del result, raw, unit  # free this tile's activations before the next
        return int(finite.size - np.count_nonzero(finite))

    def buffers() -> tuple[np.ndarray, np.ndarray | None]:
        emb = np.empty((config.embedding_dim, height, width), np.float32)
        return emb, np.empty((height, width), np.float32) if config.foreground_head else None

    try:
        previous = None
        for i, t in enumerate(plan.indices):
            if plan.state_window and not single and (t % plan.state_window == 0 or t != previous):
                # a fresh state, brought through the history this frame has in a whole run
                states.clear()
                history = embedding_history(t, state_window=plan.state_window, warmup=plan.warmup)
                for u in history[:-1]:
                    run(u, None, None)
            previous = t + 1
            emb, fg = (
                buffers() if out is None else (out[0][i], None if out[1] is None else out[1][i])
            )
            nonfinite = run(t, emb, fg)
            yield FrameEmbedding(t=t, embedding=emb, foreground=fg, nonfinite=nonfinite)
            emb = fg = None  # the caller's now: not held through the next frame's warm-up
    finally:
        network.train(was_training)


def embed_with_foreground(
    model: EmbeddingModel | str | os.PathLike, image: Any, **options: Any
) -> tuple[np.ndarray, np.ndarray | None]:
    """Embed a whole movie into arrays: embeddings and foreground probabilities.

    Takes the same arguments as :func:`iter_embed`. Both outputs are allocated once, before
    the first frame: the embeddings take ``T * D * Y * X * 4`` bytes (16 GiB for 200 frames of
    1024 x 1024 with D=16); use :func:`iter_embed` to stream a movie that does not fit.

    Returns
    -------
    embeddings : ndarray of shape (T, D, Y, X), float32
        Unit vectors; T=1 for a (Y, X) image, ``len(frames)`` when ``frames`` is given.
    foreground : ndarray of shape (T, Y, X), float32, or None
        Probabilities in [0, 1]; None when the model has no foreground head.
    """
    plan = _plan(model, image, **options)
    config = plan.network.config
    shape = (len(plan.indices), *plan.image.shape[-2:])
    emb = np.empty((shape[0], config.embedding_dim, *shape[1:]), np.float32)
    fg = np.empty(shape, np.float32) if config.foreground_head else None
    for _ in _generate(plan, (emb, fg)):
        pass
    return emb, fg


def embed(model: EmbeddingModel | str | os.PathLike, image: Any, **options: Any) -> np.ndarray:
    """Embed a whole movie (or one frame) into one array of unit vectors.

    Parameters
    ----------
    model : EmbeddingModel, str or path
        A loaded model, or a name or checkpoint path for :func:`load_model`.
    image : array-like of shape (T, Y, X) or (Y, X)
        Any numeric dtype; numpy, dask or zarr.
    **options
        ``device``, ``tile_size``, ``tile_overlap``, ``amp``, ``frames``: as in
        :func:`iter_embed`.

    Returns
    -------
    ndarray of shape (T, D, Y, X), float32
        T=1 for a (Y, X) image. Allocated once: ``T * D * Y * X * 4`` bytes.

    Examples
    --------
    >>> embeddings = embed(model, movie)  # doctest: +SKIP
    >>> embeddings.shape  # doctest: +SKIP
    (92, 16, 1024, 1024)
    """
    return embed_with_foreground(model, image, **options)[0]
