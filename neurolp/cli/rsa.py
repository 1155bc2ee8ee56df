"""RSA between CNN layers and mouse visual cortex on the 118 Allen natural scenes (paper §6), or
against any neural data set (--neural FILE --images DIR|NPY).

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

Neural data (--neural FILE, instead of --allen-cache), an npz or HDF5 file holding either
  rsm/<site>: [n, n] RSMs, or [k, n, n] for k subjects (a plain key <site>: one [n, n] RSM);
  rdm/<site>: dissimilarities, converted (correlation distance → 1 − d; others → −d), with
    'dissimilarity_measure';
  responses/<site>[/<subject>]: [images, trials, neurons] (NaN pads whole trials);
plus 'stimuli' (the stimulus order: image names, or integer rows of --images NPY, −1 = blank),
ceiling/<site> (a number or [lower, upper], used and reported as given), subjects/<site> and
'ceiling_comparator'; or an rsatoolbox RDMs HDF5 file (RDMs.save; sites and subjects from its rdm
descriptors, stimuli from its pattern descriptors). Responses become RSMs and ceilings exactly
as the Allen data (optionally only neurons with split-half reliability >= --reliability).
rsa_scores.csv keeps its columns: area = site, mouse = subject.

Examples:
  neurolp rsa --model lp2-resnet18 --allen-cache ~/allen --out out/rsa
  neurolp rsa --model base-resnet18 lp2-resnet18 lp16-resnet18 --allen-cache ~/allen --out out/fig6
  neurolp rsa --model lp2-resnet18 --allen-cache ~/allen --preset lpconv --out out/rsa_anchor
  neurolp rsa --model lp2-resnet18 --neural v1_rsms.npz --images stimuli/ --out out/rsa_v1
  neurolp rsa --model lp2-resnet18 --neural spikes.h5 --images scenes.npy --reliability 0.5
"""

from __future__ import annotations

NAME = "rsa"
HELP = ("RSA of model layers against Allen mouse visual cortex or any neural data set "
        "(noise-corrected Kendall τ)")


def add_arguments(parser) -> None:
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
    model_side_args(g)
    brain_args(parser)
    rsa_args(parser.add_argument_group("RSA"))
    o = parser.add_argument_group("output")
    o.add_argument("--out", type=OutDir(), metavar="DIR", help="write tables, figures and run.json here")
    o.add_argument("--save-rsms", action="store_true", help="also write rsms.npz (brain and layers)")
    o.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    o.add_argument("--no-progress", dest="progress", action="store_false")


def model_side_args(g) -> None:
    """Layers, stimulus preprocessing and memory control (shared with `neurolp report`)."""
    from neurolp.cli.options import Int

    g.add_argument("--layers", nargs="+", metavar="MODULE",
                   help="module names (default: every conv layer)")
    g.add_argument("--stimuli", choices=["checkpoint", "anchor"],
                   help="input preprocessing (preset default: checkpoint / anchor)")
    g.add_argument("--crop", choices=["left", "center", "pad", "stretch"],
                   help="how a non-square image becomes square before the resize (default: left "
                        "for the Allen scenes, as the anchor; center for --images)")
    g.add_argument("--batch-size", type=Int(1, 1 << 16), help="images per forward pass (default: all)")
    g.add_argument("--max-features", type=Int(2), help="reduce layers with more units than this")
    g.add_argument("--reduce", choices=["pool", "project"], help="how to reduce big layers")


def brain_args(parser) -> None:
    """The brain data options: an Allen cache or a --neural file (shared with `neurolp report`)."""
    from neurolp.cli.allen import selection_args
    from neurolp.cli.options import Float, Int

    b = parser.add_argument_group("brain data (Allen Brain Observatory)")
    selection_args(b, cache_flag="--allen-cache", required=False)
    b.add_argument("--allow-partial", action="store_true",
                   help="use the experiments present when some are missing (reported)")
    b.add_argument("--signal", choices=["events", "dff"])
    b.add_argument("--window", nargs=2, type=Int(0, 1000), metavar=("START", "FRAMES"),
                   help="response window after onset, in 2-photon frames (default 0 15)")
    b.add_argument("--baseline-frames", type=Int(0, 1000), help="subtract the mean of N pre-onset frames")
    b.add_argument("--min-neurons", type=Int(1), help="mice with fewer usable neurons are left out")
    b.add_argument("--reliability", type=Float(-1, 1), metavar="R",
                   help="keep only neurons whose split-half reliability (Spearman–Brown corrected, "
                        "averaged over --reliability-splits random splits) is >= R")
    b.add_argument("--reliability-splits", type=Int(1, 10_000), metavar="N",
                   help="random trial splits for --reliability (default 10)")
    neural_args(parser.add_argument_group("neural data (instead of --allen-cache)"))


