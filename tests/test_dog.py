"""DoG kernels and DoG initialisation of depthwise convs (Neural Echos), with the notes' oracles."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from neurolp.errors import ConfigError
from neurolp.layers import (depthwise_convs, dog_centre_mask, dog_coefficients, dog_gamma_range, dog_gaussians,
                            dog_kernel, init_depthwise_dog_)


def test_k3_gamma_half_published_values():
    w = dog_kernel(3, 0.5, dtype=torch.float64)
    co = dog_coefficients(3, 0.5)
    assert co["r"] == 1.0 and co["sigma"] == pytest.approx(1.0402, abs=1e-4)
    assert co["A_c"] == pytest.approx(0.5705, abs=1e-4) and co["A_s"] == pytest.approx(-0.7726, abs=1e-4)
    assert w[1, 1].item() == pytest.approx(1.509, abs=1e-3)
    for i, j in [(0, 1), (1, 0), (1, 2), (2, 1)]:
        assert w[i, j].item() == pytest.approx(-0.127, abs=1e-3)
    for i, j in [(0, 0), (0, 2), (2, 0), (2, 2)]:
        assert w[i, j].item() == pytest.approx(-0.250, abs=1e-3)
    # the edges sit exactly on d = r: explicit ties, counted in the centre region
    assert dog_centre_mask(3, 0.5).tolist() == [[False, True, False], [True, True, True], [False, True, False]]


def _odd_k_and_gamma():
    return st.sampled_from([3, 5, 7, 9, 11, 13]).flatmap(
        lambda K: st.tuples(st.just(K), st.floats(0.05, dog_gamma_range(K)[1] - 1e-3)))


@settings(max_examples=60, deadline=None)
@given(_odd_k_and_gamma())
def test_sum_zero_masses_and_on_off(kg):
    K, g = kg
    w = dog_kernel(K, g, dtype=torch.float64)
    m = dog_centre_mask(K, g)
    assert abs(w.sum().item()) < 1e-10
    assert w[m].sum().item() == pytest.approx(1.0, abs=1e-10)      # centre disc d <= r: +1
    assert w[~m].sum().item() == pytest.approx(-1.0, abs=1e-10)    # surround d > r: -1
    assert w[(K - 1) // 2, (K - 1) // 2] > 0 and (w[~m] < 0).all()
    assert torch.equal(dog_kernel(K, g, on=False, dtype=torch.float64), -w)
    assert w.shape == (K, K) and torch.equal(w, w.T) and torch.equal(w, w.flip(0))


@pytest.mark.parametrize("K,g", [(3, 0.5), (7, 0.5), (7, 0.3), (9, 0.7), (5, 0.25)])
def test_zero_crossing_at_r(K, g):
    r = dog_coefficients(K, g)["r"]
    assert r == pytest.approx(g * (K + 1) / 2)
    E, I = dog_gaussians([0.0, r - 1e-3, r, r + 1e-3, 2 * r], K, g)
    assert E[2] == pytest.approx(I[2], rel=1e-12)          # E = I exactly at d = r
    assert (E[:2] > I[:2]).all() and (E[3:] < I[3:]).all()
    # the centre region is exactly the cells with d <= r
    c = (K - 1) / 2
    yy, xx = np.mgrid[0:K, 0:K]
    d = np.hypot(yy - c, xx - c)
    assert np.array_equal(dog_centre_mask(K, g).numpy(), d <= r + 1e-9)


def test_ties_are_deterministic():
    """K = 7, γ = 0.5 puts 4 cells on d = r = 2; a γ a hair away must not flip them."""
    for g in (0.5, 0.5 + 1e-13, 0.5 - 1e-13):
        m = dog_centre_mask(7, g)
        assert m.sum().item() == 13 and m[3, 1] and m[1, 3]
        w = dog_kernel(7, g, dtype=torch.float64)
        assert w[m].sum().item() == pytest.approx(1.0, abs=1e-12)
    w = dog_kernel(7, 0.5, dtype=torch.float64)
    assert w[w > 0].sum().item() == pytest.approx(1.0487, abs=1e-4)   # tie cells are slightly negative


@pytest.mark.parametrize("K,g,msg", [(4, 0.5, "odd integer"), (1, 0.5, "odd integer"), (3, 1.0, r"\(0, 1\)"),
                                     (3, 0.0, r"\(0, 1\)"), (3, 0.71, "no surround|without surround"),
                                     (3.0, 0.5, "odd integer"), (3, "x", "number")])
def test_bad_arguments(K, g, msg):
    with pytest.raises(ConfigError, match=msg):
        dog_kernel(K, g)


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3)
        self.dw = nn.Conv2d(8, 8, 5, padding=2, groups=8)
        self.grouped = nn.Conv2d(8, 8, 3, groups=2)
        self.dw1 = nn.Conv2d(8, 8, 1, groups=8)
        self.dw7 = nn.Conv2d(6, 6, 7, groups=6, bias=False)


def test_depthwise_convs_found():
    net = _Net()
    assert [n for n, _ in depthwise_convs(net)] == ["dw", "dw7"]
    assert depthwise_convs(net.dw) == [("", net.dw)]


def test_alternate_pattern_full_share():
    net = _Net()
    bias = net.dw.bias.clone()
    stem = net.stem.weight.clone()
    table = init_depthwise_dog_(net, gammas=(0.3, 0.6))
    assert len(table) == 14 and set(table["layer"]) == {"dw", "dw7"}
    for i in range(8):
        expect = dog_kernel(5, (0.3, 0.6)[(i // 2) % 2], on=i % 2 == 0)
        assert torch.equal(net.dw.weight[i, 0], expect)
    assert table.query("layer == 'dw7'")["on"].tolist() == [True, False] * 3
    assert torch.equal(net.dw.bias, bias) and torch.equal(net.stem.weight, stem)


def test_share_seed_random_pattern_scale():
    def run(seed, **kw):
        torch.manual_seed(123)
        net = nn.Conv2d(40, 40, 7, groups=40)
        before = net.weight.clone()
        table = init_depthwise_dog_(net, gammas=[0.5], seed=seed, **kw)
        return net, before, table

    net, before, table = run(0, share=0.25, pattern="random", scale=0.1)
    assert len(table) == 10 and table["channel"].is_unique
    changed = (net.weight != before).flatten(1).any(1)
    assert changed.sum() == 10 and set(np.flatnonzero(changed.numpy())) == set(table["channel"])
    for _, row in table.iterrows():
        assert torch.allclose(net.weight[row.channel, 0], 0.1 * dog_kernel(7, 0.5, on=row.on))
    net2, _, table2 = run(0, share=0.25, pattern="random", scale=0.1)
    assert table2.equals(table) and torch.equal(net2.weight, net.weight)
    _, _, table3 = run(1, share=0.25, pattern="random", scale=0.1)
    assert not table3["channel"].equals(table["channel"])
    _, _, full = run(5, pattern="random")
    assert 8 < full["on"].sum() < 32        # on/off drawn with probability 1/2


def test_init_errors():
    net = _Net()
    with pytest.raises(ConfigError, match="no depthwise convolution"):
        init_depthwise_dog_(nn.Sequential(nn.Conv2d(3, 4, 3)))
    with pytest.raises(ConfigError, match="pattern"):
        init_depthwise_dog_(net, pattern="checker")
    with pytest.raises(ConfigError, match="share"):
        init_depthwise_dog_(net, share=0)
    with pytest.raises(ConfigError, match="without surround"):
        init_depthwise_dog_(nn.Conv2d(4, 4, 3, groups=4), gammas=[0.9])
    with pytest.raises(ConfigError, match=r"unknown depthwise layer\(s\) \['stem'\]"):
        init_depthwise_dog_(net, layers=["stem"])


def test_meta_device_is_validated_not_written():
    with torch.device("meta"):
        net = _Net()
    table = init_depthwise_dog_(net)
    assert len(table) == 14 and net.dw.weight.is_meta


# --- registry -------------------------------------------------------------------------------------

def test_registry_dog_convnext():
    from neurolp.models import create_model, list_models

    assert {"dog-convnext_tiny", "dog-convnext_micro", "dog-convnext_atto"} <= set(list_models())
    torch.manual_seed(0)
    model = create_model("dog-convnext_micro", num_classes=10, image_size=32)
    convs = depthwise_convs(model)
    assert len(convs) == 6 and all(m.kernel_size == (7, 7) for _, m in convs)
    w = convs[0][1].weight
    assert torch.equal(w[0, 0], dog_kernel(7, 0.3)) and torch.equal(w[1, 0], dog_kernel(7, 0.3, on=False))
    assert torch.equal(w[2, 0], dog_kernel(7, 0.5))
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert model.neurolp_spec["variant"] == "dog" and model.neurolp_spec["name"] == "dog-convnext_micro"
    base = create_model("base-convnext_micro", num_classes=10, image_size=32)
    assert depthwise_convs(base)[0][1].weight.abs().max() < 0.1    # trunc-normal(0.02) init
    opts = create_model("dog-convnext_micro", 10, 32, convert_kwargs={"share": 0.5, "seed": 3, "gammas": [0.4]})
    assert opts.neurolp_spec["convert_kwargs"] == {"share": 0.5, "seed": 3, "gammas": [0.4]}


@pytest.mark.parametrize("name,kw,msg", [
    ("dog-resnet18", {}, "dog models .* exist for convnext_tiny"),
    ("dog-convnext_micro", {"convert_kwargs": {"sigma": 1}}, r"unknown DoG option\(s\) \['sigma'\]"),
    ("dog-convnext_micro", {"convert_kwargs": {"gammas": [2]}}, r"\(0, 1\)"),
])
def test_registry_errors(name, kw, msg):
    from neurolp.models import create_model

    with pytest.raises(ConfigError, match=msg):
        create_model(name, 10, 32, **kw)


def test_checkpoint_round_trip(tmp_path):
    from neurolp.models import create_model
    from neurolp.train.checkpoint import load_model, save_checkpoint

    model = create_model("dog-convnext_micro", 10, 32, convert_kwargs={"pattern": "random", "seed": 1})
    with torch.no_grad():
        depthwise_convs(model)[0][1].weight.add_(0.01)     # "trained"
    path = save_checkpoint(tmp_path / "dog.safetensors", model, {"dataset": "digits"})
    loaded, meta = load_model(path)
    assert meta["model"] == "dog-convnext_micro" and meta["spec"]["convert_kwargs"]["pattern"] == "random"
    for (_, a), (_, b) in zip(depthwise_convs(model), depthwise_convs(loaded)):
        assert torch.equal(a.weight, b.weight)
    assert math.isclose(loaded.features[0][0].weight.shape[-1], 3)   # CIFAR stem for 32 px


def test_scale_match_keeps_the_init_scale():
    torch.manual_seed(0)
    conv = nn.Conv2d(16, 16, 7, groups=16)
    nn.init.trunc_normal_(conv.weight, std=0.02)
    rms = conv.weight.pow(2).mean().sqrt().item()
    init_depthwise_dog_(conv, gammas=[0.3, 0.5], scale="match")
    per_kernel = conv.weight.pow(2).mean((1, 2, 3)).sqrt()
    assert torch.allclose(per_kernel, torch.full((16,), rms), rtol=1e-5)
    k = dog_kernel(7, 0.5, on=False)
    assert torch.allclose(conv.weight[3, 0], k * rms / k.pow(2).mean().sqrt(), rtol=1e-5)
    with pytest.raises(ConfigError, match="'match'"):
        init_depthwise_dog_(conv, scale="big")
