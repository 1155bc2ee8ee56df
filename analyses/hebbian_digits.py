"""Hebbian (Krotov–Hopfield) layers + supervised head vs the same layers trained by SGD, on digits.

Reads the ``metrics.json`` of ``neurolp hebbian train`` runs laid out as ``ROOT/{hebb,sgd}{n}_s{seed}``
and prints test accuracy (mean ± sd over seeds) per model; writes ``hebbian_digits.csv`` next to
the runs and ``figures/hebbian_digits.png``.

    for s in 0 1 2; do for n in 1 2; do
      neurolp hebbian train --layers $n --dataset digits --preset quick --seed $s --out runs/hebbian_digits/hebb${n}_s$s
      neurolp hebbian train --layers $n --supervised --dataset digits --preset quick --seed $s --out runs/hebbian_digits/sgd${n}_s$s
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


def collect(root: Path) -> pd.DataFrame:
    rows = []
    for f in sorted(root.glob("*/metrics.json")):
        m = re.fullmatch(r"(hebb|sgd)(\d)_s(\d+)", f.parent.name)
        if not m:
            continue
        d = json.loads(f.read_text())
        rows.append({"model": f"{m[1]}{m[2]}-amato", "kind": m[1], "layers": int(m[2]), "seed": int(m[3]),
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
    df.to_csv(root / "hebbian_digits.csv", index=False)
    summ = df.groupby(["layers", "kind"]).agg(n=("seed", "size"), mean=("test_acc", "mean"), sd=("test_acc", "std"),
                                              conv_L1=("convergence_L1", "median"),
                                              conv_L2=("convergence_L2", "median"),
                                              seconds=("seconds", "median")).reset_index()
    print(summ.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    colors = {"hebb": "#c0392b", "sgd": "#2c3e50"}
    labels = {"hebb": "Hebbian layers + SGD head", "sgd": "all layers by SGD (control)"}
    for i, kind in enumerate(("hebb", "sgd")):
        s = summ[summ["kind"] == kind]
        x = s["layers"].to_numpy() + (i - 0.5) * 0.35
        ax.bar(x, s["mean"], 0.35, yerr=s["sd"].fillna(0), color=colors[kind], label=labels[kind], capsize=3)
        pts = df[df["kind"] == kind]
        ax.scatter(pts["layers"] + (i - 0.5) * 0.35, pts["test_acc"], color="white", edgecolor="k", s=14, zorder=3)
    ax.set_xticks(sorted(df["layers"].unique()))
    ax.set_xlabel("layers of the Amato network")
    ax.set_ylabel("test accuracy (%)")
    lo = max(0.0, float(df["test_acc"].min()) - 5)
    ax.set_ylim(lo, 100)
    ax.set_title("digits (8×8 → 32×32): Hebbian features vs SGD")
    ax.legend(frameon=False, loc="lower left", fontsize=8)
    fig.tight_layout()
    out = Path("figures/hebbian_digits.png")
    out.parent.mkdir(exist_ok=True)
    fig.savefig(out, dpi=150)
    print(f"wrote {root / 'hebbian_digits.csv'} and {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
