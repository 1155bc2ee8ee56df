"""The Sudoku challenge (paper §5, Fig. 4–5, App. A.5–A.8): make puzzles, train SudokuCNN variants,
analyse the Lp-masks.

`make` writes puzzles with a unique solution in the 1M-Sudoku CSV format (seeded; difficulty set
by the number of blanks). `train` trains one variant — base (3×3), large (7×7), lp2 / lp16
(trainable Lp-masks, p ≥ 2), lp256f (frozen) — on a puzzle CSV (e.g. Kaggle's 1M `sudoku.csv`)
or on generated puzzles, with checkpoints, exact resume and per-epoch held-out metrics
(metrics.csv). `analyze` takes a trained Lp model and writes α/θ/γ per mask and layer (Fig. 5b),
the mask grid (Fig. 9) and the orientation ablation with its matched random control (Fig. 5c,
Fig. 10).

Examples:
  neurolp sudoku make --n 100000 --blanks 40-60 --seed 0 --out puzzles.csv
  neurolp sudoku train --variant lp2 --generate 20000 --preset quick --out runs/sudoku_lp2
  neurolp sudoku train --variant base --data sudoku.csv --preset paper --out runs/paper_base
  neurolp sudoku train --out runs/sudoku_lp2 --resume
  neurolp sudoku analyze --checkpoint runs/sudoku_lp2 --out out/sudoku_lp2_masks
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from neurolp.cli.options import Choice, Float, InPath, Int, OutDir, OutFile, _Type, exclusive, require

NAME = "sudoku"
HELP = "Sudoku challenge: make puzzles, train SudokuCNN variants, analyse Lp-masks (Fig. 4-5)"

S = argparse.SUPPRESS
QUICK_GENERATE = 20000  # puzzles the quick preset generates when neither --data nor --generate


class _Blanks(_Type):
    """A number of blanks or a range LO-HI (validated by the generator's parser)."""

    name = "blanks"

    def check(self, text):
        from neurolp.sudoku.generate import parse_blanks

        lo, hi = parse_blanks(text)
        return f"{lo}-{hi}" if lo != hi else str(lo)


class _Variant(Choice):
    name = "variant"

    def __init__(self):
        from neurolp.sudoku.grid import VARIANTS

        super().__init__(VARIANTS, what="variant")

    def check(self, text):
        import re

        t = text.strip().lower()
        if re.fullmatch(r"lp\d+(\.\d+)?f?", t):  # any lp{p} / lp{p}f, not only the paper's five
            return t
        return super().check(text)


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="sudoku_command", metavar="SUBCOMMAND", parser_class=type(parser))

    m = sub.add_parser("make", help="generate puzzles with a unique solution (CSV)")
    m.add_argument("--n", type=Int(min=1), required=True, help="number of puzzles")
    m.add_argument("--blanks", type=_Blanks(), default="40-60",
                   help="blanks per puzzle: a number or a range LO-HI drawn uniformly")
    m.add_argument("--seed", type=Int(min=0), default=0)
    m.add_argument("--out", type=OutFile(), required=True, help="CSV to write (quizzes,solutions)")
    m.add_argument("--jobs", type=Int(min=1, max=256), default=2, help="worker processes")
    m.add_argument("--retries", type=Int(min=0, max=100), default=3,
                   help="fresh attempts for a puzzle that cannot reach its number of blanks")
    m.add_argument("--exact", action="store_true",
                   help="finish such puzzles with the exact solver (slow; more high-blank puzzles)")
    m.add_argument("--no-progress", dest="progress", action="store_false")

    t = sub.add_parser("train", help="train a SudokuCNN variant (checkpoints, resume, metrics.csv)")
    t.add_argument("--variant", type=_Variant(), default=S,
                   help="base, large, lp2, lp16, lp256f (any lp{p} / lp{p}f) [default: lp2]")
    src = t.add_argument_group("data (one of)")
    src.add_argument("--data", type=InPath("file", suffixes=(".csv",)), default=S,
                     help="puzzle CSV, e.g. Kaggle's 1M-Sudoku sudoku.csv")
    src.add_argument("--generate", type=Int(min=10), default=S, metavar="N",
                     help="generate N puzzles (saved as puzzles.csv in the run folder)")
    src.add_argument("--blanks", type=_Blanks(), default=S, help="blanks of generated puzzles [40-60]")
    src.add_argument("--data-seed", type=Int(min=0), default=S, help="generator seed [0]")
    src.add_argument("--max-puzzles", type=Int(min=10), default=S, help="use the first N puzzles")
    run = t.add_argument_group("run")
    run.add_argument("--preset", type=Choice(["quick", "paper"], what="preset"), default=S,
                     help="quick: 2 CPU cores, <= 15 min (6 x 48, lr 1e-3, 5 epochs, 30-50 blanks; "
                          "--generate 20000 unless --data); paper: App. A.5 (10 x 256, Adam 1e-4, "
                          "batch 100, 20 epochs; needs --data) [quick]")
    run.add_argument("--out", type=OutDir(), default=S, help="run folder [runs/sudoku_<variant>_s<seed>]")
    run.add_argument("--resume", action="store_true", help="continue the run in --out")
    run.add_argument("--store", type=OutDir(), default=S, help="checkpoint store")
    run.add_argument("--no-publish", dest="publish", action="store_false",
                     help="do not copy the selected model into the checkpoint store")
    opt = t.add_argument_group("options (unset: the preset's value)")
    opt.add_argument("--depth", type=Int(min=1, max=100), default=S)
    opt.add_argument("--width", type=Int(min=1, max=4096), default=S)
    opt.add_argument("--epochs", type=Int(min=1), default=S)
    opt.add_argument("--batch-size", type=Int(min=1), default=S)
    opt.add_argument("--lr", type=Float(min=0, min_open=True), default=S)
    opt.add_argument("--p-min", type=Float(min=1), default=S, help="floor on p [2]")
    opt.add_argument("--init", type=Choice(["random_surround", "zero_surround", "fresh"], what="init"),
                     default=S)
    opt.add_argument("--patience", type=Int(min=1), default=S, help="early stopping (epochs)")
    opt.add_argument("--seed", type=Int(min=0), default=S)
    opt.add_argument("--val-fraction", type=Float(min=0, max=1, max_open=True), default=S)
    opt.add_argument("--eval-puzzles", type=Int(min=1), default=S, help="held-out puzzles per epoch")
    opt.add_argument("--val-puzzles", type=Int(min=1), default=S)
    opt.add_argument("--iterative-puzzles", type=Int(min=0), default=S)
    opt.add_argument("--device", default=S, help="auto, cpu, cuda, cuda:N")
    opt.add_argument("--amp", type=Choice(["auto", "bf16", "fp16", "none"], what="amp"), default=S)
    opt.add_argument("--max-steps", type=Int(min=1), default=S, help="stop (resumably) after N steps")
    opt.add_argument("--checkpoint-every", type=Int(min=0), default=S)
    opt.add_argument("--eval-batch-size", type=Int(min=1), default=S)
    opt.add_argument("--no-progress", dest="progress", action="store_false", default=S)

    a = sub.add_parser("analyze", help="α/θ/γ per layer, mask grid, orientation ablation + control")
    a.add_argument("--checkpoint", type=InPath("any"), required=True,
                   help="a Sudoku Lp checkpoint (.safetensors) or its run folder")
    a.add_argument("--data", type=InPath("file", suffixes=(".csv",)),
                   help="puzzles to measure on (default: the run's held-out puzzles)")
    a.add_argument("--generate", type=Int(min=10), metavar="N",
                   help="measure on N freshly generated puzzles instead")
    a.add_argument("--blanks", type=_Blanks(), default="40-60")
    a.add_argument("--puzzles", type=Int(min=10), default=1000, help="puzzles evaluated per ablation")
    a.add_argument("--deltas", type=Float(min=0, max=90), nargs="+",
                   default=[0, 5, 10, 15, 20, 30, 45, 60, 90], help="θ ranges ±Δ around 90° (deg)")
    a.add_argument("--gamma-min", type=Float(min=1), default=3.0,
                   help="orientation-selective masks have γ above this (paper: 3)")
    a.add_argument("--center", type=Float(min=0, max=180, max_open=True), default=90.0,
                   help="ablate masks oriented within ±Δ of this θ (90: vertical / column-selective, "
                        "the paper's; 0: horizontal, a row-selective contrast)")
    a.add_argument("--controls", type=Int(min=0, max=100), default=3,
                   help="matched random ablations per Δ")
    a.add_argument("--seed", type=Int(min=0), default=0)
    a.add_argument("--device", default="auto")
    a.add_argument("--out", type=OutDir(), required=True)
    a.add_argument("--no-progress", dest="progress", action="store_false")


