"""LpConvert (paper §3, App. A.21): turn a model's ``nn.Conv2d`` layers into Lp-convolutions.

Each k×k conv becomes an ``l×l`` conv with ``l = 2⌈k/2⌉ + k`` and padding grown by
``dilation·(l−k)/2`` so every output keeps its size for any stride and dilation. By default the
original weights are copied to the kernel centre with a zero surround (the official code since
May 2024 and the paper's Fig. 3), so ``lp256f`` reproduces the original model exactly.
"""

from __future__ import annotations

import fnmatch
from typing import Callable, Iterable, Literal, Union

import torch
from torch import nn

from neurolp.errors import ConfigError
from neurolp.layers.lpconv import LargeConv2d, LpConv2d, enlarged_kernel_size

__all__ = ["lp_convert", "large_convert", "lp_layers", "constrain_lp_", "bake_lp", "crop_lp"]

Init = Literal["zero_surround", "random_surround", "fresh"]
Filter = Union[None, Callable[[str, nn.Conv2d], bool], str, Iterable[str]]


def _as_predicate(f: Filter, default: bool) -> Callable[[str, nn.Conv2d], bool]:
    if f is None:
        return lambda name, m: default
    if callable(f):
        return f
    patterns = [f] if isinstance(f, str) else list(f)
    return lambda name, m: any(fnmatch.fnmatchcase(name, pat) for pat in patterns)


def _is_plain_conv(m: nn.Module) -> bool:
    """An ``nn.Conv2d`` whose forward is ``nn.Conv2d``'s (safe to replace by an enlarged conv)."""
    return type(m).forward is nn.Conv2d.forward and type(m)._conv_forward is nn.Conv2d._conv_forward


def _targets(model: nn.Module, include: Filter, exclude: Filter, skip_pointwise: bool):
    inc, exc = _as_predicate(include, True), _as_predicate(exclude, False)
    for name, m in model.named_modules():
        if not isinstance(m, nn.Conv2d) or isinstance(m, (LpConv2d, LargeConv2d)):
            continue  # already converted: conversion is idempotent
        if not inc(name, m) or exc(name, m):
            continue
        if skip_pointwise and m.kernel_size == (1, 1):
            continue
        if not _is_plain_conv(m):
            raise ConfigError(
                f"cannot convert {name or 'the model'} ({type(m).__module__}.{type(m).__name__}): it "
                "overrides nn.Conv2d's forward, which an Lp-conv would silently drop; pass "
                f"exclude=[{name!r}] (or a pattern) to leave it as it is"
            )
        yield name, m


def _set_submodule(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, attr, new)


