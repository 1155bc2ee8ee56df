"""The multivariate p-generalised normal distribution (MPND; Goodman & Kotz 1973; paper Eq. 1).

Density of an offset ``Δs ∈ R^d`` with exponent ``p ≥ 1`` and invertible ``C [d, d]``::

    f(Δs) = β · exp(−‖C Δs‖_p^p),        β = |det C| / (2 Γ(1 + 1/p))^d.

Derivation of β: with ``y = C Δs`` the exponent separates, ``∫ exp(−Σ_i |y_i|^p) dy =
(∫ exp(−|t|^p) dt)^d = (2 Γ(1 + 1/p))^d``, and ``dy = |det C| dΔs``, so ``∫ exp(−‖CΔs‖_p^p) dΔs
= (2Γ(1+1/p))^d / |det C|``.

.. note:: **Discrepancy with the paper.** Footnote 1 of Kwon et al. (ICLR 2025) writes
   ``β = [(2Γ(1+1/p))^d · det(C)]^{-1}``. That is the normaliser of ``exp(−‖C^{-1}Δs‖_p^p)``, i.e. it
   holds when C *scales* the offsets (Δs = C y) rather than *precisions* them as in Eq. 1 and in
   the Lp-mask ``exp(−‖CΔs‖_p^p)`` (where ``C = diag(1/σ)``). For ``C = diag(1/σ)`` the footnote's
   β would be ``σ^d/(2Γ(1+1/p))^d`` instead of the correct ``1/(σ^d (2Γ(1+1/p))^d)``. We use the
   correct β (tested by quadrature in ``tests/test_mpnd_density.py``); the Lp-mask (β = 1) is
   unaffected.

For ``p = 2`` the MPND is a Gaussian with covariance ``(2 CᵀC)^{-1}`` (so "C is the inverse of the
covariance" holds only up to that square root and factor 2). For ``C = diag(1/σ)`` each coordinate
is an independent 1-D generalised normal with scale σ (``scipy.stats.gennorm(p, scale=σ)``), whose
variance is ``σ² Γ(3/p) / Γ(1/p)``.

Sampling (:func:`sample_mpnd`): draw ``y_i`` iid with ``|y_i|^p ~ Gamma(1/p, 1)`` and a random sign,
then ``Δs = C^{-1} y``.

All functions here are torch-native (float64 by default) and differentiable in ``p`` and ``C``;
numpy arrays and Python numbers are accepted anywhere a tensor is.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from neurolp.errors import InputError
from neurolp.mpnd.mask import abs_pow

__all__ = ["log_normalizer", "mpnd_log_prob", "mpnd_prob", "sample_mpnd", "gennorm_cdf", "gennorm_tail",
           "interval_mass", "masses_from_tails", "outside_mass", "variance_1d", "sigma_for_unit_variance", "C_isotropic"]


def _t(x, dtype=torch.float64) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x if x.is_floating_point() else x.to(dtype)
    return torch.as_tensor(np.asarray(x, dtype=np.float64), dtype=dtype)


def C_isotropic(sigma, d: int = 2) -> torch.Tensor:
    """``C = diag(1/σ)`` (``[..., d, d]``) for scale(s) σ, the paper's parameterisation."""
    sigma = _t(sigma)
    return torch.diag_embed((1.0 / sigma).unsqueeze(-1).expand(*sigma.shape, d))


def log_normalizer(p, C) -> torch.Tensor:
    """``log β = log|det C| − d·log(2Γ(1 + 1/p))`` for ``p [...]`` and ``C [..., d, d]``."""
    p, C = _t(p), _t(C)
    d = C.shape[-1]
    logdet = torch.linalg.slogdet(C)[1]
    return logdet - d * (math.log(2.0) + torch.lgamma(1.0 + 1.0 / p))


