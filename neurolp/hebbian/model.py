"""The Amato et al. (2019) CIFAR-10 network with Hebbian (Krotov–Hopfield) or SGD layers.

Amato, Carrara, Falchi, Gennaro, Lagani, "Hebbian Learning Meets Deep Convolutional Neural Networks"
(ICIAP 2019), as used by Manzali (2021) for BioConv2d: five layers, each preceded by a
BatchNorm(affine=False) and followed by a ReLU,

    conv 3→96 5×5, pool 2 → conv 96→128 3×3 → conv 128→192 3×3, pool 2 → conv 192→256 3×3
    → linear 2304→300

and a classifier "adapted to the output of each intermediate layer": BatchNorm(affine=False) →
Dropout → Linear after layer n. Registry names (plug-in variants of the ``amato`` architecture):

* ``hebb{n}-amato`` (n = 1…5): the first n layers Hebbian (BioConv2d / BioLinear, frozen for
  backprop; trained by :mod:`neurolp.hebbian.train`) + the SGD head; p, k, Δ and dropout default
  to the slides' best values for n layers (Table 1), shared by the n layers;
* ``sgd{n}-amato``: the same n layers as ordinary convs, everything trained by SGD (the control;
  ``sgd-amato`` is the full five-layer net, Amato's "Full SGD");
* ``base-amato`` (and ``lp2-amato`` …): the five-layer SGD net as a registry architecture.

With 32×32 inputs the parameter counts are the slides' (195k, 302k, 387k, 804k, 1.475M). Larger
inputs are max-pooled adaptively to the 32×32 geometry before the classifier (an identity at 32),
so the head does not grow with the image (e.g. at 224 px, where ``neurolp fit-mpnd`` looks at
the first conv only).
"""

from __future__ import annotations

from torch import nn

from neurolp.errors import ConfigError
from neurolp.layers.hebbian import BioConv2d, BioLinear
from neurolp.models.registry import register_arch, register_variant

__all__ = ["AmatoNet", "AMATO_LAYERS", "SLIDES_TABLE", "slides_hyperparameters", "feature_shape"]

# (kind, in, out, kernel, max-pool after)
AMATO_LAYERS = (("conv", 3, 96, 5, True), ("conv", 96, 128, 3, False), ("conv", 128, 192, 3, True),
                ("conv", 192, 256, 3, False), ("linear", 2304, 300, None, False))

# Manzali (2021), slides 37–38: best hyper-parameters and CIFAR-10 accuracy per number of layers.
SLIDES_TABLE = {
    1: {"p": 2, "k": 9, "delta": 0.08, "dropout": 0.2, "val": 66.97, "test": 66.21, "params": "195k",
        "amato_hebbian_test": 63.92, "amato_sgd_test": 60.71},
    2: {"p": 8, "k": 3, "delta": 0.34, "dropout": 0.25, "val": 65.44, "test": 65.22, "params": "302k",
        "amato_hebbian_test": 63.81, "amato_sgd_test": 66.30},
    3: {"p": 8, "k": 5, "delta": 0.25, "dropout": 0.05, "val": 63.87, "test": 63.08, "params": "387k",
        "amato_hebbian_test": 58.28, "amato_sgd_test": 72.39},
    4: {"p": 8, "k": 7, "delta": 0.235, "dropout": 0.1, "val": 58.79, "test": 58.86, "params": "804k",
        "amato_hebbian_test": 52.99, "amato_sgd_test": 82.69},
    5: {"p": 8, "k": 2, "delta": 0.335, "dropout": 0.1, "val": 45.91, "test": 45.45, "params": "1.475M",
        "amato_hebbian_test": 41.78, "amato_sgd_test": 84.95},
}


def slides_hyperparameters(n_layers: int) -> dict:
    """``{"p", "k", "delta", "dropout"}`` of the slides' Table 1 for an n-layer network."""
    if n_layers not in SLIDES_TABLE:
        raise ConfigError(f"the Amato network has 1 to 5 layers, got {n_layers}")
    return {k: SLIDES_TABLE[n_layers][k] for k in ("p", "k", "delta", "dropout")}


def feature_shape(depth: int, image_size: int = 32) -> tuple[int, ...]:
    """Output shape (C, H, W) — or (C,) after the linear layer — of the first ``depth`` layers."""
    c, s = AMATO_LAYERS[0][1], image_size
    for kind, _, cout, k, pool in AMATO_LAYERS[:depth]:
        if kind == "linear":
            return (cout,)
        s = s - k + 1
        s = s // 2 if pool else s
        c = cout
        if s < 1:
            raise ConfigError(f"{image_size}×{image_size} inputs are too small for {depth} Amato layers "
                              "(the network is built for 32×32)")
    return (c, s, s)


