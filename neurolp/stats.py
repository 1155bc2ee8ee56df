"""Group comparisons as the paper reports them: Welch's t-test with Holm–Bonferroni correction.

Used for Fig. 1g / Table 8 (p of fitted MPNDs per RF condition) and Table 1 (accuracies over seeds).
Everything returns plain numbers or tidy DataFrames:

* :func:`welch` — Welch's unequal-variance t-test between two samples (NaNs dropped);
* :func:`holm` — Holm–Bonferroni step-down adjusted p-values (NaNs kept, not counted);
* :func:`stars` — significance labels ``n.s`` / ``*`` / ``**`` / ``***`` (p < 0.05 / 0.01 / 0.001);
* :func:`pairwise_welch` — all pairs of groups of a tidy table, one row per pair, Holm-adjusted;
* :func:`pairwise_matrix` — the same as a square table in the paper's Table 8 layout (lower
  triangle: corrected p-values, upper triangle: stars).

Degenerate cases are reported, not hidden: a group with fewer than two finite values, or two groups
with zero variance, gives ``p = NaN`` and a ``note`` saying why.
"""

from __future__ import annotations

import math
import warnings
from typing import Sequence

import numpy as np
import pandas as pd

from neurolp.errors import InputError

__all__ = ["welch", "holm", "stars", "pairwise_welch", "pairwise_matrix", "STAR_LEVELS"]

#: (threshold, label), checked in order: p < 0.001 → "***", p < 0.01 → "**", p < 0.05 → "*".
STAR_LEVELS: tuple[tuple[float, str], ...] = ((0.001, "***"), (0.01, "**"), (0.05, "*"))


def welch(a, b) -> dict:
    """Welch's t-test of two independent samples (two-sided). NaNs are dropped.

    Returns ``{"t", "df", "pvalue", "n_a", "n_b", "mean_a", "mean_b", "sd_a", "sd_b", "note"}``;
    ``pvalue`` is NaN (with a note) when a sample has fewer than 2 values or both have zero variance
    (then t is ±inf if the means differ and undefined otherwise).
    """
    from scipy import stats as st

    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    out = {"n_a": a.size, "n_b": b.size,
           "mean_a": float(a.mean()) if a.size else math.nan,
           "mean_b": float(b.mean()) if b.size else math.nan,
           "sd_a": float(a.std(ddof=1)) if a.size > 1 else math.nan,
           "sd_b": float(b.std(ddof=1)) if b.size > 1 else math.nan,
           "t": math.nan, "df": math.nan, "pvalue": math.nan, "note": ""}
    if a.size < 2 or b.size < 2:
        out["note"] = f"need >= 2 values per group (got {a.size} and {b.size})"
        return out
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    scale = max(1.0, abs(out["mean_a"]), abs(out["mean_b"]))
    if np.ptp(a) <= 1e-12 * scale and np.ptp(b) <= 1e-12 * scale:  # constant up to rounding
        same = abs(out["mean_a"] - out["mean_b"]) <= 1e-12 * scale
        out["note"] = "both groups are constant" + (" and equal" if same else "; the difference is exact, "
                                                    "not testable")
        return out
    with warnings.catch_warnings():  # one constant group is fine for Welch; scipy warns regardless
        warnings.simplefilter("ignore", RuntimeWarning)
        res = st.ttest_ind(a, b, equal_var=False)
    out["t"] = float(res.statistic)
    out["pvalue"] = float(res.pvalue)
    out["df"] = float((va + vb) ** 2 / (va ** 2 / (a.size - 1) + vb ** 2 / (b.size - 1)))
    return out


