"""Exact Kendall's τ_a and τ_b, batched over many vector pairs.

Definitions (n entries, n₀ = n(n−1)/2 pairs; n₁, n₂ pairs tied in x, in y; n₃ pairs tied in both;
n_d pairs ordered oppositely by x and y)::

    S   = n_c − n_d = n₀ − n₁ − n₂ + n₃ − 2·n_d
    τ_a = S / n₀                          (Nili et al. 2014; rsatoolbox "tau-a")
    τ_b = S / √((n₀ − n₁)(n₀ − n₂))       (scipy.stats.kendalltau's default; the Lp-Conv code)

τ_a and τ_b coincide when neither vector has ties (brain and model RSMs almost never do).

Why it is fast: each vector is sorted and dense-ranked **once** (:class:`RankedVectors`); a pair then
needs only an O(n) gather and an O(n log n) count of discordant pairs (a Fenwick tree, Knight 1966),
with no per-pair sorting, no p-value and no Python loop over entries. Pairs are spread over
threads (the counting kernel releases the GIL).

Sub-samples and bootstrap samples are expressed as an integer **multiplicity** per entry
(0 = left out, 2 = present twice, ...): the result is exactly τ of the expanded vectors (copies of
an entry are tied with each other in both x and y), which is what resampling images of an RSM with
replacement produces once self-pairs are dropped.

The counting kernel is scipy's compiled ``scipy.stats._stats._kendall_dis`` (the one
``scipy.stats.kendalltau`` itself uses; rsatoolbox's τ_a uses it too). It is private API, so it is
checked against a brute-force count on first use; if it is missing or wrong, a pure-numpy
merge-count of the same quantity is used instead (exact, about 10× slower).
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

import numpy as np

from neurolp.errors import InputError

__all__ = ["kendall_tau", "kendall_tau_matrix", "RankedVectors", "tau_pairs", "kernel_backend",
           "dense_ranks"]

_KERNEL = None          # callable(xs_sorted_labels: intp, ys: intp>=1) -> int discordant pairs
_KERNEL_NAME = None


# ------------------------------------------------------------------------------------------------
# discordant-pair counting kernels
# ------------------------------------------------------------------------------------------------

def _dis_numpy(xs: np.ndarray, ys: np.ndarray) -> int:
    """Pairs ``j < i`` with ``xs[j] < xs[i]`` and ``ys[j] > ys[i]``; ``xs`` must be non-decreasing.

    Pure numpy: sort by (xs, ys) so that x-ties cannot form inversions, then count strict
    inversions of ``ys`` with a bottom-up merge (one batched ``searchsorted`` per level).
    """
    n = len(ys)
    if n < 2:
        return 0
    order = np.lexsort((ys, xs))
    a = ys[order].astype(np.int64)
    size = 1 << (n - 1).bit_length()
    top = int(a.max()) + 1
    if size > n:  # padding larger than every value, increasing: creates no inversion
        a = np.concatenate([a, top + np.arange(size - n, dtype=np.int64)])
    big = int(a.max()) + 1
    total = 0
    s = 1
    while s < size:
        nb = size // (2 * s)
        blocks = a.reshape(nb, 2, s)
        left, right = blocks[:, 0, :], blocks[:, 1, :]
        offs = (np.arange(nb, dtype=np.int64) * big)[:, None]
        # number of left elements <= r, for every r of the right half (left halves are sorted)
        le = np.searchsorted((left + offs).ravel(), (right + offs).ravel(), side="right")
        le = le.reshape(nb, s) - (np.arange(nb) * s)[:, None]
        total += int((s - le).sum())
        a = np.sort(blocks.reshape(nb, 2 * s), axis=1).ravel()
        s *= 2
    return total


def _brute_dis(xs, ys) -> int:
    xs = np.asarray(xs)
    ys = np.asarray(ys)
    dx = np.sign(xs[None, :] - xs[:, None])
    dy = np.sign(ys[None, :] - ys[:, None])
    return int(((dx * dy) < 0).sum() // 2)


def _select_kernel():
    global _KERNEL, _KERNEL_NAME
    if _KERNEL is not None:
        return _KERNEL
    forced = os.environ.get("NEUROLP_KENDALL_BACKEND", "").strip().lower()
    kernel, name = _dis_numpy, "numpy"
    if forced != "numpy":
        try:
            from scipy.stats._stats import _kendall_dis  # private, see module docstring

            rng = np.random.default_rng(12345)
            ok = True
            for n in (1, 2, 7, 40, 257):
                xs = np.sort(rng.integers(1, 6, n)).astype(np.intp)
                ys = rng.integers(1, 9, n).astype(np.intp)
                if int(_kendall_dis(xs, ys)) != _brute_dis(xs, ys):
                    ok = False
                    break
            if ok:
                kernel, name = (lambda xs, ys: int(_kendall_dis(xs, ys))), "scipy-kendall-dis"
        except Exception:  # noqa: BLE001 - any failure means: use the numpy kernel
            pass
    _KERNEL, _KERNEL_NAME = kernel, name
    return kernel


def kernel_backend() -> str:
    """Which discordance counter is in use: ``"scipy-kendall-dis"`` (fast) or ``"numpy"``."""
    _select_kernel()
    return _KERNEL_NAME


def _set_backend(name: str | None) -> None:
    """Testing hook: force ``"numpy"`` or re-detect (``None``)."""
    global _KERNEL, _KERNEL_NAME
    if name is None:
        _KERNEL = _KERNEL_NAME = None
    elif name == "numpy":
        _KERNEL, _KERNEL_NAME = _dis_numpy, "numpy"
    else:
        _KERNEL = _KERNEL_NAME = None
        _select_kernel()
        if _KERNEL_NAME != name:
            raise InputError(f"Kendall backend {name!r} is not available here (got {_KERNEL_NAME})")


# ------------------------------------------------------------------------------------------------
# precomputed ranks
# ------------------------------------------------------------------------------------------------

def dense_ranks(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(argsort with NaN last, 1-based dense ranks with NaN → 0) of each row of ``v``.

    The order among tied values is arbitrary: every consumer uses the dense ranks for ties.
    Sorting uses torch (multi-threaded), the rest is O(n).
    """
    import torch

    v = np.asarray(v, dtype=np.float64)
    nan = np.isnan(v)
    if nan.any() and np.isinf(v).any():  # NaN must sort after +inf: numpy does that
        order = np.argsort(v, axis=-1)
        sv = np.take_along_axis(v, order, axis=-1)
    else:
        t = torch.from_numpy(np.where(nan, np.inf, v) if nan.any() else np.ascontiguousarray(v))
        sv_t, order_t = torch.sort(t, dim=-1)
        order = order_t.numpy().astype(np.intp, copy=False)
        sv = sv_t.numpy()
    nan_sorted = np.take_along_axis(nan, order, axis=-1) if nan.any() else np.zeros(v.shape, bool)
    step = np.ones(sv.shape, dtype=np.intp)
    step[..., 1:] = sv[..., 1:] != sv[..., :-1]
    step[nan_sorted] = 0
    dense_sorted = np.cumsum(step, axis=-1)
    dense_sorted[nan_sorted] = 0
    dense = np.empty_like(dense_sorted)
    np.put_along_axis(dense, order, dense_sorted, axis=-1)
    return order, dense


