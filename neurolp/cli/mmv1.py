"""MMV1: predict V1 activity of freely moving mice with Lp-CNNs (Kwon et al. 2025, Table 5; model and
data of Xu, Hou, Niell & Beyeler, NeurIPS 2023).

`fit` trains the shifter + CNN + GRU model for each --variants (base, large, lp{p}, lp{p}f: the
registry variants of `mmv1`) on each session of the published data folder (OSF
10.17605/OSF.IO/MSP3A, mouse-data-10-segment-split-70-30-48ms: <root>/<session>/{train,test}_<key>_seg_<i>.npy),
selects the epoch with the lowest validation Poisson NLL (early stopping), and scores the test
windows with the paper's metrics (2-s boxcar-smoothed cc and MSE; mean (std) over mice).
`--synthetic` runs the same path on a small generated data set in the same layout.

Writes to --out: runs/<session>/<variant>/ (engine run folders: checkpoints, metrics.csv; resumable
with --resume), mmv1_neurons.csv, mmv1_sessions.csv, table5_mmv1.csv (the paper's layout),
table5_mmv1_long.csv, predictions/*.npz, fig_mmv1_cc.png, fig_mmv1_traces.png, data.json, run.json.

`info` describes a data folder: sessions, segments, bins, neurons kept by the rate rule, NaNs.

Examples:
  neurolp mmv1 fit --synthetic --variants base lp2 --out runs/mmv1-demo
  neurolp mmv1 fit --data ~/mouse-data-10-segment-split-70-30-48ms --preset paper --out runs/table5
  neurolp mmv1 fit --data DIR --variants base lp2 --segments 0 1 --max-steps 200 --out runs/smoke
  neurolp mmv1 info --data ~/mouse-data-10-segment-split-70-30-48ms
"""

from __future__ import annotations

from pathlib import Path

from neurolp.cli.options import Choice, Float, InPath, Int, OutDir, OutFile, exclusive, require

NAME = "mmv1"
HELP = "fit MMV1 models (V1 of freely moving mice) for Lp variants: the paper's Table 5"

_SYNTHETIC_DIR = "synthetic-data"


