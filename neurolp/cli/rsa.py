"""RSA between CNN layers and mouse visual cortex on the 118 Allen natural scenes (paper §6).

For each model: layer RSMs (every conv layer by default) → Kendall's τ against brain RSMs per
area → noise-normalised scores per layer × area, the max over layers, CIs. Outputs in --out:
rsa_scores.csv (model, layer, area, raw, ceilings, normalised, CI, above_ceiling, dead units),
rsa_max.csv, rsa_samples.csv (per mouse / split), brain.csv, layers.csv, excluded.csv, one
heatmap per model (Fig. 11), and with several --model the max-SSM comparison with Welch t-tests
(Fig. 6b: rsa_max_comparison.png, rsa_max_tests.csv), plus run.json.

Presets: `default` (per-mouse RSMs, τ_a, across-mice ceilings, bootstrap over images and mice) and
`lpconv` (the official pipeline: pooled population, 100 split-half RSMs, τ_b, median/median
split-half ceiling). Any option below overrides the preset.

The checkpoint is the newest of --model in the checkpoint store, or --checkpoint PATH;
--untrained scores a randomly initialised model.

Examples:
  neurolp rsa --model lp2-resnet18 --allen-cache ~/allen --out out/rsa
  neurolp rsa --model base-resnet18 lp2-resnet18 lp16-resnet18 --allen-cache ~/allen --out out/fig6
  neurolp rsa --model lp2-resnet18 --allen-cache ~/allen --preset lpconv --out out/rsa_anchor
"""

from __future__ import annotations

NAME = "rsa"
HELP = "RSA of model layers against Allen mouse visual cortex (noise-corrected Kendall τ)"


def add_arguments(parser) -> None:
    from neurolp.cli.allen import selection_args
    from neurolp.cli.options import InPath, Int, OutDir

    g = parser.add_argument_group("model")
    g.add_argument("--model", nargs="+", required=True, metavar="NAME",
                   help="registry name(s), e.g. lp2-resnet18 (several: Fig. 6b comparison)")
    g.add_argument("--checkpoint", nargs="+", type=InPath("file"), metavar="PATH",
                   help="checkpoint file(s), one per --model (default: newest in the store)")
    g.add_argument("--store", metavar="DIR",
                   help="checkpoint store (default: $NEUROLP_CHECKPOINTS)")
    g.add_argument("--dataset", help="only use checkpoints trained on this dataset")
    g.add_argument("--image-size", type=Int(8, 1024),
                   help="input size (must match the checkpoint; required with --untrained)")
    g.add_argument("--untrained", action="store_true", help="random weights instead of a checkpoint")
    g.add_argument("--num-classes", type=Int(1, 100_000), default=200, help="outputs of an --untrained model")
    g.add_argument("--layers", nargs="+", metavar="MODULE",
                   help="module names (default: every conv layer)")
    g.add_argument("--stimuli", choices=["checkpoint", "anchor"],
                   help="input preprocessing (preset default: checkpoint / anchor)")
    g.add_argument("--batch-size", type=Int(1, 1 << 16), help="images per forward pass (default: all)")
    g.add_argument("--max-features", type=Int(2), help="reduce layers with more units than this")
    g.add_argument("--reduce", choices=["pool", "project"], help="how to reduce big layers")
    b = parser.add_argument_group("brain data")
    selection_args(b, cache_flag="--allen-cache")
    b.add_argument("--allow-partial", action="store_true",
                   help="use the experiments present when some are missing (reported)")
    b.add_argument("--signal", choices=["events", "dff"])
    b.add_argument("--window", nargs=2, type=Int(0, 1000), metavar=("START", "FRAMES"),
                   help="response window after onset, in 2-photon frames (default 0 15)")
    b.add_argument("--baseline-frames", type=Int(0, 1000), help="subtract the mean of N pre-onset frames")
    b.add_argument("--min-neurons", type=Int(1), help="mice with fewer usable neurons are left out")
    s = parser.add_argument_group("RSA")
    s.add_argument("--preset", choices=["default", "lpconv"], default="default")
    s.add_argument("--population", choices=["mouse", "pooled"])
    s.add_argument("--comparator", choices=["tau_a", "tau_b", "spearman", "pearson"])
    s.add_argument("--normalise-by", choices=["lower", "upper", "split-half"])
    s.add_argument("--pool", choices=["mean", "rank"], help="pooled RSM of the across-mice ceiling")
    s.add_argument("--no-centre", dest="centre", action="store_false", default=None,
                   help="do not centre units across images before the Pearson RSM")
    s.add_argument("--bootstrap", type=Int(0, 1_000_000), metavar="N",
                   help="bootstrap samples (images × mice); 0 = none")
    s.add_argument("--mouse-draws", type=Int(1, 1000), metavar="K",
                   help="mouse resamples per image resample in the bootstrap (default 4; 1 = every "
                        "sample draws its own images)")
    s.add_argument("--layer-selection", choices=["max", "cv"])
    s.add_argument("--splits", type=Int(1, 100_000), help="pooled: number of random-half RSMs")
    s.add_argument("--trial-splits", type=Int(1, 100_000), help="split-half ceiling repetitions")
    s.add_argument("--seed", type=Int(0), default=0)
    s.add_argument("--threads", type=Int(1, 1024), help="threads for the τ computations")
    o = parser.add_argument_group("output")
    o.add_argument("--out", type=OutDir(), metavar="DIR", help="write tables, figures and run.json here")
    o.add_argument("--save-rsms", action="store_true", help="also write rsms.npz (brain and layers)")
    o.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    o.add_argument("--no-progress", dest="progress", action="store_false")