def mpnd_log_prob(x, p, C) -> torch.Tensor:
    """Log-density of points ``x [..., n, d]`` under MPNDs with ``p [...]`` and ``C [..., d, d]``.

    Returns ``[..., n]``. ``p`` and ``C`` broadcast over the leading (batch) dimensions.
    """
    x, p, C = _t(x), _t(p), _t(C)
    if C.shape[-1] != C.shape[-2] or x.shape[-1] != C.shape[-1]:
        raise InputError(f"points have dimension {x.shape[-1]} but C has shape {tuple(C.shape)}; "
                         "expected x [..., n, d] and C [..., d, d]")
    y = torch.einsum("...ij,...nj->...ni", C, x)
    energy = abs_pow(y, p[..., None, None]).sum(-1)
    return log_normalizer(p, C)[..., None] - energy


def mpnd_prob(x, p, C) -> torch.Tensor:
    """Density ``β exp(−‖CΔs‖_p^p)`` at points ``x [..., n, d]`` (see :func:`mpnd_log_prob`)."""
    return torch.exp(mpnd_log_prob(x, p, C))


def sample_mpnd(n: int, p: float, C=None, *, sigma=None, d: int = 2, seed=None) -> np.ndarray:
    """``n`` samples ``[n, d]`` from the MPND with exponent ``p`` and ``C`` (or ``C = diag(1/σ)``).

    ``seed`` is an int or a ``numpy.random.Generator``. Exact: ``|y_i|^p ~ Gamma(1/p, 1)`` with a
    random sign gives density ``exp(−|y|^p) / (2Γ(1+1/p))`` per coordinate, and ``Δs = C^{-1} y``.
    """
    if p <= 0:
        raise InputError(f"p must be > 0 to sample an MPND, got {p}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    if C is None:
        sig = np.broadcast_to(np.asarray(1.0 if sigma is None else sigma, dtype=np.float64), (d,))
        C = np.diag(1.0 / sig)
    C = np.asarray(C, dtype=np.float64)
    d = C.shape[0]
    g = rng.gamma(1.0 / p, 1.0, size=(n, d))
    y = g ** (1.0 / p) * rng.choice([-1.0, 1.0], size=(n, d))
    return np.linalg.solve(C, y.T).T


def variance_1d(p, sigma=1.0):
    """Variance ``σ² Γ(3/p) / Γ(1/p)`` of one coordinate of an MPND with ``C = diag(1/σ)``."""
    p = np.asarray(p, dtype=np.float64)
    from scipy.special import gammaln

    return np.asarray(sigma, dtype=np.float64) ** 2 * np.exp(gammaln(3.0 / p) - gammaln(1.0 / p))


def sigma_for_unit_variance(p):
    """The σ at which a ``C = diag(1/σ)`` MPND has unit variance per axis (√2 for p = 2, √3 for p → ∞)."""
    return 1.0 / np.sqrt(variance_1d(p, 1.0))


class _RegIncGamma(torch.autograd.Function):
    """Regularised incomplete gamma, lower ``P(a, z)`` or upper ``Q(a, z) = 1 − P``, differentiable
    in both ``a`` and ``z``.

    torch's ``gammainc``/``gammaincc`` have no gradient in ``a``; here ``∂/∂a`` is a central
    difference in float64 (relative error ~1e-8, ample for optimisation) and ``∂/∂z`` is exact.
    ``a`` and ``z`` must have the same shape (callers broadcast first). The upper form keeps full
    relative precision in the far tail, where ``1 − P`` would cancel to 0.
    """

    @staticmethod
    def forward(ctx, a, z, upper: bool):
        ctx.save_for_backward(a, z)
        ctx.upper = upper
        return torch.special.gammaincc(a, z) if upper else torch.special.gammainc(a, z)

    @staticmethod
    def backward(ctx, grad):
        a, z = ctx.saved_tensors
        sign = -1.0 if ctx.upper else 1.0
        ga = gz = None
        if ctx.needs_input_grad[0]:
            fn = torch.special.gammaincc if ctx.upper else torch.special.gammainc
            h = 1e-5 * torch.clamp(a, min=1e-3)
            ga = grad * (fn(a + h, z) - fn(a - h, z)) / (2 * h)
        if ctx.needs_input_grad[1]:
            safe = torch.where(z > 0, z, torch.ones_like(z))
            dens = torch.exp((a - 1) * torch.log(safe) - safe - torch.lgamma(a))
            gz = sign * grad * torch.where(z > 0, dens, torch.zeros_like(z))
        return ga, gz, None


def gennorm_tail(x, p, sigma) -> torch.Tensor:
    """``P(X > |x|)`` for the 1-D generalised normal ``exp(−|x/σ|^p) / (2σΓ(1+1/p))``: ``½ Q(1/p, |x/σ|^p)``.

    Broadcasting and differentiable; exact to full relative precision in the tails; 0 at ±inf.
    """
    x, p, sigma = _t(x), _t(p), _t(sigma)
    x, p, sigma = torch.broadcast_tensors(x, p, sigma)
    finite = torch.isfinite(x)
    z = abs_pow(torch.where(finite, x, torch.zeros_like(x)) / sigma, p)
    Q = _RegIncGamma.apply(1.0 / p, z, True)
    return 0.5 * torch.where(finite, Q, torch.zeros_like(Q))


def gennorm_cdf(x, p, sigma) -> torch.Tensor:
    """CDF of the 1-D generalised normal ``exp(−|x/σ|^p) / (2σΓ(1+1/p))`` (broadcasting, differentiable).

    ``F(x) = ½ + ½·sign(x)·P(1/p, |x/σ|^p)`` with P the regularised lower incomplete gamma; ±inf
    give 0 and 1. For masses of intervals in the tails use :func:`interval_mass`, which avoids the
    cancellation of ``F(b) − F(a)``.
    """
    t = gennorm_tail(x, p, sigma)
    x = torch.broadcast_to(_t(x), t.shape)
    return torch.where(x >= 0, 1.0 - t, t)


def interval_mass(edges, p, sigma) -> torch.Tensor:
    """Mass of the 1-D generalised normal in each interval of ``edges [m+1]``: ``[..., m]``.

    ``edges`` is ``[m+1]`` or batched ``[..., m+1]``; ``p`` and ``sigma`` have shape ``[...]``.
    Exact (incomplete gamma) and accurate in the tails: intervals on one side of 0 are differences
    of tail probabilities, never of CDFs near 1.
    """
    edges, p, sigma = _t(edges), _t(p), _t(sigma)
    return masses_from_tails(edges, gennorm_tail(edges, p[..., None], sigma[..., None]))


def masses_from_tails(edges, T) -> torch.Tensor:
    """Interval masses ``[..., m]`` from the tail probabilities ``T = P(X > |e|)`` at ``edges [..., m+1]``
    (see :func:`interval_mass`; split out so callers that need the tails too compute them once)."""
    edges = torch.broadcast_to(_t(edges), T.shape)
    lo, hi = edges[..., :-1], edges[..., 1:]
    Tlo, Thi = T[..., :-1], T[..., 1:]
    right = Tlo - Thi               # 0 <= lo < hi
    left = Thi - Tlo                # lo < hi <= 0: T(|hi|) − T(|lo|)
    straddle = 1.0 - Tlo - Thi      # lo < 0 < hi
    m = torch.where(lo >= 0, right, torch.where(hi <= 0, left, straddle))
    return m.clamp(min=0.0)


def outside_mass(lo, hi, p, sigma) -> torch.Tensor:
    """Mass of the 1-D generalised normal outside ``[lo, hi]`` (lo < 0 < hi; broadcasting), accurate
    in the tails."""
    return gennorm_tail(lo, p, sigma) + gennorm_tail(hi, p, sigma)
