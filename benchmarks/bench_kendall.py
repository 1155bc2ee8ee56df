"""Kendall's τ per RSM pair: neurolp (batched, precomputed ranks) vs scipy and rsatoolbox.

Pairs are RSM lower triangles of 118 images (6,903 entries): ``--layers`` model-like vectors against
``--mice`` brain-like vectors (one per mouse × area in the default pipeline), all pairs. neurolp
runs on one thread and on all CPUs (its default); scipy and rsatoolbox loop over pairs on one
thread. The implementations are timed in alternating rounds (A, B, C, A, B, C, ...) and the median
time per pair is reported with the ratios; values are checked to be identical (τ_b vs scipy, τ_a
vs rsatoolbox).

    python benchmarks/bench_kendall.py [--layers 20] [--mice 60] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import warnings

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", type=int, default=20)
    ap.add_argument("--mice", type=int, default=60,
                    help="brain RSMs (the default pipeline: one per mouse and area, ~60)")
    ap.add_argument("--images", type=int, default=118)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="neurolp threads for the multi-thread "
                    "rows (0: all CPUs, the library default)")
    ap.add_argument("--ref-pairs", type=int, default=40,
                    help="pairs timed per round for scipy/rsatoolbox (they loop in Python)")
    args = ap.parse_args(argv)

    import scipy
    import scipy.stats as ss

    from neurolp.rsa.kendall import RankedVectors, kendall_tau_matrix, kernel_backend

    rng = np.random.default_rng(0)
    n = args.images * (args.images - 1) // 2
    truth = rng.normal(size=n)
    X = truth + 3.0 * rng.normal(size=(args.layers, n))     # τ ≈ 0.1–0.3, like model vs brain
    Y = truth + 2.0 * rng.normal(size=(args.mice, n))
    P = args.layers * args.mice
    ref_idx = [(i % args.layers, (i * 7) % args.mice) for i in range(min(args.ref_pairs, P))]

    try:
        import rsatoolbox  # noqa: F401
        from rsatoolbox.rdm import RDMs, compare
        have_rsa = True
    except ImportError:
        have_rsa = False

    nthreads = args.threads or os.cpu_count() or 1

    def run_neurolp(variant, threads, ranked=None):
        t = time.perf_counter()
        out = kendall_tau_matrix(X, Y, variant, threads=threads, ranked=ranked)
        return (time.perf_counter() - t) / P, out

    def run_scipy():
        t = time.perf_counter()
        vals = [ss.kendalltau(X[i], Y[j])[0] for i, j in ref_idx]
        return (time.perf_counter() - t) / len(ref_idx), vals

    def run_rsa(method):
        rx = [RDMs(X[i][None]) for i, _ in ref_idx]
        ry = [RDMs(Y[j][None]) for _, j in ref_idx]
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            vals = [compare(a, b, method=method)[0, 0] for a, b in zip(rx, ry)]
        return (time.perf_counter() - t) / len(ref_idx), vals

    rows = ["neurolp τ_b, 1 thread, incl. ranking", "neurolp τ_b, 1 thread, ranks reused",
            f"neurolp τ_b, {nthreads} threads, incl. ranking",
            f"neurolp τ_b, {nthreads} threads, ranks reused",
            f"neurolp τ_a, {nthreads} threads, incl. ranking", "scipy.stats.kendalltau",
            "rsatoolbox tau-a", "rsatoolbox kendall"]
    times = {k: [] for k in rows}
    checks = {}
    for _ in range(args.rounds):
        ranked = (RankedVectors(X), RankedVectors(Y))
        t, ours_b = run_neurolp("b", 1)
        times[rows[0]].append(t)
        times[rows[1]].append(run_neurolp("b", 1, ranked)[0])
        times[rows[2]].append(run_neurolp("b", nthreads)[0])
        times[rows[3]].append(run_neurolp("b", nthreads, ranked)[0])
        t, ours_a = run_neurolp("a", nthreads)
        times[rows[4]].append(t)
        t, ref = run_scipy()
        times["scipy.stats.kendalltau"].append(t)
        checks["τ_b vs scipy (max |diff|)"] = max(abs(ours_b[i, j] - r) for (i, j), r in zip(ref_idx, ref))
        if have_rsa:
            t, ra = run_rsa("tau-a")
            times["rsatoolbox tau-a"].append(t)
            checks["τ_a vs rsatoolbox (max |diff|)"] = max(abs(ours_a[i, j] - r)
                                                          for (i, j), r in zip(ref_idx, ra))
            t, rb = run_rsa("kendall")
            times["rsatoolbox kendall"].append(t)

    print(f"Kendall τ per pair, {n} entries ({args.images} images), {P} pairs "
          f"({args.layers} × {args.mice}); {args.rounds} alternating rounds, median")
    print(f"python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}, neurolp kernel {kernel_backend()}")
    med = {k: statistics.median(v) for k, v in times.items() if v}
    sc = med["scipy.stats.kendalltau"]
    for k, v in med.items():
        print(f"  {k:42s} {v * 1e6:8.1f} µs/pair   scipy/this = {sc / v:5.1f}")
    if have_rsa:
        print(f"rsatoolbox tau-a / neurolp τ_a ({nthreads} threads, incl. ranking): "
              f"{med['rsatoolbox tau-a'] / med[rows[4]]:.1f}×; rsatoolbox kendall / neurolp τ_b: "
              f"{med['rsatoolbox kendall'] / med[rows[2]]:.1f}×")
    for k, v in checks.items():
        print(f"  {k}: {v:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
