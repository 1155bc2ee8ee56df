"""Kernel analysis (Neural Echos): min-max normalisation, k-means, DoG-likeness of cluster centres."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from neurolp.errors import ConfigError, InputError
from neurolp.layers import dog_kernel
from neurolp.layers.kernels import (cluster_kernels, depthwise_kernels, match_dog, minmax_normalise,
                                   plot_kernel_clusters)


def _dog(K, g, on=True):
    return dog_kernel(K, g, on, dtype=torch.float64).numpy()


def test_minmax_normalise():
    rng = np.random.default_rng(0)
    k = rng.normal(size=(5, 3, 3))
    k[4] = 2.0
    n = minmax_normalise(k)
    assert np.allclose(n[:4].reshape(4, -1).min(1), 0) and np.allclose(n[:4].reshape(4, -1).max(1), 1)
    assert np.all(n[4] == 0.5)
    assert np.allclose(minmax_normalise(3 * k[:4] - 7), n[:4])   # affine invariant


def test_match_dog_recovers_template_and_sign():
    k = np.stack([_dog(7, 0.5), _dog(7, 0.3, on=False), 4 * _dog(7, 0.7) + 1, -_dog(5 + 2, 0.5)])
    m = match_dog(k)
    assert m["on"].tolist() == [True, False, True, False]
    assert m["gamma"].tolist() == pytest.approx([0.5, 0.3, 0.7, 0.5])
    assert np.allclose(m["corr"], 1) and m["dog_like"].all()
    noise = np.random.default_rng(1).normal(size=(50, 7, 7))
    assert match_dog(noise)["corr"].max() < 0.8 and not match_dog(noise)["dog_like"].any()
    with pytest.raises(ConfigError, match=r"\[N, K, K\]"):
        match_dog(np.zeros((3, 7, 5)))


def _mixture(seed=0, n=60):
    """n noisy on-DoGs (γ 0.5), n noisy off-DoGs (γ 0.3), n noise kernels and n Gaussian blobs,
    each with a random positive gain (trained kernels differ in scale)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[-3:4, -3:4]
    blob = np.exp(-(xx ** 2 + yy ** 2) / 2.0)
    parts = [(_dog(7, 0.5), 0.01), (_dog(7, 0.3, on=False), 0.01), (np.zeros((7, 7)), 1.0), (blob, 0.01)]
    ks = [gain * (base + sd * rng.normal(size=(n, 7, 7))) for base, sd in parts
          for gain in [rng.uniform(0.5, 2, (n, 1, 1))]]
    return np.concatenate(ks), np.repeat(np.arange(4), n)


def test_cluster_kernels_finds_the_dog_clusters():
    kernels, truth = _mixture()
    keep = truth < 3                                   # on-DoGs, off-DoGs, noise
    res = cluster_kernels(kernels[keep], n_clusters=3, seed=0)
    t = res.table
    assert t["size"].tolist() == [60] * 3 and np.isclose(t["share"].sum(), 1)
    for c in range(3):                                 # every cluster is one family
        assert len(set(truth[keep][res.labels == c])) == 1
    row = {truth[keep][res.labels == c][0]: t.iloc[c] for c in range(3)}
    assert row[0]["dog_like"] and row[0]["on"] and row[0]["gamma"] == pytest.approx(0.5)
    assert row[1]["dog_like"] and not row[1]["on"] and row[1]["gamma"] == pytest.approx(0.3)
    assert row[0]["corr"] > 0.99 and row[1]["corr"] > 0.99
    assert not row[2]["dog_like"] and row[2]["corr"] < 0.5                        # noise
    assert row[0]["dog_like_strict"] and row[1]["dog_like_strict"]
    s = res.summary()
    assert s["dog_like_clusters"] == 2 and s["fraction_dog_like_clusters"] == pytest.approx(2 / 3)
    assert s["fraction_dog_like_kernels"] == pytest.approx(2 / 3)
    assert (s["on_clusters"], s["off_clusters"]) == (1, 1)
    assert s["fraction_dog_like_individually"] == pytest.approx(2 / 3)      # low noise: each kernel too
    assert res.kernels["dog_like"].tolist() == (truth[keep] < 2).tolist()
    again = cluster_kernels(kernels[keep], n_clusters=3, seed=0)
    assert np.array_equal(again.labels, res.labels)


def test_blob_is_dog_like_after_minmax_but_not_strictly():
    """The blind spot of min-max normalisation: a positive blob looks like an on-centre DoG; only
    the raw sign structure (no negative surround) tells them apart."""
    kernels, truth = _mixture()
    blobs = cluster_kernels(kernels[truth == 3], n_clusters=1)
    r = blobs.table.iloc[0]
    assert r["dog_like"] and r["on"] and not r["opposite_surround"] and not r["dog_like_strict"]
    both = cluster_kernels(kernels[(truth == 0) | (truth == 3)], n_clusters=2, seed=0)
    assert both.summary()["fraction_dog_like_kernels"] == 1.0


def test_cluster_kernels_errors():
    with pytest.raises(ConfigError, match=r"n_clusters must lie in \[1, 3\]"):
        cluster_kernels(np.random.default_rng(0).normal(size=(3, 5, 5)), n_clusters=4)
    with pytest.raises(ConfigError, match="threshold"):
        cluster_kernels(np.zeros((3, 5, 5)), n_clusters=1, threshold=1.5)


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3)
        self.dw5 = nn.Conv2d(8, 8, 5, groups=8)
        self.dw7 = nn.Conv2d(6, 6, 7, groups=6)


def test_depthwise_kernels_from_a_model():
    net = _Net()
    k, table = depthwise_kernels(net)
    assert k.shape == (8, 5, 5) and table.attrs["skipped"] == {7: 6}
    assert np.array_equal(k[3], net.dw5.weight[3, 0].detach().double().numpy())
    assert table["layer"].tolist() == ["dw5"] * 8 and table["channel"].tolist() == list(range(8))
    k7, t7 = depthwise_kernels(net, kernel_size=7)
    assert k7.shape == (6, 7, 7) and set(t7["layer"]) == {"dw7"}
    with pytest.raises(ConfigError, match="no 3×3 depthwise kernels.*5×5, 7×7"):
        depthwise_kernels(net, kernel_size=3)
    with pytest.raises(InputError, match="no square depthwise convolution"):
        depthwise_kernels(nn.Sequential(nn.Conv2d(3, 3, 3)))
    k_reg, _ = depthwise_kernels("dog-convnext_micro")
    assert k_reg.shape == (736, 7, 7)


def test_plot_kernel_clusters():
    kernels, _ = _mixture(n=20)
    res = {"a": cluster_kernels(kernels, 4), "b": cluster_kernels(kernels[:40], 2)}
    fig = plot_kernel_clusters(res)
    assert len(fig.axes) == 2 * 4
    import matplotlib.pyplot as plt

    plt.close(fig)
