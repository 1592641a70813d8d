"""Saving and loading trained embedding models: one self-describing file per model.

A checkpoint is a ``torch.save`` of a dict holding only plain Python values and tensors, so it
loads with ``torch.load(..., weights_only=True)`` (no code from the file is ever run):

``format``
    :data:`CHECKPOINT_FORMAT`, checked on load.
``config``
    :meth:`ModelConfig.to_dict`, which rebuilds the exact network.
``state_dict``
    The network's weights, on the CPU.
``normalisation``
    :meth:`Normalisation.to_dict`: inputs are scaled at inference as they were in training.
``record``
    How the model came to be: training data, steps, wall time, device, validation scores, loss,
    seed, torch version, creation time and, for a fine-tuned model, the base model.
``name``
    A short name for display.

Bundled models live in the package folder ``napari_cosine_embed/models/<name>.pt``;
``load_model("default")`` is the one the plugin uses unless told otherwise.
"""

from __future__ import annotations

import copy
import errno
import importlib.resources
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .device import resolve_device
from .errors import InputError
from .io._atomic import atomic_write
from .models import ModelConfig, RecurrentStackedHourglass
from .normalise import Normalisation

__all__ = [
    "CHECKPOINT_FORMAT",
    "EmbeddingModel",
    "bundled_models_dir",
    "checkpoint_payload",
    "list_models",
    "load_model",
    "model_from_payload",
    "plain",
    "save_model",
]

CHECKPOINT_FORMAT = "napari-cosine-embed/checkpoint-v1"
#: Suffixes that make :func:`load_model` read its argument as a path rather than a bundled name.
_PATH_SUFFIXES = (".pt", ".pth", ".ckpt")


@dataclass
class EmbeddingModel:
    """A network together with everything needed to use it as it was trained.

    Attributes
    ----------
    network : RecurrentStackedHourglass
        The network (weights included).
    config : ModelConfig
        Its architecture (``network.config``).
    normalisation : Normalisation
        How each frame is scaled before it enters the network.
    record : dict
        Plain-data provenance: training data, steps, scores... (see the module notes).
    name : str
        Short name for display (the bundled name or the file stem).
    path : str or None
        The file it was loaded from or last saved to.

    Examples
    --------
    >>> model = EmbeddingModel.new(ModelConfig(filters=8, levels=2, embedding_dim=4), seed=0)
    >>> model.device.type, model.config.embedding_dim
    ('cpu', 4)
    """

    network: RecurrentStackedHourglass
    config: ModelConfig
    normalisation: Normalisation = field(default_factory=Normalisation)
    record: dict = field(default_factory=dict)
    name: str = "untrained"
    path: str | None = None

    @classmethod
    def new(
        cls,
        config: ModelConfig | None = None,
        *,
        normalisation: Normalisation | None = None,
        seed: int | None = None,
        name: str = "untrained",
    ) -> EmbeddingModel:
        """A freshly initialised model; ``seed`` makes the initial weights reproducible."""
        config = config or ModelConfig()
        if seed is None:
            network = RecurrentStackedHourglass(config)
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                network = RecurrentStackedHourglass(config)
        return cls(network, config, normalisation or Normalisation(), {}, name, None)

    @property
    def device(self) -> torch.device:
        """Where the weights are."""
        return next(self.network.parameters()).device

    def to(self, device: str | torch.device) -> EmbeddingModel:
        """Move the network to ``device`` ("auto", "cpu", "cuda"...); returns self."""
        self.network.to(resolve_device(device))
        return self

    def eval(self) -> EmbeddingModel:
        """Put the network in inference mode; returns self."""
        self.network.eval()
        return self

    def copy(self) -> EmbeddingModel:
        """An independent copy (weights, record and all)."""
        return EmbeddingModel(
            copy.deepcopy(self.network),
            self.config,
            self.normalisation,
            copy.deepcopy(self.record),
            self.name,
            self.path,
        )


def plain(value: Any) -> Any:
    """``value`` with tuples, paths and NumPy scalars turned into types ``weights_only`` loads.

    Raises ``TypeError`` for anything else (an object), so a record never needs pickle.
    """
    if isinstance(value, np.generic):  # before float: np.float64 is a float subclass
        return value.item()
    if value is None or type(value) in (bool, int, float, str):
        return value
    for kind in (bool, int, float, str):  # subclasses, e.g. torch.__version__ or an IntEnum
        if isinstance(value, kind):
            return kind(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().clone()
    raise TypeError(f"cannot store a {type(value).__name__} in a checkpoint record")


def checkpoint_payload(model: EmbeddingModel) -> dict[str, Any]:
    """The dict :func:`save_model` writes (weights copied to the CPU)."""
    return {
        "format": CHECKPOINT_FORMAT,
        "name": model.name,
        "config": model.config.to_dict(),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.network.state_dict().items()},
        "normalisation": model.normalisation.to_dict(),
        "record": plain(model.record),
    }


