"""Train a registry model (e.g. lp2-resnet18) on CIFAR-100, TinyImageNet, an ImageFolder, or the
offline digits / synthetic data; checkpoint every epoch; publish the selected model to the store.

Presets: `--preset paper` is the paper's DeiT recipe (App. A.9: AdamW wd 0.05, lr 1e-3, 5 warm-up
epochs, cosine, RandAugment, Mixup 0.8 / CutMix 1.0, label smoothing 0.1, random erasing 0.25,
stochastic depth where the architecture has it, 300 epochs, batch 128); `--preset quick` is a
short CPU smoke run. Any option given explicitly overrides the preset. The epoch is selected on a
validation split carved from the training set; test accuracy is reported, never selected on.

Examples:
  neurolp train --model lp2-smallcnn --dataset digits --preset quick --epochs 3
  neurolp train --model lp2-resnet18 --dataset cifar100 --data-dir ~/data --preset paper --seed 1
  neurolp train --out runs/x --resume                # continue a killed run where it stopped
  torchrun --nproc_per_node 4 -m neurolp train --model lp2-resnet18 --dataset tinyimagenet ...
"""

from __future__ import annotations

import argparse
import os

NAME = "train"
HELP = "train an Lp-CNN (or base/large) and publish its checkpoint"


def _arg_type(name: str, field):
    """``(argparse type, is_flag)`` of a config field, with its declared range or choices."""
    from neurolp.cli.options import Choice, Float, Int, JSONObject
    from neurolp.train.config import TrainConfig, _kind

    kind, spec = _kind(field.type), TrainConfig.field_check(name)
    if kind is bool:
        return None, True
    if kind is dict:
        return JSONObject(), False
    if kind is int:
        return Int(spec.get("min"), spec.get("max")), False
    if kind is float:
        return Float(spec.get("min"), spec.get("max"), min_open=spec.get("min_open", False),
                     max_open=spec.get("max_open", False)), False
    if "choices" in spec:
        return Choice(spec["choices"], what=name.replace("_", " ")), False
    if name == "dataset":
        from neurolp.train.data import DATASETS

        return Choice(sorted(DATASETS), what="dataset"), False
    return str, False


def add_arguments(parser) -> None:
    from neurolp.cli.options import InPath, OutDir
    from neurolp.train.config import PRESETS, TrainConfig

    main = parser.add_argument_group("run")
    main.add_argument("--out", type=OutDir(), metavar="DIR", default=argparse.SUPPRESS,
                      help="run folder (default runs/<model>_<dataset>_s<seed>)")
    main.add_argument("--resume", action="store_true",
                      help="continue the run in --out from its last checkpoint (its saved config "
                           "is used; only runtime options may change)")
    main.add_argument("--store", type=OutDir(), metavar="DIR", default=argparse.SUPPRESS,
                      help="checkpoint store (default $NEUROLP_CHECKPOINTS or ~/.cache/neurolp/checkpoints)")
    main.add_argument("--no-publish", dest="publish", action="store_false",
                      help="do not copy the selected model into the store")
    main.add_argument("--config", type=InPath("file", suffixes=(".json",)), metavar="JSON",
                      default=argparse.SUPPRESS, help="read options from a config.json first")
    opts = parser.add_argument_group("training options (unset: the preset's value)")
    defaults = TrainConfig()
    for name, f in TrainConfig.fields().items():
        tp, flag = _arg_type(name, f)
        flags = [TrainConfig.flag(name)] + (["--label-smoothing"] if name == "label_smoothing" else [])
        if any(name in p for p in PRESETS.values()):
            shown = ", ".join(f"{k}: {p.get(name, getattr(defaults, name))}" for k, p in PRESETS.items())
        else:
            shown = f"default: {getattr(defaults, name)}"
        help_ = f"{f.metadata.get('help', '')} [{shown}]".replace("%", "%%")
        if name == "preset":
            opts.add_argument(*flags, choices=sorted(PRESETS), default=argparse.SUPPRESS,
                              help=f"recipe the defaults come from [default: {defaults.preset}]")
        elif flag:
            opts.add_argument(*flags, dest=name, action=argparse.BooleanOptionalAction,
                              default=argparse.SUPPRESS, help=help_)
        else:
            opts.add_argument(*flags, dest=name, type=tp, default=argparse.SUPPRESS, help=help_)
    parser.set_defaults(_config_fields=list(TrainConfig.fields()))


def _opt(args, name):
    return getattr(args, name, None)


def config_from_args(args):
    """The :class:`TrainConfig` the arguments describe (preset, then --config, then flags)."""
    from pathlib import Path

    from neurolp.errors import ConfigError
    from neurolp.train.config import RUNTIME_FIELDS, TrainConfig, make_config

    given = {k: getattr(args, k) for k in args._config_fields if getattr(args, k, None) is not None}
    if args.resume:
        if not _opt(args, "out"):
            raise ConfigError("--resume needs --out DIR (the run folder to continue)")
        out = Path(_opt(args, "out"))
        saved = out / "config.json"
        if saved.is_file():
            base = TrainConfig.from_json(saved).to_dict()
            runtime_defaults = TrainConfig().to_dict()
            base.update({k: runtime_defaults[k] for k in RUNTIME_FIELDS})
            base.update(given)
            return TrainConfig.from_dict(base).validate()
        if "model" not in given and not _opt(args, "config"):
            # without a saved config the defaults would silently start some other run
            what = "does not exist" if not out.exists() else "holds no training run (no config.json)"
            raise ConfigError(f"--resume: {out} {what}; check the --out path, or give --model and "
                              "--dataset to start a new run there")
    base = {}
    if _opt(args, "config"):
        base = TrainConfig.from_json(_opt(args, "config")).to_dict()
        preset = given.get("preset", base.get("preset", "quick"))
        return make_config(preset, **{**base, **given})
    return make_config(given.pop("preset", "quick"), **given)


def check(args) -> None:
    """Resolve the config and build everything cheap (model on the meta device, optimiser,
    transforms, output and store probes) before any data is read."""
    from pathlib import Path

    from neurolp.train.loop import default_out_dir, preflight

    cfg = config_from_args(args)
    out = Path(_opt(args, "out") or default_out_dir(cfg))
    preflight(cfg, out, resume=args.resume, store=_opt(args, "store"), publish=args.publish)
    args._cfg, args._out = cfg, out


def run(args) -> int:
    from neurolp.train.loop import train

    if not hasattr(args, "_cfg"):
        check(args)
    cfg, out = args._cfg, args._out
    result = train(cfg, out, resume=args.resume, store=_opt(args, "store"), publish=args.publish)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0  # under torchrun, rank 0 reports
    s = result.summary
    status = "finished" if s["complete"] else f"stopped at step {s['global_step']} (resume with --resume)"
    print(f"{s['model']} on {s['dataset']} (seed {s['seed']}, {s['image_size']} px): {status}, "
          f"{s['epochs_done']}/{cfg.epochs} epochs in {s['train_time_s']:.1f}s")
    if s["best_epoch"] is not None:
        val = "-" if s["val_acc"] is None else f"{s['val_acc']:.2f}%"
        test = "-" if s["test_acc"] is None else f"{s['test_acc']:.2f}%"
        print(f"selected epoch {s['best_epoch']} on {s['selected_on']}: val {val}, test {test}")
    for note in s["notes"]:
        print(f"note: {note}")
    print(f"run folder: {result.out_dir}")
    if result.published:
        print(f"published: {result.published}")
    return 0
