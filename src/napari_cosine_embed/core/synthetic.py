"""Synthetic fluorescence-nuclei time-lapses with exact ground truth.

Nuclei are star-convex shapes (an ellipse with slowly evolving low-frequency boundary harmonics)
that drift by a persistent random walk with mild mutual repulsion, grow over a cell cycle,
elongate and divide into two daughters, and may leave or re-enter the field of view. Frames
are rendered with partial-volume edges, per-nucleus brightness and texture (chromatin
granularity, bright speckles and clumps, dark nucleoli), optional unlabelled out-of-focus nuclei, an uneven
background, optical blur and Poisson + Gaussian camera noise.

Labels are the rasterised in-focus shapes before blur, one track id per contiguous appearance,
with a lineage in Cell Tracking Challenge form (``label first_frame last_frame parent``). The
movie serves as napari sample data, as a tracking fixture with known divisions and as training
data for the embedding network
(:func:`~napari_cosine_embed.core.synthetic_random.random_config` varies the imaging conditions).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from skimage.measure import label as label_components

from .errors import InputError
from .limits import MAX_SYNTHETIC_CELLS, SYNTHETIC, check_choice, check_fields, check_flag
from .synthetic_looks import LOOKS, light_field

__all__ = [
    "SyntheticConfig",
    "SyntheticMovie",
    "synthetic_image",
    "synthetic_timelapse",
]

_ORDERS = np.arange(2, 7)  # boundary harmonics: low orders only, so outlines stay smooth
_WEIGHTS = (1.0 / (_ORDERS - 1)) / np.sqrt(((1.0 / (_ORDERS - 1)) ** 2).sum())
_ANGLES = np.linspace(-np.pi, np.pi, 181)  # outlines are tabulated every 2 degrees
_TEX = 40  # texture patch size, covering the normalised square [-1.25, 1.25]^2 of a nucleus
_MITOSIS = 4  # frames of elongation and brightening before a division
_DTYPE_MAX = {"uint8": 255, "uint16": 65535}
_SPANS = ("radius", "aspect", "brightness", "cycle_length")  # (low, high) ranges of a draw


@dataclass(frozen=True)
class SyntheticConfig:
    """Parameters of a synthetic nuclei movie; lengths in pixels, times in frames.

    Attributes
    ----------
    shape : tuple of int
        ``(Y, X)`` size of a frame.
    n_frames : int
        Number of frames ``T``.
    n_cells : int
        Nuclei in the field of view at the start. With ``open_boundary`` more are placed just
        outside it at the same density, so that about as many drift in as out.
    radius : tuple of float
        Range of the typical (mid-cycle) radius; over a cycle a nucleus grows from 0.87 to
        1.22 times it, doubling its area.
    aspect : tuple of float
        Range of the ratio of major to minor axis (1 is round).
    deformation : float
        Relative amplitude of the boundary wobble, which evolves slowly over time.
    speed : float
        Largest displacement of a nucleus centre between frames; typical steps are about half.
    cycle_length : tuple of float or None
        Range of cell-cycle lengths; ``None`` disables growth and division.
    max_cells : int or None
        While this many cells exist, none progress through the cycle (contact inhibition).
    overlap : float
        Fraction of the sum of two radii by which neighbours may overlap before they repel.
    brightness : tuple of float
        Range (log-uniform) of the nuclear signal in photons per pixel.
    texture : float
        Strength of the chromatin texture: granularity, clumps and bright speckles.
    nucleoli : int
        Largest number of dark nucleoli per nucleus.
    clumps : float
        Brightness of condensed-chromatin clumps relative to the nucleus body: each nucleus
        gets a few smooth blobs (a quarter of its radius across) up to ``1 + clumps`` times as
        bright as the rest of it. Large values give a dim body, barely above the background,
        under a few bright spots (like Fluo-N2DH-SIM+); 0 for none.
    dome : float
        0 for flat nuclei (a thin optical section), 1 for the bright-centred profile of a
        whole sphere seen in projection.
    out_of_focus : float
        Probability that a cell lies outside the focal plane: dim, blurred and unlabelled.
    background : float
        Mean background signal in photons per pixel.
    illumination : float
        Relative amplitude of a smooth unevenness of the background.
    offset, gain, read_noise : float
        Camera: ``offset + gain * Poisson(photons) + Normal(0, read_noise)``.
    blur : float
        Gaussian point-spread sigma.
    bleaching : float
        Fraction of the nuclear signal lost per frame.
    look : {"fluorescence", "absorbing", "phase"}
        How objects are imaged (:mod:`.synthetic_looks`): bright on a dim background, or
        dark on a bright one, as stained nuclei in brightfield (``absorbing``) or with the
        bright halos of phase contrast (``phase``).
    contrast : float
        How much an object darkens the bright field (transmitted-light looks only).
    halo : float
        Strength of the bright halo around objects (``phase`` only).
    dtype : {"uint16", "uint8"}
        Image type; values are clipped to its range.
    open_boundary : bool
        Whether nuclei may leave and re-enter the field of view.
    min_area : int
        Smaller visible pieces (at borders, under neighbours) get no label.
    seed : int
        Seed of the one random generator everything is drawn from.

    Every field must lie within :data:`~napari_cosine_embed.core.limits.SYNTHETIC` (both ends
    of a range too), the nuclei must fit the frame (:meth:`cells_that_fit`), and dividing
    nuclei must stay under :data:`~napari_cosine_embed.core.limits.MAX_SYNTHETIC_CELLS`
    (:meth:`estimated_peak_cells`); anything else raises :class:`InputError`.
    """

    shape: tuple[int, int] = (256, 256)
    n_frames: int = 30
    n_cells: int = 12
    radius: tuple[float, float] = (8.0, 16.0)
    aspect: tuple[float, float] = (1.0, 1.5)
    deformation: float = 0.06
    speed: float = 2.0
    cycle_length: tuple[float, float] | None = (40.0, 80.0)
    max_cells: int | None = None
    overlap: float = 0.1
    brightness: tuple[float, float] = (15.0, 80.0)
    texture: float = 0.4
    nucleoli: int = 2
    clumps: float = 0.0
    dome: float = 0.3
    out_of_focus: float = 0.0
    background: float = 3.0
    illumination: float = 0.2
    offset: float = 10.0
    gain: float = 1.5
    read_noise: float = 2.0
    blur: float = 1.0
    bleaching: float = 0.0
    look: str = "fluorescence"
    contrast: float = 1.0
    halo: float = 0.0
    dtype: str = "uint16"
    open_boundary: bool = True
    min_area: int = 15
    seed: int = 0

    def __post_init__(self) -> None:
        # Every field, each end of a range too: NaN, text or an absurd size would otherwise
        # surface as a crash deep in the renderer, or as a simulation that never ends.
        def name(field: str) -> str:
            return f"invalid SyntheticConfig: {field}"

        pairs = ("shape", *_SPANS)
        check_fields(self, {k: v for k, v in SYNTHETIC.items() if k not in pairs}, prefix=name(""))
        for field in pairs:
            span = getattr(self, field)
            if field == "cycle_length" and not span:
                object.__setattr__(self, field, None)  # no growth, no divisions
                continue
            if not isinstance(span, tuple | list) or len(span) != 2:
                raise InputError(f"{name(field)} must be a pair of numbers, got {span!r}")
            low, high = (SYNTHETIC[field].check(v, name(field)) for v in span)
            if field != "shape" and low > high:
                raise InputError(f"{name(field)} must be a range low <= high, got {span!r}")
            object.__setattr__(self, field, (low, high))
        check_choice(self.dtype, name("dtype"), tuple(_DTYPE_MAX))
        check_choice(self.look, name("look"), LOOKS)
        open_boundary = check_flag(self.open_boundary, name("open_boundary"))
        object.__setattr__(self, "open_boundary", open_boundary)

        fit = self.cells_that_fit()
        if self.n_cells > fit:
            raise InputError(
                f"{name('n_cells')}: {self.n_cells} nuclei of radius {self.radius[0]:g}-"
                f"{self.radius[1]:g} px would cover the {self.shape[0]} x {self.shape[1]} "
                f"frame more than twice over; at most {fit} fit"
            )
        peak = self.estimated_peak_cells()
        if peak > MAX_SYNTHETIC_CELLS:
            too_many = f"more than the {MAX_SYNTHETIC_CELLS} whose mutual repulsion fits in memory"
            if not self.cycle_length:  # only the margin outside the frame can do that
                raise InputError(
                    f"{name('n_cells')}: with the margin around the frame the movie would hold "
                    f"about {peak:.3g} nuclei, {too_many}; use fewer or smaller nuclei"
                )
            lo, hi = self.cycle_length
            raise InputError(
                f"{name('n_frames')}: {self.n_cells} nuclei dividing every {lo:g}-{hi:g} "
                f"frames would multiply to about {peak:.3g} over {self.n_frames} frames, "
                f"{too_many}; use at most {self.max_frames()} frames, fewer nuclei, a longer "
                "cycle_length or set max_cells"
            )

    def cells_that_fit(self) -> int:
        """The most nuclei the frame holds: their typical discs cover it twice at most.

        Nuclei may overlap and drift into the margin, but packed much tighter they are pushed
        onto each other and their repulsion divides by zero (NaN positions; seen in a third
        of the movies from about twice the area on). Two always fit, as a few large nuclei in
        a small frame (which :func:`~.synthetic_random.random_config` draws) mostly work.
        """
        radius = sum(self.radius) / 2
        return max(2, int(2 * math.prod(self.shape) / (math.pi * radius**2)))

    def estimated_peak_cells(self, n_frames: int | None = None) -> float:
        """About the most nuclei alive at once, those in the margin outside the frame included.

        Dividing nuclei double about every mean ``cycle_length`` frames until ``max_cells``
        stops them, so a long movie grows exponentially: the simulation's memory (pairs of
        nuclei) and time follow. ``n_frames``: for a movie of that length instead.
        """
        n_frames = self.n_frames if n_frames is None else n_frames
        start = float(self.n_cells)
        if self.open_boundary:  # as many again per area in the margin (see _initial_cells)
            margin = 5 * self.radius[1]
            start *= (self.shape[0] + margin) * (self.shape[1] + margin) / math.prod(self.shape)
        if not self.cycle_length:
            return start
        doublings = min(n_frames / (sum(self.cycle_length) / 2), 1000.0)
        grown = start * 2.0**doublings
        if self.max_cells is not None:  # at most all of them divide once more
            grown = min(grown, max(start, 2.0 * self.max_cells))
        return grown

    def max_frames(self) -> int:
        """The longest movie of this configuration within :data:`MAX_SYNTHETIC_CELLS` nuclei."""
        if self.estimated_peak_cells(1) > MAX_SYNTHETIC_CELLS:
            return 0
        if self.estimated_peak_cells(SYNTHETIC["n_frames"].high) <= MAX_SYNTHETIC_CELLS:
            return int(SYNTHETIC["n_frames"].high)
        low, high = 1, int(SYNTHETIC["n_frames"].high)  # peak grows with the length: bisect
        while low < high:
            mid = (low + high + 1) // 2
            if self.estimated_peak_cells(mid) <= MAX_SYNTHETIC_CELLS:
                low = mid
            else:
                high = mid - 1
        return low


@dataclass(eq=False)
class SyntheticMovie:
    """A synthetic movie and its ground truth.

    Attributes
    ----------
    image : ndarray of shape (T, Y, X)
        Fluorescence frames, ``uint16`` or ``uint8`` as configured.
    labels : ndarray of shape (T, Y, X), uint16
        In-focus nucleus masks before blur; values are track ids, 0 is background.
    lineage : ndarray of shape (N, 4), int64
        Rows ``[label, first_frame, last_frame, parent]``, ``parent`` 0 for none. A mother's
        track ends the frame before her two daughters' tracks begin.
    config : SyntheticConfig
        The parameters that produced it.
    """

    image: np.ndarray
    labels: np.ndarray
    lineage: np.ndarray
    config: SyntheticConfig


def _mitosis(cells: dict) -> np.ndarray:
    return np.clip((cells["age"] - cells["cycle"] + _MITOSIS) / _MITOSIS, 0.0, 1.0)


def _size_now(cells: dict) -> tuple[np.ndarray, np.ndarray]:
    """Current equivalent radius (area doubles over a cycle) and axis ratio of every cell."""
    finite = np.isfinite(cells["cycle"])  # without a cycle, cells keep the typical size
    phase = np.where(finite, cells["age"] / np.where(finite, cells["cycle"], 1), 1 / 3)
    radius = cells["size"] * np.sqrt(0.75 + 0.75 * np.clip(phase, 0.0, 1.0))
    return radius, cells["aspect"] + 0.8 * _mitosis(cells)


def _textures(rng: np.random.Generator, n: int, cfg: SyntheticConfig) -> np.ndarray:
    """Texture patches ``(n, 3, P, P)``: static speckles and nucleoli, two Gaussian fields."""
    grid = (np.arange(_TEX) - (_TEX - 1) / 2) / (_TEX / 2.5)
    noise = rng.normal(size=(n, 4, _TEX, _TEX))
    fine = ndi.gaussian_filter(noise[:, :2], (0, 0, 0.8, 0.8))
    coarse = ndi.gaussian_filter(noise[:, 2:], (0, 0, 2.5, 2.5))
    tex = np.empty((n, 3, _TEX, _TEX), np.float32)
    unit = {"axis": (2, 3), "keepdims": True}
    tex[:, 1:] = 0.5 * cfg.texture * (fine / fine.std(**unit) + coarse / coarse.std(**unit))
    plane = grid[None, :] + 1j * grid[:, None]
    for i in range(n):  # bright Gaussian speckles, and dark nucleoli with crisp edges
        k, h = rng.poisson(6 * cfg.texture), rng.integers(min(1, cfg.nucleoli), cfg.nucleoli + 1)
        at = np.sqrt(rng.uniform(size=k + h)) * np.exp(2j * np.pi * rng.uniform(size=k + h))
        dist = np.abs(plane - (at * np.r_[[0.8] * k, [0.5] * h])[:, None, None])
        sig, size = rng.uniform(0.04, 0.1, (k, 1, 1)), rng.uniform(0.12, 0.25, (h, 1, 1))
        speckle = rng.uniform(0.5, 1.8, (k, 1, 1)) * np.exp(-0.5 * (dist[:k] / sig) ** 2)
        hole = rng.uniform(0.4, 0.8, (h, 1, 1)) * np.clip((size - dist[k:]) / 0.06 + 0.5, 0, 1)
        tex[i, 0] = (1 + cfg.texture * speckle.sum(0)) * (1 - hole).prod(0)
    if cfg.clumps > 0:
        # a generator of their own, seeded from draws already made: clumps change how the
        # nuclei look, not where they are (the first frame's nuclei are those of clumps=0)
        own = np.random.default_rng([cfg.seed, int(abs(noise[0, 0, 0, 0]) * 1e9)])
        for i in range(n):
            k = 1 + own.poisson(2.0)
            at = 0.75 * np.sqrt(own.uniform(size=k)) * np.exp(2j * np.pi * own.uniform(size=k))
            dist = np.abs(plane - at[:, None, None])
            sig, amp = own.uniform(0.1, 0.25, (k, 1, 1)), own.uniform(0.3, 1.0, (k, 1, 1))
            blobs = np.clip((amp * np.exp(-0.5 * (dist / sig) ** 2)).sum(0), 0, 1)
            tex[i, 0] *= 1 + cfg.clumps * blobs
    return tex


def _new_cells(rng: np.random.Generator, cfg: SyntheticConfig, pos: np.ndarray, **given) -> dict:
    """State of ``len(pos)`` new cells; keyword arguments replace the random draws."""
    n = len(pos)
    cycle = rng.uniform(*cfg.cycle_length, n) if cfg.cycle_length else np.full(n, np.inf)
    cells = {
        "pos": np.asarray(pos, float).reshape(n, 2), "vel": rng.normal(0, 0.4 * cfg.speed, (n, 2)),
        "size": rng.uniform(*cfg.radius, n), "aspect": rng.uniform(*cfg.aspect, n),
        "orient": rng.uniform(0, np.pi, n),
        "harm": rng.normal(0, 1, (n, len(_ORDERS), 2)) * _WEIGHTS[:, None] * cfg.deformation,
        "age": rng.uniform(0, 1, n) * np.where(np.isfinite(cycle), cycle, 0), "cycle": cycle,
        "bright": rng.uniform(*np.log(cfg.brightness), n), "flicker": np.zeros(n),
        "tex": _textures(rng, n, cfg), "tphase": rng.uniform(0, 2 * np.pi, n),
        "ghost": rng.uniform(size=n) < cfg.out_of_focus,
        "track": np.zeros(n, np.int64),  # current track id, 0 while unseen
        "parent": np.zeros(n, np.int64),  # the mother's track id, used in the birth frame
        "born": np.full(n, -1), "pair": np.zeros(n, np.int64),  # sisters share a pair id
    }  # fmt: skip
    return {**cells, **given}


def _walls(cells: dict, cfg: SyntheticConfig) -> tuple[np.ndarray, np.ndarray]:
    """Bounds ``(n, 2)`` of each centre: the frame and a margin where nuclei may leave it, else
    the frame less the nucleus' half-length, so that it stays whole inside."""
    n, size, margin = len(cells["age"]), np.array(cfg.shape, float), 2.5 * cfg.radius[1]
    if cfg.open_boundary:
        return np.full((n, 2), -margin), np.tile(size + margin, (n, 1))
    radius, aspect = _size_now(cells)
    pad = np.minimum(radius * np.sqrt(aspect) + 2, size.min() / 2)[:, None]
    return np.repeat(pad, 2, axis=1), size - pad