def holm(pvalues) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values, in the input order.

    With m finite p-values sorted ascending, ``p_adj(i) = max_{j ≤ i} min(1, (m − j + 1)·p(j))``
    (step-down, monotone). NaNs stay NaN and do not count towards m.
    """
    p = np.asarray(pvalues, dtype=np.float64).ravel()
    if np.any((p < 0) | (p > 1)):
        raise InputError("p-values must lie in [0, 1]")
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = ok.size
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="mergesort")]
    adj = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(adj)
    return out


def stars(p) -> str | np.ndarray:
    """``"***"`` (p < 0.001), ``"**"`` (< 0.01), ``"*"`` (< 0.05), ``"n.s"`` otherwise, ``"n/a"`` for NaN.

    Vectorised over arrays (returns an object array of the same shape).
    """
    def one(v: float) -> str:
        if not np.isfinite(v):
            return "n/a"
        for thr, label in STAR_LEVELS:
            if v < thr:
                return label
        return "n.s"

    if np.ndim(p) == 0:
        return one(float(p))
    arr = np.asarray(p, dtype=np.float64)
    return np.vectorize(one, otypes=[object])(arr)


def pairwise_welch(df: pd.DataFrame, value: str, group: str, order: Sequence | None = None) -> pd.DataFrame:
    """Welch's t-test for every pair of groups, Holm-corrected over all pairs.

    Args:
        df: tidy table, one row per observation.
        value: column with the measured value (e.g. ``"p"``).
        group: column with the group label (e.g. ``"condition"``).
        order: groups to compare and their order (default: order of first appearance).

    Returns one row per pair ``(group_a, group_b)`` with a before b in ``order``: ``n_a, n_b,
    mean_a, mean_b, sd_a, sd_b, t, df, p, p_holm, stars, note``.
    """
    for col in (value, group):
        if col not in df.columns:
            raise InputError(f"column {col!r} not in the table (columns: {', '.join(map(str, df.columns))})")
    groups = list(order) if order is not None else list(pd.unique(df[group]))
    unknown = [g for g in groups if g not in set(df[group])]
    if unknown:
        raise InputError(f"groups {unknown} not found in column {group!r}")
    rows = []
    for i, ga in enumerate(groups):
        for gb in groups[i + 1:]:
            r = welch(df.loc[df[group] == ga, value], df.loc[df[group] == gb, value])
            rows.append({"group_a": ga, "group_b": gb, "n_a": r["n_a"], "n_b": r["n_b"],
                         "mean_a": r["mean_a"], "mean_b": r["mean_b"], "sd_a": r["sd_a"], "sd_b": r["sd_b"],
                         "t": r["t"], "df": r["df"], "p": r["pvalue"], "note": r["note"]})
    cols = ["group_a", "group_b", "n_a", "n_b", "mean_a", "mean_b", "sd_a", "sd_b", "t", "df", "p",
            "p_holm", "stars", "note"]
    if not rows:
        return pd.DataFrame(columns=cols)
    out = pd.DataFrame(rows)
    out["p_holm"] = holm(out["p"].to_numpy())
    out["stars"] = stars(out["p_holm"].to_numpy())
    return out[cols]


def pairwise_matrix(pairs: pd.DataFrame, order: Sequence | None = None, fmt: str = "{:.3g}") -> pd.DataFrame:
    """Square table of a :func:`pairwise_welch` result in the paper's Table 8 layout.

    Row i, column j: below the diagonal the Holm-corrected p-value (formatted with ``fmt``), above it
    the stars, ``-`` on the diagonal.
    """
    names = list(order) if order is not None else list(pd.unique(pd.concat([pairs["group_a"], pairs["group_b"]])))
    mat = pd.DataFrame("-", index=names, columns=names, dtype=object)
    for r in pairs.itertuples(index=False):
        if r.group_a not in mat.index or r.group_b not in mat.index:
            continue
        i, j = names.index(r.group_a), names.index(r.group_b)
        lo, hi = (r.group_b, r.group_a) if i < j else (r.group_a, r.group_b)
        mat.loc[lo, hi] = fmt.format(r.p_holm) if np.isfinite(r.p_holm) else "n/a"
        mat.loc[hi, lo] = r.stars
    mat.index.name = "Welch's t-test (Holm-corrected p)"
    return mat
