"""Fit MPNDs to biological and artificial receptive fields (Kwon et al. 2025, Fig. 1f–g, Table 8).

Biological RFs: the functional inputs of 17 mouse V1 L2/3 neurons (Rossi et al. 2020; embedded,
or --rossi-dir with the authors' MAT files). Artificial RFs: functional synapses of the first conv
layer (AlexNet Conv1 by default), untrained (seeded) or trained (torchvision's ImageNet weights from
the torch hub cache or --weights; never downloaded), with Gaussian-noise or natural-image inputs.

--fit converged (default) fits p to its optimum; --fit paper runs the paper's Adam on (log2 p, σ)
for --steps steps at --lr and also writes the p-trajectory (p there is where the descent stopped,
not an optimum; the converged p is in p_optimum). --sensitivity refits under other bin widths, grid
sizes, binnings, objectives and fits.

Writes to --out: mpnd_fits.csv (one row per RF), mpnd_summary.csv (median p and its bootstrap CI per
condition), mpnd_stats.csv (every pair: Mann-Whitney and Welch on log p, Holm; which test and why;
pairs with a group at a p bound are not testable), mpnd_stats_matrix.csv (Table 8 layout, rank test)
and mpnd_stats_matrix_welch_log.csv, mpnd_pmfs.csv (mean PMFs), mpnd_skipped.csv, fig1_mpnd.png;
with --fit paper mpnd_trajectory.csv and mpnd_trajectory.png; with --sensitivity
mpnd_sensitivity.csv, mpnd_sensitivity_summary.csv and mpnd_sensitivity.png; and run.json. Nothing
is written unless the whole run succeeds.
"""

from __future__ import annotations

import argparse