def _repulsion(cells: dict, overlap: float) -> np.ndarray:
    """Displacements ``(n, 2)`` that part overlapping neighbours in the same focal plane."""
    radius, aspect = _size_now(cells)
    reach, pos = radius * aspect**0.25, cells["pos"]
    delta = pos[:, None, :] - pos[None, :, :]
    # floored: two nuclei at the same spot (crowded draws) would divide 0 by 0 and make NaN
    dist = np.maximum(np.sqrt((delta**2).sum(-1)) + np.eye(len(pos)), 1e-9)
    short = np.clip((reach[:, None] + reach[None, :]) * (1 - overlap) - dist, 0, None)
    short *= cells["ghost"][:, None] == cells["ghost"][None, :]
    np.fill_diagonal(short, 0.0)
    return 0.5 * (short[..., None] * delta / dist[..., None]).sum(1)


def _initial_cells(rng: np.random.Generator, cfg: SyntheticConfig) -> dict:
    lo, hi = -2.5 * cfg.radius[1], np.array(cfg.shape) + 2.5 * cfg.radius[1]  # open: a margin
    field, total = np.prod(cfg.shape), np.prod(hi - lo) if cfg.open_boundary else 0
    n = cfg.n_cells + (rng.poisson(cfg.n_cells * (total - field) / field) if total else 0)
    pos = np.empty((n, 2))
    for i in range(n):  # best of a few candidates: spread out, without a hard packing limit
        inside = i < cfg.n_cells
        cand = rng.uniform(*((0, cfg.shape) if inside else (lo, hi)), (200, 2))
        if not inside:  # the extra cells go to the margin, outside the field of view
            cand = cand[((cand < 0) | (cand >= cfg.shape)).any(1)]
        cand = cand[:12] if len(cand) else hi[None]
        clear = np.sqrt(((cand[:, None] - pos[None, :i]) ** 2).sum(-1)).min(1, initial=np.inf)
        pos[i] = cand[np.argmax(clear)]
    cells = _new_cells(rng, cfg, pos)
    lo, hi = _walls(cells, cfg)
    for _ in range(20):
        cells["pos"] = np.clip(cells["pos"] + _repulsion(cells, cfg.overlap), lo, hi)
    return cells


