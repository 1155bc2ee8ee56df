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

OUTPUTS = ("mpnd_fits.csv", "mpnd_summary.csv", "mpnd_stats.csv", "mpnd_stats_matrix.csv",
           "mpnd_stats_matrix_welch_log.csv", "mpnd_pmfs.csv", "mpnd_skipped.csv", "run.json")


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
    stats = pd.read_csv(out / "mpnd_stats.csv", keep_default_na=False, na_values={"p": [""], "p_holm": [""]})
    assert len(stats) == 6 and set(stats.columns) >= {"group_a", "group_b", "test", "testable", "p_holm",
                                                      "stars", "note", "why"}
    # every pair involves a group pinned at p_max: not testable, and the note says so
    assert not stats["testable"].any() and (stats["stars"] == "n/a").all() and stats["p"].isna().all()
    assert stats["note"].str.contains("at the upper bound 64").all()
    mat = pd.read_csv(out / "mpnd_stats_matrix.csv", index_col=0)
    assert list(mat.columns) == ["Mouse V1 L2/3", "Untrained + Noise", "Untrained + Image"]
    assert mat.index.name.startswith("Mann-Whitney")
    summary = pd.read_csv(out / "mpnd_summary.csv").set_index("condition")
    assert summary.loc["untrained-noise", "display"] == "≥ 64"
    assert summary.loc["v1", "ci_lo"] <= summary.loc["v1", "median_p"] <= summary.loc["v1", "ci_hi"]
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
    stats = pd.read_csv(out / "mpnd_stats.csv", keep_default_na=False, na_values={"p": [""]})
    # trained vs untrained: untrained sits at p_max, so the comparison is not testable — but ordered
    assert not stats["testable"].any() and (stats["stars"] == "n/a").all()
    assert stats["note"].str.contains("every trained-noise < every untrained-noise").all()


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


def _fits(out):
    return pd.read_csv(out / "mpnd_fits.csv")


def test_paper_fit_trajectory_and_trained_between_v1_and_untrained(tmp_path):
    """Synthetic trained-like filters (Gaussian-enveloped Gabors) lie between V1 and the untrained
    box under both fits; the paper fit writes its p-trajectory and figure."""
    wfile = tmp_path / "conv1.pth"
    torch.save({"features.0.weight": _gabor_bank(2)}, wfile)
    common = ["--conditions", "v1", "trained-noise", "untrained-noise", "--weights", str(wfile),
              "--n-inputs", "3", "--quiet"]
    out_c, out_p = tmp_path / "conv", tmp_path / "paper"
    assert main(["fit-mpnd", "--out", str(out_c), "--no-figure", *common]) == 0
    assert main(["fit-mpnd", "--out", str(out_p), "--fit", "paper", "--lr", "0.02", "--steps", "300",
                 *common]) == 0
    for out in (out_c, out_p):
        med = _fits(out).groupby("condition")["p"].median()
        assert med["v1"] < med["trained-noise"] < med["untrained-noise"], med
    fits = _fits(out_p)
    assert (fits["fit"] == "paper").all() and (fits["iterations"] == 300).all()
    un = fits[fits.condition == "untrained-noise"]
    assert (un["p"] < 16).all() and not un["converged"].any() and (un["p_optimum"] == 64).all()
    stats = pd.read_csv(out_p / "mpnd_stats.csv")
    mw = stats[(stats.test == "mann-whitney")].set_index(["group_a", "group_b"])
    assert mw.loc[("v1", "untrained-noise"), "testable"]      # nothing at a bound any more
    traj = pd.read_csv(out_p / "mpnd_trajectory.csv")
    assert list(traj.columns) == ["condition", "rf", "step", "p", "sigma", "loss"]
    assert len(traj) == len(fits) * 31 and traj["step"].max() == 300   # steps 0, 10, …, 300
    last = traj[traj.step == 300].merge(fits, on=["condition", "rf"], suffixes=("", "_fit"))
    np.testing.assert_allclose(last["p"], last["p_fit"])
    assert (out_p / "mpnd_trajectory.png").stat().st_size > 20_000
    run = json.loads((out_p / "run.json").read_text())
    assert run["config"]["fit"] == "paper" and run["config"]["lr"] == 0.02 and run["config"]["steps"] == 300


