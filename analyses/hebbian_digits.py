"""Hebbian (Krotov–Hopfield) layers + supervised head vs the same layers trained by SGD, on digits,
and vs the same head on the untrained N(0, 1) filters (``rand``: the Hebbian runs with a 1e-12
learning rate for one epoch, so only the input BatchNorms' running statistics are learnt).

Reads the ``metrics.json`` of ``neurolp hebbian train`` runs laid out as ``ROOT/{hebb,sgd,rand}{n}_s{seed}``
and prints test accuracy (mean ± sd over seeds) per model; writes ``hebbian_digits.csv`` next to
the runs and ``figures/hebbian_digits.png``.

    for s in 0 1 2; do for n in 1 2; do
      neurolp hebbian train --layers $n --dataset digits --preset quick --seed $s --out runs/hebbian_digits/hebb${n}_s$s
      neurolp hebbian train --layers $n --supervised --dataset digits --preset quick --seed $s --out runs/hebbian_digits/sgd${n}_s$s
      neurolp hebbian train --layers $n --dataset digits --preset quick --seed $s --hebb-epochs 1 \
          --conv-lr 1e-12 --linear-lr 1e-12 --out runs/hebbian_digits/rand${n}_s$s
    done; done
    python analyses/hebbian_digits.py runs/hebbian_digits
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from neurolp.utils.io import save_figure, write_csv  # noqa: E402


def collect(root: Path) -> pd.DataFrame:
    rows = []
    for f in sorted(root.glob("*/metrics.json")):
        m = re.fullmatch(r"(hebb|sgd|rand)(\d)_s(\d+)", f.parent.name)
        if not m:
            continue
        d = json.loads(f.read_text())
        rows.append({"model": f"{'hebb' if m[1] == 'rand' else m[1]}{m[2]}-amato", "kind": m[1], "layers": int(m[2]), "seed": int(m[3]),
                     "test_acc": d["test_acc"], "val_acc": d["val_acc"], "best_epoch": d["best_epoch"],
                     "convergence_L1": d.get("layer1_convergence"), "convergence_L2": d.get("layer2_convergence"),
                     "seconds": d["unsupervised_seconds"] + d["supervised_seconds"]})
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    root = Path(argv[0] if argv else "runs/hebbian_digits")
    df = collect(root)
    if df.empty:
        print(f"no runs in {root}")
        return 1
    write_csv(df, root / "hebbian_digits.csv")
    summ = df.groupby(["layers", "kind"]).agg(n=("seed", "size"), mean=("test_acc", "mean"), sd=("test_acc", "std"),
                                              conv_L1=("convergence_L1", "median"),
                                              conv_L2=("convergence_L2", "median"),
                                              seconds=("seconds", "median")).reset_index()
    print(summ.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    colors = {"rand": "#bdc3c7", "hebb": "#c0392b", "sgd": "#2c3e50"}
    labels = {"rand": "untrained N(0,1) filters + head", "hebb": "Hebbian layers + head",
              "sgd": "all layers by SGD (control)"}
    kinds = [k for k in ("rand", "hebb", "sgd") if k in set(df["kind"])]
    w = 0.8 / len(kinds)
    for i, kind in enumerate(kinds):
        s = summ[summ["kind"] == kind]
        off = (i - (len(kinds) - 1) / 2) * w
        ax.bar(s["layers"].to_numpy() + off, s["mean"], w, yerr=s["sd"].fillna(0), color=colors[kind],
               label=labels[kind], capsize=3)
        pts = df[df["kind"] == kind]
        ax.scatter(pts["layers"] + off, pts["test_acc"], color="white", edgecolor="k", s=14, zorder=3)
    ax.set_xticks(sorted(df["layers"].unique()))
    ax.set_xlabel("layers of the Amato network")
    ax.set_ylabel("test accuracy (%)")
    lo = max(0.0, float(df["test_acc"].min()) - 5)
    ax.set_ylim(lo, 100.5)
    ax.set_title("digits (8×8 → 32×32): Hebbian features vs SGD")
    ax.legend(frameon=False, loc="upper left", fontsize=7.5)
    fig.tight_layout()
    out = save_figure(fig, Path("figures/hebbian_digits.png"), dpi=150)
    print(f"wrote {root / 'hebbian_digits.csv'} and {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