def _divide(rng, cells: dict, cfg: SyntheticConfig, t: int, next_pair: int):
    """Replace every cell at the end of its cycle by two daughters placed along its axis."""
    mothers = np.flatnonzero(cells["age"] >= cells["cycle"])
    if not mothers.size:
        return cells, next_pair
    m = {k: v[mothers] for k, v in cells.items()}
    radius, aspect = _size_now(m)
    twin, n = np.tile(np.arange(len(mothers)), 2), 2 * len(mothers)
    axis = np.stack([np.sin(m["orient"]), np.cos(m["orient"])], 1)[twin]
    axis *= np.repeat([1.0, -1.0], len(mothers))[:, None]
    inherit = {  # sisters: about half the mother's area each, alike in brightness
        "vel": m["vel"][twin] + 0.5 * cfg.speed * axis,
        "size": np.clip(m["size"][twin] * np.exp(rng.normal(0, 0.08, n)), *cfg.radius),
        "age": np.zeros(n), "bright": m["bright"][twin] + rng.normal(0, 0.1, n),
        "ghost": m["ghost"][twin], "parent": m["track"][twin], "born": np.full(n, t),
        "pair": next_pair + twin,
    }  # fmt: skip
    start = m["pos"][twin] + 0.45 * (radius * np.sqrt(aspect))[twin, None] * axis
    daughters = _new_cells(rng, cfg, start, **inherit)
    keep = np.ones(len(cells["age"]), bool)
    keep[mothers] = False
    cells = {k: np.concatenate([v[keep], daughters[k]]) for k, v in cells.items()}
    return cells, next_pair + len(mothers)


