"""Krotov–Hopfield Hebbian layers (neurolp.layers.hebbian): oracles from the rule's definition and
from Manzali's slides (toy example, slides 6–16)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from neurolp.errors import ConfigError
from neurolp.layers.hebbian import BioConv2d, BioLinear, conv_hebbian, normalise_step, rank_activations


def _explicit_delta(x, w, p, k, delta, stride, padding, dilation, groups):
    """The rule on explicitly unfolded patches, one group at a time (no conv anywhere)."""
    o, cg, kh, kw = w.shape
    og = o // groups
    wp = (w.sign() * w.abs() ** (p - 1)).reshape(o, -1)
    out = torch.zeros_like(w)
    for gi in range(groups):
        xg = x[:, gi * cg:(gi + 1) * cg]
        cols = F.unfold(xg, (kh, kw), dilation=dilation, padding=padding, stride=stride)  # [B, Cg·K², L]
        patches = cols.transpose(1, 2).reshape(-1, cg * kh * kw)                          # [B·L, Cg·K²]
        wg, wpg = w[gi * og:(gi + 1) * og].reshape(og, -1), wp[gi * og:(gi + 1) * og]
        cur = patches @ wpg.t()                                                            # [A, Og]
        order = cur.argsort(dim=1, descending=True)
        g = torch.zeros_like(cur)
        rows = torch.arange(len(cur))
        g[rows, order[:, 0]] = 1.0
        g[rows, order[:, k - 1]] = -delta
        dw = g.t() @ patches - (g * cur).sum(0)[:, None] * wg
        out[gi * og:(gi + 1) * og] = dw.reshape(og, cg, kh, kw)
    return out


GRID = list(itertools.product([1, 2, 3], [1, 2, 3], [0, 1, 2], [1, 2]))


@pytest.mark.parametrize("stride,dilation,padding,groups", GRID)
def test_conv_trick_equals_explicit_unfold(stride, dilation, padding, groups):
    torch.manual_seed(stride * 100 + dilation * 10 + padding + groups)
    layer = BioConv2d(4, 6, 3, lebesgue_p=3, ranking_param=3, delta=0.1, stride=stride, padding=padding,
                      dilation=dilation, groups=groups).double()
    for h, w in ((13, 14), (15, 15)):  # sizes the stride does and does not divide
        x = torch.randn(3, 4, h, w, dtype=torch.float64)
        ref = _explicit_delta(x, layer.weight, 3.0, 3, 0.1, stride, padding, dilation, groups)
        for method in ("conv", "wgrad", "unfold"):
            layer.hebbian = method
            torch.testing.assert_close(layer.delta_weights(x), ref, rtol=1e-9, atol=1e-9)


def test_conv_trick_stride_and_dilation_case_from_the_bug_report():
    """H=15, k=3, s=2, p=1, d=2: biopytorch's crop gives a 2×2 Hebbian term; the right one is 3×3."""
    torch.manual_seed(0)
    layer = BioConv2d(3, 5, 3, stride=2, padding=1, dilation=2).double()
    x = torch.randn(2, 3, 15, 15, dtype=torch.float64)
    hebb, *_ = layer.delta_weights(x, return_terms=True)
    assert hebb.shape == (5, 3, 3, 3)
    ref = _explicit_delta(x, layer.weight, 3.0, 2, 0.05, 2, 1, 2, 1)
    torch.testing.assert_close(layer.delta_weights(x), ref)


def test_same_padding_even_kernel_matches_explicit_padding():
    torch.manual_seed(1)
    same = BioConv2d(2, 4, 4, padding="same", dilation=2).double()
    x = torch.randn(2, 2, 9, 9, dtype=torch.float64)
    assert same(x).shape[-2:] == (9, 9)
    # total padding d(k-1) = 6 → 3 on each side; compare with an explicit pad and padding 0.
    valid = BioConv2d(2, 4, 4, padding=0, dilation=2).double()
    valid.weight.copy_(same.weight)
    torch.testing.assert_close(same.delta_weights(x), valid.delta_weights(F.pad(x, (3, 3, 3, 3))))


