"""Figures: the layer × area heatmap (paper Fig. 11), layer profiles, and the max-SSM comparison
across models with Welch t-tests (paper Fig. 6b).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from neurolp.errors import InputError
from neurolp.utils.io import save_figure

__all__ = ["plot_heatmap", "plot_layer_profiles", "max_comparison", "plot_max_comparison"]


def _mpl():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _value_label(df: pd.DataFrame, value: str) -> str:
    comp = str(df["comparator"].iloc[0]) if "comparator" in df else "tau"
    name = {"tau_a": "Kendall τ_a", "tau_b": "Kendall τ_b", "spearman": "Spearman ρ",
            "pearson": "Pearson r"}.get(comp, comp)
    if value == "normalised":
        norm = str(df["normaliser"].iloc[0]) if "normaliser" in df else "ceiling"
        return f"{name} / {norm} noise ceiling"
    return f"raw {name}"


def plot_heatmap(scores: pd.DataFrame, path: str | Path, *, model: str | None = None,
                 value: str = "normalised", title: str | None = None) -> Path:
    """Layer (rows, forward order) × area (columns) heatmap of one model's scores."""
    plt = _mpl()
    from matplotlib.colors import TwoSlopeNorm

    df = scores if model is None else scores[scores["model"] == model]
    if df.empty:
        raise InputError(f"no scores for model {model!r}")
    model = model or str(df["model"].iloc[0])
    tab = df.pivot_table(index=["layer_index", "layer"], columns="area", values=value,
                         aggfunc="first").sort_index(level=0)
    above = df.pivot_table(index=["layer_index", "layer"], columns="area", values="above_ceiling",
                           aggfunc="first").reindex(tab.index)[tab.columns] \
        if value == "normalised" and "above_ceiling" in df else None
    data = tab.to_numpy(dtype=float)
    n_l, n_a = data.shape
    fig, ax = plt.subplots(figsize=(1.6 + 1.05 * n_a, 1.4 + 0.28 * n_l), dpi=150)
    finite = data[np.isfinite(data)]
    vmax = max(float(np.max(np.abs(finite))) if finite.size else 1.0, 1e-6)
    im = ax.imshow(data, aspect="auto", cmap="RdBu_r",
                   norm=TwoSlopeNorm(vcenter=0.0, vmin=-vmax, vmax=vmax), interpolation="nearest")
    digits = 2 if vmax >= 0.1 else 3 if vmax >= 0.01 else 4
    best = np.full(n_a, -1)
    for j in range(n_a):
        col = data[:, j]
        if np.any(np.isfinite(col)):
            best[j] = int(np.nanargmax(col))
    for i in range(n_l):
        for j in range(n_a):
            v = data[i, j]
            if not np.isfinite(v):
                ax.text(j, i, "n/a", ha="center", va="center", fontsize=6, color="0.5")
                continue
            flag = "†" if above is not None and bool(above.iat[i, j]) else ""
            ax.text(j, i, f"{v:.{digits}f}{flag}", ha="center", va="center", fontsize=6.5,
                    color="white" if abs(v) > 0.6 * vmax else "black",
                    fontweight="bold" if best[j] == i else "normal")
    for j, i in enumerate(best):
        if i >= 0:
            ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, lw=1.4, ec="k"))
    ax.set_xticks(range(n_a))
    ax.set_xticklabels(list(tab.columns), fontsize=8)
    ax.set_yticks(range(n_l))
    ax.set_yticklabels([f"{k}: {name}" for k, name in tab.index], fontsize=6.5)
    ax.set_xlabel("visual area")
    ax.set_ylabel("conv layer (forward order)")
    cb = fig.colorbar(im, ax=ax, fraction=0.05, pad=0.02)
    cb.set_label(_value_label(df, value), fontsize=8)
    cb.ax.tick_params(labelsize=7)
    preset = str(df["preset"].iloc[0]) if "preset" in df else ""
    ax.set_title(title or f"{model}: RSA per layer × area ({preset} preset)\n"
                 "boxed = best layer per area" + (", † = above the noise ceiling"
                                                   if above is not None and above.to_numpy().any()
                                                   else ""), fontsize=8.5)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_layer_profiles(scores: pd.DataFrame, path: str | Path, *, value: str = "normalised",
                        models: Sequence[str] | None = None) -> Path:
    """Score vs conv-layer depth, one panel per area, one line per model (paper Fig. 11 layout)."""
    plt = _mpl()
    models = list(models) if models else list(pd.unique(scores["model"]))
    areas = sorted(pd.unique(scores["area"]))
    fig, axes = plt.subplots(1, len(areas), figsize=(2.6 * len(areas) + 0.6, 2.8), dpi=150,
                             sharey=True, squeeze=False)
    colors = plt.get_cmap("viridis")(np.linspace(0.05, 0.9, max(len(models), 1)))
    lo_col, hi_col = ("ci_low", "ci_high") if value == "normalised" else ("raw_ci_low",
                                                                          "raw_ci_high")
    for ax, area in zip(axes[0], areas):
        for c, m in zip(colors, models):
            df = scores[(scores["model"] == m) & (scores["area"] == area)].sort_values("layer_index")
            if df.empty:
                continue
            x = df["layer_index"].to_numpy() + 1
            ax.plot(x, df[value], "-o", ms=2.5, lw=1.2, color=c, label=m)
            if lo_col in df and df[lo_col].notna().any():
                ax.fill_between(x, df[lo_col], df[hi_col], color=c, alpha=0.18, lw=0)
        ax.axhline(0, color="0.6", lw=0.6)
        col = hi_col if hi_col in scores and scores[hi_col].notna().any() else value
        top = np.nanmax(scores[col].to_numpy(float)) if scores[col].notna().any() else 0.0
        if value == "normalised" and top > 0.5:   # the ceiling line only when scores get near it
            ax.axhline(1, color="0.3", lw=0.6, ls="--")
        ax.set_title(area, fontsize=9)
        ax.set_xlabel("conv layer depth", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.spines[["top", "right"]].set_visible(False)
    axes[0][0].set_ylabel(_value_label(scores, value), fontsize=8)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, frameon=False, loc="upper center",
               ncol=min(len(models), 4), bbox_to_anchor=(0.5, 1.0))
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    return save_figure(fig, path)


