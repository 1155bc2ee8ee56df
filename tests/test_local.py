"""Locally connected layers and weight sharing (Pogodin et al. 2021): oracles on tiny layers."""

from __future__ import annotations

import copy
import itertools

import pytest
import torch
from torch import nn

from neurolp.errors import ConfigError, InputError
from neurolp.layers import (LocallyConnected2d, lc_convert, lc_layers, share_dynamic_, share_instant_, snr_w,
                            within_class_variance)
from neurolp.layers.local import _Patches, set_weight_sharing
from neurolp.models import create_model, model_summary, parse_model_name
from neurolp.train.hooks import after_optimizer_step, epoch_metrics

GRID = [(cin, cout, k, s, g, b) for cin, cout, k, s, g, b in
        itertools.product([1, 2, 4], [2, 4], [1, 2, 3], [1, 2, 4], [1, 2], [True, False])
        if cin % g == 0 and cout % g == 0]


@pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel:UserWarning")  # the reference conv
@pytest.mark.parametrize("size", [4, 8])
def test_lc_equals_conv_when_the_kernel_is_copied(size):
    """Pogodin's unit-test grid (channels, k, stride, groups, bias), any odd/even k and padding."""
    torch.manual_seed(0)
    for cin, cout, k, s, g, b in GRID:
        for pad in (0, k // 2):
            conv = nn.Conv2d(cin, cout, k, s, pad, groups=g, bias=b)
            x = torch.randn(2, cin, size, size + 1)
            if (size + 2 * pad - k) < 0:
                continue
            lc = LocallyConnected2d.from_conv(conv, (size, size + 1))
            torch.testing.assert_close(lc(x), conv(x), atol=1e-6, rtol=1e-5,
                                       msg=f"cin {cin} cout {cout} k {k} s {s} g {g} bias {b} pad {pad}")
    for kw in (dict(padding="same", kernel_size=4), dict(padding="same", kernel_size=3, dilation=2),
               dict(padding=(2, 0), kernel_size=(3, 2), stride=(2, 1), dilation=(1, 2))):
        conv = nn.Conv2d(3, 4, **kw)
        x = torch.randn(2, 3, 9, 7)
        torch.testing.assert_close(LocallyConnected2d.from_conv(conv, (9, 7))(x), conv(x), atol=1e-6, rtol=1e-5)


def test_chunked_forward_and_backward_equal_unchunked():
    torch.manual_seed(1)
    lc = LocallyConnected2d(4, 6, 3, (9, 9), stride=2, padding=1, groups=2)
    x = torch.randn(3, 4, 9, 9, requires_grad=True)
    grads = []
    for chunk in (None, 1, 2):
        lc.chunk_rows = chunk
        lc.zero_grad()
        x.grad = None
        y = lc(x)
        (y.square() * torch.arange(y.numel()).view_as(y).float().cos()).sum().backward()
        grads.append((y.detach(), lc.weight.grad.clone(), lc.bias.grad.clone(), x.grad.clone()))
    for other in grads[1:]:
        for a, b in zip(grads[0], other):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("k,s,d,g", [((3, 3), (1, 1), (1, 1), 1), ((2, 3), (2, 1), (1, 2), 2),
                                     ((1, 1), (3, 3), (1, 1), 1)])
def test_patch_extraction_gradient(k, s, d, g):
    x = torch.randn(2, 7, 6, 4, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: _Patches.apply(t, k, s, d, g), (x,))


def test_wrong_input_size_is_a_clear_error():
    model = create_model("lc-resnet20", 10, 16)
    with pytest.raises(InputError, match=r"'layer1.0.conv1' takes \[B, 16, 16, 16\].*image_size"):
        model(torch.zeros(1, 3, 32, 32))


def test_instant_sharing_makes_weights_exactly_k_periodic():
    torch.manual_seed(2)
    for stride, period in ((1, 3), (2, 3), (3, 1)):
        lc = LocallyConnected2d(2, 3, 3, (13, 13), stride=stride, padding=1)
        means = {(i, j): lc.weight[i::period, j::period].mean((0, 1)) for i in range(period) for j in range(period)}
        assert lc.share_period == (period, period)
        share_instant_(lc)
        w = lc.weight
        assert torch.equal(w[period:], w[:-period]) and torch.equal(w[:, period:], w[:, :-period])
        for (i, j), m in means.items():  # each class keeps its mean
            torch.testing.assert_close(w[i, j], m)
        assert within_class_variance(lc) == 0


def test_sleep_phase_lowers_within_class_variance_monotonically():
    torch.manual_seed(3)
    lc = LocallyConnected2d(2, 3, 3, (10, 10), stride=1, padding=1)
    border = ~lc.valid_positions()
    w_border = lc.weight[border].clone()
    gen = torch.Generator().manual_seed(0)
    var = [within_class_variance(lc)]
    snr = [snr_w(lc)]
    for _ in range(8):
        share_dynamic_(lc, eta=0.1, gamma=1e-5, iters=3, n_patterns=64, generator=gen)
        var.append(within_class_variance(lc))
        snr.append(snr_w(lc))
    assert all(b < a for a, b in zip(var, var[1:])), var
    assert var[-1] < 1e-2 * var[0]
    assert snr[-1] > 2 * snr[0]
    assert torch.equal(lc.weight[border], w_border)  # units that see padding are not updated
    # deterministic given the generator; gamma pulls towards the kernels before the phase
    a, b = copy.deepcopy(lc), copy.deepcopy(lc)
    share_dynamic_(a, iters=2, n_patterns=8, generator=torch.Generator().manual_seed(5))
    share_dynamic_(b, iters=2, n_patterns=8, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a.weight, b.weight)


def test_sleep_phase_converges_to_the_closed_form_fixed_point():
    """The rule's fixed point is w* = (C + γI)⁻¹(C w̄⁰ + γ w⁰) (seed-systems §B.3); for N(0, 1) noise
    C ≈ I, so w* ≈ (w̄⁰ + γ w⁰) / (1 + γ): the class mean is kept and γ holds part of each deviation."""
    torch.manual_seed(4)
    lc = LocallyConnected2d(1, 1, 1, (1, 4), bias=False)  # 4 units of one class, 1×1 kernels
    w0 = lc.weight.detach().flatten().clone()
    share_dynamic_(lc, eta=0.2, gamma=0.5, iters=200, n_patterns=4096, generator=torch.Generator().manual_seed(7))
    expected = (w0.mean() + 0.5 * w0) / 1.5
    torch.testing.assert_close(lc.weight.detach().flatten(), expected, atol=1e-2, rtol=0)
    torch.testing.assert_close(lc.weight.detach().mean(), w0.mean(), atol=1e-6, rtol=0)


def test_snr_convention():
    conv = nn.Conv2d(3, 4, 3, padding=1)
    lc = LocallyConnected2d.from_conv(conv, (8, 8))
    assert snr_w(lc) > 1e15                       # identical kernels: std 0 counts as 1e-20
    torch.manual_seed(0)
    fresh = LocallyConnected2d(3, 4, 3, (8, 8), padding=1)
    assert snr_w(fresh) < 0.5                     # independent kernels: |mean|/std ~ 1/sqrt(n)
    eps = LocallyConnected2d(3, 4, 3, (8, 8), padding=1, init_eps=0.1)
    assert 3 < snr_w(eps) < 1e3                   # conv init + ε deviations
    w = fresh.weight[fresh.valid_positions()]
    assert snr_w(fresh) == pytest.approx(float((w.mean(0).abs() / w.std(0)).mean().detach()), rel=1e-6)


def test_lc_convert_traces_real_input_sizes_and_keeps_stem_and_pointwise():
    torch.manual_seed(0)
    base = create_model("base-resnet20", 10, 16, shortcut="B").eval()
    model = lc_convert(copy.deepcopy(base), 16, init_eps=0.0)
    names = dict(lc_layers(model))
    assert len(names) == 18 and isinstance(model.conv1, nn.Conv2d)          # skip_first=1
    assert isinstance(model.layer2[0].shortcut[0], nn.Conv2d)              # keep_pointwise
    assert names["layer2.0.conv1"].input_size == (16, 16) and names["layer2.0.conv1"].output_size == (8, 8)
    assert names["layer3.2.conv2"].input_size == (4, 4)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), base(x), atol=1e-4, rtol=1e-4)  # ε = 0: the same network
    n_params = sum(p.numel() for p in model.parameters())
    lc_convert(model, 16, init_eps=0.0)                                    # idempotent
    assert sum(p.numel() for p in model.parameters()) == n_params
    only = lc_convert(copy.deepcopy(base), 16, include="layer1.*", exclude=["layer1.2.conv2"], skip_first=0,
                      keep_pointwise=False)
    assert sorted(n for n, _ in lc_layers(only)) == sorted(f"layer1.{b}.conv{c}" for b in range(3) for c in (1, 2)
                                                          if (b, c) != (2, 2))
    everything = lc_convert(copy.deepcopy(base), skip_first=0, keep_pointwise=False)  # size: base's image_size
    assert lc_layers(everything)[0][1].input_size == (16, 16)
    assert not any(isinstance(m, nn.Conv2d) for m in everything.modules())


