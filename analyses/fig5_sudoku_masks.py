#!/usr/bin/env python
"""Fig. 5b–c, Fig. 9 and Fig. 10 of Kwon et al. (ICLR 2025) from a `neurolp sudoku analyze` folder.

Reads ``masks.csv`` (α, θ, γ, p per mask and layer), ``mask_values.csv`` (the masks) and
``ablation.csv`` (row / column / box validity vs the ablated θ range, targeted and matched random)
and writes:

* ``fig5b_sudoku_conformations.png`` — layer-wise α, θ (γ > 3) and γ (Fig. 5b);
* ``fig9_sudoku_mask_grid.png``      — 16 masks per layer (Fig. 9 / App. A.7);
* ``fig5c_sudoku_ablation.png``      — validity vs Δ for all layers / first half / second half,
  targeted (solid) vs random control (dashed) (Fig. 5c / Fig. 10);
* ``fig5_sudoku_summary.csv``        — per layer: median α, share of orientation-selective masks,
  share of those within ±20° of 90°; and the column-specific drop of the ablation
  (targeted − random, column minus the mean of row and box) per group at the largest Δ.

Only reads CSVs.

    neurolp sudoku analyze --checkpoint runs/sudoku_lp2 --out runs/sudoku_lp2_analysis
    python analyses/fig5_sudoku_masks.py runs/sudoku_lp2_analysis [--out-dir figures]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Draw Fig. 5b-c, 9, 10 from a neurolp sudoku analyze folder")
    ap.add_argument("analysis_dir")
    ap.add_argument("--out-dir", default="figures")
    ap.add_argument("--gamma-min", type=float, default=3.0,
                    help="the threshold the analysis used (labels, and the summary's selective share)")
    ap.add_argument("--suffix", default="", help="appended to the file names (e.g. _g15)")
    args = ap.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import numpy as np
    import pandas as pd

    from neurolp.sudoku.analysis import plot_ablation, plot_conformations, plot_mask_grid
    from neurolp.utils import save_figure, write_csv

    d = Path(args.analysis_dir)
    for name in ("masks.csv", "mask_values.csv", "ablation.csv"):
        if not (d / name).is_file():
            raise SystemExit(f"{d} has no {name}: run `neurolp sudoku analyze ... --out {d}` first")
    masks = pd.read_csv(d / "masks.csv")
    values = pd.read_csv(d / "mask_values.csv")
    abl = pd.read_csv(d / "ablation.csv", keep_default_na=False, na_values=[""])
    model = masks["model"].iloc[0] if "model" in masks else "model"
    out = Path(args.out_dir)
    save_figure(plot_conformations(masks, gamma_min=args.gamma_min,
                                   title=f"{model}: Lp-mask conformations per layer (Fig. 5b)"),
                out / f"fig5b_sudoku_conformations{args.suffix}.png", dpi=150)
    save_figure(plot_mask_grid(values, title=f"{model}: Lp-masks per layer (Fig. 9)"),
                out / f"fig9_sudoku_mask_grid{args.suffix}.png", dpi=150)
    center = float(abl["center"].iloc[0]) if "center" in abl else 90.0
    save_figure(plot_ablation(abl, center=center,
                              title=f"{model}: ablation of masks with γ > {args.gamma_min:g} near "
                                    f"{center:g}° vs matched random (Fig. 5c)"),
                out / f"fig5c_sudoku_ablation{args.suffix}.png", dpi=150)

    rows = []
    for i, t in masks.groupby("layer_index"):
        sel = t[t["gamma"] > args.gamma_min]
        near = np.abs(((sel["theta"] - 90 + 90) % 180) - 90) <= 20
        rows.append({"what": "layer", "layer": int(i), "median_alpha": float(t["alpha"].median()),
                     "median_p": float(t["p"].median()), "share_orientation_selective": len(sel) / len(t),
                     "share_selective_near_90": float(near.mean()) if len(sel) else np.nan})
    dmax = abl["delta"].max()
    for g in ("all", "first", "second"):
        a = abl[(abl["group"] == g) & (abl["delta"] == dmax)]
        t, r = a[a["kind"] == "targeted"], a[a["kind"] == "random"]
        if not len(t):
            continue

        def col_specific(x):
            return x["column_validity"] - (x["row_validity"] + x["box_validity"]) / 2

        rows.append({"what": "ablation", "group": g, "layers": t["layers"].iloc[0], "delta": dmax,
                     "n_ablated": int(t["n_ablated"].iloc[0]),
                     "targeted_row": float(t["row_validity"].iloc[0]),
                     "targeted_column": float(t["column_validity"].iloc[0]),
                     "targeted_box": float(t["box_validity"].iloc[0]),
                     "random_row": float(r["row_validity"].mean()) if len(r) else np.nan,
                     "random_column": float(r["column_validity"].mean()) if len(r) else np.nan,
                     "random_box": float(r["box_validity"].mean()) if len(r) else np.nan,
                     "column_specific_targeted_minus_random":
                         float(col_specific(t).iloc[0] - col_specific(r).mean()) if len(r) else np.nan})
    summary = pd.DataFrame(rows)
    write_csv(summary, out / f"fig5_sudoku_summary{args.suffix}.csv")
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(summary.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"wrote figures to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
