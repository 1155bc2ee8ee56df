"""The MMV1 network: warp, shifter, registry variants through lp_convert, the L1 term."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import neurolp.mmv1.model  # noqa: F401  (registers the mmv1 architecture)
from neurolp.errors import ConfigError
from neurolp.layers import LargeConv2d, LpConv2d, lp_convert
from neurolp.mmv1.model import MMV1Net, affine_warp
from neurolp.models import create_model, parse_model_name

SMALL = dict(behav_dim=6, channels=(4, 4, 2), hidden_size=8, shifter_hidden=8)


def _inputs(b=3, s=2, bd=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(b, s, 1, 60, 80, generator=g), torch.randn(b, s, bd, generator=g),
            torch.randn(b, s, 4, generator=g))


def test_warp_identity_translation_and_rotation():
    img = torch.arange(6 * 8, dtype=torch.float32).reshape(1, 1, 6, 8)
    torch.testing.assert_close(affine_warp(img, torch.zeros(1, 3)), img, atol=1e-4, rtol=0)
    right2 = affine_warp(img, torch.tensor([[2.0, 0.0, 0.0]]))          # content moves 2 px right
    torch.testing.assert_close(right2[..., 2:], img[..., :-2], atol=1e-4, rtol=0)
    assert right2[..., :2].abs().max() < 1e-4                            # zeros come in
    down1 = affine_warp(img, torch.tensor([[0.0, 1.0, 0.0]]))           # and 1 px down
    torch.testing.assert_close(down1[..., 1:, :], img[..., :-1, :], atol=1e-4, rtol=0)
    sq = torch.arange(25, dtype=torch.float32).reshape(1, 1, 5, 5)
    ccw = affine_warp(sq, torch.tensor([[0.0, 0.0, 90.0]]))             # about the centre
    torch.testing.assert_close(ccw[0, 0], torch.rot90(sq[0, 0], 1), atol=1e-4, rtol=0)


def test_shifter_range_and_gradients():
    m = create_model("base-mmv1", num_classes=5, **SMALL)
    x, b, s = _inputs()
    shifts = m.shifter(s.reshape(-1, 4))
    assert (shifts.abs() <= torch.tensor([80 / 5.5, 60 / 5.5, 45.0]) + 1e-5).all()
    m(x, b, s).sum().backward()
    assert m.shifter.net[1].weight.grad.abs().sum() > 0               # the warp is differentiable
    assert m.behaviour.linear.weight.grad.abs().sum() > 0


def test_forward_shapes_and_positive_counts():
    m = create_model("base-mmv1", num_classes=5, **SMALL).eval()
    x, b, s = _inputs()
    y = m(x, b, s)
    assert y.shape == (3, 5) and (y > 0).all()
    assert m.visual.feature_shape == (2, 3, 5)                       # 60×80 → 27×37 → 11×16 → 3×5
    no_shift = create_model("base-mmv1", num_classes=5, **{**SMALL, "shifter": False}).eval()
    assert no_shift.shifter is None and no_shift(x, b).shape == (3, 5)
    with pytest.raises(ValueError, match="shifter_input"):
        m(x, b)
    assert m.behaviour_l1().item() == pytest.approx(m.behaviour.linear.weight.abs().mean().item())


def test_paper_defaults():
    m = create_model("base-mmv1", num_classes=68, behav_dim=66)
    convs = [c for c in m.modules() if isinstance(c, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride) for c in convs] == [
        (1, 128, (7, 7), (2, 2)), (128, 64, (7, 7), (2, 2)), (64, 32, (7, 7), (2, 2))]
    assert m.visual.readout.in_features == 480 and m.gru.hidden_size == 512
    assert m.gru.input_size == 3 * 68 and isinstance(m.visual.layers[3], torch.nn.Dropout)


@pytest.mark.parametrize("name,cls,k,p", [("base-mmv1", torch.nn.Conv2d, 7, None),
                                          ("large-mmv1", LargeConv2d, 15, None),
                                          ("lp2-mmv1", LpConv2d, 15, 2.0),
                                          ("lp16-mmv1", LpConv2d, 15, 16.0),
                                          ("lp4f-mmv1", LpConv2d, 15, 4.0)])
def test_variants_by_registry_name(name, cls, k, p):
    m = create_model(name, num_classes=5, **SMALL)
    convs = [c for c in m.modules() if isinstance(c, torch.nn.Conv2d)]
    assert len(convs) == 3 and all(type(c) is cls and c.kernel_size == (k, k) for c in convs)
    assert m.visual.feature_shape == (2, 3, 5)  # the enlarged kernels keep every feature map's size
    if p is not None:
        assert all(torch.allclose(c.p, torch.tensor(p)) for c in convs)
        assert all(c.sigma_init == (3.5, 3.5) for c in convs)               # σ = k/2 of the 7×7 kernel
        assert convs[0].log2p.requires_grad is not parse_model_name(name).frozen
    assert m.neurolp_spec["arch_kwargs"]["channels"] == (4, 4, 2)
    x, b, s = _inputs()
    assert m.eval()(x, b, s).shape == (3, 5)


def test_lp256f_reproduces_base():
    torch.manual_seed(0)
    base = create_model("base-mmv1", num_classes=5, **SMALL).eval()
    lp = lp_convert(copy.deepcopy(base), 256, frozen=True).eval()
    x, b, s = _inputs()
    with torch.no_grad():
        torch.testing.assert_close(lp(x, b, s), base(x, b, s), atol=1e-5, rtol=1e-5)


def test_too_small_frames_are_refused():
    with pytest.raises(ConfigError, match="20×20 frames are too small"):
        MMV1Net(5, 6, frame_size=(20, 20))
    assert np.prod(MMV1Net(5, 6, channels=(2, 2, 2), frame_size=(43, 43)).visual.feature_shape) == 2
