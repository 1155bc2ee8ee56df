"""MMV1 metrics against hand computation and the authors' NumPy / scikit-learn calls."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurolp.mmv1.metrics import (SMOOTH_BINS, boxcar_smooth, evaluate_traces, format_table5,
                                  pearson_per_neuron, session_summary, shuffled_baseline, smooth_traces,
                                  table5)


def test_window_is_41_bins():
    assert SMOOTH_BINS == 41  # int(2000 / 48)


@settings(max_examples=60, deadline=None)
@given(t=st.integers(1, 60), window=st.integers(1, 45), seed=st.integers(0, 10_000))
def test_boxcar_equals_numpy_convolve_same(t, window, seed):
    x = np.random.default_rng(seed).poisson(0.7, size=(t, 3)).astype(float)
    got = boxcar_smooth(x, window)
    if window <= t:
        want = np.stack([np.convolve(x[:, j], np.ones(window) / window, mode="same") for j in range(3)], 1)
        np.testing.assert_allclose(got, want, atol=1e-12)
    assert got.shape == x.shape


def test_smoothing_by_hand():
    x = np.array([3.0, 0, 6, 0, 3])
    np.testing.assert_allclose(boxcar_smooth(x, 3), [1, 3, 2, 3, 1])            # zero padding
    np.testing.assert_allclose(boxcar_smooth(x, 3, "mean"), [1.5, 3, 2, 3, 1.5])  # edges: mean of what exists
    np.testing.assert_allclose(boxcar_smooth(np.full(7, 2.0), 5, "mean"), np.full(7, 2.0))
    # two segments [3, 0, 6] and [0, 3]: joined vs separately
    np.testing.assert_allclose(smooth_traces(x[:, None], [3, 2], 3, across_joins=True)[:, 0], [1, 3, 2, 3, 1])
    np.testing.assert_allclose(smooth_traces(x[:, None], [3, 2], 3)[:, 0], [1.5, 3, 3, 1.5, 1.5])
    np.testing.assert_allclose(smooth_traces(x[:, None], [3, 2], 3, edges="zero")[:, 0], [1, 3, 2, 1, 1])
    with pytest.raises(ValueError, match="sum to 4"):
        smooth_traces(x[:, None], [3, 1], 3)


def test_cc_and_mse_by_hand():
    pred = np.array([[1.0, 2.0], [2.0, 2.0], [3.0, 2.0], [4.0, 2.0]])
    true = np.array([[2.0, 1.0], [4.0, 2.0], [6.0, 3.0], [8.0, 5.0]])
    r = pearson_per_neuron(pred, true)
    assert r[0] == pytest.approx(1.0) and np.isnan(r[1])                       # constant → NaN
    y = np.array([1.0, 0, 2, 1])
    p = np.array([0.5, 0.5, 1.5, 1.0])
    # r = Σ(p−p̄)(y−ȳ) / sqrt(Σ(p−p̄)² Σ(y−ȳ)²), p̄ = 0.875, ȳ = 1
    num = (-0.375 * 0) + (-0.375 * -1) + (0.625 * 1) + (0.125 * 0)
    den = np.sqrt((0.375**2 * 2 + 0.625**2 + 0.125**2) * 2)
    assert pearson_per_neuron(p[:, None], y[:, None])[0] == pytest.approx(num / den)
    np.testing.assert_allclose(pearson_per_neuron(p[:, None], y[:, None]), np.corrcoef(p, y)[0, 1])
    # window 1 = no smoothing: MSE is the plain mean squared error per neuron
    ev = evaluate_traces(p[:, None], y[:, None], window=1)
    assert ev["mse"][0] == pytest.approx(np.mean((p - y) ** 2)) == pytest.approx(0.1875)
    assert ev["cc"][0] == pytest.approx(num / den) and ev["cc_raw"][0] == pytest.approx(num / den)


def test_authors_computation_is_reproduced_exactly():
    """across_joins=True = np.convolve('same') on the concatenation, corrcoef per neuron, sklearn MSE."""
    from sklearn.metrics import mean_squared_error

    rng = np.random.default_rng(0)
    true = rng.poisson(0.5, size=(300, 4)).astype(float)
    pred = np.clip(true * 0.5 + rng.normal(0.3, 0.2, true.shape), 0, None)
    ev = evaluate_traces(pred, true, [100, 120, 80], across_joins=True)
    sm = lambda a: np.stack([np.convolve(a[:, j], np.ones(41) / 41, mode="same") for j in range(4)], 1)  # noqa: E731
    ps, ts = sm(pred), sm(true)
    np.testing.assert_allclose(ev["cc"], [np.corrcoef(ps[:, j], ts[:, j])[0, 1] for j in range(4)], atol=1e-12)
    assert ev["mse"].mean() == pytest.approx(mean_squared_error(ts, ps), abs=1e-15)
    within = evaluate_traces(pred, true, [100, 120, 80])
    assert not np.allclose(within["cc"], ev["cc"])  # the joins matter


def test_time_shuffled_predictions_are_near_chance():
    rng = np.random.default_rng(1)
    slow = np.repeat(rng.gamma(2.0, 0.3, size=(40, 3)), 25, axis=0)       # 1000 bins, slow rates
    true = rng.poisson(slow).astype(float)
    lengths = [100] * 10
    good = evaluate_traces(slow, true, lengths)["cc"]
    chance = shuffled_baseline(slow, true, lengths, repeats=10)
    assert good.min() > 0.8 and np.abs(chance).max() < 0.1
    # zero-padding each of the 20 segment ends would correlate any two positive traces
    assert shuffled_baseline(slow, true, lengths, edges="zero", repeats=10).mean() > 0.2


def test_summaries_and_table5_layout():
    neurons = pd.DataFrame({
        "session": ["a"] * 3 + ["b"] * 2 + ["a"] * 3 + ["b"] * 2,
        "variant": ["base"] * 5 + ["lp2"] * 5,
        "neuron": [0, 1, 2, 0, 1] * 2,
        "cc": [0.2, 0.4, 0.6, 0.5, 0.7, 0.3, 0.5, 0.7, 0.6, 0.8],
        "mse": [0.1, 0.2, 0.3, 0.1, 0.1, 0.1, 0.1, 0.1, 0.2, 0.2],
        "cc_raw": [0.1] * 10})
    s = session_summary(neurons)
    row = s[(s.session == "a") & (s.variant == "base")].iloc[0]
    assert row.n_neurons == 3 and row.cc == pytest.approx(0.4) and row.mse == pytest.approx(0.2)
    assert row.cc_std == pytest.approx(np.std([0.2, 0.4, 0.6]))
    t = table5(s, ["lp2", "base"])
    cc_base = t[(t.variant == "base") & (t.metric == "cc")].iloc[0]
    assert cc_base["mean"] == pytest.approx(0.5) and cc_base["std"] == pytest.approx(0.1)  # sessions 0.4, 0.6
    f = format_table5(t)
    assert list(f.columns) == ["MMV1", "lp2", "base"]
    assert f.iloc[0].tolist() == ["cc", "0.600 (0.100)", "0.500 (0.100)"]
    assert f.iloc[1].tolist() == ["MSE", "0.1500 (0.050)", "0.1500 (0.050)"]
