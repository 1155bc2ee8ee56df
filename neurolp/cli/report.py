"""One brain-likeness report for many models: receptive fields, Lp-masks, RSA, accuracy.

Per model: the MPND p of its first convolution's functional receptive fields (median and IQR,
beside the 17 mouse V1 L2/3 neurons of Rossi et al. 2020, Welch's t-test against V1), the learned
p and α/θ/γ of every Lp-mask (Lp models), the best-layer RSA score per area — raw and
ceiling-normalised, with bootstrap CIs — and the layer profile (with --allen-cache or
--neural/--images; the options are those of `neurolp rsa`), and top-1/top-5 accuracy with
--eval-dataset. Every measure comes from the same library call as its own command (fit-mpnd, rsa,
eval).

A model is the newest checkpoint of its name in the store, or --checkpoint PATH, --weights PATH (a
state_dict/safetensors of the registry model, e.g. torchvision's ImageNet file for base-alexnet,
with --image-size) or --untrained (seeded random weights, with --image-size); in --checkpoint and
--weights lists `-` stands for "random weights" for that model.

Outputs in --out: report.csv (tidy: one row per model × measure, with area and layer where they
apply), report.html (one self-contained page: tables and figures embedded, opens offline),
report_models.csv, mpnd_fits.csv, mpnd_summary.csv, lp_masks.csv, the RSA tables (rsa_scores.csv,
rsa_max.csv, rsa_samples.csv, brain.csv, layers.csv, rsa_max_tests.csv), accuracy.csv, the
figures as PNG, and run.json.

Examples:
  neurolp report --models base-alexnet lp2-alexnet large-alexnet --untrained --image-size 224 \\
      --neural v1.npz --images stimuli/ --out out/report
  neurolp report --models base-resnet18 lp2-resnet18 --allen-cache ~/allen \\
      --eval-dataset cifar100 --data-dir ~/data --out out/report
"""

from __future__ import annotations

NAME = "report"
HELP = "one brain-likeness report (RF MPND p, Lp-masks, RSA, accuracy) for many models"

_RSA_OPTIONS = ("population", "comparator", "normalise_by", "pool", "centre", "bootstrap",
                "mouse_draws", "layer_selection", "splits", "trial_splits", "layers", "stimuli",
                "crop", "batch_size", "max_features", "reduce", "min_neurons", "reliability",
                "reliability_splits", "threads")


def _path_or_dash():
    from neurolp.cli.options import InPath

    class PathOrDash(InPath):
        """A readable file, or ``-`` (this model has none)."""

        def check(self, text):
            return "-" if text.strip() == "-" else super().check(text)

    return PathOrDash("file")