def _step(rng, cells: dict, cfg: SyntheticConfig, t: int, next_pair: int):
    """Advance every cell by one frame: cycle, divisions, motion and shape."""
    if cfg.cycle_length and (cfg.max_cells is None or len(cells["age"]) < cfg.max_cells):
        cells["age"] = cells["age"] + 1.0
        cells, next_pair = _divide(rng, cells, cfg, t, next_pair)
    n, keep, slow = len(cells["age"]), 0.85, 0.95  # memory of velocity; of shape, brightness
    kick = rng.normal(0, 0.4 * cfg.speed * np.sqrt(1 - keep**2), (n, 2))
    cells["vel"] = keep * cells["vel"] + kick
    move = cells["vel"] + _repulsion(cells, cfg.overlap)
    move *= np.minimum(1.0, cfg.speed / np.maximum(np.hypot(*move.T), 1e-9))[:, None]
    pos, (lo, hi) = cells["pos"] + move, _walls(cells, cfg)
    over, under = pos > hi, pos < lo  # reflect off the walls
    cells["pos"] = np.clip(np.where(over, 2 * hi - pos, np.where(under, 2 * lo - pos, pos)), lo, hi)
    cells["vel"] = np.where(over | under, -cells["vel"], cells["vel"])
    jolt = rng.normal(0, np.sqrt(1 - slow**2), cells["harm"].shape)
    cells["harm"] = slow * cells["harm"] + jolt * _WEIGHTS[:, None] * cfg.deformation
    cells["orient"] = cells["orient"] + rng.normal(0, 0.05, n)
    cells["flicker"] = slow * cells["flicker"] + rng.normal(0, 0.1 * np.sqrt(1 - slow**2), n)
    cells["tphase"] = cells["tphase"] + 0.05  # chromatin texture changes over ~30 frames
    return cells, next_pair


