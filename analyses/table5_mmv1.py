"""Table 5 (V1 activity prediction with Lp-CNNs, MMV1) from `neurolp mmv1 fit` run folders.

Reads mmv1_neurons.csv and predictions/*.npz of one or more run folders (e.g. variants fitted
in separate runs or on separate machines), prints the paper's layout next to the paper's numbers,
and writes into --out: table5_mmv1.csv (layout), table5_mmv1_long.csv (tidy), mmv1_sessions.csv,
fig_mmv1_cc.png, fig_mmv1_traces.png. `--smoothing authors` recomputes every metric from the saved
predictions with the authors' smoothing across segment joins; `--smoothing both` prints both and
their difference.

    python analyses/table5_mmv1.py runs/table5 --out figures/table5
    python analyses/table5_mmv1.py runs/a runs/b --smoothing both
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# Kwon et al. 2025, Table 5: mean (std) over n = 3 mice
PAPER = {"lp2": (0.595, 0.046, 0.0722, 0.012), "lp4": (0.571, 0.076, 0.0828, 0.021),
         "lp8": (0.572, 0.071, 0.0786, 0.017), "lp16": (0.584, 0.066, 0.0756, 0.018),
         "base": (0.585, 0.052, 0.0746, 0.016), "large": (0.577, 0.048, 0.0787, 0.013)}


def _recompute(records, across_joins: bool):
    import pandas as pd

    from neurolp.mmv1.metrics import evaluate_traces

    rows = []
    for r in records:
        ev = evaluate_traces(r["pred"], r["true"], r["segment_lengths"], across_joins=across_joins)
        ev.insert(1, "neuron_id", r["neuron_ids"])
        rows.append(ev.assign(session=r["session"], variant=r["variant"]))
    return pd.concat(rows, ignore_index=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="run folders of `neurolp mmv1 fit`")
    p.add_argument("--smoothing", choices=("as-run", "segments", "authors", "both"), default="as-run",
                   help="as-run: the metrics the runs wrote; segments/authors: recompute from predictions")
    p.add_argument("--variants", nargs="+", help="column order (default: the paper's, then the rest)")
    p.add_argument("--out", default=None, help="folder for tables and figures (default: print only)")
    args = p.parse_args(argv)

    import pandas as pd

    from neurolp.mmv1.metrics import format_table5, session_summary, table5
    from neurolp.mmv1.plots import load_predictions, plot_cc, plot_traces
    from neurolp.utils import staged_output, write_csv

    neurons, records = [], []
    for run in map(Path, args.runs):
        csv = run / "mmv1_neurons.csv"
        if not csv.is_file():
            print(f"error: {csv} not found; pass folders written by `neurolp mmv1 fit`", file=sys.stderr)
            return 2
        df = pd.read_csv(csv)
        neurons.append(df)
        records += load_predictions(run / "predictions", df)
    neurons = pd.concat(neurons, ignore_index=True).drop_duplicates(["session", "variant", "neuron"], keep="last")
    present = list(dict.fromkeys(neurons["variant"]))
    order = args.variants or [v for v in PAPER if v in present] + [v for v in present if v not in PAPER]

    tables = {}
    if args.smoothing == "as-run":
        tables["as run"] = neurons
    if args.smoothing in ("segments", "both"):
        tables["within segments"] = _recompute(records, False)
    if args.smoothing in ("authors", "both"):
        tables["across joins (authors)"] = _recompute(records, True)
    for label, df in tables.items():
        layout = format_table5(table5(session_summary(df), order))
        print(f"\nTable 5, {label} ({df['session'].nunique()} session(s)):")
        print(layout.to_string(index=False))
    if len(tables) == 2:
        a, b = (session_summary(t) for t in tables.values())
        d = a.merge(b, on=["session", "variant"], suffixes=("_segments", "_authors"))
        d["cc_diff"] = d["cc_authors"] - d["cc_segments"]
        print("\ncc(authors) − cc(within segments) per session:")
        print(d[["session", "variant", "cc_segments", "cc_authors", "cc_diff"]].to_string(index=False))
    paper = pd.DataFrame({"MMV1": ["cc", "MSE"], **{v: [f"{c:.3f} ({cs:.3f})", f"{m:.4f} ({ms:.3f})"]
                                                     for v, (c, cs, m, ms) in PAPER.items()}})
    print("\nKwon et al. 2025, Table 5 (OSF data, n = 3 mice):")
    print(paper.to_string(index=False))

    if args.out:
        df = next(iter(tables.values()))
        sessions = session_summary(df)
        tidy = table5(sessions, order)
        with staged_output(args.out) as stage:
            write_csv(format_table5(tidy), stage / "table5_mmv1.csv")
            write_csv(tidy, stage / "table5_mmv1_long.csv")
            write_csv(sessions, stage / "mmv1_sessions.csv")
            plot_cc(df, stage / "fig_mmv1_cc.png", variants=order)
            if records:
                by_key = {(r["session"], r["variant"]): r for r in records}
                for (s, v), g in df.groupby(["session", "variant"]):
                    if (s, v) in by_key:
                        by_key[(s, v)]["cc"] = g.sort_values("neuron")["cc"].to_numpy(float)
                plot_traces(list(by_key.values()), stage / "fig_mmv1_traces.png",
                            across_joins=next(iter(tables)) == "across joins (authors)")
        print(f"\nwrote {args.out}/table5_mmv1.csv, fig_mmv1_cc.png, fig_mmv1_traces.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
