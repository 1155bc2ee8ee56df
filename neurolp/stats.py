"""Group comparisons: the paper's Welch's t-test with Holm–Bonferroni correction, and sound versions.

Used for Fig. 1g / Table 8 (p of fitted MPNDs per RF condition) and Table 1 (accuracies over seeds).
Everything returns plain numbers or tidy DataFrames:

* :func:`welch` — Welch's unequal-variance t-test between two samples (NaNs dropped);
* :func:`holm` — Holm–Bonferroni step-down adjusted p-values (NaNs kept, not counted);
* :func:`stars` — significance labels ``n.s`` / ``*`` / ``**`` / ``***`` (p < 0.05 / 0.01 / 0.001);
* :func:`pairwise_welch` — all pairs of groups of a tidy table, one row per pair, Holm-adjusted;
* :func:`pairwise_matrix` — the same as a square table in the paper's Table 8 layout (lower
  triangle: corrected p-values, upper triangle: stars);
* :func:`mann_whitney` — the two-sided Mann–Whitney U (Wilcoxon rank-sum) test;
* :func:`bootstrap_median_ci` — percentile-bootstrap confidence interval of a median;
* :func:`group_summary` — per group: median with its bootstrap CI, quartiles, values at a bound;
* :func:`compare_groups` — every pair with a rank test and Welch's t-test on log values, Holm across
  pairs per test, and comparisons with a group that has members at a bound reported as not testable.

**Why not Welch on p alone** (the paper's Table 8): fitted MPND exponents are heavy-tailed (per-RF p
is poorly determined: a few flat RFs reach p = 20–64) and multiplicative, so a t-test on p is driven
by its largest values, and against a group pinned at a bound (untrained RFs at p_max) it only
measures where the bound was set (t = −146 for p_max = 64). The rank test needs no distribution and
is the same for p, log p or 1/p; Welch on log p keeps the paper's test on the scale where p is
roughly normal. A group with members at a bound is only known to be "≥ p_max" there: its
comparisons are reported as not testable, never as significant.

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

__all__ = ["welch", "holm", "stars", "pairwise_welch", "pairwise_matrix", "STAR_LEVELS", "mann_whitney",
           "bootstrap_median_ci", "group_summary", "compare_groups", "TEST_WHY"]

#: (threshold, label), checked in order: p < 0.001 → "***", p < 0.01 → "**", p < 0.05 → "*".
STAR_LEVELS: tuple[tuple[float, str], ...] = ((0.001, "***"), (0.01, "**"), (0.05, "*"))



def _groups(df, value: str, group: str, order) -> list:
    """The groups to compare, in order; missing columns or groups are an InputError."""
    for col in (value, group):
        if col not in df.columns:
            raise InputError(f"column {col!r} not in the table (columns: {', '.join(map(str, df.columns))})")
    groups = list(order) if order is not None else list(pd.unique(df[group]))
    unknown = [g for g in groups if g not in set(df[group])]
    if unknown:
        raise InputError(f"groups {unknown} not found in column {group!r}")
    return groups

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
    groups = _groups(df, value, group, order)
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


def pairwise_matrix(pairs: pd.DataFrame, order: Sequence | None = None, fmt: str = "{:.3g}",
                    title: str = "Welch's t-test (Holm-corrected p)") -> pd.DataFrame:
    """Square table of a :func:`pairwise_welch` result in the paper's Table 8 layout.

    Row i, column j: below the diagonal the Holm-corrected p-value (formatted with ``fmt``), above it
    the stars, ``-`` on the diagonal. Works on one test's rows of :func:`compare_groups` too (pass
    ``title``, e.g. "Mann–Whitney U (Holm-corrected p)").
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
    mat.index.name = title
    return mat


# --------------------------------------------------------------------------------------------------
# Rank test, bootstrap medians, censored groups
# --------------------------------------------------------------------------------------------------