def add_arguments(parser) -> None:
    from neurolp.cli.options import Choice, Float, InPath, Int, OutDir
    from neurolp.cli.rsa import brain_args, model_side_args, rsa_args
    from neurolp.train.data import DATASETS

    g = parser.add_argument_group("models")
    g.add_argument("--models", nargs="+", required=True, metavar="NAME",
                   help="registry names, e.g. base-alexnet lp2-alexnet large-alexnet")
    g.add_argument("--checkpoint", nargs="+", type=_path_or_dash(), metavar="PATH|-",
                   help="checkpoint files, one per model (- = random weights; default: the newest "
                        "of each name in the store)")
    g.add_argument("--weights", nargs="+", type=_path_or_dash(), metavar="PATH|-",
                   help="state_dict or safetensors files of the registry models, one per model "
                        "(- = none); needs --image-size")
    g.add_argument("--untrained", action="store_true",
                   help="random weights (seeded by --seed) for every model without a file")
    g.add_argument("--image-size", type=Int(8, 1024),
                   help="input size of --untrained and --weights models")
    g.add_argument("--num-classes", type=Int(1, 100_000),
                   help="outputs of --untrained/--weights models (default: the --eval-dataset's "
                        "classes, else 1000 with --weights, 200 otherwise)")
    g.add_argument("--store", metavar="DIR", help="checkpoint store (default: $NEUROLP_CHECKPOINTS)")
    g.add_argument("--dataset", help="only use store checkpoints trained on this dataset")
    model_side_args(g)
    r = parser.add_argument_group("receptive fields (MPND of the first conv)")
    r.add_argument("--rf-inputs", type=Choice(["image", "noise"], "RF input"), default="image",
                   help="natural images (the Allen scenes with --allen-cache, --rf-images, else "
                        "the photographs shipped with scikit-image/scikit-learn/matplotlib) or "
                        "Gaussian noise")
    r.add_argument("--rf-images", type=InPath("dir"), metavar="DIR",
                   help="a folder of natural images for the functional RFs")
    r.add_argument("--n-inputs", type=Int(2, 1000), default=17,
                   help="functional RFs per model (one per input image)")
    r.add_argument("--p-max", type=Float(2, 1024, min_open=True), default=64.0,
                   help="upper bound of p in the MPND fits")
    brain_args(parser)
    rsa_args(parser.add_argument_group("RSA (as `neurolp rsa`)"))
    e = parser.add_argument_group("accuracy")
    e.add_argument("--eval-dataset", type=Choice(sorted(DATASETS), "dataset"),
                   help="evaluate every model on this dataset")
    e.add_argument("--data-dir", type=InPath("dir"), metavar="DIR", help="the dataset's folder")
    e.add_argument("--eval-split", type=Choice(["test", "val", "train"], "split"), default="test")
    e.add_argument("--eval-batch-size", type=Int(1, 1 << 16), default=256)
    o = parser.add_argument_group("output")
    o.add_argument("--out", type=OutDir(), required=True, metavar="DIR",
                   help="report.csv, report.html, tables, figures and run.json")
    o.add_argument("--title", default="neurolp brain-likeness report", help="the page's title")
    o.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    o.add_argument("--no-progress", dest="progress", action="store_false")


def _per_model(values, n: int):
    return list(values) if values else ["-"] * n


def check(args) -> None:
    from neurolp.brain.selection import Selection
    from neurolp.cli.options import require
    from neurolp.cli.rsa import rsa_config
    from neurolp.models import parse_model_name
    from neurolp.train.data import dataset_info
    from neurolp.utils.runtime import resolve_device

    resolve_device(args.device)
    for name in args.models:
        parse_model_name(name)
    n = len(args.models)
    for flag in ("checkpoint", "weights"):
        given = getattr(args, flag)
        require(not given or len(given) == n,
                f"{len(given or [])} --{flag} for {n} --models; give one per model, in the same "
                "order (- for a model without one)")
    ck, wt = _per_model(args.checkpoint, n), _per_model(args.weights, n)
    both = [m for m, c, w in zip(args.models, ck, wt) if c != "-" and w != "-"]
    if both:
        require(False, f"{both[0]} has both a --checkpoint and a --weights file; give one")
    require(not (args.untrained and any(c != "-" for c in ck)),
            "--untrained and --checkpoint exclude each other (use - in --checkpoint for the models "
            "that should be random)")
    # what each model will be: checkpoint path, store, weights, or random
    kinds = []
    for c, w in zip(ck, wt):
        if c != "-":
            kinds.append("checkpoint")
        elif w != "-":
            kinds.append("weights")
        elif args.untrained or args.checkpoint or args.weights:   # "-": random weights
            kinds.append("untrained")
        else:
            kinds.append("store")
    args._kinds = kinds
    require(args.image_size is not None or not any(k in ("untrained", "weights") for k in kinds),
            "--untrained and --weights models need --image-size (the input size they are built "
            "for)")
    info = dataset_info(args.eval_dataset) if args.eval_dataset else None
    if args.num_classes is None:
        args.num_classes = (info.num_classes if info and info.num_classes else
                            1000 if "weights" in kinds else 200)
    if info is not None:
        require(info.offline or args.data_dir is not None,
                f"--eval-dataset {args.eval_dataset} needs --data-dir DIR ({info.layout})")
        if info.num_classes and any(k in ("untrained", "weights") for k in kinds):
            require(args.num_classes == info.num_classes,
                    f"--num-classes {args.num_classes} but {args.eval_dataset} has "
                    f"{info.num_classes} classes; drop --num-classes or evaluate on a dataset with "
                    f"{args.num_classes}")
    require(args.data_dir is None or args.eval_dataset is not None,
            "--data-dir is the folder of --eval-dataset; give --eval-dataset too")
    require(args.rf_images is None or args.rf_inputs == "image",
            "--rf-images is only used with --rf-inputs image")
    # checkpoints: resolve and read their metadata now, so a wrong file fails before any work
    args._checkpoints = []
    from neurolp.train.checkpoint import read_metadata
    from neurolp.train.store import find_checkpoint

    for name, kind, c in zip(args.models, kinds, ck):
        path = c if kind == "checkpoint" else (
            find_checkpoint(str(parse_model_name(name)), store=args.store, dataset=args.dataset,
                            image_size=args.image_size) if kind == "store" else None)
        args._checkpoints.append(path)
        if path is not None and info is not None and info.num_classes:
            meta = read_metadata(path)
            require(int(meta.get("num_classes", 0)) == info.num_classes,
                    f"{path} ({name}) has {meta.get('num_classes')} outputs but {args.eval_dataset} "
                    f"has {info.num_classes} classes; evaluate it on its own dataset")
    args._brain_optional = True
    args._cfg, args._notes = rsa_config(args)
    if args.allen_cache is None and args.neural is None:
        given = [f"--{o.replace('_', '-')}" for o in _RSA_OPTIONS
                 if getattr(args, o, None) not in (None, False)] + \
            (["--preset"] if args.preset != "default" else [])
        require(not given, f"{given[0] if given else ''} configures the RSA, which needs brain "
                           "data: give --allen-cache DIR or --neural FILE --images DIR|NPY")
    args._selection = Selection(tuple(args.areas), tuple(args.cre_lines), tuple(args.depths))