def rsa_args(s) -> None:
    """Preset and scoring options (shared with `neurolp report`)."""
    from neurolp.cli.options import Int

    s.add_argument("--preset", choices=["default", "lpconv"], default="default")
    s.add_argument("--population", choices=["mouse", "pooled"])
    s.add_argument("--comparator", choices=["tau_a", "tau_b", "spearman", "pearson"])
    s.add_argument("--normalise-by", choices=["lower", "upper", "split-half", "none"],
                   help="noise ceiling to divide by (none: raw scores); --neural default: chosen "
                        "by the data")
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


def neural_args(g) -> None:
    """The --neural options (shared with `neurolp report`)."""
    from neurolp.cli.options import InPath

    g.add_argument("--neural", type=InPath("file"), metavar="FILE",
                   help="neural data: RSMs/RDMs or responses per site (npz or HDF5), or an "
                        "rsatoolbox RDMs HDF5 file (the layouts: `neurolp rsa --help`)")
    g.add_argument("--images", type=InPath("any"), metavar="DIR|NPY",
                   help="the stimuli of --neural: a folder of image files (matched by the file's "
                        "stimulus names) or a .npy [n, H, W(, 3)] / .npz (images, names) array")
    g.add_argument("--blank", default="blank", metavar="NAME",
                   help="the stimulus name of a blank grey screen (no image file needed: drawn at "
                        "the images' mean intensity; index -1 with an array)")
    g.add_argument("--sites", nargs="+", metavar="SITE", help="only these sites of --neural")
    g.add_argument("--site-descriptor", metavar="NAME",
                   help="rsatoolbox file: the rdm descriptor naming the site (default: the first "
                        "of site, area, roi, region, ...)")
    g.add_argument("--subject-descriptor", metavar="NAME",
                   help="rsatoolbox file: the rdm descriptor naming the subject (default: subject, "
                        "subj, ..., else the RDM index)")
    g.add_argument("--stimulus-descriptor", metavar="NAME",
                   help="rsatoolbox file: the pattern descriptor naming the stimuli (default: "
                        "stimulus, image, ..., else index)")


_ALLEN_ONLY = ("signal", "window", "baseline_frames", "allow_partial")
_NEURAL_ONLY = ("images", "sites", "site_descriptor", "subject_descriptor", "stimulus_descriptor")


def check_brain_source(args, *, optional: bool = False) -> None:
    """Exactly one of --allen-cache / --neural (or neither when ``optional``); with --neural, read
    and check the file and its --images now, before any model is loaded (``args._neural``,
    ``args._images``)."""
    from neurolp.brain.selection import PAPER_AREAS, PAPER_CRE_LINES, PAPER_DEPTHS
    from neurolp.cli.options import exclusive, require

    exclusive(args, "--allen-cache", "--neural")
    require(optional or args.allen_cache is not None or args.neural is not None,
            "give the brain data: --allen-cache DIR (Allen Brain Observatory) or --neural FILE "
            "--images DIR|NPY (any neural data set)")
    args._neural = args._images = None
    if args.neural is None:
        for name in _NEURAL_ONLY:
            require(getattr(args, name, None) is None,
                    f"--{name.replace('_', '-')} only applies to --neural FILE")
        return
    for name in _ALLEN_ONLY:
        require(getattr(args, name, None) in (None, False),
                f"--{name.replace('_', '-')} only applies to --allen-cache (responses in --neural "
                "files are used as given)")
    for name, default in (("areas", PAPER_AREAS), ("cre_lines", PAPER_CRE_LINES),
                          ("depths", PAPER_DEPTHS)):
        require(list(getattr(args, name)) == list(default),
                f"--{name.replace('_', '-')} selects Allen experiments; with --neural choose sites "
                "with --sites")
    require(args.images is not None, "--neural needs --images DIR|NPY: the stimuli the neural "
                                     "data were recorded with (a folder of image files or an array)")
    from neurolp.brain.neural import load_neural
    from neurolp.brain.stimuli import load_stimulus_images

    data = load_neural(args.neural, site_descriptor=args.site_descriptor,
                       subject_descriptor=args.subject_descriptor,
                       stimulus_descriptor=args.stimulus_descriptor)
    if args.sites:
        from neurolp.utils.checks import check_choices

        keep = set(check_choices(args.sites, "--sites", data.sites, what="site"))
        data.sites = [s for s in data.sites if s in keep]
        for table in (data.rsms, data.subjects, data.responses, data.ceilings):
            for s in [s for s in table if s not in keep]:
                del table[s]
    args._neural = data
    args._images = load_stimulus_images(args.images, data.order, n_stimuli=data.n_stimuli,
                                        blank=args.blank)


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
    require(args.reliability_splits is None or args.reliability is not None,
            "--reliability-splits needs --reliability R")
    args._cfg, args._notes = rsa_config(args)
    args._selection = Selection(tuple(args.areas), tuple(args.cre_lines), tuple(args.depths))


