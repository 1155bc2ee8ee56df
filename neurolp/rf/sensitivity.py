"""How much does a fitted p depend on choices the paper does not state? The robustness table.

The paper fits p "over PMFs" but gives neither bins nor grid nor objective nor stopping rule. This
module refits the same receptive fields under each choice and tabulates every condition's median p
with its bootstrap CI (:func:`sensitivity_table`, written as ``mpnd_sensitivity.csv`` by
``neurolp fit-mpnd --sensitivity``):

* ``reference`` — the run's default: PMF-MSE, converged, on the tap cells for kernel (lattice) RFs
  and on the 21 × 21 grid of 0.3-wide bins for point clouds (V1);
* ``bin_width`` — a fixed grid of width w (centred on 0, covering about ±3.15 standardised units) for
  *every* RF, kernel RFs included, as V1 is fitted;
* ``grid_size`` — width 0.3 with 15, 21 or 31 bins (extent ±2.25, ±3.15, ±4.65);
* ``objective`` — PMF-KL (binned likelihood) and MLE (likelihood of the points, no bins);
* ``fit`` — the paper's early-stopped Adam on the reference binning, and on the 0.3 grid.

Why this matters: an artificial RF lives on the 11 × 11 tap lattice, whose spacing after
standardisation is ≈ 0.3 (1 / the std of the tap offsets). A fixed grid of similar width aliases
against it — some bins catch two tap rows, others none — so the grid fit of a kernel RF swings with w
while a point cloud's (V1's) does not. For each kind of RF the summary names the estimate that does
not depend on binning (``binning_free``): the tap-cell fit for lattice RFs (the data have no finer
resolution, and the cells are given by the kernel, not chosen) and MLE for point clouds (no bins).
Neurons with fewer than ``MIN_INPUTS`` inputs are counted (``n_few_inputs``) and the median without
them is given (``median_p_enough_inputs``).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

from neurolp.errors import InputError
from neurolp.mpnd.defaults import PAPER_LR, PAPER_STEPS

__all__ = ["DEFAULT_WIDTHS", "DEFAULT_SIZES", "GRID_EXTENT", "grid_for_width", "sensitivity_table",
           "sensitivity_summary", "summary_lines"]

DEFAULT_WIDTHS = (0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6)
DEFAULT_SIZES = (15, 21, 31)
GRID_EXTENT = 3.15


def grid_for_width(width: float, extent: float = GRID_EXTENT):
    """The odd-sized grid of ``width``-wide bins, centred on 0, that first covers ``±extent``."""
    from neurolp.mpnd.fit import PMFBins

    if not (math.isfinite(width) and width > 0):
        raise InputError(f"bin width must be > 0, got {width}")
    n = 2 * math.ceil(extent / width - 0.5) + 1
    return PMFBins.centred(width, n)


def _variants(widths, sizes, lr, steps):
    """(family, variant label, binning, width, n_bins, objective, loss, fit, applies_to)."""
    out = [("reference", "reference", "default", 0.3, 21, "pmf", "mse", "converged", "all")]
    out += [("bin_width", f"grid w={w:g}", "grid", float(w), None, "pmf", "mse", "converged", "all")
            for w in widths]
    out += [("grid_size", f"grid w=0.3, {n}×{n}", "grid", 0.3, int(n), "pmf", "mse", "converged", "all")
            for n in sizes]
    out += [("objective", "pmf-kl", "default", 0.3, 21, "pmf", "kl", "converged", "all"),
            ("objective", "mle", "none", math.nan, None, "mle", "mse", "converged", "all"),
            ("fit", f"paper (lr {lr:g}, {steps} steps)", "default", 0.3, 21, "pmf", "mse", "paper", "all"),
            ("fit", f"paper (lr {lr:g}, {steps} steps), grid w=0.3", "grid", 0.3, 21, "pmf", "mse", "paper",
             "lattice")]
    return out


def sensitivity_table(rfs: dict, fits: pd.DataFrame, *, p_max: float = 64.0, lr: float = PAPER_LR,
                      steps: int = PAPER_STEPS, widths: Sequence[float] | None = None,
                      sizes: Sequence[int] | None = None, n_boot: int = 10000, seed: int = 0,
                      progress: bool = False) -> pd.DataFrame:
    """Median p (bootstrap CI) of every condition under every variant (see module docstring).

    ``rfs``: ``{(condition, rf_id): ReceptiveField}`` as collected for ``fits`` (the run's fit table,
    which supplies ``few_inputs``). Returns one row per condition and variant: ``condition, kind,
    cells, family, variant, binning, bin_width, n_bins, extent, objective, fit, n, median_p, ci_lo,
    ci_hi, display, n_at_p_max, n_at_p_min, n_converged, n_few_inputs, median_p_enough_inputs,
    lattice_spacing, reference, binning_free``.
    """
    from neurolp.mpnd.fit import PMFBins, ReceptiveField, fit_mpnd
    from neurolp.rf.conditions import CONDITIONS
    from neurolp.stats import group_summary

    widths = tuple(DEFAULT_WIDTHS if widths is None else widths)
    sizes = tuple(DEFAULT_SIZES if sizes is None else sizes)
    if not widths or any(not (math.isfinite(w) and 0 < w <= 3) for w in widths):
        raise InputError(f"sensitivity bin widths must lie in (0, 3], got {list(widths)}")
    keys = list(rfs)
    few = dict(zip(zip(fits["condition"], fits["rf"]), fits.get("few_inputs", pd.Series(False, index=fits.index))))
    lattice = {k: rfs[k].edges is not None for k in keys}
    spacing = {}
    for r in fits.itertuples(index=False):
        if r.bins == "lattice":
            spacing.setdefault(r.condition, []).append(1.0 / math.sqrt(r.scale_x * r.scale_y))
    variants = _variants(widths, sizes, lr, steps)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(variants), desc="sensitivity", unit="fit", leave=False)
    cache: dict = {}
    rows = []
    for family, label, binning, w, n, objective, loss, fit, applies in variants:
        sel = [k for k in keys if applies == "all" or lattice[k]]
        if not sel:
            if bar is not None:
                bar.update(1)
            continue
        if binning == "grid":
            bins = grid_for_width(w) if n is None else PMFBins.centred(w, n)
            items = [ReceptiveField(rfs[k].points, rfs[k].weights) for k in sel]   # drop the tap cells
        else:
            bins = PMFBins.centred()
            items = [rfs[k] for k in sel]
        ckey = (binning, round(w, 9) if binning != "none" else None, bins.n if binning != "none" else None,
                objective, loss, fit, tuple(sel))
        if ckey not in cache:
            cache[ckey] = fit_mpnd(items, objective=objective, loss=loss, bins=bins, p_bounds=(1.0, p_max),
                                   fit=fit, lr=lr, steps=steps)
        res = cache[ckey].assign(condition=[k[0] for k in sel], rf_id=[k[1] for k in sel])
        res["few_inputs"] = [bool(few.get(k, False)) for k in sel]
        order = list(pd.unique(res["condition"]))
        gs = group_summary(res, "p", "condition", order, at_lower="p_at_min", at_upper="p_at_max",
                           bounds=(1.0, p_max), n_boot=n_boot, seed=seed).set_index("condition")
        for cond in order:
            g = res[res["condition"] == cond]
            q = gs.loc[cond]
            cells = "lattice" if lattice[(cond, g["rf_id"].iloc[0])] else "points"
            used = {"grid": "grid", "none": "none"}.get(binning, "tap cells" if cells == "lattice" else "grid")
            enough = g.loc[~g["few_inputs"], "p"]
            kind = CONDITIONS[cond].kind if cond in CONDITIONS else "unknown"
            rows.append({
                "condition": cond, "kind": kind, "cells": cells, "family": family, "variant": label,
                "binning": used, "bin_width": w if used == "grid" else math.nan,
                "n_bins": bins.n if used == "grid" else math.nan,
                "extent": bins.edges[-1] if used == "grid" else math.nan,
                "objective": "mle" if objective == "mle" else f"pmf-{loss}", "fit": fit, "n": len(g),
                "median_p": q["median"], "ci_lo": q["ci_lo"], "ci_hi": q["ci_hi"], "display": q["display"],
                "n_at_p_max": int(q["n_at_upper"]), "n_at_p_min": int(q["n_at_lower"]),
                "n_converged": int(g["converged"].sum()), "n_few_inputs": int(g["few_inputs"].sum()),
                "median_p_enough_inputs": float(enough.median()) if len(enough) else math.nan,
                "lattice_spacing": float(np.median(spacing[cond])) if cond in spacing else math.nan,
                "reference": family == "reference",
                "binning_free": (family == "reference" and cells == "lattice")
                                or (objective == "mle" and cells == "points"),
            })
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return pd.DataFrame(rows)


def sensitivity_summary(sens: pd.DataFrame) -> pd.DataFrame:
    """Per condition: the binning-free estimate (which, value, CI), the reference value, and how far
    the fixed-grid fits move across bin widths (``grid_min``/``grid_max`` and the widths there)."""
    rows = []
    for cond in pd.unique(sens["condition"]):
        g = sens[sens["condition"] == cond]
        free = g[g["binning_free"]].iloc[0] if g["binning_free"].any() else None
        ref = g[g["reference"]].iloc[0]
        bw = g[g["family"] == "bin_width"].sort_values("bin_width")
        lo, hi = bw.loc[bw["median_p"].idxmin()], bw.loc[bw["median_p"].idxmax()]
        rows.append({
            "condition": cond, "kind": ref["kind"], "cells": ref["cells"],
            "binning_free_estimate": (("tap-cell fit" if free["cells"] == "lattice" else "MLE")
                                      if free is not None else ""),
            "binning_free_p": free["median_p"] if free is not None else math.nan,
            "binning_free_display": free["display"] if free is not None else "",
            "reference_p": ref["median_p"],
            "grid_min_p": lo["median_p"], "grid_min_width": lo["bin_width"],
            "grid_max_p": hi["median_p"], "grid_max_width": hi["bin_width"],
            "grid_ratio": hi["median_p"] / lo["median_p"],
            "grid_by_width": "; ".join(f"{r.bin_width:g}: " + (r.display if r.display.startswith("≥")
                                                                  else f"{r.median_p:.3g}")
                                       for r in bw.itertuples()),
            "lattice_spacing": ref["lattice_spacing"],
        })
    return pd.DataFrame(rows)


def summary_lines(summary: pd.DataFrame) -> list[str]:
    """Human-readable lines naming, per kind of RF, the estimate that does not depend on binning."""
    lines = []
    for kind, cells in (("point clouds (V1)", "points"), ("kernel lattices (Conv1)", "lattice")):
        g = summary[summary["cells"] == cells]
        if g.empty:
            continue
        name = "MLE on the offsets (no bins)" if cells == "points" else "the fit on the kernel's own tap cells"
        lines.append(f"  {kind}: binning-independent estimate = {name}")
        for r in g.itertuples(index=False):
            extra = f", lattice spacing {r.lattice_spacing:.2f}" if cells == "lattice" else ""
            lines.append(f"    {r.condition:<16} {r.binning_free_display:<22} fixed grids: {r.grid_min_p:.3g}–"
                         f"{r.grid_max_p:.3g} over widths ({r.grid_by_width}){extra}")
    return lines
