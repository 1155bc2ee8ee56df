"""lp_convert / large_convert: geometry, weight transfer, filters, idempotence, refusals."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from neurolp.errors import ConfigError
from neurolp.layers import (LargeConv2d, LpConv2d, bake_lp, constrain_lp_, crop_lp, large_convert,
                            lp_convert, lp_layers)


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 5, stride=2, padding=2), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, groups=8),               # depthwise
        nn.Conv2d(8, 16, 1),                                    # pointwise
        nn.Conv2d(16, 16, 3, padding="same", dilation=2, padding_mode="reflect"),
        nn.Conv2d(16, 4, 2, stride=2),                          # even kernel, padding 0
    )


def _trained(model: nn.Module) -> nn.Module:
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return model.eval()


def test_lp256f_reproduces_a_trained_network():
    base = _trained(_net())
    x = torch.randn(2, 3, 20, 20)
    y = base(x)
    lp = lp_convert(copy.deepcopy(base), 256.0, frozen=True)
    assert len(lp_layers(lp)) == 5
    assert [m.kernel_size for _, m in lp_layers(lp)] == [(11, 11), (7, 7), (3, 3), (7, 7), (4, 4)]
    with torch.no_grad():
        assert torch.allclose(lp(x), y, atol=1e-5)
    lp.train()  # the training (custom autograd) path gives the same outputs
    lp[1].eval()
    assert torch.allclose(lp(x), y, atol=1e-5)


def test_large_zero_surround_reproduces_and_random_surround_does_not():
    base = _trained(_net())
    x = torch.randn(2, 3, 20, 20)
    large = large_convert(copy.deepcopy(base))
    assert all(isinstance(m, LargeConv2d) for m in large if isinstance(m, nn.Conv2d))
    assert torch.allclose(large(x), base(x), atol=1e-5)
    rnd = large_convert(copy.deepcopy(base), init="random_surround")
    assert not torch.allclose(rnd(x), base(x), atol=1e-3)
    # the centre still carries the original weights
    assert torch.equal(rnd[3].weight[:, :, 2:5, 2:5], base[3].weight)


def test_p2_masks_change_outputs_but_keep_shapes():
    base = _trained(_net())
    x = torch.randn(2, 3, 21, 19)
    lp = lp_convert(copy.deepcopy(base), 2.0)
    with torch.no_grad():
        y_lp, y = lp(x), base(x)
    assert y_lp.shape == y.shape
    assert not torch.allclose(y_lp, y, atol=1e-3)


def test_idempotent_and_filters():
    model = lp_convert(_net(), 2.0)
    n_params = sum(p.numel() for p in model.parameters())
    lp_convert(model, 4.0)
    large_convert(model)
    assert sum(p.numel() for p in model.parameters()) == n_params
    assert all(m.p_init == 2.0 for _, m in lp_layers(model))

    skip = lp_convert(_net(), 2.0, skip_pointwise=True, exclude="0")
    assert [n for n, _ in lp_layers(skip)] == ["3", "5", "6"]
    assert type(skip[0]) is nn.Conv2d and type(skip[4]) is nn.Conv2d
    only = lp_convert(_net(), 2.0, include=lambda name, m: m.groups > 1)
    assert [n for n, _ in lp_layers(only)] == ["3"]


def test_nested_names_and_root_conv():
    model = nn.Sequential(nn.Sequential(nn.Conv2d(1, 2, 3)), nn.Conv2d(2, 2, 3))
    lp_convert(model, 2.0, exclude="0.*")
    assert [n for n, _ in lp_layers(model)] == ["1"]
    root = lp_convert(nn.Conv2d(1, 1, 3), 2.0)
    assert isinstance(root, LpConv2d)


def test_options_are_passed_through():
    model = lp_convert(_net(), 8.0, learn_p=False, C_param="spd", p_min=2.0, sigma_scale=1.0)
    layer = lp_layers(model)[0][1]
    assert not layer.log2p.requires_grad and layer.C_param == "spd" and layer.p_min == 2.0
    assert layer.sigma_init == (5.0, 5.0) and layer.base_kernel_size == (5, 5)
    keep = lp_convert(nn.Conv2d(2, 2, 3, padding=1), 2.0, enlarge=False)
    assert keep.kernel_size == (3, 3) and keep.padding == (1, 1)


def test_conv_subclass_with_custom_forward_is_refused():
    class StdConv(nn.Conv2d):
        def forward(self, x):  # weight standardisation, as timm's StdConv2d
            w = (self.weight - self.weight.mean((1, 2, 3), keepdim=True))
            return self._conv_forward(x, w, self.bias)

    model = nn.Sequential(StdConv(3, 4, 3), nn.Conv2d(4, 4, 3))
    with pytest.raises(ConfigError, match="exclude"):
        lp_convert(model, 2.0)
    lp_convert(model, 2.0, exclude=["0"])
    assert [n for n, _ in lp_layers(model)] == ["1"]


def test_requires_grad_and_mode_are_kept():
    conv = nn.Conv2d(2, 2, 3)
    conv.weight.requires_grad_(False)
    conv.eval()
    lp = lp_convert(conv, 2.0)
    assert not lp.weight.requires_grad and lp.bias.requires_grad and not lp.training


def test_inference_helpers_bake_crop_constrain():
    model = _trained(lp_convert(_net(), 16.0))
    x = torch.randn(1, 3, 20, 20)
    with torch.no_grad():
        y = model(x)
        baked = bake_lp(copy.deepcopy(model))
        assert not lp_layers(baked) and torch.allclose(baked(x), y, atol=1e-5)
        cropped = crop_lp(copy.deepcopy(model), 1e-3)
        assert not lp_layers(cropped)
        assert torch.allclose(cropped(x), y, atol=1e-3)
    with torch.no_grad():
        for _, m in lp_layers(model):
            m.log2p.fill_(-1.0)
    constrain_lp_(model)
    assert all(torch.all(m.log2p == 0) for _, m in lp_layers(model))


def test_timm_model_converts():
    timm = pytest.importorskip("timm")
    model = timm.create_model("resnet18", pretrained=False, num_classes=5).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        y = model(x)
        lp = lp_convert(copy.deepcopy(model), 256.0, frozen=True)
        assert len(lp_layers(lp)) == 20
        assert torch.allclose(lp(x), y, atol=1e-4)