def _enlarged_geometry(conv: nn.Conv2d, enlarge: bool):
    k = conv.kernel_size
    l = tuple(enlarged_kernel_size(x) for x in k) if enlarge else k
    grow = tuple((lx - kx) // 2 for lx, kx in zip(l, k))
    if conv.padding == "same":
        padding = "same"  # 'same' stays centred for the enlarged kernel (odd and even l alike)
    else:
        base = (0, 0) if conv.padding == "valid" else conv.padding
        padding = tuple(b + g * d for b, g, d in zip(base, grow, conv.dilation))
    return l, padding, grow


@torch.no_grad()
def _convert_one(conv: nn.Conv2d, cls, init: Init, enlarge: bool, **kwargs) -> nn.Conv2d:
    if init not in ("zero_surround", "random_surround", "fresh"):
        raise ConfigError(f"init must be 'zero_surround', 'random_surround' or 'fresh', got {init!r}")
    l, padding, (gh, gw) = _enlarged_geometry(conv, enlarge)
    new = cls(conv.in_channels, conv.out_channels, l, conv.stride, padding, conv.dilation, conv.groups,
              conv.bias is not None, conv.padding_mode, device=conv.weight.device, dtype=conv.weight.dtype,
              base_kernel_size=conv.kernel_size, **kwargs)
    if init != "fresh":
        if init == "zero_surround":
            new.weight.zero_()
        kh, kw = conv.kernel_size
        new.weight[:, :, gh:gh + kh, gw:gw + kw] = conv.weight
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    new.weight.requires_grad_(conv.weight.requires_grad)
    if conv.bias is not None:
        new.bias.requires_grad_(conv.bias.requires_grad)
    return new.train(conv.training)


def _convert(model: nn.Module, make: Callable[[nn.Conv2d], nn.Module], include, exclude,
             skip_pointwise) -> nn.Module:
    targets = list(_targets(model, include, exclude, skip_pointwise))
    for name, conv in targets:
        if name == "":
            return make(conv)  # the model is itself a conv
        _set_submodule(model, name, make(conv))
    return model


def lp_convert(
    model: nn.Module,
    p_init: float = 2.0,
    *,
    frozen: bool = False,
    learn_C: bool | None = None,
    learn_p: bool | None = None,
    p_min: float = 1.0,
    C_param: str = "free",
    sigma_scale: float = 0.5,
    init: Init = "zero_surround",
    enlarge: bool = True,
    include: Filter = None,
    exclude: Filter = None,
    skip_pointwise: bool = False,
) -> nn.Module:
    """Replace ``nn.Conv2d`` layers by :class:`LpConv2d` in place and return the model.

    Args:
        p_init: initial p of every Lp-mask.
        frozen: freeze C and p (``lp{p}f`` models; ``lp_convert(m, 256, frozen=True)`` is the paper's †).
        learn_C, learn_p: override ``frozen`` for C or p alone (e.g. frozen p, trainable C).
        p_min, C_param: see :class:`LpConv2d`.
        sigma_scale: ``σ_init = sigma_scale · k`` of the original kernel (paper: k/2).
        init: ``"zero_surround"`` (copy k×k weights to the centre, zeros around; default),
            ``"random_surround"`` (copy the centre, keep the default init around: the paper's 2023
            runs), or ``"fresh"`` (default init everywhere, nothing copied).
        enlarge: enlarge kernels to ``l = 2⌈k/2⌉ + k`` (paper); False keeps k and only adds the mask
            (how the paper's Lp-RepLKNet was built).
        include, exclude: module-name glob patterns or ``(name, module) -> bool`` predicates.
        skip_pointwise: leave 1×1 convs alone (the official code converts them too, to 3×3).

    Already converted layers are left untouched, so the conversion is idempotent. Convs whose class
    overrides ``nn.Conv2d.forward`` (e.g. timm's ``StdConv2d``) raise :class:`ConfigError` unless
    excluded, rather than silently losing their behaviour.
    """
    learn_C = (not frozen) if learn_C is None else learn_C
    learn_p = (not frozen) if learn_p is None else learn_p

    def make(conv: nn.Conv2d) -> LpConv2d:
        sigma = tuple(sigma_scale * k for k in conv.kernel_size)
        return _convert_one(conv, LpConv2d, init, enlarge, p_init=p_init, sigma_init=sigma,
                            learn_C=learn_C, learn_p=learn_p, p_min=p_min, C_param=C_param)

    return _convert(model, make, include, exclude, skip_pointwise)


def large_convert(
    model: nn.Module,
    *,
    init: Init = "zero_surround",
    include: Filter = None,
    exclude: Filter = None,
    skip_pointwise: bool = False,
) -> nn.Module:
    """The paper's "Large" baseline: the same enlarged kernels as :func:`lp_convert`, no mask."""
    return _convert(model, lambda conv: _convert_one(conv, LargeConv2d, init, True), include, exclude,
                    skip_pointwise)


def lp_layers(model: nn.Module) -> list[tuple[str, LpConv2d]]:
    """``(name, layer)`` for every :class:`LpConv2d` in ``model``, in module order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, LpConv2d)]


def constrain_lp_(model: nn.Module) -> nn.Module:
    """Project every Lp layer's ``log₂p`` onto ``p ≥ p_min`` (call after ``optimizer.step()``)."""
    for _, m in lp_layers(model):
        m.constrain_()
    return model


def _replace_lp(model: nn.Module, fn: Callable[[LpConv2d], nn.Module]) -> nn.Module:
    if isinstance(model, LpConv2d):
        return fn(model)
    for name, m in lp_layers(model):
        _set_submodule(model, name, fn(m))
    return model


def bake_lp(model: nn.Module) -> nn.Module:
    """Replace every :class:`LpConv2d` by its :meth:`~LpConv2d.bake`-d plain conv, in place."""
    return _replace_lp(model, lambda m: m.bake())


def crop_lp(model: nn.Module, eps: float = 1e-3) -> nn.Module:
    """Replace every :class:`LpConv2d` by its :meth:`~LpConv2d.crop`-ped plain conv, in place."""
    return _replace_lp(model, lambda m: m.crop(eps))