def torch_save(payload: Any, path: str | os.PathLike) -> None:
    """``torch.save``, with a failed write reported as the :class:`OSError` it is.

    torch's zip writer turns a full disk or a file-size limit into a ``RuntimeError``
    ("enforce fail ... unexpected pos"); callers that handle write failures expect OSError.
    """
    try:
        torch.save(payload, path)
    except RuntimeError as exc:
        raise OSError(errno.EIO, f"the file could not be written ({exc})", str(path)) from exc


def save_model(path: str | os.PathLike, model: EmbeddingModel, *, overwrite: bool = False) -> Path:
    """Write ``model`` to ``path`` atomically (a reader never sees a half-written file).

    Parameters
    ----------
    path : path-like
        Destination, conventionally ``*.pt``.
    model : EmbeddingModel
    overwrite : bool, keyword-only
        Replace an existing file; otherwise :class:`OutputExistsError` is raised.

    Returns
    -------
    Path
        The written file; ``model.path`` is set to it.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> model = EmbeddingModel.new(ModelConfig(filters=8, levels=2, embedding_dim=4), seed=0)
    >>> path = save_model(pathlib.Path(tempfile.mkdtemp()) / "tiny.pt", model)
    >>> load_model(path, device="cpu").config == model.config
    True
    """
    payload = checkpoint_payload(model)
    written = atomic_write(path, lambda tmp: torch_save(payload, tmp), overwrite=overwrite)
    model.path = str(written)
    return written


def bundled_models_dir() -> Path:
    """The package folder holding the bundled ``<name>.pt`` models."""
    return Path(str(importlib.resources.files("napari_cosine_embed") / "models"))


def _bundled() -> dict[str, Path]:
    folder = bundled_models_dir()
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.glob("*.pt"))}


def _resolve(name_or_path: str | os.PathLike) -> tuple[Path, str]:
    text = os.fspath(name_or_path)
    as_path = Path(text)
    is_path = (
        isinstance(name_or_path, os.PathLike)
        or as_path.suffix.lower() in _PATH_SUFFIXES
        or os.sep in text
        or "/" in text
        or as_path.exists()
    )
    if is_path:
        if as_path.is_dir():
            raise InputError(f"{as_path}: is a folder, expected a model file (.pt)")
        if not as_path.is_file():
            raise InputError(f"{as_path}: no such model file")
        return as_path, as_path.stem
    bundled = _bundled()
    if text in bundled:
        return bundled[text], text
    available = ", ".join(sorted(bundled)) or "none"
    hint = ""
    if text == "default":
        hint = (
            "; the default model has not been trained yet: train one with "
            "'napari-cosine-embed train --out model.pt' and load it by path"
        )
    raise InputError(f"no bundled model called {text!r} (bundled: {available}){hint}")


# What torch's weights-only unpickler says when the data is intact but names a Python object
# (a class, a function) that it will not build; any other failure of it is damaged data.
_DISALLOWED_OBJECT = re.compile(
    r"GLOBAL (\S+) (?:was not an allowed global|whose module)|Trying to call reduce for "
    r"unrecognized function|Can only (?:create new object|build)"
)
_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTOCOL = 0x80  # first byte of a pickle (protocol 2+): torch's pre-1.6 format


def _load_failure(path: Path, head: bytes, exc: Exception) -> InputError:
    """An :class:`InputError` naming what is wrong with a file ``torch.load`` refused."""
    text = str(exc).strip()
    disallowed = _DISALLOWED_OBJECT.search(text)
    if disallowed:
        what = disallowed.group(1) or "an object of an unknown type"
        return InputError(
            f"{path}: unsafe model file: it holds pickled Python objects ({what}), not only "
            f"plain data and tensors, and is refused because loading it could run code; "
            f"napari-cosine-embed models never hold such objects"
        )
    if not head.startswith(_ZIP_MAGIC) and head[:1] != bytes([_PICKLE_PROTOCOL]):
        if all(32 <= b < 127 or b in b"\t\r\n" for b in head):
            kind = "it holds text"
        else:
            kind = "it does not start like one (no ZIP or pickle header)"
        return InputError(f"{path}: not a model file: {kind}, not a PyTorch checkpoint")
    # torch's own messages run over several lines and advise on unrelated settings; the first
    # line (or the unpickler's own complaint) says what went wrong.
    detail = text.rsplit("WeightsUnpickler error:", 1)[-1].strip() if text else ""
    detail = detail.splitlines()[0].split(". ")[0][:160] if detail else type(exc).__name__
    return InputError(
        f"{path}: corrupt or truncated model file: the PyTorch checkpoint cannot be decoded "
        f"({detail})"
    )