# --- the slides' toy example (Manzali 2021, slides 6–12): 3 samples × 4 inputs, 3 units ----------
V = torch.tensor([[0.10, 0.20, 0.30, 0.40], [0.10, 0.30, 0.30, 0.10], [0.40, 0.10, 0.10, 0.40]],
                 dtype=torch.float64)
W0 = torch.from_numpy(np.random.RandomState(1).randn(3, 4))  # slide 7: 1.62 −0.61 −0.53 −1.07 / …


def _toy_layer(weight):
    layer = BioLinear(4, 3, lebesgue_p=2, ranking_param=2, delta=0.4, step_norm="none").double()
    layer.weight.copy_(weight)
    return layer


def test_slides_toy_example_single_step():
    layer = _toy_layer(W0)
    np.testing.assert_allclose(layer.weight.numpy().round(2), [[1.62, -0.61, -0.53, -1.07],
                                                               [0.87, -2.30, 1.74, -0.76],
                                                               [0.32, -0.25, 1.46, -2.06]])
    hebb, norm, cur, g = layer.delta_weights(V, return_terms=True)
    # Slide 9 (Fig. 2): currents I_{μb} (rows: units μ, columns: samples b) and post-activations.
    np.testing.assert_allclose(cur.t().numpy().round(2), [[-0.55, -0.29, 0.11],
                                                          [-0.15, -0.16, -0.01],
                                                          [-0.40, 0.19, -0.58]])
    np.testing.assert_array_equal(g.t().numpy(), [[0.0, 0.0, 1.0], [1.0, -0.4, -0.4], [-0.4, 1.0, 0.0]])
    # Slide 10 (Fig. 3): Hebbian term of unit μ = 2.
    np.testing.assert_allclose(hebb[1].numpy(), [-0.10, 0.04, 0.14, 0.20], atol=1e-12)
    # Slides 11–12 (Fig. 4–5): −Σ_b g I = 0.09, normalisation term 0.08 −0.20 0.15 −0.07 and the
    # change 0.−02 −0.16 0.29 0.13, as printed (the slide multiplies the 2-decimal values; within 0.01).
    assert round(float(-(g[:, 1] * cur[:, 1]).sum()), 2) == 0.09
    np.testing.assert_allclose(norm[1].numpy(), [0.08, -0.20, 0.15, -0.07], atol=0.01)
    np.testing.assert_allclose((hebb + norm)[1].numpy(), [-0.02, -0.16, 0.29, 0.13], atol=0.01)


def test_slides_toy_example_normalised_batch_converges_to_the_tabulated_weights():
    """Slide 16 (Fig. 9): the dominated initialisation converges once each sample is standardised:
    100 iterations, η = 0.1, full batch, no step normalisation."""
    vn = (V - V.mean(1, keepdim=True)) / V.std(1, unbiased=False, keepdim=True)
    np.testing.assert_allclose(vn.numpy().round(2), [[-1.34, -0.45, 0.45, 1.34], [-1, 1, 1, -1], [1, -1, -1, 1]])
    layer = _toy_layer(torch.from_numpy(np.random.RandomState(2).randn(3, 4)))
    np.testing.assert_allclose(layer.weight[0].numpy().round(2), [-0.42, -0.06, -2.14, 1.64])
    for _ in range(100):
        layer.weight.add_(layer.delta_weights(vn), alpha=0.1)
    np.testing.assert_allclose(layer.weight.numpy(), [[0.64, -0.44, -0.54, 0.34],
                                                      [-0.38, 0.53, 0.45, -0.61],
                                                      [-0.67, -0.22, 0.22, 0.67]], atol=0.006)
    assert layer.convergence() < 1e-2