def test_lc_convert_refuses_what_it_cannot_size():
    class TwoSizes(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3, padding=1)
            self.unused = nn.Conv2d(3, 3, 3)

        def forward(self, x):
            return self.conv(self.conv(x)[:, :, ::2, ::2])

    with pytest.raises(ConfigError, match=r"runs on inputs of sizes \(8, 8\) and \(4, 4\)"):
        lc_convert(TwoSizes(), 8, skip_first=0)
    with pytest.raises(ConfigError, match="'unused' does not run"):
        lc_convert(TwoSizes(), 8, skip_first=0, exclude="conv")
    with pytest.raises(ConfigError, match="needs input_size"):
        lc_convert(TwoSizes())


def test_registry_names_build_and_hooks_share_and_log():
    assert str(parse_model_name("LCWS010-resnet20")) == "lcws10-resnet20"
    assert parse_model_name("lcwsd100-smallcnn").variant == "lcwsd"
    with pytest.raises(ConfigError, match="N >= 1"):
        create_model("lcws0-smallcnn", 10, 16, width=4)
    with pytest.raises(ConfigError, match="unknown convert_kwargs"):
        create_model("lc-smallcnn", 10, 16, width=4, convert_kwargs={"p_init": 2})
    # exact parameter count of lc-resnet20 at 32 px: Σ H_out·W_out·C_out·C_in·9 over 18 layers + the rest
    lc_params = 6 * 32 * 32 * 16 * 16 * 9 + (16 * 16 * 32 * 16 * 9 + 5 * 16 * 16 * 32 * 32 * 9) \
        + (8 * 8 * 64 * 32 * 9 + 5 * 8 * 8 * 64 * 64 * 9)
    assert model_summary("lc-resnet20", 10, 32)["params"] == lc_params + 432 + 1376 + 650
    torch.manual_seed(0)
    m = create_model("lcws3-smallcnn", 10, 32, width=4, convert_kwargs={"chunk_rows": 2})
    layers = lc_layers(m)
    assert len(layers) == 3 and all(l.sharing["mode"] == "instant" and l.chunk_rows == 2 for _, l in layers)
    before = [l.weight.clone() for _, l in layers]
    after_optimizer_step(m, 2)                      # not a multiple of 3: nothing happens
    assert all(torch.equal(w, l.weight) for w, (_, l) in zip(before, layers))
    after_optimizer_step(m, 3)
    for _, l in layers:                             # 3-periodic now
        assert torch.equal(l.weight[3:], l.weight[:-3]) and torch.equal(l.weight[:, 3:], l.weight[:, :-3])
    metrics = epoch_metrics(m)
    assert sorted(metrics) == sorted(f"snr_w.{n}" for n, _ in layers)
    d = create_model("lcwsd2-smallcnn", 10, 32, width=4, convert_kwargs={"iters": 2, "n_patterns": 16})
    before = [within_class_variance(l) for _, l in lc_layers(d)]
    after_optimizer_step(d, 2)
    after = [within_class_variance(l) for _, l in lc_layers(d)]
    assert before[0] > 0 and all(a < b or a == b == 0 for a, b in zip(after, before)), (before, after)
    set_weight_sharing(d, None)
    assert all(l.sharing is None for _, l in lc_layers(d))


