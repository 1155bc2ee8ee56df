"""Conformational analysis (App. A.6): α, θ, γ from the SVD of C, and back."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from neurolp.layers import lp_convert, mask_table, plot_masks
from neurolp.mpnd import C_from_conformation, conformation, lp_mask, offset_grid


def test_isotropic_C_has_scale_sigma_sqrt2_and_no_orientation():
    sigma = 1.5
    conf = conformation(np.diag([1 / sigma, 1 / sigma]))
    assert conf["alpha"] == pytest.approx(sigma * math.sqrt(2))
    assert conf["gamma"] == pytest.approx(1.0)
    assert np.isnan(conf["theta"])
    assert conf["psi"] == pytest.approx(0.0)


@pytest.mark.parametrize("C, theta", [
    (np.diag([1.0, 0.25]), 0.0),    # small singular value along Δw: a horizontal mask
    (np.diag([0.25, 1.0]), 90.0),   # along Δh: a vertical, column-selective mask
])
def test_orientation_convention(C, theta):
    conf = conformation(C)
    assert conf["theta"] == pytest.approx(theta, abs=1e-9)
    assert conf["gamma"] == pytest.approx(4.0)
    # the mask really is elongated along θ: compare its extent along rows and columns
    m = lp_mask(torch.tensor(C[None], dtype=torch.float32), torch.tensor([2.0]), offset_grid(9))[0]
    wide_along_w = m[4].sum() > m[:, 4].sum()
    assert bool(wide_along_w) == (theta == 0.0)


def test_45_degrees_points_up_and_right_on_screen():
    C = C_from_conformation(2.0, 45.0, 3.0)
    m = lp_mask(torch.tensor(C[None], dtype=torch.float32), torch.tensor([2.0]), offset_grid(9))[0]
    # row 0 is the top of the image: up-right is (row 4-k, col 4+k)
    up_right = sum(m[4 - k, 4 + k] for k in range(1, 4))
    down_right = sum(m[4 + k, 4 + k] for k in range(1, 4))
    assert up_right > 2 * down_right


@settings(max_examples=60, deadline=None)
@given(alpha=st.floats(0.2, 20), theta=st.floats(0, 179.9), gamma=st.floats(1.05, 30),
       psi=st.floats(-179, 179))
def test_round_trip(alpha, theta, gamma, psi):
    conf = conformation(C_from_conformation(alpha, theta, gamma, psi))
    assert conf["alpha"] == pytest.approx(alpha, rel=1e-9)
    assert conf["gamma"] == pytest.approx(gamma, rel=1e-9)
    d = (conf["theta"] - theta + 90) % 180 - 90  # θ lives on a circle of 180°
    assert abs(d) < 1e-6
    assert conf["psi"] == pytest.approx(psi, abs=1e-6)


def test_batched_and_symmetric_inverse():
    rng = np.random.default_rng(0)
    a, t, g = rng.uniform(0.5, 5, 20), rng.uniform(0, 180, 20), rng.uniform(1.1, 8, 20)
    C = C_from_conformation(a, t, g)
    assert C.shape == (20, 2, 2)
    assert np.allclose(C, np.swapaxes(C, -1, -2))
    assert np.all(np.linalg.eigvalsh(C) > 0)
    conf = conformation(C)
    assert np.allclose(conf["alpha"], a) and np.allclose(conf["gamma"], g)


def test_inverse_rejects_invalid():
    with pytest.raises(ValueError):
        C_from_conformation(1.0, 0.0, 0.5)
    with pytest.raises(ValueError):
        conformation(np.eye(3))


def test_mask_table_per_layer():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
                                torch.nn.Conv2d(4, 5, 5, padding=2))
    lp_convert(model, 2.0)
    with torch.no_grad():
        model[2].C[1] = torch.tensor(C_from_conformation(3.0, 30.0, 2.0), dtype=torch.float32)
    df = mask_table(model)
    assert list(df["layer"].unique()) == ["0", "2"]
    assert len(df) == 9 and list(df["depth"].unique()) == [1, 2]
    first = df[df.layer == "0"]
    assert np.allclose(first["alpha"], 1.5 * math.sqrt(2)) and np.allclose(first["p"], 2.0)
    row = df[(df.layer == "2") & (df.channel == 1)].iloc[0]
    assert row["alpha"] == pytest.approx(3.0, rel=1e-5)
    assert row["theta"] == pytest.approx(30.0, abs=1e-3)
    assert row["gamma"] == pytest.approx(2.0, rel=1e-5)
    assert row["kernel"] == "11x11"


def test_plot_masks_draws_the_chosen_masks():
    import matplotlib

    matplotlib.use("Agg")
    layer = lp_convert(torch.nn.Conv2d(3, 40, 3, padding=1), 2.0)
    fig = plot_masks(layer, 16, ncols=8, seed=1)
    images = [ax.images[0] for ax in fig.axes if ax.images]
    assert len(images) == 16
    assert np.allclose(images[0].get_array(), layer.mask()[0].detach().numpy())
    assert "mean p = 2.00" in fig._suptitle.get_text()
