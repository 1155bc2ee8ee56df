"""Fig. 1f–g: mean receptive-field PMFs with their fitted MPNDs, and p per condition.

:func:`plot_fig1` draws from the tidy outputs of ``neurolp fit-mpnd`` (``mpnd_fits.csv``,
``mpnd_pmfs.csv``, ``mpnd_stats.csv`` and optionally ``mpnd_skipped.csv``), so a figure can be redrawn
without refitting (``analyses/fig1_mpnd.py``).

* (f) one column per condition: top, the mean empirical PMF of its RFs; bottom, the mean fitted
  MPND on the same bins; both in standardised units (zero mean, unit variance), one colour scale per
  column. Artificial RFs are drawn on their kernel's tap cells, biological ones on the fixed grid.
* (g) p of every RF (dots) with a box per condition on a log₂ axis, n per condition, the p_max cap
  (fits there are box-like: "≥ p_max"), and significance brackets of the primary test (Mann–Whitney,
  Holm; "n/a" for pairs with a group at a bound, which are not testable).

:func:`plot_trajectory` draws the paper fit's median p against the Adam step per condition (the
paper's 11–14 for untrained RFs is a point on this path, not an optimum); :func:`plot_sensitivity`
draws median p against the PMF bin width per condition, where the aliasing of kernel-lattice RFs on
a fixed grid shows.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

__all__ = ["plot_fig1", "pmf_image", "plot_trajectory", "plot_sensitivity"]


def pmf_image(pmfs: pd.DataFrame, condition: str, column: str):
    """``(edges_x, edges_y, Z[ix, iy])`` of one condition's mean PMF from an ``mpnd_pmfs`` table."""
    g = pmfs[pmfs["condition"] == condition]
    nx, ny = int(g["ix"].max()) + 1, int(g["iy"].max()) + 1
    Z = np.full((nx, ny), np.nan)
    Z[g["ix"].to_numpy(), g["iy"].to_numpy()] = g[column].to_numpy()
    gx = g.groupby("ix")[["x", "x_width"]].mean().sort_index()
    gy = g.groupby("iy")[["y", "y_width"]].mean().sort_index()
    ex = np.append(gx["x"].to_numpy() - gx["x_width"].to_numpy() / 2, gx["x"].iloc[-1] + gx["x_width"].iloc[-1] / 2)
    ey = np.append(gy["y"].to_numpy() - gy["y_width"].to_numpy() / 2, gy["y"].iloc[-1] + gy["y_width"].iloc[-1] / 2)
    return ex, ey, Z


def _condition_meta(name):
    from neurolp.rf.conditions import CONDITIONS

    c = CONDITIONS.get(name)
    return (c.label, c.color) if c else (name, "0.4")


