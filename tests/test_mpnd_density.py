"""MPND density: normaliser (numerical quadrature), sampler, CDF and bin masses."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.integrate import trapezoid

from neurolp.mpnd import (C_isotropic, gennorm_cdf, gennorm_tail, interval_mass, log_normalizer, mpnd_log_prob,
                          mpnd_prob, sample_mpnd, sigma_for_unit_variance, variance_1d)
from neurolp.mpnd.density import _RegIncGamma


def _integrate_2d(p, C, n=1201):
    """Trapezoid rule over a box that holds all but ~1e-13 of the mass (independent of β's formula)."""
    C = np.asarray(C, dtype=np.float64)
    # |y_i| <= r for r^p = 30 holds all but ~e^-30 of each coordinate's mass; Δs = C^{-1} y then lies
    # within Σ_j |C^{-1}_ij| · r along axis i
    r = 30.0 ** (1.0 / p)
    hx, hy = np.abs(np.linalg.inv(C)).sum(1) * r
    gx, gy = np.linspace(-hx, hx, n), np.linspace(-hy, hy, n)
    X, Y = np.meshgrid(gx, gy, indexing="ij")
    pts = torch.from_numpy(np.stack([X.ravel(), Y.ravel()], 1))
    f = mpnd_prob(pts, p, C).numpy().reshape(n, n)
    return trapezoid(trapezoid(f, gy, axis=1), gx)


@pytest.mark.parametrize("p", [1.0, 1.5, 2.0, 3.0, 8.0])
@pytest.mark.parametrize("C", [
    [[1.0, 0.0], [0.0, 1.0]],
    [[2.0, 0.0], [0.0, 0.5]],
    [[1.2, 0.7], [-0.4, 0.9]],        # non-symmetric, det > 0
    [[0.3, 1.1], [0.8, -0.6]],        # det < 0 (|det C| is what counts)
])
def test_density_integrates_to_one(p, C):
    assert _integrate_2d(p, C) == pytest.approx(1.0, abs=2e-3)


def test_normaliser_closed_form_and_paper_footnote_discrepancy():
    # β = |det C| / (2Γ(1+1/p))^d ; for C = diag(1/σ) that is 1/(2σΓ(1+1/p))^2
    p, sigma = 3.0, 1.7
    C = C_isotropic(sigma)
    expected = -2 * math.log(2 * sigma * math.gamma(1 + 1 / p))
    assert float(log_normalizer(p, C)) == pytest.approx(expected, rel=1e-12)
    # The paper's footnote β = [(2Γ(1+1/p))^d det C]^{-1} is off by det(C)^2 = σ^-4 here:
    paper = -math.log((2 * math.gamma(1 + 1 / p)) ** 2 * float(torch.linalg.det(C)))
    assert abs(paper - expected) == pytest.approx(4 * math.log(sigma), rel=1e-12)
    assert _integrate_2d(p, C.numpy()) == pytest.approx(1.0, abs=2e-3)


def test_density_matches_scipy_gennorm_product():
    # C = diag(1/σx, 1/σy): product of 1-D generalised normals with shape p and scales σx, σy
    p, sx, sy = 2.7, 0.8, 1.9
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 2)) * 2
    ours = mpnd_log_prob(x, p, np.diag([1 / sx, 1 / sy])).numpy()
    ref = stats.gennorm.logpdf(x[:, 0], p, scale=sx) + stats.gennorm.logpdf(x[:, 1], p, scale=sy)
    np.testing.assert_allclose(ours, ref, rtol=1e-10)


def test_p2_is_gaussian_with_covariance_inverse_2CtC():
    C = np.array([[1.3, 0.4], [0.0, 0.7]])
    cov = np.linalg.inv(2 * C.T @ C)
    x = np.array([[0.3, -1.2], [2.0, 0.5], [0.0, 0.0]])
    ref = stats.multivariate_normal(mean=[0, 0], cov=cov).logpdf(x)
    np.testing.assert_allclose(mpnd_log_prob(x, 2.0, C).numpy(), ref, rtol=1e-10)


