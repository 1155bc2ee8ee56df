"""MMV1 fits on the training engine and `neurolp mmv1` end to end (in process)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from safetensors.torch import load_file

from neurolp.cli import main
from neurolp.mmv1 import make_synthetic_dataset
from neurolp.mmv1.fit import make_config, run_fit
from neurolp.mmv1.layout import segment_file
from mmv1_fixtures import write_session

TINY = ["--synthetic-sessions", "1", "--synthetic-bins", "40", "--synthetic-neurons", "4",
        "--min-rate", "0", "--behav-mode", "orig", "--channels", "2", "2", "2", "--hidden-size", "8",
        "--batch-size", "16", "--no-progress"]


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch, one_torch_thread):
    monkeypatch.setenv("NEUROLP_CHECKPOINTS", str(tmp_path / "store"))
    monkeypatch.chdir(tmp_path)


def test_fitted_model_beats_time_shuffled_predictions(tmp_path):
    """LNP responses with a running-speed gain: after 4 short epochs the selected model's test cc
    exceeds the cc of its own predictions shuffled in time by at least 0.3 (measured: 0.46–0.64
    over generator seeds 0–2, shuffled ≈ 0.03; the true rates reach 0.81–0.94)."""
    make_synthetic_dataset(tmp_path / "syn", sessions=1, bins_per_segment=100, neurons=6, speed_gain=3.0,
                           seed=0)
    cfg = make_config("quick", epochs=4, channels=(4, 4, 4), hidden_size=16, dropout=0.0, lr=3e-3,
                      batch_size=32, behav_mode="orig", min_rate_hz=0, progress=False)
    neurons, sessions, table = run_fit(tmp_path / "syn", ["base"], tmp_path / "out", config=cfg,
                                       figures=False, synthetic={}, log=lambda *_: None)
    s = sessions.iloc[0]
    assert s.cc - s.cc_shuffled >= 0.3
    assert abs(s.cc_shuffled) < 0.1 and s.cc_oracle > s.cc
    assert s.complete and s.best_epoch >= 1 and len(neurons) == 6
    # the run folder is the engine's; the test metrics come from the selected (best) checkpoint
    run = tmp_path / "out/runs/syn01_M1/base"
    hist = pd.read_csv(run / "metrics.csv")
    assert {"train_loss", "train_nll", "val_loss", "val_cc", "train_windows_per_s"} <= set(hist.columns)
    assert hist["val_loss"].idxmin() + 1 == s.best_epoch
    meta = json.loads((run / "summary.json").read_text())
    assert meta["session"] == "syn01_M1" and meta["neurons"] == 6 and meta["selection_metric"] == "val_loss"


def test_cli_synthetic_run_outputs_resume_and_max_steps(tmp_path, capsys):
    rc = main(["mmv1", "fit", "--synthetic", "--variants", "base", "lp2", "--epochs", "1", "--out", "a", *TINY])
    assert rc == 0
    out = capsys.readouterr().out
    assert "Table 5 layout (synthetic data, mean (std) over 1 session(s); smoothing within segments)" in out
    a = tmp_path / "a"
    neurons = pd.read_csv(a / "mmv1_neurons.csv")
    assert list(neurons.columns[:5]) == ["session", "variant", "neuron", "cc", "mse"]
    assert set(neurons["variant"]) == {"base", "lp2"} and len(neurons) == 8
    assert {"cc_raw", "cc_shuffled", "cc_oracle", "neuron_id"} <= set(neurons.columns)
    layout = pd.read_csv(a / "table5_mmv1.csv")
    assert list(layout.columns) == ["MMV1", "base", "lp2"] and layout["MMV1"].tolist() == ["cc", "MSE"]
    assert (a / "mmv1_sessions.csv").is_file() and (a / "table5_mmv1_long.csv").is_file()
    for f in ("fig_mmv1_cc.png", "fig_mmv1_traces.png", "run.json", "data.json",
              "predictions/syn01_M1__lp2.npz", "synthetic-data/synthetic.json"):
        assert (a / f).is_file(), f
    with np.load(a / "predictions/syn01_M1__base.npz") as z:
        assert z["pred"].shape == z["true"].shape == (int(z["segment_lengths"].sum()), 4)
    # lp2 really is an Lp model: its checkpoint holds log2p and C of three layers
    tensors = load_file(a / "runs/syn01_M1/lp2/best.safetensors")
    assert sum(k.endswith("log2p") for k in tensors) == 3
    # a second run into the same folder needs --resume; with it nothing is retrained
    assert main(["mmv1", "fit", "--synthetic", "--variants", "base", "--epochs", "1", "--out", "a", *TINY]) == 2
    assert "already holds a run" in capsys.readouterr().err
    before = pd.read_csv(a / "runs/syn01_M1/base/metrics.csv")
    assert main(["mmv1", "fit", "--synthetic", "--variants", "base", "--epochs", "1", "--out", "a", "--resume",
                 *TINY]) == 0
    capsys.readouterr()
    pd.testing.assert_frame_equal(before, pd.read_csv(a / "runs/syn01_M1/base/metrics.csv"))

    # --max-steps stops mid-epoch; --resume then ends with exactly the weights of run "a"
    assert main(["mmv1", "fit", "--synthetic", "--variants", "base", "--epochs", "1", "--max-steps", "3",
                 "--out", "b", *TINY]) == 0
    notes = json.loads((tmp_path / "b/run.json").read_text())["notes"]
    assert any("no finished epoch; scored the weights at step 3" in n for n in notes)
    assert main(["mmv1", "fit", "--synthetic", "--variants", "base", "--epochs", "1", "--out", "b", "--resume",
                 *TINY]) == 0
    wa = load_file(a / "runs/syn01_M1/base/last.safetensors")
    wb = load_file(tmp_path / "b/runs/syn01_M1/base/last.safetensors")
    assert wa.keys() == wb.keys() and all((wa[k] == wb[k]).all() for k in wa)


def test_cli_real_layout_and_info(tmp_path, capsys):
    for name in ("m1", "m2"):
        write_session(tmp_path / "data", name, segments=2, t_train=30, t_test=15, frame_size=(60, 80),
                      rates_per_bin=(0.3, 0.05, 0.2, 0.4), seed=hash(name) % 100)
    assert main(["mmv1", "info", "--data", "data"]) == 0
    out = capsys.readouterr().out
    assert "m1" in out and "m2" in out and "mean training rate >= 3 Hz" in out
    rc = main(["mmv1", "fit", "--data", "data", "--variants", "lp4", "--epochs", "1", "--channels", "2", "2", "2",
               "--hidden-size", "4", "--batch-size", "8", "--seq-len", "2", "--smoothing", "authors",
               "--smooth-bins", "5", "--no-figures", "--no-progress", "--out", "r"])
    assert rc == 0
    assert "smoothing across joins (authors)" in capsys.readouterr().out
    s = pd.read_csv(tmp_path / "r/mmv1_sessions.csv")
    assert s["session"].tolist() == ["m1", "m2"] and s["n_neurons"].tolist() == [3, 3]   # 1 Hz neuron dropped
    assert "cc_oracle" not in s.columns
    rec = json.loads((tmp_path / "r/run.json").read_text())
    assert rec["config"]["across_joins"] is True and rec["config"]["variants"] == ["lp4"]
    assert not (tmp_path / "r/fig_mmv1_cc.png").exists()


def _rc(argv) -> int:
    """``main``'s status; argparse reports a bad option value by exiting (status 2)."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code)


