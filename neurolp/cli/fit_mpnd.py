"""Fit MPNDs to biological and artificial receptive fields (Kwon et al. 2025, Fig. 1f–g, Table 8).

Biological RFs: the functional inputs of 17 mouse V1 L2/3 neurons (Rossi et al. 2020; embedded,
or --rossi-dir with the authors' MAT files). Artificial RFs: functional synapses of the first conv
layer (AlexNet Conv1 by default), untrained (seeded) or trained (torchvision's ImageNet weights from
the torch hub cache or --weights; never downloaded), with Gaussian-noise or natural-image inputs.

Writes to --out: mpnd_fits.csv (one row per RF), mpnd_stats.csv (pairwise Welch + Holm),
mpnd_stats_matrix.csv (Table 8 layout), mpnd_pmfs.csv (mean PMFs), mpnd_skipped.csv,
fig1_mpnd.png and run.json. Nothing is written unless the whole run succeeds.
"""

from __future__ import annotations

import argparse

NAME = "fit-mpnd"
HELP = "fit MPNDs to biological (mouse V1) and artificial (conv1) receptive fields (Fig. 1)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from neurolp.cli.options import Float, InPath, Int, OutDir
    from neurolp.rf.conditions import CONDITIONS, DEFAULT_CONDITIONS

    p.add_argument("--out", type=OutDir(), default="runs/fit-mpnd", metavar="DIR", help="output folder")
    p.add_argument("--conditions", nargs="+", default=list(DEFAULT_CONDITIONS), metavar="NAME",
                   help=f"conditions (space- or comma-separated, or 'all'): {', '.join(CONDITIONS)}")
    p.add_argument("--rossi-dir", type=InPath("any"), default=None, metavar="DIR",
                   help="folder of the raw Rossi et al. 2020 MAT files (postSyn_NN.mat, spatialEX_NN.mat, "
                        "spatialIN_NN.mat) or a CSV table; default: the embedded table")
    p.add_argument("--images", type=InPath("dir"), default=None, metavar="DIR",
                   help="folder of natural images (default: Allen scenes with --allen-cache, else photographs "
                        "shipped in scikit-image/scikit-learn/matplotlib)")
    p.add_argument("--allen-cache", type=InPath("dir"), default=None, metavar="DIR",
                   help="Allen Brain Observatory cache folder: use its 118 natural scenes (the paper's)")
    p.add_argument("--weights", type=InPath("file"), default=None, metavar="PATH",
                   help="trained weights for the trained conditions (state_dict or .safetensors); default: "
                        "torchvision's file in the torch hub cache, if present")
    p.add_argument("--model", default="alexnet",
                   help="network whose first conv is analysed: a torchvision name or a neurolp name (lp2-alexnet)")
    p.add_argument("--n-inputs", type=Int(2, 1000), default=17, help="inputs (= artificial RFs) per condition")
    p.add_argument("--seed", type=Int(0), default=0, help="seed of the untrained network, noise and image draw")
    p.add_argument("--objective", choices=("pmf", "mle"), default="pmf",
                   help="pmf: match the binned PMF (the paper's); mle: likelihood of the offsets")
    p.add_argument("--loss", choices=("mse", "kl"), default="mse",
                   help="PMF discrepancy: mse (binned L2, robust; default) or kl (binned likelihood)")
    p.add_argument("--C", dest="c_model", choices=("isotropic", "diagonal", "full"), default="isotropic",
                   help="C = diag(1/σ) (the paper's), diag(1/σx, 1/σy), or a full 2×2 matrix")
    p.add_argument("--p-max", type=Float(2, 1024, min_open=True, hint="p_init is 2"), default=64.0,
                   help="upper bound on p (box-like RFs end here)")
    p.add_argument("--no-figure", action="store_true", help="skip fig1_mpnd.png")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def check(args) -> None:
    """Options that only make sense together, checked before any receptive field is collected."""
    from neurolp.cli.options import exclusive, require
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
    if any(not c.startswith("v1") for c in kinds):
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
                       loss=args.loss, C=args.c_model, p_max=args.p_max, progress=not args.quiet)
    elapsed = time.perf_counter() - t0
    with staged_output(args.out) as stage:
        write_csv(res.fits, stage / "mpnd_fits.csv")
        write_csv(res.stats, stage / "mpnd_stats.csv")
        write_csv(res.matrix, stage / "mpnd_stats_matrix.csv", index=True)
        write_csv(res.pmfs, stage / "mpnd_pmfs.csv")
        write_csv(res.skipped, stage / "mpnd_skipped.csv")
        if not args.no_figure:
            _figure(res, stage / "fig1_mpnd.png", args.p_max)
        write_run_record(stage, "fit-mpnd", res.config, extra={
            "skipped": res.skipped.to_dict(orient="records"), "notes": res.notes,
            "summary": res.summary.to_dict(orient="records"), "seconds": round(elapsed, 2)})
    print(_summary_text(res, args.out, elapsed, args.no_figure))
    return 0