def _data_options(p, *, with_defaults: bool) -> None:
    from neurolp.mmv1.data import BEHAV_MODES, FRAME_NORMS, FRAME_RANGES, NAN_POLICIES, DataOptions
    from neurolp.mmv1.layout import VIDEO_KEYS

    d = DataOptions()
    dflt = (lambda v: v) if with_defaults else (lambda v: None)
    g = p.add_argument_group("data")
    g.add_argument("--sessions", nargs="+", metavar="NAME", help="sessions to use (default: all folders)")
    g.add_argument("--video", type=Choice(VIDEO_KEYS, "video key"), default=dflt(d.video),
                   help="frames to use")
    g.add_argument("--behav-mode", type=Choice(BEHAV_MODES, "behaviour mode"), default=dflt(d.behav_mode),
                   help="behaviour features per bin (orig 6, velo 6, all 11, *_prod 21/21/66)")
    g.add_argument("--min-rate", dest="min_rate_hz", type=Float(min=0), default=dflt(d.min_rate_hz),
                   metavar="HZ", help="keep neurons with a mean training rate >= HZ")
    g.add_argument("--neurons", nargs="+", type=Int(min=0), metavar="COL",
                   help="explicit nsp columns instead of the rate rule")
    g.add_argument("--nan", type=Choice(NAN_POLICIES, "NaN policy"), default=dflt(d.nan),
                   help="NaN in behaviour: zero or interpolate")
    g.add_argument("--frame-norm", type=Choice(FRAME_NORMS, "frame normalisation"),
                   default=dflt(d.frame_norm), help="min/max per file (segment) or per session")
    g.add_argument("--frame-range", type=Choice(FRAME_RANGES, "frame range"), default=dflt(d.frame_range),
                   help="frames scaled to [0, 1] (01) or [-1, 1] (pm1)")
    g.add_argument("--segments", nargs="+", type=Int(min=0), metavar="I",
                   help="use only these segments (reduced-scale runs)")


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="mmv1_command", metavar="SUBCOMMAND", parser_class=type(parser))
    f = sub.add_parser("fit", help="fit variants on every session and write Table 5",
                       formatter_class=parser.formatter_class)
    src = f.add_argument_group("source (one of)")
    src.add_argument("--data", type=InPath("dir", hint="the unzipped OSF folder with one sub-folder per session"),
                     metavar="ROOT", help="the data folder: <ROOT>/<session>/{train,test}_<key>_seg_<i>.npy")
    src.add_argument("--synthetic", action="store_true",
                     help=f"generate a small data set in the same layout (into --out/{_SYNTHETIC_DIR})")
    src.add_argument("--synthetic-sessions", type=Int(1, 3), default=2, metavar="N")
    src.add_argument("--synthetic-segments", type=Int(1, 100), default=10, metavar="N")
    src.add_argument("--synthetic-bins", type=Int(20, 100_000), default=120, metavar="N",
                     help="48-ms bins per segment (70 %% train, 30 %% test)")
    src.add_argument("--synthetic-neurons", type=Int(1, 1000), default=12, metavar="N")
    run = f.add_argument_group("run")
    run.add_argument("--variants", nargs="+", metavar="V", default=None,
                     help="base, large, lp{p}, lp{p}f (default: the paper's lp2 lp4 lp8 lp16 base large)")
    run.add_argument("--preset", type=Choice(["quick", "paper"], "preset"), default="quick",
                     help="paper: Xu et al.'s network and recipe (GPU); quick: a small network for CPU")
    run.add_argument("--out", type=OutDir(), default="runs/mmv1", metavar="DIR", help="output folder")
    run.add_argument("--resume", action="store_true", help="continue the runs in --out where they stopped")
    run.add_argument("--seed", type=Int(min=0), default=0)
    run.add_argument("--publish", action="store_true", help="also copy each selected model into the store")
    run.add_argument("--store", type=OutDir(), metavar="DIR", help="checkpoint store for --publish")
    run.add_argument("--no-figures", dest="figures", action="store_false")
    run.add_argument("--no-progress", dest="progress", action="store_false")
    _data_options(f, with_defaults=True)
    g = f.add_argument_group("model and training (unset: the preset's value)")
    g.add_argument("--seq-len", type=Int(1, 256), default=4, help="bins per window (4 = 192 ms)")
    g.add_argument("--predict-offset", type=Int(0, 256), default=1,
                   help="target bin after the window's last bin (1: the next bin)")
    g.add_argument("--val-fraction", type=Float(0, 0.9, min_open=True), default=0.2,
                   help="last part of each segment's training part used for validation")
    g.add_argument("--epochs", type=Int(1), help="[paper 50, quick 6]")
    g.add_argument("--patience", type=Int(1), help="early stopping patience in epochs [paper 5, quick 3]")
    g.add_argument("--no-early-stop", action="store_true", help="train all --epochs")
    g.add_argument("--batch-size", type=Int(1), help="[paper 256, quick 32]")
    g.add_argument("--lr", type=Float(0, min_open=True), help="Adam learning rate [paper 2e-4, quick 1e-3]")
    g.add_argument("--l1", type=Float(min=0), default=1.0, help="weight of the behaviour-encoder L1 term")
    g.add_argument("--channels", nargs=3, type=Int(1), metavar="C", help="conv channels [paper 128 64 32]")
    g.add_argument("--hidden-size", type=Int(1), help="GRU hidden units [paper 512, quick 64]")
    g.add_argument("--dropout", type=Float(0, 1, max_open=True), help="[paper 0.5, quick 0.2]")
    g.add_argument("--no-shifter", dest="shifter", action="store_false", help="no eye/head-driven frame warp")
    g.add_argument("--max-steps", type=Int(1), help="stop each fit after N optimiser steps (smoke runs)")
    g.add_argument("--checkpoint-every", type=Int(0), default=0, help="also save state every N steps")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    g.add_argument("--amp", type=Choice(["auto", "bf16", "fp16", "none"], "amp"), default="auto",
                   help="mixed precision (auto: bf16 on CUDA)")
    g.add_argument("--num-workers", type=Int(0), help="DataLoader workers [4 on CUDA, 0 on CPU]")
    g.add_argument("--eval-batch-size", type=Int(1))
    m = f.add_argument_group("metrics")
    m.add_argument("--smoothing", type=Choice(["segments", "authors"], "smoothing"), default="segments",
                   help="segments: smooth each segment's test part on its own (default); authors: smooth "
                        "the concatenation across segment joins, as Xu et al.")
    m.add_argument("--smooth-bins", type=Int(1), default=41, help="boxcar width in bins (41 = 2 s)")

    i = sub.add_parser("info", help="describe an MMV1 data folder", formatter_class=parser.formatter_class)
    i.add_argument("--data", type=InPath("dir"), required=True, metavar="ROOT")
    _data_options(i, with_defaults=True)
    i.add_argument("--csv", type=OutFile(), metavar="PATH", help="also write the table as CSV")