def check(args) -> None:
    """Option combinations, checked before any response or activation is computed."""
    from neurolp.brain.selection import Selection
    from neurolp.cli.options import require
    from neurolp.models import parse_model_name
    from neurolp.rsa.pipeline import RSAConfig
    from neurolp.utils.runtime import resolve_device

    for name in args.model:
        parse_model_name(name)
    resolve_device(args.device)
    require(not args.checkpoint or len(args.checkpoint) == len(args.model),
            f"{len(args.checkpoint or [])} --checkpoint for {len(args.model)} --model; give one "
            "checkpoint per model, in the same order")
    require(not (args.untrained and args.checkpoint), "--untrained and --checkpoint exclude each other")
    require(not args.untrained or args.image_size is not None,
            "--untrained needs --image-size (the input size the random model is built for)")
    require(args.save_rsms is False or args.out is not None, "--save-rsms needs --out DIR")
    overrides = dict(population=args.population, comparator=args.comparator,
                     normalise_by=args.normalise_by, pool=args.pool, centre=args.centre,
                     n_boot=args.bootstrap, layer_selection=args.layer_selection,
                     n_splits=args.splits, n_trial_splits=args.trial_splits, signal=args.signal,
                     baseline_frames=args.baseline_frames, min_neurons=args.min_neurons,
                     stimuli=args.stimuli, batch_size=args.batch_size,
                     max_features=args.max_features, reduce=args.reduce, seed=args.seed,
                     threads=args.threads, mouse_draws=args.mouse_draws)
    if args.window:
        require(args.window[1] >= 1, f"--window FRAMES must be >= 1, got {args.window[1]}")
        overrides.update(window_start=args.window[0], window_frames=args.window[1])
    args._cfg = RSAConfig.from_preset(args.preset, **overrides).validate()
    args._selection = Selection(tuple(args.areas), tuple(args.cre_lines), tuple(args.depths))