def test_rows_converge_to_unit_p_sphere_on_small_dataset():
    from sklearn.datasets import load_digits

    torch.manual_seed(0)
    x = torch.tensor(load_digits().data[:600], dtype=torch.float32)
    layer = BioLinear(64, 20, lebesgue_p=3, ranking_param=2, delta=0.1)
    start = layer.convergence()
    for epoch in range(30):
        lr = 0.2 * (1 - epoch / 30)
        for xb in x[torch.randperm(len(x))].split(100):
            metric = layer.training_step(xb, lr)
    assert start > 10 and metric < 0.02
    np.testing.assert_allclose(layer.weight.abs().pow(3).sum(1).numpy(), 1.0, atol=0.05)


def test_bioconv_converges_on_small_images():
    from sklearn.datasets import load_digits

    torch.manual_seed(0)
    x = torch.tensor(load_digits().images[:400], dtype=torch.float32)[:, None]
    layer = BioConv2d(1, 8, 3, lebesgue_p=3, ranking_param=3, delta=0.1)
    for epoch in range(8):
        lr = 0.1 * (1 - epoch / 8)
        for xb in x.split(50):
            metric = layer.training_step(xb, lr)
    assert metric < 0.01
    assert layer.bn.num_batches_tracked == 64 and abs(float(layer.bn.running_mean)) > 1


def test_rank_activations_and_step_norms():
    cur = torch.tensor([[0.1, 0.5, -0.2, 0.3], [2.0, 1.0, 0.0, 3.0]])
    np.testing.assert_allclose(rank_activations(cur, 3, 0.2).numpy(),
                                  [[-0.2, 1.0, 0.0, 0.0], [0.0, -0.2, 0.0, 1.0]])
    dw = torch.tensor([[1.0, -4.0], [0.5, 0.25]])
    np.testing.assert_allclose(normalise_step(dw, "kernel").numpy(), [[0.25, -1.0], [1.0, 0.5]], rtol=1e-4)
    np.testing.assert_allclose(normalise_step(dw, "global").numpy(), dw.numpy() / 4, rtol=1e-4)


def test_forward_uses_running_statistics_and_lp_kernel():
    torch.manual_seed(0)
    layer = BioConv2d(2, 4, 3, lebesgue_p=4, padding=1)
    x = 3 + 2 * torch.randn(8, 2, 6, 6)
    layer.training_step(x, 0.0)   # lr 0: only the BatchNorm's running statistics move
    mean, var = layer.bn.running_mean.clone(), layer.bn.running_var.clone()
    xn = (x - mean.view(1, 2, 1, 1)) / (var.view(1, 2, 1, 1) + layer.bn.eps).sqrt()
    wp = layer.weight.sign() * layer.weight.abs() ** 3
    torch.testing.assert_close(layer(x), F.conv2d(xn, wp, padding=1), rtol=1e-4, atol=1e-4)
    # The functional filter folds the BN scale in: conv of (x − mean) with it equals the forward.
    torch.testing.assert_close(F.conv2d(x - mean.view(1, 2, 1, 1), layer.functional_weight(), padding=1),
                               layer(x), rtol=1e-4, atol=1e-4)


def test_conv_hebbian_rejects_unknown_method_and_bad_rules():
    with pytest.raises(ConfigError, match="hebbian method"):
        conv_hebbian(torch.zeros(1, 1, 4, 4), torch.zeros(1, 2, 2, 2), 3, 1, 1, method="fft")
    with pytest.raises(ConfigError, match="ranking_param"):
        BioConv2d(3, 4, 3, ranking_param=5)
    with pytest.raises(ConfigError, match="ranking_param"):
        BioConv2d(3, 4, 3, groups=1, ranking_param=1)
    with pytest.raises(ConfigError, match="stride 1"):
        BioConv2d(3, 4, 3, padding="same", stride=2)
    with pytest.raises(ConfigError, match="step_norm"):
        BioLinear(3, 4, step_norm="row")
