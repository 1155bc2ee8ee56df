"""Torchvision architectures of the paper (Table 1: AlexNet, VGG-16-BN, ResNet-18/34, ConvNeXt-T;
Table 9: ResNet-50, ResNeXt-50 32×4d, DenseNet-121), built with random weights.

Stems: for inputs of at most 32 px (CIFAR) the stem convolution becomes 3×3 / stride 1 / padding 1,
as in the official code's CIFAR models; everything else (including ResNet's max-pool and ConvNeXt's
blocks) is torchvision's. Larger inputs (64 px TinyImageNet, 224 px) use torchvision's stems unchanged.

Builders take only the options named in their signatures: nothing is passed through to torchvision,
so a model description (e.g. from a checkpoint's metadata) can never ask for pretrained weights,
which torchvision would download.
"""

from __future__ import annotations

import torchvision.models as tvm
from torch import nn

from neurolp.models.registry import register_arch

CIFAR_MAX_SIZE = 32


def _small(image_size: int) -> bool:
    return image_size <= CIFAR_MAX_SIZE


def _kaiming_conv(in_ch: int, out_ch: int, bias: bool) -> nn.Conv2d:
    conv = nn.Conv2d(in_ch, out_ch, 3, 1, 1, bias=bias)
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    if bias:
        nn.init.zeros_(conv.bias)
    return conv


@register_arch("alexnet", description="AlexNet (5 convs; 11×11/s4 stem, 3×3/s1 on CIFAR)")
def alexnet(num_classes: int, image_size: int, dropout: float = 0.5) -> nn.Module:
    model = tvm.alexnet(num_classes=num_classes, dropout=dropout)
    if _small(image_size):
        model.features[0] = nn.Conv2d(3, 64, 3, 1, 1)
    return model


@register_arch("vgg16", description="VGG-16 with batch norm (13 convs, all 3×3)")
def vgg16(num_classes: int, image_size: int, dropout: float = 0.5) -> nn.Module:
    return tvm.vgg16_bn(num_classes=num_classes, dropout=dropout)


def _resnet(builder):
    def build(num_classes: int, image_size: int) -> nn.Module:
        model = builder(num_classes=num_classes)
        if _small(image_size):
            model.conv1 = _kaiming_conv(3, 64, bias=False)
        return model

    return build


register_arch("resnet18", description="ResNet-18 (basic blocks)")(_resnet(tvm.resnet18))
register_arch("resnet34", description="ResNet-34 (basic blocks)")(_resnet(tvm.resnet34))
register_arch("resnet50", description="ResNet-50 (bottlenecks, 1×1 convs)")(_resnet(tvm.resnet50))
register_arch("resnext50_32x4d", description="ResNeXt-50 32×4d (grouped 3×3 convs)")(
    _resnet(tvm.resnext50_32x4d))


@register_arch("densenet121", description="DenseNet-121 (1×1 transitions)")
def densenet121(num_classes: int, image_size: int, drop_rate: float = 0.0) -> nn.Module:
    model = tvm.densenet121(num_classes=num_classes, drop_rate=drop_rate)
    if _small(image_size):
        model.features.conv0 = _kaiming_conv(3, 64, bias=False)
    return model


def _cifar_convnext_stem(model: nn.Module, width: int) -> None:
    """Replace a torchvision ConvNeXt's 4×4/s4 patchify stem by a 3×3/s1 conv of ``width`` channels
    (ConvNeXt's own init: trunc-normal σ = 0.02, zero bias)."""
    stem = nn.Conv2d(3, width, 3, 1, 1)
    nn.init.trunc_normal_(stem.weight, std=0.02)
    nn.init.zeros_(stem.bias)
    model.features[0][0] = stem


@register_arch("convnext_tiny", description="ConvNeXt-T (7×7 depthwise convs, 4×4/s4 stem)",
               has_drop_path=True)
def convnext_tiny(num_classes: int, image_size: int, drop_path_rate: float = 0.0) -> nn.Module:
    model = tvm.convnext_tiny(num_classes=num_classes, stochastic_depth_prob=drop_path_rate)
    if _small(image_size):
        _cifar_convnext_stem(model, 96)
    return model


@register_arch("smallcnn", description="Small 4-conv CNN for CPU demos and tests (not in the paper)",
               tags=("small-input",))
def smallcnn(num_classes: int, image_size: int, width: int = 32, in_chans: int = 3) -> nn.Module:
    """conv3×3–BN–ReLU blocks (width, 2·width, 4·width, 4·width) with max-pools, global average
    pool and a linear head: small enough to train on a CPU in seconds, deep enough for Lp-masks."""
    chans = [in_chans, width, 2 * width, 4 * width, 4 * width]
    layers: list[nn.Module] = []
    for i in range(4):
        layers += [nn.Conv2d(chans[i], chans[i + 1], 3, 1, 1, bias=False), nn.BatchNorm2d(chans[i + 1]),
                   nn.ReLU(inplace=True)]
        if i < 3:
            layers.append(nn.MaxPool2d(2))
    return nn.Sequential(nn.Sequential(*layers), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(chans[-1], num_classes))


import neurolp.models.sudoku  # noqa: E402,F401  (registers sudokucnn)
import neurolp.models.resnet_cifar  # noqa: E402,F401  (registers resnet20)
