#!/usr/bin/env python
"""Benchmark of `neurolp fit-mpnd` and of batched MPND fitting.

Prints:

1. wall time of the default command (``neurolp fit-mpnd --quiet`` in a fresh process: embedded Rossi
   data + untrained AlexNet with 17 noise and 17 image inputs; trained conditions skipped unless
   their weights are in the torch hub cache), ``--repeats`` times;
2. a batched fit of 100 receptive fields (PMF objective, the paper's way) against the same 100 fitted
   one at a time, alternated over ``--rounds`` rounds, and their ratio; the RFs are Rossi-sized
   point clouds (60–250 points) drawn from MPNDs with p in [1.5, 8];
3. the functional-RF extraction for one 224×224 image of AlexNet Conv1 (streamed, exact).

Usage: ``python benchmarks/bench_fit_mpnd.py [--repeats 1] [--rounds 3]``. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def default_command(repeats: int) -> list[float]:
    exe = Path(sys.executable).with_name("neurolp")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "neurolp"]
    times = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            subprocess.run(cmd + ["fit-mpnd", "--out", str(Path(tmp) / "out"), "--quiet"], check=True,
                           stdout=subprocess.DEVNULL, cwd=REPO)
            times.append(time.perf_counter() - t0)
    return times


def batched_vs_single(rounds: int) -> tuple[list[float], list[float], dict]:
    import numpy as np

    from neurolp.mpnd import fit_mpnd, sample_mpnd

    rng = np.random.default_rng(0)
    rfs = [sample_mpnd(int(rng.integers(60, 250)), float(rng.uniform(1.5, 8.0)), sigma=100.0, seed=i)
           for i in range(100)]
    fit_mpnd(rfs[:2])  # warm-up (imports, first torch calls)
    batched, single = [], []
    info = {}
    for r in range(rounds):
        for which in (("batched", "single") if r % 2 == 0 else ("single", "batched")):
            t0 = time.perf_counter()
            if which == "batched":
                fits = fit_mpnd(rfs)
                batched.append(time.perf_counter() - t0)
                info = {"converged": int(fits["converged"].sum()), "iterations": int(fits["iterations"].max())}
            else:
                for rf in rfs:
                    fit_mpnd([rf])
                single.append(time.perf_counter() - t0)
    return batched, single, info


def functional_rf_time(repeats: int = 5) -> list[float]:
    import numpy as np

    from neurolp.rf.functional import functional_synapse_counts

    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 224, 224))
    w = rng.uniform(-0.05, 0.05, size=(64, 3, 11, 11))
    functional_synapse_counts(x, w)
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        functional_synapse_counts(x, w)
        out.append(time.perf_counter() - t0)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=1, help="runs of the default command")
    ap.add_argument("--rounds", type=int, default=3, help="alternated rounds of batched vs one-at-a-time")
    args = ap.parse_args(argv)
    print(f"machine: {os.cpu_count()} CPU cores; torch threads default")
    t = default_command(args.repeats)
    print(f"default `neurolp fit-mpnd` (fresh process, incl. imports, figure): "
          f"median {statistics.median(t):.1f} s over {len(t)} run(s) {[round(v, 1) for v in t]}")
    b, s, info = batched_vs_single(args.rounds)
    print(f"100 RFs, one batched fit: median {statistics.median(b):.2f} s {[round(v, 2) for v in b]} "
          f"({info['converged']}/100 converged, {info['iterations']} iterations max)")
    print(f"100 RFs, fitted one at a time: median {statistics.median(s):.2f} s {[round(v, 2) for v in s]}")
    print(f"speed-up of batching: {statistics.median(s) / statistics.median(b):.1f}×")
    f = functional_rf_time()
    print(f"functional RF of one 224×224 RGB image, AlexNet Conv1 (1.06e9 weighted inputs, streamed): "
          f"median {1000 * statistics.median(f):.0f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