def test_sensitivity_table_shows_lattice_aliasing(tmp_path, capsys):
    wfile = tmp_path / "conv1.pth"
    torch.save({"features.0.weight": _gabor_bank(3)}, wfile)
    out = tmp_path / "out"
    rc = main(["fit-mpnd", "--out", str(out), "--conditions", "v1", "trained-noise", "--weights", str(wfile),
               "--n-inputs", "3", "--sensitivity", "--steps", "40", "--fit", "paper", "--n-boot", "200",
               "--quiet"])
    assert rc == 0
    sens = pd.read_csv(out / "mpnd_sensitivity.csv")
    assert set(sens["family"]) == {"reference", "bin_width", "grid_size", "objective", "fit"}
    assert sorted(sens.loc[sens.family == "bin_width", "bin_width"].unique()) == pytest.approx(
        [0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6])
    free = sens[sens["binning_free"]].set_index("condition")
    assert free.loc["v1", "objective"] == "mle" and free.loc["trained-noise", "binning"] == "tap cells"
    # the paper-fit row on the 0.3 grid exists for the kernel RFs only
    on_grid = sens[(sens.family == "fit") & sens.variant.str.endswith("grid w=0.3")]
    assert on_grid["condition"].tolist() == ["trained-noise"] and (on_grid["fit"] == "paper").all()
    v1 = sens[(sens.condition == "v1") & (sens.family == "bin_width")]["median_p"]
    tr = sens[(sens.condition == "trained-noise") & (sens.family == "bin_width")]["median_p"]
    assert v1.max() / v1.min() < 1.4                          # a point cloud hardly cares about w
    assert tr.max() / tr.min() > 1.4                          # a kernel lattice aliases on a grid
    assert (sens.loc[sens.condition == "v1", "n_few_inputs"] == 3).all()   # neurons 01, 07, 08
    summ = pd.read_csv(out / "mpnd_sensitivity_summary.csv").set_index("condition")
    assert summ.loc["v1", "binning_free_estimate"] == "MLE"
    assert summ.loc["trained-noise", "binning_free_estimate"] == "tap-cell fit"
    assert (out / "mpnd_sensitivity.png").stat().st_size > 20_000
    text = capsys.readouterr().out
    assert "binning-independent estimate = MLE" in text and "own tap cells" in text


def test_untrained_networks_and_per_filter_rfs(tmp_path):
    out = tmp_path / "nets"
    assert main(["fit-mpnd", "--out", str(out), "--conditions", "untrained-noise", "--n-inputs", "4",
                 "--untrained-networks", "2", "--no-figure", "--quiet"]) == 0
    fits = _fits(out)
    assert fits["network_seed"].tolist() == [0, 1, 0, 1]       # input i from network i mod 2
    assert fits["rf"].tolist() == ["input00", "input01", "input02", "input03"]
    wfile = tmp_path / "conv1.pth"
    torch.save({"features.0.weight": _gabor_bank(4)}, wfile)
    out = tmp_path / "pf"
    assert main(["fit-mpnd", "--out", str(out), "--conditions", "trained-noise", "--weights", str(wfile),
                 "--n-inputs", "2", "--rf", "per-filter", "--no-figure", "--quiet"]) == 0
    fits = _fits(out)
    assert len(fits) == 64 and fits["rf"].iloc[0] == "filter00" and (fits["bins"] == "lattice").all()
    assert fits["activity_threshold"].nunique() > 32           # each filter its own θ
    assert json.loads((out / "run.json").read_text())["config"]["rf"] == "per-filter"