class RankedVectors:
    """A stack of vectors ``[K, n]`` with their sort orders and dense ranks, computed once.

    Reused for every comparison (and every bootstrap sample) the vectors take part in.
    """

    def __init__(self, vectors: np.ndarray):
        v = np.asarray(vectors, dtype=np.float64)
        if v.ndim == 1:
            v = v[None, :]
        if v.ndim != 2:
            raise InputError(f"expected vectors of shape [K, n], got {v.shape}")
        self.values = v
        self.order, self.dense = dense_ranks(v)
        self.nan = np.isnan(v)
        self.any_nan = self.nan.any(axis=1)

    def __len__(self) -> int:
        return self.values.shape[0]

    @property
    def n(self) -> int:
        return self.values.shape[1]


def _tie_pairs(dense_row: np.ndarray, mult: np.ndarray) -> tuple[float, bool]:
    """(pairs tied in this vector among the expanded entries, whether distinct entries tie)."""
    w = np.bincount(dense_row, weights=mult)
    w[0] = 0.0  # NaN bucket
    N = mult.sum() - mult[dense_row == 0].sum()
    ties = (np.dot(w, w) - N) / 2.0
    distinct = np.bincount(dense_row, weights=(mult > 0).astype(np.float64))
    distinct[0] = 0.0
    return ties, bool(distinct.max(initial=0.0) > 1)


