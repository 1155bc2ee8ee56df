"""Whole datasets as tensors for Hebbian training (Manzali's ``FastCIFAR10``: the set fits in memory,
pixels / 255, NCHW), read through :func:`neurolp.train.data.load_splits` (same splits, same
offline rules: CIFAR-10 from its python-version folder, digits bundled with scikit-learn)."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["TensorSplits", "load_tensor_splits", "augment_batch"]


@dataclass
class TensorSplits:
    train: tuple[torch.Tensor, torch.Tensor]
    val: tuple[torch.Tensor, torch.Tensor] | None
    test: tuple[torch.Tensor, torch.Tensor]
    classes: list[str]
    flip_ok: bool
    notes: list[str]


def _arrays(ds) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images [N, H, W, 3] and labels of an ArrayImages (or a subset of one)."""
    if hasattr(ds, "images"):
        return np.asarray(ds.images), np.asarray(ds.targets)
    imgs, _ = _arrays(ds.base)
    return imgs[np.asarray(ds.indices)], np.asarray(ds.targets)


def _to_tensor(ds, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    imgs, labels = _arrays(ds)
    x = torch.from_numpy(np.ascontiguousarray(imgs)).permute(0, 3, 1, 2).float().div_(255.0)
    if x.shape[-1] != size or x.shape[-2] != size:  # digits: 8×8 → 32×32
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return x.contiguous(), torch.as_tensor(labels, dtype=torch.long)


def load_tensor_splits(dataset: str = "digits", data_dir=None, *, val_fraction: float = 0.1,
                       split_seed: int = 0, max_train_samples: int | None = None,
                       image_size: int = 32) -> TensorSplits:
    """Train / val / test as float tensors in [0, 1] ``[N, 3, S, S]`` with long labels."""
    from neurolp.train.data import load_splits

    cfg = SimpleNamespace(dataset=dataset, data_dir=data_dir, val_fraction=val_fraction, split_seed=split_seed,
                          max_train_samples=max_train_samples, image_size=image_size, preset="quick")
    s = load_splits(cfg)
    val = _to_tensor(s.val, image_size) if s.val is not None else None
    return TensorSplits(_to_tensor(s.train, image_size), val, _to_tensor(s.test, image_size), list(s.classes),
                        s.info.flip_ok, list(s.notes))


def augment_batch(x: torch.Tensor, generator: torch.Generator | None = None, pad: int = 4,
                  flip: bool = True) -> torch.Tensor:
    """The slides' augmentation: reflect-pad ``pad`` + random crop back to size, random h-flip."""
    b, _, h, w = x.shape
    xp = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    dev = x.device
    oy = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(dev)
    ox = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(dev)
    rows = (oy[:, None] + torch.arange(h, device=dev)[None])[:, None, :, None]
    cols = (ox[:, None] + torch.arange(w, device=dev)[None])[:, None, None, :]
    out = xp[torch.arange(b, device=dev)[:, None, None, None], torch.arange(x.shape[1], device=dev)[None, :, None, None],
             rows, cols]
    if flip:
        f = (torch.rand(b, generator=generator) < 0.5).to(dev)
        out = torch.where(f[:, None, None, None], out.flip(-1), out)
    return out