def run(args) -> int:
    import shlex
    import sys
    import time

    import pandas as pd

    from neurolp.cli.rsa import print_brain, score_brain
    from neurolp.report import ReportConfig, load_report_source, render_html, run_report
    from neurolp.report.html import summary_table
    from neurolp.report.plots import plot_accuracy, plot_best_rsa, plot_masks_summary, plot_mpnd_p
    from neurolp.utils.io import (atomic_write_text, git_commit, staged_output, write_csv,
                                  write_run_record)
    from neurolp.utils.runtime import seed_everything

    t0 = time.perf_counter()
    seed_everything(args.seed)
    n = len(args.models)
    wt = _per_model(args.weights, n)
    sources = []
    for k, name in enumerate(args.models):
        kind = args._kinds[k]
        sources.append(load_report_source(
            name, checkpoint=args._checkpoints[k],
            weights=wt[k] if kind == "weights" else None, untrained=kind == "untrained",
            image_size=args.image_size if kind in ("untrained", "weights") else None,
            num_classes=args.num_classes, store=args.store, dataset=args.dataset, seed=args.seed,
            device=args.device))
    labels = [s.display for s in sources]
    if len(set(labels)) != len(labels):
        for k, s in enumerate(sources):  # the same name twice: disambiguate
            s.label = f"{s.display}#{k}"
        labels = [s.display for s in sources]
    brain = args.allen_cache is not None or args.neural is not None
    rsa = (lambda srcs: score_brain(args, srcs, args._cfg, args._selection)) if brain else None
    cfg = ReportConfig(rf_inputs=args.rf_inputs, n_inputs=args.n_inputs, rf_images=args.rf_images,
                       rf_allen_cache=args.allen_cache, p_max=args.p_max, seed=args.seed,
                       eval_dataset=args.eval_dataset, data_dir=args.data_dir,
                       eval_split=args.eval_split, batch_size=args.eval_batch_size)
    res = run_report(sources, cfg, rsa=rsa, device=args.device, progress=args.progress)
    elapsed = time.perf_counter() - t0

    if res.rsa is not None:
        print_brain(res.rsa, args._selection)
    summ = summary_table(res)
    with pd.option_context("display.width", 160, "display.max_columns", 30,
                           "display.max_colwidth", 40):
        print(summ.drop(columns=["source"]).to_string(index=False))
    if "v1" in summ.attrs:
        print(f"mouse V1 L2/3 (Rossi et al. 2020): MPND p = {summ.attrs['v1']}")
    for note in res.notes:
        print(f"note: {note}")
    with staged_output(args.out) as stage:
        write_csv(res.measures, stage / "report.csv")
        write_csv(res.models, stage / "report_models.csv")
        write_csv(res.mpnd_fits, stage / "mpnd_fits.csv")
        write_csv(res.mpnd_summary, stage / "mpnd_summary.csv")
        write_csv(res.masks, stage / "lp_masks.csv")
        figures = {}
        order = ["v1"] + [s.display for s in sources]
        figures["mpnd"] = plot_mpnd_p(res.mpnd_fits, order, stage / "report_mpnd_p.png",
                                      p_max=args.p_max)
        if len(res.masks):
            figures["masks"] = plot_masks_summary(res.masks, stage / "report_lp_masks.png",
                                                  [s.display for s in sources])
        if res.rsa is not None:
            from neurolp.rsa.plots import plot_heatmap, plot_layer_profiles

            r = res.rsa
            write_csv(r.scores, stage / "rsa_scores.csv")
            write_csv(r.maxima, stage / "rsa_max.csv")
            write_csv(r.samples, stage / "rsa_samples.csv")
            write_csv(r.brain_report, stage / "brain.csv")
            write_csv(r.layer_info, stage / "layers.csv")
            write_csv(r.excluded, stage / "excluded.csv")
            if r.reliability is not None:
                write_csv(r.reliability, stage / "reliability.csv")
            figures["rsa_best"] = plot_best_rsa(r.maxima, r.scores, stage / "report_rsa_best.png",
                                                labels)
            figures["rsa_profiles"] = plot_layer_profiles(r.scores, stage / "report_rsa_layers.png",
                                                          models=[s.display for s in sources])
            if len(sources) > 1:   # the Fig. 6b comparison of the max over layers and areas
                from neurolp.rsa.plots import max_comparison, plot_max_comparison

                per, tests = max_comparison(r.samples, r.maxima, order=labels)
                write_csv(tests, stage / "rsa_max_tests.csv")
                figures["rsa_max"] = plot_max_comparison(per, r.maxima, tests,
                                                         stage / "report_rsa_max_comparison.png")
            for m in pd.unique(r.scores["model"]):
                safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in str(m))
                figures[f"heatmap:{m}"] = plot_heatmap(r.scores, stage / f"rsa_heatmap_{safe}.png",
                                                       model=m)
        if len(res.accuracy):
            write_csv(res.accuracy, stage / "accuracy.csv")
            figures["accuracy"] = plot_accuracy(res.accuracy, stage / "report_accuracy.png")
        command = "neurolp " + " ".join(shlex.quote(a) for a in sys.argv[1:]) \
            if sys.argv and sys.argv[0].endswith(("neurolp", "__main__.py")) else ""
        page = render_html(res, figures, title=args.title, command=command,
                           provenance={"git_commit": git_commit(), "seed": args.seed})
        atomic_write_text(stage / "report.html", page)
        config = {k: v for k, v in vars(args).items() if not k.startswith("_")}
        write_run_record(stage, "report", config, extra={
            "models": res.models.to_dict("records"),
            "rsa_config": args._cfg.to_dict() if brain else None,
            "rsa_selection": res.rsa.selection if res.rsa is not None else None,
            "rsa_stimuli": res.rsa.stimuli if res.rsa is not None else None,
            "notes": res.notes, "seconds": round(elapsed, 2),
            "timings": {k: round(v, 2) for k, v in res.timings.items()},
            "rsa_timings": ({k: round(v, 2) for k, v in res.rsa.timings.items()}
                            if res.rsa is not None else None)})
    print(f"wrote {args.out}: report.csv ({len(res.measures)} rows), report.html, "
          f"{len(figures)} figures, run.json")
    print(f"done in {elapsed:.1f} s (" + ", ".join(f"{k} {v:.1f} s" for k, v in res.timings.items())
          + ")")
    return 0
