"""Layer RSMs: layer choice by name, eval mode, memory control, dead units; stimulus preprocessing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from neurolp.brain.stimuli import preprocess_stimuli, stimulus_spec
from neurolp.errors import ConfigError, InputError
from neurolp.layers import LpConv2d
from neurolp.models import create_model
from neurolp.rsa.activations import conv_layer_names, layer_rsms, resolve_layers
from neurolp.rsa.rsm import pearson_rsm


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return create_model("lp2-smallcnn", num_classes=10, image_size=32)


@pytest.fixture(scope="module")
def inputs():
    """Smooth random images (natural images are mostly low-frequency; white noise is not)."""
    coarse = torch.randn(24, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    return torch.nn.functional.interpolate(coarse, size=(32, 32), mode="bilinear",
                                           align_corners=False)


def test_every_conv_layer_including_lpconv(model):
    names = conv_layer_names(model)
    mods = dict(model.named_modules())
    assert len(names) == 4 and all(isinstance(mods[n], nn.Conv2d) for n in names)
    assert all(isinstance(mods[n], LpConv2d) for n in names)


def test_unknown_layer_lists_valid_names(model):
    with pytest.raises(InputError, match=r"unknown layer name\(s\) \['nope'\].*0\.0, 0\.4"):
        resolve_layers(model, ["0.0", "nope"])


def test_rsms_equal_manual_hooks_in_eval_mode_and_training_flag_restored(model, inputs):
    model.train()
    out = layer_rsms(model, inputs)
    assert model.training  # restored
    assert out.names == conv_layer_names(model)        # forward order
    captured = {}
    h = dict(model.named_modules())["0.4"].register_forward_hook(
        lambda m, i, o: captured.setdefault("x", o.detach()))
    model.eval()
    with torch.no_grad():
        model(inputs)
    h.remove()
    model.train()
    want, _ = pearson_rsm(captured["x"], centre=True)
    np.testing.assert_allclose(out.rsms["0.4"], want, atol=1e-6)
    assert list(out.info["layer_index"]) == [0, 1, 2, 3]


def test_batched_without_reduction_equals_one_batch(model, inputs):
    a = layer_rsms(model, inputs, ["0.0", "0.8"])
    b = layer_rsms(model, inputs, ["0.0", "0.8"], batch_size=5)
    for n in a.names:
        np.testing.assert_allclose(a.rsms[n], b.rsms[n], atol=1e-5)


@pytest.mark.parametrize("reduce", ["pool", "project"])
def test_memory_control_reduces_big_layers(model, inputs, reduce):
    out = layer_rsms(model, inputs, ["0.0"], batch_size=8, max_features=300, reduce=reduce, seed=3)
    info = out.info.iloc[0]
    assert info["output_shape"] == "32×32×32"
    assert info["n_units"] <= 300 and info["reduction"] != "none"
    full = layer_rsms(model, inputs, ["0.0"]).rsms["0.0"]
    i, j = np.tril_indices(24, -1)
    r = np.corrcoef(out.rsms["0.0"][i, j], full[i, j])[0, 1]
    assert r > 0.5  # the reduced layer keeps the geometry
    again = layer_rsms(model, inputs, ["0.0"], batch_size=8, max_features=300, reduce=reduce, seed=3)
    np.testing.assert_array_equal(out.rsms["0.0"], again.rsms["0.0"])


def test_dead_units_are_counted():
    torch.manual_seed(0)
    m = create_model("base-smallcnn", num_classes=10, image_size=32)
    conv = dict(m.named_modules())["0.0"]
    with torch.no_grad():
        conv.weight[:5] = 0.0            # 5 channels of 32×32 constant (bias-free) outputs
    x = torch.randn(10, 3, 32, 32)
    info = layer_rsms(m, x, ["0.0"]).info.iloc[0]
    assert info["n_dead"] == 5 * 32 * 32 and info["n_units"] == 32 * 32 * 32


def test_stimuli_anchor_and_checkpoint():
    t = np.zeros((3, 20, 30), np.uint8)
    t[:, :, :20] = np.arange(20, dtype=np.uint8)[None, :, None] * 10  # left square: a ramp
    t[:, :, 20:] = 255                                                 # right part: white
    a = preprocess_stimuli(t, stimulus_spec("anchor", 10))
    assert a.shape == (3, 3, 10, 10)
    assert float(a[0, 0].mean()) == pytest.approx(0.0, abs=1e-5)
    assert float(a[0, 0].std()) == pytest.approx(1.0, abs=1e-4)
    assert torch.equal(a[:, 0], a[:, 2])
    c = preprocess_stimuli(t, stimulus_spec("checkpoint", 10, {"mean": [0.5] * 3, "std": [0.25] * 3}))
    assert float(c.max()) < (200 / 255 - 0.5) / 0.25 + 1e-4  # the white right part was cropped off
    # the mean of the left square (a ramp 0..190, mean 95) survives the anti-aliased resize
    assert float(c[0, 0].mean()) == pytest.approx((95 / 255 - 0.5) / 0.25, abs=0.02)
    with pytest.raises(ConfigError, match="normalisation"):
        stimulus_spec("checkpoint", 10, None)
    with pytest.raises(ConfigError, match="unknown stimulus"):
        stimulus_spec("raw", 10)
    assert "left square crop" in stimulus_spec("anchor", 64).describe()


@pytest.mark.parametrize("batch_size", [None, 3])
def test_a_module_run_twice_per_forward_is_refused(batch_size):
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3, padding=1)

        def forward(self, x):
            return self.conv(self.conv(x))  # weight sharing: two outputs per image

    with pytest.raises(InputError, match="runs more than once per forward pass"):
        layer_rsms(Twice(), torch.randn(6, 3, 8, 8), layers=["conv"], batch_size=batch_size)