class AmatoNet(nn.Module):
    """``depth`` Amato layers (the first ``hebbian`` of them Hebbian) and the classifier head.

    ``features`` is an ``nn.Sequential`` of blocks (``features[i]`` is layer i+1; ``features[i].layer``
    its conv/linear), ``head`` is BatchNorm1d(affine=False) → Dropout → Linear.
    """

    def __init__(self, num_classes: int = 10, depth: int = 5, hebbian: int = 0, image_size: int = 32,
                 lebesgue_p: float = 2, ranking_param: int = 9, delta: float = 0.08, dropout: float = 0.2,
                 in_chans: int = 3, step_norm: str | None = None):
        super().__init__()
        if not 1 <= depth <= 5 or not 0 <= hebbian <= depth:
            raise ConfigError(f"need 1 <= depth <= 5 and 0 <= hebbian <= depth, got {depth}, {hebbian}")
        self.depth, self.hebbian = depth, hebbian
        blocks = []
        for i, (kind, cin, cout, k, pool) in enumerate(AMATO_LAYERS[:depth]):
            cin = in_chans if i == 0 else cin
            mods: list[nn.Module] = []
            if kind == "linear":
                mods.append(nn.Sequential(nn.AdaptiveMaxPool2d(feature_shape(4)[1:]), nn.Flatten()))
            if i < hebbian:
                rule = dict(lebesgue_p=lebesgue_p, ranking_param=ranking_param, delta=delta)
                if step_norm is not None:  # else each layer's default: per kernel (conv), global (linear)
                    rule["step_norm"] = step_norm
                layer = BioConv2d(cin, cout, k, **rule) if kind == "conv" else BioLinear(cin, cout, **rule)
            else:  # SGD: the same BatchNorm(affine=False) on the input, no bias (same parameter count)
                bn = nn.BatchNorm2d(cin, affine=False) if kind == "conv" else nn.BatchNorm1d(cin, affine=False)
                mods.append(bn)
                layer = nn.Conv2d(cin, cout, k, bias=False) if kind == "conv" else nn.Linear(cin, cout, bias=False)
            mods += [layer, nn.ReLU(inplace=True)]
            if pool:
                mods.append(nn.MaxPool2d(2))
            blocks.append(_Block(mods))
        self.features = nn.Sequential(*blocks)
        shape = feature_shape(depth)  # the 32×32 geometry
        self.pool = nn.AdaptiveMaxPool2d(shape[1:]) if len(shape) == 3 else nn.Identity()
        n_feat = 1
        for s in shape:
            n_feat *= s
        self.head = nn.Sequential(nn.Flatten(), nn.BatchNorm1d(n_feat, affine=False), nn.Dropout(dropout),
                                  nn.Linear(n_feat, num_classes))
        feature_shape(depth, image_size)  # refuse inputs too small for the layers

    def hebbian_layers(self) -> list[nn.Module]:
        """The BioConv2d / BioLinear layers, input side first."""
        return [b.layer for b in self.features[: self.hebbian]]

    def neurolp_check_trainable(self) -> None:
        """``neurolp train`` trains by backprop only: Hebbian layers would stay at their random init."""
        if self.hebbian:
            n = self.hebbian
            raise ConfigError(f"the {n} Hebbian layer(s) of hebb{n}-amato learn without labels: train it with "
                              f"`neurolp hebbian train --layers {n}` (Krotov–Hopfield layers, then the head); "
                              f"`neurolp train` trains by backprop only and would leave them at their random "
                              f"init (for the supervised control use --model sgd{n}-amato)")

    def forward_features(self, x, upto: int | None = None):
        """Output of the first ``upto`` layers (all by default), before the classifier."""
        for block in self.features[: self.depth if upto is None else upto]:
            x = block(x)
        return x

    def forward(self, x):
        x = self.forward_features(x)
        return self.head(self.pool(x) if x.dim() == 4 else x)


class _Block(nn.Sequential):
    """One Amato layer: [flatten] → [BatchNorm] → conv/linear → ReLU → [max-pool]; ``.layer`` is the
    conv/linear."""

    def __init__(self, mods):
        super().__init__(*mods)

    @property
    def layer(self) -> nn.Module:
        for m in self:
            if isinstance(m, (nn.Conv2d, nn.Linear, BioLinear)):
                return m
        raise AttributeError("block has no conv/linear layer")  # pragma: no cover


@register_arch("amato", description="Amato et al. 2019 CIFAR net: 4 convs (96/128/192/256) + linear 300, "
                                    "BN(affine=False) before each layer (Hebbian variants: hebb{n}-, sgd{n}-)")
def amato(num_classes: int = 10, image_size: int = 32, dropout: float = 0.1, in_chans: int = 3) -> nn.Module:
    """The five-layer network trained end to end (Amato's "Full SGD"); dropout from the slides' n=5."""
    return AmatoNet(num_classes, depth=5, hebbian=0, image_size=image_size, dropout=dropout, in_chans=in_chans)


def _build_hebbian(name, arch, num_classes, image_size, convert_kwargs, **kw):
    if convert_kwargs:
        raise ConfigError(f"{name} takes no conversion options (got {convert_kwargs})")
    n = int(name.params[0])
    hp = slides_hyperparameters(n)
    return AmatoNet(num_classes, depth=n, hebbian=n, image_size=image_size,
                    lebesgue_p=kw.pop("lebesgue_p", hp["p"]), ranking_param=kw.pop("ranking_param", hp["k"]),
                    delta=kw.pop("delta", hp["delta"]), dropout=kw.pop("dropout", hp["dropout"]), **kw)


def _build_sgd(name, arch, num_classes, image_size, convert_kwargs, **kw):
    if convert_kwargs:
        raise ConfigError(f"{name} takes no conversion options (got {convert_kwargs})")
    n = int(name.params[0] or 5)
    return AmatoNet(num_classes, depth=n, hebbian=0, image_size=image_size,
                    dropout=kw.pop("dropout", slides_hyperparameters(n)["dropout"]), **kw)


register_variant("hebb", r"hebb([1-5])", _build_hebbian, archs=("amato",),
                 examples=tuple(f"hebb{n}-{{arch}}" for n in range(1, 6)),
                 description="hebb{n}: n Krotov–Hopfield Hebbian layers + SGD head (n = 1..5)")
register_variant("sgd", r"sgd([1-5]?)", _build_sgd, archs=("amato",),
                 canonical=lambda g: f"sgd{g[0]}" if g[0] else "sgd",
                 examples=("sgd-{arch}", "sgd1-{arch}", "sgd2-{arch}"),
                 description="sgd{n}: the same n layers trained end to end by SGD (sgd = all 5)")