def _figure(res, path, p_max) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from neurolp.rf.plots import plot_fig1
    from neurolp.utils.io import save_figure

    fig = plot_fig1(res.fits, res.pmfs, res.stats, res.skipped, order=res.config["conditions"], p_max=p_max,
                    footer=provenance(res.config))
    save_figure(fig, path, dpi=160)


def provenance(config: dict) -> str:
    """One line saying what made a Fig. 1 plot (for its footer)."""
    fit = config["objective"] + (f"/{config['loss']}" if config["objective"] == "pmf" else "")
    rossi = config.get("rossi") or "embedded Rossi et al. 2020 table"
    images = config.get("allen_cache") or config.get("images") or "photographs shipped in wheels"
    return (f"neurolp fit-mpnd: {fit} fit, C {config['C']}, {config['bins']}, p_max {config['p_max']:g}; "
            f"V1: {rossi}; conv: {config['model']} (seed {config['seed']}), {config['n_inputs']} inputs, "
            f"images: {images}")


def _summary_text(res, out, elapsed, no_figure=False) -> str:
    lines = [f"MPND fits ({res.config['objective']}"
             + (f", {res.config['loss']}" if res.config["objective"] == "pmf" else "")
             + f", C {res.config['C']}) — {len(res.fits)} receptive fields, {elapsed:.1f} s", ""]
    at_min = int(res.summary["p_at_min"].sum()) if "p_at_min" in res.summary else 0
    head = (f"  {'condition':<20} {'n':>3}  {'median p':>9}  {'IQR':>15}  {'converged':>9}  {'at p_max':>8}"
            + (f"  {'at p = 1':>8}" if at_min else ""))
    lines += [head, "  " + "-" * (len(head) - 2)]
    for r in res.summary.itertuples(index=False):
        iqr = f"[{r.q25_p:.3g}, {r.q75_p:.3g}]"
        lines.append(f"  {r.label:<20} {r.n:>3}  {r.median_p:>9.3g}  {iqr:>15}  {r.converged:>5}/{r.n:<3}"
                     f"  {r.p_at_max:>8}" + (f"  {r.p_at_min:>8}" if at_min else ""))
    for s in res.skipped.itertuples(index=False):
        lines.append(f"  skipped {s.condition}: {s.reason}")
    for note in res.notes:
        lines.append(f"  note: {note}")
    if (res.summary["p_at_max"] > 0).any():
        lines.append(f"  note: p = p_max ({res.config['p_max']:g}) marks a box-like RF (flat with a sharp edge, "
                     "e.g. uniform over the kernel): its best MPND has p → ∞")
    if at_min:
        lines.append("  note: p = 1 is the lower bound (a Laplace-like, sharply peaked RF): its best MPND "
                     "may have p < 1, which Lp-masks do not allow")
    sig = res.stats[res.stats["stars"] != "n/a"]
    if len(sig):
        lines.append("")
        lines.append("  Welch's t-test on p, Holm-corrected: " + "; ".join(
            f"{a} vs {b}: {s}" for a, b, s in zip(sig["group_a"], sig["group_b"], sig["stars"])))
    files = ["mpnd_fits.csv", "mpnd_stats.csv", "mpnd_stats_matrix.csv", "mpnd_pmfs.csv", "mpnd_skipped.csv"]
    files += [] if no_figure else ["fig1_mpnd.png"]
    lines.append(f"\nwrote {', '.join(files)}, run.json to {out}")
    return "\n".join(lines)
