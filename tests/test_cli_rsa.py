"""`neurolp rsa` end to end on a synthetic Allen cache with tiny checkpoints, and its bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from allen_fixtures import DEFAULT_CONTAINERS, make_allen_cache
from neurolp.cli import main
from neurolp.models import create_model
from neurolp.train.checkpoint import save_checkpoint


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("rsa_cli")
    make_allen_cache(root / "allen")
    torch.manual_seed(0)
    ck1 = save_checkpoint(root / "lp2.safetensors", create_model("lp2-smallcnn", 10, 32),
                          {"dataset": "digits", "normalization": {"mean": [0.5] * 3, "std": [0.25] * 3}})
    ck2 = save_checkpoint(root / "base.safetensors", create_model("base-smallcnn", 10, 32),
                          {"dataset": "digits"})
    ck64 = save_checkpoint(root / "lp2_64.safetensors", create_model("lp2-smallcnn", 10, 64),
                           {"dataset": "tiny"})
    return root, ck1, ck2, ck64


def _err(capsys):
    err = capsys.readouterr().err
    assert err.startswith("neurolp: error: ") and err.count("\n") == 1, err
    return err


def test_rsa_two_models_writes_tables_figures_and_tests(setup, capsys):
    root, ck1, ck2, _ = setup
    out = root / "out"
    rc = main(["rsa", "--model", "lp2-smallcnn", "base-smallcnn", "--checkpoint", str(ck1), str(ck2),
               "--allen-cache", str(root / "allen"), "--bootstrap", "20", "--layer-selection", "cv",
               "--out", str(out), "--no-progress", "--save-rsms"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "preset: default" in text and "max normalised score" in text
    assert "area VISam: no natural-scene experiment" in text
    sc = pd.read_csv(out / "rsa_scores.csv")
    assert set(sc["model"]) == {"lp2-smallcnn", "base-smallcnn"}
    assert set(sc["area"]) == {"VISal", "VISl", "VISp"} and len(sc) == 2 * 4 * 3
    assert set(sc["preset"]) == {"default"} and set(sc["comparator"]) == {"tau_a"}
    np.testing.assert_allclose(sc["normalised"], sc["raw"] / sc["ceiling_lower"], rtol=1e-9)
    assert (sc["ceiling_lower"] < sc["ceiling_upper"]).all()
    assert sc[["ci_low", "ci_high", "ceiling_split_half", "n_dead_units"]].notna().all().all()
    mx = pd.read_csv(out / "rsa_max.csv")
    assert {"best_layer", "max_normalised", "cv_normalised", "max_ci_low"} <= set(mx.columns)
    tests = pd.read_csv(out / "rsa_max_tests.csv")
    assert list(tests[["group_a", "group_b"]].iloc[0]) == ["lp2-smallcnn", "base-smallcnn"]
    for name in ("rsa_heatmap_lp2-smallcnn.png", "rsa_heatmap_base-smallcnn.png",
                 "rsa_max_comparison.png", "brain.csv", "excluded.csv", "layers.csv", "rsms.npz"):
        assert (out / name).is_file(), name
    run = json.loads((out / "run.json").read_text())
    assert run["preset"] == "default" and run["effective_config"]["n_boot"] == 20
    assert run["checkpoints"]["lp2-smallcnn"].endswith("lp2.safetensors")
    brain = pd.read_csv(out / "brain.csv")
    assert brain.loc[brain["mouse"] == 222001, "dead_neurons"].tolist() == [0, 1]  # VISl, VISp
    with np.load(out / "rsms.npz") as z:
        assert z["brain/VISp"].shape == (3, 118 * 117 // 2)


def test_rsa_lpconv_preset(setup, capsys):
    root, ck1, _, _ = setup
    out = root / "out_lpconv"
    rc = main(["rsa", "--model", "lp2-smallcnn", "--checkpoint", str(ck1), "--allen-cache",
               str(root / "allen"), "--preset", "lpconv", "--splits", "8", "--trial-splits", "6",
               "--areas", "VISp", "VISl", "--layers", "0.4", "0.8", "--out", str(out),
               "--no-progress"])
    assert rc == 0
    assert "preset: lpconv" in capsys.readouterr().out
    sc = pd.read_csv(out / "rsa_scores.csv", dtype={"layer": str})
    assert set(sc["preset"]) == {"lpconv"} and set(sc["comparator"]) == {"tau_b"}
    assert set(sc["layer"]) == {"0.4", "0.8"} and sc["ceiling_lower"].isna().all()
    np.testing.assert_allclose(sc["normalised"], sc["raw"] / sc["ceiling_split_half"], rtol=1e-9)
    s = pd.read_csv(out / "rsa_samples.csv", dtype={"layer": str})
    assert (s.groupby(["layer", "area"]).size() == 8).all()
    assert json.loads((out / "run.json").read_text())["effective_config"]["stimuli"] == "anchor"


def test_rsa_bad_inputs(setup, tmp_path, capsys):
    root, ck1, _, ck64 = setup
    cache = str(root / "allen")
    base = ["rsa", "--model", "lp2-smallcnn", "--checkpoint", str(ck1), "--bootstrap", "0",
            "--no-progress"]
    assert main(base + ["--allen-cache", str(tmp_path / "missing")]) == 2
    assert "does not exist" in _err(capsys)
    part = tmp_path / "partial"
    make_allen_cache(part, files={c.container_id for c in DEFAULT_CONTAINERS[:2]})
    assert main(base + ["--allen-cache", str(part)]) == 2
    assert "partial Allen cache" in _err(capsys)
    assert main(base + ["--allen-cache", cache, "--layers", "0.0", "fc"]) == 2
    err = _err(capsys)
    assert "unknown layer name(s) ['fc']" in err and "0.4" in err
    assert main(["rsa", "--model", "lp2-smallcnn", "--checkpoint", str(ck64), "--image-size", "32",
                 "--allen-cache", cache, "--no-progress"]) == 2
    assert "made for 64×64 inputs" in _err(capsys)
    assert main(["rsa", "--model", "base-smallcnn", "--checkpoint", str(ck1), "--allen-cache", cache,
                 "--no-progress"]) == 2
    assert "holds lp2-smallcnn" in _err(capsys)
    assert main(["rsa", "--model", "lp2-smallcnn", "--allen-cache", cache, "--store",
                 str(tmp_path / "store"), "--no-progress"]) == 2
    assert "no checkpoint of lp2-smallcnn" in _err(capsys)
    assert main(base + ["--allen-cache", cache, "--preset", "lpconv", "--bootstrap", "5"]) == 2
    assert "bootstrap" in _err(capsys)


def test_rsa_untrained_model_and_area_subset(setup, capsys):
    root = setup[0]
    rc = main(["rsa", "--model", "base-smallcnn", "--untrained", "--image-size", "32",
               "--allen-cache", str(root / "allen"), "--areas", "VISal", "--bootstrap", "0",
               "--comparator", "spearman", "--no-progress"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "base-smallcnn (untrained)" in out and "VISal" in out
