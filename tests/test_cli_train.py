"""`neurolp train`, `neurolp eval` and `neurolp checkpoints` end to end (in process)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from neurolp.cli import main

TINY = ["--dataset", "digits", "--preset", "quick", "--image-size", "16", "--model-kwargs",
        '{"width": 8}', "--max-train-samples", "300", "--epochs", "2", "--batch-size", "32",
        "--lr", "0.003", "--device", "cpu", "--no-progress"]


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch, one_torch_thread):
    monkeypatch.setenv("NEUROLP_CHECKPOINTS", str(tmp_path / "store"))
    monkeypatch.chdir(tmp_path)


def test_train_checkpoints_eval(tmp_path, capsys):
    assert main(["train", "--model", "lp2-smallcnn", "--out", "runs/a", *TINY,
                 "--max-train-samples", "800", "--epochs", "3"]) == 0
    out = capsys.readouterr().out
    assert "lp2-smallcnn on digits (seed 0, 16 px): finished, 3/3 epochs" in out
    assert "selected epoch" in out and "published: " in out
    summary = json.loads((tmp_path / "runs/a/summary.json").read_text())
    assert summary["complete"] and summary["test_acc"] > 60  # 66 steps; chance is 10 %

    assert main(["checkpoints"]) == 0
    listing = capsys.readouterr().out
    assert listing.startswith(f"1 checkpoint(s) in {tmp_path / 'store'}")
    assert "lp2-smallcnn" in listing and "final" in listing

    # by model name from the store: the same test accuracy as the run reported
    assert main(["eval", "--checkpoint", "lp2-smallcnn", "--no-progress", "--out", "ev"]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    assert line.startswith("lp2-smallcnn on digits test (360 images): top-1 ")
    assert f"top-1 {summary['test_acc']:.2f}%" in line
    assert (tmp_path / "ev" / "eval.csv").is_file() and (tmp_path / "ev" / "run.json").is_file()
    assert main(["eval", "--checkpoint", "runs/a/best.safetensors", "--split", "val",
                 "--no-progress"]) == 0
    assert f"top-1 {summary['val_acc']:.2f}%" in capsys.readouterr().out


def test_missing_dataset_is_one_line_exit_2(tmp_path, capsys):
    rc = main(["train", "--model", "base-smallcnn", "--dataset", "cifar100", "--data-dir",
               str(tmp_path / "nodata"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1
    assert err.startswith(f"neurolp: error: cifar100 not found: no cifar-100-python/{{train,test,meta}} "
                          f"in {tmp_path / 'nodata'}. Expected layout: DIR/cifar-100-python/")
    assert "cifar-100-python.tar.gz" in err and "never downloads" in err


def test_corrupted_checkpoint_and_unknown_model(tmp_path, capsys):
    from neurolp.models import create_model
    from neurolp.train.checkpoint import save_checkpoint

    path = save_checkpoint(tmp_path / "m.safetensors",
                           create_model("base-smallcnn", num_classes=10, image_size=16, width=4),
                           {"dataset": "digits"})
    blob = bytearray(path.read_bytes())
    blob[-5] ^= 0xFF
    path.write_bytes(bytes(blob))
    assert main(["eval", "--checkpoint", str(path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "is corrupted: the SHA-256 of its weights" in err and err.count("\n") == 1
    assert main(["eval", "--checkpoint", "lp16-smallcnn"]) == 2
    assert "no checkpoint of lp16-smallcnn in the checkpoint store" in capsys.readouterr().err
    assert main(["checkpoints", "--store", str(tmp_path / "empty")]) == 0
    assert "no checkpoints in" in capsys.readouterr().out


def test_stop_and_resume_from_the_command_line(tmp_path, capsys):
    assert main(["train", "--model", "base-smallcnn", "--out", "runs/b", "--max-steps", "3", *TINY]) == 0
    assert "stopped at step 3 (resume with --resume)" in capsys.readouterr().out
    assert main(["train", "--model", "base-smallcnn", "--out", "runs/b", *TINY]) == 2
    assert "already holds a training run" in capsys.readouterr().err
    # the saved config is reused; the earlier --max-steps (a runtime option) does not stick
    assert main(["train", "--out", "runs/b", "--resume", "--no-progress"]) == 0
    assert "finished, 2/2 epochs" in capsys.readouterr().out
    assert main(["train", "--out", "runs/b", "--resume", "--lr", "0.5"]) == 2
    assert "the config differs from the saved run (lr: saved 0.003, now 0.5)" in capsys.readouterr().err


def test_eval_cifar100c(tmp_path, capsys):
    from neurolp.models import create_model
    from neurolp.train.checkpoint import save_checkpoint

    folder = tmp_path / "c" / "CIFAR-100-C"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for c in ("fog", "frost"):
        np.save(folder / f"{c}.npy", rng.integers(0, 255, (10, 32, 32, 3), dtype=np.uint8))
    np.save(folder / "labels.npy", np.arange(10))
    path = save_checkpoint(tmp_path / "m.safetensors",
                           create_model("lp2-smallcnn", num_classes=100, image_size=32, width=4),
                           {"dataset": "cifar100"})
    assert main(["eval", "--checkpoint", str(path), "--dataset", "cifar100c", "--data-dir",
                 str(tmp_path / "c"), "--severities", "1", "2", "--out", "rob", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "CIFAR-100-C top-1 accuracy" in out and "mean over 4 corruption × severity cells" in out
    assert "note: not evaluated (absent from the data folder): brightness" in out
    import pandas as pd

    df = pd.read_csv(tmp_path / "rob" / "cifar100c.csv")
    assert sorted(df["corruption"].unique()) == ["fog", "frost"] and sorted(df["severity"].unique()) == [1, 2]
    assert (df["n"] == 2).all()
