"""RSMs, noise ceilings (vs rsatoolbox) and the score semantics (model = brain → at the ceiling)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from neurolp.rsa.brain_rsms import AreaRSMs
from neurolp.rsa.ceilings import mice_ceiling, pool_vectors, split_half_ceiling
from neurolp.rsa.compare import compare_matrix
from neurolp.rsa.rsm import pearson_rsm, rsm_vector, vector_to_rsm
from neurolp.rsa.scores import ScoreConfig, score_layers


def test_pearson_rsm_plain_and_centred():
    rng = np.random.default_rng(0)
    X = rng.gamma(2.0, size=(12, 40))
    rsm, info = pearson_rsm(X, centre=False)
    np.testing.assert_allclose(rsm, np.corrcoef(X), atol=1e-12)
    rsm_c, _ = pearson_rsm(X, centre=True)
    np.testing.assert_allclose(rsm_c, np.corrcoef(X - X.mean(0)), atol=1e-12)
    assert info.n_units == 40 and info.n_dead == 0 and info.n_undefined_images == 0


def test_dead_and_nan_units_are_excluded_and_counted():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(10, 30))
    X[:, 3] = 0.0
    X[:, 4] = 2.5
    X[2, 5] = np.nan
    rsm, info = pearson_rsm(X, centre=True)
    keep = [k for k in range(30) if k not in (3, 4, 5)]
    np.testing.assert_allclose(rsm, np.corrcoef(X[:, keep] - X[:, keep].mean(0)), atol=1e-12)
    assert (info.n_dead, info.n_nan, info.n_used) == (2, 1, 27)


def test_undefined_image_rows_are_nan_and_counted():
    X = np.array([[1.0, 2.0, 3.0], [2.0, 2.0, 2.0], [0.0, 5.0, 1.0]])
    rsm, info = pearson_rsm(X, centre=False)
    assert info.n_undefined_images == 1
    assert np.isnan(rsm[1, 0]) and np.isnan(rsm[0, 1]) and rsm[1, 1] == 1.0
    assert np.isfinite(rsm[2, 0])


def test_rsm_vector_roundtrip():
    rng = np.random.default_rng(2)
    v = rng.normal(size=45)
    m = vector_to_rsm(v)
    assert m.shape == (10, 10)
    np.testing.assert_array_equal(rsm_vector(m), v)
    i, j = np.tril_indices(10, -1)
    np.testing.assert_array_equal(m[i, j], v)


def _mice(n_mice=5, n_img=20, noise=1.0, seed=3):
    rng = np.random.default_rng(seed)
    truth = rng.normal(size=n_img * (n_img - 1) // 2)
    return truth, truth + noise * rng.normal(size=(n_mice, truth.size))


@pytest.mark.parametrize("method,theirs", [("tau_a", "tau-a"), ("tau_b", "kendall"),
                                           ("spearman", "spearman")])
def test_mice_ceiling_equals_rsatoolbox_boot_noise_ceiling(method, theirs):
    pytest.importorskip("rsatoolbox")
    from rsatoolbox.inference import boot_noise_ceiling
    from rsatoolbox.rdm import RDMs

    _, V = _mice()
    rdms = RDMs(1.0 - V, rdm_descriptors={"mouse": np.arange(len(V))})  # RDMs, as rsatoolbox wants
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lo, up = boot_noise_ceiling(rdms, method=theirs, rdm_descriptor="mouse")
    got = mice_ceiling(V, method, pool="rank")        # rsatoolbox pools rank methods by mean rank
    assert got["lower"] == pytest.approx(lo, abs=1e-12)
    assert got["upper"] == pytest.approx(up, abs=1e-12)


def test_mice_ceiling_pearson_equals_rsatoolbox_corr():
    pytest.importorskip("rsatoolbox")
    from rsatoolbox.inference import boot_noise_ceiling
    from rsatoolbox.rdm import RDMs

    _, V = _mice(seed=4)
    # rsatoolbox's "corr" pooling z-scores each RDM before averaging: equal to our mean pool on
    # z-scored vectors (Pearson ignores the final shift)
    Z = (V - V.mean(1, keepdims=True)) / V.std(1, keepdims=True)
    lo, up = boot_noise_ceiling(RDMs(V), method="corr")
    got = mice_ceiling(Z, "pearson", pool="mean")
    assert (got["lower"], got["upper"]) == (pytest.approx(lo, abs=1e-12), pytest.approx(up, abs=1e-12))


def test_mean_pool_ceiling_by_hand():
    _, V = _mice(n_mice=3, seed=5)
    got = mice_ceiling(V, "tau_a", pool="mean")
    mean_all = V.mean(0)
    up = np.mean([compare_matrix(V[m], mean_all, "tau_a")[0, 0] for m in range(3)])
    lo = np.mean([compare_matrix(V[m], np.delete(V, m, 0).mean(0), "tau_a")[0, 0] for m in range(3)])
    assert got["upper"] == pytest.approx(up, abs=1e-12)
    assert got["lower"] == pytest.approx(lo, abs=1e-12)
    assert got["lower"] < got["upper"]
    np.testing.assert_allclose(pool_vectors(V, [1, 0, 1]), V[[0, 2]].mean(0))


def test_one_mouse_has_no_lower_bound():
    _, V = _mice(n_mice=1)
    got = mice_ceiling(V, "tau_a")
    assert np.isnan(got["lower"]) and got["upper"] == pytest.approx(1.0)


def test_split_half_ceiling_shapes_and_values():
    rng = np.random.default_rng(6)
    a = rng.normal(size=(4, 3, 2, 50))
    out = split_half_ceiling(a, "tau_b")
    assert out.shape == (4, 3)
    assert out[2, 1] == pytest.approx(compare_matrix(a[2, 1, 0], a[2, 1, 1], "tau_b")[0, 0])


def _area(V, name="VISp", halves=None):
    return AreaRSMs(name, "mouse", V, [f"m{k}" for k in range(len(V))], [100] * len(V), halves)


def test_model_equal_to_the_mean_brain_rsm_scores_at_the_upper_ceiling():
    _, V = _mice(n_mice=4, seed=7)
    brain = {"VISp": _area(V)}
    model = V.mean(0)[None]                   # a "layer" whose RSM is the pooled brain RSM
    cfg = ScoreConfig("tau_a", "upper", "mean", n_boot=0)
    s = score_layers(["conv"], model, brain, cfg).scores.iloc[0]
    assert s["raw"] == pytest.approx(s["ceiling_upper"], abs=1e-12)
    assert s["normalised"] == pytest.approx(1.0, abs=1e-12)
    # normalised by the (default) lower bound the same model is above 1, and flagged
    s2 = score_layers(["conv"], model, brain, ScoreConfig(n_boot=0)).scores.iloc[0]
    assert s2["normalised"] > 1 and bool(s2["above_ceiling"])


def test_scores_raw_is_mean_over_mice_and_normalised_is_a_plain_ratio():
    truth, V = _mice(n_mice=4, seed=8)
    rng = np.random.default_rng(8)
    layers = np.stack([truth + rng.normal(size=truth.size) * s for s in (0.5, 2.0, 8.0)])
    tables = score_layers(["a", "b", "c"], layers, {"VISp": _area(V)},
                          ScoreConfig(n_boot=30, layer_selection="cv", cv_splits=2))
    sc = tables.scores.set_index("layer")
    T = compare_matrix(layers, V, "tau_a")
    np.testing.assert_allclose(sc.loc[["a", "b", "c"], "raw"], T.mean(1), atol=1e-12)
    np.testing.assert_allclose(sc["normalised"], sc["raw"] / sc["ceiling_lower"], atol=1e-12)
    assert sc.loc["a", "raw"] > sc.loc["b", "raw"] > sc.loc["c", "raw"]
    assert (sc["ci_low"] <= sc["normalised"]).all() and (sc["normalised"] <= sc["ci_high"]).all()
    mx = tables.maxima.set_index("area")
    assert mx.loc["VISp", "best_layer"] == "a" and mx.loc["all", "best_layer"] == "a"
    assert mx.loc["VISp", "cv_layer"] == "a"
    assert 0 < mx.loc["VISp", "cv_normalised"] <= mx.loc["VISp", "max_ci_high"]
    s = tables.samples
    per = s[(s["layer"] == "b")].set_index("group")["raw"]
    np.testing.assert_allclose(per.to_numpy(), T[1], atol=1e-12)


def test_bootstrap_is_reproducible_and_seed_dependent():
    truth, V = _mice(n_mice=3, seed=9)
    layers = truth[None] + np.random.default_rng(1).normal(size=(1, truth.size))
    brain = {"VISp": _area(V)}
    a = score_layers(["x"], layers, brain, ScoreConfig(n_boot=15, seed=1)).scores
    b = score_layers(["x"], layers, brain, ScoreConfig(n_boot=15, seed=1)).scores
    c = score_layers(["x"], layers, brain, ScoreConfig(n_boot=15, seed=2)).scores
    assert a["ci_low"].iloc[0] == b["ci_low"].iloc[0] != c["ci_low"].iloc[0]


def test_pooled_population_median_over_splits_over_median_ceiling():
    rng = np.random.default_rng(10)
    truth = rng.normal(size=190)
    splits = truth + rng.normal(size=(9, 190))
    halves = (truth + rng.normal(size=(1, 5, 2, 190)) * 1.5)
    area = AreaRSMs("VISp", "pooled", splits, [f"split{k}" for k in range(9)], [50] * 9, halves)
    layer = truth[None] + 0.1 * rng.normal(size=(1, 190))
    cfg = ScoreConfig("tau_b", "split-half", aggregate="median", n_boot=0)
    s = score_layers(["conv"], layer, {"VISp": area}, cfg).scores.iloc[0]
    T = compare_matrix(layer, splits, "tau_b")[0]
    nc = split_half_ceiling(halves[0], "tau_b")
    assert s["raw"] == pytest.approx(np.median(T))
    assert s["ceiling"] == pytest.approx(np.median(nc))
    assert s["normalised"] == pytest.approx(np.median(T) / np.median(nc))
    # a layer that is the brain signal itself beats the split-half ceiling: flagged, not clipped
    assert s["normalised"] > 1 and bool(s["above_ceiling"])


def test_one_bootstrap_sample_is_exactly_the_statistic_on_the_resampled_data():
    """Replay the sampler: raw and ceilings of sample 0 equal direct computations with the same
    image multiplicities (c_i·c_j per entry) and mouse weights."""
    n_img = 16
    truth, V1 = _mice(n_mice=4, n_img=n_img, seed=11)
    _, V2 = _mice(n_mice=3, n_img=n_img, seed=12)
    layers = truth + np.random.default_rng(3).normal(size=(2, truth.size))
    brain = {"VISl": _area(V1, "VISl"), "VISp": _area(V2, "VISp")}
    cfg = ScoreConfig(n_boot=1, seed=5)
    boot = score_layers(["a", "b"], layers, brain, cfg).boot
    rng = np.random.default_rng(cfg.seed + 7919)
    counts = np.bincount(rng.integers(0, n_img, n_img), minlength=n_img)
    i, j = np.tril_indices(n_img, -1)
    mult = counts[i] * counts[j]
    for ai, V in enumerate((V1, V2)):
        d = np.bincount(rng.integers(0, len(V), len(V)), minlength=len(V)).astype(float)
        T = compare_matrix(layers, V, "tau_a", mult=mult)
        np.testing.assert_allclose(boot["raw"][0, :, ai], T @ d / d.sum(), atol=1e-12)
        c = mice_ceiling(V, "tau_a", "mean", weights=d, mult=mult)
        assert boot["upper"][0, ai] == pytest.approx(c["upper"], abs=1e-12)
        if (d > 0).sum() > 1:
            assert boot["lower"][0, ai] == pytest.approx(c["lower"], abs=1e-12)
        else:
            assert np.isnan(boot["lower"][0, ai])