def check(args) -> None:
    cmd = getattr(args, "sudoku_command", None)
    require(cmd is not None, "choose a subcommand: neurolp sudoku make|train|analyze (see --help)")
    if cmd == "train":
        exclusive(args, "--data", "--generate")
        if not args.resume:
            require(hasattr(args, "data") or hasattr(args, "generate")
                    or getattr(args, "preset", "quick") == "quick",
                    "neurolp sudoku train --preset paper needs --data CSV (the 1M-Sudoku sudoku.csv) "
                    "or --generate N")
        else:
            require(hasattr(args, "out"), "--resume needs --out DIR (the run folder to continue)")
        require(not (hasattr(args, "data") and hasattr(args, "blanks")),
                "--blanks applies to --generate only, not to --data")
    if cmd == "analyze":
        exclusive(args, "--data", "--generate")


# --- make -----------------------------------------------------------------------------------------
def _make(args) -> int:
    from neurolp.sudoku.generate import blank_histogram, generate_puzzles
    from neurolp.sudoku.puzzles import save_puzzles
    from neurolp.utils.io import atomic_write_text, environment_versions, git_commit

    t0 = time.time()
    q, s = generate_puzzles(args.n, args.blanks, args.seed, retries=args.retries, exact=args.exact,
                            jobs=args.jobs, progress=args.progress)
    dt = time.time() - t0
    out = save_puzzles(args.out, q, s)
    hist = blank_histogram(q)
    record = {"command": "sudoku make", "n": args.n, "blanks": args.blanks, "seed": args.seed,
              "retries": args.retries, "exact": args.exact, "jobs": args.jobs,
              "seconds": round(dt, 2), "blank_histogram": hist, "git_commit": git_commit(),
              "versions": environment_versions(),
              "method": "random complete grid per puzzle; givens removed in random order while "
                        "naked/hidden singles still solve it (unique by construction)"
                        + ("; exact-solver uniqueness for the rest" if args.exact else "")}
    atomic_write_text(Path(str(out) + ".json"), json.dumps(record, indent=2) + "\n")
    blanks = (q == 0).sum(1)
    print(f"{len(q)} puzzles with a unique solution in {dt:.1f}s ({len(q) / dt:.0f} puzzles/s, "
          f"{args.jobs} job(s)): blanks {blanks.min()}-{blanks.max()}, mean {blanks.mean():.1f}")
    hi = int(args.blanks.split("-")[-1])
    if hi >= 57:
        print("note: 57+ blanks are rarely reachable by random removal (random minimal puzzles have "
              "~24 clues); blank counts: " + ", ".join(f"{k}: {v}" for k, v in hist.items() if k >= 55))
    print(f"wrote {out} (and {out.name}.json with how it was made)")
    return 0


