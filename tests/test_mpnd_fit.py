"""MPND fitting: recover known p and σ from samples, batched; lattice RFs; bad input.

Tolerances (n = 20 000 points per RF, seeds fixed; measured sd of p̂/p over seeds at n = 4 000 was
2 % / 2 % / 5 % for MLE and 3 % / 5 % / 10 % for the PMF fit at p = 2 / 4 / 8, i.e. √5 smaller here):

* MLE: |p̂/p − 1| < 0.04 (p = 2, 4), < 0.08 (p = 8); σ within 2 %;
* PMF (21×21 bins of width 0.3, MSE): |p̂/p − 1| < 0.08 (p = 2, 4), < 0.15 (p = 8); σ within 3 %.

σ is compared in standardised units, where unit variance means σ = sqrt(Γ(1/p)/Γ(3/p)).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from neurolp.errors import InputError
from neurolp.mpnd import (PMFBins, ReceptiveField, empirical_pmf, fit_mpnd, lattice_edges, model_pmf, rf_pmfs,
                          sample_mpnd, sigma_for_unit_variance, standardize)

P_TRUE = (2.0, 4.0, 8.0)


@pytest.fixture(scope="module")
def samples():
    return {f"p{p:g}": sample_mpnd(20000, p, sigma=1.3, seed=int(10 * p)) for p in P_TRUE}


@pytest.mark.parametrize("objective,loss,tol_p,tol_s", [
    ("mle", "mse", (0.04, 0.04, 0.08), 0.02),
    ("pmf", "mse", (0.08, 0.08, 0.15), 0.03),
    ("pmf", "kl", (0.04, 0.04, 0.08), 0.02),
])
def test_recovers_p_and_sigma_batched(samples, objective, loss, tol_p, tol_s):
    fits = fit_mpnd(samples, objective=objective, loss=loss)
    assert list(fits["rf"]) == list(samples)            # one row per RF, input order
    assert fits["converged"].all()
    assert not fits["p_at_bound"].any()
    for p, tol, row in zip(P_TRUE, tol_p, fits.itertuples()):
        assert abs(row.p / p - 1) < tol, (objective, loss, p, row.p)
        assert abs(row.sigma / sigma_for_unit_variance(p) - 1) < tol_s
        assert row.gamma == pytest.approx(1.0)         # isotropic C
        assert row.alpha == pytest.approx(row.sigma * np.sqrt(2))


def test_unstandardised_fit_recovers_raw_sigma():
    pts = sample_mpnd(20000, 3.0, sigma=2.5, seed=3)
    row = fit_mpnd([pts], objective="mle", standardize="none").iloc[0]
    assert row.p == pytest.approx(3.0, rel=0.05)
    assert row.sigma == pytest.approx(2.5, rel=0.02)


def test_batched_equals_individual_fits(samples):
    together = fit_mpnd(samples, objective="pmf")
    alone = pd.concat([fit_mpnd({k: v}, objective="pmf") for k, v in samples.items()], ignore_index=True)
    np.testing.assert_allclose(together["p"], alone["p"], rtol=1e-5)
    np.testing.assert_allclose(together["sigma"], alone["sigma"], rtol=1e-5)


def test_pmf_fit_matches_scipy_optimum():
    # the batched Levenberg–Marquardt lands on the same optimum as scipy's Nelder–Mead on the same loss
    import torch
    from scipy.optimize import minimize

    pts = sample_mpnd(3000, 2.5, sigma=1.0, seed=4)
    row = fit_mpnd([pts], objective="pmf").iloc[0]
    z, _, _ = standardize(pts)
    bins = PMFBins.centred()
    e = empirical_pmf(z, None, bins)

    def loss(v):
        q, q_out = model_pmf(bins, torch.tensor(1 + np.exp(v[0])), sigma=torch.tensor(np.exp(v[1])),
                             with_outside=True)
        return float(((q.numpy() - e) ** 2).sum() + (float(q_out) - (1 - e.sum())) ** 2)

    res = minimize(loss, [0.0, np.log(0.5)], method="Nelder-Mead", options={"xatol": 1e-9, "fatol": 1e-14})
    assert row.p == pytest.approx(1 + np.exp(res.x[0]), rel=1e-3)
    assert row.sigma == pytest.approx(np.exp(res.x[1]), rel=1e-3)
    assert row.loss <= res.fun * (1 + 1e-6)


def test_uniform_square_is_a_box_at_p_max():
    # an untrained conv's RF is ~uniform over the kernel: the best MPND is p → ∞ (held at p_max)
    dh, dw = np.meshgrid(np.arange(11) - 5.0, np.arange(11) - 5.0, indexing="ij")
    rng = np.random.default_rng(0)
    rf = ReceptiveField(np.stack([dw.ravel(), -dh.ravel()], 1), rng.uniform(0.95, 1.05, 121),
                        edges=lattice_edges(11))
    row = fit_mpnd([rf], p_bounds=(1.0, 64.0)).iloc[0]
    assert row.p == pytest.approx(64.0)
    assert row.p_at_bound and row.converged
    assert row.bins == "lattice"


def test_lattice_rf_recovers_p():
    # tap counts proportional to an MPND's mass on each tap cell of a 25×25 kernel (σ = 3 taps, so
    # the mass outside the kernel — which the fit counts as an overflow bin — is negligible)
    import torch

    edges = lattice_edges(25)
    for p in (2.0, 4.0):
        mass = model_pmf((edges[0], edges[1]), torch.tensor(p), sigma=torch.tensor(3.0)).numpy()
        cx = (edges[0][1:] + edges[0][:-1]) / 2
        cy = (edges[1][1:] + edges[1][:-1]) / 2
        X, Y = np.meshgrid(cx, cy, indexing="ij")
        rf = ReceptiveField(np.stack([X.ravel(), Y.ravel()], 1), mass.ravel() * 1e6, edges=edges)
        for loss in ("mse", "kl"):
            row = fit_mpnd([rf], loss=loss, standardize="none").iloc[0]
            assert row.p == pytest.approx(p, rel=1e-4)
            assert row.sigma == pytest.approx(3.0, rel=1e-4)


def test_full_C_recovers_orientation_and_distortion():
    from neurolp.mpnd import C_from_conformation

    # a tilted, elongated Gaussian-like RF (p = 2); (x, y) with y up, θ counter-clockwise from +x
    C_hw = C_from_conformation(alpha=2.0, theta=30.0, gamma=2.0)
    P = np.array([[0.0, 1.0], [-1.0, 0.0]])           # (x, y) = P (Δh, Δw)
    C_xy = C_hw @ np.linalg.inv(P)
    pts = sample_mpnd(20000, 2.0, C_xy, seed=6)
    row = fit_mpnd([pts], objective="mle", C="full", standardize="none").iloc[0]
    assert row.p == pytest.approx(2.0, rel=0.04)
    assert row.gamma == pytest.approx(2.0, rel=0.04)
    assert row.alpha == pytest.approx(2.0, rel=0.03)
    assert row.theta == pytest.approx(30.0, abs=2.0)


def test_full_C_pmf_quadrature_matches_separable_masses():
    import torch

    bins = PMFBins.centred()
    q_exact = model_pmf(bins, torch.tensor(3.0), sigma=torch.tensor([0.9, 1.4]))
    q_quad = model_pmf(bins, torch.tensor(3.0), torch.tensor(np.diag([1 / 0.9, 1 / 1.4])), quad_nodes=8)
    np.testing.assert_allclose(q_quad.numpy(), q_exact.numpy(), atol=2e-5)


def test_rf_pmfs_returns_empirical_and_fitted_on_the_same_bins(samples):
    fits = fit_mpnd(samples)
    tab = rf_pmfs(samples, fits)
    assert len(tab) == 3 * 21 * 21
    sums = tab.groupby("rf")[["empirical", "fitted"]].sum()
    assert (sums["empirical"] > 0.99).all() and (sums["empirical"] <= 1.0 + 1e-12).all()
    assert (sums["fitted"] > 0.99).all()
    # a good fit: empirical and fitted PMFs are close bin by bin
    err = (tab["empirical"] - tab["fitted"]).abs().groupby(tab["rf"]).max()
    assert (err < 0.01).all()


def test_standardize_axis_and_joint():
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(500, 2)) * [10.0, 2.0] + [5.0, -3.0]
    z, m, s = standardize(pts)
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(z.std(0), 1, atol=1e-12)
    zj, _, sj = standardize(pts, mode="joint")
    assert sj[0] == sj[1]
    assert zj.var(0).mean() == pytest.approx(1.0)
    # weights act as repeated points
    w = np.array([1.0, 3.0])
    zw, mw, _ = standardize(np.array([[0.0, 0.0], [4.0, 2.0]]), w)
    np.testing.assert_allclose(mw, [3.0, 1.5])


@pytest.mark.parametrize("rfs,match", [
    ([np.array([[1.0, 2.0]])], "single offset cannot be standardised"),
    ([np.zeros((0, 2))], "empty"),
    ([np.array([[0.0, 1.0], [np.nan, 2.0], [1.0, 1.0]])], "NaN"),
    ([np.array([[1.0, 0.0], [1.0, 2.0], [1.0, 5.0]])], "same x coordinate"),
    ([np.ones((4, 3))], r"shape \[n, 2\]"),
    ([(np.ones((3, 2)), np.ones(2))], "3 offsets but 2 weights"),
    ("nonsense", "cannot read receptive fields"),
])
def test_bad_input_messages(rfs, match):
    with pytest.raises(InputError, match=match):
        fit_mpnd(rfs)


def test_bad_options():
    pts = [sample_mpnd(50, 2.0, seed=0)]
    with pytest.raises(InputError, match="unknown objective"):
        fit_mpnd(pts, objective="ls")
    with pytest.raises(InputError, match="unknown C model"):
        fit_mpnd(pts, C="spd")
    with pytest.raises(InputError, match="p_init"):
        fit_mpnd(pts, p_init=0.5)


def test_dataframe_input():
    pts = sample_mpnd(2000, 2.0, seed=8)
    df = pd.DataFrame({"rf": ["a"] * 1000 + ["b"] * 1000, "x": pts[:, 0], "y": pts[:, 1]})
    fits = fit_mpnd(df)
    assert list(fits["rf"]) == ["a", "b"]
    assert (fits["n_points"] == 1000).all()


def test_full_C_pmf_fit_with_joint_standardisation():
    # the PMF path with a free C (2-D quadrature per bin): shape parameters survive joint scaling
    from neurolp.mpnd import C_from_conformation

    P = np.array([[0.0, 1.0], [-1.0, 0.0]])
    pts = sample_mpnd(20000, 3.0, C_from_conformation(2.0, 30.0, 2.0) @ np.linalg.inv(P), seed=6)
    row = fit_mpnd([pts], C="full", standardize="joint").iloc[0]
    assert row.converged
    assert row.p == pytest.approx(3.0, rel=0.05)
    assert row.theta == pytest.approx(30.0, abs=2.0)
    assert row.gamma == pytest.approx(2.0, rel=0.05)


# --------------------------------------------------------------------------------------------------
# The paper's fit: Adam on (log2 p, σ), early-stopped
# --------------------------------------------------------------------------------------------------

def test_paper_fit_converges_toward_the_known_p_as_steps_grow():
    # samples with known p; Adam from p = 2 walks towards it, and the walk is recorded
    S = {"p3": sample_mpnd(20000, 3.0, sigma=1.3, seed=30), "p1.5": sample_mpnd(20000, 1.5, sigma=1.3, seed=15)}
    fits, traj = fit_mpnd(S, fit="paper", lr=0.05, steps=600, record_every=20, return_trajectory=True)
    assert list(fits["fit"]) == ["paper", "paper"] and (fits["iterations"] == 600).all()
    for rf, p_true in (("p3", 3.0), ("p1.5", 1.5)):
        t = traj[traj["rf"] == rf].set_index("step")["p"]
        assert t.loc[0] == pytest.approx(2.0)
        # the farthest the path strays from p after step s shrinks as s grows (σ settles first, so
        # p may dip before it climbs), down to the sampling error of the estimate
        err = np.abs(np.log2(t.to_numpy() / p_true))
        tail = {s: err[t.index >= s].max() for s in (0, 100, 300, 500)}
        assert tail[0] >= tail[100] >= tail[300] >= tail[500], (rf, tail)
        assert tail[500] < 0.1
        if p_true == 3.0:
            assert tail[100] > 2 * tail[300] > 4 * tail[500]
        row = fits.set_index("rf").loc[rf]
        assert row.p == pytest.approx(t.loc[600])
        assert abs(row.p / p_true - 1) < 0.08                # sampling error of the PMF fit (see top)
        assert row.converged and row.p_optimum == pytest.approx(row.p, rel=0.014)
    # and the converged fit agrees with where the descent ends
    conv = fit_mpnd(S)
    np.testing.assert_allclose(fits["p_optimum"], conv["p"], rtol=1e-3)


def test_paper_fit_flags_an_early_stop_on_a_box():
    # a flat 11×11 RF: the optimum is p → ∞ (p_max); 400 Adam steps stop far below and say so
    dh, dw = np.meshgrid(np.arange(11) - 5.0, np.arange(11) - 5.0, indexing="ij")
    rf = ReceptiveField(np.stack([dw.ravel(), -dh.ravel()], 1), np.ones(121), edges=lattice_edges(11))
    row = fit_mpnd([rf], fit="paper", lr=0.01, steps=400).iloc[0]
    assert 2.5 < row.p < 10.0
    assert not row.converged and not row.p_at_bound
    assert row.p_optimum == pytest.approx(64.0)


def test_paper_fit_keeps_p_at_least_one():
    # a sharply peaked RF (p = 0.6 < 1): the descent stops on the bound p = 1, never below
    S = [sample_mpnd(20000, 0.6, sigma=1.0, seed=6)]
    fits, traj = fit_mpnd(S, fit="paper", lr=0.05, steps=150, record_every=5, return_trajectory=True)
    assert (traj["p"] >= 1.0).all()
    row = fits.iloc[0]
    assert row.p == pytest.approx(1.0) and row.p_at_min and row.p_at_bound


def test_adam_is_torch_adam_with_projection():
    import torch

    from neurolp.mpnd.fit import _adam, _PaperModel

    model = _PaperModel("isotropic", 1.0, 64.0)
    target = torch.tensor([[2.5, 0.9], [0.4, 2.0]], dtype=torch.float64)
    scale = torch.tensor([[1.0, 30.0], [0.2, 1e-3]], dtype=torch.float64)

    def f(th):
        return (scale * (th - target) ** 2).sum(1)

    th0 = model.init(2, 2.0, 0.5)
    th, val, _, rec = _adam(f, th0, model, 0.03, 80, 10, False)
    ref = th0.clone().requires_grad_(True)
    opt = torch.optim.Adam([ref], lr=0.03)
    for _ in range(80):
        opt.zero_grad()
        f(ref).sum().backward()
        opt.step()
        with torch.no_grad():
            ref.copy_(model.project(ref))
    np.testing.assert_allclose(th.numpy(), ref.detach().numpy(), rtol=1e-10, atol=1e-12)
    assert rec["step"][:2] == [0, 0] and rec["step"][-1] == 80


def test_diagonal_and_full_C_use_one_common_scale():
    # an elongated RF (σ_x = 2 σ_y): with one common scale the fitted shape keeps its aspect ratio
    pts = sample_mpnd(20000, 2.0, sigma=[2.0, 1.0], seed=9)
    diag = fit_mpnd([pts], C="diagonal").iloc[0]
    assert diag.scale_x == diag.scale_y
    assert diag.sigma_x / diag.sigma_y == pytest.approx(2.0, rel=0.05)
    iso = fit_mpnd([pts]).iloc[0]                          # the paper's isotropic fit: per-axis scales
    assert iso.scale_x / iso.scale_y == pytest.approx(2.0, rel=0.03)
    with pytest.raises(InputError, match="unknown fit"):
        fit_mpnd([pts], fit="adam")
    with pytest.raises(InputError, match="lr > 0"):
        fit_mpnd([pts], fit="paper", lr=0.0)
