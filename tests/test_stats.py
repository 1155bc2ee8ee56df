"""Welch's t-test, Holm–Bonferroni, significance stars and the pairwise tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from neurolp.errors import InputError
from neurolp.stats import holm, pairwise_matrix, pairwise_welch, stars, welch


def test_holm_hand_example():
    # sorted p: 0.01, 0.02, 0.03, 0.04 with m = 4 → 0.04, 0.06, 0.06 (monotone), 0.06
    p = [0.03, 0.01, 0.04, 0.02]
    np.testing.assert_allclose(holm(p), [0.06, 0.04, 0.06, 0.06])


def test_holm_caps_at_one_keeps_nan_and_order():
    out = holm([0.5, np.nan, 0.001, 0.4])
    assert np.isnan(out[1])
    np.testing.assert_allclose(out[[0, 2, 3]], [0.8, 0.003, 0.8])  # m = 3 finite p-values
    np.testing.assert_allclose(holm([0.9, 0.8]), [1.0, 1.0])   # 2·0.8 capped at 1, then monotone
    with pytest.raises(InputError):
        holm([1.5])


def test_holm_agrees_with_bonferroni_for_the_smallest():
    rng = np.random.default_rng(0)
    p = rng.uniform(size=10) ** 3
    adj = holm(p)
    assert adj[np.argmin(p)] == pytest.approx(min(1, 10 * p.min()))
    assert np.all(adj >= p)


def test_welch_matches_scipy_and_welch_satterthwaite_df():
    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 1, 12), rng.normal(1, 3, 20)
    r = welch(a, b)
    ref = st.ttest_ind(a, b, equal_var=False)
    assert r["t"] == pytest.approx(ref.statistic)
    assert r["pvalue"] == pytest.approx(ref.pvalue)
    va, vb = a.var(ddof=1) / 12, b.var(ddof=1) / 20
    assert r["df"] == pytest.approx((va + vb) ** 2 / (va ** 2 / 11 + vb ** 2 / 19))


def test_welch_degenerate_cases():
    assert np.isnan(welch([1.0], [1.0, 2.0])["pvalue"])
    r = welch([64.0] * 5, [64.0] * 5)
    assert np.isnan(r["pvalue"]) and "constant" in r["note"]
    r = welch([1.0, np.nan, 3.0], [2.0, 4.0, 6.0])           # NaNs dropped
    assert r["n_a"] == 2
    # one constant group is fine for Welch (one-sample-like test)
    r = welch([2.0, 2.5, 1.5, 2.2], [64.0] * 4)
    assert r["pvalue"] < 1e-5


def test_stars_thresholds():
    assert stars(0.0005) == "***"
    assert stars(0.001) == "**"
    assert stars(0.009) == "**"
    assert stars(0.04) == "*"
    assert stars(0.05) == "n.s"
    assert stars(np.nan) == "n/a"
    assert list(stars(np.array([0.2, 0.02]))) == ["n.s", "*"]


def _table():
    rng = np.random.default_rng(2)
    return pd.DataFrame({
        "group": ["A"] * 17 + ["B"] * 17 + ["C"] * 17,
        "value": np.r_[rng.normal(2, 0.5, 17), rng.normal(2.1, 0.5, 17), rng.normal(8, 0.5, 17)],
    })


def test_pairwise_welch_rows_and_holm():
    out = pairwise_welch(_table(), value="value", group="group")
    assert list(zip(out["group_a"], out["group_b"])) == [("A", "B"), ("A", "C"), ("B", "C")]
    np.testing.assert_allclose(out["p_holm"], holm(out["p"]))
    assert out.set_index(["group_a", "group_b"]).loc[("A", "B"), "stars"] == "n.s"
    assert out.set_index(["group_a", "group_b"]).loc[("A", "C"), "stars"] == "***"
    # order argument controls pairs and their direction
    out2 = pairwise_welch(_table(), value="value", group="group", order=["C", "A"])
    assert list(zip(out2["group_a"], out2["group_b"])) == [("C", "A")]
    with pytest.raises(InputError, match="not found"):
        pairwise_welch(_table(), value="value", group="group", order=["A", "Z"])
    with pytest.raises(InputError, match="column"):
        pairwise_welch(_table(), value="nope", group="group")


def test_pairwise_matrix_table8_layout():
    pairs = pairwise_welch(_table(), value="value", group="group")
    mat = pairwise_matrix(pairs)
    assert list(mat.index) == ["A", "B", "C"] and list(mat.columns) == ["A", "B", "C"]
    assert (np.diag(mat.to_numpy()) == "-").all()
    assert mat.loc["A", "C"] == "***"                     # upper triangle: stars
    p_ac = pairs.set_index(["group_a", "group_b"]).loc[("A", "C"), "p_holm"]
    assert mat.loc["C", "A"] == f"{p_ac:.3g}"              # lower triangle: corrected p


# --------------------------------------------------------------------------------------------------
# Rank test, bootstrap medians, censored groups
# --------------------------------------------------------------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as hst  # noqa: E402

from neurolp.stats import bootstrap_median_ci, compare_groups, group_summary, mann_whitney  # noqa: E402


def test_mann_whitney_matches_scipy_and_handles_degenerate_input():
    rng = np.random.default_rng(3)
    a, b = rng.lognormal(0.7, 0.4, 17), rng.lognormal(1.5, 0.4, 12)
    r = mann_whitney(a, b)
    ref = st.mannwhitneyu(a, b, alternative="two-sided")
    assert r["U"] == ref.statistic and r["pvalue"] == pytest.approx(ref.pvalue)
    assert r["prob_superiority"] == pytest.approx(ref.statistic / (17 * 12))
    # ranks do not care about a monotone transform: log p gives the same test as p
    assert mann_whitney(np.log(a), np.log(b))["pvalue"] == pytest.approx(r["pvalue"])
    assert np.isnan(mann_whitney([1.0], [2.0, 3.0])["pvalue"])
    assert "tied" in mann_whitney([2.0, 2.0], [2.0, 2.0])["note"]


def test_bootstrap_median_ci_covers_the_true_median_at_the_nominal_rate():
    # 300 samples of n = 17 from a skewed distribution (lognormal, median 2): a 95 % percentile
    # bootstrap CI should hold the true median about 95 % of the time (binomial sd ≈ 1.3 %)
    rng = np.random.default_rng(11)
    hits = 0
    for _ in range(300):
        x = np.exp(rng.normal(np.log(2.0), 0.6, 17))
        lo, hi = bootstrap_median_ci(x, 0.95, 1000, rng)
        hits += lo <= 2.0 <= hi
    assert 0.90 <= hits / 300 <= 0.985, hits / 300
    # narrower at a lower level, and the same seed gives the same interval
    x = np.exp(rng.normal(0, 1, 40))
    w95, w50 = np.diff(bootstrap_median_ci(x, 0.95, 2000, 0)), np.diff(bootstrap_median_ci(x, 0.5, 2000, 0))
    assert w50 < w95
    assert bootstrap_median_ci(x, 0.9, 500, 5) == bootstrap_median_ci(x, 0.9, 500, 5)
    with pytest.raises(InputError):
        bootstrap_median_ci(x, 1.5)


def _groups(values: dict, at_max: dict | None = None) -> pd.DataFrame:
    rows = []
    for g, vals in values.items():
        flags = (at_max or {}).get(g, [False] * len(vals))
        rows += [{"group": g, "p": v, "at_max": f} for v, f in zip(vals, flags)]
    return pd.DataFrame(rows)


def test_compare_groups_tests_holm_and_capped_pairs():
    rng = np.random.default_rng(4)
    v1 = rng.lognormal(np.log(2.1), 0.3, 17)
    trained = rng.lognormal(np.log(7.6), 0.1, 17)
    untrained = np.full(17, 64.0)
    df = _groups({"v1": v1, "trained": trained, "untrained": untrained}, {"untrained": [True] * 17})
    out = compare_groups(df, "p", "group", at_upper="at_max", bounds=(1.0, 64.0))
    assert len(out) == 3 * 2 and set(out["test"]) == {"mann-whitney", "welch-log"}
    assert out.loc[out["test"] == "mann-whitney", "primary"].all()
    ok = out[out["testable"]]
    assert set(zip(ok["group_a"], ok["group_b"])) == {("v1", "trained")}
    # v1 vs trained: both tests significant; Holm over the one testable pair leaves p unchanged
    assert (ok["p_holm"] == ok["p"]).all() and (ok["stars"] == "***").all()
    wl = ok[ok["test"] == "welch-log"].iloc[0]
    assert wl["statistic"] == pytest.approx(st.ttest_ind(np.log(v1), np.log(trained), equal_var=False).statistic)
    assert wl["effect"] == pytest.approx(np.exp(np.log(v1).mean() - np.log(trained).mean()))
    # the capped pairs: no p, no stars, and the note says why and which way the groups lie
    capped = out[~out["testable"]]
    assert capped["p"].isna().all() and capped["p_holm"].isna().all() and (capped["stars"] == "n/a").all()
    assert capped["note"].str.contains("untrained: 17 of 17 at the upper bound 64").all()
    assert capped["note"].str.contains("every trained < every untrained").any()
    assert out["why"].str.len().gt(20).all()


@settings(max_examples=60, deadline=None)
@given(n=hst.lists(hst.integers(2, 9), min_size=2, max_size=4),
       capped=hst.lists(hst.integers(0, 9), min_size=4, max_size=4),
       seed=hst.integers(0, 2**16))
def test_a_comparison_with_a_capped_group_is_never_significant(n, capped, seed):
    rng = np.random.default_rng(seed)
    values, flags = {}, {}
    for i, k in enumerate(n):
        vals = rng.lognormal(np.log(2 + 10 * i), 0.2, k)      # far apart: every clean pair would be significant
        c = min(capped[i], k) if i % 2 else 0                 # every other group has some fits at the cap
        vals[:c] = 64.0
        values[f"g{i}"], flags[f"g{i}"] = vals, [True] * c + [False] * (k - c)
    out = compare_groups(_groups(values, flags), "p", "group", at_upper="at_max", bounds=(1.0, 64.0))
    censored = {g for g, f in flags.items() if any(f)}
    for r in out.itertuples(index=False):
        if r.group_a in censored or r.group_b in censored:
            assert not r.testable and r.stars == "n/a" and np.isnan(r.p_holm), r
    for test in ("mann-whitney", "welch-log"):                  # Holm counts the testable pairs only
        sub = out[(out["test"] == test) & out["testable"]]
        np.testing.assert_allclose(sub["p_holm"], holm(sub["p"].to_numpy()))


def test_group_summary_reports_a_capped_median_as_at_least_the_bound():
    df = _groups({"v1": [1.8, 2.0, 2.1, 2.4, 3.0], "box": [64.0] * 4 + [40.0], "some": [5, 6, 7, 64, 64]},
                 {"box": [True] * 4 + [False], "some": [False] * 3 + [True] * 2})
    s = group_summary(df, "p", "group", at_upper="at_max", bounds=(1.0, 64.0), n_boot=500).set_index("group")
    assert s.loc["box", "display"] == "≥ 64" and s.loc["box", "censored"] and s.loc["box", "n_at_upper"] == 4
    assert s.loc["v1", "display"].startswith("2.1 [") and not s.loc["v1", "censored"]
    assert s.loc["v1", "ci_lo"] <= 2.1 <= s.loc["v1", "ci_hi"]
    assert s.loc["some", "display"].startswith("7 [") and s.loc["some", "display"].endswith("≥ 64]")