# --- train ----------------------------------------------------------------------------------------
_TRAIN_FIELDS = ("variant", "data", "generate", "blanks", "data_seed", "max_puzzles", "depth",
                 "width", "epochs", "batch_size", "lr", "p_min", "init", "patience", "seed",
                 "val_fraction", "eval_puzzles", "val_puzzles", "iterative_puzzles", "device", "amp",
                 "max_steps", "checkpoint_every", "eval_batch_size", "progress")


def _train_config(args):
    from neurolp.sudoku.train import RUNTIME_FIELDS, SudokuConfig, make_sudoku_config, read_run_config

    given = {k: getattr(args, k) for k in _TRAIN_FIELDS if hasattr(args, k)}
    if args.resume:
        saved = Path(args.out) / "config.json"
        if saved.is_file():
            base = read_run_config(args.out).to_dict()
            defaults = SudokuConfig().to_dict()
            base.update({k: defaults[k] for k in RUNTIME_FIELDS})
            base.update(given)
            return SudokuConfig.from_dict(base).validate()
    preset = getattr(args, "preset", "quick")
    if preset == "quick" and "data" not in given and "generate" not in given:
        given["generate"] = QUICK_GENERATE
    return make_sudoku_config(preset, **given)


def _train(args) -> int:
    from neurolp.sudoku.train import default_out_dir, train_sudoku

    cfg = _train_config(args)
    out = getattr(args, "out", None) or str(default_out_dir(cfg))
    res = train_sudoku(cfg, out, resume=args.resume, store=getattr(args, "store", None),
                       publish=args.publish)
    s = res.summary
    status = "finished" if s["complete"] else f"stopped at step {s['global_step']} (resume with --resume)"
    print(f"{s['model']} ({s['depth']} x {s['width']}, {s['params'] / 1e6:.2f} M params, seed "
          f"{s['seed']}): {status}, {s['epochs_done']}/{cfg.epochs} epochs in {s['train_time_s']:.0f}s")
    b = s["best"]
    if s["best_epoch"] is not None and b.get("cell_accuracy") is not None:
        def pct(k):
            return "-" if b.get(k) is None else f"{100 * b[k]:.1f}%"

        print(f"selected epoch {s['best_epoch']} on {s['selected_on']}: held-out cell {pct('cell_accuracy')}, "
              f"blank {pct('blank_accuracy')}, row/column/box validity {pct('row_validity')}/"
              f"{pct('column_validity')}/{pct('box_validity')}, puzzles valid {pct('puzzle_validity')}, "
              f"solved one-shot {pct('oneshot_solved')}, iteratively {pct('iterative_solved')}")
    for note in s["notes"]:
        print(f"note: {note}")
    print(f"run folder: {res.out_dir}")
    if res.published:
        print(f"published: {res.published}")
    return 0


