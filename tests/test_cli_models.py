"""`neurolp models` and the CLI's error convention."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from neurolp.cli import main


def test_models_lists_variants_with_counts(capsys, tmp_path):
    csv = tmp_path / "models.csv"
    assert main(["models", "resnet18", "--image-size", "32", "--num-classes", "100", "--csv", str(csv)]) == 0
    out = capsys.readouterr().out
    assert "lp256f-resnet18" in out and "CIFAR stems" in out
    df = pd.read_csv(csv).set_index("name")
    assert list(df.index) == ["base-resnet18", "large-resnet18", "lp2-resnet18", "lp4-resnet18",
                              "lp8-resnet18", "lp16-resnet18", "lp256f-resnet18"]
    assert df.loc["base-resnet18", "GMACs"] == pytest.approx(0.140, abs=0.001)
    assert df.loc["lp2-resnet18", "params_M"] > df.loc["large-resnet18", "params_M"]  # + C and log2p
    assert df.loc["lp256f-resnet18", "trainable_M"] == pytest.approx(df.loc["large-resnet18", "params_M"])


@pytest.mark.parametrize("argv, message", [
    (["models", "lp2-resnet19"], "unknown architecture 'resnet19'"),
    (["models", "--image-size", "4"], "--image-size: must be an integer in [8, 1024], got 4"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("neurolp: error: ") and message in err and err.count("\n") == 1


def test_usage_errors_exit_2_and_module_entry_point():
    r = subprocess.run([sys.executable, "-m", "neurolp", "models", "--image-size", "x"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "argument --image-size: must be an integer, got 'x'" in r.stderr
    r = subprocess.run([sys.executable, "-m", "neurolp", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "models" in r.stdout