def tau_pairs(rx: RankedVectors, ry: RankedVectors, pairs: np.ndarray, *, variant: str = "b",
              mult: np.ndarray | None = None, threads: int | None = None,
              return_counts: bool = False):
    """τ for index pairs ``pairs[p] = (i, j)`` between ``rx`` row i and ``ry`` row j.

    ``mult`` (length n, non-negative integers) is the multiplicity of each entry (default 1).
    Entries that are NaN in either vector of a pair are left out of that pair. A pair with fewer
    than two entries, or with a zero denominator (a constant vector), gives NaN.
    """
    if variant not in ("a", "b"):
        raise InputError(f"Kendall variant must be 'a' or 'b', got {variant!r}")
    pairs = np.asarray(pairs, dtype=np.intp).reshape(-1, 2)
    n = rx.n
    if ry.n != n:
        raise InputError(f"vectors differ in length: {rx.n} vs {ry.n}")
    if mult is None:
        mult = np.ones(n, dtype=np.int64)
    else:
        mult = np.asarray(mult)
        if mult.shape != (n,):
            raise InputError(f"multiplicities must have shape ({n},), got {mult.shape}")
        if np.any(mult < 0) or not np.all(np.equal(np.mod(mult, 1), 0)):
            raise InputError("multiplicities must be non-negative integers")
        mult = mult.astype(np.int64)
    kernel = _select_kernel()
    multf = mult.astype(np.float64)

    # per-vector quantities (computed once per row involved)
    xs_cache: dict[int, tuple] = {}
    ytie_cache: dict[int, tuple] = {}

    def prep(dense_row, order_row, m):
        reps = m[order_row]
        keep = reps > 0
        expanded = np.repeat(order_row[keep], reps[keep])
        labels = np.ascontiguousarray(dense_row[expanded], dtype=np.intp)
        mf = m.astype(np.float64)
        ties, distinct = _tie_pairs(dense_row, mf)
        n3_copies = (np.dot(mf, mf) - len(expanded)) / 2.0  # copies of one entry tie jointly
        return expanded, labels, ties, distinct, m, n3_copies

    for i in np.unique(pairs[:, 0]):
        i = int(i)
        xs_cache[i] = prep(rx.dense[i], rx.order[i], np.where(rx.nan[i], 0, mult))
    ylab_cache: dict[int, np.ndarray] = {}
    for j in np.unique(pairs[:, 1]):
        j = int(j)
        my = np.where(ry.nan[j], 0.0, multf)
        ytie_cache[j] = _tie_pairs(ry.dense[j], my)
        # relabel y's dense ranks among the entries present: a smaller Fenwick tree, same counts
        present = np.bincount(ry.dense[j], weights=my) > 0
        present[0] = False
        ylab_cache[j] = np.cumsum(present).astype(np.intp)[ry.dense[j]]

    def one(p):
        i, j = int(pairs[p, 0]), int(pairs[p, 1])
        if ry.any_nan[j] or rx.any_nan[i]:
            # entries valid in both vectors only (slow path, rare): the cached tie counts of one
            # vector would include entries the other vector's NaNs leave out
            m = np.where(rx.nan[i] | ry.nan[j], 0, mult)
            expanded, labels, n1, x_distinct_ties, m, n3 = prep(rx.dense[i], rx.order[i], m)
            n2, y_distinct_ties = _tie_pairs(ry.dense[j], m.astype(np.float64))
        else:
            expanded, labels, n1, x_distinct_ties, m, n3 = xs_cache[i]
            n2, y_distinct_ties = ytie_cache[j]
        N = float(len(expanded))
        if N < 2:
            return np.nan, 0.0, 0.0, 0.0, 0.0, 0.0
        ys = ry.dense[j][expanded] if (ry.any_nan[j] or rx.any_nan[i]) else ylab_cache[j][expanded]
        nd = float(kernel(labels, ys))
        if x_distinct_ties and y_distinct_ties:
            # joint ties between distinct entries: group by (x rank, y rank)
            keep = m > 0
            key = rx.dense[i][keep].astype(np.int64) * (n + 1) + ry.dense[j][keep]
            _, inv = np.unique(key, return_inverse=True)
            w = np.bincount(inv, weights=m[keep].astype(np.float64))
            n3 = (np.dot(w, w) - N) / 2.0
        n0 = N * (N - 1) / 2.0
        s = n0 - n1 - n2 + n3 - 2.0 * nd
        if variant == "a":
            tau = s / n0
        else:
            den = (n0 - n1) * (n0 - n2)
            tau = s / math.sqrt(den) if den > 0 else np.nan
        if not np.isnan(tau):
            tau = min(1.0, max(-1.0, tau))
        return tau, n0, n1, n2, n3, nd

    P = len(pairs)
    nthreads = _n_threads(threads, P)
    if nthreads <= 1:
        results = [one(p) for p in range(P)]
    else:
        chunks = np.array_split(np.arange(P), nthreads)
        parts = list(_pool(nthreads).map(lambda idx: [one(p) for p in idx], chunks))
        results = [r for part in parts for r in part]
    out = np.array([r[0] for r in results], dtype=np.float64)
    if return_counts:
        counts = np.array([r[1:] for r in results], dtype=np.float64).reshape(P, 5)
        return out, counts
    return out


