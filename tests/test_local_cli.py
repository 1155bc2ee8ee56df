"""lc- models through the CLI: train (SNR_w columns, checkpoint round trip), fit-mpnd and rsa --model."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from allen_fixtures import make_allen_cache
from neurolp.cli import main
from neurolp.layers import LocallyConnected2d
from neurolp.models import create_model
from neurolp.train.checkpoint import load_model, save_checkpoint


@pytest.fixture(autouse=True)
def empty_torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))


def test_train_lcws_logs_snr_and_reloads(tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["train", "--model", "lcws2-smallcnn", "--dataset", "digits", "--image-size", "16", "--epochs", "1",
               "--batch-size", "16", "--max-train-samples", "64", "--model-kwargs", '{"width": 4}',
               "--convert-kwargs", '{"chunk_rows": 4}', "--out", str(out), "--no-publish", "--seed", "0",
               "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    metrics = pd.read_csv(out / "metrics.csv")
    snr = [c for c in metrics.columns if c.startswith("snr_w.")]
    assert snr == ["snr_w.0.4", "snr_w.0.8", "snr_w.0.12"]            # one per LC layer (stem kept conv)
    assert (metrics[snr[:2]] > 0).all().all()
    assert metrics[snr[2]].isna().all()        # 2×2 positions, all touching the padding: SNR_w undefined
    model, meta = load_model(out / "best.safetensors")
    assert meta["model"] == "lcws2-smallcnn" and isinstance(model[0][4], LocallyConnected2d)
    assert model[0][4].chunk_rows == 4 and model[0][4].sharing["every"] == 2


def test_fit_mpnd_model_lc(tmp_path):
    out = tmp_path / "fm"
    assert main(["fit-mpnd", "--out", str(out), "--conditions", "untrained-noise", "--n-inputs", "2",
                 "--model", "lcwsd10-resnet20", "--no-figure", "--quiet"]) == 0
    fits = pd.read_csv(out / "mpnd_fits.csv")
    assert len(fits) == 2 and fits["p"].notna().all()
    assert json.loads((out / "run.json").read_text())["config"]["model"] == "lcwsd10-resnet20"


@pytest.fixture(scope="module")
def allen(tmp_path_factory):
    root = tmp_path_factory.mktemp("lc_rsa")
    make_allen_cache(root / "allen")
    torch.manual_seed(0)
    ck = save_checkpoint(root / "lc.safetensors", create_model("lcws10-smallcnn", 10, 16, width=4),
                         {"dataset": "digits"})
    return root, ck


def test_rsa_model_lc_scores_the_lc_layers(allen, capsys):
    root, ck = allen
    common = ["--allen-cache", str(root / "allen"), "--areas", "VISp", "--bootstrap", "0", "--no-progress"]
    assert main(["rsa", "--model", "lcws10-smallcnn", "--checkpoint", str(ck), "--out", str(root / "a"),
                 *common]) == 0, capsys.readouterr().err
    sc = pd.read_csv(root / "a" / "rsa_scores.csv", dtype={"layer": str})
    assert set(sc["layer"]) == {"0.0", "0.4", "0.8", "0.12"}              # the stem conv and 3 LC layers
    assert sc["raw"].notna().all()
    assert main(["rsa", "--model", "lc-resnet20", "--untrained", "--image-size", "16", "--out", str(root / "b"),
                 *common]) == 0, capsys.readouterr().err
    sc = pd.read_csv(root / "b" / "rsa_scores.csv", dtype={"layer": str})
    assert len(set(sc["layer"])) == 19 and "layer3.2.conv2" in set(sc["layer"])
