"""`neurolp sudoku make | train | analyze` end to end (in process) and their bad inputs."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from neurolp.cli import main
from neurolp.sudoku.puzzles import load_puzzles
from neurolp.sudoku.solver import count_solutions

TINY = ["--depth", "2", "--width", "8", "--batch-size", "20", "--lr", "0.003", "--epochs", "2",
        "--eval-puzzles", "20", "--iterative-puzzles", "3", "--device", "cpu", "--no-progress"]


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch, one_torch_thread):
    monkeypatch.setenv("NEUROLP_CHECKPOINTS", str(tmp_path / "store"))
    monkeypatch.setenv("NEUROLP_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)


def test_make_train_resume_analyze(tmp_path, capsys):
    assert main(["sudoku", "make", "--n", "150", "--blanks", "35-45", "--seed", "3", "--out",
                 "p.csv", "--jobs", "1", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("150 puzzles with a unique solution in ") and "blanks 35-45" in out
    q, s = load_puzzles("p.csv")
    assert q.shape == (150, 81) and all(count_solutions(x) == 1 for x in q[:20])
    record = json.loads((tmp_path / "p.csv.json").read_text())
    assert record["seed"] == 3 and sum(record["blank_histogram"].values()) == 150

    # a smoke run stopped by --max-steps, then resumed with the saved config
    assert main(["sudoku", "train", "--variant", "lp2", "--data", "p.csv", "--out", "run",
                 "--max-steps", "3", *TINY]) == 0
    assert "stopped at step 3 (resume with --resume)" in capsys.readouterr().out
    assert main(["sudoku", "train", "--variant", "lp2", "--data", "p.csv", "--out", "run", *TINY]) == 2
    assert "already holds a training run" in capsys.readouterr().err
    assert main(["sudoku", "train", "--out", "run", "--resume", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "lp2-sudokucnn (2 x 8" in out and "finished, 2/2 epochs" in out and "published: " in out
    m = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert list(m["epoch"]) == [1, 2] and list(m["step"]) == [5, 10]  # 115 train puzzles / 20
    assert main(["sudoku", "train", "--out", "run", "--resume", "--lr", "0.1"]) == 2
    assert "config differs from the saved run (lr: saved 0.003, now 0.1)" in capsys.readouterr().err

    # analysis of the trained Lp model on the run's own held-out puzzles
    assert main(["sudoku", "analyze", "--checkpoint", "run", "--out", "ana", "--deltas", "0", "90",
                 "--controls", "1", "--puzzles", "20", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "lp2-sudokucnn: 16 masks in 2 layers" in out and "20 held-out puzzles of the run" in out
    for name in ("masks.csv", "mask_values.csv", "ablation.csv", "fig5b_conformations.png",
                 "fig9_mask_grid.png", "fig5c_ablation.png", "run.json"):
        assert (tmp_path / "ana" / name).is_file(), name
    masks = pd.read_csv(tmp_path / "ana" / "masks.csv")
    assert set(masks.columns) >= {"layer_index", "channel", "p", "alpha", "theta", "gamma"}
    assert (masks["p"] >= 2.0).all()
    abl = pd.read_csv(tmp_path / "ana" / "ablation.csv")
    assert set(abl["kind"]) == {"targeted", "random", "none"}


def _one_line_error(capsys, argv, message, tmp_path, out="o"):
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse usage errors exit while parsing (same one-line rule)
        rc = exc.code
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.startswith("neurolp: error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert message in err, err
    assert not (tmp_path / out).exists()


@pytest.mark.parametrize("argv, message", [
    (["sudoku", "make", "--n", "0", "--out", "o"], "argument --n: must be an integer >= 1, got 0"),
    (["sudoku", "make", "--n", "5", "--blanks", "70", "--out", "o"], "blanks must satisfy 0 <= LO <= HI <= 64"),
    (["sudoku", "make", "--n", "5", "--blanks", "50-40", "--out", "o"], "got 50-40"),
    (["sudoku", "train", "--generate", "100", "--variant", "lp2x", "--out", "o"], "argument --variant"),
    (["sudoku", "train", "--preset", "paper", "--out", "o"], "--preset paper needs --data CSV"),
    (["sudoku", "train", "--generate", "5", "--out", "o"], "argument --generate: must be an integer >= 10, got 5"),
    (["sudoku", "train", "--data", "missing.csv", "--out", "o"], "missing.csv"),
    (["sudoku", "train", "--generate", "100", "--lr", "-1", "--out", "o"], "argument --lr"),
    (["sudoku", "train", "--generate", "100", "--preset", "huge", "--out", "o"], "argument --preset"),
    (["sudoku", "analyze", "--checkpoint", "nope.safetensors", "--out", "o"], "nope.safetensors"),
    (["sudoku"], "choose a subcommand: neurolp sudoku make|train|analyze"),
])
def test_bad_inputs_are_one_line_exit_2(argv, message, capsys, tmp_path):
    _one_line_error(capsys, argv, message, tmp_path)


def test_cross_option_and_model_errors(tmp_path, capsys):
    from neurolp.sudoku.generate import generate_puzzles
    from neurolp.sudoku.puzzles import save_puzzles
    from neurolp.sudoku.train import sudoku_model
    from neurolp.train.checkpoint import save_checkpoint

    q, s = generate_puzzles(12, 40, seed=0)
    save_puzzles(tmp_path / "p.csv", q, s)
    _one_line_error(capsys, ["sudoku", "train", "--data", "p.csv", "--generate", "100", "--out", "o"],
                    "--data and --generate exclude each other", tmp_path)
    _one_line_error(capsys, ["sudoku", "train", "--data", "p.csv", "--blanks", "30", "--out", "o"],
                    "--blanks applies to --generate only", tmp_path)
    _one_line_error(capsys, ["sudoku", "train", "--resume"], "--resume needs --out DIR", tmp_path)
    bad = tmp_path / "bad.csv"
    bad.write_text("quizzes,solutions\n" + "1" * 81 + "," + "1" * 81 + "\n")
    _one_line_error(capsys, ["sudoku", "train", "--data", "bad.csv", "--out", "o", "--device", "cpu"],
                    "row 1 (line 2) has an invalid solution", tmp_path)
    path = save_checkpoint(tmp_path / "base.safetensors", sudoku_model("base", depth=2, width=4),
                           {"dataset": "sudoku", "normalization": None, "in_chans": 1})
    _one_line_error(capsys, ["sudoku", "analyze", "--checkpoint", str(path), "--data", "p.csv",
                             "--out", "o"], "has no Lp-masks in its blocks", tmp_path)