@pytest.mark.parametrize("p", [1.0, 2.0, 5.0])
def test_sampler_matches_distribution(p):
    # per-coordinate KS test against scipy's gennorm and the closed-form variance
    s = sample_mpnd(20000, p, sigma=1.4, seed=1)
    assert s.shape == (20000, 2)
    for j in range(2):
        assert stats.kstest(s[:, j], stats.gennorm(p, scale=1.4).cdf).pvalue > 1e-3
    np.testing.assert_allclose(s.var(0), variance_1d(p, 1.4), rtol=0.05)


def test_sampler_full_C_covariance():
    # Δs = C^{-1} y: Cov(Δs) = C^{-1} Cov(y) C^{-T}, Cov(y) = var_1d(p)·I
    C = np.array([[1.0, 0.6], [-0.2, 1.5]])
    p = 3.0
    s = sample_mpnd(40000, p, C, seed=2)
    Ci = np.linalg.inv(C)
    np.testing.assert_allclose(np.cov(s.T), Ci @ Ci.T * variance_1d(p), atol=0.02)


def test_sampler_is_seeded():
    a = sample_mpnd(10, 2.0, sigma=1.0, seed=5)
    b = sample_mpnd(10, 2.0, sigma=1.0, seed=5)
    np.testing.assert_array_equal(a, b)


def test_sigma_for_unit_variance_limits():
    assert sigma_for_unit_variance(2.0) == pytest.approx(math.sqrt(2))
    assert sigma_for_unit_variance(200.0) == pytest.approx(math.sqrt(3), rel=1e-2)


@pytest.mark.parametrize("p", [1.0, 2.0, 6.0, 30.0])
def test_cdf_and_tail_match_scipy(p):
    x = np.array([-np.inf, -8.0, -2.0, -0.3, 0.0, 0.4, 1.0, 3.0, 9.0, np.inf])
    np.testing.assert_allclose(gennorm_cdf(x, p, 1.3).numpy(), stats.gennorm.cdf(x, p, scale=1.3), atol=1e-12)
    # tails keep relative precision where 1 − CDF would cancel
    xt = np.array([4.0, 6.0, 8.0])
    np.testing.assert_allclose(gennorm_tail(xt, 2.0, 1.0).numpy(), stats.gennorm.sf(xt, 2.0), rtol=1e-9)


def test_interval_mass_exact_and_tail_accurate():
    edges = np.array([-np.inf, -5, -1, -0.2, 0.2, 1, 5, 7, np.inf])
    m = interval_mass(edges, 2.0, 1.0).numpy()
    ref = np.diff(stats.gennorm.cdf(edges, 2.0))
    np.testing.assert_allclose(m, ref, atol=1e-15)
    assert m.sum() == pytest.approx(1.0, abs=1e-14)
    # [5, 7] has mass ~1e-12: relative accuracy, not cancellation noise
    ref57 = stats.gennorm.sf(5, 2.0) - stats.gennorm.sf(7, 2.0)
    assert m[6] == pytest.approx(ref57, rel=1e-8)


def test_incomplete_gamma_gradient_in_a():
    a = torch.tensor([0.3, 0.5, 0.9], dtype=torch.float64, requires_grad=True)
    z = torch.tensor([0.2, 1.5, 3.0], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, z: _RegIncGamma.apply(a, z, False), (a, z), atol=1e-6)
    assert torch.autograd.gradcheck(lambda a, z: _RegIncGamma.apply(a, z, True), (a, z), atol=1e-6)


def test_interval_mass_gradients_in_p_and_sigma():
    p = torch.tensor([2.5], dtype=torch.float64, requires_grad=True)
    s = torch.tensor([0.9], dtype=torch.float64, requires_grad=True)
    edges = torch.linspace(-3, 3, 9, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda p, s: interval_mass(edges, p, s), (p, s), atol=1e-6)
