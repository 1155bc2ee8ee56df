#!/usr/bin/env python
"""Fig. 6b of Kwon et al. (ICLR 2025): the max SSM of several models, with t-tests.

Reads the tidy outputs of one or more ``neurolp rsa`` runs (``rsa_max.csv`` and
``rsa_samples.csv`` in each RUN_DIR; a run may hold several models) and draws, per model, the
maximum noise-normalised SSM over layers and areas with its bootstrap CI (per-mouse pipeline) and the
per-mouse (or, for the lpconv preset, per-split) scores at that layer and area, with pairwise
Welch t-tests, Holm-corrected (the paper used Student's two-sample t-test without correction; Welch
does not assume equal variances). Only reads CSVs: nothing is recomputed.

    python analyses/fig6_rsa.py RUN_DIR [RUN_DIR ...] [--order MODEL ...]
        [--out figures/fig6b_rsa_max.png]

Writes the figure and, next to it, ``fig6b_rsa_max_tests.csv``. To produce the inputs::

    neurolp rsa --model base-resnet18 lp2-resnet18 lp4-resnet18 lp8-resnet18 lp16-resnet18 \\
        lp256f-resnet18 --allen-cache ~/allen --out runs/rsa_fig6
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def load_runs(run_dirs):
    import pandas as pd

    maxima, samples = [], []
    for d in map(Path, run_dirs):
        for name in ("rsa_max.csv", "rsa_samples.csv"):
            if not (d / name).is_file():
                raise SystemExit(f"{d} has no {name}: run `neurolp rsa ... --out {d}` first")
        maxima.append(pd.read_csv(d / "rsa_max.csv", dtype={"layer": str, "best_layer": str}))
        samples.append(pd.read_csv(d / "rsa_samples.csv", dtype={"layer": str, "group": str}))
    maxima = pd.concat(maxima, ignore_index=True)
    samples = pd.concat(samples, ignore_index=True)
    dup = maxima[maxima["area"] == "all"]["model"].duplicated()
    if dup.any():
        raise SystemExit(f"model(s) {sorted(set(maxima[maxima['area'] == 'all']['model'][dup]))} "
                         "appear in several runs; pass each model once")
    return maxima, samples


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Draw Fig. 6b from neurolp rsa run folders")
    ap.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    ap.add_argument("--order", nargs="+", metavar="MODEL", help="models to show, in this order")
    ap.add_argument("--out", default=str(REPO / "figures" / "fig6b_rsa_max.png"))
    args = ap.parse_args(argv)

    from neurolp.rsa.plots import max_comparison, plot_max_comparison
    from neurolp.utils.io import write_csv

    maxima, samples = load_runs(args.run_dirs)
    per, tests = max_comparison(samples, maxima, order=args.order)
    out = Path(args.out)
    plot_max_comparison(per, maxima, tests, out)
    write_csv(tests, out.with_name(out.stem + "_tests.csv"))
    top = maxima[maxima["area"] == "all"].set_index("model")
    for m in dict.fromkeys(per["model"]):
        r = top.loc[m]
        print(f"{m}: max {r['max_normalised']:.3f} at {r['best_layer']} / {r['best_area']}")
    for _, t in tests.iterrows():
        print(f"  {t['group_a']} vs {t['group_b']}: t={t['t']:.2f}, p_holm={t['p_holm']:.3g} "
              f"{t['stars']}")
    print(f"wrote {out} and {out.with_name(out.stem + '_tests.csv')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
