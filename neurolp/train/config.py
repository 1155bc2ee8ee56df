"""Training configuration: one dataclass, two presets, saved with every run.

``paper`` reproduces App. A.9 (the DeiT recipe the official code inherited): AdamW, weight decay
0.05, lr 1e-3 with 5 warm-up epochs and a cosine schedule, RandAugment ``rand-m9-mstd0.5-inc1``,
Mixup 0.8 / CutMix 1.0 (switch 0.5), label smoothing 0.1, random erasing 0.25 (pixel mode),
stochastic depth 0.1 where the architecture has it (ConvNeXt), 300 epochs, batch 128.

Deliberate choices, each a field you can change:

* ``lr``: the paper states 1e-3; the official code computed ``5e-4 · batch · world / 512`` (DeiT).
* ``mask_weight_decay``: ``"C"`` (default) reproduces the official code, where timm's 1-D
  exemption left ``log2p`` undecayed while ``C`` [out, 2, 2] got wd 0.05 (pulling C toward 0, i.e.
  wider masks). ``"none"`` exempts both, ``"all"`` decays both.
* ``ema`` is off: the official code kept an EMA but evaluated and reported the raw model.
* ``val_fraction``: a stratified validation split carved from the training set (seeded by
  ``split_seed``, shared by all training seeds) selects the reported epoch; the test split is only
  reported, never used for selection (the official code selected on test).
* ``batch_size`` is the global batch: under DDP each of N processes takes ``batch_size / N``.
* Not reproduced: DeiT's repeated augmentation (RASampler), which the official code had on.

``quick`` is for CPU smoke runs: a few epochs, no Mixup/CutMix/RandAugment/erasing, short warm-up.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from neurolp.errors import ConfigError, NeurolpError
from neurolp.utils.config import ConfigMixin, config_field

__all__ = ["TrainConfig", "PRESETS", "RUNTIME_FIELDS", "make_config"]


_f = config_field


@dataclass
class TrainConfig(ConfigMixin):
    """Every knob of a training run (the CLI's ``neurolp train`` options mirror these fields)."""

    _what = "training"

    # what
    model: str = _f("lp2-smallcnn", "registry name {base|large|lp{p}|lp{p}f}-{arch}")
    dataset: str = _f("digits", "cifar100, tinyimagenet, imagefolder, digits or synthetic")
    data_dir: str | None = _f(None, "dataset folder (default $NEUROLP_DATA or ~/.cache/neurolp/datasets)")
    image_size: int | None = _f(None, "input size (default: the dataset's; paper preset: 32 CIFAR, 224 TinyImageNet)",
                                min=8, max=1024)
    model_kwargs: dict = _f({}, "extra architecture arguments for create_model, e.g. {\"width\": 16}")
    convert_kwargs: dict = _f({}, "extra lp_convert/large_convert arguments, e.g. {\"C_param\": \"spd\"}")
    preset: str = _f("quick", "the preset the defaults came from (paper or quick)", choices=("paper", "quick"))
    # schedule and optimiser
    epochs: int = _f(5, "training epochs", min=1, max=100_000)
    patience: int | None = _f(None, "early stopping: stop after this many epochs without a better "
                                    "validation accuracy (default: train all epochs)", min=1)
    batch_size: int = _f(64, "global batch size (split across DDP processes)", min=1, max=1 << 20)
    lr: float = _f(2e-3, "peak learning rate", min=0, min_open=True)
    min_lr: float = _f(1e-5, "final learning rate of the cosine schedule", min=0)
    warmup_epochs: float = _f(0.5, "linear warm-up length in epochs", min=0, max=100_000)
    warmup_lr: float = _f(1e-6, "learning rate at the start of warm-up", min=0)
    opt: str = _f("adamw", "timm optimizer name (adamw, sgd, ...)")
    momentum: float = _f(0.9, "SGD momentum (AdamW uses betas 0.9/0.999)", min=0, max=1, max_open=True)
    weight_decay: float = _f(0.05, "weight decay (biases and norm weights are exempt)", min=0, max=10)
    mask_weight_decay: str = _f("C", "which Lp-mask parameters get weight decay: C (official), none or all",
                                choices=("C", "none", "all"))
    clip_grad: float | None = _f(None, "clip the global gradient norm to this value", min=0, min_open=True)
    # regularisation and augmentation (timm)
    label_smoothing: float = _f(0.0, "label smoothing", min=0, max=1, max_open=True)
    mixup: float = _f(0.0, "Mixup alpha (0 = off)", min=0, max=100)
    cutmix: float = _f(0.0, "CutMix alpha (0 = off)", min=0, max=100)
    mixup_prob: float = _f(1.0, "probability of applying Mixup/CutMix to a batch", min=0, max=1)
    mixup_switch_prob: float = _f(0.5, "probability of CutMix instead of Mixup when both are on", min=0, max=1)
    auto_augment: str | None = _f(None, "timm auto-augment policy, e.g. rand-m9-mstd0.5-inc1")
    color_jitter: float = _f(0.0, "colour jitter strength (ignored when auto_augment is set)", min=0, max=10)
    hflip: float | None = _f(None, "horizontal flip probability (default 0.5, 0 for digits)", min=0, max=1)
    re_prob: float = _f(0.0, "random erasing probability", min=0, max=1)
    re_mode: str = _f("pixel", "random erasing fill: pixel, rand or const", choices=("pixel", "rand", "const"))
    drop_path: float = _f(0.0, "stochastic depth rate (used only by architectures that have it)",
                          min=0, max=1, max_open=True)
    ema: bool = _f(False, "keep an EMA of the weights and evaluate/select/publish it")
    ema_decay: float = _f(0.99996, "EMA decay per step", min=0, max=1, min_open=True, max_open=True)
    # data
    val_fraction: float = _f(0.1, "fraction of the training set held out for model selection",
                             min=0, max=1, max_open=True)
    split_seed: int = _f(0, "seed of the validation split (same split for every training seed)", min=0)
    max_train_samples: int | None = _f(None, "use a seeded subset of this many training images", min=2)
    # reproducibility
    seed: int = _f(0, "seed of model init, data order, augmentation and mixing", min=0)
    # runtime (may change on --resume)
    device: str = _f("auto", "auto (CUDA when present), cpu, cuda or cuda:N", runtime=True)
    amp: str = _f("auto", "mixed precision: auto (bf16 on CUDA), bf16, fp16 or none", runtime=True,
                  choices=("auto", "bf16", "fp16", "none"))
    channels_last: bool | None = _f(None, "channels_last memory format (default: on CUDA)", runtime=True)
    compile: bool = _f(False, "torch.compile the model", runtime=True)
    num_workers: int | None = _f(None, "data-loader workers (default: 0 on CPU, 8 on CUDA)", runtime=True,
                                 min=0, max=256)
    eval_batch_size: int | None = _f(None, "evaluation batch size (default: 2 × batch size)", runtime=True,
                                     min=1, max=1 << 20)
    checkpoint_every: int = _f(0, "also checkpoint every N optimiser steps (0: at epoch ends only)",
                               runtime=True, min=0)
    max_steps: int | None = _f(None, "stop (resumably) after this many optimiser steps in total",
                               runtime=True, min=1)
    eval_test: bool = _f(True, "evaluate the test split every epoch (reported, never selected on)",
                         runtime=True)
    progress: bool = _f(True, "show tqdm progress bars", runtime=True)
    on_bad_sample: str = _f("stop", "an unreadable image file: stop naming it, or skip it (listed in "
                            "bad_samples.csv)", runtime=True, choices=("stop", "skip"))

    # --- construction --------------------------------------------------------------------------
    @classmethod
    def from_json(cls, path: str | os.PathLike) -> TrainConfig:
        from neurolp.errors import DataNotFoundError

        try:
            with open(path) as fh:
                data = json.load(fh)
        except FileNotFoundError:
            raise DataNotFoundError(f"config file {path} does not exist") from None
        except IsADirectoryError:
            raise ConfigError(f"config file {path} is a folder; give its config.json") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path} is not valid JSON ({exc}); give a config.json written by "
                              "neurolp train") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path} holds a JSON {type(data).__name__}, not an object of training "
                              "options")
        return cls.from_dict(data)

    @staticmethod
    def flag(name: str) -> str:
        """The ``neurolp train`` option of a field (``batch_size`` → ``--batch-size``)."""
        return "--" + ("smoothing" if name == "label_smoothing" else name.replace("_", "-"))

    @classmethod
    def field_check(cls, name: str) -> dict:
        """The declared constraints of a field (``min``/``max``/``*_open``/``choices``)."""
        meta = cls.fields()[name].metadata
        return {k: meta[k] for k in ("min", "max", "min_open", "max_open", "choices") if k in meta}

    def validate(self) -> TrainConfig:
        """Check every field against its declared type and range, then the combinations; raises
        :class:`ConfigError` naming the option, the value and the fix."""
        try:
            return self._validate()
        except ConfigError:
            raise
        except NeurolpError as exc:  # InputError from the shared checks: a config error here
            raise ConfigError(str(exc)) from None

    def _validate(self) -> TrainConfig:
        from neurolp.models import parse_model_name
        from neurolp.train.data import DATASETS
        from neurolp.utils.checks import check_choice, check_float, check_int

        for name, f in self.fields().items():
            value, spec = getattr(self, name), self.field_check(name)
            label = self.flag(name)
            if value is None:
                continue
            kind = _kind(f.type)
            if kind is bool:
                if not isinstance(value, bool):
                    raise ConfigError(f"{label} must be true or false, got {value!r}")
            elif kind is int:
                setattr(self, name, check_int(value, label, min=spec.get("min"), max=spec.get("max")))
            elif kind is float:
                setattr(self, name, check_float(value, label, min=spec.get("min"), max=spec.get("max"),
                                                min_open=spec.get("min_open", False),
                                                max_open=spec.get("max_open", False)))
            elif kind is dict:
                if not isinstance(value, dict):
                    raise ConfigError(f"{label} must be a JSON object such as {{\"width\": 16}}, got {value!r}")
            elif "choices" in spec:
                setattr(self, name, check_choice(value, label, spec["choices"]))
            elif not isinstance(value, str):
                raise ConfigError(f"{label} must be text, got {value!r}")
        parse_model_name(self.model)
        check_choice(self.dataset, "--dataset", sorted(DATASETS), what="dataset")
        if self.amp == "fp16" and str(self.device).startswith("cpu"):
            raise ConfigError("--amp fp16 needs CUDA; use --amp bf16 or none on the CPU")
        return self

    @property
    def mixing(self) -> bool:
        return (self.mixup > 0 or self.cutmix > 0) and self.mixup_prob > 0



