"""Conformational analysis of Lp-masks (paper §5, App. A.6): scale α, rotation θ, distortion γ.

With the SVD ``C = U Λ Vᵀ`` (λ₀ ≥ λ₁ > 0):

* γ = λ₀ / λ₁ ≥ 1 (distortion; 1 for a circular mask);
* α = sqrt(1/λ₀² + 1/λ₁²) (scale; σ√2 for C = diag(1/σ));
* θ = orientation of the mask's long axis, the right singular vector of λ₁ (the paper's ``Vᵀ[1]``),
  in degrees in [0, 180). Offsets are (Δh, Δw) = (row, column), and θ is measured counter-clockwise
  from the horizontal as the mask is displayed with row 0 at the top (``imshow``): 0° is a horizontal
  mask, 90° a vertical (column-selective) one. θ is NaN when γ = 1 (no orientation).

The mask depends on C only through ``‖CΔs‖_p``; for p = 2 that is ``ΔsᵀVΛ²VᵀΔs`` and U drops out.
For p ≠ 2 U rotates the corners of the L_p ball, so we also report ψ, the angle of the orthogonal
factor ``U Vᵀ`` (0 for a symmetric positive-definite C, the canonical form the inverse returns).
"""

from __future__ import annotations

import numpy as np

__all__ = ["conformation", "C_from_conformation"]

_ISOTROPIC_TOL = 1e-6


def _as_numpy(C) -> np.ndarray:
    if hasattr(C, "detach"):
        C = C.detach().cpu().double().numpy()
    return np.asarray(C, dtype=np.float64)


def conformation(C) -> dict[str, np.ndarray]:
    """α, θ (deg), γ, ψ (deg) and det-sign of each ``2×2`` matrix in ``C [..., 2, 2]``."""
    C = _as_numpy(C)
    if C.shape[-2:] != (2, 2):
        raise ValueError(f"C must have shape [..., 2, 2], got {C.shape}")
    U, s, Vt = np.linalg.svd(C)
    lam0, lam1 = s[..., 0], s[..., 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        gamma = lam0 / lam1
        alpha = np.sqrt(1.0 / lam0**2 + 1.0 / lam1**2)
    v_h, v_w = Vt[..., 1, 0], Vt[..., 1, 1]  # long axis, as (row, column) components
    theta = np.degrees(np.arctan2(-v_h, v_w)) % 180.0  # -v_h: rows grow downwards on screen
    theta = np.where(np.abs(gamma - 1.0) < _ISOTROPIC_TOL, np.nan, theta)
    Q = U @ Vt
    psi = np.degrees(np.arctan2(Q[..., 1, 0], Q[..., 0, 0]))
    det_sign = np.sign(np.linalg.det(C))
    return {"alpha": alpha, "theta": theta, "gamma": gamma, "psi": psi, "det_sign": det_sign}


def C_from_conformation(alpha, theta, gamma, psi=0.0) -> np.ndarray:
    """Inverse of :func:`conformation`: ``C = R(ψ) V Λ Vᵀ`` for scale α, rotation θ (deg), distortion γ ≥ 1.

    With ψ = 0 the result is the symmetric positive-definite C with that conformation.
    """
    alpha, theta, gamma, psi = np.broadcast_arrays(*(np.asarray(x, dtype=np.float64)
                                                     for x in (alpha, theta, gamma, psi)))
    if np.any(alpha <= 0) or np.any(gamma < 1):
        raise ValueError("need alpha > 0 and gamma >= 1")
    lam1 = np.sqrt(1.0 + gamma**-2) / alpha
    lam0 = gamma * lam1
    t = np.radians(theta)
    # long axis v1 = (Δh, Δw) = (−sin θ, cos θ); short axis v0 ⟂ v1
    v0 = np.stack([np.cos(t), np.sin(t)], axis=-1)
    v1 = np.stack([-np.sin(t), np.cos(t)], axis=-1)
    V = np.stack([v0, v1], axis=-1)  # columns are right singular vectors
    Lam = np.zeros(alpha.shape + (2, 2))
    Lam[..., 0, 0], Lam[..., 1, 1] = lam0, lam1
    r = np.radians(psi)
    R = np.stack([np.stack([np.cos(r), -np.sin(r)], -1), np.stack([np.sin(r), np.cos(r)], -1)], -2)
    return R @ V @ Lam @ np.swapaxes(V, -1, -2)