def _variants(args) -> list[str]:
    from neurolp.mmv1.fit import PAPER_VARIANTS

    return list(args.variants) if args.variants else list(PAPER_VARIANTS)


def check(args) -> None:
    import neurolp.mmv1.model  # noqa: F401  (registers the mmv1 architecture)
    from neurolp.errors import ConfigError
    from neurolp.models import parse_model_name

    cmd = getattr(args, "mmv1_command", None)
    if cmd is None:
        raise ConfigError("choose a subcommand: neurolp mmv1 fit|info (see `neurolp mmv1 --help`)")
    if cmd == "info":
        _check_sessions(args.data, args.sessions, args.video)
        return
    exclusive(args, "--data", "--synthetic")
    require(args.data is not None or args.synthetic, "give --data ROOT (the MMV1 data folder) or "
            "--synthetic (a generated data set)")
    for v in _variants(args):
        try:
            name = parse_model_name(f"{v}-mmv1")
        except ConfigError:
            raise ConfigError(f"--variants: unknown variant {v!r}; use base, large, lp{{p}} or lp{{p}}f "
                              "(e.g. lp2, lp16, lp256f)") from None
        if name.variant == "lp" and name.p_init is None:  # pragma: no cover - parse guarantees p
            raise ConfigError(f"--variants: {v!r} has no p")
    require(not (args.store and not args.publish), "--store is only used with --publish")
    from neurolp.utils.runtime import resolve_device

    try:
        resolve_device(args.device)
    except ConfigError as exc:
        raise ConfigError(f"--device: {exc}") from None
    if args.synthetic:
        from neurolp.mmv1.synthetic import SESSION_NAMES

        valid = SESSION_NAMES[:args.synthetic_sessions]
        bad = [s for s in args.sessions or [] if s not in valid]
        require(not bad, f"--sessions: {', '.join(bad)} not in the synthetic data set ({', '.join(valid)})")
        require(args.synthetic_bins * 0.3 > args.seq_len + args.predict_offset,
                f"--synthetic-bins {args.synthetic_bins} leaves test parts shorter than --seq-len + "
                "--predict-offset; raise --synthetic-bins")
    else:
        _check_sessions(args.data, args.sessions, args.video)
    if not args.resume:
        out = Path(args.out)
        sessions = args.sessions or ([] if args.synthetic else None)
        done = [p.parent for p in (out / "runs").glob("*/*/state.pt")] if (out / "runs").is_dir() else []
        if sessions:
            done = [d for d in done if d.parent.name in sessions]
        done = [d for d in done if d.name in _variants(args)]
        require(not done, f"--out {out} already holds a run ({done[0] if done else ''}); pass --resume to "
                "continue it, or choose another --out")


def _check_sessions(data, sessions, video) -> None:
    """Every requested session exists and has all the files a run reads (before any work)."""
    from neurolp.errors import ConfigError
    from neurolp.mmv1.layout import BEHAVIOUR_KEYS, list_sessions, scan_session

    available = list_sessions(data)
    bad = [s for s in sessions or [] if s not in available]
    if bad:
        raise ConfigError(f"--sessions: {', '.join(bad)} not in {data} (sessions: {', '.join(available)})")
    for s in sessions or available:
        scan_session(data, s, ("nsp", video, *BEHAVIOUR_KEYS))


def _config(args):
    from neurolp.mmv1.fit import make_config

    return make_config(
        args.preset, video=args.video, behav_mode=args.behav_mode, seq_len=args.seq_len,
        predict_offset=args.predict_offset, min_rate_hz=args.min_rate_hz,
        neurons=tuple(args.neurons) if args.neurons else None, nan=args.nan, frame_norm=args.frame_norm,
        frame_range=args.frame_range, val_fraction=args.val_fraction,
        segments=tuple(args.segments) if args.segments else None, channels=tuple(args.channels) if args.channels else None,
        hidden_size=args.hidden_size, dropout=args.dropout, shifter=args.shifter, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, l1=args.l1, seed=args.seed,
        smooth_bins=args.smooth_bins, across_joins=args.smoothing == "authors", device=args.device,
        amp=args.amp, max_steps=args.max_steps, checkpoint_every=args.checkpoint_every,
        num_workers=args.num_workers, eval_batch_size=args.eval_batch_size, progress=args.progress,
        **({"patience": args.patience} if args.patience else {}))