def _outlines(cells: dict) -> np.ndarray:
    """Outline radius ``(n, A)`` of every cell at the angles ``_ANGLES`` of the image frame."""
    unit = np.exp(1j * (_ANGLES[None, :] - cells["orient"][:, None]))  # in the cell frame
    coef = cells["harm"][..., 0] - 1j * cells["harm"][..., 1]
    wobble = 1 + (coef[:, :, None] * unit[:, None, :] ** _ORDERS[:, None]).real.sum(1)
    radius, aspect = (v[:, None] for v in _size_now(cells))
    return radius * wobble / np.sqrt(unit.real**2 / aspect + unit.imag**2 * aspect)


def _render(cells: dict, cfg: SyntheticConfig, scale: float):
    """Noise-free signal ``(Y, X)`` in photons and owner map ``(Y, X)`` of cell index + 1.

    Where nuclei overlap, a pixel goes to the one it lies deepest inside, so masks never
    overlap and the boundary between touching nuclei runs down the middle of their overlap.
    """
    depth = np.full(cfg.shape, -1.0)  # how far inside its owner each pixel lies
    signal, haze, owner = np.zeros(cfg.shape), np.zeros(cfg.shape), np.zeros(cfg.shape, np.int32)
    bright = scale * np.exp(cells["bright"] + cells["flicker"]) * (1 + 0.5 * _mitosis(cells))
    outline = _outlines(cells)
    cos, sin = np.cos(cells["orient"]), np.sin(cells["orient"])
    for i in range(len(outline)):
        (cy, cx), ext = cells["pos"][i], outline[i].max() + 2
        y0, y1 = max(int(cy - ext), 0), min(int(cy + ext) + 2, cfg.shape[0])
        x0, x1 = max(int(cx - ext), 0), min(int(cx + ext) + 2, cfg.shape[1])
        if y0 >= y1 or x0 >= x1:
            continue
        dy, dx = np.arange(y0, y1)[:, None] - cy, np.arange(x0, x1)[None, :] - cx
        rho = np.hypot(dy, dx)
        edge = np.interp(np.arctan2(dy, dx), _ANGLES, outline[i])
        dist = edge - rho
        rows, cols = np.nonzero(dist > (-1.0 if cells["ghost"][i] else depth[y0:y1, x0:x1]))
        if not rows.size:
            continue
        rho, edge, dist = (a[rows, cols] for a in (rho, edge, dist))
        dy, dx = dy[rows, 0], dx[0, cols]
        u = rho / edge  # 0 at the centre, 1 on the outline
        along, across = dx * cos[i] + dy * sin[i], dy * cos[i] - dx * sin[i]
        grid = (_TEX - 1) / 2 + (_TEX / 2.5) / edge * np.stack([across, along])
        static, field_a, field_b = cells["tex"][i]
        phase = cells["tphase"][i]  # rotating between two fields keeps their statistics
        field = np.cos(phase) * field_a + np.sin(phase) * field_b - 0.25 * cfg.texture**2
        tex = ndi.map_coordinates(static * np.exp(field), grid, order=1, mode="nearest")
        profile = 1 - cfg.dome + cfg.dome * np.sqrt(np.clip(1 - u * u, 0, 1))
        value = bright[i] * np.clip(dist + 0.5, 0, 1) * tex * profile  # partial volume
        rows, cols = rows + y0, cols + x0
        if cells["ghost"][i]:
            haze[rows, cols] += 0.4 * value
            continue
        depth[rows, cols], signal[rows, cols] = dist, value
        owner[rows, cols] = np.where(dist > 0, i + 1, 0)
    if cells["ghost"].any():
        signal += ndi.gaussian_filter(haze, 0.25 * cfg.radius[1])
    return signal, owner


