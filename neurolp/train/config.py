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

import dataclasses
import json
import os
from dataclasses import dataclass, field
from typing import Any

from neurolp.errors import ConfigError

__all__ = ["TrainConfig", "PRESETS", "RUNTIME_FIELDS", "make_config"]


def _f(default, help: str, **kw):
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda d=default: type(d)(d), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class TrainConfig:
    """Every knob of a training run (the CLI's ``neurolp train`` options mirror these fields)."""

    # what
    model: str = _f("lp2-smallcnn", "registry name {base|large|lp{p}|lp{p}f}-{arch}")
    dataset: str = _f("digits", "cifar100, tinyimagenet, imagefolder, digits or synthetic")
    data_dir: str | None = _f(None, "dataset folder (default $NEUROLP_DATA or ~/.cache/neurolp/datasets)")
    image_size: int | None = _f(None, "input size (default: the dataset's; paper preset: 32 CIFAR, 224 TinyImageNet)")
    model_kwargs: dict = _f({}, "extra architecture arguments for create_model, e.g. {\"width\": 16}")
    convert_kwargs: dict = _f({}, "extra lp_convert/large_convert arguments, e.g. {\"C_param\": \"spd\"}")
    preset: str = _f("quick", "the preset the defaults came from (paper or quick)")
    # schedule and optimiser
    epochs: int = _f(5, "training epochs")
    patience: int | None = _f(None, "early stopping: stop after this many epochs without a better "
                                    "validation accuracy (default: train all epochs)")
    batch_size: int = _f(64, "global batch size (split across DDP processes)")
    lr: float = _f(2e-3, "peak learning rate")
    min_lr: float = _f(1e-5, "final learning rate of the cosine schedule")
    warmup_epochs: float = _f(0.5, "linear warm-up length in epochs")
    warmup_lr: float = _f(1e-6, "learning rate at the start of warm-up")
    opt: str = _f("adamw", "timm optimizer name (adamw, sgd, ...)")
    momentum: float = _f(0.9, "SGD momentum (AdamW uses betas 0.9/0.999)")
    weight_decay: float = _f(0.05, "weight decay (biases and norm weights are exempt)")
    mask_weight_decay: str = _f("C", "which Lp-mask parameters get weight decay: C (official), none or all")
    clip_grad: float | None = _f(None, "clip the global gradient norm to this value")
    # regularisation and augmentation (timm)
    label_smoothing: float = _f(0.0, "label smoothing")
    mixup: float = _f(0.0, "Mixup alpha (0 = off)")
    cutmix: float = _f(0.0, "CutMix alpha (0 = off)")
    mixup_prob: float = _f(1.0, "probability of applying Mixup/CutMix to a batch")
    mixup_switch_prob: float = _f(0.5, "probability of CutMix instead of Mixup when both are on")
    auto_augment: str | None = _f(None, "timm auto-augment policy, e.g. rand-m9-mstd0.5-inc1")
    color_jitter: float = _f(0.0, "colour jitter strength (ignored when auto_augment is set)")
    hflip: float | None = _f(None, "horizontal flip probability (default 0.5, 0 for digits)")
    re_prob: float = _f(0.0, "random erasing probability")
    re_mode: str = _f("pixel", "random erasing fill: pixel, rand or const")
    drop_path: float = _f(0.0, "stochastic depth rate (used only by architectures that have it)")
    ema: bool = _f(False, "keep an EMA of the weights and evaluate/select/publish it")
    ema_decay: float = _f(0.99996, "EMA decay per step")
    # data
    val_fraction: float = _f(0.1, "fraction of the training set held out for model selection")
    split_seed: int = _f(0, "seed of the validation split (same split for every training seed)")
    max_train_samples: int | None = _f(None, "use a seeded subset of this many training images")
    # reproducibility
    seed: int = _f(0, "seed of model init, data order, augmentation and mixing")
    # runtime (may change on --resume)
    device: str = _f("auto", "auto (CUDA when present), cpu, cuda or cuda:N", runtime=True)
    amp: str = _f("auto", "mixed precision: auto (bf16 on CUDA), bf16, fp16 or none", runtime=True)
    channels_last: bool | None = _f(None, "channels_last memory format (default: on CUDA)", runtime=True)
    compile: bool = _f(False, "torch.compile the model", runtime=True)
    num_workers: int | None = _f(None, "data-loader workers (default: 0 on CPU, 8 on CUDA)", runtime=True)
    eval_batch_size: int | None = _f(None, "evaluation batch size (default: 2 × batch size)", runtime=True)
    checkpoint_every: int = _f(0, "also checkpoint every N optimiser steps (0: at epoch ends only)",
                               runtime=True)
    max_steps: int | None = _f(None, "stop (resumably) after this many optimiser steps in total",
                               runtime=True)
    eval_test: bool = _f(True, "evaluate the test split every epoch (reported, never selected on)",
                         runtime=True)
    progress: bool = _f(True, "show tqdm progress bars", runtime=True)

    # --- construction --------------------------------------------------------------------------
    @classmethod
    def fields(cls) -> dict[str, dataclasses.Field]:
        return {f.name: f for f in dataclasses.fields(cls)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        unknown = sorted(set(data) - set(cls.fields()))
        if unknown:
            raise ConfigError(f"unknown training option(s) {unknown}; valid options: "
                              f"{', '.join(cls.fields())}")
        return cls(**data)

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> TrainConfig:
        try:
            with open(path) as fh:
                return cls.from_dict(json.load(fh))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path} is not valid JSON: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def validate(self) -> TrainConfig:
        """Check types and ranges; raises :class:`ConfigError` with the fix."""
        from neurolp.models import parse_model_name
        from neurolp.train.data import DATASETS

        parse_model_name(self.model)
        if self.dataset not in DATASETS:
            raise ConfigError(f"unknown dataset {self.dataset!r}; choose one of "
                              f"{', '.join(sorted(DATASETS))}")
        if self.preset not in PRESETS:
            raise ConfigError(f"unknown preset {self.preset!r}; choose one of {', '.join(PRESETS)}")
        checks = [
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.patience is None or self.patience >= 1, "patience must be >= 1"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.lr > 0 and self.min_lr >= 0 and self.warmup_lr >= 0, "learning rates must be > 0"),
            (self.warmup_epochs >= 0, "warmup_epochs must be >= 0"),
            (self.weight_decay >= 0, "weight_decay must be >= 0"),
            (self.mask_weight_decay in ("C", "none", "all"), "mask_weight_decay must be C, none or all"),
            (0 <= self.label_smoothing < 1, "label_smoothing must be in [0, 1)"),
            (self.mixup >= 0 and self.cutmix >= 0, "mixup and cutmix alphas must be >= 0"),
            (0 <= self.mixup_prob <= 1 and 0 <= self.mixup_switch_prob <= 1,
             "mixup_prob and mixup_switch_prob must be in [0, 1]"),
            (0 <= self.re_prob <= 1, "re_prob must be in [0, 1]"),
            (self.re_mode in ("pixel", "rand", "const"), "re_mode must be pixel, rand or const"),
            (self.hflip is None or 0 <= self.hflip <= 1, "hflip must be in [0, 1]"),
            (0 <= self.drop_path < 1, "drop_path must be in [0, 1)"),
            (0 < self.ema_decay < 1, "ema_decay must be in (0, 1)"),
            (0 <= self.val_fraction < 1, "val_fraction must be in [0, 1)"),
            (self.max_train_samples is None or self.max_train_samples >= 2,
             "max_train_samples must be >= 2"),
            (self.image_size is None or self.image_size >= 8, "image_size must be >= 8"),
            (self.amp in ("auto", "bf16", "fp16", "none"), "amp must be auto, bf16, fp16 or none"),
            (self.num_workers is None or self.num_workers >= 0, "num_workers must be >= 0"),
            (self.checkpoint_every >= 0, "checkpoint_every must be >= 0"),
            (self.max_steps is None or self.max_steps >= 1, "max_steps must be >= 1"),
            (self.clip_grad is None or self.clip_grad > 0, "clip_grad must be > 0"),
            (isinstance(self.model_kwargs, dict) and isinstance(self.convert_kwargs, dict),
             "model_kwargs and convert_kwargs must be dicts"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(f"invalid training config: {msg}")
        return self

    @property
    def mixing(self) -> bool:
        return (self.mixup > 0 or self.cutmix > 0) and self.mixup_prob > 0

    def differences(self, other: TrainConfig, *, include_runtime: bool = False) -> dict[str, tuple]:
        """Fields whose values differ: ``{name: (self's, other's)}``."""
        out = {}
        for name, f in self.fields().items():
            if not include_runtime and f.metadata.get("runtime"):
                continue
            a, b = getattr(self, name), getattr(other, name)
            if a != b:
                out[name] = (a, b)
        return out


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