def plot_fig1(fits: pd.DataFrame, pmfs: pd.DataFrame, stats: pd.DataFrame | None = None,
              skipped: pd.DataFrame | None = None, order: Sequence[str] | None = None,
              p_max: float | None = None, title: str | None = None, footer: str | None = None):
    """Draw Fig. 1f–g; returns the matplotlib Figure. ``footer``: provenance line at the bottom."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.gridspec import GridSpec

    present = list(pd.unique(fits["condition"]))
    skipped_names = [] if skipped is None or skipped.empty else list(skipped["condition"])
    if order is None:
        from neurolp.rf.conditions import CONDITIONS

        known = [c for c in CONDITIONS if c in present or c in skipped_names]
        order = known + [c for c in present if c not in known]
    cols = [c for c in order if c in present or c in skipped_names]
    ncol = len(cols)
    if p_max is None:
        p_max = float(fits["p"].max()) if fits["p_at_bound"].any() else None

    fig = plt.figure(figsize=(2.2 * ncol + 4.6, 5.2), constrained_layout=True)
    gs = GridSpec(2, ncol + 2, figure=fig, width_ratios=[1] * ncol + [0.08, 2.0])
    lim = 3.2
    for j, name in enumerate(cols):
        label, color = _condition_meta(name)
        ax_top, ax_bot = fig.add_subplot(gs[0, j]), fig.add_subplot(gs[1, j])
        for ax in (ax_top, ax_bot):
            ax.set_xlim(-lim, lim)
            ax.set_ylim(-lim, lim)
            ax.set_aspect("equal")
            ax.set_xticks([-3, 0, 3])
            ax.set_yticks([-3, 0, 3])
            ax.tick_params(labelsize=7, length=2)
            for sp in ax.spines.values():
                sp.set_color(color)
                sp.set_linewidth(1.6)
        n = int((fits["condition"] == name).sum())
        ax_top.set_title(f"{label}\n(n = {n})" if n else f"{label}", fontsize=9, color=color,
                         fontweight="bold")
        if name not in present:
            reason = skipped.loc[skipped["condition"] == name, "reason"].iloc[0] if name in skipped_names else ""
            short = "no trained weights" if "weights" in reason else "skipped"
            for ax in (ax_top, ax_bot):
                ax.set_facecolor("0.94")
                ax.text(0, 0, f"skipped:\n{short}", ha="center", va="center", fontsize=8, color="0.35")
            continue
        ex, ey, emp = pmf_image(pmfs, name, "empirical")
        _, _, fit = pmf_image(pmfs, name, "fitted")
        # densities (mass / area) so lattice and grid columns are comparable
        area = np.diff(ex)[:, None] * np.diff(ey)[None, :]
        demp, dfit = emp / area, fit / area
        vmax = np.nanmax([np.nanmax(demp), np.nanmax(dfit)])
        for ax, Z in ((ax_top, demp), (ax_bot, dfit)):
            ax.set_facecolor("black")
            mesh = ax.pcolormesh(ex, ey, Z.T, cmap="magma", vmin=0, vmax=vmax, shading="flat",
                                 rasterized=True)
        g = fits[fits["condition"] == name]
        med = g["p"].median()
        capped = p_max is not None and med >= p_max * (1 - 1e-9)
        ax_bot.text(0.04, 0.04, f"median p ≥ {p_max:g} (box)" if capped else f"median p = {med:.3g}",
                    transform=ax_bot.transAxes, fontsize=7.5, color="white", va="bottom")
        if j == 0:
            ax_top.set_ylabel("mean RF (PMF)\nstandardised y", fontsize=8)
            ax_bot.set_ylabel("fitted MPND\nstandardised y", fontsize=8)
        ax_bot.set_xlabel("standardised x", fontsize=8)
    cax = fig.add_subplot(gs[:, ncol])
    if present:
        cb = fig.colorbar(mesh, cax=cax)
        cb.set_ticks([0, vmax])
        cb.set_ticklabels(["0", "max"])
        cb.ax.tick_params(labelsize=7)
        cb.set_label("probability density (per column)", fontsize=7.5)
    else:
        cax.axis("off")

    ax = fig.add_subplot(gs[:, ncol + 1])
    _strip_panel(ax, fits, [c for c in cols if c in present], stats, p_max)
    fig.suptitle(title or "MPND fits to biological and artificial receptive fields (Kwon et al. 2025, Fig. 1f–g)",
                 fontsize=10)
    if footer:
        fig.text(0.005, 0.002, footer, fontsize=6.5, color="0.45", ha="left", va="bottom")
    return fig


def _strip_panel(ax, fits, names, stats, p_max):
    rng = np.random.default_rng(0)
    ax.set_yscale("log", base=2)
    top = float(fits["p"].max())
    for i, name in enumerate(names):
        label, color = _condition_meta(name)
        vals = fits.loc[fits["condition"] == name, "p"].to_numpy()
        ax.boxplot([vals], positions=[i], widths=0.55, showfliers=False, patch_artist=True,
                   boxprops={"facecolor": color, "alpha": 0.25, "edgecolor": color},
                   medianprops={"color": color, "linewidth": 2}, whiskerprops={"color": color},
                   capprops={"color": color})
        jitter = rng.uniform(-0.16, 0.16, size=vals.size)
        ax.scatter(i + jitter, vals, s=14, color=color, edgecolor="white", linewidth=0.4, zorder=3)
    if p_max is not None:
        ax.axhline(p_max, color="0.5", lw=0.8, ls="--", zorder=1)
        ax.text(len(names) - 0.5, p_max * 1.05, f"p_max = {p_max:g} (box)", ha="right", va="bottom",
                fontsize=7, color="0.4")
    ax.axhline(2, color="#1b7837", lw=0.6, ls=":", zorder=1)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels([f"{_condition_meta(n)[0]}\nn = {int((fits['condition'] == n).sum())}" for n in names],
                       rotation=30, ha="right", fontsize=7.5)
    ax.set_ylabel("MPND p (log scale)", fontsize=9)
    from matplotlib.ticker import FixedLocator, NullLocator

    top_tick = int(np.ceil(np.log2(max(top, p_max or top))))
    ax.yaxis.set_major_locator(FixedLocator([2.0 ** k for k in range(0, top_tick + 1)]))
    ax.yaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_major_formatter(_PlainFormatter())
    test = "Welch's t-test"
    if stats is not None and "test" in stats and len(stats):
        test = {"mann-whitney": "Mann-Whitney U", "welch-log": "Welch's t-test on log p",
                "welch": "Welch's t-test"}.get(str(stats["test"].iloc[0]), str(stats["test"].iloc[0]))
    ax.set_title(f"p after MPND optimisation\n({test}, Holm-corrected)", fontsize=9)
    ax.spines[["top", "right"]].set_visible(False)
    ymax = max(top, p_max or top) * 1.3
    if stats is not None and len(stats) and len(names) > 1:
        pairs = stats[stats["group_a"].isin(names) & stats["group_b"].isin(names)]
        pairs = pairs.assign(stars=pairs["stars"].fillna("n/a").astype(str).replace({"": "n/a", "nan": "n/a"}))
        if len(pairs) > 6:  # keep it readable: adjacent pairs and non-significant ones
            idx = {n: i for i, n in enumerate(names)}
            keep = [abs(idx[a] - idx[b]) == 1 or s in ("n.s", "n/a")
                    for a, b, s in zip(pairs["group_a"], pairs["group_b"], pairs["stars"])]
            pairs = pairs[keep]
            ax.text(0.01, 0.01, "pairs not shown: see mpnd_stats.csv", transform=ax.transAxes,
                    fontsize=6.5, color="0.4")
        pairs = pairs.assign(span=[abs(names.index(a) - names.index(b)) for a, b in
                                   zip(pairs["group_a"], pairs["group_b"])]).sort_values("span")
        level = ymax
        for r in pairs.itertuples(index=False):
            i, j = sorted((names.index(r.group_a), names.index(r.group_b)))
            y0, y1 = level, level * 1.12
            ax.plot([i, i, j, j], [y0, y1, y1, y0], color="0.2", lw=0.8)
            label = "not testable" if r.stars == "n/a" else r.stars   # a group at a p bound
            ax.text((i + j) / 2, y1 * 1.01, label, ha="center", va="bottom",
                    fontsize=8 if label != "not testable" else 6.5)
            level *= 1.45
        ymax = level
    ax.set_ylim(0.8, ymax)
    ax.set_xlim(-0.6, len(names) - 0.4)


class _PlainFormatter:
    """Tick labels 1, 2, 4, … on a log₂ axis (a matplotlib Formatter without the import at module load)."""

    def __new__(cls):
        from matplotlib.ticker import FuncFormatter

        return FuncFormatter(lambda v, _: f"{v:g}")


def plot_trajectory(trajectory: pd.DataFrame, fits: pd.DataFrame | None = None,
                    order: Sequence[str] | None = None, p_max: float | None = None, footer: str | None = None):
    """Median p (and IQR band) against the Adam step per condition, from ``mpnd_trajectory.csv``.

    With ``fits`` (``mpnd_fits.csv`` of the same run) each condition's median converged p
    (``p_optimum``) is drawn as a dashed line: where the descent would end.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    names = [c for c in (order or pd.unique(trajectory["condition"])) if c in set(trajectory["condition"])]
    fig, ax = plt.subplots(figsize=(8.8, 4.6), constrained_layout=True)
    ax.set_yscale("log", base=2)
    last = int(trajectory["step"].max())
    for name in names:
        label, color = _condition_meta(name)
        g = trajectory[trajectory["condition"] == name].groupby("step")["p"]
        med, q25, q75 = g.median(), g.quantile(0.25), g.quantile(0.75)
        ax.fill_between(med.index, q25.to_numpy(), q75.to_numpy(), color=color, alpha=0.15, lw=0)
        ax.plot(med.index, med.to_numpy(), color=color, lw=1.8, label=f"{label}: {med.iloc[-1]:.3g} at step {last}")
        if fits is not None and "p_optimum" in fits:
            opt = fits.loc[fits["condition"] == name, "p_optimum"].median()
            ax.axhline(opt, color=color, lw=0.9, ls="--")
            ax.text(last, opt * 1.03, f"converged {opt:.3g}", color=color, fontsize=7, ha="right", va="bottom")
    if p_max is not None:
        ax.axhline(p_max, color="0.5", lw=0.8, ls=":")
    ax.axhline(2, color="#1b7837", lw=0.6, ls=":")
    ax.yaxis.set_major_formatter(_PlainFormatter())
    ax.set_xlabel("Adam step")
    ax.set_ylabel("median p (IQR band; log scale)")
    ax.set_title("Paper fit: p along the gradient descent (dashed: where it converges)", fontsize=10)
    ax.legend(fontsize=7.5, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.spines[["top", "right"]].set_visible(False)
    _footer(fig, footer)
    return fig


def plot_sensitivity(sens: pd.DataFrame, order: Sequence[str] | None = None, footer: str | None = None):
    """Median p (95 % CI band) against the fixed-grid bin width per condition, from
    ``mpnd_sensitivity.csv``; dashed: the binning-independent estimate (tap cells for kernel RFs, MLE
    for point clouds); dotted: the kernel's tap spacing in standardised units."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    names = [c for c in (order or pd.unique(sens["condition"])) if c in set(sens["condition"])]
    fig, ax = plt.subplots(figsize=(8.6, 4.8), constrained_layout=True)
    ax.set_yscale("log", base=2)
    spacing = []
    for j, name in enumerate(names):
        label, color = _condition_meta(name)
        g = sens[sens["condition"] == name]
        bw = g[g["family"] == "bin_width"].sort_values("bin_width")
        ax.fill_between(bw["bin_width"], bw["ci_lo"], bw["ci_hi"], color=color, alpha=0.13, lw=0)
        ax.plot(bw["bin_width"], bw["median_p"], "o-", color=color, ms=3.5, lw=1.6, label=label)
        free = g[g["binning_free"]]
        if len(free):
            f = free.iloc[0]
            ax.axhline(f["median_p"], color=color, lw=0.9, ls="--")
            what = "tap cells" if f["cells"] == "lattice" else "MLE"
            x = bw["bin_width"].max() if j % 2 == 0 else bw["bin_width"].min()
            ax.text(x, f["median_p"] * 1.03, f"{what} {f['median_p']:.3g}", color=color, fontsize=6.5,
                    ha="right" if j % 2 == 0 else "left", va="bottom")
        if np.isfinite(g["lattice_spacing"]).any():
            spacing.append(float(g["lattice_spacing"].dropna().iloc[0]))
    if spacing:
        sp = float(np.median(spacing))
        ax.axvline(sp, color="0.4", lw=0.8, ls=":")
        ax.text(sp, ax.get_ylim()[1], f" tap spacing {sp:.2f}", fontsize=7, color="0.35", va="top")
    ax.yaxis.set_major_formatter(_PlainFormatter())
    ax.set_xlabel("PMF bin width (standardised units; fixed grid for every RF)")
    ax.set_ylabel("median p (95% CI band; log scale)")
    ax.set_title("Does p depend on the binning? Kernel RFs alias on a fixed grid; point clouds do not\n"
                 "(dashed: the binning-independent estimate)", fontsize=9.5)
    ax.legend(fontsize=7.5, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.spines[["top", "right"]].set_visible(False)
    _footer(fig, footer)
    return fig


def _footer(fig, footer: str | None, width: int = 150) -> None:
    """A provenance footer wrapped to the figure's width (small figures get several lines)."""
    if footer:
        import textwrap

        lines = textwrap.wrap(footer, width)
        fig.get_layout_engine().set(rect=(0, 0.012 + 0.02 * len(lines), 1, 1 - 0.012 - 0.02 * len(lines)))
        fig.text(0.005, 0.004, "\n".join(lines), fontsize=5.5, color="0.45", ha="left", va="bottom")
