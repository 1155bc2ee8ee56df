#!/usr/bin/env python
"""Fig. 11 of Kwon et al. (ICLR 2025): SSM of every conv layer against every visual area.

Reads ``rsa_scores.csv`` of one or more ``neurolp rsa`` runs and draws one panel per area with the
score against conv-layer depth, one line per model, bootstrap CI bands when present (the paper's
layout), plus a layer × area heatmap per model. Only reads CSVs.

    python analyses/fig11_rsa_layers.py RUN_DIR [RUN_DIR ...] [--value normalised|raw]
        [--out figures/fig11_rsa_layers.png]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Draw Fig. 11 from neurolp rsa run folders")
    ap.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    ap.add_argument("--value", choices=["normalised", "raw"], default="normalised")
    ap.add_argument("--models", nargs="+", metavar="MODEL", help="models to show, in this order")
    ap.add_argument("--out", default=str(REPO / "figures" / "fig11_rsa_layers.png"))
    args = ap.parse_args(argv)

    import pandas as pd

    from neurolp.rsa.plots import plot_heatmap, plot_layer_profiles

    frames = []
    for d in map(Path, args.run_dirs):
        if not (d / "rsa_scores.csv").is_file():
            raise SystemExit(f"{d} has no rsa_scores.csv: run `neurolp rsa ... --out {d}` first")
        frames.append(pd.read_csv(d / "rsa_scores.csv", dtype={"layer": str}))
    scores = pd.concat(frames, ignore_index=True)
    out = Path(args.out)
    plot_layer_profiles(scores, out, value=args.value, models=args.models)
    written = [out]
    for m in args.models or list(dict.fromkeys(scores["model"])):
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in str(m))
        written.append(plot_heatmap(scores, out.with_name(f"{out.stem}_heatmap_{safe}.png"), model=m,
                                    value=args.value))
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
