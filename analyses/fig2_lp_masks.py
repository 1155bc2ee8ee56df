"""Fig. 2a–e and Fig. 5a: Lp-masks at initialisation and the conformations α, θ, γ span.

Pure mask math (no training): the init masks of a 3×3 conv converted to 7×7 for p_init ∈ {2, 4, 8,
16, 256} next to the Base (3×3) and Large (7×7, no mask) kernels, and p = 2 masks inverse-computed
from scale α, rotation θ and distortion γ as in Fig. 5a.

    python analyses/fig2_lp_masks.py [--out figures]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from neurolp.layers import lp_convert  # noqa: E402
from neurolp.mpnd import C_from_conformation, lp_mask, offset_grid  # noqa: E402
from neurolp.utils import save_figure  # noqa: E402

CMAP = "magma"


def init_masks() -> list[tuple[str, np.ndarray]]:
    panels = [("Base 3×3", np.pad(np.ones((3, 3)), 2)), ("Large 7×7", np.ones((7, 7)))]
    for p in (2, 4, 8, 16, 256):
        layer = lp_convert(nn.Conv2d(1, 1, 3, padding=1), float(p))
        panels.append((f"Lp, p_init = {p}", layer.mask()[0].detach().numpy()))
    return panels


def conformation_grid(size: int = 15):
    alphas, thetas, gammas = (2.5, 4.5), (0.0, 45.0, 90.0, 135.0), (1.5, 3.0)
    off = offset_grid(size)
    rows = []
    for gamma in gammas:
        for alpha in alphas:
            row = []
            for theta in thetas:
                C = torch.tensor(C_from_conformation(alpha, theta, gamma), dtype=torch.float32)[None]
                row.append(lp_mask(C, torch.tensor([2.0]), off)[0].numpy())
            rows.append(((alpha, gamma), row))
    return rows, thetas


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "figures")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    panels = init_masks()
    fig, axes = plt.subplots(1, len(panels), figsize=(1.9 * len(panels), 2.4))
    for ax, (title, m) in zip(axes, panels):
        im = ax.imshow(m, cmap=CMAP, vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_xticks([]), ax.set_yticks([])
        for (i, j), v in np.ndenumerate(m):
            if v >= 0.005:
                label = "1" if v > 0.995 else f"{v:.2f}".lstrip("0")
                ax.text(j, i, label, ha="center", va="center", fontsize=5,
                        color="black" if v > 0.6 else "white")
    fig.colorbar(im, ax=axes, shrink=0.8, label="mask value")
    fig.suptitle("Lp-masks at initialisation: a 3×3 conv converted to 7×7 (σ_init = k/2)", fontsize=10)
    save_figure(fig, args.out / "fig2_lp_masks.png", dpi=160, bbox_inches="tight")

    rows, thetas = conformation_grid()
    fig, axes = plt.subplots(len(rows), len(thetas), figsize=(1.6 * len(thetas) + 1.2, 1.5 * len(rows)))
    for r, ((alpha, gamma), row) in enumerate(rows):
        for c, m in enumerate(row):
            ax = axes[r, c]
            ax.imshow(m, cmap=CMAP, vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if r == 0:
                ax.set_title(f"θ = {thetas[c]:.0f}°", fontsize=9)
            if c == 0:
                ax.set_ylabel(f"α = {alpha:g}\nγ = {gamma:g}", fontsize=8, rotation=0, ha="right", va="center")
    fig.suptitle("p = 2 Lp-masks from scale α, rotation θ, distortion γ (C = VΛVᵀ; cf. Fig. 5a)", fontsize=10)
    fig.tight_layout()
    save_figure(fig, args.out / "fig5a_conformations.png", dpi=160, bbox_inches="tight")
    print(f"wrote {args.out / 'fig2_lp_masks.png'} and {args.out / 'fig5a_conformations.png'}")


if __name__ == "__main__":
    main()
