"""Seeding and device selection shared by every entry point."""

from __future__ import annotations

import os
import random

from neurolp.errors import ConfigError

__all__ = ["seed_everything", "resolve_device"]


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) so a run can be repeated."""
    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency, but keep seeding usable
        return
    torch.manual_seed(seed)


def resolve_device(device: str | None = "auto"):
    """``"auto"`` picks CUDA when present, else CPU; an unavailable explicit device is an error."""
    import torch

    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ConfigError(f"unknown device {device!r}; use 'cpu', 'cuda', 'cuda:N' or 'auto'") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} was requested but CUDA is not available on this "
                          "machine; use --device cpu (or auto)")
    return dev