NAME = "fit-mpnd"
HELP = "fit MPNDs to biological (mouse V1) and artificial (conv1) receptive fields (Fig. 1)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from neurolp.cli.options import Choice, Float, InPath, Int, OutDir
    from neurolp.mpnd.defaults import FITS, PAPER_LR, PAPER_STEPS
    from neurolp.rf.conditions import CONDITIONS, DEFAULT_CONDITIONS, MIN_INPUTS, RF_KINDS

    p.add_argument("--out", type=OutDir(), default="runs/fit-mpnd", metavar="DIR", help="output folder")
    p.add_argument("--conditions", nargs="+", default=list(DEFAULT_CONDITIONS), metavar="NAME",
                   help=f"conditions (space- or comma-separated, or 'all'): {', '.join(CONDITIONS)}")
    p.add_argument("--rossi-dir", type=InPath("any"), default=None, metavar="DIR",
                   help="folder of the raw Rossi et al. 2020 MAT files (postSyn_NN.mat, spatialEX_NN.mat, "
                        "spatialIN_NN.mat) or a CSV table; default: the embedded table")
    p.add_argument("--images", type=InPath("dir"), default=None, metavar="DIR",
                   help="folder of natural images (default: the 118 Allen scenes with --allen-cache, else "
                        "photographs of natural scenes shipped in scikit-image/scikit-learn/matplotlib)")
    p.add_argument("--allen-cache", type=InPath("dir"), default=None, metavar="DIR",
                   help="Allen Brain Observatory cache folder: use its 118 natural scenes (the paper's)")
    p.add_argument("--weights", type=InPath("file"), default=None, metavar="PATH",
                   help="trained weights for the trained conditions (state_dict or .safetensors); default: "
                        "torchvision's file in the torch hub cache, if present")
    p.add_argument("--model", default="alexnet",
                   help="network whose first conv is analysed: a torchvision name or a neurolp name (lp2-alexnet)")
    p.add_argument("--n-inputs", type=Int(2, 1000), default=17, help="inputs (= artificial RFs) per condition")
    p.add_argument("--rf", type=Choice(RF_KINDS, what="RF kind"), default="pooled",
                   help="artificial RFs: pooled (one per input, all filters, one θ per input) or per-filter "
                        "(one per filter, pooled over inputs, each filter's own θ)")
    p.add_argument("--untrained-networks", type=Int(1, 1000), default=1, metavar="N",
                   help="independently seeded untrained networks (seeds seed..seed+N-1; input i uses network "
                        "i mod N), so the untrained spread is between networks")
    p.add_argument("--seed", type=Int(0), default=0, help="seed of the untrained network, noise, image draw "
                                                          "and bootstrap")
    p.add_argument("--objective", choices=("pmf", "mle"), default="pmf",
                   help="pmf: match the binned PMF (the paper's); mle: likelihood of the offsets")
    p.add_argument("--loss", choices=("mse", "kl"), default="mse",
                   help="PMF discrepancy: mse (binned L2, robust; default) or kl (binned likelihood)")
    p.add_argument("--C", dest="c_model", choices=("isotropic", "diagonal", "full"), default="isotropic",
                   help="C = diag(1/σ) (the paper's), diag(1/σx, 1/σy), or a full 2×2 matrix (these two "
                        "standardise both axes with one common scale)")
    p.add_argument("--fit", type=Choice(FITS, what="fit"), default="converged",
                   help="converged: optimise p to its optimum; paper: Adam on (log2 p, σ) for --steps steps "
                        "(the paper's early-stopped descent)")
    p.add_argument("--lr", type=Float(0, 10, min_open=True), default=argparse.SUPPRESS,
                   help=f"Adam learning rate of --fit paper (default: {PAPER_LR:g})")
    p.add_argument("--steps", type=Int(1, 1_000_000), default=argparse.SUPPRESS,
                   help=f"Adam steps of --fit paper (default: {PAPER_STEPS})")
    p.add_argument("--p-max", type=Float(2, 1024, min_open=True, hint="p_init is 2"), default=64.0,
                   help="upper bound on p (box-like RFs end here)")
    p.add_argument("--min-inputs", type=Int(2, 1_000_000), default=MIN_INPUTS,
                   help="RFs with fewer functional inputs are flagged few_inputs")
    p.add_argument("--n-boot", type=Int(100, 1_000_000), default=10000,
                   help="bootstrap resamples for the 95%% CIs of the median p")
    p.add_argument("--sensitivity", action="store_true",
                   help="also refit across bin widths, grid sizes, binnings, objectives and fits "
                        "(mpnd_sensitivity.csv/.png; about a minute)")
    p.add_argument("--no-figure", action="store_true", help="skip the figures")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def check(args) -> None:
    """Options that only make sense together, checked before any receptive field is collected."""
    from neurolp.cli.options import exclusive, require
    from neurolp.mpnd.defaults import PAPER_LR, PAPER_STEPS
    from neurolp.rf.conditions import parse_conditions
    from neurolp.rf.networks import check_model_name

    exclusive(args, "--images", "--allen-cache")
    args.conditions = [c.name for c in parse_conditions(args.conditions)]
    kinds = {c for c in args.conditions}
    uses_images = any(c.endswith("-image") for c in kinds)
    for flag, value in (("--images", args.images), ("--allen-cache", args.allen_cache)):
        require(value is None or uses_images,
                f"{flag} is only used by the *-image conditions, and none is selected "
                f"(--conditions {' '.join(args.conditions)}); add trained-image or untrained-image, or "
                f"drop {flag}")
    require(args.weights is None or any(c.startswith("trained-") for c in kinds),
            f"--weights is only used by the trained-* conditions, and none is selected (--conditions "
            f"{' '.join(args.conditions)}); add trained-image or trained-noise, or drop --weights")
    require(args.rossi_dir is None or any(c.startswith("v1") for c in kinds),
            "--rossi-dir is only used by the v1 conditions, and none is selected; add v1 or drop "
            "--rossi-dir")
    for flag, value in (("--lr", getattr(args, "lr", None)), ("--steps", getattr(args, "steps", None))):
        require(value is None or args.fit == "paper",
                f"{flag} {value} only applies to --fit paper (the converged fit runs to its optimum); add "
                f"--fit paper or drop {flag}")
    args.lr = getattr(args, "lr", PAPER_LR)
    args.steps = getattr(args, "steps", PAPER_STEPS)
    artificial = any(not c.startswith("v1") for c in kinds)
    require(args.rf == "pooled" or artificial,
            "--rf per-filter only changes the artificial (*-noise, *-image) conditions, and none is selected; "
            "add one or drop --rf")
    if args.untrained_networks > 1:
        require(any(c.startswith("untrained-") for c in kinds),
                f"--untrained-networks {args.untrained_networks} only applies to the untrained-* conditions, "
                "and none is selected; add untrained-noise or untrained-image, or drop it")
        require(args.untrained_networks <= args.n_inputs,
                f"--untrained-networks {args.untrained_networks} is more than --n-inputs {args.n_inputs} "
                "(input i uses network i mod N, so extra networks would see no input); lower it or raise "
                "--n-inputs")
        require(args.rf == "pooled",
                f"--untrained-networks {args.untrained_networks} needs --rf pooled: per-filter RFs are the "
                "units of one network")
    require(not args.sensitivity or args.c_model == "isotropic",
            f"--sensitivity varies the binning, objective and fit of the paper's isotropic model; it does "
            f"not take --C {args.c_model} (drop one of them)")
    if artificial:
        check_model_name(args.model)


