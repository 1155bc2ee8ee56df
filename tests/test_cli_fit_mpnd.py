"""`neurolp fit-mpnd` end to end on small subsets (in-process; no network, no real weights)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from neurolp.cli import main
from test_rf_rossi import write_rossi

OUTPUTS = ("mpnd_fits.csv", "mpnd_stats.csv", "mpnd_stats_matrix.csv", "mpnd_pmfs.csv", "mpnd_skipped.csv",
           "run.json")


@pytest.fixture(autouse=True)
def empty_torch_home(tmp_path, monkeypatch):
    """A torch hub cache that holds no weights unless a test puts them there."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch" / "hub" / "checkpoints"


@pytest.fixture
def image_dir(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (240, 260, 3), dtype=np.uint8)).save(folder / f"im{i}.png")
    return folder


def _gabor_bank(seed=0):
    """A 'trained-like' conv1: 64 filters with Gaussian envelopes (centre-weighted, unlike random init)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[-5:6, -5:6]
    w = np.zeros((64, 3, 11, 11))
    for o in range(64):
        th, f, sg = rng.uniform(0, np.pi), rng.uniform(0.1, 0.4), rng.uniform(1.5, 3.0)
        g = np.exp(-(xx ** 2 + yy ** 2) / (2 * sg ** 2)) * np.cos(2 * np.pi * f * (xx * np.cos(th) + yy * np.sin(th)))
        w[o] = g[None] * rng.normal(1, 0.3, (3, 1, 1))
    return torch.tensor(w, dtype=torch.float32)


def test_small_run_writes_everything(tmp_path, image_dir, capsys):
    rng = np.random.default_rng(1)
    pts = lambda n: np.c_[rng.normal(0, 100, (n, 2)), rng.uniform(50, 500, n)]  # noqa: E731
    rossi = write_rossi(tmp_path / "Data", {1: (120, pts(40), pts(20)), 2: (130, pts(35), pts(25)),
                                            3: (140, pts(50), pts(10))})
    out = tmp_path / "out"
    rc = main(["fit-mpnd", "--out", str(out), "--conditions", "v1,untrained-noise", "untrained-image",
               "--rossi-dir", str(rossi), "--images", str(image_dir), "--n-inputs", "3", "--quiet"])
    assert rc == 0
    for name in OUTPUTS + ("fig1_mpnd.png",):
        assert (out / name).is_file(), name
    assert (out / "fig1_mpnd.png").stat().st_size > 20_000
    fits = pd.read_csv(out / "mpnd_fits.csv")
    assert fits.groupby("condition").size().to_dict() == {"v1": 3, "untrained-noise": 3, "untrained-image": 3}
    for col in ("condition", "rf", "n_points", "p", "sigma", "alpha", "theta", "gamma", "loss", "converged"):
        assert col in fits.columns
    v1 = fits[fits.condition == "v1"]
    assert v1["n_points"].tolist() == [60, 60, 60]
    assert v1["p"].between(1.2, 4.0).all()                          # Gaussian offsets → p ≈ 2
    art = fits[fits.condition != "v1"]
    assert (art["p"] == 64).all() and art["p_at_bound"].all()         # random-init conv1: a box
    assert (art["n_points"] == 121).all() and (art["bins"] == "lattice").all()
    assert fits["converged"].all()
    stats = pd.read_csv(out / "mpnd_stats.csv")
    assert len(stats) == 3 and set(stats.columns) >= {"group_a", "group_b", "p_holm", "stars"}
    mat = pd.read_csv(out / "mpnd_stats_matrix.csv", index_col=0)
    assert list(mat.columns) == ["Mouse V1 L2/3", "Untrained + Noise", "Untrained + Image"]
    pmfs = pd.read_csv(out / "mpnd_pmfs.csv")
    assert set(pmfs.condition) == {"v1", "untrained-noise", "untrained-image"}
    assert pmfs.groupby("condition")["empirical"].sum().between(0.95, 1.0 + 1e-9).all()
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["n_inputs"] == 3 and run["config"]["objective"] == "pmf"
    assert run["skipped"] == []
    printed = capsys.readouterr().out
    assert "Mouse V1 L2/3" in printed and "median p" in printed
    assert not list(tmp_path.glob(".out.staging-*"))


def test_trained_conditions_skipped_without_weights(tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["fit-mpnd", "--out", str(out), "--conditions", "v1", "trained-noise", "--n-inputs", "2",
               "--no-figure", "--quiet"])
    assert rc == 0
    skipped = pd.read_csv(out / "mpnd_skipped.csv")
    assert skipped["condition"].tolist() == ["trained-noise"]
    assert "alexnet-owt-7be5be79.pth" in skipped["reason"][0]
    assert json.loads((out / "run.json").read_text())["skipped"][0]["condition"] == "trained-noise"
    text = capsys.readouterr().out
    assert "skipped trained-noise" in text and "alexnet-owt-7be5be79.pth" in text
    fits = pd.read_csv(out / "mpnd_fits.csv")
    assert set(fits.condition) == {"v1"} and len(fits) == 17     # embedded Rossi data
    assert 1.8 < fits["p"].median() < 2.5


def test_trained_weights_from_hub_cache(tmp_path, empty_torch_home):
    empty_torch_home.mkdir(parents=True)
    torch.save({"features.0.weight": _gabor_bank(), "features.0.bias": torch.zeros(64)},
               empty_torch_home / "alexnet-owt-7be5be79.pth")
    out = tmp_path / "out"
    rc = main(["fit-mpnd", "--out", str(out), "--conditions", "trained-noise", "untrained-noise",
               "--n-inputs", "3", "--no-figure", "--quiet"])
    assert rc == 0
    fits = pd.read_csv(out / "mpnd_fits.csv")
    trained = fits.loc[fits.condition == "trained-noise", "p"]
    assert len(trained) == 3 and trained.between(1.5, 6.0).all()   # centre-weighted filters: low p
    assert (fits.loc[fits.condition == "untrained-noise", "p"] == 64).all()
    assert pd.read_csv(out / "mpnd_skipped.csv").empty
    stats = pd.read_csv(out / "mpnd_stats.csv")
    assert stats["stars"].iloc[0] == "***"


def test_explicit_weights_file_and_mle(tmp_path):
    wfile = tmp_path / "conv1.pth"
    torch.save({"features.0.weight": _gabor_bank(1)}, wfile)
    out = tmp_path / "out"
    rc = main(["fit-mpnd", "--out", str(out), "--conditions", "trained-noise", "--weights", str(wfile),
               "--n-inputs", "2", "--objective", "mle", "--no-figure", "--quiet"])
    assert rc == 0
    fits = pd.read_csv(out / "mpnd_fits.csv")
    assert (fits["objective"] == "mle").all() and fits["p"].between(1.5, 6.0).all()


@pytest.mark.parametrize("argv,message", [
    (["--conditions", "v2"], "unknown condition 'v2'; valid conditions: v1, v1-ex"),
    (["--conditions", "v1", "--rossi-dir", "{tmp}/nowhere"], "nowhere does not exist"),
    (["--conditions", "untrained-image", "--images", "{tmp}/nowhere", "--n-inputs", "2"],
     "argument --images: .*nowhere does not exist"),
    (["--conditions", "trained-image"], "every condition was skipped.*alexnet-owt-7be5be79.pth"),
    (["--conditions", "v1", "--n-inputs", "1"], r"--n-inputs: must be an integer in \[2, 1000\], got 1"),
])
def test_bad_input_exits_2_and_writes_nothing(tmp_path, capsys, argv, message):
    import re

    out = tmp_path / "out"
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    rc = main(["fit-mpnd", "--out", str(out), "--quiet", "--no-figure", *argv])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("neurolp: error: ") and err.count("\n") == 1
    assert re.search(message, err), err
    assert not out.exists()
    assert not list(tmp_path.glob(".out.staging-*"))


def test_malformed_mat_is_named(tmp_path, capsys):
    rossi = write_rossi(tmp_path / "Data", {1: (120, np.ones((3, 3)), np.ones((3, 3)))})
    (rossi / "spatialIN_01.mat").write_bytes(b"garbage" * 20)
    out = tmp_path / "out"
    (out).mkdir()
    (out / "keep.txt").write_text("an earlier result")
    rc = main(["fit-mpnd", "--out", str(out), "--conditions", "v1", "--rossi-dir", str(rossi), "--quiet"])
    assert rc == 2
    assert "spatialIN_01.mat is not a readable MATLAB 5 MAT-file" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]   # nothing half-written, nothing lost