def max_comparison(samples: pd.DataFrame, maxima: pd.DataFrame,
                   order: Sequence[str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-model samples at each model's max-SSM (layer, area) and pairwise Welch tests (Holm).

    The samples are the per-mouse normalised scores (per-mouse pipeline) or the per-split ones
    (lpconv preset) of the layer and area where the model's score is highest.

    Caveats, as in the paper's Fig. 6b (which used two-sample t-tests): the tests treat the models'
    samples as independent, but per-mouse samples come from the same mice (paired) and may sit at
    different best areas; the lpconv preset's split-half samples are resamples of one population,
    so its n overstates the evidence. Read the stars as descriptive, and the bootstrap CIs in
    ``rsa_max.csv`` as the primary uncertainty.
    """
    from neurolp.stats import pairwise_welch

    models = list(order) if order else list(pd.unique(maxima["model"]))
    rows = []
    for m in models:
        top = maxima[(maxima["model"] == m) & (maxima["area"] == "all")]
        if top.empty or pd.isna(top.iloc[0]["best_layer"]):
            continue
        r = top.iloc[0]
        s = samples[(samples["model"] == m) & (samples["area"] == r["best_area"])
                    & (samples["layer"] == r["best_layer"])]
        rows.append(s.assign(best_area=r["best_area"]))
    if not rows:
        raise InputError("no model has a max score to compare")
    per = pd.concat(rows, ignore_index=True)
    tests = pairwise_welch(per, "normalised", "model", order=[m for m in models
                                                              if m in set(per["model"])])
    return per, tests


def plot_max_comparison(per_model: pd.DataFrame, maxima: pd.DataFrame, tests: pd.DataFrame,
                        path: str | Path) -> Path:
    """Bars: each model's max normalised score (CI when bootstrapped), dots: per-mouse/split
    samples, brackets: Holm-corrected Welch tests between neighbouring and all model pairs."""
    plt = _mpl()
    models = list(pd.unique(per_model["model"]))
    n_pairs = len(tests)
    fig, ax = plt.subplots(figsize=(max(3.6, 1.1 + 0.9 * len(models)), 3.4 + 0.12 * n_pairs),
                           dpi=150)
    colors = plt.get_cmap("viridis")(np.linspace(0.1, 0.85, len(models)))
    rng = np.random.default_rng(0)
    tops = []
    for k, (m, c) in enumerate(zip(models, colors)):
        top = maxima[(maxima["model"] == m) & (maxima["area"] == "all")].iloc[0]
        h = float(top["max_normalised"])
        ax.bar(k, h, color=c, alpha=0.75, width=0.7)
        if "max_ci_low" in top and pd.notna(top.get("max_ci_low")):
            # (a CI from few mice need not contain the point estimate: no negative bar)
            ax.errorbar(k, h, yerr=[[max(h - top["max_ci_low"], 0.0)],
                                    [max(top["max_ci_high"] - h, 0.0)]],
                        color="k", capsize=3, lw=1)
        s = per_model.loc[per_model["model"] == m, "normalised"].to_numpy(float)
        ax.scatter(k + rng.uniform(-0.18, 0.18, len(s)), s, s=7, color="k", alpha=0.55, lw=0,
                   zorder=3)
        tops.append(max(h, np.nanmax(s) if len(s) else h,
                        float(top.get("max_ci_high", h)) if pd.notna(top.get("max_ci_high", h))
                        else h))
    ymax = max(tops) if tops else 1.0
    step = 0.11 * max(ymax, 0.1)
    level = ymax + step
    for _, t in tests.iterrows():
        if t["stars"] in ("n.s", "n.s.", "") or pd.isna(t["p_holm"]):
            continue
        a, b = models.index(t["group_a"]), models.index(t["group_b"])
        ax.plot([a, a, b, b], [level, level + step / 4, level + step / 4, level], color="k", lw=0.8)
        ax.text((a + b) / 2, level + step / 4, t["stars"], ha="center", va="bottom", fontsize=7,
                linespacing=0.8)
        level += step
    ax.axhline(1, color="0.3", lw=0.6, ls="--")
    ax.set_xticks(range(len(models)))
    ax.set_xticklabels(models, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("max normalised SSM", fontsize=9)
    kind = str(per_model["group_kind"].iloc[0]) if "group_kind" in per_model else "sample"
    ax.set_title(f"Max SSM over layers and areas\ndots: per {kind} at the best layer/area\n"
                 "Welch t-test, Holm: * p<.05 ** p<.01 *** p<.001", fontsize=7.5)
    ax.spines[["top", "right"]].set_visible(False)
    ax.set_ylim(min(0.0, float(np.nanmin(per_model["normalised"])) - step), level + step)
    fig.tight_layout()
    return save_figure(fig, path)