#: Why each test of :func:`compare_groups` is there (written to the tables' ``why`` column).
TEST_WHY = {
    "mann-whitney": "rank test (primary): fitted p is heavy-tailed and poorly determined per RF; ranks "
                    "need no distribution and are the same for p, log p or 1/p",
    "welch-log": "Welch's t-test (the paper's test) on log p: p is multiplicative and right-skewed, "
                 "log p is roughly normal; unequal variances allowed",
}


def mann_whitney(a, b) -> dict:
    """Two-sided Mann–Whitney U test of two independent samples (NaNs dropped).

    Exact p-values for small samples without ties, the normal approximation with tie correction
    otherwise (scipy's ``method="auto"``). Returns ``{"U", "pvalue", "n_a", "n_b", "median_a",
    "median_b", "prob_superiority", "note"}``: ``U`` is a's statistic and ``prob_superiority`` =
    U / (n_a·n_b) = P(a > b) + ½ P(a = b). ``pvalue`` is NaN with a note when a sample has fewer than
    2 values or every value is tied.
    """
    from scipy import stats as st

    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    out = {"n_a": a.size, "n_b": b.size, "median_a": float(np.median(a)) if a.size else math.nan,
           "median_b": float(np.median(b)) if b.size else math.nan, "U": math.nan, "pvalue": math.nan,
           "prob_superiority": math.nan, "note": ""}
    if a.size < 2 or b.size < 2:
        out["note"] = f"need >= 2 values per group (got {a.size} and {b.size})"
        return out
    both = np.concatenate([a, b])
    if np.ptp(both) == 0:
        out["note"] = "every value is tied"
        return out
    res = st.mannwhitneyu(a, b, alternative="two-sided", method="auto")
    out["U"] = float(res.statistic)
    out["pvalue"] = float(res.pvalue)
    out["prob_superiority"] = float(res.statistic) / (a.size * b.size)
    return out