def run(args) -> int:
    import time

    import numpy as np
    import pandas as pd

    from neurolp.rsa.kendall import kernel_backend
    from neurolp.rsa.pipeline import load_model_source, run_rsa
    from neurolp.utils.runtime import seed_everything

    t0 = time.perf_counter()
    cfg, selection = args._cfg, args._selection
    seed_everything(args.seed)
    sources = []
    for k, name in enumerate(args.model):
        sources.append(load_model_source(
            name, checkpoint=args.checkpoint[k] if args.checkpoint else None, store=args.store,
            dataset=args.dataset, image_size=args.image_size, untrained=args.untrained,
            num_classes=args.num_classes, seed=args.seed, device=args.device))
    labels = [s.display for s in sources]
    if len(set(labels)) != len(labels):
        for k, s in enumerate(sources):  # same model twice (e.g. two checkpoints): disambiguate
            s.label = f"{s.display}#{k}"
    res = run_rsa(sources, args.allen_cache, cfg, selection=selection, layers=args.layers,
                  allow_partial=args.allow_partial, device=args.device,
                  keep_rsms=bool(args.save_rsms), progress=args.progress)
    elapsed = time.perf_counter() - t0

    print(f"brain: {selection.describe()}")
    if res.brain_summary is not None and len(res.brain_summary):
        print("  " + "; ".join(f"{r.area}: {r.mice} mice, {r.experiments} experiments, "
                               f"{r.neurons} neurons ({r.layers})"
                               for r in res.brain_summary.itertuples()))
    print(f"responses: {res.response_params}; "
          f"{'cached artefact' if res.from_cache else 'read from the NWB/events files'}")
    for m, spec in res.stimuli.items():
        print(f"stimuli for {m}: {spec}")
    for line in res.summary_lines():
        print(line)
    dead = res.layer_info[res.layer_info["n_dead"] > 0]
    if len(dead):
        print("dead units excluded: " + ", ".join(f"{r.model}/{r.layer}: {r.n_dead}"
                                                  for r in dead.itertuples()))
    if args.out:
        from neurolp.rsa.plots import max_comparison, plot_heatmap, plot_max_comparison
        from neurolp.utils.io import atomic_write, staged_output, write_csv, write_run_record

        with staged_output(args.out) as stage:
            write_csv(res.scores, stage / "rsa_scores.csv")
            write_csv(res.maxima, stage / "rsa_max.csv")
            write_csv(res.samples, stage / "rsa_samples.csv")
            write_csv(res.brain_report, stage / "brain.csv")
            write_csv(res.layer_info, stage / "layers.csv")
            write_csv(res.excluded, stage / "excluded.csv")
            figures = []
            for m in pd.unique(res.scores["model"]):
                safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in str(m))
                figures.append(plot_heatmap(res.scores, stage / f"rsa_heatmap_{safe}.png", model=m))
            if len(sources) > 1:
                per, tests = max_comparison(res.samples, res.maxima, order=labels)
                write_csv(tests, stage / "rsa_max_tests.csv")
                figures.append(plot_max_comparison(per, res.maxima, tests,
                                                   stage / "rsa_max_comparison.png"))
            if args.save_rsms:
                arrays = {}
                for area, obj in (res.brain_rsms or {}).items():
                    arrays[f"brain/{area}"] = obj.vectors
                    arrays[f"brain/{area}/labels"] = np.asarray(obj.labels)
                for m, lr in (res.model_rsms or {}).items():
                    arrays[f"model/{m}"] = lr.vectors()
                    arrays[f"model/{m}/layers"] = np.asarray(lr.names)
                with atomic_write(stage / "rsms.npz", "wb") as fh:
                    np.savez_compressed(fh, **arrays)
            config = {k: v for k, v in vars(args).items() if not k.startswith("_")}
            write_run_record(stage, "rsa", config, extra={
                "preset": cfg.preset, "effective_config": cfg.to_dict(),
                "selection": res.selection, "response_params": res.response_params,
                "stimuli": res.stimuli, "checkpoints": {s.display: s.checkpoint for s in sources},
                "kendall_backend": kernel_backend(),
                "seconds": round(elapsed, 2),
                "timings": {k: round(v, 2) for k, v in res.timings.items()}})
        print(f"wrote {args.out}: rsa_scores.csv, rsa_max.csv, rsa_samples.csv, "
              + ", ".join(p.name for p in figures) + ", run.json")
    print(f"done in {elapsed:.1f} s ("
          + ", ".join(f"{k} {v:.1f} s" for k, v in res.timings.items()) + ")")
    return 0
