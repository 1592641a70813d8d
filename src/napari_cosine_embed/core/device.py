"""Choosing the torch device: ``auto`` picks CUDA, then Apple MPS, then the CPU."""

from __future__ import annotations

import torch

from .errors import InputError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def available_devices() -> list[str]:
    """Devices usable on this machine, best first, always ending with ``"cpu"``.

    Examples
    --------
    >>> available_devices()[-1]
    'cpu'
    """
    found = []
    if torch.cuda.is_available():
        found += [f"cuda:{i}" if i else "cuda" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    return [*found, "cpu"]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn a user's device choice into a :class:`torch.device`, with a clear error if absent.

    Parameters
    ----------
    device : str or torch.device
        ``"auto"`` (CUDA if present, else MPS, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"``
        or ``"mps"``.

    Raises
    ------
    InputError
        If the requested accelerator is not available on this machine.

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if isinstance(device, torch.device):
        device = str(device)
    name = str(device).strip().lower()
    if name == "auto":
        return torch.device(available_devices()[0])
    try:
        dev = torch.device(name)
    except RuntimeError as err:
        raise InputError(f"unknown device {device!r}; choose one of {DEVICE_CHOICES}") from err
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(
                f"device {device!r} was asked for, but no CUDA GPU is available here "
                f"(available: {', '.join(available_devices())}); use 'auto' or 'cpu'"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise InputError(
                f"device {device!r} does not exist: this machine has "
                f"{torch.cuda.device_count()} CUDA device(s)"
            )
    elif dev.type == "mps" and "mps" not in available_devices():
        raise InputError(f"device {device!r} was asked for, but Apple MPS is not available here")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise InputError(f"unsupported device {device!r}; choose one of {DEVICE_CHOICES}")
    return dev
