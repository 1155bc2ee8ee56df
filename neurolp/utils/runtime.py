"""Seeding and device selection shared by every entry point."""

from __future__ import annotations

import contextlib
import os
import random
from pathlib import Path

from neurolp.errors import ConfigError

__all__ = ["seed_everything", "resolve_device", "user_dir", "torch_threads"]


def user_dir(env_var: str, name: str) -> Path:
    """``$env_var`` if set, else ``$XDG_CACHE_HOME/neurolp/<name>`` (``~/.cache/neurolp/<name>``)."""
    env = os.environ.get(env_var)
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "neurolp" / name


@contextlib.contextmanager
def torch_threads(n: int):
    """Run a block with ``n`` torch intra-op threads (small tensors: the pool costs more than it saves)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) so a run can be repeated."""
    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
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
