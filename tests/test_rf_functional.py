"""Functional receptive fields (App. A.2): hand-checked tiny conv, streamed == brute force, layers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from neurolp.errors import InputError
from neurolp.rf.conditions import functional_receptive_fields
from neurolp.rf.functional import (conv_weight, counts_to_rf, first_conv, functional_synapse_counts,
                                   functional_synapse_counts_bruteforce, tap_offsets)

X = np.array([[[1.0, 2.0, 0.0],
               [0.0, 3.0, 1.0],
               [2.0, 0.0, 1.0]]])
W = np.array([[[[1.0, -1.0],
                [0.0, 2.0]]]])


def test_hand_checked_tiny_conv():
    # |Z| per tap over the 4 windows: (0,0): 1 2 0 3 | (0,1): 2 0 3 1 | (1,0): 0 0 0 0 | (1,1): 6 2 0 2
    # mean |Z| = 22/16, mean Z² = 72/16, θ = sqrt(4.5 − 1.375²)
    theta = np.sqrt(72 / 16 - (22 / 16) ** 2)
    for fn in (functional_synapse_counts, functional_synapse_counts_bruteforce):
        res = fn(X, W)
        assert res.theta == pytest.approx(theta, rel=1e-12)
        assert res.mean_abs == pytest.approx(22 / 16)
        assert res.n_total == 16
        np.testing.assert_array_equal(res.counts, [[2, 2], [0, 3]])
        assert res.n_above == 7
    # an explicit threshold: |Z| > 1.5 → (0,0): 2,3; (0,1): 2,3; (1,1): 6,2,2
    np.testing.assert_array_equal(functional_synapse_counts(X, W, threshold=1.5).counts, [[2, 2], [0, 3]])
    np.testing.assert_array_equal(functional_synapse_counts(X, W, threshold=2.5).counts, [[1, 1], [0, 1]])


def test_counts_to_rf_offsets():
    pts, w = counts_to_rf(np.array([[2, 2], [0, 3]]))
    # x = Δw, y = −Δh, offsets from the kernel centre (K−1)/2 = 0.5; zero-count taps dropped
    np.testing.assert_allclose(pts, [[-0.5, 0.5], [0.5, 0.5], [0.5, -0.5]])
    np.testing.assert_allclose(w, [2, 2, 3])
    dh, dw = tap_offsets(11)
    assert dh[0, 0] == -5 and dw[0, 10] == 5 and dh[5, 5] == 0


@pytest.mark.parametrize("C,H,W_,O,K,groups,dil", [
    (3, 12, 14, 5, 3, 1, 1),
    (2, 9, 9, 3, 5, 1, 1),       # kernel large relative to the image: big bands and corners
    (4, 10, 11, 4, 3, 2, 1),     # grouped
    (3, 13, 12, 4, 3, 1, 2),     # dilated
    (2, 8, 7, 3, (3, 2), 1, 1),  # rectangular kernel
    (1, 5, 5, 2, 5, 1, 1),       # a single window
])
def test_streamed_equals_brute_force(C, H, W_, O, K, groups, dil):
    rng = np.random.default_rng(C * 100 + H)
    kh, kw = (K, K) if isinstance(K, int) else K
    x = rng.normal(size=(C, H, W_))
    w = rng.normal(size=(O, C // groups, kh, kw))
    w[0, 0, 0, 0] = 0.0          # a zero weight never makes a functional synapse
    a = functional_synapse_counts(x, w, groups=groups, dilation=dil)
    b = functional_synapse_counts_bruteforce(x, w, groups=groups, dilation=dil)
    np.testing.assert_array_equal(a.channel_counts, b.channel_counts)
    np.testing.assert_array_equal(a.counts, b.counts)
    assert a.theta == pytest.approx(b.theta, rel=1e-12)
    assert a.n_total == b.n_total and a.n_above == b.n_above > 0
    np.testing.assert_array_equal(a.filter_counts, b.filter_counts)
    np.testing.assert_array_equal(a.filter_counts.sum(0), a.counts)
    # per-filter thresholds θ_o = std(|Z[:, o]|)
    a = functional_synapse_counts(x, w, groups=groups, dilation=dil, per_filter=True)
    b = functional_synapse_counts_bruteforce(x, w, groups=groups, dilation=dil, per_filter=True)
    np.testing.assert_allclose(a.filter_theta, b.filter_theta, rtol=1e-10)
    np.testing.assert_array_equal(a.filter_counts, b.filter_counts)
    np.testing.assert_array_equal(a.channel_counts, b.channel_counts)
    assert (a.filter_counts.sum((1, 2)) > 0).all()           # every filter has its strongest inputs


def test_per_filter_threshold_by_hand():
    # two filters: W and 10·W. One layer θ is dominated by the big filter, so the small one has no
    # functional synapse; with per-filter θ both have the same RF (θ scales with the filter)
    w2 = np.concatenate([W, 10 * W])
    layer = functional_synapse_counts(X, w2)
    assert layer.filter_counts[0].sum() == 0 and layer.filter_counts[1].sum() > 0
    per = functional_synapse_counts(X, w2, per_filter=True)
    theta = np.sqrt(72 / 16 - (22 / 16) ** 2)                 # the one-filter θ of the hand-checked case
    np.testing.assert_allclose(per.filter_theta, [theta, 10 * theta], rtol=1e-12)
    np.testing.assert_array_equal(per.filter_counts[0], [[2, 2], [0, 3]])
    np.testing.assert_array_equal(per.filter_counts[1], [[2, 2], [0, 3]])
    with pytest.raises(InputError, match="not both"):
        functional_synapse_counts(X, W, threshold=1.0, per_filter=True)


def test_alexnet_sized_input_is_cheap_and_consistent():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 224, 224))
    w = rng.uniform(-0.05, 0.05, size=(64, 3, 11, 11))
    res = functional_synapse_counts(x, w)
    assert res.n_total == 214 * 214 * 64 * 3 * 121
    # for Gaussian x the expected count of a tap is V · Σ_{o,k} P(|x| > θ/|w_okhw|) = V · Σ 2·sf(θ/|w|)
    from scipy.stats import norm

    expected = 214 * 214 * (2 * norm.sf(res.theta / np.abs(w))).sum(axis=(0, 1))
    np.testing.assert_allclose(res.counts, expected, rtol=0.02)
    # and θ is the std of |x||w|: sqrt(E x² E w² − (E|x| E|w|)²) for these weights
    theta = np.sqrt((w ** 2).mean() - (np.sqrt(2 / np.pi) * np.abs(w).mean()) ** 2)
    assert res.theta == pytest.approx(theta, rel=0.01)


def test_first_conv_and_lp_masked_weight():
    from neurolp.layers import LpConv2d

    lp = LpConv2d(3, 4, 7, p_init=2.0)
    model = nn.Sequential(nn.Identity(), nn.Sequential(lp, nn.ReLU()), nn.Conv2d(4, 4, 3))
    name, conv = first_conv(model)
    assert conv is lp and name == "1.0"
    with torch.no_grad():
        expected = lp.weight * lp.mask().unsqueeze(1)
    torch.testing.assert_close(conv_weight(conv), expected)
    with pytest.raises(InputError, match="no nn.Conv2d"):
        first_conv(nn.Linear(3, 3))


def test_functional_receptive_fields_of_a_model():
    conv = nn.Conv2d(3, 2, 3, bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[:, :, 1, 1] = 1.0      # only the centre tap is ever non-zero
    imgs = np.random.default_rng(1).normal(size=(2, 3, 16, 16))
    rfs, tab = functional_receptive_fields(nn.Sequential(conv), imgs, ["a", "b"])
    assert list(rfs) == ["input00", "input01"] and list(tab["source"]) == ["a", "b"]
    rf = rfs["input00"]
    np.testing.assert_allclose(rf.points, [[0.0, 0.0]])          # all functional synapses at the centre
    assert rf.weights[0] == tab["n_functional"][0] > 0
    assert rf.edges is not None and len(rf.edges[0]) == 4         # 3 tap cells per axis


def test_bad_inputs():
    with pytest.raises(InputError, match="smaller than the"):
        functional_synapse_counts(np.ones((1, 2, 2)), np.ones((1, 1, 3, 3)))
    with pytest.raises(InputError, match="NaN"):
        functional_synapse_counts(np.full((1, 4, 4), np.nan), np.ones((1, 1, 3, 3)))
    with pytest.raises(InputError, match="does not match"):
        functional_synapse_counts(np.ones((2, 4, 4)), np.ones((1, 3, 3, 3)))