def test_batchnorm_statistics_refresh_after_sharing():
    """Sharing moves every kernel: BN statistics are re-estimated on the last training batch, after
    every layer has shared."""
    torch.manual_seed(0)
    m = create_model("lcws2-smallcnn", 10, 32, width=4)
    refresh = lc_layers(m)[-1][1].bn_refresh
    assert len(refresh.norms) == 4 and all(l.bn_refresh is None for _, l in lc_layers(m)[:-1])
    assert set(m.state_dict()) == set(create_model("lc-smallcnn", 10, 32, width=4).state_dict())
    x = torch.randn(16, 3, 32, 32)
    with torch.no_grad():
        m.train()(x)
    assert torch.equal(refresh.last_input, x)
    after_optimizer_step(m, 1)
    bn = m[0][13]                                    # the BN after the last LC layer
    assert bn.momentum == 0.1
    after_optimizer_step(m, 2)                       # share every layer, then refresh on x
    assert all(torch.equal(l.weight[3:], l.weight[:-3]) for _, l in lc_layers(m))
    assert bn.momentum is None and int(bn.num_batches_tracked) == 1 and m.training
    with torch.no_grad():
        ref = m[0][:13].eval()(x)                    # what that BN sees in eval mode (earlier BNs refreshed)
    torch.testing.assert_close(bn.running_mean, ref.mean((0, 2, 3)), atol=1e-3, rtol=1e-2)
    torch.testing.assert_close(bn.running_var, ref.var((0, 2, 3)), atol=1e-3, rtol=2e-2)
    m.eval()
    with torch.no_grad():                            # eval mode ≈ batch statistics on that batch
        ev = m(x)
        m.train()
        tr = m(x)
    assert (ev.argmax(1) == tr.argmax(1)).float().mean() > 0.9
    clone = copy.deepcopy(m)                          # the hook follows the copy
    assert lc_layers(clone)[-1][1].bn_refresh.model is clone
    set_weight_sharing(m, None)
    assert all(l.bn_refresh is None for _, l in lc_layers(m)) and not m._forward_pre_hooks


def test_lc_models_build_on_the_meta_device():
    with torch.device("meta"):
        m = create_model("lcwsd10-resnet20", 10, 32)
    assert lc_layers(m)[0][1].weight.is_meta
