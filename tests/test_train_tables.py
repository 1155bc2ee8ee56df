"""Evaluation and tables: exact accuracies, CIFAR-100-C, Table 1 statistics, Table 2 wins,
Tables 6–7 p distributions."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from neurolp.layers import lp_layers
from neurolp.models import create_model
from neurolp.train.checkpoint import save_checkpoint
from neurolp.train.evaluate import corruption_wins, evaluate, evaluate_corruptions
from neurolp.train.store import publish_checkpoint
from neurolp.train.tables import (classification_table, collect_runs, format_p_table, format_table,
                                  p_distribution, p_summary, stars, variant_label, welch_test)


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models: see conftest


def _constant_model(name, num_classes, label, size=32):
    """A registry model whose logits are a fixed bias: ``label`` first, then 0, 1, 2, ..."""
    model = create_model(name, num_classes=num_classes, image_size=size, width=4)
    with torch.no_grad():
        model[3].weight.zero_()
        model[3].bias.copy_(-0.1 * torch.arange(num_classes, dtype=torch.float32))
        model[3].bias[label] = 5.0
    return model


def test_evaluate_exact_accuracy():
    model = _constant_model("base-smallcnn", 10, 3)
    y = torch.tensor([3, 3, 1, 2, 3, 0, 9, 3])
    loader = [(torch.randn(4, 3, 32, 32), y[:4]), (torch.randn(4, 3, 32, 32), y[4:])]
    model.train()
    res = evaluate(model, loader)
    assert res["acc"] == pytest.approx(100 * 4 / 8) and res["n"] == 8
    assert res["top5"] == pytest.approx(100 * 7 / 8)  # top-5 is {3, 0, 1, 2, 4}: only 9 misses
    logp = torch.log_softmax(model[3].bias.detach().double(), 0)
    assert res["loss"] == pytest.approx(float(-logp[y].mean()), rel=1e-6)
    assert model.training  # evaluate restores the mode it found


def test_cifar100c_per_corruption_and_severity(tmp_path):
    folder = tmp_path / "CIFAR-100-C"
    folder.mkdir()
    n = 10
    labels = np.concatenate([np.r_[np.full(s + 1, 7), np.arange(n - s - 1)] for s in range(5)])
    for c in ("fog", "snow"):
        np.save(folder / f"{c}.npy", np.random.default_rng(0).integers(0, 255, (5 * n, 32, 32, 3),
                                                                       dtype=np.uint8))
    np.save(folder / "labels.npy", labels)
    path = save_checkpoint(tmp_path / "m.safetensors", _constant_model("lp2-smallcnn", 100, 7),
                           {"dataset": "cifar100", "seed": 4})
    df = evaluate_corruptions(path, tmp_path, device="cpu", progress=False)
    assert list(df["corruption"]) == ["fog"] * 5 + ["snow"] * 5
    assert list(df["severity"]) == [1, 2, 3, 4, 5] * 2
    # severity s has s + 1 images of class 7 out of 10 (plus one more when arange hits 7)
    expected = [100 * (s + 1 + (7 < n - s - 1)) / n for s in range(5)]
    assert df["acc"].tolist() == pytest.approx(expected * 2)
    assert "brightness" in df.attrs["missing"] and df["seed"].eq(4).all()
    only = evaluate_corruptions(path, tmp_path, corruptions=["snow"], severities=[2], device="cpu",
                                progress=False)
    assert len(only) == 1 and only["acc"].iloc[0] == pytest.approx(expected[1])


def test_corruption_wins_counts_table2_style():
    rows = []
    accs = {  # arch -> variant -> per-corruption accuracy (two seeds averaged)
        "resnet18": {"base": [50, 60, 40], "large": [55, 59, 41], "lp2": [54, 62, 41]},
        "vgg16": {"base": [30, 30, 30], "large": [20, 20, 20], "lp2": [31, 35, 29]},
    }
    for arch, d in accs.items():
        for variant, vals in d.items():
            for c, v in zip(("fog", "snow", "zoom_blur"), vals):
                for seed, jitter in ((0, -0.5), (1, 0.5)):
                    rows.append({"arch": arch, "variant": variant, "seed": seed, "corruption": c,
                                 "severity": 1, "acc": v + jitter})
                rows.append({"arch": arch, "variant": variant, "seed": 0, "corruption": c,
                             "severity": 2, "acc": 0.0})
    wins = corruption_wins(pd.DataFrame(rows))
    assert wins.loc["resnet18"].to_dict() == {"base": 0, "large": 2, "lp2": 2}  # tie on zoom_blur
    assert wins.loc["vgg16"].to_dict() == {"base": 1, "large": 0, "lp2": 2}
    assert wins.loc["Win Counts"].to_dict() == {"base": 1, "large": 2, "lp2": 4}


def _welch_by_hand(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    t = (a.mean() - b.mean()) / math.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    return t, 2 * stats.t.sf(abs(t), dof)


def test_welch_and_stars():
    a, b = [73.9, 73.7, 74.0, 73.8, 73.95], [71.2, 71.0, 71.4, 71.3, 71.1]
    t, p = welch_test(a, b)
    t2, p2 = _welch_by_hand(a, b)
    assert t == pytest.approx(t2) and p == pytest.approx(p2)
    assert [stars(x) for x in (0.0005, 0.001, 0.005, 0.01, 0.03, 0.05, 0.2)] == \
        ["***", "**", "**", "*", "*", "ns", "ns"]
    assert math.isnan(welch_test([1.0], [1.0, 2.0])[1]) and stars(math.nan) == ""


def _runs():
    rng = np.random.default_rng(0)
    rows = []
    means = {"base": 71.2, "large": 70.0, "lp256f": 71.25, "lp4": 73.0, "lp2": 73.9}
    for variant, m in means.items():
        for seed in range(5):
            for arch, shift in (("resnet18", 0.0), ("alexnet", -5.0)):
                rows.append({"dataset": "cifar100", "arch": arch, "variant": variant, "seed": seed,
                             "test_acc": m + shift + rng.normal(0, 0.2)})
    return pd.DataFrame(rows)


def test_classification_table_and_rendering():
    runs = _runs()
    table = classification_table(runs)
    assert list(table[table["arch"] == "alexnet"]["variant"]) == ["base", "large", "lp256f", "lp4", "lp2"]
    r = table[(table["arch"] == "resnet18") & (table["variant"] == "lp2")].iloc[0]
    a = runs[(runs["arch"] == "resnet18") & (runs["variant"] == "lp2")]["test_acc"]
    b = runs[(runs["arch"] == "resnet18") & (runs["variant"] == "base")]["test_acc"]
    assert r["mean"] == pytest.approx(a.mean()) and r["std"] == pytest.approx(a.std(ddof=1))
    assert r["p_value"] == pytest.approx(_welch_by_hand(a, b)[1])
    assert r["stars"] == "***" and r["rank"] == 1 and r["delta"] == pytest.approx(a.mean() - b.mean())
    base = table[(table["arch"] == "resnet18") & (table["variant"] == "base")].iloc[0]
    assert base["stars"] == "" and math.isnan(base["p_value"])
    md = format_table(table, "markdown")
    assert "| Layer | AlexNet | ResNet-18 |" in md  # the paper's column order
    lp2 = next(line for line in md.splitlines() if line.startswith("| Lp-Conv p_init=2 |"))
    assert lp2.count(" **") == 2 and lp2.count("\\*\\*\\* **") == 2  # bold best, escaped stars
    assert next(line for line in md.splitlines() if "p_init=4" in line).count("<u>") == 2
    assert "Lp-Conv† p_init=256" in md
    large = next(line for line in md.splitlines() if line.startswith("| (Large)"))
    assert large.count(" ↓ |") == 2  # significantly below base, the paper's red
    tex = format_table(table, "latex")
    assert "\\textsuperscript{***}\\textbf{" in tex and "\\underline{" in tex and "$\\pm$" in tex
    assert "\\textcolor{red}{" in tex
    assert "$L_p$-Conv$^\\dagger$ $p_{init}=256$" in tex


def _lp_checkpoint(tmp_path, name, seed, p_by_layer):
    torch.manual_seed(seed)
    model = create_model("lp2-smallcnn", num_classes=10, image_size=16, width=4)
    with torch.no_grad():
        for (_, layer), ps in zip(lp_layers(model), p_by_layer):
            layer.log2p.copy_(torch.log2(torch.as_tensor(ps, dtype=torch.float32)))
    return save_checkpoint(tmp_path / name, model, {"dataset": "digits", "seed": seed,
                                                    "metrics": {"test_acc": 90.0 + seed}})


def test_p_distribution_tables(tmp_path):
    layer_ps = [[1.5] * 2 + [2.5] * 2, [2.0] * 8, [3.0] * 16, [1.0] * 16]  # widths 4, 8, 16, 16
    a = _lp_checkpoint(tmp_path / "runs", "a.safetensors", 0, layer_ps)
    _lp_checkpoint(tmp_path / "runs", "b.safetensors", 1, [[2.0] * 4, [2.0] * 8, [3.0] * 16, [1.0] * 16])
    publish_checkpoint(a, tmp_path / "runs" / "store")  # same weights again: counted once
    save_checkpoint(tmp_path / "runs" / "base.safetensors",
                    create_model("base-smallcnn", num_classes=10, image_size=16, width=4),
                    {"dataset": "digits", "seed": 0})
    runs = collect_runs([tmp_path / "runs"])
    assert len(runs) == 3 and sorted(runs["variant"]) == ["base", "lp2", "lp2"]
    masks = p_distribution([tmp_path / "runs"])
    assert len(masks.attrs["skipped"]) == 1  # the base model has no Lp-masks
    assert masks["path"].nunique() == 2 and len(masks) == 2 * (4 + 8 + 16 + 16)
    summary = p_summary(masks)
    first = summary[summary["depth"] == 1].iloc[0]
    pooled = np.r_[[1.5] * 2, [2.5] * 2, [2.0] * 4]
    assert first["median"] == pytest.approx(np.median(pooled))
    assert first["std"] == pytest.approx(pooled.std(ddof=1), rel=1e-5)
    assert first["n_runs"] == 2 and first["n_masks"] == 8 and first["p_init"] == 2
    md = format_p_table(summary)
    assert f"| SmallCNN | 1 | 2.00 ± {pooled.std(ddof=1):.2f} |" in md and "|  | 4 | 1.00 ± 0.00 |" in md
    assert "$\\pm$" in format_p_table(summary, "latex")


def test_variant_labels():
    assert [variant_label(n) for n in ("base-vgg16", "large-alexnet", "lp2-resnet18",
                                       "lp256f-convnext_tiny", "lp2.5-resnext50_32x4d")] == \
        ["base", "large", "lp2", "lp256f", "lp2.5"]
