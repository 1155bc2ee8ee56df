"""Presets, brain RSMs from the synthetic cache, rsatoolbox export and the Fig. 6/11 scripts."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from allen_fixtures import make_allen_cache
from neurolp.brain import ResponseParams, load_responses
from neurolp.errors import ConfigError
from neurolp.rsa import (PRESETS, RSAConfig, brain_rsms, kendall_tau, load_model_source, run_rsa,
                         to_rsatoolbox)
from neurolp.rsa.export import brain_to_rsatoolbox
from neurolp.rsa.rsm import pearson_rsm, rsm_vector

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def exact(tmp_path_factory):
    return make_allen_cache(tmp_path_factory.mktemp("allen_pipeline"), noise=0.0)


def test_lpconv_preset_is_the_official_pipeline():
    c = RSAConfig.from_preset("lpconv")
    assert (c.population, c.comparator, c.aggregate, c.normalise_by) == \
        ("pooled", "tau_b", "median", "split-half")
    assert (c.signal, c.window_start, c.window_frames, c.response_aggregate) == \
        ("events", 0, 15, "sum")
    assert (c.n_splits, c.n_trial_splits, c.stimuli, c.centre, c.n_boot) == (100, 50, "anchor", True, 0)
    d = RSAConfig.from_preset("default")
    assert (d.population, d.comparator, d.normalise_by, d.n_boot) == ("mouse", "tau_a", "lower", 1000)
    assert set(PRESETS) == {"default", "lpconv"}
    with pytest.raises(ConfigError, match="unknown preset"):
        RSAConfig.from_preset("bakhtiari")
    with pytest.raises(ConfigError, match="no mice"):
        RSAConfig.from_preset("default", population="pooled", n_boot=0).validate()


def test_brain_rsms_per_mouse_equal_pearson_of_the_mouse_population(exact):
    br = load_responses(exact.root, progress=False, use_artefact=False)
    rs, report = brain_rsms(br, n_trial_splits=3)
    visp = rs["VISp"]
    assert visp.labels == ["222001", "222002", "222003"]
    # mouse 222002 = its two VISp containers (175 and 275 µm) together
    X = np.concatenate([np.nanmean(br.responses[e], 0) for e in (5031, 5041)], axis=1)
    want, _ = pearson_rsm(X, centre=True)
    np.testing.assert_allclose(visp.vectors[1], rsm_vector(want), atol=1e-12)
    assert visp.half_pairs.shape == (3, 3, 2, 118 * 117 // 2)
    row = report[(report["area"] == "VISp") & (report["mouse"] == "222001")].iloc[0]
    assert row["dead_neurons"] == 1 and row["neurons_used"] == 19
    # noise-free responses: any half of the trials gives the same RSM
    np.testing.assert_allclose(visp.half_pairs[0, 0, 0], visp.half_pairs[0, 0, 1], atol=1e-6)


def test_pooled_split_rsms_and_min_neurons(exact):
    br = load_responses(exact.root, params=ResponseParams(aggregate="sum"), progress=False,
                        use_artefact=False)
    rs, _ = brain_rsms(br, population="pooled", n_splits=4, n_trial_splits=2, areas=["VISl"])
    v = rs["VISl"]
    assert v.vectors.shape == (4, 6903) and v.half_pairs.shape == (1, 2, 2, 6903)
    np.testing.assert_allclose(v.vectors, np.broadcast_to(v.full_vectors, v.vectors.shape), atol=1e-6)
    assert kendall_tau(v.half_pairs[0, 0, 0], v.half_pairs[0, 0, 1], "b") == pytest.approx(1.0)
    rs2, rep = brain_rsms(br, min_neurons=16)
    out = rep[~rep["included"]]
    assert set(zip(out["area"], out["mouse"])) == {("VISal", "222004"), ("VISal", "222005"),
                                                   ("VISl", "222003")}
    assert all("min_neurons 16" in r for r in out["reason"])
    assert rs2["VISal"].labels == [] and rs2["VISl"].labels == ["222001", "222004"]


def test_run_rsa_library_call(exact):
    src = load_model_source("lp4-smallcnn", untrained=True, image_size=32, num_classes=5)
    cfg = RSAConfig.from_preset("default", n_boot=10, n_trial_splits=2)
    res = run_rsa([src], exact.root, cfg, areas=["VISp", "VISl"], layers=["0.0", "0.12"],
                  keep_rsms=True)
    assert set(res.scores["area"]) == {"VISp", "VISl"} and set(res.scores["layer"]) == {"0.0", "0.12"}
    assert list(res.model_rsms["lp4-smallcnn (untrained)"].names) == ["0.0", "0.12"]
    assert res.timings and any("bootstrap" in k for k in res.timings)
    assert "preset: default" in res.summary_lines()[0]


def test_export_to_rsatoolbox(exact, monkeypatch):
    pytest.importorskip("rsatoolbox")
    rng = np.random.default_rng(0)
    vecs = rng.uniform(-1, 1, (3, 45))
    rdms = to_rsatoolbox(vecs, {"mouse": ["a", "b", "c"]})
    assert rdms.n_rdm == 3 and rdms.n_cond == 10
    np.testing.assert_allclose(rdms.get_vectors(), 1 - vecs[:, _tril_to_triu(10)], atol=1e-12)
    assert list(rdms.rdm_descriptors["mouse"]) == ["a", "b", "c"]
    br = load_responses(exact.root, progress=False, use_artefact=False)
    rs, _ = brain_rsms(br, areas=["VISal"])
    obj = brain_to_rsatoolbox(rs)
    assert list(obj.rdm_descriptors["area"]) == ["VISal", "VISal"]
    monkeypatch.setitem(sys.modules, "rsatoolbox", None)
    with pytest.raises(ConfigError, match="pip install"):
        to_rsatoolbox(vecs)


def _tril_to_triu(n):
    """Index map: rsatoolbox's upper-triangle order → neurolp's lower-triangle vector."""
    idx = np.zeros((n, n), int)
    i, j = np.tril_indices(n, -1)
    idx[i, j] = np.arange(len(i))
    idx[j, i] = np.arange(len(i))
    iu, ju = np.triu_indices(n, 1)
    return idx[iu, ju]


def _script(name):
    spec = importlib.util.spec_from_file_location(name, REPO / "analyses" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_fig6_and_fig11_scripts(tmp_path, capsys):
    rng = np.random.default_rng(1)
    rows, samples, maxima = [], [], []
    for m, shift in (("base-x", 0.0), ("lp2-x", 0.3)):
        for li in range(3):
            for a in ("VISp", "VISl"):
                v = 0.2 + shift * (li == 1) + 0.01 * li
                rows.append({"model": m, "preset": "default", "comparator": "tau_a", "layer": f"c{li}",
                             "layer_index": li, "area": a, "raw": v / 2, "normalised": v,
                             "normaliser": "lower", "ci_low": v - .05, "ci_high": v + .05,
                             "raw_ci_low": v / 2 - .02, "raw_ci_high": v / 2 + .02,
                             "above_ceiling": False})
                for g in range(6):
                    samples.append({"model": m, "layer": f"c{li}", "area": a, "group": f"m{g}",
                                    "group_kind": "mouse", "normalised": v + rng.normal(0, .02)})
        best = 1 if shift else 2
        maxima.append({"model": m, "area": "all", "best_layer": f"c{best}", "best_area": "VISp",
                       "max_normalised": 0.2 + shift * (best == 1) + 0.01 * best,
                       "max_ci_low": 0.15, "max_ci_high": 0.6, "above_ceiling": False})
    run = tmp_path / "run"
    run.mkdir()
    pd.DataFrame(rows).to_csv(run / "rsa_scores.csv", index=False)
    pd.DataFrame(samples).to_csv(run / "rsa_samples.csv", index=False)
    pd.DataFrame(maxima).to_csv(run / "rsa_max.csv", index=False)
    assert _script("fig6_rsa").main([str(run), "--out", str(tmp_path / "f6.png")]) == 0
    tests = pd.read_csv(tmp_path / "f6_tests.csv")
    assert tests.loc[0, "p_holm"] < 1e-3 and tests.loc[0, "stars"] == "***"
    assert (tmp_path / "f6.png").stat().st_size > 10_000
    assert _script("fig11_rsa_layers").main([str(run), "--out", str(tmp_path / "f11.png")]) == 0
    assert (tmp_path / "f11_heatmap_lp2-x.png").is_file()
    assert "wrote" in capsys.readouterr().out
