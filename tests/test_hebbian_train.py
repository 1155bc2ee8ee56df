"""Hebbian Amato networks: registry names, the layer-wise trainer, CIFAR-10's on-disk layout, the
`neurolp hebbian train` command and `neurolp fit-mpnd` on its checkpoint."""

from __future__ import annotations

import json
import math
import os
import pickle
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from neurolp.errors import ConfigError, DataFormatError, DataNotFoundError
from neurolp.hebbian.model import AmatoNet, feature_shape
from neurolp.hebbian.train import lr_schedule, make_hebbian_config, run_hebbian, train_hebbian_layer
from neurolp.layers.hebbian import BioConv2d, BioLinear
from neurolp.models import create_model, list_models, parse_model_name

ROOT = Path(__file__).resolve().parents[1]


# --- registry ------------------------------------------------------------------------------------
@pytest.mark.parametrize("n,params", [(1, 195_370), (2, 302_122), (3, 386_986), (4, 804_394), (5, 1_475_554)])
def test_amato_parameter_counts_match_the_slides(n, params):
    """Slides' Table 1: 195k, 302k, 387k, 804k, 1.475M parameters with n Hebbian layers + head."""
    hebb = create_model(f"hebb{n}-amato", num_classes=10, image_size=32)
    sgd = create_model(f"sgd{n}-amato", num_classes=10, image_size=32)
    assert sum(p.numel() for p in hebb.parameters()) == params
    assert sum(p.numel() for p in sgd.parameters()) == params
    assert len(hebb.hebbian_layers()) == n and sgd.hebbian == 0
    assert all(not p.requires_grad for layer in hebb.hebbian_layers() for p in layer.parameters())
    kinds = [type(m) for m in hebb.hebbian_layers()]
    assert kinds == [BioConv2d] * min(n, 4) + [BioLinear] * (n == 5)


def test_registry_names_and_rule_hyperparameters():
    assert str(parse_model_name("HEBB2-amato")) == "hebb2-amato"
    assert str(parse_model_name("sgd-amato")) == "sgd-amato"
    assert {"hebb1-amato", "hebb5-amato", "sgd-amato", "base-amato", "lp2-amato"} <= set(list_models("amato"))
    m = create_model("hebb2-amato", 10, 32)
    assert [(l.lebesgue_p, l.ranking_param, l.delta) for l in m.hebbian_layers()] == [(8, 3, 0.34)] * 2
    assert m.head[2].p == 0.25
    m = create_model("hebb1-amato", 10, 32, lebesgue_p=4, ranking_param=3)
    assert (m.features[0].layer.lebesgue_p, m.features[0].layer.ranking_param) == (4, 3)
    assert sum(p.numel() for p in create_model("sgd-amato", 10, 32).parameters()) == 1_475_554
    five = create_model("hebb5-amato", 10, 32)
    assert [l.step_norm for l in five.hebbian_layers()] == ["kernel"] * 4 + ["global"]
    assert {l.step_norm for l in create_model("hebb5-amato", 10, 32, step_norm="none").hebbian_layers()} == {"none"}
    with pytest.raises(ConfigError):
        parse_model_name("hebb6-amato")
    with pytest.raises(ConfigError):
        parse_model_name("hebb1-resnet18")
    # larger inputs are pooled to the 32×32 geometry: same head, same parameter count
    big = create_model("hebb1-amato", 10, 64)
    assert sum(p.numel() for p in big.parameters()) == 195_370
    assert big.eval()(torch.randn(2, 3, 64, 64)).shape == (2, 10)
    assert feature_shape(4) == (256, 3, 3) and feature_shape(5) == (300,)
    with pytest.raises(ConfigError, match="too small"):
        AmatoNet(depth=3, image_size=12)


# --- trainer --------------------------------------------------------------------------------------
def test_lr_schedules():
    assert lr_schedule(0.3, 10)(123) == 0.3
    s = lr_schedule((0.007, 1e-4, 0.8), 100)
    assert s(0) == pytest.approx(0.007)
    assert s(100) == pytest.approx(1e-4 + (0.007 - 1e-4) * math.exp(-0.8))
    assert s(10 ** 6) == pytest.approx(1e-4)
    assert lr_schedule(lambda b: 1.0 / (b + 1), 5)(3) == 0.25
    for bad in (-1.0, (0.1, 0.0, 1.0), "fast", (1, 2)):
        with pytest.raises(ConfigError):
            lr_schedule(bad, 10)


def _toy_inputs():
    torch.manual_seed(0)
    x = torch.randn(256, 8) + torch.repeat_interleave(torch.eye(8) * 4, 32, 0)
    return x, (lambda idx: x[idx])


