"""CIFAR ResNet-20 (He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016, §4.2).

The 6n+2 network for 32×32 inputs with n = 3: a 3×3 stem with 16 channels, three stages of n basic
blocks with 16, 32 and 64 channels (the first block of stages 2 and 3 strides by 2), global average
pooling and a linear classifier. Shortcuts are option A of the paper (identity; subsampled and
zero-padded in channels where the shape changes), so every convolution is a 3×3 — 19 of them, 0.27 M
parameters for 10 classes. ``shortcut="B"`` uses 1×1 conv + BN projections instead (the shape changes
only twice, so it adds two 1×1 convs).

This is the ``resnet_cifar`` network on which Pogodin et al. (NeurIPS 2021) compare locally connected
layers with convolutions (``lc-resnet20``, ``lcws10-resnet20``: see :mod:`neurolp.layers.local`).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from neurolp.models.registry import register_arch

__all__ = ["ResNetCifar", "resnet20"]


class _ShortcutA(nn.Module):
    """Option A: subsample by ``stride`` and zero-pad the new channels (no parameters)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int):
        super().__init__()
        self.stride, self.extra = stride, out_ch - in_ch

    def forward(self, x):
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.extra // 2, self.extra - self.extra // 2))


class BasicBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, stride: int, shortcut: str):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        if stride == 1 and in_ch == out_ch:
            self.shortcut = nn.Identity()
        elif shortcut == "A":
            self.shortcut = _ShortcutA(in_ch, out_ch, stride)
        else:
            self.shortcut = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNetCifar(nn.Module):
    """ResNet-(6n+2) for small images (He et al. 2016, §4.2)."""

    def __init__(self, n: int = 3, num_classes: int = 10, widths=(16, 32, 64), shortcut: str = "A",
                 in_chans: int = 3):
        super().__init__()
        if shortcut not in ("A", "B"):
            raise ValueError(f"shortcut must be 'A' (identity, zero-padded) or 'B' (1×1 projection), got {shortcut!r}")
        self.in_chans = in_chans
        self.conv1 = nn.Conv2d(in_chans, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        stages, in_ch = [], widths[0]
        for i, w in enumerate(widths):
            blocks = []
            for j in range(n):
                blocks.append(BasicBlock(in_ch, w, 2 if (i > 0 and j == 0) else 1, shortcut))
                in_ch = w
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.fc = nn.Linear(widths[-1], num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


@register_arch("resnet20", description="CIFAR ResNet-20 (He et al. 2016: 3×3 basic blocks, 16/32/64 channels)",
               tags=("small-input",))
def resnet20(num_classes: int, image_size: int, shortcut: str = "A", in_chans: int = 3) -> nn.Module:
    """Any ``image_size`` works (global average pooling); the network was designed for 32×32."""
    return ResNetCifar(3, num_classes, shortcut=shortcut, in_chans=in_chans)
