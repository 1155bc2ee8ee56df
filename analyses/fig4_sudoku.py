#!/usr/bin/env python
"""Fig. 4b of Kwon et al. (ICLR 2025): Sudoku test curves of several SudokuCNN variants.

Reads ``metrics.csv`` (one row per epoch) and ``config.json`` of each ``neurolp sudoku train``
run folder and draws, per variant, the held-out loss and row / column / box / whole-puzzle
validity (plus blank-cell accuracy) against the epoch. Also writes ``fig4_sudoku_curves.csv``
(tidy: variant, epoch, metric, value) and ``fig4_sudoku_final.csv`` (the selected epoch of each
run, with the row/column/box balance: box − mean(row, column)). Only reads CSVs.

    python analyses/fig4_sudoku.py RUN_DIR [RUN_DIR ...] [--out figures/fig4_sudoku.png]

To produce the inputs (quick preset, about 15 min per variant on 2 CPU cores)::

    for v in base large lp2 lp16 lp256f; do
        neurolp sudoku train --variant $v --generate 30000 --preset quick --out runs/sudoku_$v
    done
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

METRICS = ("loss", "blank_accuracy", "row_validity", "column_validity", "box_validity",
           "puzzle_validity", "iterative_solved")
ORDER = ["base", "large", "lp2", "lp16", "lp256f"]


def load_runs(run_dirs):
    import pandas as pd

    histories, finals = {}, []
    for d in map(Path, run_dirs):
        if not (d / "metrics.csv").is_file() or not (d / "config.json").is_file():
            raise SystemExit(f"{d} is not a finished `neurolp sudoku train` run folder (no metrics.csv "
                             "or config.json)")
        cfg = json.loads((d / "config.json").read_text())
        h = pd.read_csv(d / "metrics.csv")
        name = cfg["variant"]
        if name in histories:
            name = f"{name} ({d.name})"
        histories[name] = h
        summary = json.loads((d / "summary.json").read_text()) if (d / "summary.json").is_file() else {}
        best = summary.get("best_epoch") or int(h["epoch"].iloc[-1])
        row = h[h["epoch"] == best].iloc[0]
        finals.append({"variant": name, "run": str(d), "depth": cfg["depth"], "width": cfg["width"],
                       "epochs": int(h["epoch"].max()), "selected_epoch": int(best),
                       **{m: row.get(m) for m in ("loss", "cell_accuracy", *METRICS[1:], "oneshot_solved")},
                       "box_minus_rowcol": row["box_validity"] - (row["row_validity"]
                                                                  + row["column_validity"]) / 2,
                       "train_time_s": summary.get("train_time_s")})
    order = sorted(histories, key=lambda n: ORDER.index(n) if n in ORDER else len(ORDER))
    return {n: histories[n] for n in order}, pd.DataFrame(finals)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Draw Fig. 4b from neurolp sudoku train run folders")
    ap.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    ap.add_argument("--out", default="figures/fig4_sudoku.png")
    args = ap.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from neurolp.utils import save_figure, write_csv

    histories, finals = load_runs(args.run_dirs)
    fig, grid = plt.subplots(2, 4, figsize=(12.5, 6.0))
    axes = grid.ravel()[:len(METRICS)]
    legend_ax = grid.ravel()[-1]
    colors = {"base": "tab:blue", "large": "tab:gray", "lp2": "tab:red", "lp16": "tab:purple",
              "lp256f": "tab:green"}
    for name, h in histories.items():
        for ax, m in zip(axes, METRICS):
            if m in h and h[m].notna().any():
                ax.plot(h["epoch"], h[m], "-o", ms=3, label=name, color=colors.get(name))
    for ax, m in zip(axes, METRICS):
        ax.set_title(m.replace("_", " "), fontsize=9)
        ax.set_xlabel("epoch")
    legend_ax.axis("off")
    legend_ax.legend(*axes[0].get_legend_handles_labels(), loc="center", fontsize=9, title="variant")
    fig.suptitle("Sudoku held-out curves per variant (Fig. 4b)", fontsize=11)
    fig.tight_layout()
    out = Path(args.out)
    save_figure(fig, out, dpi=150)
    tidy = pd.concat([h.assign(variant=n).melt(id_vars=["variant", "epoch"], value_vars=[
        m for m in METRICS if m in h], var_name="metric") for n, h in histories.items()],
        ignore_index=True)
    write_csv(tidy, out.with_name(out.stem + "_curves.csv"))
    write_csv(finals, out.with_name(out.stem + "_final.csv"))
    with pd.option_context("display.width", 160, "display.max_columns", 30):
        print(finals.drop(columns=["run"]).to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