def test_layer_stops_when_converged_on_patience_or_after_epochs():
    x, inputs = _toy_inputs()
    layer = BioLinear(8, 6, lebesgue_p=2, ranking_param=2, delta=0.1)
    hist, reason = train_hebbian_layer(layer, inputs, len(x), epochs=200, lr=(0.2, 1e-3, 0.3), batch_size=32,
                                       patience=None, threshold=1e-2)
    assert reason == "converged" and hist["convergence"].iloc[-1] < 1e-2 and hist["epoch"].max() < 199
    assert list(hist.columns) == ["epoch", "batch", "lr", "convergence"] and len(hist) % 8 == 0
    # lr 0: the metric never improves on its first value → patience stops after patience + 1 batches
    layer = BioLinear(8, 6)
    hist, reason = train_hebbian_layer(layer, inputs, len(x), epochs=5, lr=lambda b: 0.0, batch_size=32,
                                       patience=3)
    assert reason == "patience" and len(hist) == 5
    hist, reason = train_hebbian_layer(BioLinear(8, 6), inputs, len(x), epochs=2, lr=1e-6, batch_size=32,
                                       patience=None)
    assert reason == "epochs" and len(hist) == 16 and hist["epoch"].max() == 1  # exactly 2 epochs


def test_run_hebbian_tiny_digits_learns_and_sgd_control_trains_everything():
    torch.set_num_threads(1)
    common = dict(dataset="digits", max_train_samples=400, hebb_epochs=2, head_epochs=4, progress=False,
                  batch_size=50)
    res = run_hebbian(make_hebbian_config("quick", layers=1, **common))
    m = res.metrics
    assert m["n_train"] == 360 and m["n_val"] == 40 and m["n_test"] == 360
    assert m["test_acc"] > 50 and 1 <= m["best_epoch"] <= 4     # chance is 10 %
    assert set(res.unsupervised["layer"]) == {1} and len(res.unsupervised) == 2 * 8
    assert m["layer1_stopped"] in ("epochs", "converged")
    before = res.model.features[0].layer.weight.clone()
    ctrl = run_hebbian(make_hebbian_config("quick", layers=1, supervised=True, **common))
    assert ctrl.model.neurolp_spec["name"] == "sgd1-amato" and len(ctrl.unsupervised) == 0
    assert ctrl.metrics["test_acc"] > 50
    assert torch.equal(before, res.model.features[0].layer.weight)   # the head phase leaves W alone


# --- CIFAR-10 (python-version pickle layout) ----------------------------------------------------
def write_cifar10(root: Path, n: int = 4, n_test: int = 5) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    k = 0
    for i in range(1, 6):
        data = np.zeros((n, 3072), np.uint8)
        labels = []
        for j in range(n):
            data[j, :1024] = k % 256          # red plane holds the running index
            labels.append(k % 10)
            k += 1
        with open(folder / f"data_batch_{i}", "wb") as fh:
            pickle.dump({b"batch_label": b"training batch", b"labels": labels, b"data": data,
                         b"filenames": [b"x.png"] * n}, fh, protocol=2)
    data = np.zeros((n_test, 3072), np.uint8)
    data[:, 1024:2048] = 200                  # green plane
    with open(folder / "test_batch", "wb") as fh:
        pickle.dump({b"labels": list(range(n_test)), b"data": data}, fh, protocol=2)
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({b"label_names": [f"c{i}".encode() for i in range(10)], b"num_vis": 3072}, fh, protocol=2)
    return folder


def test_cifar10_reads_python_layout(tmp_path):
    from neurolp.hebbian.data import load_tensor_splits
    from neurolp.train.data import load_splits

    write_cifar10(tmp_path)
    cfg = SimpleNamespace(dataset="cifar10", data_dir=str(tmp_path), val_fraction=0, split_seed=0,
                          max_train_samples=None, image_size=None, preset="quick")
    s = load_splits(cfg)
    assert s.sizes() == {"train": 20, "val": 0, "test": 5} and s.classes == [f"c{i}" for i in range(10)]
    img, label = s.train[13]
    assert label == 3 and np.asarray(img)[..., 0].max() == 13 and np.asarray(img)[..., 1].max() == 0
    t = load_tensor_splits("cifar10", tmp_path / "cifar-10-batches-py", val_fraction=0.5)
    assert t.train[0].shape == (10, 3, 32, 32) and t.test[1].tolist() == [0, 1, 2, 3, 4]
    assert float(t.test[0][:, 1].max()) == pytest.approx(200 / 255)


def test_cifar10_missing_and_unsafe(tmp_path):
    from neurolp.train.data import load_splits

    cfg = SimpleNamespace(dataset="cifar10", data_dir=str(tmp_path), val_fraction=0, split_seed=0,
                          max_train_samples=None, image_size=None, preset="quick")
    with pytest.raises(DataNotFoundError, match=r"cifar-10-python\.tar\.gz.*searched DIR"):
        load_splits(cfg)
    folder = write_cifar10(tmp_path)

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    with open(folder / "data_batch_3", "wb") as fh:
        pickle.dump({"data": Evil()}, fh, protocol=2)
    with pytest.raises(DataFormatError, match=r"not a CIFAR python-version file \(refusing"):
        load_splits(cfg)


