"""`dog-` models through `neurolp fit-mpnd --model` and `neurolp rsa --model` (tiny sizes, no network)."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from allen_fixtures import make_allen_cache
from neurolp.cli import main
from neurolp.layers import depthwise_convs, dog_kernel
from neurolp.models import create_model
from neurolp.train.checkpoint import save_checkpoint


@pytest.fixture(autouse=True)
def empty_torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))


@pytest.fixture(scope="module")
def dog_checkpoint(tmp_path_factory):
    root = tmp_path_factory.mktemp("dog_cli")
    torch.manual_seed(0)
    model = create_model("dog-convnext_micro", 10, 32)
    return root, save_checkpoint(root / "dog.safetensors", model, {"dataset": "digits"})


def test_fit_mpnd_untrained_and_checkpoint(dog_checkpoint, tmp_path, capsys):
    _, ck = dog_checkpoint
    out = tmp_path / "out"
    rc = main(["fit-mpnd", "--out", str(out), "--conditions", "trained-noise", "untrained-noise",
               "--model", "dog-convnext_micro", "--weights", str(ck), "--n-inputs", "2", "--no-figure",
               "--quiet"])
    assert rc == 0, capsys.readouterr().err
    fits = pd.read_csv(out / "mpnd_fits.csv")
    assert fits.groupby("condition").size().to_dict() == {"trained-noise": 2, "untrained-noise": 2}
    # the checkpoint is rebuilt as saved (32 px: 3×3 stem), the untrained net at 224 px (4×4 patchify)
    assert set(fits.loc[fits.condition == "trained-noise", "n_points"]) == {9}
    assert set(fits.loc[fits.condition == "untrained-noise", "n_points"]) == {16}
    assert main(["fit-mpnd", "--out", str(tmp_path / "bad"), "--conditions", "trained-noise", "--model",
                 "base-convnext_micro", "--weights", str(ck), "--quiet"]) == 2
    assert "holds dog-convnext_micro, not base-convnext_micro" in capsys.readouterr().err
    assert main(["fit-mpnd", "--out", str(tmp_path / "bad2"), "--conditions", "untrained-noise", "--model",
                 "dog-resnet18", "--quiet"]) == 2
    assert "dog models (dog-...) exist for convnext_tiny" in capsys.readouterr().err


def test_rsa_dog_checkpoint_and_untrained(dog_checkpoint, capsys):
    root, ck = dog_checkpoint
    make_allen_cache(root / "allen")
    out = root / "rsa"
    rc = main(["rsa", "--model", "dog-convnext_micro", "--checkpoint", str(ck), "--allen-cache",
               str(root / "allen"), "--areas", "VISp", "--bootstrap", "0", "--out", str(out), "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    sc = pd.read_csv(out / "rsa_scores.csv")
    assert set(sc["model"]) == {"dog-convnext_micro"} and set(sc["area"]) == {"VISp"}
    layers = pd.read_csv(out / "layers.csv")
    assert len(sc) == len(layers) >= 7 and sc["raw"].notna().all()   # stem, 6 depthwise convs, 1×1 convs...
    rc = main(["rsa", "--model", "dog-convnext_micro", "--untrained", "--image-size", "32", "--allen-cache",
               str(root / "allen"), "--areas", "VISp", "--bootstrap", "0", "--out", str(root / "rsa_u"),
               "--no-progress"])
    assert rc == 0
    assert "dog-convnext_micro (untrained)" in capsys.readouterr().out


def test_checkpoint_kernels_are_dog(dog_checkpoint):
    from neurolp.layers.kernels import cluster_kernels, depthwise_kernels

    _, ck = dog_checkpoint
    kernels, table = depthwise_kernels(ck)
    assert kernels.shape == (32 + 64 + 3 * 128 + 256, 7, 7) and list(table["layer"].unique()) == [
        n for n, _ in depthwise_convs(create_model("base-convnext_micro", 10, 32))]
    assert (kernels[0] == dog_kernel(7, 0.3).double().numpy()).all()
    res = cluster_kernels(kernels, 8, seed=0, table=table)
    assert len(res.centres) == 6          # 3 γ × on/off: only 6 distinct kernels
    assert res.fraction_dog_like_clusters == 1.0 and res.table["corr"].min() > 0.999


@pytest.mark.parametrize("kwargs,message", [
    ('{"sigma": 1}', r"unknown DoG option\(s\) \['sigma'\]"),
    ('{"gammas": [1.5]}', r"must lie in \(0, 1\)"),
    ('{"pattern": "checker"}', "'alternate' or 'random'"),
])
def test_train_refuses_bad_dog_options(tmp_path, capsys, kwargs, message):
    import re

    out = tmp_path / "run"
    rc = main(["train", "--model", "dog-convnext_micro", "--dataset", "digits", "--image-size", "16",
               "--convert-kwargs", kwargs, "--out", str(out), "--no-progress", "--device", "cpu", "--no-publish"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and re.search(message, err), err
    assert not out.exists()


def test_train_dog_runs_two_steps(tmp_path, monkeypatch, capsys):
    """A real (tiny) `neurolp train` of a dog- model: DoG kernels at step 0, the checkpoint loads."""
    from neurolp.train.checkpoint import load_model

    monkeypatch.chdir(tmp_path)
    rc = main(["train", "--model", "dog-convnext_micro", "--dataset", "digits", "--image-size", "16",
               "--max-train-samples", "64", "--batch-size", "32", "--epochs", "1", "--convert-kwargs",
               '{"scale": "match", "share": 0.5, "seed": 0}', "--out", "run", "--no-progress",
               "--device", "cpu", "--no-publish", "--seed", "1"])
    assert rc == 0, capsys.readouterr().err
    model, meta = load_model(tmp_path / "run" / "best.safetensors")
    assert meta["model"] == "dog-convnext_micro" and meta["spec"]["convert_kwargs"]["scale"] == "match"
    assert len(depthwise_convs(model)) == 6
