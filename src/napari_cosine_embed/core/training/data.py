"""Training data: labelled movies and images, served as augmented batches of short clips.

Everything is a *sequence*: a movie ``(T, Y, X)`` with instance labels, a flag per frame saying
whether its labels are annotated, and an optional ``ignore`` mask for unannotated pixels. A 2D
image is a sequence of one frame. A training sample is a *clip* of consecutive frames that
contains at least one labelled frame; unlabelled frames in a clip only warm up the recurrent
state (their pixels are all ignored by the losses).

Sources are grouped in *pools* (one per constructor call: the synthetic movies, the DSB
images, a user's labels layer); each training step draws its whole batch from one pool, chosen
with probability proportional to the pools' weights, so a batch of movie clips is never cut
down to single frames because a 2D image was drawn with it. Within a pool every labelled frame
is equally likely.

:func:`from_dsb` uses the fixed train / held-out split of the DSB 2018 images (:mod:`.dsb`).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import numpy as np
import torch

from ..errors import InputError
from ..normalise import Normalisation
from .augment import AugmentConfig, augment_clip, crop_clip, zoom_window, zoomed
from .dsb import dsb_held_out, dsb_kind, read_dsb

__all__ = [
    "Batch",
    "LabelledSequence",
    "TrainingData",
    "dsb_held_out",
    "from_arrays",
    "from_dsb",
    "from_pairs",
    "from_synthetic",
]

_DEFAULT_AUGMENT = AugmentConfig()


class Batch(NamedTuple):
    """One training batch of clips."""

    #: Normalised, augmented frames, float32 of shape (B, T, 1, Y, X).
    images: torch.Tensor
    #: Instance labels, int64 of shape (B, T, Y, X); 0 = background.
    labels: torch.Tensor
    #: Pixels the losses must skip (unannotated, padding, unlabelled frames), bool (B, T, Y, X).
    ignore: torch.Tensor
    #: Per clip, the frame at which its history begins (int64, (B,)): the frames before it
    #: are padding, and the recurrent state starts from zeros there, as at a movie's first
    #: frame. None: every clip's history begins at its first frame.
    fresh: torch.Tensor | None = None
    #: Pixels the foreground loss must skip besides ``ignore`` (a band kept out of it to
    #: calibrate on, :mod:`.holdout`), bool (B, T, Y, X); None: ``ignore`` alone.
    foreground_ignore: torch.Tensor | None = None


@dataclass
class LabelledSequence:
    """A movie (or a single image) and its labels.

    Attributes
    ----------
    image : ndarray of shape (T, Y, X)
        Raw frames (any real dtype), or normalised float32 after :meth:`TrainingData.normalised`.
    labels : ndarray of shape (T, Y, X), integer
    labelled : ndarray of shape (T,), bool
        Frames whose labels are annotated; the others serve as context only.
    ignore : ndarray of shape (T, Y, X), bool, or None
        Unannotated pixels within labelled frames.
    name : str
    holdout : ndarray of shape (T, Y, X), bool, or None
        Annotated pixels kept out of the foreground loss only (the embedding loss still
        learns them): the band the foreground threshold is calibrated on (:mod:`.holdout`).
    """

    image: np.ndarray
    labels: np.ndarray
    labelled: np.ndarray
    ignore: np.ndarray | None = None
    name: str = ""
    holdout: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.image.ndim != 3 or self.labels.shape != self.image.shape:
            raise InputError(
                f"{self.name or 'sequence'}: image {self.image.shape} and labels "
                f"{self.labels.shape} must both have shape (T, Y, X)"
            )
        if self.ignore is not None and self.ignore.shape != self.image.shape:
            raise InputError(f"{self.name or 'sequence'}: ignore mask does not match the image")
        if self.holdout is not None and self.holdout.shape != self.image.shape:
            raise InputError(f"{self.name or 'sequence'}: hold-out mask does not match the image")


@dataclass
class _Pool:
    sequences: list[LabelledSequence]
    weight: float
    description: dict[str, Any]
    # (sequence index, frame index) of every labelled frame, the units sampled uniformly
    units: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        units = [(i, t) for i, s in enumerate(self.sequences) for t in np.flatnonzero(s.labelled)]
        self.units = np.array(units, np.int64).reshape(-1, 2)


class TrainingData:
    """Labelled sequences grouped in pools; draws batches of augmented clips.

    Build it with :func:`from_synthetic`, :func:`from_dsb` or :func:`from_arrays`, and combine
    sources with ``+``. See the module notes for how batches are drawn.
    """

    def __init__(self, pools: Sequence[_Pool], normalisation: Normalisation | None = None):
        self.pools = [p for p in pools if len(p.units)]
        if not self.pools:
            raise InputError("the training data holds no labelled frame")
        self.normalisation = normalisation

    @classmethod
    def from_sequences(
        cls, sequences: list[LabelledSequence], description: dict[str, Any], *, weight: float = 1.0
    ) -> TrainingData:
        """One pool of sequences; ``description`` (plain data) goes into the model record."""
        return cls([_Pool(list(sequences), float(weight), description)])

    def __add__(self, other: TrainingData) -> TrainingData:
        if self.normalisation != other.normalisation:
            raise ValueError("cannot combine data normalised differently")
        return TrainingData([*self.pools, *other.pools], self.normalisation)

    def __len__(self) -> int:
        """Number of labelled frames."""
        return sum(len(p.units) for p in self.pools)

    @property
    def sequences(self) -> list[LabelledSequence]:
        return [s for p in self.pools for s in p.sequences]

    def describe(self) -> dict[str, Any]:
        """Plain-data description for the model record: ``summary`` and ``sources``."""
        sources = [p.description for p in self.pools]
        summary = " + ".join(str(d.get("summary", d.get("kind", "?"))) for d in sources)
        return {"summary": summary, "labelled_frames": len(self), "sources": sources}

    def normalised(self, normalisation: Normalisation) -> TrainingData:
        """A copy whose frames are normalised (float32), each frame as a whole, as inference does.

        Cropping comes after normalisation, so crops see the intensities the model sees at
        inference. Returns ``self`` when already normalised that way.
        """
        if self.normalisation == normalisation:
            return self
        if self.normalisation is not None:
            raise ValueError("data is already normalised differently; normalise the raw data")
        pools = []
        for pool in self.pools:
            sequences = [
                replace(s, image=np.stack([normalisation(frame) for frame in s.image]))
                for s in pool.sequences
            ]
            pools.append(_Pool(sequences, pool.weight, pool.description))
        return TrainingData(pools, normalisation)

    def sample(
        self,
        rng: np.random.Generator,
        *,
        batch_size: int,
        crop: int,
        clip_length: int = 1,
        augment: AugmentConfig | None = _DEFAULT_AUGMENT,
        foreground_crops: float = 0.0,
    ) -> Batch:
        """Draw a batch of ``batch_size`` clips of ``crop`` x ``crop`` pixels.

        Each clip ends at a labelled frame, after the frames before it (its warm-up, as at
        inference); ``fresh`` marks where a clip's history begins when it is padded in front
        (near the start of a sequence). The clip length is ``clip_length``, or less when no
        drawn sequence is that long (2D images give clips of one frame). ``augment=None``
        draws crops only. A share ``foreground_crops`` of the crops is placed around a
        labelled nucleus pixel of the clip (drawn uniformly), the rest anywhere: on large
        frames with few nuclei most uniform crops hold none, and teach nothing but background.
        """
        if self.normalisation is None:
            raise ValueError("call normalised(...) before sampling")
        weights = np.array([p.weight for p in self.pools])
        pool = self.pools[int(rng.choice(len(self.pools), p=weights / weights.sum()))]
        picks = pool.units[rng.integers(len(pool.units), size=batch_size)]
        # Clips as long as asked for, unless no drawn sequence is that long (2D images give
        # clips of one frame); a shorter sequence's clips are padded in front.
        length = min(clip_length, max(len(pool.sequences[i].image) for i, _ in picks))
        clips, fresh = [], []
        for i, t in picks:
            seq = pool.sequences[i]
            # The clip ends at the drawn frame: every frame before it in the clip warms the
            # state up, as the frames before it do at inference, and none after it is run
            # for nothing. Near the movie's start the clip is padded in front (its first
            # frame repeated, ignored) and the state starts from zeros at the real first.
            history = min(int(t), length - 1)
            pad = length - 1 - history
            frames = np.arange(t - history - pad, t + 1).clip(t - history)
            ignore = np.zeros(seq.image[frames].shape, bool)
            if seq.ignore is not None:
                ignore |= seq.ignore[frames]
            ignore |= ~seq.labelled[frames, None, None]
            ignore[:pad] = True
            fresh.append(pad)
            around = None
            if foreground_crops > 0 and rng.random() < foreground_crops:
                around = _nucleus_pixel(seq.labels[frames], ignore, rng)
            # one mask through the crops and flips: 1 = every loss skips the pixel (padding
            # included), 2 = only the foreground loss does
            skip = ignore.astype(np.uint8)
            if seq.holdout is not None:
                skip[seq.holdout[frames] & ~ignore] = 2
            window = zoom_window(crop, augment, rng)
            clip = crop_clip(
                seq.image[frames], seq.labels[frames], skip, window, rng, around=around
            )
            clip = zoomed(*clip, crop)
            if augment is not None:
                clip = augment_clip(*clip, augment, rng)
            clips.append(clip)
        images, labels, skip = (np.stack(parts) for parts in zip(*clips, strict=True))
        held = any(pool.sequences[i].holdout is not None for i, _ in picks)
        return Batch(
            torch.from_numpy(images.astype(np.float32))[:, :, None],
            torch.from_numpy(labels.astype(np.int64)),
            torch.from_numpy(skip == 1),
            torch.tensor(fresh, dtype=torch.int64),
            torch.from_numpy(skip > 0) if held else None,
        )


def _nucleus_pixel(
    labels: np.ndarray, ignore: np.ndarray, rng: np.random.Generator
) -> tuple[int, int] | None:
    """(y, x) of a random labelled, scored pixel of a clip (T, Y, X); None when there is none."""
    scored = (labels > 0) & ~ignore
    index = np.flatnonzero(scored.any(axis=0))
    if not len(index):
        return None
    y, x = np.unravel_index(index[int(rng.integers(len(index)))], scored.shape[1:])
    return int(y), int(x)


def from_synthetic(
    n_movies: int,
    seed: int = 0,
    *,
    shape: tuple[int, int] = (256, 256),
    n_frames: int = 8,
    weight: float = 1.0,
    **fixed: Any,
) -> TrainingData:
    """Synthetic movies under varied imaging conditions (:func:`.synthetic_random.random_config`).

    Parameters
    ----------
    n_movies : int
        Movies to simulate; movie ``i`` uses ``random_config(seed=seed + i)``. Keep the seed
        ranges of training and validation data apart.
    seed : int
        First seed.
    shape : (int, int), keyword-only
        Frame size.
    n_frames : int, keyword-only
        Frames per movie (each one labelled).
    weight : float, keyword-only
        Relative chance that a batch comes from this pool.
    **fixed
        Further :class:`SyntheticConfig` fields to fix rather than draw, or ``crowded``
        (passed on to :func:`.synthetic_random.random_config`).

    Examples
    --------
    >>> data = from_synthetic(2, seed=0, shape=(64, 64), n_frames=3)
    >>> len(data), data.describe()["summary"]
    (6, '2 synthetic movies (3 frames of 64x64, seeds 0-1)')
    """
    from ..synthetic import synthetic_timelapse
    from ..synthetic_random import random_config

    if n_movies < 1:
        raise InputError(f"n_movies must be at least 1, got {n_movies}")
    sequences = []
    for i in range(n_movies):
        config = random_config(seed=seed + i, shape=tuple(shape), n_frames=n_frames, **fixed)
        movie = synthetic_timelapse(config)
        sequences.append(
            LabelledSequence(
                movie.image, movie.labels, np.ones(n_frames, bool), name=f"synthetic-{seed + i}"
            )
        )
    summary = (
        f"{n_movies} synthetic movies ({n_frames} frames of {shape[0]}x{shape[1]}, "
        f"seeds {seed}-{seed + n_movies - 1})"
    )
    description = {
        "kind": "synthetic",
        "summary": summary,
        "n_movies": n_movies,
        "seed": seed,
        "shape": list(shape),
        "n_frames": n_frames,
        "fixed": {
            k: v if isinstance(v, int | float | str | bool) else str(v) for k, v in fixed.items()
        },
    }
    return TrainingData.from_sequences(sequences, description, weight=weight)


def from_pairs(
    images: Sequence[Any], labels: Sequence[Any], *, name: str = "images", weight: float = 1.0
) -> TrainingData:
    """Independent 2D ``(image, labels)`` pairs, each of any size (clips of one frame).

    Examples
    --------
    >>> labels = np.zeros((32, 40), np.uint16); labels[4:12, 4:12] = 1
    >>> len(from_pairs([np.ones((32, 40))], [labels]))
    1
    """
    if len(images) != len(labels) or not len(images):
        raise InputError(f"{name}: need as many label images as images, and at least one")
    sequences = []
    for k, (image, lab) in enumerate(zip(images, labels, strict=True)):
        image, lab = np.asarray(image), np.asarray(lab)
        if image.ndim != 2 or lab.shape != image.shape:
            raise InputError(f"{name}[{k}]: expected a (Y, X) image and labels of its shape")
        sequences.append(
            LabelledSequence(
                image[None], lab[None].astype(np.int64), np.ones(1, bool), name=f"{name}[{k}]"
            )
        )
    description = {"kind": "pairs", "summary": f"{name}: {len(sequences)} images", "name": name}
    return TrainingData.from_sequences(sequences, description, weight=weight)


def from_dsb(
    folder: str | os.PathLike,
    ids: Sequence[str] | None = None,
    *,
    split: str = "train",
    limit: int | None = None,
    weight: float = 1.0,
) -> TrainingData:
    """The CC0 DSB 2018 nuclei images (``images/<id>.tif``, ``masks/<id>.tif``).

    Parameters
    ----------
    folder : path-like
        The ``dsb2018-fluo`` or ``dsb2018-nonfluo`` folder (its name picks the split rule).
    ids : sequence of str, optional
        Image ids to use (default: every id of ``split``). With ``split="train"`` a held-out
        id raises :class:`InputError`.
    split : {"train", "held_out"}, keyword-only
        Which side of the fixed split (:mod:`.dsb`) to take.
    limit : int, optional
        Use only the first ``limit`` ids (sorted), e.g. a small validation set.
    weight : float, keyword-only
        Relative chance that a batch comes from this pool.
    """
    ids, pairs = read_dsb(folder, ids, split=split, limit=limit)
    name = f"dsb2018-{dsb_kind(folder)}"
    sequences = [
        LabelledSequence(image[None], mask[None].astype(np.int32), np.ones(1, bool), name=image_id)
        for image_id, (image, mask) in zip(ids, pairs, strict=True)
    ]
    description = {
        "kind": name,
        "summary": f"{len(ids)} {name} {split.replace('_', '-')} images (CC0)",
        "split": split,
        "n_images": len(ids),
        "ids_sha256": hashlib.sha256(",".join(ids).encode()).hexdigest()[:16],
    }
    return TrainingData.from_sequences(sequences, description, weight=weight)


def from_arrays(
    images: Any,
    labels: Any,
    frames: Sequence[int] | None = None,
    *,
    ignore: Any = None,
    context: int = 3,
    name: str = "arrays",
    weight: float = 1.0,
) -> TrainingData:
    """Training data from arrays in memory, e.g. an image layer and its corrected labels layer.

    Parameters
    ----------
    images : array of shape (Y, X) or (T, Y, X)
        Raw frames (NumPy or dask; only the frames needed are read).
    labels : array of the same shape, integer, or dict {frame: array of shape (Y, X)}
        Instance labels, 0 = background; a dict gives the labelled frames only.
    frames : sequence of int, optional
        The curated frames whose labels are right; the others are never trained on. None: the
        frames holding any label (the dict's keys for a dict).
    ignore : bool array of the same shape, optional
        Pixels left unannotated in the curated frames (sparse labels): no loss there.
    context : int, keyword-only
        Unlabelled frames kept before each curated frame, to warm up the recurrent state
        when training on clips of more than one frame.
    name : str, keyword-only
        Where the data came from, for the record.
    weight : float, keyword-only
        Relative chance that a batch comes from this pool.

    Examples
    --------
    >>> labels = np.zeros((5, 32, 32), np.uint16); labels[2, 4:12, 4:12] = 1
    >>> data = from_arrays(np.random.default_rng(0).random((5, 32, 32)), labels)
    >>> len(data), [len(s.image) for s in data.sequences]
    (1, [3])
    """
    if isinstance(labels, Mapping):  # sparse: {frame: (Y, X) labels}
        if np.ndim(images) == 2:
            images = np.asarray(images)[None]
        shape = tuple(np.shape(images))
        frames = sorted(labels) if frames is None else frames
        sparse = {int(t): np.asarray(v) for t, v in labels.items()}
        bad = [t for t, v in sparse.items() if v.shape != shape[1:]]
        if len(shape) != 3 or bad:
            raise InputError(f"{name}: label frames must have the frame shape {shape[1:]}")
        empty = np.zeros(shape[1:], np.int64)

        def label_frame(t: int) -> np.ndarray:
            return sparse.get(t, empty)
    else:
        if np.ndim(images) == 2:
            images, labels = np.asarray(images)[None], np.asarray(labels)[None]
            ignore = None if ignore is None else np.asarray(ignore)[None]
        shape = tuple(np.shape(images))
        if len(shape) != 3 or tuple(np.shape(labels)) != shape:
            raise InputError(
                f"images {np.shape(images)} and labels {np.shape(labels)} must have the same "
                "shape, (Y, X) or (T, Y, X)"
            )

        def label_frame(t: int) -> np.ndarray:
            return np.asarray(labels[t])

    if ignore is not None and tuple(np.shape(ignore)) != shape:
        raise InputError(f"{name}: ignore mask {np.shape(ignore)} does not match {shape}")
    n_frames = shape[0]
    if frames is None:
        frames = [t for t in range(n_frames) if label_frame(t).any()]
    frames = sorted({int(t) for t in frames})
    if not frames:
        raise InputError(f"{name}: no labelled frame to train on")
    if frames[0] < 0 or frames[-1] >= n_frames:
        raise InputError(f"{name}: frames must lie in 0..{n_frames - 1}, got {frames}")
    keep = sorted({s for t in frames for s in range(max(0, t - context), t + 1)})
    runs = np.split(np.array(keep), np.flatnonzero(np.diff(keep) > 1) + 1)
    curated = set(frames)
    sequences = []
    for run in runs:
        lab = np.stack([label_frame(t) for t in run])
        if not (np.issubdtype(lab.dtype, np.integer) or lab.dtype == bool):
            raise InputError(f"{name}: labels must be integers, got {lab.dtype}")
        sequences.append(
            LabelledSequence(
                np.stack([np.asarray(images[t]) for t in run]),
                lab.astype(np.int64),
                np.array([t in curated for t in run]),
                None if ignore is None else np.stack([np.asarray(ignore[t], bool) for t in run]),
                name=f"{name}[{run[0]}:{run[-1] + 1}]",
            )
        )
    description = {
        "kind": "arrays",
        "summary": f"{name}: {len(frames)} curated frames",
        "name": name,
        "frames": frames,
        "shape": [int(v) for v in shape],
        "sparse": ignore is not None,
    }
    return TrainingData.from_sequences(sequences, description, weight=weight)