# --- the commands -------------------------------------------------------------------------------
def _cli(*argv, cwd=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "neurolp", *argv], capture_output=True, text=True, env=env,
                          cwd=cwd)


def test_cli_trains_hebb1_and_fit_mpnd_reads_its_checkpoint(tmp_path):
    from neurolp.rf.functional import conv_weight, first_conv
    from neurolp.rf.networks import build_network
    from neurolp.train.checkpoint import load_model

    out = tmp_path / "hebb1"
    r = _cli("hebbian", "train", "--layers", "1", "--dataset", "digits", "--preset", "quick",
             "--max-train-samples", "200", "--hebb-epochs", "1", "--head-epochs", "1", "--seed", "3",
             "--out", str(out), "--store", str(tmp_path / "store"), "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "hebb1-amato on digits (seed 3): test" in r.stdout
    # published like every trained model, so `rsa/report --model hebb1-amato` find it in the store
    from neurolp.train.store import find_checkpoint

    found = find_checkpoint("hebb1-amato", dataset="digits", store=tmp_path / "store")
    assert found.read_bytes() != (out / "model.safetensors").read_bytes()  # relabelled kind "final"
    published, mine = load_model(found)[0].state_dict(), load_model(out / "model.safetensors")[0].state_dict()
    assert published.keys() == mine.keys() and all(torch.equal(published[k], mine[k]) for k in mine)
    for f in ("model.safetensors", "hebbian_history.csv", "head_history.csv", "metrics.json",
              "fig_hebbian.png", "run.json"):
        assert (out / f).is_file(), f
    metrics = json.loads((out / "metrics.json").read_text())
    model, meta = load_model(out / "model.safetensors")
    assert meta["model"] == "hebb1-amato" and meta["dataset"] == "digits" and meta["seed"] == 3
    assert len(pd.read_csv(out / "hebbian_history.csv")) == metrics["layer1_batches"]
    # fit-mpnd's network: the checkpoint rebuilt as trained; its first conv is the BioConv2d
    net = build_network("hebb1-amato", trained=True, weights=out / "model.safetensors")
    conv = first_conv(net)[1]
    assert isinstance(conv, BioConv2d)
    torch.testing.assert_close(conv.weight, model.features[0].layer.weight)
    scale = (conv.bn.running_var + conv.bn.eps).rsqrt().view(1, 3, 1, 1)
    torch.testing.assert_close(conv_weight(conv), conv.weight.sign() * conv.weight.abs() * scale)  # p = 2
    fm = tmp_path / "mpnd"
    r = _cli("fit-mpnd", "--model", "hebb1-amato", "--weights", str(out / "model.safetensors"),
             "--conditions", "trained-noise", "untrained-noise", "--n-inputs", "2", "--out", str(fm))
    assert r.returncode == 0, r.stderr
    fits = pd.read_csv(fm / "mpnd_fits.csv")
    assert sorted(fits["condition"].unique()) == ["trained-noise", "untrained-noise"] and len(fits) == 4
    assert (fits["p"] > 0).all()


def test_cli_bad_inputs_are_one_line(tmp_path):
    for argv, needle in [
        (("--layers", "6"), "--layers"),
        (("--dataset", "cifar10", "--data-dir", str(tmp_path)), "cifar-10-python.tar.gz"),
        (("--supervised", "--p", "3"), "--supervised"),
        (("--conv-lr", "0.1,0.2"), "START,END,SPEED"),
    ]:
        r = _cli("hebbian", "train", *argv, "--out", str(tmp_path / "x"))
        assert r.returncode == 2, (argv, r.stderr)
        assert needle in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = _cli("fit-mpnd", "--model", "hebb1-amato", "--weights", str(tmp_path / "none.safetensors"),
             "--out", str(tmp_path / "y"))
    assert r.returncode == 2


def test_augment_batch_is_a_reflect_padded_crop_or_its_mirror():
    import torch.nn.functional as F

    from neurolp.hebbian.data import augment_batch

    x = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).view(2, 3, 6, 6)
    xp = F.pad(x, (2, 2, 2, 2), mode="reflect")
    out = augment_batch(x, torch.Generator().manual_seed(0), pad=2, flip=True)
    assert out.shape == x.shape
    for b in range(2):
        windows = [xp[b, :, i:i + 6, j:j + 6] for i in range(5) for j in range(5)]
        assert any(torch.equal(out[b], w) or torch.equal(out[b], w.flip(-1)) for w in windows)
    same = augment_batch(x, torch.Generator().manual_seed(0), pad=0, flip=False)
    assert torch.equal(same, x)