def _one_line_error(capsys) -> str:
    cap = capsys.readouterr()
    assert cap.err.count("\n") == 1 and "Traceback" not in cap.err, cap.err
    return cap.err


@pytest.mark.parametrize("argv,message", [
    (["mmv1"], "choose a subcommand: neurolp mmv1 fit|info"),
    (["mmv1", "fit", "--variants", "base"], "give --data ROOT"),
    (["mmv1", "fit", "--synthetic", "--data", "data"], "--data and --synthetic exclude each other"),
    (["mmv1", "fit", "--data", "nowhere"], "argument --data: nowhere does not exist"),
    (["mmv1", "fit", "--data", "data", "--variants", "lp2", "bas"], "--variants: unknown variant 'bas'"),
    (["mmv1", "fit", "--data", "data", "--sessions", "m9"], "--sessions: m9 not in data (sessions: m1)"),
    (["mmv1", "fit", "--data", "data", "--epochs", "0"], "argument --epochs: must be an integer >= 1, got 0"),
    (["mmv1", "fit", "--data", "data", "--behav-mode", "all_prd"], "did you mean 'all_prod'"),
    (["mmv1", "fit", "--data", "data", "--smoothing", "joins"], "argument --smoothing: unknown smoothing"),
    (["mmv1", "fit", "--data", "data", "--val-fraction", "1"], "argument --val-fraction: must be in (0, 0.9]"),
    (["mmv1", "fit", "--data", "data", "--device", "cuda:0"], "--device: device 'cuda:0' was requested"),
    (["mmv1", "fit", "--data", "data", "--store", "s"], "--store is only used with --publish"),
    (["mmv1", "fit", "--data", "data", "--video", "vid_shift_mean"], "missing file"),
    (["mmv1", "fit", "--synthetic", "--sessions", "m1"], "--sessions: m1 not in the synthetic data set"),
    (["mmv1", "fit", "--data", "data", "--lr", "fast"], "argument --lr: must be a number, got 'fast'"),
    (["mmv1", "info", "--data", "data", "--min-rate", "-1"], "argument --min-rate: must be >= 0, got -1"),
])
def test_bad_inputs_exit_2_with_one_line_and_write_nothing(tmp_path, capsys, argv, message):
    import torch

    if "cuda:0" in argv and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    write_session(tmp_path / "data", "m1", keys=("nsp", "vid_mean", "speed", "pitch", "roll", "phi", "th",
                                                 "eyerad"))
    assert _rc([*argv, "--out", "o"] if argv[-1] != "mmv1" and argv[1] == "fit" else argv) == 2
    err = _one_line_error(capsys)
    assert message in err, err
    assert not (tmp_path / "o").exists()


def test_missing_file_in_a_session_is_named_before_any_work(tmp_path, capsys):
    write_session(tmp_path / "data", "m1")
    segment_file(tmp_path / "data/m1", "test", "eyerad", 1).unlink()
    assert main(["mmv1", "fit", "--data", "data", "--out", "o"]) == 2
    err = _one_line_error(capsys)
    assert "missing file" in err and "m1/test_eyerad_seg_1.npy" in err and "OSF.IO/MSP3A" in err
    assert not (tmp_path / "o").exists()


def test_cli_parser_does_not_import_torch():
    """`neurolp --help` builds every subcommand's parser: the mmv1 one must stay torch-free."""
    import subprocess
    import sys

    code = ("import sys; from neurolp.cli import build_parser; build_parser(); "
            "import neurolp.mmv1; neurolp.mmv1.DataOptions; sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
