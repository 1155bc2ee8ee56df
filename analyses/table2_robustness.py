"""Table 2: CIFAR-100-C robustness wins per architecture, from CIFAR-100 checkpoints.

Every CIFAR-100 checkpoint in the given folders/files (default: the checkpoint store) is evaluated
on every corruption in --data-dir/CIFAR-100-C at --severity (the paper: 1); seeds are averaged and
each corruption is won by the variant with the highest mean accuracy (ties count for each).
Written into --out (default figures/table2): cifar100c.csv (model × seed × corruption × severity
accuracy), table2.csv and table2.md (wins per arch × variant with a "Win Counts" row), run.json.

    python analyses/table2_robustness.py --data-dir ~/data --severity 1
"""

from __future__ import annotations

import argparse
import sys


def _markdown(wins) -> str:
    head = ["Robustness", *map(str, wins.columns)]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---|" * len(wins.columns)]
    for arch, row in wins.iterrows():
        best = row.max()
        cells = [f"**{v}**" if v == best and v > 0 else str(v) for v in row]
        lines.append(f"| {arch} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sources", nargs="*", help="checkpoint files or folders (default: the store)")
    p.add_argument("--data-dir", help="folder holding CIFAR-100-C/")
    p.add_argument("--severity", type=int, default=1)
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--out", default="figures/table2")
    args = p.parse_args(argv)

    import pandas as pd

    from neurolp.errors import NeurolpError
    from neurolp.train.evaluate import corruption_wins, evaluate_corruptions
    from neurolp.train.tables import collect_runs, variant_label
    from neurolp.utils import atomic_write_text, staged_output, write_csv, write_run_record

    try:
        runs = collect_runs(args.sources or None)
        runs = runs[runs["dataset"] == "cifar100"]
        if runs.empty:
            print("no CIFAR-100 checkpoints found", file=sys.stderr)
            return 2
        frames = []
        for r in runs.itertuples():
            df = evaluate_corruptions(r.path, args.data_dir, severities=[args.severity],
                                      device=args.device, batch_size=args.batch_size)
            frames.append(df.assign(arch=r.arch, variant=variant_label(r.model)))
        acc = pd.concat(frames, ignore_index=True)
        wins = corruption_wins(acc, severity=args.severity)
        with staged_output(args.out) as stage:
            write_csv(acc, stage / "cifar100c.csv")
            write_csv(wins.reset_index(), stage / "table2.csv")
            atomic_write_text(stage / "table2.md", _markdown(wins))
            write_run_record(stage, "analyses/table2_robustness.py", vars(args),
                             {"missing_corruptions": frames[0].attrs.get("missing", [])})
    except NeurolpError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(wins.to_string())
    print(f"wrote {args.out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