# --- analyze --------------------------------------------------------------------------------------
def _analysis_puzzles(args, meta: dict, run_dir: Path | None):
    import numpy as np

    from neurolp.sudoku.generate import generate_puzzles
    from neurolp.sudoku.puzzles import load_puzzles
    from neurolp.sudoku.train import SudokuConfig, load_split

    if args.data:
        q, s = load_puzzles(args.data)
        return q[:args.puzzles], s[:args.puzzles], f"first {min(len(q), args.puzzles)} of {args.data}"
    if args.generate:
        q, s = generate_puzzles(args.generate, args.blanks, args.seed, progress=args.progress)
        return q[:args.puzzles], s[:args.puzzles], f"{min(args.generate, args.puzzles)} generated puzzles"
    cfg = SudokuConfig.from_dict(meta.get("config") or {})
    split = load_split(cfg.replace(eval_puzzles=None, val_puzzles=None), run_dir, write=False,
                       progress=args.progress)
    idx = split.test[:args.puzzles]
    return (split.quizzes[idx], split.solutions[idx],
            f"{len(idx)} held-out puzzles of the run (the official 80/20 split)")


def _analyze(args) -> int:
    from neurolp.errors import CheckpointError
    from neurolp.sudoku.analysis import (mask_conformations, mask_values, orientation_ablation,
                                         plot_ablation, plot_conformations, plot_mask_grid,
                                         select_orientation_masks)
    from neurolp.train.checkpoint import load_model
    from neurolp.utils import resolve_device, save_figure, staged_output, write_csv, write_run_record

    path = Path(args.checkpoint)
    if path.is_dir():
        path = path / "best.safetensors"
        if not path.is_file():
            raise CheckpointError(f"{args.checkpoint} holds no best.safetensors; pass a checkpoint file "
                                  "or the folder of a `neurolp sudoku train` run")
    device = resolve_device(args.device)
    model, meta = load_model(path, device)
    if meta.get("dataset") != "sudoku":
        raise CheckpointError(f"{path} is a {meta.get('model')} trained on {meta.get('dataset')}, "
                              "not a Sudoku model; pass a `neurolp sudoku train` checkpoint")
    run_dir = Path(meta["run_dir"]) if meta.get("run_dir") else None
    table = mask_conformations(model)  # refuses base / large variants before any work
    q, s, where = _analysis_puzzles(args, meta, run_dir)
    ablation = orientation_ablation(model, q, s, deltas=args.deltas, gamma_min=args.gamma_min,
                                    center=args.center, controls=args.controls, seed=args.seed,
                                    progress=args.progress)
    values = mask_values(model)
    with staged_output(args.out) as stage:
        table.insert(0, "model", meta["model"])
        write_csv(table, stage / "masks.csv")
        write_csv(values, stage / "mask_values.csv")
        ablation.insert(0, "model", meta["model"])
        write_csv(ablation, stage / "ablation.csv")
        save_figure(plot_conformations(table, gamma_min=args.gamma_min,
                                       title=f"{meta['model']}: mask conformations (Fig. 5b)"),
                    stage / "fig5b_conformations.png", dpi=150)
        save_figure(plot_mask_grid(values, title=f"{meta['model']}: Lp-masks per layer (Fig. 9)"),
                    stage / "fig9_mask_grid.png", dpi=150)
        save_figure(plot_ablation(ablation, center=args.center,
                                  title=f"{meta['model']}: ablation of masks with γ > "
                                        f"{args.gamma_min:g} oriented near {args.center:g}°"),
                    stage / "fig5c_ablation.png", dpi=150)
        write_run_record(stage, "sudoku analyze", {k: v for k, v in vars(args).items()
                                                   if not k.startswith("_")},
                         {"checkpoint": str(path), "model": meta["model"], "puzzles": where})
    sel = table[table["gamma"] > args.gamma_min]
    near = sum(len(c) for c in select_orientation_masks(table, 20, gamma_min=args.gamma_min,
                                                        center=args.center).values())
    print(f"{meta['model']}: {len(table)} masks in {table['layer_index'].nunique()} layers; "
          f"{len(sel)} orientation-selective (γ > {args.gamma_min:g}), {near} of them within ±20° of "
          f"{args.center:g}°")
    med = table.groupby("layer_index")["alpha"].median()
    print("median scale α per layer: " + ", ".join(f"L{i} {v:.2f}" for i, v in med.items()))
    base = ablation[ablation["kind"] == "none"].iloc[0]
    print(f"on {where}: row/column/box validity {base['row_validity']:.3f}/"
          f"{base['column_validity']:.3f}/{base['box_validity']:.3f} intact")
    dmax = max(args.deltas)
    for g in ("all", "first", "second"):
        d = ablation[(ablation["group"] == g) & (ablation["delta"] == dmax)]
        t, r = d[d["kind"] == "targeted"], d[d["kind"] == "random"]
        if len(t):
            line = (f"  Δ={dmax:g}°, layers {t['layers'].iloc[0]}: {int(t['n_ablated'].iloc[0])} masks "
                    f"ablated → row/col/box {t['row_validity'].iloc[0]:.3f}/"
                    f"{t['column_validity'].iloc[0]:.3f}/{t['box_validity'].iloc[0]:.3f}")
            if len(r):
                line += (f"; random control {r['row_validity'].mean():.3f}/"
                         f"{r['column_validity'].mean():.3f}/{r['box_validity'].mean():.3f}")
            print(line)
    print(f"wrote masks.csv, mask_values.csv, ablation.csv and three figures to {args.out}")
    return 0


def run(args) -> int:
    return {"make": _make, "train": _train, "analyze": _analyze}[args.sudoku_command](args)
