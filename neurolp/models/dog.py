"""DoG-initialised models (``dog-{arch}``) and small ConvNeXts to train them on a CPU.

``dog-{arch}`` is the architecture with every depthwise convolution initialised with
Difference-of-Gaussians kernels (Babaiee et al., "Neural Echos", WACV 2024; see
:mod:`neurolp.layers.dog`); ``base-{arch}`` is its baseline. Options of
:func:`~neurolp.layers.dog.init_depthwise_dog_` go through ``convert_kwargs`` (``neurolp train
--convert-kwargs '{"pattern": "random", "share": 0.5, "gammas": [0.3, 0.5]}'``) and are recorded in
the checkpoint.

``convnext_atto`` is timm's smallest ConvNeXt configuration (depths 2-2-6-2, widths 40-320, 3.4 M
parameters at 10 classes); ``convnext_micro`` (depths 1-1-3-1, widths 32-256, 1.2 M) is smaller
still, for minute-long CPU runs on digits. Both use torchvision's ConvNeXt blocks (7×7 depthwise
conv, LayerNorm, inverted MLP, layer scale) and, for inputs of at most 32 px, the same 3×3 / stride 1
stem as ``convnext_tiny`` in :mod:`neurolp.models.archs`.
"""

from __future__ import annotations

from torch import nn

from neurolp.errors import ConfigError
from neurolp.models.registry import register_arch, register_variant

__all__ = ["DOG_ARCHS", "DOG_OPTIONS", "small_convnext"]

DOG_OPTIONS = ("gammas", "pattern", "share", "seed", "scale")


def small_convnext(num_classes: int, image_size: int, dims, depths, drop_path_rate: float = 0.0) -> nn.Module:
    from torchvision.models.convnext import CNBlockConfig, ConvNeXt

    from neurolp.models.archs import _cifar_convnext_stem, _small

    setting = [CNBlockConfig(dims[i], dims[i + 1] if i + 1 < len(dims) else None, depths[i])
               for i in range(len(dims))]
    model = ConvNeXt(setting, stochastic_depth_prob=drop_path_rate, num_classes=num_classes)
    if _small(image_size):
        _cifar_convnext_stem(model, dims[0])
    return model


@register_arch("convnext_atto", description="ConvNeXt-Atto (timm's sizes: depths 2-2-6-2, widths 40-320; "
               "7×7 depthwise convs)", has_drop_path=True)
def convnext_atto(num_classes: int, image_size: int, drop_path_rate: float = 0.0) -> nn.Module:
    return small_convnext(num_classes, image_size, (40, 80, 160, 320), (2, 2, 6, 2), drop_path_rate)


@register_arch("convnext_micro", description="Small ConvNeXt for CPU demos (depths 1-1-3-1, widths 32-256; "
               "7×7 depthwise convs; not in the paper)", has_drop_path=True)
def convnext_micro(num_classes: int, image_size: int, drop_path_rate: float = 0.0) -> nn.Module:
    return small_convnext(num_classes, image_size, (32, 64, 128, 256), (1, 1, 3, 1), drop_path_rate)


DOG_ARCHS = ("convnext_tiny", "convnext_atto", "convnext_micro")  # the registered archs with depthwise convs


def _build_dog(name, arch, num_classes, image_size, convert_kwargs, **arch_kwargs) -> nn.Module:
    from neurolp.layers.dog import init_depthwise_dog_

    unknown = sorted(set(convert_kwargs) - set(DOG_OPTIONS))
    if unknown:
        raise ConfigError(f"{name}: unknown DoG option(s) {unknown}; valid: {', '.join(DOG_OPTIONS)}")
    model = arch.builder(num_classes=num_classes, image_size=image_size, **arch_kwargs)
    init_depthwise_dog_(model, **convert_kwargs)
    return model


register_variant("dog", r"dog", _build_dog, archs=DOG_ARCHS, examples=("dog-{arch}",),
                 description="DoG-initialised depthwise convs (Neural Echos), archs "
                             + ", ".join(DOG_ARCHS))
