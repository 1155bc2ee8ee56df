"""RSA on any neural data set: a planted model–brain relation is recovered from RSM files, from
responses and from an rsatoolbox RDMs file; given ceilings are used as given; dissimilarities
convert without changing any comparator; neurons are selected by split-half reliability."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from neural_fixtures import (PLANTED_LAYER, layer_features, layer_rsm, make_images, noisy_copies,
                             planted_model, planted_responses, to_rsatoolbox_vectors,
                             write_rsatoolbox_rdms)
from neurolp.brain.neural import load_neural
from neurolp.brain.stimuli import load_stimulus_images
from neurolp.errors import ConfigError, InputError
from neurolp.rsa import RSAConfig
from neurolp.rsa.neural import default_normaliser, run_rsa_neural
from neurolp.rsa.reliability import neuron_reliability, spearman_brown

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("neural")
    images = make_images()
    np.save(root / "images.npy", images)
    planted, control = planted_model(1), planted_model(2)
    target = layer_rsm(planted.model, images)
    feats = layer_features(planted.model, images)
    return {"root": root, "images": images, "planted": planted, "control": control,
            "target": target, "features": feats}


def _cfg(**kw):
    base = dict(crop="center", n_boot=30, n_trial_splits=3)
    base.update(kw)
    return RSAConfig.from_preset("default", **base)


def _run(world, path, cfg=None, sources=None):
    data = load_neural(path)
    imgs = load_stimulus_images(world["root"] / "images.npy", data.order, n_stimuli=data.n_stimuli)
    return run_rsa_neural(sources or [world["planted"], world["control"]], data, imgs,
                          cfg or _cfg())


def _best(res, model, area="all"):
    m = res.maxima
    return m[(m["model"] == model) & (m["area"] == area)].iloc[0]


def test_planted_relation_from_rsm_file(world):
    path = world["root"] / "rsm.npz"
    np.savez(path, **{"rsm/V1": noisy_copies(world["target"], 4, 0.7, seed=0),
                      "rsm/LM": noisy_copies(world["target"], 3, 1.5, seed=1)},
             stimuli=np.arange(len(world["images"])))
    res = _run(world, path)
    a, b = world["planted"].display, world["control"].display
    for area in ("V1", "LM", "all"):
        assert _best(res, a, area)["max_raw"] > _best(res, b, area)["max_raw"] + 0.05, area
    assert _best(res, a, "V1")["best_layer"] == PLANTED_LAYER
    sc = res.scores
    assert set(sc["area"]) == {"V1", "LM"} and set(sc["ceiling_source"]) == {"computed"}
    np.testing.assert_allclose(sc["normalised"], sc["raw"] / sc["ceiling_lower"], rtol=1e-12)
    # a noisier site has a lower ceiling, and the bootstrap CIs bracket the scores
    ceil = sc.groupby("area")["ceiling_lower"].first()
    assert ceil["V1"] > ceil["LM"] > 0
    assert ((sc["ci_low"] <= sc["normalised"]) & (sc["normalised"] <= sc["ci_high"])).all()
    assert res.brain_source == "neural" and res.selection["kind"] == "rsm"
    assert "array" in res.stimuli[a] and "centre square crop" in res.stimuli[a]


def test_planted_relation_from_responses(world):
    n = len(world["images"])
    rng = np.random.default_rng(3)
    arrs = {f"responses/V1/m{k}": planted_responses(world["features"], 50, 6, 0.8, seed=k)
            for k in range(3)}
    arrs["responses/LM"] = rng.normal(size=(n, 6, 40)).astype(np.float32)   # unrelated site
    path = world["root"] / "resp.npz"
    np.savez(path, **arrs)
    data = load_neural(path)
    assert default_normaliser(data)[0] == "split-half"   # LM has one subject and no ceiling
    res = _run(world, path, _cfg(normalise_by="split-half"))
    a, b = world["planted"].display, world["control"].display
    assert _best(res, a, "V1")["max_raw"] > _best(res, b, "V1")["max_raw"] + 0.05
    sc = res.scores
    lm = sc[(sc["model"] == a) & (sc["area"] == "LM")]
    assert _best(res, a, "V1")["max_raw"] > lm["raw"].max() + 0.2   # the unrelated site
    v1 = sc[sc["area"] == "V1"]
    np.testing.assert_allclose(v1["normalised"], v1["raw"] / v1["ceiling_split_half"], rtol=1e-12)
    # noise only: a ceiling <= 0, so LM's normalised scores are undefined, and said so
    assert sc.loc[sc["area"] == "LM", "normalised"].isna().all()
    assert sc.loc[sc["area"] == "LM", "note"].str.contains("<= 0").all()
    rep = res.brain_report.set_index(["area", "mouse"])
    assert rep.loc[("V1", "m1"), "neurons_used"] == 50 and rep.loc[("LM", "LM"), "neurons"] == 40
    assert (sc.loc[sc["area"] == "V1", "n_groups"] == 3).all()


def test_planted_relation_from_rsatoolbox_file_matches_the_npz(world):
    r = noisy_copies(world["target"], 3, 0.7, seed=5)
    names = [f"img{k:02d}" for k in range(len(world["images"]))]
    np.savez(world["root"] / "same.npz", **{"rsm/V1": r}, stimuli=np.arange(len(names)))
    h5 = write_rsatoolbox_rdms(world["root"] / "rdms.hdf5", to_rsatoolbox_vectors(1 - r),
                               "correlation", {"roi": ["V1"] * 3, "subj": ["a", "b", "c"]},
                               {"index_names": names})
    res_h5 = _run(world, h5)
    res_npz = _run(world, world["root"] / "same.npz")
    cols = ["raw", "normalised", "ceiling_lower", "ceiling_upper", "ci_low", "ci_high"]
    np.testing.assert_allclose(res_h5.scores[cols].to_numpy(float),
                               res_npz.scores[cols].to_numpy(float), rtol=1e-12, atol=1e-12)
    a, b = world["planted"].display, world["control"].display
    assert _best(res_h5, a)["max_raw"] > _best(res_h5, b)["max_raw"] + 0.05
    assert res_h5.selection["format"] == "rsatoolbox"
    assert list(res_h5.samples["group"].unique()) == ["a", "b", "c"]


@pytest.mark.parametrize("comparator", ["tau_a", "tau_b", "spearman", "pearson"])
def test_any_dissimilarity_measure_gives_the_scores_of_its_similarity(world, comparator):
    """1 − d and −d are both decreasing affine maps: every comparator and pool is unchanged."""
    d = 1 - noisy_copies(world["target"], 2, 1.0, seed=7)
    np.savez(world["root"] / "corr.npz", **{"rdm/V1": d}, dissimilarity_measure="correlation")
    np.savez(world["root"] / "eucl.npz", **{"rdm/V1": d}, dissimilarity_measure="euclidean")
    cfg = _cfg(comparator=comparator, n_boot=0, pool="rank" if comparator != "pearson" else "mean")
    x = _run(world, world["root"] / "corr.npz", cfg, [world["planted"]]).scores
    y = _run(world, world["root"] / "eucl.npz", cfg, [world["planted"]]).scores
    np.testing.assert_allclose(x[["raw", "normalised", "ceiling_lower"]].to_numpy(float),
                               y[["raw", "normalised", "ceiling_lower"]].to_numpy(float),
                               rtol=1e-10, atol=1e-12)


def test_given_ceilings_are_used_as_given_and_held_fixed_in_the_bootstrap(world):
    path = world["root"] / "ceil.npz"
    np.savez(path, **{"rsm/V1": noisy_copies(world["target"], 1, 0.5, seed=2)[0],
                      "rsm/LM": noisy_copies(world["target"], 2, 0.5, seed=3),
                      "ceiling/V1": 0.8, "ceiling/LM": [0.5, 0.9]}, ceiling_comparator="tau_a")
    data = load_neural(path)
    assert default_normaliser(data) == ("lower", "the ceilings given in the file")
    res = _run(world, path, _cfg(), [world["planted"]])
    sc = res.scores.set_index(["area", "layer"])
    v1, lm = sc.xs("V1"), sc.xs("LM")
    assert (v1["ceiling_lower"] == 0.8).all() and v1["ceiling_upper"].isna().all()
    assert (lm["ceiling_lower"] == 0.5).all() and (lm["ceiling_upper"] == 0.9).all()
    assert set(res.scores["ceiling_source"]) == {"file"}
    np.testing.assert_allclose(v1["normalised"], v1["raw"] / 0.8, rtol=1e-12)
    # a fixed denominator: the normalised CI is the raw CI divided by the ceiling
    np.testing.assert_allclose(lm["ci_low"], lm["raw_ci_low"] / 0.5, rtol=1e-9)
    np.testing.assert_allclose(lm["ci_high"], lm["raw_ci_high"] / 0.5, rtol=1e-9)
    with pytest.raises(ConfigError, match="computed with tau_a but the scores use spearman"):
        _run(world, path, _cfg(comparator="spearman"), [world["planted"]])
    up = _run(world, path, _cfg(normalise_by="upper", n_boot=0), [world["planted"]]).scores
    np.testing.assert_allclose(up.loc[up["area"] == "LM", "normalised"],
                               up.loc[up["area"] == "LM", "raw"] / 0.9, rtol=1e-12)


def test_no_ceiling_reports_raw_scores(world):
    path = world["root"] / "single.npz"
    np.savez(path, **{"rsm/V1": noisy_copies(world["target"], 1, 0.5, seed=4)[0]})
    data = load_neural(path)
    assert default_normaliser(data)[0] == "none"
    res = run_rsa_neural([world["planted"]], data,
                         load_stimulus_images(world["root"] / "images.npy", None,
                                              n_stimuli=data.n_stimuli))
    sc = res.scores
    np.testing.assert_array_equal(sc["normalised"], sc["raw"])
    assert sc["ceiling"].isna().all() and set(sc["ceiling_source"]) == {"none"}
    assert any("no noise ceiling" in n for n in res.notes)
    assert "not normalised" in res.summary_lines()[0]
    with pytest.raises(InputError, match="every layer × area score is undefined.*--normalise-by none"):
        _run(world, path, _cfg(normalise_by="lower"), [world["planted"]])
    with pytest.raises(ConfigError, match="split-half ceiling needs responses"):
        _run(world, path, _cfg(normalise_by="split-half"), [world["planted"]])


def test_spearman_brown_law():
    assert spearman_brown(0.0) == 0.0 and spearman_brown(1.0) == 1.0
    assert spearman_brown(1 / 3) == pytest.approx(0.5)
    assert spearman_brown(0.5, factor=3) == pytest.approx(0.75)
    r = np.linspace(-0.2, 0.95, 20)
    assert np.all(np.diff(spearman_brown(r)) > 0) and np.all(spearman_brown(r[r > 0]) > r[r > 0])


def test_reliability_keeps_signal_neurons_and_drops_noise(world):
    resp = planted_responses(world["features"], 30, 8, 0.6, seed=1, unreliable=20)
    r_half, r_sb = neuron_reliability(resp.transpose(1, 0, 2), n_splits=10, seed=0)
    assert np.median(r_sb[:30]) > 0.8 and np.median(r_sb[30:]) < 0.3
    np.testing.assert_allclose(r_sb, spearman_brown(r_half))
    n = len(world["images"])
    path = world["root"] / "rel.npz"
    np.savez(path, **{"responses/V1/m1": resp, "responses/V1/m2": resp[:, :, ::-1].copy(),
                      "responses/LM/m1": np.random.default_rng(0).normal(size=(n, 8, 12))
                      .astype(np.float32)})
    cfg = _cfg(reliability=0.5, min_neurons=5, normalise_by="split-half", n_boot=0)
    res = _run(world, path, cfg, [world["planted"]])
    rel = res.reliability
    kept = rel[(rel["area"] == "V1") & (rel["mouse"] == "m1")]
    assert kept["kept"].iloc[:30].mean() > 0.9 and kept["kept"].iloc[30:].mean() < 0.1
    rep = res.brain_report.set_index(["area", "mouse"])
    assert rep.loc[("V1", "m1"), "neurons_recorded"] == 50
    assert 27 <= rep.loc[("V1", "m1"), "neurons_used"] <= 32
    # the noise-only site keeps fewer than --min-neurons neurons: flagged and left out
    assert not rep.loc[("LM", "m1"), "included"]
    assert any("LM / m1" in n and "reliable neurons" in n for n in res.notes)
    assert (res.excluded["item"] == "LM/m1").any()


def test_single_trial_responses(world):
    resp = planted_responses(world["features"], 30, 1, 0.3, seed=2)
    path = world["root"] / "one_trial.npz"
    np.savez(path, **{"responses/V1/a": resp, "responses/V1/b": resp + 0.1})
    res = _run(world, path, _cfg(n_boot=0), [world["planted"]])
    assert any("single trial" in n for n in res.notes)
    assert res.scores["ceiling_split_half"].isna().all() and res.scores["normalised"].notna().all()
    with pytest.raises(InputError, match="single trial"):
        _run(world, path, _cfg(normalise_by="split-half"), [world["planted"]])


def test_pooled_population_and_lpconv_preset_on_responses(world):
    arrs = {f"responses/V1/m{k}": planted_responses(world["features"], 30, 6, 0.8, seed=k)
            for k in range(2)}
    np.savez(world["root"] / "pooled.npz", **arrs)
    cfg = RSAConfig.from_preset("lpconv", n_splits=4, n_trial_splits=3, crop="center")
    res = _run(world, world["root"] / "pooled.npz", cfg, [world["planted"]])
    assert set(res.scores["normaliser"]) == {"split-half"} and len(res.samples) == 4 * 4
    assert isinstance(res.brain_report, pd.DataFrame) and res.brain_report["population"].eq("pooled").all()
    np.savez(world["root"] / "m.npz", **{"rsm/V1": world["target"]})
    with pytest.raises(ConfigError, match="needs responses"):
        _run(world, world["root"] / "m.npz", cfg, [world["planted"]])


def test_bootstrap_ceilings_shared_between_models_change_nothing(world):
    """The brain-only bootstrap work is done once for several models: the second model's
    scores and CIs are exactly those of scoring it alone."""
    path = world["root"] / "rsm.npz"
    both = _run(world, path).scores
    alone = _run(world, path, sources=[world["control"]]).scores
    b = both[both["model"] == world["control"].display].reset_index(drop=True)
    cols = ["raw", "normalised", "ceiling_lower", "raw_ci_low", "raw_ci_high", "ci_low", "ci_high"]
    np.testing.assert_array_equal(b[cols].to_numpy(float), alone[cols].to_numpy(float))