def rsa_config(args):
    """``(RSAConfig, notes)`` from the preset and the options (shared with `neurolp report`); reads
    the brain source first (:func:`check_brain_source`) so --neural defaults can follow the data."""
    from neurolp.cli.options import require
    from neurolp.rsa.pipeline import RSAConfig

    check_brain_source(args, optional=getattr(args, "_brain_optional", False))
    overrides = dict(population=args.population, comparator=args.comparator,
                     normalise_by=args.normalise_by, pool=args.pool, centre=args.centre,
                     n_boot=args.bootstrap, layer_selection=args.layer_selection,
                     n_splits=args.splits, n_trial_splits=args.trial_splits, signal=args.signal,
                     baseline_frames=args.baseline_frames, min_neurons=args.min_neurons,
                     stimuli=args.stimuli, batch_size=args.batch_size,
                     max_features=args.max_features, reduce=args.reduce, seed=args.seed,
                     threads=args.threads, mouse_draws=args.mouse_draws, crop=args.crop,
                     reliability=args.reliability, reliability_splits=args.reliability_splits)
    if getattr(args, "window", None):
        require(args.window[1] >= 1, f"--window FRAMES must be >= 1, got {args.window[1]}")
        overrides.update(window_start=args.window[0], window_frames=args.window[1])
    cfg = RSAConfig.from_preset(args.preset, **overrides)
    notes: list[str] = []
    if args._neural is not None:
        from neurolp.rsa.neural import check_neural_config, with_neural_defaults

        cfg, notes = with_neural_defaults(cfg, args._neural,
                                          normalise_given=args.normalise_by is not None,
                                          crop_given=args.crop is not None)
        check_neural_config(args._neural, cfg.validate())
    return cfg.validate(), notes


def score_brain(args, sources, cfg, selection, *, keep_rsms: bool = False):
    """``run_rsa`` on the Allen cache or ``run_rsa_neural`` on --neural (shared with `report`)."""
    if args._neural is not None:
        from neurolp.rsa.neural import run_rsa_neural

        return run_rsa_neural(sources, args._neural, args._images, cfg, layers=args.layers,
                              device=args.device, keep_rsms=keep_rsms, progress=args.progress,
                              notes=args._notes)
    from neurolp.rsa.pipeline import run_rsa

    return run_rsa(sources, args.allen_cache, cfg, selection=selection, layers=args.layers,
                   allow_partial=args.allow_partial, device=args.device, keep_rsms=keep_rsms,
                   progress=args.progress)


def print_brain(res, selection) -> None:
    """What brain data were scored against (a line or two)."""
    if res.brain_source == "neural":
        sel = res.selection
        print(f"brain: neural data {sel['neural']} ({sel['format']}, {sel['kind']}): "
              f"{len(sel['sites'])} site(s), {sel['stimuli']} stimuli in the order of "
              f"{sel['stimulus_order']}" + (f"; {sel['conversion']}" if sel["conversion"] else ""))
        if res.brain_summary is not None and len(res.brain_summary):
            print("  " + "; ".join(
                f"{r.area}: {r.subjects} subject(s)"
                + (f", {r.neurons} neurons recorded, {r.trials_min}-{r.trials_max} trials"
                   if "neurons" in res.brain_summary else "")
                + (f", ceiling given {r.ceiling_lower_given:.3g}"
                   if r.ceiling_lower_given == r.ceiling_lower_given else "")
                for r in res.brain_summary.itertuples()))
        return
    print(f"brain: {selection.describe()}")
    if res.brain_summary is not None and len(res.brain_summary):
        print("  " + "; ".join(f"{r.area}: {r.mice} mice, {r.experiments} experiments, "
                               f"{r.neurons} neurons ({r.layers})"
                               for r in res.brain_summary.itertuples()))
    print(f"responses: {res.response_params}; "
          f"{'cached artefact' if res.from_cache else 'read from the NWB/events files'}")


def run(args) -> int:
    import time

    import numpy as np
    import pandas as pd

    from neurolp.rsa.kendall import kernel_backend
    from neurolp.rsa.pipeline import load_model_source
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
        labels = [s.display for s in sources]
    res = score_brain(args, sources, cfg, selection, keep_rsms=bool(args.save_rsms))
    elapsed = time.perf_counter() - t0

    print_brain(res, selection)
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
            if res.reliability is not None:
                write_csv(res.reliability, stage / "reliability.csv")
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
                "brain_source": res.brain_source, "notes": res.notes,
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
