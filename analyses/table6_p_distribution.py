"""Tables 6–7 and Figs. 15–16: distribution of the trained p of Lp-masks, per layer, from checkpoints.

For every lp{p}- checkpoint in the given folders/files (default: the checkpoint store), every
Lp-mask's p (with α, θ, γ from the SVD of C) is read with neurolp.layers.mask_table. Written into
--out (default figures/table6):

  p_masks.csv       one row per mask: model, arch, p_init, dataset, seed, layer, depth, channel, p, ...
  table6.csv        median and std of p per dataset × arch × p_init × layer depth (seeds pooled)
  table6.md/.tex    the Tables 6–7 layout
  p_hist.png        histogram of p per p_init (Figs. 15–16)
  masks_<model>_L<depth>.png   Fig. 2f–g-style mask grids of the newest checkpoint of each model
                    (first --plot-layers layers)
  run.json

    python analyses/table6_p_distribution.py --dataset tinyimagenet
"""

from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sources", nargs="*", help="checkpoint files or folders (default: the store)")
    p.add_argument("--dataset", help="only this dataset")
    p.add_argument("--plot-layers", type=int, default=2, help="mask grids for the first N layers")
    p.add_argument("--out", default="figures/table6")
    args = p.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from neurolp.errors import NeurolpError
    from neurolp.layers import lp_layers, plot_masks
    from neurolp.train.checkpoint import load_model
    from neurolp.train.tables import format_p_table, p_distribution, p_summary
    from neurolp.utils import atomic_write_text, staged_output, write_csv, write_run_record

    try:
        masks = p_distribution(args.sources or None)
        if args.dataset and not masks.empty:
            masks = masks[masks["dataset"] == args.dataset]
        summary = p_summary(masks)
        with staged_output(args.out) as stage:
            write_csv(masks, stage / "p_masks.csv")
            write_csv(summary, stage / "table6.csv")
            atomic_write_text(stage / "table6.md", format_p_table(summary, "markdown"))
            atomic_write_text(stage / "table6.tex", format_p_table(summary, "latex"))
            fig, ax = plt.subplots(figsize=(5, 3.2))
            for p_init, g in masks.groupby("p_init"):
                ax.hist(g["p"], bins=60, alpha=0.6, label=f"p_init = {p_init:g}")
            ax.set_xlabel("trained p")
            ax.set_ylabel("Lp-masks")
            ax.legend(fontsize=8)
            fig.tight_layout()
            fig.savefig(stage / "p_hist.png", dpi=150)
            plt.close(fig)
            for model_name, g in masks.groupby("model"):
                model, meta = load_model(g["path"].iloc[-1])
                for depth, (name, layer) in enumerate(lp_layers(model)[: args.plot_layers], start=1):
                    fig = plot_masks(layer, n=16, title=f"{model_name} ({meta.get('dataset')}, seed "
                                                        f"{meta.get('seed')}), {name}")
                    fig.savefig(stage / f"masks_{model_name}_L{depth}.png", dpi=150)
                    plt.close(fig)
            write_run_record(stage, "analyses/table6_p_distribution.py", vars(args),
                             {"skipped_without_lp_layers": masks.attrs.get("skipped", [])})
    except NeurolpError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_p_table(summary, "markdown"))
    if masks.attrs.get("skipped"):
        print(f"note: {len(masks.attrs['skipped'])} checkpoint(s) without Lp layers were left out")
    print(f"wrote {args.out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
