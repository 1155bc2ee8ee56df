"""LpConv2d: the Lp-mask, gradients, the memory-lean autograd path, caching, bake() and crop()."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch import nn

from neurolp.layers import LpConv2d, lp_convert, masked_conv2d
from neurolp.mpnd import lp_mask, offset_grid


def _converted(k=3, p=2.0, **kw) -> LpConv2d:
    conv = nn.Conv2d(4, 6, k, padding=k // 2)
    return lp_convert(conv, p, **kw)


def _trained_looking(layer: LpConv2d, seed: int = 0) -> LpConv2d:
    """Give a layer off-diagonal C, varied p and a dense weight, as after training."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(layer.weight.shape, generator=g) * 0.2)
        C = layer.C_matrix()
        layer.C.copy_(C + 0.15 * torch.randn(C.shape, generator=g))
        layer.log2p.copy_(1 + 2 * torch.rand(layer.log2p.shape, generator=g))
        if layer.bias is not None:
            layer.bias.copy_(torch.randn(layer.bias.shape, generator=g))
    return layer


def test_init_mask_centre_row_matches_paper_p2():
    layer = _converted(3, 2.0)
    assert layer.kernel_size == (7, 7)
    row = layer.mask()[0, 3].detach()
    expected = torch.tensor([0.018, 0.169, 0.641, 1.0, 0.641, 0.169, 0.018])
    assert torch.allclose(row, expected, atol=6e-4)
    # all output channels share the init mask; it is symmetric and peaks at 1 in the centre
    m = layer.mask().detach()
    assert torch.allclose(m, m[:1].expand_as(m))
    assert torch.allclose(m, m.flip(-1)) and torch.allclose(m, m.flip(-2))
    assert m[0, 3, 3] == 1.0


@pytest.mark.parametrize("p", [8.0, 16.0, 256.0])
def test_large_p_support_is_exactly_the_original_box_k3(p):
    layer = _converted(3, p)
    support = layer.mask()[0].detach() > 1e-3
    box = torch.zeros(7, 7, dtype=torch.bool)
    box[2:5, 2:5] = True
    assert torch.equal(support, box)


@pytest.mark.parametrize("k", [2, 3, 4, 5, 7, 11])
@pytest.mark.parametrize("p", [2.0, 8.0, 16.0, 256.0])
def test_box_support_exactly_when_nearest_outside_tap_is_below_threshold(k, p):
    # σ = k/2 puts the box edge at |CΔs| ≤ (k−1)/k and the nearest outside tap at (k+1)/k, so the
    # support above 1e-3 is the k×k box iff ((k+1)/k)^p > ln(1000) (corners stay ≫ 1e-3).
    layer = _converted(k, p)
    l = 2 * math.ceil(k / 2) + k
    assert layer.kernel_size == (l, l)
    support = layer.mask()[0].detach() > 1e-3
    g = (l - k) // 2
    box = torch.zeros(l, l, dtype=torch.bool)
    box[g:g + k, g:g + k] = True
    assert torch.equal(support, box) == (((k + 1) / k) ** p > math.log(1e3))


def test_paper_support_counts_p2_p4():
    # lpconv-anchor §2.9: k=3 → l=7 has 45 taps > 1e-3 at p=2 and 25 at p=4
    assert int((_converted(3, 2.0).mask()[0] > 1e-3).sum()) == 45
    assert int((_converted(3, 4.0).mask()[0] > 1e-3).sum()) == 25


def test_lp_mask_formula_against_direct_evaluation():
    C = torch.tensor([[[0.7, 0.2], [-0.1, 0.4]]])
    p = torch.tensor([3.0])
    off = offset_grid(5)
    got = lp_mask(C, p, off)[0]
    for h in range(5):
        for w in range(5):
            ds = torch.tensor([h - 2.0, w - 2.0])
            z = C[0] @ ds
            assert got[h, w].item() == pytest.approx(math.exp(-(z.abs() ** 3).sum().item()), rel=1e-5)


def test_gradients_reach_C_and_p_and_stay_finite_at_the_floor():
    layer = _trained_looking(_converted(3, 2.0))
    x = torch.randn(2, 4, 9, 9)
    with torch.no_grad():
        layer.log2p.fill_(0.0)  # p = 1 = p_min: on the floor
    layer(x).square().mean().backward()
    for q in (layer.C, layer.log2p, layer.weight):
        assert torch.isfinite(q.grad).all()
        assert q.grad.abs().sum() > 0
    # below the floor: the forward uses p = 1, gradients stay finite and still reach log2p (a
    # straight-through clamp, so a p on the floor can grow again), and constrain_() projects back
    layer.zero_grad()
    with torch.no_grad():
        layer.log2p.fill_(-3.0)
    assert torch.allclose(layer.p, torch.ones(6))
    layer(x).square().mean().backward()
    for q in (layer.C, layer.log2p):
        assert torch.isfinite(q.grad).all() and q.grad.abs().sum() > 0
    layer.constrain_()
    assert torch.all(layer.log2p == 0.0)


