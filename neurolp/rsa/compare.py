"""Comparators between RSM vectors: Kendall's τ_a and τ_b, Spearman's ρ and Pearson's r.

All work on the strict lower triangle of the RSMs (one vector per RSM), batched over many pairs,
and accept an integer multiplicity per entry (bootstrap samples and sub-samples; see
:mod:`neurolp.rsa.kendall`). Each vector is prepared (sorted, ranked) once with :func:`prepare` and
reused for every comparison it takes part in.

Rank-based comparators give the same value for RSMs and for RDMs (1 − RSM) as long as both sides
are flipped; Pearson too.
"""

from __future__ import annotations


import numpy as np

from neurolp.errors import ConfigError, InputError
from neurolp.rsa.kendall import RankedVectors, dense_ranks, tau_pairs

__all__ = ["COMPARATORS", "prepare", "compare_pairs", "compare_matrix", "Prepared",
           "subset_prepared"]

COMPARATORS = ("tau_a", "tau_b", "spearman", "pearson")


class Prepared(RankedVectors):
    """Vectors with sort orders and dense ranks (what every comparator needs)."""


def prepare(vectors) -> Prepared:
    """Prepare a stack of vectors ``[K, n]`` (or one ``[n]``) for repeated comparisons."""
    return Prepared(vectors)


def subset_prepared(vectors: np.ndarray, keep: np.ndarray) -> Prepared:
    """Prepared vectors that only rank the entries where ``keep`` is true.

    Entries outside ``keep`` get rank 1 and come last in the order; they must carry multiplicity 0
    in every comparison (as in a bootstrap sample that left them out). Ranking only the kept entries
    makes vectors built per bootstrap sample (pooled RSMs for the noise ceiling) cheap.
    """
    v = np.atleast_2d(np.asarray(vectors, dtype=np.float64))
    keep = np.asarray(keep, bool)
    idx = np.flatnonzero(keep)
    obj = Prepared.__new__(Prepared)
    sub_order, sub_dense = dense_ranks(v[:, idx])
    K, n = v.shape
    order = np.empty((K, n), dtype=np.intp)
    order[:, :len(idx)] = idx[sub_order]
    order[:, len(idx):] = np.flatnonzero(~keep)[None, :]
    dense = np.ones((K, n), dtype=np.intp)
    dense[:, idx] = np.maximum(sub_dense, 1)
    nan = np.zeros((K, n), bool)
    nan[:, idx] = np.isnan(v[:, idx])
    dense[nan] = 0
    obj.values, obj.order, obj.dense, obj.nan = v, order, dense, nan
    obj.any_nan = nan.any(axis=1)
    return obj


def _check_method(method: str) -> str:
    m = method.replace("-", "_").lower()
    aliases = {"kendall": "tau_b", "tau": "tau_b", "taub": "tau_b", "taua": "tau_a", "corr": "pearson",
               "rho": "spearman"}
    m = aliases.get(m, m)
    if m not in COMPARATORS:
        raise ConfigError(f"unknown comparator {method!r}; choose from {', '.join(COMPARATORS)}")
    return m


def _avg_ranks(dense: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Average ranks (ties shared, as scipy.stats.rankdata) of a vector whose entries are repeated
    ``weight`` times, from its 1-based dense ranks (0 = NaN). Entries of weight 0 take no part."""
    w = np.bincount(dense, weights=weight)
    w[0] = 0.0
    before = np.cumsum(w) - w
    return before[dense] + (w[dense] + 1.0) / 2.0


def _rank_values(p: Prepared, rows: np.ndarray, mult: np.ndarray) -> np.ndarray:
    """Average ranks of the expanded vectors ``rows`` of ``p`` (NaN entries left out)."""
    return np.stack([_avg_ranks(p.dense[r], np.where(p.nan[r], 0.0, mult)) for r in rows])


def _weighted_corr(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Row-wise weighted Pearson correlation of paired rows ``a[p]``, ``b[p]`` (weights ``w[p]``)."""
    sw = w.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        ma = (w * a).sum(axis=1, keepdims=True) / sw
        mb = (w * b).sum(axis=1, keepdims=True) / sw
        da, db = a - ma, b - mb
        num = (w * da * db).sum(axis=1)
        den = np.sqrt((w * da * da).sum(axis=1) * (w * db * db).sum(axis=1))
        r = num / den
    r[~np.isfinite(r)] = np.nan
    return np.clip(r, -1.0, 1.0)


def compare_pairs(px: Prepared, py: Prepared, pairs, method: str = "tau_a", *,
                  mult: np.ndarray | None = None, threads: int | None = None) -> np.ndarray:
    """Similarity of ``px[i]`` and ``py[j]`` for every ``(i, j)`` in ``pairs``."""
    method = _check_method(method)
    pairs = np.asarray(pairs, dtype=np.intp).reshape(-1, 2)
    if method in ("tau_a", "tau_b"):
        return tau_pairs(px, py, pairs, variant=method[-1], mult=mult, threads=threads)
    n = px.n
    if py.n != n:
        raise InputError(f"vectors differ in length: {px.n} vs {py.n}")
    m = np.ones(n) if mult is None else np.asarray(mult, dtype=np.float64)
    out = np.empty(len(pairs))
    # chunk to bound memory
    step = max(1, int(2e7 // max(n, 1)))
    ux = np.unique(pairs[:, 0])
    uy = np.unique(pairs[:, 1])
    if method == "spearman":
        vx = dict(zip(ux, _rank_values(px, ux, m)))
        vy = dict(zip(uy, _rank_values(py, uy, m)))
    else:
        vx = {i: px.values[i] for i in ux}
        vy = {j: py.values[j] for j in uy}
    for s in range(0, len(pairs), step):
        ch = pairs[s:s + step]
        a = np.stack([vx[i] for i in ch[:, 0]])
        b = np.stack([vy[j] for j in ch[:, 1]])
        w = np.broadcast_to(m, a.shape).copy()
        bad = px.nan[ch[:, 0]] | py.nan[ch[:, 1]]  # from the values: ranks are never NaN
        w[bad] = 0.0
        a = np.where(bad, 0.0, a)
        b = np.where(bad, 0.0, b)
        if method == "spearman" and bad.any():
            # re-rank on the entries valid in both vectors
            for k in np.flatnonzero(bad.any(axis=1)):
                keep = ~bad[k]
                wk = np.where(keep, m, 0.0)
                a[k] = np.where(keep, _avg_ranks(px.dense[ch[k, 0]], wk), 0.0)
                b[k] = np.where(keep, _avg_ranks(py.dense[ch[k, 1]], wk), 0.0)
        out[s:s + step] = _weighted_corr(a, b, w)
    return out


def compare_matrix(X, Y, method: str = "tau_a", *, mult: np.ndarray | None = None,
                   threads: int | None = None) -> np.ndarray:
    """All-pairs similarity ``[len(X), len(Y)]`` between rows of ``X`` and rows of ``Y``.

    ``X``/``Y`` are arrays ``[K, n]`` (or ``[n]``) or :class:`Prepared` objects.
    """
    px = X if isinstance(X, RankedVectors) else prepare(X)
    py = Y if isinstance(Y, RankedVectors) else prepare(Y)
    ii, jj = np.meshgrid(np.arange(len(px)), np.arange(len(py)), indexing="ij")
    vals = compare_pairs(px, py, np.stack([ii.ravel(), jj.ravel()], 1), method, mult=mult,
                         threads=threads)
    return vals.reshape(len(px), len(py))