def run(args) -> int:
    import time

    from neurolp.rf.conditions import run_fit_mpnd
    from neurolp.utils.io import staged_output, write_csv, write_run_record
    from neurolp.utils.runtime import seed_everything

    t0 = time.perf_counter()
    seed_everything(args.seed)
    res = run_fit_mpnd(args.conditions, rossi=args.rossi_dir, images=args.images,
                       allen_cache=args.allen_cache, weights=args.weights, model=args.model,
                       n_inputs=args.n_inputs, seed=args.seed, objective=args.objective,
                       loss=args.loss, C=args.c_model, p_max=args.p_max, fit=args.fit, lr=args.lr,
                       steps=args.steps, rf=args.rf, untrained_networks=args.untrained_networks,
                       min_inputs=args.min_inputs, n_boot=args.n_boot, sensitivity=args.sensitivity,
                       progress=not args.quiet)
    elapsed = time.perf_counter() - t0
    files = ["mpnd_fits.csv", "mpnd_summary.csv", "mpnd_stats.csv", "mpnd_stats_matrix.csv",
             "mpnd_stats_matrix_welch_log.csv", "mpnd_pmfs.csv", "mpnd_skipped.csv"]
    with staged_output(args.out) as stage:
        write_csv(res.fits, stage / "mpnd_fits.csv")
        write_csv(res.summary, stage / "mpnd_summary.csv")
        write_csv(res.stats, stage / "mpnd_stats.csv")
        write_csv(res.matrix, stage / "mpnd_stats_matrix.csv", index=True)
        write_csv(res.matrix_welch, stage / "mpnd_stats_matrix_welch_log.csv", index=True)
        write_csv(res.pmfs, stage / "mpnd_pmfs.csv")
        write_csv(res.skipped, stage / "mpnd_skipped.csv")
        if res.trajectory is not None:
            write_csv(res.trajectory, stage / "mpnd_trajectory.csv")
            files.append("mpnd_trajectory.csv")
        if res.sensitivity is not None:
            write_csv(res.sensitivity, stage / "mpnd_sensitivity.csv")
            write_csv(res.sensitivity_summary, stage / "mpnd_sensitivity_summary.csv")
            files += ["mpnd_sensitivity.csv", "mpnd_sensitivity_summary.csv"]
        if not args.no_figure:
            files += _figures(res, stage, args.p_max)
        write_run_record(stage, "fit-mpnd", res.config, extra={
            "skipped": res.skipped.to_dict(orient="records"), "notes": res.notes,
            "summary": res.summary.to_dict(orient="records"), "seconds": round(elapsed, 2)})
    print(_summary_text(res, args.out, elapsed, files))
    return 0


def _figures(res, stage, p_max) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    from neurolp.rf.plots import plot_fig1, plot_sensitivity, plot_trajectory
    from neurolp.utils.io import save_figure

    stats = res.stats[res.stats["primary"]]
    fig = plot_fig1(res.fits, res.pmfs, stats, res.skipped, order=res.config["conditions"], p_max=p_max,
                    footer=provenance(res.config))
    save_figure(fig, stage / "fig1_mpnd.png", dpi=160)
    made = ["fig1_mpnd.png"]
    if res.trajectory is not None and len(res.trajectory):
        fig = plot_trajectory(res.trajectory, res.fits, order=res.config["conditions"], p_max=p_max,
                              footer=provenance(res.config))
        save_figure(fig, stage / "mpnd_trajectory.png", dpi=160)
        made.append("mpnd_trajectory.png")
    if res.sensitivity is not None and len(res.sensitivity):
        fig = plot_sensitivity(res.sensitivity, order=res.config["conditions"], footer=provenance(res.config))
        save_figure(fig, stage / "mpnd_sensitivity.png", dpi=160)
        made.append("mpnd_sensitivity.png")
    return made


