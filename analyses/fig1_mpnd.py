#!/usr/bin/env python
"""Fig. 1f–g of Kwon et al. (ICLR 2025) from the tidy outputs of ``neurolp fit-mpnd``.

Usage::

    python analyses/fig1_mpnd.py [RUN_DIR] [--out figures/fig1_mpnd.png]

RUN_DIR (default ``runs/fit-mpnd``) holds ``mpnd_fits.csv``, ``mpnd_pmfs.csv``, ``mpnd_stats.csv``,
``mpnd_skipped.csv`` and ``run.json``. If it has no ``mpnd_fits.csv`` yet, the default command
(embedded Rossi data + untrained AlexNet, noise and images; trained conditions skipped unless the
weights are in the torch hub cache) is run into it first. Only reads CSVs otherwise: no refitting.
When the run has them (``--fit paper``, ``--sensitivity``), the p-trajectory and p-vs-bin-width
figures are drawn next to ``--out`` as ``mpnd_trajectory.png`` and ``mpnd_sensitivity.png``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Draw Fig. 1f–g from a fit-mpnd run folder")
    ap.add_argument("run_dir", nargs="?", default=str(REPO / "runs" / "fit-mpnd"))
    ap.add_argument("--out", default=str(REPO / "figures" / "fig1_mpnd.png"))
    args = ap.parse_args(argv)

    import pandas as pd

    from neurolp.cli import main as cli
    from neurolp.cli.fit_mpnd import provenance
    from neurolp.rf.plots import plot_fig1, plot_sensitivity, plot_trajectory
    from neurolp.utils.io import save_figure

    run = Path(args.run_dir)
    if not (run / "mpnd_fits.csv").is_file():
        print(f"{run} has no mpnd_fits.csv: running `neurolp fit-mpnd --out {run}` first", file=sys.stderr)
        rc = cli(["fit-mpnd", "--out", str(run), "--no-figure"])
        if rc:
            return rc
    fits = pd.read_csv(run / "mpnd_fits.csv")
    pmfs = pd.read_csv(run / "mpnd_pmfs.csv")
    # "n/a" (an untestable pair) is a significance label here, not a missing value
    stats = pd.read_csv(run / "mpnd_stats.csv", keep_default_na=False,
                        na_values={c: [""] for c in ("p", "p_holm", "t", "df", "statistic", "effect")})
    if "primary" in stats:  # one test per pair in the figure: the primary (rank) test
        stats = stats[stats["primary"].astype(str) == "True"]
    skipped_file = run / "mpnd_skipped.csv"
    skipped = pd.read_csv(skipped_file) if skipped_file.is_file() and skipped_file.stat().st_size else None
    config = json.loads((run / "run.json").read_text())["config"]
    footer = f"analyses/fig1_mpnd.py from {run.name}/mpnd_fits.csv — " + provenance(config)
    fig = plot_fig1(fits, pmfs, stats, skipped, order=config["conditions"], p_max=config["p_max"], footer=footer)
    out = save_figure(fig, args.out, dpi=160)
    print(f"wrote {out}")
    if (run / "mpnd_trajectory.csv").is_file():
        traj = pd.read_csv(run / "mpnd_trajectory.csv")
        fig = plot_trajectory(traj, fits, order=config["conditions"], p_max=config["p_max"], footer=footer)
        print(f"wrote {save_figure(fig, Path(args.out).with_name('mpnd_trajectory.png'), dpi=160)}")
    if (run / "mpnd_sensitivity.csv").is_file():
        sens = pd.read_csv(run / "mpnd_sensitivity.csv")
        fig = plot_sensitivity(sens, order=config["conditions"], footer=footer)
        print(f"wrote {save_figure(fig, Path(args.out).with_name('mpnd_sensitivity.png'), dpi=160)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
