"""Conformational analysis of a Sudoku Lp-CNN's masks and the orientation ablation (paper §5,
Fig. 5b–c, App. A.6–A.8).

* :func:`mask_conformations` — α (scale), θ (rotation, degrees; 90° = a vertical, column-selective
  mask), γ (distortion) and p of every Lp-mask of the L Conv2dSame blocks (the head is left out),
  one row per mask with its layer number 1..L (Fig. 5b);
* :func:`mask_values` / :func:`plot_mask_grid` — the masks themselves, layer by layer (Fig. 9);
* :func:`orientation_ablation` — masks with γ > ``gamma_min`` (3 in the paper) are orientation
  selective; those whose θ lies within ±Δ of 90° are ablated (their mask set to zero, so the
  filter's output is its bias), for growing Δ, in all layers / the first half / the second half
  (layers 1–5 / 6–10 for L = 10), and row / column / box validity is measured on held-out puzzles
  (Fig. 5c, Fig. 10). The **matched random control** ablates, in each layer, the same number of
  masks drawn uniformly from all of that layer's masks (``controls`` repeats, seeded), so a drop
  that is specific to the column-selective masks shows up as a gap between the two.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from neurolp.errors import ConfigError

__all__ = ["block_lp_layers", "mask_conformations", "mask_values", "select_orientation_masks",
           "ablate_masks", "orientation_ablation", "layer_groups", "plot_conformations",
           "plot_mask_grid", "plot_ablation", "plot_curves", "UNIT_COLUMNS"]

UNIT_COLUMNS = ("row_validity", "column_validity", "box_validity")


def block_lp_layers(model: nn.Module):
    """``(layer number 1..L, module name, LpConv2d)`` of the Conv2dSame blocks, in depth order."""
    from neurolp.layers import lp_layers

    layers = [(n, m) for n, m in lp_layers(model) if n.startswith("blocks.")]
    if not layers:
        raise ConfigError("the model has no Lp-masks in its blocks (a base or large variant?); the "
                          "conformational analysis needs an lp{p} or lp{p}f SudokuCNN")
    return [(i + 1, n, m) for i, (n, m) in enumerate(layers)]


@torch.no_grad()
def mask_conformations(model: nn.Module):
    """One row per block mask: layer, name, channel, p, alpha, theta, gamma, psi, C entries."""
    import pandas as pd

    from neurolp.layers import mask_table

    table = mask_table(model)
    names = {n: i for i, n, _ in block_lp_layers(model)}
    table = table[table["layer"].isin(names)].copy()
    table.insert(0, "layer_index", table["layer"].map(names).astype(int))
    return table.drop(columns=["depth"]).rename(columns={"layer": "module"}).reset_index(drop=True)


@torch.no_grad()
def mask_values(model: nn.Module, channels: int | None = None):
    """The masks as a tidy table: layer_index, channel, dy, dx (offsets from the centre), value.

    ``channels`` keeps the first N channels of each layer (all by default)."""
    import pandas as pd

    frames = []
    for i, _, m in block_lp_layers(model):
        masks = m.mask().detach().float().cpu().numpy()
        if channels is not None:
            masks = masks[:channels]
        c, h, w = masks.shape
        cc, yy, xx = np.meshgrid(np.arange(c), np.arange(h) - (h - 1) / 2, np.arange(w) - (w - 1) / 2,
                                 indexing="ij")
        frames.append(pd.DataFrame({"layer_index": i, "channel": cc.ravel(), "dy": yy.ravel(),
                                    "dx": xx.ravel(), "value": masks.ravel()}))
    return pd.concat(frames, ignore_index=True)


def layer_groups(depth: int) -> dict[str, list[int]]:
    """``all`` = 1..L, ``first`` = 1..⌊L/2⌋, ``second`` = ⌊L/2⌋+1..L (paper: 1–10, 1–5, 6–10)."""
    half = depth // 2
    return {"all": list(range(1, depth + 1)), "first": list(range(1, half + 1)),
            "second": list(range(half + 1, depth + 1))}


def select_orientation_masks(table, delta: float, *, gamma_min: float = 3.0, center: float = 90.0,
                             layers=None) -> dict[int, np.ndarray]:
    """``{layer: channels}`` of masks with γ > ``gamma_min`` and θ within ±``delta`` of ``center``
    (θ is an axis angle in [0°, 180°): the distance wraps around 180°)."""
    t = table if layers is None else table[table["layer_index"].isin(list(layers))]
    dist = np.abs(((t["theta"].to_numpy() - center + 90.0) % 180.0) - 90.0)
    keep = (t["gamma"].to_numpy() > gamma_min) & (dist <= delta) & np.isfinite(dist)
    sel = t[keep]
    return {int(i): np.sort(g["channel"].to_numpy()) for i, g in sel.groupby("layer_index")}


def ablate_masks(model: nn.Module, selection: dict[int, np.ndarray]) -> nn.Module:
    """A copy of ``model`` in which the selected masks (``{layer: channels}``) are zero.

    Zeroing a mask zeroes the masked weight ``W ⊙ M`` of that output channel, so the filter puts
    out only its bias; everything else is untouched.
    """
    ablated = copy.deepcopy(model)
    layers = {i: m for i, _, m in block_lp_layers(ablated)}
    with torch.no_grad():
        for i, chans in selection.items():
            if i not in layers:
                raise ConfigError(f"layer {i} is not an Lp block of the model (1..{len(layers)})")
            if len(chans):
                layers[i].weight[torch.as_tensor(np.asarray(chans), dtype=torch.long)] = 0.0
    return ablated.eval()


def _random_matched(selection: dict[int, np.ndarray], widths: dict[int, int],
                    rng: np.random.Generator) -> dict[int, np.ndarray]:
    return {i: np.sort(rng.choice(widths[i], size=len(ch), replace=False)) for i, ch in selection.items()}


def orientation_ablation(model: nn.Module, quizzes: np.ndarray, solutions: np.ndarray, *,
                         deltas=(0, 5, 10, 15, 20, 30, 45, 60, 90), gamma_min: float = 3.0,
                         center: float = 90.0, controls: int = 3, seed: int = 0,
                         batch_size: int = 500, groups: dict[str, list[int]] | None = None,
                         progress: bool = False):
    """Row / column / box validity (and cell accuracy, puzzle validity) after ablating the
    orientation-selective masks near ``center`` (90°: column-selective) for each Δ in ``deltas``,
    per layer group, with ``controls`` matched random ablations each (see the module docstring).

    Returns a tidy DataFrame: group, layers, center, delta, kind (``"none"``, ``"targeted"``,
    ``"random"``), repeat, n_ablated, then the metrics.
    """
    import pandas as pd
    from tqdm.auto import tqdm

    from neurolp.sudoku.metrics import evaluate_puzzles

    model = model.eval()
    table = mask_conformations(model)
    widths = {i: m.out_channels for i, _, m in block_lp_layers(model)}
    groups = groups or layer_groups(len(widths))
    rng = np.random.default_rng(seed)
    keys = ("cell_accuracy", "blank_accuracy", *UNIT_COLUMNS, "puzzle_validity")

    def measure(net):
        res = evaluate_puzzles(net, quizzes, solutions, iterative=0, batch_size=batch_size)
        return {k: res[k] for k in keys}

    base = measure(model)
    rows = []
    jobs = [(g, d) for g in groups for d in deltas]
    for g, d in tqdm(jobs, desc="ablation", disable=not progress):
        layers = groups[g]
        sel = select_orientation_masks(table, d, gamma_min=gamma_min, center=center, layers=layers)
        n = int(sum(len(c) for c in sel.values()))
        label = f"{min(layers)}-{max(layers)}" if layers else ""
        common = {"group": g, "layers": label, "center": float(center), "delta": float(d),
                  "n_ablated": n}
        rows.append({**common, "kind": "targeted", "repeat": 0,
                     **(measure(ablate_masks(model, sel)) if n else base)})
        for r in range(controls):
            ctrl = _random_matched(sel, widths, rng)
            rows.append({**common, "kind": "random", "repeat": r,
                         **(measure(ablate_masks(model, ctrl)) if n else base)})
    rows.append({"group": "none", "layers": "", "center": float(center), "delta": 0.0,
                 "n_ablated": 0, "kind": "none", "repeat": 0, **base})
    return pd.DataFrame(rows)


# --- figures -----------------------------------------------------------------------------------
def plot_conformations(table, *, gamma_min: float = 3.0, theta_gamma_min: float = 1.5,
                       title: str | None = None):
    """Fig. 5b: per layer, the distributions of α, θ (of masks with γ > ``theta_gamma_min``, where
    an orientation is defined) and γ (dashed: the ablation's ``gamma_min``)."""
    import matplotlib.pyplot as plt

    layers = sorted(table["layer_index"].unique())
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    for ax, col, label in zip(axes, ("alpha", "theta", "gamma"),
                              ("scale α", f"rotation θ (deg), γ > {theta_gamma_min:g}",
                               "distortion γ")):
        data = []
        for i in layers:
            t = table[table["layer_index"] == i]
            v = t[col].to_numpy(dtype=float)
            if col == "theta":
                v = v[(t["gamma"].to_numpy() > theta_gamma_min)]
            data.append(v[np.isfinite(v)])
        rng = np.random.default_rng(0)
        for k, v in enumerate(data):
            ax.scatter(np.full(len(v), k + 1) + rng.uniform(-0.25, 0.25, len(v)), v,
                       s=4 if col != "theta" else 9, alpha=0.35 if col != "theta" else 0.7,
                       color="tab:red", linewidths=0)
        if col != "theta":  # (a median of axis angles means little)
            med = [np.median(v) if len(v) else np.nan for v in data]
            ax.plot(range(1, len(layers) + 1), med, "k.-", lw=1, label="median")
        ax.set_xticks(range(1, len(layers) + 1), [str(i) for i in layers])
        ax.set_xlabel("layer")
        ax.set_ylabel(label)
        if col == "theta":
            ax.set_yticks([0, 45, 90, 135, 180])
            ax.set_ylim(0, 180)
        if col == "gamma":
            ax.set_yscale("log")
            ax.axhline(gamma_min, color="0.5", ls="--", lw=0.8)
    fig.suptitle(title or "Lp-mask conformations per layer (Fig. 5b)", fontsize=10)
    fig.tight_layout()
    return fig


def plot_mask_grid(values, *, per_layer: int = 16, title: str | None = None):
    """Fig. 9: ``per_layer`` masks of each layer (rows = layers), from :func:`mask_values`."""
    import matplotlib.pyplot as plt

    layers = sorted(values["layer_index"].unique())
    fig, axes = plt.subplots(len(layers), per_layer, figsize=(0.75 * per_layer, 0.8 * len(layers) + 0.5),
                             squeeze=False)
    for r, i in enumerate(layers):
        v = values[values["layer_index"] == i]
        size = int(round(np.sqrt(len(v[v["channel"] == v["channel"].iloc[0]]))))
        for c, ch in enumerate(sorted(v["channel"].unique())[:per_layer]):
            img = v[v["channel"] == ch].sort_values(["dy", "dx"])["value"].to_numpy().reshape(size, size)
            axes[r, c].imshow(img, cmap="magma", vmin=0, vmax=1, interpolation="nearest")
        for c in range(per_layer):
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
        axes[r, 0].set_ylabel(f"L{i}", rotation=0, labelpad=12, fontsize=8)
    fig.suptitle(title or "Lp-masks per layer (Fig. 9)", fontsize=10)
    fig.tight_layout()
    return fig


def plot_ablation(df, *, center: float = 90.0, title: str | None = None):
    """Fig. 5c / Fig. 10: row / column / box validity vs Δ per layer group; targeted (solid) and
    the matched random control (dashed, mean ± s.d. over repeats)."""
    import matplotlib.pyplot as plt

    groups = [g for g in ("all", "first", "second") if g in set(df["group"])]
    fig, axes = plt.subplots(1, len(groups), figsize=(4.2 * len(groups), 3.4), squeeze=False,
                             sharey=True)
    colors = {"row_validity": "tab:blue", "column_validity": "tab:green", "box_validity": "tab:orange"}
    for ax, g in zip(axes[0], groups):
        d = df[df["group"] == g]
        for col, color in colors.items():
            t = d[d["kind"] == "targeted"].sort_values("delta")
            ax.plot(t["delta"], t[col], "-o", ms=3, color=color, label=col.split("_")[0])
            r = d[d["kind"] == "random"].groupby("delta")[col].agg(["mean", "std"]).reset_index()
            if len(r):
                ax.plot(r["delta"], r["mean"], "--", color=color, alpha=0.8)
                ax.fill_between(r["delta"], r["mean"] - r["std"].fillna(0), r["mean"] + r["std"].fillna(0),
                                color=color, alpha=0.12)
        layers = d["layers"].iloc[0] if len(d) else ""
        ax.set_title(f"layers {layers}", fontsize=9)
        ax.set_xlabel(f"ablated θ range ±Δ around {center:g}° (deg)")
    axes[0, 0].set_ylabel("validity (solid: targeted, dashed: random)")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(title or "Ablation of column-selective Lp-masks (Fig. 5c)", fontsize=10)
    fig.tight_layout()
    return fig


def plot_curves(histories: dict, *, title: str | None = None):
    """Fig. 4b: held-out loss and row / column / box / puzzle validity per epoch, one line per
    variant (``histories``: variant → metrics DataFrame)."""
    import matplotlib.pyplot as plt

    cols = ("loss", "row_validity", "column_validity", "box_validity", "puzzle_validity",
            "blank_accuracy")
    fig, axes = plt.subplots(1, len(cols), figsize=(3.0 * len(cols), 3.0))
    for name, h in histories.items():
        for ax, col in zip(axes, cols):
            if col in h:
                ax.plot(h["epoch"], h[col], "-o", ms=3, label=name)
    for ax, col in zip(axes, cols):
        ax.set_title(col.replace("_", " "), fontsize=9)
        ax.set_xlabel("epoch")
    axes[0].legend(fontsize=7)
    fig.suptitle(title or "Sudoku test curves (Fig. 4b)", fontsize=10)
    fig.tight_layout()
    return fig
