"""Kendall's τ_a / τ_b (and the other comparators) against scipy, brute force and rsatoolbox."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.stats as ss
from hypothesis import given, settings
from hypothesis import strategies as st

from neurolp.errors import InputError
from neurolp.rsa import kendall as K
from neurolp.rsa.compare import compare_matrix, compare_pairs, prepare


def brute_tau(x, y, variant):
    x, y = np.asarray(x, float), np.asarray(y, float)
    n = len(x)
    dx = np.sign(x[None] - x[:, None])
    dy = np.sign(y[None] - y[:, None])
    s = (dx * dy).sum() / 2
    n0 = n * (n - 1) / 2
    if variant == "a":
        return s / n0
    n1 = (dx == 0).sum() / 2 - n / 2
    n2 = (dy == 0).sum() / 2 - n / 2
    den = (n0 - n1) * (n0 - n2)
    return s / np.sqrt(den) if den > 0 else np.nan


@pytest.fixture(params=["auto", "numpy"])
def backend(request):
    if request.param == "numpy":
        K._set_backend("numpy")
    else:
        K._set_backend(None)
    yield request.param
    K._set_backend(None)


def test_fast_kernel_is_used_when_scipy_has_it():
    """scipy's compiled discordance counter passes neurolp's self-check wherever it exists."""
    from scipy.stats import _stats

    K._set_backend(None)
    expected = "scipy-kendall-dis" if hasattr(_stats, "_kendall_dis") else "numpy"
    assert K.kernel_backend() == expected


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 3)), min_size=2, max_size=60))
def test_tied_data_equals_scipy_and_brute_force(pairs):
    x = np.array([p[0] for p in pairs], float)
    y = np.array([p[1] for p in pairs], float)
    ref_b = ss.kendalltau(x, y)[0]
    got_b = K.kendall_tau(x, y, "b")
    assert (np.isnan(ref_b) and np.isnan(got_b)) or got_b == pytest.approx(ref_b, abs=1e-12)
    assert K.kendall_tau(x, y, "a") == pytest.approx(brute_tau(x, y, "a"), abs=1e-12)


def test_random_and_tied_batches_both_backends(backend):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3, 300))
    Y = np.concatenate([X + rng.normal(size=(3, 300)), rng.integers(0, 5, (2, 300)).astype(float)])
    X = np.concatenate([X, np.round(X[:1], 1)])          # a tied row on the x side too
    for variant in ("a", "b"):
        got = K.kendall_tau_matrix(X, Y, variant)
        for i in range(len(X)):
            for j in range(len(Y)):
                want = ss.kendalltau(X[i], Y[j])[0] if variant == "b" else brute_tau(X[i], Y[j], "a")
                assert got[i, j] == pytest.approx(want, abs=1e-12)


def test_rsm_sized_vectors_equal_scipy_exactly():
    rng = np.random.default_rng(1)
    n = 6903
    x = rng.normal(size=n)
    ys = x + rng.normal(size=(4, n)) * np.array([[0.5], [1], [3], [10]])
    got = K.kendall_tau(x, ys, "b")
    want = [ss.kendalltau(x, y)[0] for y in ys]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-14)
    # no ties: τ_a equals τ_b
    np.testing.assert_allclose(K.kendall_tau(x, ys, "a"), want, atol=1e-14)


def test_multiplicities_equal_expanded_vectors(backend):
    rng = np.random.default_rng(2)
    x = rng.integers(0, 6, 80).astype(float)
    y = x + rng.integers(0, 3, 80)
    m = rng.integers(0, 4, 80)
    px, py = prepare(x), prepare(y)
    for variant in ("a", "b"):
        got = K.tau_pairs(px, py, [[0, 0]], variant=variant, mult=m)[0]
        xe, ye = np.repeat(x, m), np.repeat(y, m)
        want = ss.kendalltau(xe, ye)[0] if variant == "b" else brute_tau(xe, ye, "a")
        assert got == pytest.approx(want, abs=1e-12)


def test_nan_entries_are_left_out_of_the_pair():
    rng = np.random.default_rng(3)
    x = rng.normal(size=50)
    y = rng.normal(size=50)
    y[[3, 7]] = np.nan
    x[10] = np.nan
    ok = ~np.isnan(x) & ~np.isnan(y)
    assert K.kendall_tau(x, y) == pytest.approx(ss.kendalltau(x[ok], y[ok])[0], abs=1e-12)


def test_nan_only_in_x_with_ties_in_y_and_multiplicities():
    rng = np.random.default_rng(11)
    x = rng.normal(size=40)
    y = rng.integers(0, 6, size=40).astype(float)  # heavily tied
    x[[1, 5, 9]] = np.nan
    ok = ~np.isnan(x)
    assert K.kendall_tau(x, y) == pytest.approx(ss.kendalltau(x[ok], y[ok])[0], abs=1e-12)
    m = rng.integers(0, 3, size=40)
    m[[1, 5, 9]] = 3  # copies of entries that x leaves out must not count as ties in y
    keep = ok & (m > 0)
    xe, ye = np.repeat(x[keep], m[keep]), np.repeat(y[keep], m[keep])
    got = K.tau_pairs(K.RankedVectors(x), K.RankedVectors(y), [[0, 0]], variant="b", mult=m)[0]
    assert got == pytest.approx(ss.kendalltau(xe, ye)[0], abs=1e-12)


def test_broadcasting_shapes_and_scalar():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 1, 40))
    y = rng.normal(size=(3, 40))
    out = K.kendall_tau(x, y)
    assert out.shape == (2, 3)
    assert out[1, 2] == pytest.approx(ss.kendalltau(x[1, 0], y[2])[0], abs=1e-12)
    assert isinstance(K.kendall_tau(y[0], y[1]), float)


def test_constant_vector_gives_nan_for_tau_b_and_zero_for_tau_a():
    x = np.ones(10)
    y = np.arange(10.0)
    assert np.isnan(K.kendall_tau(x, y, "b"))
    assert K.kendall_tau(x, y, "a") == 0.0


def test_bad_inputs():
    with pytest.raises(InputError, match="variant"):
        K.kendall_tau(np.arange(3.0), np.arange(3.0), "c")
    with pytest.raises(InputError, match="length"):
        K.kendall_tau(np.arange(3.0), np.arange(4.0))
    with pytest.raises(InputError, match="non-negative"):
        K.tau_pairs(prepare(np.arange(3.0)), prepare(np.arange(3.0)), [[0, 0]], mult=[1, -1, 1])


def test_spearman_and_pearson_match_scipy_with_ties_and_multiplicity():
    rng = np.random.default_rng(5)
    x = rng.integers(0, 7, 90).astype(float)
    y = x + rng.normal(size=90)
    m = rng.integers(0, 3, 90)
    px, py = prepare(x), prepare(y)
    sp = compare_pairs(px, py, [[0, 0]], "spearman", mult=m)[0]
    pe = compare_pairs(px, py, [[0, 0]], "pearson", mult=m)[0]
    xe, ye = np.repeat(x, m), np.repeat(y, m)
    assert sp == pytest.approx(ss.spearmanr(xe, ye)[0], abs=1e-12)
    assert pe == pytest.approx(ss.pearsonr(xe, ye)[0], abs=1e-12)


def test_compare_matrix_equals_rsatoolbox():
    rsatoolbox = pytest.importorskip("rsatoolbox")
    from rsatoolbox.rdm import RDMs, compare

    rng = np.random.default_rng(6)
    n_img = 20
    n = n_img * (n_img - 1) // 2
    A = rng.normal(size=(3, n))
    B = A[[0, 1]] + rng.normal(size=(2, n))
    B[1] = np.round(B[1], 0)  # ties
    ra, rb = RDMs(A), RDMs(B)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for ours, theirs in (("tau_a", "tau-a"), ("tau_b", "kendall"), ("spearman", "spearman"),
                             ("pearson", "corr")):
            np.testing.assert_allclose(compare_matrix(A, B, ours), compare(ra, rb, method=theirs),
                                       atol=1e-12, err_msg=ours)
    assert rsatoolbox is not None


def test_threads_give_identical_values():
    rng = np.random.default_rng(7)
    X = rng.normal(size=(5, 400))
    Y = rng.normal(size=(8, 400))
    np.testing.assert_array_equal(K.kendall_tau_matrix(X, Y, threads=1),
                                  K.kendall_tau_matrix(X, Y, threads=2))


def test_infinities_and_nan_together():
    x = np.array([1.0, np.inf, 3.0, np.nan, -np.inf, 2.0, np.inf])
    y = np.array([2.0, 5.0, 1.0, 4.0, 0.0, np.nan, 3.0])
    ok = ~np.isnan(x) & ~np.isnan(y)
    # scipy gives NaN with infinities; they are ordinary extreme ranks here (brute force agrees)
    xo, yo = x[ok], y[ok]
    sx = np.where(np.isinf(xo), np.sign(xo) * 1e300, xo)
    assert K.kendall_tau(x, y) == pytest.approx(brute_tau(sx, yo, "b"), abs=1e-12)
    assert K.kendall_tau(x, y, "a") == pytest.approx(brute_tau(sx, yo, "a"), abs=1e-12)


def test_spearman_with_nan_reranks_the_entries_valid_in_both():
    rng = np.random.default_rng(21)
    x = rng.integers(0, 8, 60).astype(float)  # ties
    y = x + rng.normal(size=60)
    x[[2, 30]] = np.nan
    y[[7]] = np.nan
    ok = ~np.isnan(x) & ~np.isnan(y)
    got = compare_pairs(prepare(x), prepare(y), [[0, 0]], "spearman")[0]
    assert got == pytest.approx(ss.spearmanr(x[ok], y[ok])[0], abs=1e-12)