def bootstrap_median_ci(x, level: float = 0.95, n_boot: int = 10000, seed=0) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval ``(lo, hi)`` of the median of ``x`` (NaNs dropped).

    ``n_boot`` resamples with replacement (seeded: an int or a ``numpy.random.Generator``); the
    interval is the ``(1 ∓ level)/2`` quantiles of the resampled medians. (NaN, NaN) for an empty
    sample; a single value gives a zero-width interval.
    """
    if not 0 < level < 1:
        raise InputError(f"level must be in (0, 1), got {level}")
    if int(n_boot) < 1:
        raise InputError(f"n_boot must be >= 1, got {n_boot}")
    x = np.asarray(x, dtype=np.float64).ravel()
    x = x[np.isfinite(x)]
    if x.size == 0:
        return math.nan, math.nan
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    meds = np.median(x[rng.integers(0, x.size, size=(int(n_boot), x.size))], axis=1)
    lo, hi = np.quantile(meds, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def _bool_col(g: pd.DataFrame, col: str | None) -> np.ndarray:
    if col is None or col not in g:
        return np.zeros(len(g), dtype=bool)
    return g[col].fillna(False).astype(bool).to_numpy()


def _fmt(v: float) -> str:
    return f"{v:.3g}"


def group_summary(df: pd.DataFrame, value: str, group: str, order: Sequence | None = None, *,
                  at_lower: str | None = None, at_upper: str | None = None,
                  bounds: tuple[float, float] | None = None, level: float = 0.95, n_boot: int = 10000,
                  seed=0) -> pd.DataFrame:
    """Per group: ``n, median, ci_lo, ci_hi`` (percentile bootstrap), ``q25, q75, geo_mean``,
    ``n_at_lower, n_at_upper`` (members flagged by the boolean columns ``at_lower``/``at_upper``: fits
    that ended on a bound, whose value is only known to be ≤ / ≥ it), ``censored`` and ``display``,
    a text such as ``"2.1 [1.95, 2.43]"`` or ``"≥ 64"`` when the median itself sits on a bound
    (``bounds = (lower, upper)`` give the numbers; a CI end on a bound reads "≥ 64" too).
    """
    for col in (value, group):
        if col not in df.columns:
            raise InputError(f"column {col!r} not in the table (columns: {', '.join(map(str, df.columns))})")
    groups = list(order) if order is not None else list(pd.unique(df[group]))
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    lower, upper = bounds if bounds is not None else (-math.inf, math.inf)
    rows = []
    for name in groups:
        g = df[df[group] == name]
        if g.empty:
            continue
        x = g[value].to_numpy(dtype=np.float64)
        lo_b, hi_b = _bool_col(g, at_lower), _bool_col(g, at_upper)
        med = float(np.nanmedian(x))
        ci = bootstrap_median_ci(x, level, n_boot, rng)

        def txt(v):
            if hi_b.any() and v >= upper * (1 - 1e-9):
                return f"≥ {upper:g}"
            if lo_b.any() and v <= lower * (1 + 1e-9):
                return f"≤ {lower:g}"
            return _fmt(v)

        med_txt = txt(med)
        display = med_txt if med_txt.startswith(("≥", "≤")) else f"{med_txt} [{txt(ci[0])}, {txt(ci[1])}]"
        with np.errstate(divide="ignore", invalid="ignore"):
            geo = float(np.exp(np.nanmean(np.log(x)))) if np.all(x[np.isfinite(x)] > 0) else math.nan
        rows.append({group: name, "n": int(np.isfinite(x).sum()), "median": med, "ci_lo": ci[0], "ci_hi": ci[1],
                     "ci_level": level, "q25": float(np.nanquantile(x, 0.25)), "q75": float(np.nanquantile(x, 0.75)),
                     "geo_mean": geo, "n_at_lower": int(lo_b.sum()), "n_at_upper": int(hi_b.sum()),
                     "censored": bool(lo_b.any() or hi_b.any()), "display": display})
    return pd.DataFrame(rows)


def _censor_note(name, n_lo, n_hi, n, bounds) -> str:
    lower, upper = bounds if bounds is not None else (math.nan, math.nan)
    parts = []
    if n_hi:
        parts.append(f"{name}: {n_hi} of {n} at the upper bound {upper:g} (only known to be ≥ {upper:g})")
    if n_lo:
        parts.append(f"{name}: {n_lo} of {n} at the lower bound {lower:g} (only known to be ≤ {lower:g})")
    return "; ".join(parts)


def compare_groups(df: pd.DataFrame, value: str, group: str, order: Sequence | None = None, *,
                   at_lower: str | None = None, at_upper: str | None = None,
                   bounds: tuple[float, float] | None = None,
                   tests: Sequence[str] = ("mann-whitney", "welch-log"),
                   primary: str = "mann-whitney") -> pd.DataFrame:
    """Every pair of groups with each test in ``tests``, Holm-corrected across pairs per test.

    Tests: ``"mann-whitney"`` (:func:`mann_whitney`), ``"welch-log"`` (:func:`welch` on log values;
    values must be > 0) and ``"welch"`` (the paper's, on raw values). A pair in which either group has
    members at a bound (``at_lower``/``at_upper``: boolean columns, e.g. ``p_at_min``/``p_at_max``) is
    **not testable**: its p, Holm p and stars are NaN / "n/a", ``note`` says which group sits where,
    and, when the groups do not overlap even allowing for the censoring, which way they are ordered.
    Such pairs do not count towards Holm's m.

    Returns one row per pair and test: ``group_a, group_b, test, primary, testable, n_a, n_b,
    median_a, median_b, statistic, df, effect, effect_name, p, p_holm, stars, direction, note, why``.
    ``effect`` is P(a > b) for the rank test and the ratio of geometric means (a / b) for Welch on log.
    """
    known = {"mann-whitney", "welch-log", "welch"}
    bad = [t for t in tests if t not in known]
    if bad or primary not in tests:
        raise InputError(f"unknown tests {bad} or primary {primary!r} not among {list(tests)}; "
                         f"choose from {sorted(known)}")
    groups = _groups(df, value, group, order)
    data = {}
    for name in groups:
        g = df[df[group] == name]
        x = g[value].to_numpy(dtype=np.float64)
        ok = np.isfinite(x)
        data[name] = (x[ok], _bool_col(g, at_lower)[ok], _bool_col(g, at_upper)[ok])
    why = dict(TEST_WHY, welch="Welch's t-test on raw values (the paper's Table 8)")
    rows = []
    for i, ga in enumerate(groups):
        for gb in groups[i + 1:]:
            (a, alo, ahi), (b, blo, bhi) = data[ga], data[gb]
            censored = alo.any() or ahi.any() or blo.any() or bhi.any()
            note = ""
            if censored:
                note = "; ".join(s for s in (_censor_note(ga, alo.sum(), ahi.sum(), a.size, bounds),
                                             _censor_note(gb, blo.sum(), bhi.sum(), b.size, bounds)) if s)
                note = "not testable: " + note + "; a test would measure where the bound was set"
                # known order despite the censoring: every a below every b (a's tops exact, b's bottoms exact)
                if a.size and b.size:
                    if not ahi.any() and not blo.any() and a.max() < b.min():
                        note += f"; every {ga} < every {gb} (no overlap)"
                    elif not bhi.any() and not alo.any() and b.max() < a.min():
                        note += f"; every {ga} > every {gb} (no overlap)"
            for test in tests:
                r = {"group_a": ga, "group_b": gb, "test": test, "primary": test == primary,
                     "testable": not censored, "n_a": a.size, "n_b": b.size,
                     "median_a": float(np.median(a)) if a.size else math.nan,
                     "median_b": float(np.median(b)) if b.size else math.nan,
                     "statistic": math.nan, "df": math.nan, "effect": math.nan, "p": math.nan,
                     "effect_name": "P(a > b)" if test == "mann-whitney" else (
                         "geometric mean ratio a/b" if test == "welch-log" else "mean difference a − b"),
                     "note": note, "why": why[test]}
                if not censored:
                    if test == "mann-whitney":
                        res = mann_whitney(a, b)
                        r.update(statistic=res["U"], p=res["pvalue"], effect=res["prob_superiority"],
                                 note=res["note"])
                    else:
                        if test == "welch-log" and ((a <= 0).any() or (b <= 0).any()):
                            raise InputError(f"Welch on log {value} needs values > 0 ({ga} or {gb} has some <= 0)")
                        xa, xb = (np.log(a), np.log(b)) if test == "welch-log" else (a, b)
                        res = welch(xa, xb)
                        diff = res["mean_a"] - res["mean_b"]
                        r.update(statistic=res["t"], df=res["df"], p=res["pvalue"], note=res["note"],
                                 effect=float(np.exp(diff)) if test == "welch-log" else diff)
                    r["testable"] = bool(np.isfinite(r["p"]))
                rows.append(r)
    cols = ["group_a", "group_b", "test", "primary", "testable", "n_a", "n_b", "median_a", "median_b",
            "statistic", "df", "effect", "effect_name", "p", "p_holm", "stars", "direction", "note", "why"]
    if not rows:
        return pd.DataFrame(columns=cols)
    out = pd.DataFrame(rows)
    out["p_holm"] = np.nan
    for test in tests:
        sel = (out["test"] == test).to_numpy()
        out.loc[sel, "p_holm"] = holm(out.loc[sel, "p"].to_numpy())
    out["stars"] = stars(out["p_holm"].to_numpy())
    out["direction"] = np.where(out["median_a"] < out["median_b"], "<",
                                np.where(out["median_a"] > out["median_b"], ">", "="))
    return out[cols]