def test_huge_trainable_p_has_finite_gradients():
    layer = _converted(3, 256.0)  # trainable p = 256: |z|^p would overflow without the log domain
    layer(torch.randn(1, 4, 8, 8)).sum().backward()
    assert torch.isfinite(layer.C.grad).all() and torch.isfinite(layer.log2p.grad).all()


def test_masked_conv_function_matches_naive_autograd():
    torch.manual_seed(0)
    x = torch.randn(2, 4, 8, 8, dtype=torch.double, requires_grad=True)
    w = torch.randn(6, 2, 5, 5, dtype=torch.double, requires_grad=True)
    m = torch.rand(6, 5, 5, dtype=torch.double, requires_grad=True)
    b = torch.randn(6, dtype=torch.double, requires_grad=True)
    args = dict(stride=(2, 1), padding=(2, 1), dilation=(1, 2), groups=2)
    y = masked_conv2d(x, w, m, b, **args)
    y_ref = F.conv2d(x, w * m.unsqueeze(1), b, **args)
    assert torch.allclose(y, y_ref)
    gy = torch.randn_like(y)
    g = torch.autograd.grad(y, (x, w, m, b), gy)
    g_ref = torch.autograd.grad(y_ref, (x, w, m, b), gy)
    for a, r in zip(g, g_ref):
        assert torch.allclose(a, r)
    assert torch.autograd.gradcheck(lambda *t: masked_conv2d(*t, **args), (x, w, m, b))


