"""Noise ceilings: across mice (lower and upper bound) and the anchor's trial split-half ceiling.

Across mice (Nili et al. 2014; rsatoolbox's ``boot_noise_ceiling`` with ``rdm_descriptor="mouse"``):

* **upper bound** = mean over mice of sim(mouse RSM, pooled RSM of *all* mice, itself included);
* **lower bound** = mean over mice of sim(mouse RSM, pooled RSM of the *other* mice)
  (leave-one-mouse-out).

A model scored as the mean over mice of sim(model RSM, mouse RSM) cannot, in expectation, beat
the upper bound; the lower bound is what the best model should at least reach. "Pooled" is the
mean RSM (``pool="mean"``, neurolp's default) or the mean of the RSMs' ranks (``pool="rank"``,
rsatoolbox's choice for rank correlations; for τ neither is the exact τ-optimal consensus, so the
upper bound is approximate, as rsatoolbox warns).

Trial split-half (the Lp-Conv/Bakhtiari ceiling): sim(RSM of one random half of the trials, RSM of
the other half), repeated and aggregated (median in the anchor). It measures the reliability of one
population's RSM with half of its trials — not agreement between animals.
"""

from __future__ import annotations

import numpy as np

from neurolp.errors import ConfigError, InputError
from neurolp.rsa.compare import Prepared, _rank_values, compare_pairs, prepare, subset_prepared

__all__ = ["pool_vectors", "mice_ceiling", "split_half_ceiling", "POOLS"]

POOLS = ("mean", "rank")


def pool_vectors(V: np.ndarray, weights=None, pool: str = "mean", *, mult=None,
                 prepared: Prepared | None = None) -> np.ndarray:
    """Weighted pooled vector of the rows of ``V`` (``pool`` = "mean" or "rank")."""
    V = np.atleast_2d(np.asarray(V, dtype=np.float64))
    w = np.ones(len(V)) if weights is None else np.asarray(weights, dtype=np.float64)
    if pool not in POOLS:
        raise ConfigError(f"pool must be one of {POOLS}, got {pool!r}")
    if w.sum() <= 0:
        raise InputError("pooling needs at least one vector with positive weight")
    if pool == "rank":
        p = prepared if prepared is not None else prepare(V)
        m = np.ones(V.shape[1]) if mult is None else np.asarray(mult, dtype=np.float64)
        rows = np.flatnonzero(w > 0)
        R = np.full(V.shape, np.nan)
        R[rows] = _rank_values(p, rows, m)
        R[np.isnan(V)] = np.nan
        V = R
    sel = w > 0
    with np.errstate(invalid="ignore"):
        return np.nansum(V[sel] * w[sel, None], axis=0) / np.sum(
            (~np.isnan(V[sel])) * w[sel, None], axis=0)


def mice_ceiling(V, method: str = "tau_a", pool: str = "mean", *, weights=None, mult=None,
                 prepared: Prepared | None = None, threads: int | None = None) -> dict:
    """Lower and upper noise ceilings across the rows (mice) of ``V`` ``[M, n]``.

    ``weights`` are mouse multiplicities (a bootstrap sample over mice; default 1 each), ``mult``
    entry multiplicities (a bootstrap sample over images). Returns ``{"lower", "upper",
    "lower_per_mouse", "upper_per_mouse"}``; bounds are NaN with fewer than two distinct mice (the
    lower bound) or none (both).
    """
    V = np.atleast_2d(np.asarray(V, dtype=np.float64))
    M, n = V.shape
    w = np.ones(M) if weights is None else np.asarray(weights, dtype=np.float64)
    p = prepared if prepared is not None else prepare(V)
    present = np.flatnonzero(w > 0)
    lower_m = np.full(M, np.nan)
    upper_m = np.full(M, np.nan)
    if len(present) == 0:
        return {"lower": np.nan, "upper": np.nan, "lower_per_mouse": lower_m,
                "upper_per_mouse": upper_m}
    pooled = [pool_vectors(V, w, pool, mult=mult, prepared=p)]
    loo_of = []
    if len(present) > 1:
        for m in present:
            w2 = w.copy()
            w2[m] = 0.0
            pooled.append(pool_vectors(V, w2, pool, mult=mult, prepared=p))
            loo_of.append(m)
    pooled = np.stack(pooled)
    if mult is not None:
        pp = subset_prepared(pooled, np.asarray(mult) > 0)
    else:
        pp = prepare(pooled)
    pairs = [(m, 0) for m in present] + [(m, k + 1) for k, m in enumerate(loo_of)]
    vals = compare_pairs(p, pp, pairs, method, mult=mult, threads=threads)
    upper_m[present] = vals[:len(present)]
    if loo_of:
        lower_m[np.asarray(loo_of)] = vals[len(present):]
    ws = w[present]
    upper = float(np.nansum(upper_m[present] * ws) / ws[~np.isnan(upper_m[present])].sum()) \
        if np.any(~np.isnan(upper_m[present])) else np.nan
    if loo_of and np.any(~np.isnan(lower_m[present])):
        ok = ~np.isnan(lower_m[present])
        lower = float(np.sum(lower_m[present][ok] * ws[ok]) / ws[ok].sum())
    else:
        lower = np.nan
    return {"lower": lower, "upper": upper, "lower_per_mouse": lower_m, "upper_per_mouse": upper_m}


def split_half_ceiling(half_pairs: np.ndarray, method: str = "tau_b", *, mult=None,
                       threads: int | None = None) -> np.ndarray:
    """Similarity between the two halves of each split: ``half_pairs`` ``[..., 2, n]`` → ``[...]``."""
    hp = np.asarray(half_pairs, dtype=np.float64)
    if hp.ndim < 2 or hp.shape[-2] != 2:
        raise InputError(f"half_pairs must be [..., 2, n], got {hp.shape}")
    lead = hp.shape[:-2]
    flat = hp.reshape(-1, 2, hp.shape[-1])
    pa, pb = prepare(flat[:, 0]), prepare(flat[:, 1])
    k = np.arange(len(flat))
    vals = compare_pairs(pa, pb, np.stack([k, k], 1), method, mult=mult, threads=threads)
    return vals.reshape(lead)
