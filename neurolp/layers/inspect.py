"""Conformational analysis of trained Lp-masks (paper §5, App. A.6–A.7, A.16–A.17)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from neurolp.layers.convert import lp_layers
from neurolp.mpnd.conformation import conformation

__all__ = ["mask_table", "plot_masks"]


@torch.no_grad()
def mask_table(model: nn.Module):
    """One row per Lp-mask: layer, depth, channel, p, α, θ (deg), γ, ψ (deg) and the entries of C.

    ``depth`` numbers the Lp layers in module order (1 = first), for layer-wise plots (Fig. 5b).
    """
    import pandas as pd

    frames = []
    for depth, (name, m) in enumerate(lp_layers(model), start=1):
        C = m.C_matrix().detach().double().cpu()
        conf = conformation(C)
        n = C.shape[0]
        frames.append(pd.DataFrame({
            "layer": name, "depth": depth, "channel": np.arange(n),
            "kernel": f"{m.kernel_size[0]}x{m.kernel_size[1]}",
            "p": m.p.detach().double().cpu().numpy(),
            **{k: conf[k] for k in ("alpha", "theta", "gamma", "psi")},
            "C00": C[:, 0, 0].numpy(), "C01": C[:, 0, 1].numpy(),
            "C10": C[:, 1, 0].numpy(), "C11": C[:, 1, 1].numpy(),
        }))
    if not frames:
        return pd.DataFrame(columns=["layer", "depth", "channel", "kernel", "p", "alpha", "theta",
                                     "gamma", "psi", "C00", "C01", "C10", "C11"])
    return pd.concat(frames, ignore_index=True)


@torch.no_grad()
def plot_masks(layer, n: int = 32, *, ncols: int = 8, seed: int = 0, ax=None, title: str | None = None):
    """A grid of ``n`` randomly chosen Lp-masks of one layer, like the paper's Fig. 2f–g.

    Each panel is annotated with its p, and the layer's mean p goes in the title. Returns the figure.
    """
    import matplotlib.pyplot as plt

    masks = layer.mask().detach().float().cpu().numpy()
    ps = layer.p.detach().float().cpu().numpy()
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(masks), size=min(n, len(masks)), replace=False))
    nrows = int(np.ceil(len(idx) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.3 * ncols, 1.4 * nrows + 0.4), squeeze=False)
    for a in axes.flat:
        a.axis("off")
    for a, i in zip(axes.flat, idx):
        a.imshow(masks[i], cmap="magma", vmin=0, vmax=1, interpolation="nearest")
        a.set_title(f"#{i}  p={ps[i]:.1f}", fontsize=7)
    fig.suptitle(title or f"Lp-masks ({masks.shape[1]}×{masks.shape[2]}), mean p = {ps.mean():.2f}",
                 fontsize=9)
    fig.tight_layout()
    return fig
