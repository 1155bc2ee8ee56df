"""Table 1 (and Table 9): top-1 accuracy per architecture × variant over seeds, from checkpoints.

Reads the metadata of every checkpoint in the given folders/files (default: the checkpoint store),
keeps one row per trained model (a run's best.safetensors and its published copy count once), and
writes, into --out (default figures/table1):

  runs.csv     one row per checkpoint: model, arch, variant, dataset, seed, val_acc, test_acc, path
  table1.csv   mean ± std (ddof 1) per dataset × arch × variant, Welch's t-test against base
               (t, p, stars as in the paper), difference to base, rank
  table1.md    the Table-1 layout in Markdown;  table1.tex  the same in LaTeX
  run.json     command, arguments, versions, git commit

The reported metric is the test accuracy of the epoch selected on the validation split
(--metric val_acc shows the selection metric itself).

    python analyses/table1_classification.py                       # the store
    python analyses/table1_classification.py runs/ --dataset cifar100 --out figures/table1
"""

from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sources", nargs="*", help="checkpoint files or folders (default: the store)")
    p.add_argument("--dataset", help="only this dataset")
    p.add_argument("--metric", default="test_acc", choices=["test_acc", "val_acc"])
    p.add_argument("--baseline", default="base", help="variant the t-tests compare against")
    p.add_argument("--out", default="figures/table1")
    args = p.parse_args(argv)

    from neurolp.errors import NeurolpError
    from neurolp.train.tables import classification_table, collect_runs, format_table
    from neurolp.utils import atomic_write_text, staged_output, write_csv, write_run_record

    try:
        runs = collect_runs(args.sources or None)
        if args.dataset:
            runs = runs[runs["dataset"] == args.dataset]
        if runs.empty:
            print("no checkpoints found; train some with `neurolp train` first", file=sys.stderr)
            return 2
        table = classification_table(runs, metric=args.metric, baseline=args.baseline)
        md, tex = format_table(table, "markdown"), format_table(table, "latex")
        with staged_output(args.out) as stage:
            write_csv(runs, stage / "runs.csv")
            write_csv(table, stage / "table1.csv")
            atomic_write_text(stage / "table1.md", md)
            atomic_write_text(stage / "table1.tex", tex)
            write_run_record(stage, "analyses/table1_classification.py", vars(args),
                             {"n_checkpoints": len(runs)})
    except NeurolpError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(md)
    lonely = table[table["n"] < 2]
    if len(lonely):
        print(f"note: {len(lonely)} cell(s) have a single seed (no std, no t-test)")
    print(f"wrote {args.out}/{{runs.csv, table1.csv, table1.md, table1.tex, run.json}}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