def _largest_pieces(owner: np.ndarray, min_area: int) -> tuple[np.ndarray, np.ndarray]:
    """Component image, and per component its owner (index + 1) where it is kept, else 0."""
    comp = label_components(owner, background=0, connectivity=1)
    sizes = np.bincount(comp.ravel())
    who = np.zeros(len(sizes), np.int64)
    who[comp.ravel()] = owner.ravel()
    order = np.lexsort((sizes[1:], who[1:])) + 1  # by owner, then size: the last is largest
    best = order[np.diff(who[order], append=-1) != 0]
    best = best[sizes[best] >= min_area]
    keep = np.zeros(len(sizes), np.int64)
    keep[best] = who[best]
    return comp, keep


def synthetic_timelapse(config: SyntheticConfig | None = None, **overrides) -> SyntheticMovie:
    """Simulate a fluorescence-nuclei time-lapse with exact labels and lineage.

    Parameters
    ----------
    config : SyntheticConfig, optional
        Parameters; the defaults where omitted.
    **overrides
        Fields of :class:`SyntheticConfig` to replace, e.g. ``n_frames=10, seed=3``.

    Returns
    -------
    SyntheticMovie
        ``image`` and ``labels`` of shape ``(T, Y, X)``, ``lineage`` of shape ``(N, 4)``.

    Examples
    --------
    >>> movie = synthetic_timelapse(n_frames=5, shape=(64, 64), n_cells=3, seed=1)
    >>> movie.image.shape, movie.labels.dtype.name, movie.lineage.shape[1]
    ((5, 64, 64), 'uint16', 4)
    """
    cfg = dataclasses.replace(config or SyntheticConfig(), **overrides)
    cfg = dataclasses.replace(cfg, shape=tuple(int(v) for v in cfg.shape))
    rng = np.random.default_rng(cfg.seed)
    yy, xx = np.mgrid[: cfg.shape[0], : cfg.shape[1]] / max(cfg.shape)
    waves, phases = rng.normal(0, 1.5, (3, 2)), rng.uniform(0, 2 * np.pi, (3, 1, 1))
    uneven = np.cos(2 * np.pi * (waves[:, :1, None] * yy + waves[:, 1:, None] * xx) + phases)
    unevenness = 1 + cfg.illumination * uneven.mean(0)
    image = np.empty((cfg.n_frames, *cfg.shape), cfg.dtype)
    labels = np.zeros((cfg.n_frames, *cfg.shape), np.uint16)
    cells, next_pair = _initial_cells(rng, cfg), 1
    rows = [[0, 0, 0, 0]]  # [label, first, last, parent]; row 0 stands for the background
    for t in range(cfg.n_frames):
        if t:
            cells, next_pair = _step(rng, cells, cfg, t, next_pair)
        signal, owner = _render(cells, cfg, np.exp(-cfg.bleaching * t))
        comp, keep = _largest_pieces(owner, cfg.min_area)
        seen = np.zeros(len(cells["age"]), bool)
        seen[keep[keep > 0] - 1] = True
        newborn = (cells["born"] == t) & (cells["parent"] > 0)
        both = np.bincount(cells["pair"][newborn & seen], minlength=next_pair) == 2
        # a division is recorded only where the mother was seen and so are both daughters
        cells["parent"] = np.where(newborn & both[cells["pair"]], cells["parent"], 0)
        cells["track"] = np.where(seen, cells["track"], 0)  # unseen: the track ends for good
        for i in np.flatnonzero(seen):
            if cells["track"][i] == 0:
                cells["track"][i] = len(rows)
                rows.append([len(rows), t, t, int(cells["parent"][i])])
            rows[cells["track"][i]][2] = t
        lut = np.zeros(len(keep), np.int64)
        lut[keep > 0] = cells["track"][keep[keep > 0] - 1]
        labels[t] = lut[comp]
        light = light_field(signal, unevenness, cfg)
        photons = np.clip(ndi.gaussian_filter(light, cfg.blur), 0, None)
        noise = rng.normal(0, cfg.read_noise, cfg.shape)
        counts = np.rint(cfg.offset + cfg.gain * rng.poisson(photons) + noise)
        image[t] = np.clip(counts, 0, _DTYPE_MAX[cfg.dtype])
    if len(rows) > np.iinfo(np.uint16).max:  # far beyond realistic movies, but never wrap
        raise InputError(f"{len(rows) - 1} tracks do not fit uint16 labels; shorten the movie")
    lineage = np.array(rows[1:], np.int64).reshape(-1, 4)
    return SyntheticMovie(image=image, labels=labels, lineage=lineage, config=cfg)


def synthetic_image(
    config: SyntheticConfig | None = None, **overrides
) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic frame and its instance labels, e.g. for 2D training.

    Parameters
    ----------
    config : SyntheticConfig, optional
        Parameters; ``n_frames`` is ignored.
    **overrides
        Fields of :class:`SyntheticConfig` to replace.

    Returns
    -------
    image : ndarray of shape (Y, X)
        The frame, ``uint16`` or ``uint8``.
    labels : ndarray of shape (Y, X), uint16
        One id per in-focus nucleus, 0 for background.

    Examples
    --------
    >>> image, labels = synthetic_image(shape=(96, 128), n_cells=5, seed=2)
    >>> image.shape == labels.shape == (96, 128)
    True
    """
    movie = synthetic_timelapse(config, **{**overrides, "n_frames": 1})
    return movie.image[0], movie.labels[0]