def _synthetic(args, out: Path) -> tuple[Path, dict]:
    """Generate (or reuse, when it has the same spec) the synthetic data set under ``out``."""
    import json

    from neurolp.errors import ConfigError
    from neurolp.mmv1.synthetic import SyntheticSpec, make_synthetic_dataset

    spec = SyntheticSpec(sessions=args.synthetic_sessions, segments=args.synthetic_segments,
                         bins_per_segment=args.synthetic_bins, neurons=args.synthetic_neurons, seed=args.seed)
    root = out / _SYNTHETIC_DIR
    record = root / "synthetic.json"
    from dataclasses import asdict

    want = json.loads(json.dumps(asdict(spec)))
    if record.is_file():
        have = json.loads(record.read_text()).get("spec")
        if have != want:
            raise ConfigError(f"{root} holds a synthetic data set made with other settings; choose "
                              "another --out or remove that folder")
    else:
        make_synthetic_dataset(root, spec)
    return root, want


def run(args) -> int:
    cmd = args.mmv1_command
    return _info(args) if cmd == "info" else _fit(args)


def _fit(args) -> int:
    import os
    import time

    from neurolp.mmv1.fit import run_fit

    t0 = time.time()
    cfg = _config(args)
    if args.no_early_stop:
        cfg.patience = None
    out = Path(args.out)
    data, synthetic = (Path(args.data), None) if args.data else _synthetic(args, out)
    res = run_fit(data, _variants(args), out, sessions=args.sessions, config=cfg, resume=args.resume,
                  store=args.store, publish=args.publish, figures=args.figures, synthetic=synthetic)
    if res is None or int(os.environ.get("RANK", "0")) != 0:
        return 0
    neurons, sessions, layout = res
    print(f"\nTable 5 layout ({'synthetic data, ' if synthetic else ''}mean (std) over "
          f"{neurons['session'].nunique()} session(s); smoothing "
          f"{'across joins (authors)' if cfg.across_joins else 'within segments'}):")
    print(layout.to_string(index=False))
    print(f"time-shuffled predictions: cc {sessions['cc_shuffled'].mean():.3f}"
          + (f"; oracle (true rates): cc {sessions['cc_oracle'].mean():.3f}" if "cc_oracle" in sessions else ""))
    print(f"wrote {out}/table5_mmv1.csv, mmv1_neurons.csv, mmv1_sessions.csv, predictions/"
          f"{', figures' if args.figures else ''} ({time.time() - t0:.0f}s)")
    return 0


def _info(args) -> int:
    import pandas as pd

    from neurolp.mmv1.data import DataOptions, load_sessions
    from neurolp.utils.io import write_csv

    opts = DataOptions(video=args.video, behav_mode=args.behav_mode, min_rate_hz=args.min_rate_hz,
                       neurons=tuple(args.neurons) if args.neurons else None, nan=args.nan,
                       frame_norm=args.frame_norm, frame_range=args.frame_range,
                       segments=tuple(args.segments) if args.segments else None)
    rows = []
    for s in load_sessions(args.data, args.sessions, opts):
        d = s.describe()
        nan = {f"nan_{k}": sum(v.get(k, 0) for v in d["nan_bins"].values()) for k in
               ("speed", "pitch", "roll", "phi", "th", "eyerad")}
        rows.append({"session": s.name, "segments": len(s.segments), "train_bins": d["bins"]["train"],
                     "test_bins": d["bins"]["test"], "neurons": d["neurons_recorded"],
                     "kept": d["neurons_kept"], "frame": f"{s.frame_size[0]}x{s.frame_size[1]}", **nan,
                     "train_windows": len(s.train), "val_windows": len(s.val), "test_windows": len(s.test)})
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 160):
        print(table.to_string(index=False))
    print(f"neurons kept: {d['selection']}; NaN policy {args.nan}; windows for seq_len 4")
    if args.csv:
        write_csv(table, args.csv)
    return 0