@pytest.mark.parametrize("padding_mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("padding", [1, "same"])
def test_layer_forward_matches_reference_for_every_padding(padding_mode, padding):
    torch.manual_seed(1)
    layer = _trained_looking(LpConv2d(4, 6, 5, padding=padding, padding_mode=padding_mode))
    x = torch.randn(2, 4, 10, 11)
    ref = nn.Conv2d(4, 6, 5, padding=padding, padding_mode=padding_mode)
    with torch.no_grad():
        ref.weight.copy_(layer.weight * layer.mask().unsqueeze(1))
        ref.bias.copy_(layer.bias)
    assert torch.allclose(layer(x), ref(x), atol=1e-5)  # training path (custom autograd)
    layer.eval()
    with torch.no_grad():
        assert torch.allclose(layer(x), ref(x), atol=1e-5)  # cached inference path


def test_mask_cache_is_reused_and_invalidated():
    layer = _trained_looking(_converted(3, 2.0)).eval()
    x = torch.randn(1, 4, 8, 8)
    with torch.no_grad():
        y1 = layer(x)
        w1 = layer.masked_weight()
        assert layer.masked_weight() is w1  # cached, not recomputed
        layer.C[0, 0, 0] += 0.5  # in-place update bumps the parameter version
        assert layer.masked_weight() is not w1
        y2 = layer(x)
    assert not torch.allclose(y1[:, 0], y2[:, 0]) and torch.allclose(y1[:, 1:], y2[:, 1:])
    # with gradients enabled the mask is rebuilt (and differentiable) every call
    assert layer.masked_weight().requires_grad


def test_bake_is_exact():
    layer = _trained_looking(LpConv2d(4, 6, 7, stride=2, padding=3, dilation=1, groups=2))
    baked = layer.bake()
    assert type(baked) is nn.Conv2d and baked.kernel_size == (7, 7)
    x = torch.randn(3, 4, 13, 13)
    with torch.no_grad():
        assert torch.allclose(baked(x), layer(x), atol=1e-6)


@pytest.mark.parametrize("padding_mode", ["zeros", "reflect"])
def test_crop_to_original_box_within_stated_bound(padding_mode):
    layer = _converted(3, 16.0)  # init masks: support is the original 3×3 box
    with torch.no_grad():
        layer.weight.normal_(0, 0.3)  # a dense 7×7 weight, as after training
    layer.padding_mode = padding_mode
    cropped = layer.crop(1e-3)
    assert cropped.kernel_size == (3, 3) and cropped.padding == (1, 1)
    x = torch.randn(2, 4, 12, 12)
    with torch.no_grad():
        err = (cropped(x) - layer(x)).abs().amax(dim=(0, 2, 3))
    bound = layer.crop_error_bound(1e-3) * x.abs().max()
    assert torch.all(err <= bound + 1e-5)
    assert bound.max() < 1e-2  # dropped taps carry almost nothing at p = 16


def test_crop_bound_holds_for_trained_masks():
    layer = _trained_looking(LpConv2d(4, 6, 9, padding=4), seed=3)
    with torch.no_grad():  # rotated, anisotropic masks narrower than the 9×9 kernel
        layer.C.copy_(torch.tensor([[0.8, 0.25], [-0.1, 0.6]]) * torch.linspace(1, 1.5, 6)[:, None, None])
    cropped = layer.crop(1e-2)
    assert cropped.kernel_size[0] < 9
    x = torch.randn(2, 4, 12, 12)
    with torch.no_grad():
        err = (cropped(x) - layer(x)).abs().amax(dim=(0, 2, 3))
    assert torch.all(err <= layer.crop_error_bound(1e-2) * x.abs().max() + 1e-5)


def test_crop_keeps_wide_masks_and_padding_nonnegative():
    layer = _converted(3, 2.0)  # p = 2: 45 taps above 1e-3, the 7×7 box is nearly all kept
    assert layer.crop(1e-3).kernel_size == (7, 7)
    assert layer.crop(0.1).kernel_size == (5, 5)
    valid = lp_convert(nn.Conv2d(2, 2, 3, padding=0), 16.0)
    assert valid.padding == (2, 2)
    assert valid.crop(1e-3).padding == (0, 0) and valid.crop(1e-3).kernel_size == (3, 3)


def test_spd_parametrisation_is_symmetric_positive_definite():
    layer = LpConv2d(3, 5, 7, padding=3, sigma_init=1.5, C_param="spd")
    C = layer.C_matrix().detach()
    assert torch.allclose(C, torch.diag_embed(torch.full((5, 2), 1 / 1.5)), atol=1e-6)
    with torch.no_grad():
        layer.L.add_(torch.randn_like(layer.L))
    C = layer.C_matrix().detach()
    assert torch.allclose(C, C.transpose(-1, -2))
    assert torch.all(torch.linalg.eigvalsh(C) > 0)
    layer(torch.randn(1, 3, 8, 8)).sum().backward()
    assert layer.L.grad.abs().sum() > 0
    assert "L" in layer.state_dict() and "C" not in layer.state_dict()


def test_freezing_and_state_dict_round_trip():
    frozen = lp_convert(nn.Conv2d(3, 4, 3, padding=1), 256.0, frozen=True)
    assert not frozen.C.requires_grad and not frozen.log2p.requires_grad and frozen.weight.requires_grad
    only_c = lp_convert(nn.Conv2d(3, 4, 3, padding=1), 4.0, learn_p=False)
    assert only_c.C.requires_grad and not only_c.log2p.requires_grad
    a = _trained_looking(_converted(3, 2.0))
    b = _converted(3, 2.0)
    b.load_state_dict(a.state_dict())
    assert set(a.state_dict()) == {"weight", "bias", "log2p", "C"}  # offsets are not persisted
    x = torch.randn(1, 4, 6, 6)
    assert torch.allclose(a(x), b(x))


def test_bad_arguments():
    with pytest.raises(ValueError, match="p_init"):
        LpConv2d(1, 1, 3, p_init=0)
    with pytest.raises(ValueError, match="C_param"):
        LpConv2d(1, 1, 3, C_param="cholesky")


@settings(max_examples=15, deadline=None)
@given(k=st.integers(1, 6), stride=st.integers(1, 3), dilation=st.integers(1, 2), pad=st.integers(0, 2),
       size=st.integers(9, 14))
def test_lp256f_reproduces_any_conv_geometry(k, stride, dilation, pad, size):
    assume(size + 2 * pad >= dilation * (k - 1) + 1)  # the original conv must accept the input
    torch.manual_seed(k * 100 + stride * 10 + dilation)
    conv = nn.Conv2d(3, 4, k, stride=stride, padding=pad, dilation=dilation)
    x = torch.randn(1, 3, size, size)
    y = conv(x)
    lp = lp_convert(nn.Sequential(conv), 256.0, frozen=True)[0]
    assert lp.kernel_size[0] == 2 * math.ceil(k / 2) + k
    y_lp = lp(x)
    assert y_lp.shape == y.shape
    assert torch.allclose(y_lp, y, atol=1e-5)
