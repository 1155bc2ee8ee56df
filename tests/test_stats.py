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
