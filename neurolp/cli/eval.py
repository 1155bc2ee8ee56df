"""Evaluate a checkpoint: top-1/top-5 accuracy on a dataset split, or CIFAR-100-C accuracy per
corruption and severity.

`--checkpoint` takes a .safetensors path or a model name (the newest match in the store).
The dataset defaults to the one the checkpoint was trained on; `--split val` rebuilds the run's
own validation split. With `--out DIR` the table is written as CSV with a run.json.

Examples:
  neurolp eval --checkpoint runs/lp2-smallcnn_digits_s0/best.safetensors
  neurolp eval --checkpoint lp2-resnet18 --dataset cifar100 --data-dir ~/data
  neurolp eval --checkpoint lp2-resnet18 --dataset cifar100c --data-dir ~/data --severities 1 --out out/c
"""

from __future__ import annotations

NAME = "eval"
HELP = "evaluate a checkpoint (accuracy, CIFAR-100-C robustness)"


def add_arguments(parser) -> None:
    from neurolp.cli.options import Int, OutDir
    from neurolp.train.data import DATASETS

    parser.add_argument("--checkpoint", required=True, metavar="PATH|MODEL",
                        help="checkpoint file, or a model name looked up in the store")
    parser.add_argument("--dataset", choices=sorted(DATASETS),
                        help="dataset (default: the checkpoint's); cifar100c for robustness")
    parser.add_argument("--data-dir", metavar="DIR", help="dataset folder")
    parser.add_argument("--split", default="test", choices=["test", "val", "train"])
    parser.add_argument("--corruptions", nargs="+", metavar="NAME",
                        help="CIFAR-100-C corruptions (default: every .npy present)")
    parser.add_argument("--severities", nargs="+", type=Int(1, 5), default=[1, 2, 3, 4, 5],
                        help="CIFAR-100-C severities")
    parser.add_argument("--batch-size", type=Int(1, 1 << 16), default=256)
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N")
    parser.add_argument("--num-workers", type=Int(0, 256), default=0)
    parser.add_argument("--on-bad-sample", choices=["stop", "skip"], default="stop",
                        help="an unreadable image file: stop with its name, or skip it (reported)")
    parser.add_argument("--store", metavar="DIR",
                        help="checkpoint store for model names")
    parser.add_argument("--out", type=OutDir(), metavar="DIR", help="write the result as CSV + run.json here")
    parser.add_argument("--no-progress", dest="progress", action="store_false")


def check(args) -> None:
    from neurolp.cli.options import require
    from neurolp.train.data import CIFAR100C_CORRUPTIONS
    from neurolp.utils.checks import check_choices
    from neurolp.utils.runtime import resolve_device

    resolve_device(args.device)
    require(args.corruptions is None or args.dataset == "cifar100c",
            "--corruptions only applies to --dataset cifar100c")
    if args.corruptions:
        args.corruptions = check_choices(args.corruptions, "--corruptions", CIFAR100C_CORRUPTIONS,
                                         what="corruption")
    require(args.dataset != "cifar100c" or args.split == "test",
            "CIFAR-100-C is a test set: drop --split (or use --split test) with --dataset cifar100c")


def run(args) -> int:
    import pandas as pd

    from neurolp.train.evaluate import evaluate_checkpoint, evaluate_corruptions
    from neurolp.train.store import resolve_checkpoint
    from neurolp.utils import staged_output, write_csv, write_run_record

    # a model name picks the newest checkpoint trained on the dataset (CIFAR-100 for CIFAR-100-C)
    path = resolve_checkpoint(args.checkpoint, store=args.store,
                              dataset="cifar100" if args.dataset == "cifar100c" else args.dataset)
    if args.dataset == "cifar100c":
        df = evaluate_corruptions(path, args.data_dir, corruptions=args.corruptions,
                                  severities=args.severities, batch_size=args.batch_size,
                                  device=args.device, num_workers=args.num_workers,
                                  progress=args.progress)
        df.insert(0, "checkpoint", str(path))
        wide = df.pivot_table(index="corruption", columns="severity", values="acc")
        with pd.option_context("display.width", 120, "display.max_rows", None):
            print(f"{df['model'].iloc[0]} ({path}): CIFAR-100-C top-1 accuracy (%)")
            print(wide.to_string(float_format=lambda v: f"{v:.2f}"))
        print(f"mean over {len(df)} corruption × severity cells: {df['acc'].mean():.2f}%")
        if df.attrs.get("missing"):
            print(f"note: not evaluated (absent from the data folder): {', '.join(df.attrs['missing'])}")
        name = "cifar100c.csv"
    else:
        res = evaluate_checkpoint(path, args.dataset, data_dir=args.data_dir, split=args.split,
                                  batch_size=args.batch_size, device=args.device,
                                  num_workers=args.num_workers, progress=args.progress,
                                  on_bad_sample=args.on_bad_sample)
        skipped = res.pop("skipped_files")
        df = pd.DataFrame([res])
        print(f"{res['model']} on {res['dataset']} {res['split']} ({res['n']} images): "
              f"top-1 {res['acc']:.2f}%, top-5 {res['top5']:.2f}%, loss {res['loss']:.4f}")
        if skipped:
            print(f"WARNING: {len(skipped)} unreadable image file(s) were skipped (their places taken "
                  f"by the next readable file), e.g. {skipped[0]}")
        name = "eval.csv"
    if args.out:
        with staged_output(args.out) as stage:
            write_csv(df, stage / name)
            write_run_record(stage, "eval", {k: v for k, v in vars(args).items() if not k.startswith("_")})
        print(f"wrote {args.out}/{name}")
    return 0
