"""SudokuCNN (Oinar 2021; Kwon et al. 2025 §5, Fig. 4a, App. A.5): ``depth`` Conv2dSame blocks and a
1×1 head to 9 digit classes per cell. It lives in the registry (``base-sudokucnn``,
``lp2-sudokucnn``, ...) so that checkpoints rebuild it anywhere; the Sudoku task itself is
:mod:`neurolp.sudoku`.
"""

from __future__ import annotations

from torch import nn

from neurolp.models.registry import register_arch

__all__ = ["Conv2dSame", "SudokuCNN"]


class Conv2dSame(nn.Module):
    """ReflectionPad → Conv2d (no padding) → BatchNorm → ReLU, "same" output size for any k.

    The reflection pad is ``k//2`` before and ``k//2`` (odd k) or ``k//2 − 1`` (even k) after, as in
    Oinar's and the paper's block. :func:`~neurolp.layers.lp_convert` replaces ``conv`` by an
    enlarged Lp-conv whose own (zero) padding keeps the size, on top of the reflection pad.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, bias: bool = True):
        super().__init__()
        ka = kernel_size // 2
        kb = ka - 1 if kernel_size % 2 == 0 else ka
        self.pad = nn.ReflectionPad2d((ka, kb, ka, kb))
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, bias=bias)
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.act(self.bn(self.conv(self.pad(x))))


class SudokuCNN(nn.Module):
    """``depth`` × :class:`Conv2dSame` (``in_chans`` → ``width`` → … → ``width``) → 1×1 conv head.

    Input ``[B, in_chans, 9, 9]`` (the harness encodes digits as ``d/9 − 0.5``); output logits
    ``[B, num_classes, 9, 9]`` (class ``c`` = digit ``c + 1``), for ``cross_entropy`` as is.
    """

    def __init__(self, depth: int = 10, width: int = 256, num_classes: int = 9, in_chans: int = 1,
                 kernel_size: int = 3):
        super().__init__()
        if depth < 1 or width < 1:
            raise ValueError(f"need depth >= 1 and width >= 1, got {depth}, {width}")
        self.in_chans = in_chans
        chans = [in_chans] + [width] * depth
        self.blocks = nn.Sequential(*[Conv2dSame(chans[i], chans[i + 1], kernel_size)
                                      for i in range(depth)])
        self.head = nn.Conv2d(width, num_classes, 1)

    def forward(self, x):
        return self.head(self.blocks(x))


@register_arch("sudokucnn", description="SudokuCNN: depth × Conv2dSame (reflection pad, conv, BN, "
                                        "ReLU) + 1×1 head, 9×9 grids (paper §5; not an image model)")
def sudokucnn(num_classes: int = 9, image_size: int = 9, depth: int = 10, width: int = 256,
              in_chans: int = 1) -> nn.Module:
    """The paper's setting is depth 10 × width 256 (App. A.5); ``image_size`` is recorded only."""
    return SudokuCNN(depth, width, num_classes, in_chans)
