"""List the model registry: names, parameter counts and MACs at a given input size.

Names are ``{variant}-{arch}``: ``base``, ``large`` (enlarged kernels, no mask), ``lp{p}`` (Lp-masks
with p_init = p, C and p trainable) and ``lp{p}f`` (C and p frozen; ``lp256f`` is the paper's †).
Counts are measured on the meta device, so listing is quick and uses no memory. MACs are
multiply-accumulates of one forward pass on one image (what the paper's tables call FLOPs).
"""

from __future__ import annotations

NAME = "models"
HELP = "list registry models with parameter counts and MACs"


def add_arguments(parser) -> None:
    from neurolp.cli.options import Int, OutFile

    parser.add_argument("names", nargs="*", metavar="NAME",
                        help="model names or architectures to show (default: every architecture)")
    parser.add_argument("--image-size", type=Int(8, 1024), default=224, help="input size for the MAC count")
    parser.add_argument("--num-classes", type=Int(1, 100_000), default=1000, help="classifier outputs")
    parser.add_argument("--csv", type=OutFile(), metavar="PATH", help="also write the table as CSV")


def check(args) -> None:
    args._names = _names(args.names)  # unknown names fail here, before any model is built


def _names(requested: list[str]) -> list[str]:
    from neurolp.models import list_archs, list_models, parse_model_name

    if not requested:
        return [n for a in list_archs() for n in (f"base-{a}", f"large-{a}", f"lp2-{a}")]
    names = []
    for item in requested:
        if item in list_archs():
            names += list_models(item)
        else:
            names.append(str(parse_model_name(item)))  # validates, with a helpful error
    return names


def run(args) -> int:
    import pandas as pd

    from neurolp.models import model_summary, parse_model_name
    from neurolp.utils import write_csv

    rows = []
    for name in args._names:
        s = model_summary(name, args.num_classes, args.image_size)
        spec = parse_model_name(name)
        rows.append({"name": name, "arch": spec.arch, "variant": spec.variant,
                     "params_M": s["params"] / 1e6, "trainable_M": s["trainable_params"] / 1e6,
                     "GMACs": s["macs"] / 1e9})
    df = pd.DataFrame(rows)
    with pd.option_context("display.max_rows", None, "display.width", 120):
        print(f"image size {args.image_size}, {args.num_classes} classes"
              + (" (CIFAR stems)" if args.image_size <= 32 else ""))
        print(df.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if args.csv:
        write_csv(df, args.csv)
    return 0
