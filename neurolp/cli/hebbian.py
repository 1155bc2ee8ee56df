"""Hebbian networks (Krotov & Hopfield 2019 in conv layers; Manzali 2021): train the first n layers
of the Amato et al. network without labels, layer by layer, then a supervised head (BatchNorm →
dropout → linear, SGD) on the frozen features; or, with --supervised, the same n layers end to end
by SGD (the control).

`--preset slides` uses the slides' CIFAR-10 hyper-parameters (batch 64; conv lr 0.007 → 1e-4,
λ = 0.8; linear lr 0.1 → 0.005, λ = 0.1; patience 10 batches; threshold 1e-2; head: SGD 0.05,
momentum 0.9, warm restarts T₀ = 10, T_mult = 2, 150 epochs) and the best p, k, Δ, dropout of
their Table 1 for n layers; `--preset quick` suits the 1,300 training digits (see
neurolp.hebbian.train.PRESETS). Explicit options override the preset.

Writes to --out: model.safetensors (a neurolp checkpoint: `neurolp eval`, `neurolp rsa --model`,
`neurolp fit-mpnd --model hebb1-amato --weights DIR/model.safetensors`), hebbian_history.csv (the
convergence metric per batch and layer), head_history.csv (per epoch), metrics.json,
fig_hebbian.png (convergence curves and the first layer's filters) and run.json.

Examples:
  neurolp hebbian train --layers 1 --dataset digits --preset quick --seed 0 --out runs/hebb1_digits
  neurolp hebbian train --layers 2 --supervised --dataset digits --preset quick --out runs/sgd2_digits
  neurolp hebbian train --layers 1 --dataset cifar10 --data-dir ~/data --device cuda --out runs/hebb1_c10
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

NAME = "hebbian"
HELP = "Hebbian (Krotov-Hopfield) Amato networks: layer-wise unsupervised training + supervised head"

S = argparse.SUPPRESS


def add_arguments(parser) -> None:
    from neurolp.cli.options import Choice, Float, InPath, Int, OutDir

    sub = parser.add_subparsers(dest="hebbian_command", metavar="SUBCOMMAND", parser_class=type(parser))
    t = sub.add_parser("train", help="train hebb{n}-amato (or sgd{n}-amato with --supervised)",
                       description=__doc__, formatter_class=parser.formatter_class)
    t.add_argument("--layers", type=Int(1, 5), default=1, help="n: Hebbian layers (Amato: 4 convs + linear)")
    t.add_argument("--supervised", action="store_true", help="the control: the same n layers trained by SGD")
    t.add_argument("--dataset", type=Choice(("digits", "cifar10"), what="dataset"), default="digits")
    t.add_argument("--data-dir", type=InPath("dir"), default=None, metavar="DIR",
                   help="folder holding cifar-10-batches-py/ (default $NEUROLP_DATA)")
    t.add_argument("--out", type=OutDir(), required=True, metavar="DIR")
    t.add_argument("--store", type=OutDir(), default=None, metavar="DIR",
                   help="checkpoint store the model is published to, where `neurolp rsa/report --model "
                        "hebb1-amato` find it (default $NEUROLP_CHECKPOINTS or ~/.cache/neurolp/checkpoints)")
    t.add_argument("--no-publish", dest="publish", action="store_false",
                   help="do not copy the model into the checkpoint store")
    t.add_argument("--preset", type=Choice(("slides", "quick"), what="preset"), default="slides")
    t.add_argument("--seed", type=Int(0), default=0)
    t.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    t.add_argument("--batch-size", type=Int(2), default=S)
    t.add_argument("--hebb-epochs", type=Int(1), default=S, help="max epochs per Hebbian layer")
    t.add_argument("--patience", type=Int(0), default=S,
                   help="stop a layer after this many batches without a better metric (0: never)")
    t.add_argument("--threshold", type=Float(0, min_open=True), default=S,
                   help="a layer has converged when max|Σ|W|^p − 1| is below this at an epoch's end")
    t.add_argument("--conv-lr", type=_Schedule(), default=S, metavar="LR|START,END,SPEED")
    t.add_argument("--linear-lr", type=_Schedule(), default=S, metavar="LR|START,END,SPEED")
    t.add_argument("--p", dest="lebesgue_p", type=Float(1), default=S, help="Lebesgue exponent p")
    t.add_argument("--k", dest="ranking_param", type=Int(2), default=S, help="rank k of the anti-Hebbian unit")
    t.add_argument("--delta", type=Float(0), default=S, help="anti-Hebbian strength Δ")
    t.add_argument("--step-norm", type=Choice(("kernel", "global", "none"), what="step normalisation"),
                   default=S, help="divide each step by its largest entry per kernel or over the layer "
                                   "(default: kernel for convs, global for the linear layer)")
    t.add_argument("--dropout", type=Float(0, 1, max_open=True), default=S)
    t.add_argument("--head-epochs", type=Int(1), default=S)
    t.add_argument("--head-lr", type=Float(0, min_open=True), default=S)
    aug = t.add_mutually_exclusive_group()
    aug.add_argument("--augment", dest="augment", action="store_true", default=S,
                     help="reflect-pad 4 + random crop + flip (default: CIFAR-10 only)")
    aug.add_argument("--no-augment", dest="augment", action="store_false", default=S)
    t.add_argument("--val-fraction", type=Float(0, 1, min_open=True, max_open=True), default=S)
    t.add_argument("--max-train-samples", type=Int(2), default=S)
    t.add_argument("--no-progress", dest="progress", action="store_false")


class _Schedule:
    """A learning rate ``0.01`` or an exponential schedule ``START,END,SPEED``."""

    def __call__(self, text: str):
        parts = [s for s in text.replace(" ", "").split(",") if s]
        try:
            vals = [float(s) for s in parts]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected LR or START,END,SPEED (numbers), got {text!r}") from None
        if len(vals) == 1 and vals[0] > 0:
            return vals[0]
        if len(vals) == 3 and vals[0] > 0 and vals[1] > 0 and vals[2] >= 0:
            return tuple(vals)
        raise argparse.ArgumentTypeError(f"expected LR > 0 or START,END,SPEED with START, END > 0 and "
                                         f"SPEED >= 0, got {text!r}")


_CONFIG_KEYS = ("layers", "supervised", "dataset", "data_dir", "seed", "device", "batch_size", "hebb_epochs",
                "patience", "threshold", "conv_lr", "linear_lr", "lebesgue_p", "ranking_param", "delta",
                "dropout", "step_norm", "head_epochs", "head_lr", "augment", "val_fraction", "max_train_samples", "progress")


def _config(args):
    from neurolp.hebbian.train import make_hebbian_config

    given = {k: getattr(args, k) for k in _CONFIG_KEYS if hasattr(args, k)}
    return make_hebbian_config(args.preset, **given)


def check(args) -> None:
    from neurolp.cli.options import require

    require(getattr(args, "hebbian_command", None) is not None,
            "choose a subcommand: neurolp hebbian train (see `neurolp hebbian train --help`)")
    require(not (args.supervised and any(hasattr(args, k) for k in ("lebesgue_p", "ranking_param", "delta",
                                                                     "step_norm"))),
            "--p/--k/--delta/--step-norm set the Hebbian rule; --supervised trains by SGD only (drop one of them)")
    from neurolp.train.data import check_dataset_present

    check_dataset_present(args)  # digits is offline (bundled); cifar10's folder must be there
    _config(args)  # preset and range checks before any work
    if args.publish and args.store is None:
        from neurolp.train.store import default_store
        from neurolp.utils.checks import check_output_dir

        check_output_dir(default_store(), "--store")  # probed now, not after training


def _plot(result):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    fig = plt.figure(figsize=(11, 4.2))
    ax = fig.add_subplot(1, 2, 1)
    u = result.unsupervised
    if len(u):
        for layer, g in u.groupby("layer"):
            ax.plot(range(len(g)), g["convergence"].values, label=f"layer {layer}")
        ax.set_yscale("log")
        ax.axhline(result.config.threshold, color="0.5", ls="--", lw=1, label="threshold")
        ax.legend(frameon=False)
    else:
        ax.text(0.5, 0.5, "no Hebbian layer (SGD control)", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("batch")
    ax.set_ylabel(r"$\max_\mu\,|\sum_i |W_{\mu i}|^p - 1|$")
    ax.set_title(f"{result.config.model_name}: convergence to the unit p-sphere")
    w = result.model.features[0].layer.weight.detach().cpu()[:32]            # [32, 3, 5, 5]
    w = (w - w.amin((1, 2, 3), keepdim=True)) / (w.amax((1, 2, 3), keepdim=True) - w.amin((1, 2, 3), keepdim=True) + 1e-12)
    grid = torch.ones(4 * 6 + 1, 8 * 6 + 1, 3)
    for i, f in enumerate(w):
        r, c = divmod(i, 8)
        grid[1 + 6 * r:6 * r + 6, 1 + 6 * c:6 * c + 6] = f.permute(1, 2, 0)
    ax2 = fig.add_subplot(1, 2, 2)
    ax2.imshow(grid.numpy(), interpolation="nearest")
    ax2.set_axis_off()
    ax2.set_title("first 32 layer-1 filters (min–max scaled)")
    fig.tight_layout()
    return fig


def _train(args) -> int:
    from neurolp.hebbian.train import config_dict, run_hebbian
    from neurolp.train.checkpoint import save_checkpoint
    from neurolp.utils import save_figure, staged_output, write_csv, write_run_record
    from neurolp.utils.io import atomic_write_text

    cfg = _config(args)
    result = run_hebbian(cfg)
    m = result.metrics
    conf = config_dict(cfg)
    with staged_output(args.out) as stage:
        save_checkpoint(stage / "model.safetensors", result.model, {
            "dataset": cfg.dataset, "classes": result.classes, "epoch": m["best_epoch"],
            "normalization": {"mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]},
            "metrics": {k: v for k, v in m.items() if isinstance(v, (int, float))}, "seed": cfg.seed,
            "config": conf})
        write_csv(result.unsupervised, stage / "hebbian_history.csv", index=False)
        write_csv(result.supervised, stage / "head_history.csv", index=False)
        atomic_write_text(stage / "metrics.json", json.dumps(m, indent=2) + "\n")
        save_figure(_plot(result), stage / "fig_hebbian.png", dpi=130)
        write_run_record(stage, "hebbian train", conf, {"model": cfg.model_name, "metrics": m,
                                                        "notes": result.notes})
    layers = ", ".join(f"L{i} {m[f'layer{i}_convergence']:.3g} ({m[f'layer{i}_stopped']}, "
                       f"{m[f'layer{i}_batches']} batches)" for i in range(1, cfg.layers + 1)
                       if f"layer{i}_convergence" in m)
    print(f"{cfg.model_name} on {cfg.dataset} (seed {cfg.seed}): test {m['test_acc']:.2f} %, val "
          f"{m['val_acc']:.2f} % (epoch {m['best_epoch']})")
    if layers:
        print(f"convergence max|Σ|W|^p − 1|: {layers}; unsupervised {m['unsupervised_seconds']:.0f} s")
    print(f"wrote model.safetensors, hebbian_history.csv, head_history.csv, metrics.json, fig_hebbian.png "
          f"to {args.out}")
    if args.publish:
        from neurolp.train.store import publish_checkpoint

        dest = publish_checkpoint(Path(args.out) / "model.safetensors", args.store)
        print(f"published {cfg.model_name} to the checkpoint store: {dest}")
    return 0


def run(args) -> int:
    return {"train": _train}[args.hebbian_command](args)