def _read_payload(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as file:
            head = file.read(64)
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    if not head:
        raise InputError(f"{path}: empty file (0 bytes), not a napari-cosine-embed model")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises many types for truncated or foreign files
        raise _load_failure(path, head, exc) from exc
    if isinstance(payload, dict) and isinstance(payload.get("model"), dict):
        payload = payload["model"]  # a training-state file (see training.trainer) holds one
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        if isinstance(payload, dict) and {"config", "state_dict"} <= set(payload):
            return {
                **payload,
                "format": CHECKPOINT_FORMAT,
            }  # RecurrentStackedHourglass.to_checkpoint
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise InputError(
            f"{path}: not a napari-cosine-embed model (expected format {CHECKPOINT_FORMAT!r}, "
            f"found {found!r})"
        )
    return payload


def model_from_payload(payload: dict[str, Any], *, name: str = "", path: str | None = None):
    """Rebuild an :class:`EmbeddingModel` (on the CPU, eval mode) from a checkpoint dict."""
    where = path or name or "checkpoint"
    try:
        config = ModelConfig.from_dict(dict(payload["config"]))
        normalisation = Normalisation.from_dict(dict(payload.get("normalisation") or {}))
        network = RecurrentStackedHourglass(config)
        network.load_state_dict(payload["state_dict"])
        record = dict(payload.get("record") or {})
    except KeyError as exc:
        raise InputError(
            f"{where}: the checkpoint does not describe a usable network (the entry {exc} is "
            f"missing)"
        ) from exc
    except (TypeError, ValueError, RuntimeError, AttributeError) as exc:
        raise InputError(
            f"{where}: the checkpoint does not describe a usable network ({exc})"
        ) from exc
    # A diverged training run saves NaN or infinite weights, which would embed every pixel
    # as NaN and fail much later, far from the cause.
    weights = network.state_dict().items()
    bad = [k for k, v in weights if v.is_floating_point() and not v.isfinite().all()]
    if bad:
        raise InputError(
            f"{where}: non-finite weights (NaN or infinity) in {len(bad)} tensor"
            f"{'s' if len(bad) > 1 else ''}, e.g. {bad[0]!r}; the model cannot be used (was "
            f"it saved after training diverged?)"
        )
    network.eval()
    return EmbeddingModel(
        network, config, normalisation, record, str(payload.get("name") or name), path
    )


def load_model(
    name_or_path: str | os.PathLike = "default", device: str | torch.device = "auto"
) -> EmbeddingModel:
    """Load a bundled model by name, or a model file by path.

    Parameters
    ----------
    name_or_path : str or path-like
        A bundled name (see :func:`list_models`) or a file written by :func:`save_model`.
        Strings ending in ``.pt``/``.pth``/``.ckpt`` or holding a path separator are paths.
    device : str or torch.device
        Where to put the network ("auto": CUDA, then MPS, then CPU).

    Returns
    -------
    EmbeddingModel
        Network in eval mode on ``device``.

    Raises
    ------
    InputError
        Unknown name (the message lists the bundled ones), missing file, or a file that is
        corrupt, truncated or not one of our checkpoints (e.g. a bare ``state_dict``).
    """
    path, name = _resolve(name_or_path)
    model = model_from_payload(_read_payload(path), name=name, path=str(path))
    model.name = name
    return model.to(device).eval()


def _summary(record: dict) -> dict[str, Any]:
    data = record.get("data") or {}
    return {
        "trained_on": data.get("summary", "") if isinstance(data, dict) else str(data),
        "steps": record.get("steps"),
        "scores": record.get("scores") or {},
        "created": record.get("created"),
        "base_model": (record.get("base_model") or {}).get("name"),
    }


def list_models() -> list[dict[str, Any]]:
    """The bundled models: ``name``, ``path``, ``size`` (bytes) and a summary of the record.

    A bundled file that cannot be read is listed with an ``error`` instead of a summary.
    """
    listing = []
    for name, path in _bundled().items():
        entry: dict[str, Any] = {"name": name, "path": str(path), "size": path.stat().st_size}
        try:
            entry.update(_summary(dict(_read_payload(path).get("record") or {})))
        except InputError as exc:
            entry["error"] = str(exc)
        listing.append(entry)
    return listing
