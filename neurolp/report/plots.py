"""Figures of the many-model report, drawn from its tidy tables.

The MPND panel is the fit-mpnd strip plot (:mod:`neurolp.rf.plots`), the layer profiles and the
heatmaps are the RSA figures (:mod:`neurolp.rsa.plots`); only the side-by-side summaries (Lp-mask
distributions, best-layer scores per area, accuracy) are drawn here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from neurolp.utils.io import save_figure

__all__ = ["plot_mpnd_p", "plot_masks_summary", "plot_best_rsa", "plot_accuracy"]


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _colors(n: int):
    return _plt().get_cmap("viridis")(np.linspace(0.05, 0.85, max(n, 1)))


def plot_mpnd_p(fits: pd.DataFrame, order: Sequence[str], path: str | Path, *,
                p_max: float = 64.0, tests: pd.DataFrame | None = None) -> Path:
    """p of every functional RF per model beside mouse V1 (box + dots, log₂ axis, p_max line)."""
    from neurolp.rf.plots import _strip_panel

    plt = _plt()
    fig, ax = plt.subplots(figsize=(1.6 + 0.85 * len(order), 3.8), dpi=150)
    _strip_panel(ax, fits, list(order), tests, p_max)
    ax.set_title("MPND p of first-conv functional RFs beside mouse V1\n"
                 "(Welch's t-test vs V1, Holm-corrected)", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_masks_summary(masks: pd.DataFrame, path: str | Path,
                       models: Sequence[str] | None = None) -> Path:
    """p, α, θ, γ of every Lp-mask, one box per Lp model (paper Fig. 2/5 statistics side by side)."""
    plt = _plt()
    models = list(models) if models else list(pd.unique(masks["model"]))
    models = [m for m in models if m in set(masks["model"])]
    cols = (("p", "learned p", True), ("alpha", "α (scale)", True), ("theta", "θ (deg)", False),
            ("gamma", "γ (distortion)", True))
    fig, axes = plt.subplots(1, 4, figsize=(4 * (1.2 + 0.55 * len(models)), 3.3), dpi=150)
    colors = _colors(len(models))
    rng = np.random.default_rng(0)
    for ax, (col, label, log) in zip(axes, cols):
        for k, (m, c) in enumerate(zip(models, colors)):
            v = masks.loc[masks["model"] == m, col].to_numpy(float)
            v = v[np.isfinite(v)]
            if not v.size:
                ax.annotate("undefined", (k, 0.5), xycoords=("data", "axes fraction"),
                            ha="center", va="center", fontsize=6.5, color="0.5", rotation=90)
                continue
            ax.boxplot([v], positions=[k], widths=0.55, showfliers=False, patch_artist=True,
                       boxprops={"facecolor": c, "alpha": 0.3},
                       medianprops={"color": c, "linewidth": 2})
            idx = rng.choice(v.size, size=min(v.size, 300), replace=False)
            ax.scatter(k + rng.uniform(-0.18, 0.18, idx.size), v[idx], s=3, color=c, alpha=0.5,
                       lw=0)
        if log:
            ax.set_yscale("log", base=2)
        ax.set_title(label, fontsize=8.5)
        ax.set_xticks(range(len(models)))
        ax.set_xticklabels(models, rotation=30, ha="right", fontsize=6.5)
        ax.set_xlim(-0.6, len(models) - 0.4)
        ax.tick_params(labelsize=7)
        ax.spines[["top", "right"]].set_visible(False)
    fig.suptitle("Learned Lp-masks: every mask of every Lp layer", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_best_rsa(maxima: pd.DataFrame, scores: pd.DataFrame, path: str | Path,
                  models: Sequence[str] | None = None) -> Path:
    """Best-layer score per area and model: normalised (left) and raw (right), bootstrap CIs."""
    plt = _plt()
    models = list(models) if models else list(pd.unique(maxima["model"]))
    areas = [a for a in pd.unique(maxima["area"]) if a != "all"]
    panel = min(max(3.0, 1.0 + 0.32 * len(areas) * max(1, len(models))), 9.0)
    rows_legend = -(-len(models) // 4)
    fig, axes = plt.subplots(1, 2, figsize=(2 * panel, 3.0 + 0.22 * rows_legend), dpi=150,
                             squeeze=False)
    width = 0.8 / max(len(models), 1)
    colors = _colors(len(models))
    for ax, kind in zip(axes[0], ("normalised", "raw")):
        for k, (m, c) in enumerate(zip(models, colors)):
            xs, ys, lo, hi = [], [], [], []
            for j, a in enumerate(areas):
                r = maxima[(maxima["model"] == m) & (maxima["area"] == a)]
                if r.empty or pd.isna(r.iloc[0]["max_normalised"]):
                    continue
                r = r.iloc[0]
                if kind == "normalised":
                    v, l, h = r["max_normalised"], r.get("max_ci_low", np.nan), r.get("max_ci_high",
                                                                                       np.nan)
                else:
                    at = scores[(scores["model"] == m) & (scores["area"] == a)
                                & (scores["layer"] == r["best_layer"])]
                    v = r["max_raw"]
                    l = at["raw_ci_low"].iloc[0] if len(at) else np.nan
                    h = at["raw_ci_high"].iloc[0] if len(at) else np.nan
                xs.append(j - 0.4 + width * (k + 0.5))
                ys.append(v)
                lo.append(max(v - l, 0.0) if l == l else 0.0)   # a CI need not contain v
                hi.append(max(h - v, 0.0) if h == h else 0.0)
            ax.bar(xs, ys, width=width * 0.92, color=c, alpha=0.8, label=m)
            if any(lo) or any(hi):
                ax.errorbar(xs, ys, yerr=[lo, hi], fmt="none", ecolor="k", lw=0.8, capsize=2)
        ax.axhline(0, color="0.5", lw=0.6)
        if kind == "normalised" and "normaliser" in scores and \
                set(scores["normaliser"]) != {"none"}:
            ax.axhline(1, color="0.3", lw=0.6, ls="--")
        ax.set_xticks(range(len(areas)))
        ax.set_xticklabels(areas, fontsize=8)
        comp = str(scores["comparator"].iloc[0]) if "comparator" in scores else "τ"
        ax.set_ylabel(f"best-layer {comp}" + (" / ceiling" if kind == "normalised" else " (raw)"),
                      fontsize=8)
        ax.tick_params(labelsize=7)
        ax.spines[["top", "right"]].set_visible(False)
    handles, labels = axes[0][0].get_legend_handles_labels()
    top = 1 - (0.09 + 0.06 * rows_legend)
    fig.legend(handles, labels, fontsize=6.5, frameon=False, loc="upper center",
               bbox_to_anchor=(0.5, top + 0.06 * rows_legend + 0.01), ncol=min(len(models), 4))
    fig.suptitle("RSA: best layer per area (error bars: bootstrap CI of that layer's score)",
                 fontsize=9, y=0.995)
    fig.tight_layout(rect=(0, 0, 1, top))
    return save_figure(fig, path)


def plot_accuracy(accuracy: pd.DataFrame, path: str | Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(1.6 + 0.7 * len(accuracy), 3.0), dpi=150)
    colors = _colors(len(accuracy))
    ax.bar(range(len(accuracy)), accuracy["acc"], color=colors, alpha=0.85)
    for k, v in enumerate(accuracy["acc"]):
        ax.text(k, v, f"{v:.1f}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(accuracy)))
    ax.set_xticklabels(accuracy["model"], rotation=30, ha="right", fontsize=7)
    ds = accuracy["dataset"].iloc[0] if len(accuracy) else ""
    ax.set_ylabel(f"top-1 accuracy (%), {ds}", fontsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return save_figure(fig, path)
