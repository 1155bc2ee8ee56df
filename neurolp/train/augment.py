"""The recipe's building blocks, taken from timm and torchvision rather than written here.

* transforms: :func:`timm.data.create_transform` (RandomResizedCrop, flip, RandAugment, random
  erasing, normalisation). For inputs of at most 32 px the random-resized crop is replaced by
  ``RandomCrop(size, padding=size/8)`` (after a resize when the stored images are smaller), as the
  official code did for CIFAR;
* Mixup/CutMix: :class:`timm.data.Mixup` (label smoothing folded into the soft targets);
* losses: :class:`timm.loss.SoftTargetCrossEntropy` with mixing, else
  :class:`timm.loss.LabelSmoothingCrossEntropy`, else ``nn.CrossEntropyLoss``;
* optimiser: :func:`timm.optim.create_optimizer_v2` over explicit parameter groups (see
  :func:`param_groups` for the Lp-mask weight-decay policy);
* schedule: :class:`timm.scheduler.CosineLRScheduler`, stepped per optimiser update.

Compatibility guard: timm's ``inc1`` RandAugment (the paper's ``rand-m9-mstd0.5-inc1``) maps a
magnitude of 10 (reached by ``mstd0.5`` noise about 2 % of the time) to *posterize with 0 bits*.
Pillow < 10 returned a black image for that; current Pillow raises ``ValueError``, which would
crash a long run within its first epoch. :func:`build_transforms` swaps in a posterize that keeps
the old behaviour (:func:`posterize_keep_zero`).
"""

from __future__ import annotations

import math

from torch import nn

from neurolp.layers import LpConv2d

__all__ = ["build_transforms", "posterize_keep_zero", "build_mixup", "build_loss", "param_groups", "build_optimizer",
           "build_scheduler"]


def posterize_keep_zero(img, bits_to_keep, **_):
    """timm's posterize with Pillow < 10 semantics for 0 bits (a black image) instead of an error."""
    from PIL import ImageOps

    if bits_to_keep >= 8:
        return img
    if bits_to_keep <= 0:
        return img.point(lambda _: 0)
    return ImageOps.posterize(img, bits_to_keep)


def _guard_posterize(transform) -> int:
    """Replace timm's posterize in every auto-augment op of ``transform``; returns the count."""
    from timm.data import auto_augment as aa

    n = 0
    for t in getattr(transform, "transforms", [transform]):
        ops = list(getattr(t, "ops", []))
        for sub in getattr(t, "policy", []):
            ops += list(sub) if isinstance(sub, (list, tuple)) else [sub]
        for op in ops:
            if getattr(op, "aug_fn", None) is aa.posterize:
                op.aug_fn = posterize_keep_zero
                n += 1
    return n


def build_transforms(config, info, image_size: int, mean, std):
    """``(train_transform, eval_transform)`` for PIL images."""
    from timm.data import create_transform
    from torchvision import transforms as T

    hflip = config.hflip if config.hflip is not None else (0.5 if info.flip_ok else 0.0)
    train = create_transform(
        image_size, is_training=True, hflip=hflip, color_jitter=config.color_jitter or None,
        auto_augment=config.auto_augment, interpolation="bicubic", re_prob=config.re_prob,
        re_mode=config.re_mode, re_count=1, mean=tuple(mean), std=tuple(std))
    if image_size <= 32:
        crop = [T.RandomCrop(image_size, padding=max(1, image_size // 8))]
        if info.native_size != image_size:
            crop.insert(0, T.Resize((image_size, image_size),
                                    interpolation=T.InterpolationMode.BICUBIC))
        train.transforms[0] = T.Compose(crop)
    _guard_posterize(train)
    crop_pct = info.crop_pct if info.native_size is None else 1.0
    evaluate = create_transform(image_size, is_training=False, interpolation="bicubic",
                                crop_pct=crop_pct, mean=tuple(mean), std=tuple(std))
    return train, evaluate


def build_mixup(config, num_classes: int):
    """A :class:`timm.data.Mixup` when Mixup or CutMix is on, else ``None``."""
    if not config.mixing:
        return None
    from timm.data import Mixup

    return Mixup(mixup_alpha=config.mixup, cutmix_alpha=config.cutmix, prob=config.mixup_prob,
                 switch_prob=config.mixup_switch_prob, mode="batch",
                 label_smoothing=config.label_smoothing, num_classes=num_classes)


def build_loss(config) -> nn.Module:
    from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy

    if config.mixing:
        return SoftTargetCrossEntropy()
    if config.label_smoothing > 0:
        return LabelSmoothingCrossEntropy(smoothing=config.label_smoothing)
    return nn.CrossEntropyLoss()


def param_groups(model: nn.Module, weight_decay: float, mask_weight_decay: str = "C") -> list[dict]:
    """Parameter groups with timm's rule (no decay for biases and 1-D parameters such as norm
    weights) and an explicit Lp-mask policy: ``"C"`` decays ``C`` (or ``L``) but not ``log2p``
    (what the official code got from timm's 1-D rule), ``"none"`` exempts both, ``"all"`` decays
    both. Frozen parameters are left out."""
    mask_params = {}
    for m in model.modules():
        if isinstance(m, LpConv2d):
            C = m.C if m.C_param == "free" else m.L
            mask_params[id(C)], mask_params[id(m.log2p)] = "C", "p"
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        kind = mask_params.get(id(p))
        if kind is not None:
            wants = mask_weight_decay == "all" or (mask_weight_decay == "C" and kind == "C")
        else:
            wants = p.ndim > 1 and not name.endswith(".bias")
        (decay if wants else no_decay).append(p)
    groups = [{"params": no_decay, "weight_decay": 0.0}, {"params": decay, "weight_decay": weight_decay}]
    return [g for g in groups if g["params"]]


def build_optimizer(model: nn.Module, config):
    from timm.optim import create_optimizer_v2

    groups = param_groups(model, config.weight_decay, config.mask_weight_decay)
    kwargs = {"momentum": config.momentum} if config.opt.lower() in ("sgd", "momentum", "nesterov") else {}
    return create_optimizer_v2(groups, opt=config.opt, lr=config.lr, weight_decay=config.weight_decay,
                               filter_bias_and_bn=False, **kwargs)


def build_scheduler(optimizer, config, steps_per_epoch: int):
    """Cosine schedule with linear warm-up, in optimiser steps (``step_update(global_step)``)."""
    from timm.scheduler import CosineLRScheduler

    total = config.epochs * steps_per_epoch
    warmup = min(int(math.ceil(config.warmup_epochs * steps_per_epoch)), max(total - 1, 0))
    return CosineLRScheduler(optimizer, t_initial=total, lr_min=config.min_lr, warmup_t=warmup,
                             warmup_lr_init=config.warmup_lr, warmup_prefix=False, t_in_epochs=False)