def provenance(config: dict) -> str:
    """One line saying what made a Fig. 1 plot (for its footer)."""
    fit = config["objective"] + (f"/{config['loss']}" if config["objective"] == "pmf" else "")
    if config.get("fit") == "paper":
        fit += f", paper fit (Adam, lr {config['lr']:g}, {config['steps']} steps)"
    rossi = config.get("rossi") or "embedded Rossi et al. 2020 table"
    images = config.get("allen_cache") or config.get("images") or "natural-scene photographs shipped in wheels"
    rf = config.get("rf", "pooled")
    nets = config.get("untrained_networks", 1)
    return (f"neurolp fit-mpnd: {fit} fit, C {config['C']}, {config['bins']}, p_max {config['p_max']:g}; "
            f"V1: {rossi}; conv: {config['model']} (seed {config['seed']}"
            + (f", {nets} untrained networks" if nets > 1 else "") + f"), {rf} RFs, "
            f"{config['n_inputs']} inputs, images: {images}")


def _summary_text(res, out, elapsed, files=()) -> str:
    cfg = res.config
    fit = (f"paper fit: Adam lr {cfg['lr']:g}, {cfg['steps']} steps" if cfg.get("fit") == "paper"
           else "converged fit")
    lines = [f"MPND fits ({cfg['objective']}" + (f", {cfg['loss']}" if cfg["objective"] == "pmf" else "")
             + f", C {cfg['C']}, {fit}, {cfg.get('rf', 'pooled')} RFs) — {len(res.fits)} receptive fields, "
             f"{elapsed:.1f} s", ""]
    sm = res.summary
    at_min = int(sm["p_at_min"].sum())
    paper = cfg.get("fit") == "paper"
    head = (f"  {'condition':<20} {'n':>3}  {'median p [95% CI]':<24} {'IQR':>15}  {'converged':>9}  "
            f"{'at p_max':>8}" + (f"  {'at p = 1':>8}" if at_min else "") + f"  {'few inputs':>10}"
            + (f"  {'converged p':>11}" if paper else ""))
    lines += [head, "  " + "-" * (len(head) - 2)]
    for r in sm.itertuples(index=False):
        iqr = f"[{r.q25_p:.3g}, {r.q75_p:.3g}]"
        lines.append(f"  {r.label:<20} {r.n:>3}  {r.display:<24} {iqr:>15}  {r.converged:>5}/{r.n:<3}"
                     f"  {r.p_at_max:>8}" + (f"  {r.p_at_min:>8}" if at_min else "") + f"  {r.few_inputs:>10}"
                     + (f"  {r.median_p_optimum:>11.3g}" if paper else ""))
    for s in res.skipped.itertuples(index=False):
        lines.append(f"  skipped {s.condition}: {s.reason}")
    for note in res.notes:
        lines.append(f"  note: {note}")
    if paper:
        lines.append(f"  note: the paper fit stops after {cfg['steps']} Adam steps: p is a point on the descent "
                     "(mpnd_trajectory.csv), not an optimum; 'converged' counts fits within 1.4 % of the "
                     "optimum the descent leads to ('converged p', column p_optimum)")
    if (sm["p_at_max"] > 0).any():
        lines.append(f"  note: p = p_max ({cfg['p_max']:g}) marks a box-like RF (flat with a sharp edge, "
                     "e.g. uniform over the kernel): its best MPND has p → ∞, so the group reads '≥ p_max'")
    if at_min:
        lines.append("  note: p = 1 is the lower bound (a Laplace-like, sharply peaked RF): its best MPND "
                     "may have p < 1, which Lp-masks do not allow")
    if (sm["few_inputs"] > 0).any():
        lines.append(f"  note: 'few inputs' = RFs with fewer than {cfg.get('min_inputs')} functional inputs "
                     "(their p is poorly determined; flagged few_inputs in mpnd_fits.csv)")
    prim = res.stats[res.stats["primary"].astype(bool)] if "primary" in res.stats else res.stats.iloc[:0]
    if len(prim):
        lines.append("")
        lines.append("  Mann-Whitney U on p, Holm-corrected (and Welch on log p: mpnd_stats.csv):")
        for r in prim.itertuples(index=False):
            verdict = (f"{r.stars} (p = {r.p_holm:.2g})" if r.testable else
                       "not testable: a group is at a p bound" + ("; no overlap" if "no overlap" in r.note else ""))
            lines.append(f"    {r.group_a} ({r.median_a:.3g}) {r.direction} {r.group_b} ({r.median_b:.3g}): {verdict}")
    if res.sensitivity_summary is not None:
        from neurolp.rf.sensitivity import summary_lines

        lines.append("")
        lines.append("  Sensitivity (mpnd_sensitivity.csv): median p of each condition across binnings")
        lines += summary_lines(res.sensitivity_summary)
    lines.append(f"\nwrote {', '.join(files)}, run.json to {out}")
    return "\n".join(lines)