_POOLS: dict[int, ThreadPoolExecutor] = {}


def _pool(n: int) -> ThreadPoolExecutor:
    """A process-wide pool per thread count (threads are reused across calls)."""
    pool = _POOLS.get(n)
    if pool is None:
        pool = _POOLS[n] = ThreadPoolExecutor(n, thread_name_prefix="neurolp-tau")
    return pool


def _n_threads(threads: int | None, n_pairs: int) -> int:
    if threads is None:
        env = os.environ.get("NEUROLP_THREADS")
        threads = int(env) if env else (os.cpu_count() or 1)
    return max(1, min(int(threads), n_pairs // 8 if n_pairs >= 16 else 1))


# ------------------------------------------------------------------------------------------------
# public conveniences
# ------------------------------------------------------------------------------------------------

def kendall_tau(x, y, variant: str = "b", *, threads: int | None = None) -> np.ndarray | float:
    """Kendall's τ between ``x`` and ``y`` along the last axis, batched with broadcasting.

    ``x`` and ``y`` are ``[..., n]`` arrays whose leading dimensions broadcast (e.g. one model
    RSM vector ``[n]`` against ten mouse RSM vectors ``[10, n]``). ``variant="b"`` equals
    ``scipy.stats.kendalltau(x, y).statistic``; ``variant="a"`` equals rsatoolbox's ``tau-a``.
    Entries where either value is NaN are left out of that pair. Returns a float for 1-D inputs.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape[-1] != y.shape[-1]:
        raise InputError(f"x and y differ in length along the last axis: {x.shape} vs {y.shape}")
    lead = np.broadcast_shapes(x.shape[:-1], y.shape[:-1])
    n = x.shape[-1]
    xf = x.reshape(-1, n)
    yf = y.reshape(-1, n)
    ix = np.broadcast_to(np.arange(len(xf)).reshape(x.shape[:-1]), lead).ravel()
    iy = np.broadcast_to(np.arange(len(yf)).reshape(y.shape[:-1]), lead).ravel()
    tau = tau_pairs(RankedVectors(xf), RankedVectors(yf), np.stack([ix, iy], 1), variant=variant,
                    threads=threads)
    if not lead:
        return float(tau[0])
    return tau.reshape(lead)


def kendall_tau_matrix(X, Y, variant: str = "b", *, mult=None, threads: int | None = None,
                       ranked: Sequence[RankedVectors] | None = None) -> np.ndarray:
    """All-pairs τ ``[len(X), len(Y)]`` between the rows of ``X`` and the rows of ``Y``."""
    rx, ry = ranked if ranked is not None else (RankedVectors(X), RankedVectors(Y))
    ii, jj = np.meshgrid(np.arange(len(rx)), np.arange(len(ry)), indexing="ij")
    tau = tau_pairs(rx, ry, np.stack([ii.ravel(), jj.ravel()], 1), variant=variant, mult=mult,
                    threads=threads)
    return tau.reshape(len(rx), len(ry))
