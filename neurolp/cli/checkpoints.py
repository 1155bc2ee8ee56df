"""List the checkpoints in the store (newest first): model, dataset, input size, seed, epoch,
validation and test accuracy, and whether each file is readable.

The store is `--store`, else $NEUROLP_CHECKPOINTS, else ~/.cache/neurolp/checkpoints. Finished
`neurolp train` runs publish there; `neurolp rsa --model NAME` picks the newest match.
"""

from __future__ import annotations

NAME = "checkpoints"
HELP = "list the checkpoint store"


def add_arguments(parser) -> None:
    from neurolp.cli.options import OutFile

    parser.add_argument("--store", metavar="DIR", help="checkpoint store (default: see above)")
    parser.add_argument("--model", help="only this model name")
    parser.add_argument("--dataset", help="only this dataset")
    parser.add_argument("--all", action="store_true", help="include in-progress snapshots (kind last)")
    parser.add_argument("--csv", type=OutFile(), metavar="PATH", help="also write the table as CSV")


def check(args) -> None:
    from neurolp.models import parse_model_name
    from neurolp.train.data import DATASETS
    from neurolp.utils.checks import check_choice

    if args.model:
        args.model = str(parse_model_name(args.model))
    if args.dataset:
        check_choice(args.dataset, "--dataset", sorted(DATASETS), what="dataset")


def run(args) -> int:
    import pandas as pd

    from neurolp.train.store import default_store, list_checkpoints
    from neurolp.utils import write_csv

    store = args.store or default_store()
    df = list_checkpoints(store)
    if not args.all:
        df = df[df["kind"] != "last"]
    if args.model:
        df = df[df["model"] == args.model]
    if args.dataset:
        df = df[df["dataset"] == args.dataset]
    if args.csv:
        write_csv(df, args.csv)
    if df.empty:
        print(f"no checkpoints in {store}" + (" matching the filter" if args.model or args.dataset else "")
              + "; `neurolp train --model NAME --dataset DATASET` publishes one there")
        return 0
    shown = df.drop(columns=["arch", "variant", "num_classes"]).copy()
    shown["created"] = shown["created"].astype(str).str.slice(0, 19)
    with pd.option_context("display.width", 200, "display.max_rows", None,
                           "display.max_colwidth", 200):
        print(f"{len(df)} checkpoint(s) in {store}")
        print(shown.to_string(index=False, na_rep="-",
                              float_format=lambda v: f"{v:.2f}"))
    bad = int((df["status"] != "ok").sum())
    if bad:
        print(f"note: {bad} file(s) cannot be read (see status)")
    return 0