def _kind(tp):
    """``int``/``float``/``str``/``bool``/``dict`` of a field annotation (``"int | None"`` → int)."""
    text = tp if isinstance(tp, str) else getattr(tp, "__name__", str(tp))
    for name, kind in (("bool", bool), ("int", int), ("float", float), ("dict", dict), ("str", str)):
        if text.split("|")[0].strip() == name:
            return kind
    return object


RUNTIME_FIELDS = tuple(n for n, f in TrainConfig.fields().items() if f.metadata.get("runtime"))

PRESETS: dict[str, dict[str, Any]] = {
    "paper": dict(
        epochs=300, batch_size=128, lr=1e-3, min_lr=1e-5, warmup_epochs=5, warmup_lr=1e-6,
        opt="adamw", weight_decay=0.05, mask_weight_decay="C", label_smoothing=0.1,
        mixup=0.8, cutmix=1.0, mixup_prob=1.0, mixup_switch_prob=0.5,
        auto_augment="rand-m9-mstd0.5-inc1", color_jitter=0.3, re_prob=0.25, re_mode="pixel",
        drop_path=0.1, ema=False, val_fraction=0.1,
    ),
    "quick": dict(
        epochs=5, batch_size=64, lr=2e-3, min_lr=1e-5, warmup_epochs=0.5, warmup_lr=1e-6,
        opt="adamw", weight_decay=0.05, mask_weight_decay="C", label_smoothing=0.0,
        mixup=0.0, cutmix=0.0, auto_augment=None, color_jitter=0.0, re_prob=0.0,
        drop_path=0.0, ema=False, val_fraction=0.1,
    ),
}


def make_config(preset: str = "quick", **overrides) -> TrainConfig:
    """A :class:`TrainConfig` from a preset, with ``overrides`` (``None`` values are ignored)."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    values = {**PRESETS[preset], "preset": preset}
    values.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig.from_dict(values).validate()
