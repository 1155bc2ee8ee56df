"""SudokuCNN variants through the registry, training on the engine, and the mask analysis: the p
floor, the loss going down, exact ablation of selected masks and θ/γ selection."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neurolp.layers import LargeConv2d, LpConv2d, lp_layers
from neurolp.mpnd.conformation import C_from_conformation
from neurolp.sudoku.analysis import (ablate_masks, layer_groups, mask_conformations, mask_values,
                                     orientation_ablation, select_orientation_masks)
from neurolp.sudoku.generate import generate_puzzles
from neurolp.sudoku.grid import encode_quizzes, encode_targets
from neurolp.sudoku.train import make_sudoku_config, sudoku_model, train_sudoku

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def puzzles():
    return generate_puzzles(120, (30, 45), seed=11)


def test_variants_through_the_registry():
    x = encode_quizzes(np.zeros((2, 81), dtype=np.uint8))
    assert x.shape == (2, 1, 9, 9) and float(x[0, 0, 0, 0]) == -0.5
    assert encode_targets(np.full((1, 81), 9, dtype=np.uint8)).unique().tolist() == [8]
    base = sudoku_model("base", depth=3, width=8)
    assert base(x).shape == (2, 9, 9, 9) and base.blocks[0].conv.kernel_size == (3, 3)
    assert base.neurolp_spec["name"] == "base-sudokucnn"
    large = sudoku_model("large", depth=3, width=8)
    assert isinstance(large.blocks[1].conv, LargeConv2d) and large.blocks[1].conv.kernel_size == (7, 7)
    lp2 = sudoku_model("lp2", depth=3, width=8)
    layers = lp_layers(lp2)
    assert [n for n, _ in layers] == ["blocks.0.conv", "blocks.1.conv", "blocks.2.conv", "head"]
    assert all(m.p_min == 2.0 for _, m in layers) and lp2.head.kernel_size == (3, 3)  # official: head too
    assert lp2(x).shape == (2, 9, 9, 9)
    frozen = sudoku_model("lp256f", depth=3, width=8)
    assert not any(m.C.requires_grad or m.log2p.requires_grad for _, m in lp_layers(frozen))
    lp16 = sudoku_model("lp16", depth=3, width=8)
    assert float(lp_layers(lp16)[0][1].p[0].detach()) == pytest.approx(16.0)


def test_few_steps_reduce_the_loss_and_p_stays_floored(tmp_path, puzzles):
    from neurolp.sudoku.puzzles import save_puzzles

    q, s = puzzles
    csv = save_puzzles(tmp_path / "p.csv", q, s)
    cfg = make_sudoku_config("quick", variant="lp2", data=str(csv), depth=3, width=16, epochs=4,
                             batch_size=16, lr=3e-3, val_fraction=0.1, iterative_puzzles=4,
                             device="cpu", progress=False, eval_batch_size=64)
    res = train_sudoku(cfg, tmp_path / "run", publish=False)
    h = res.history
    assert list(h["step"]) == [5, 10, 15, 20]                      # 86 training puzzles / 16
    assert h["train_loss"].iloc[-1] < h["train_loss"].iloc[0] < 2.3
    assert h["loss"].iloc[-1] < h["loss"].iloc[0]                  # held-out loss falls too
    for col in ("cell_accuracy", "row_validity", "column_validity", "box_validity",
                "puzzle_validity", "iterative_solved", "val_cell_accuracy"):
        assert h[col].between(0, 1).all(), col
    s_ = res.summary
    assert s_["selected_on"] == "val" and s_["split_sizes"] == {"train": 86, "val": 10, "test": 24}
    ps = torch.cat([m.p.detach() for _, m in lp_layers(res.model)])
    assert ps.min() >= 2.0 and not torch.allclose(ps, torch.full_like(ps, 2.0))  # trained, floored
    header = (tmp_path / "run" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"epoch", "step", "loss", "cell_accuracy", "row_validity", "column_validity",
            "box_validity", "puzzle_validity"} <= set(header)


def _set_masks(layer: LpConv2d, confs):
    with torch.no_grad():
        for ch, (alpha, theta, gamma) in enumerate(confs):
            layer.C[ch] = torch.as_tensor(C_from_conformation(alpha, theta, gamma), dtype=torch.float32)


def test_orientation_selection_and_exact_ablation(puzzles):
    model = sudoku_model("lp2", depth=4, width=4).eval()
    layers = [m for _, m in lp_layers(model)]
    # layer 1: vertical & distorted, horizontal & distorted, vertical but round, near-vertical
    _set_masks(layers[0], [(2.0, 90.0, 5.0), (2.0, 0.0, 5.0), (2.0, 90.0, 1.5), (2.0, 80.0, 4.0)])
    _set_masks(layers[3], [(2.0, 95.0, 6.0), (2.0, 45.0, 6.0), (2.0, 179.0, 6.0), (2.0, 100.0, 2.9)])
    table = mask_conformations(model)
    assert sorted(table["layer_index"].unique()) == [1, 2, 3, 4] and "head" not in set(table["module"])
    sel = select_orientation_masks(table, 5, layers=[1, 4])
    assert {k: v.tolist() for k, v in sel.items()} == {1: [0], 4: [0]}
    sel = select_orientation_masks(table, 10, layers=[1, 4])
    assert {k: v.tolist() for k, v in sel.items()} == {1: [0, 3], 4: [0]}
    sel = select_orientation_masks(table, 90, layers=[1, 4])      # every orientation-selective mask
    assert {k: v.tolist() for k, v in sel.items()} == {1: [0, 1, 3], 4: [0, 1, 2]}
    assert layer_groups(10) == {"all": list(range(1, 11)), "first": [1, 2, 3, 4, 5],
                                "second": [6, 7, 8, 9, 10]}

    ablated = ablate_masks(model, {1: np.array([0, 3]), 4: np.array([2])})
    before = [m.masked_weight().detach() for _, m in lp_layers(model)]
    after = [m.masked_weight().detach() for _, m in lp_layers(ablated)]
    for k, (b, a) in enumerate(zip(before, after)):
        zeroed = {0: [0, 3], 3: [2]}.get(k, [])
        for ch in range(b.shape[0]):
            if ch in zeroed:
                assert a[ch].abs().sum() == 0 and b[ch].abs().sum() > 0
            else:
                assert torch.equal(a[ch], b[ch])
    assert lp_layers(model)[0][1].weight[0].abs().sum() > 0         # the original is untouched
    # the ablated filters put out their bias only
    x = encode_quizzes(puzzles[0][:3])
    conv = lp_layers(ablated)[0][1]
    out = conv(ablated.blocks[0].pad(x))
    assert torch.allclose(out[:, 0], conv.bias[0].expand_as(out[:, 0]))
    values = mask_values(model, channels=2)
    assert len(values) == 4 * 2 * 49 and values["value"].between(0, 1).all()


def test_orientation_ablation_table_and_matched_control(puzzles):
    torch.manual_seed(0)
    model = sudoku_model("lp2", depth=2, width=6).eval()
    _set_masks(lp_layers(model)[0][1], [(2.0, 90.0, 5.0)] * 3 + [(2.0, 0.0, 5.0)] * 3)
    q, s = puzzles[0][:20], puzzles[1][:20]
    df = orientation_ablation(model, q, s, deltas=(0, 45), controls=2, seed=0)
    t = df[(df["kind"] == "targeted") & (df["group"] == "all")].set_index("delta")
    assert t.loc[0.0, "n_ablated"] == 3 and t.loc[45.0, "n_ablated"] == 3
    r = df[(df["kind"] == "random") & (df["group"] == "all")]
    assert len(r) == 4 and (r["n_ablated"] == 3).all()
    assert set(df["group"]) == {"all", "first", "second", "none"}
    assert df[(df["group"] == "second")]["n_ablated"].eq(0).all()   # layer 2 has round masks only
    for col in ("row_validity", "column_validity", "box_validity"):
        assert df[col].between(0, 1).all()


def test_sudoku_resume_is_bit_exact(tmp_path, puzzles):
    from neurolp.sudoku.puzzles import save_puzzles

    csv = save_puzzles(tmp_path / "p.csv", *puzzles)
    cfg = make_sudoku_config("quick", variant="lp2", data=str(csv), depth=2, width=8, epochs=2,
                             batch_size=20, val_fraction=0.1, eval_puzzles=10, iterative_puzzles=0,
                             device="cpu", progress=False)
    full = train_sudoku(cfg, tmp_path / "full", publish=False)
    train_sudoku(cfg.replace(max_steps=6), tmp_path / "cut", publish=False)   # mid epoch 2
    again = train_sudoku(cfg, tmp_path / "cut", resume=True, publish=False)
    a, b = full.model.state_dict(), again.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    drop = ["epoch_time_s", "train_puzzles_per_s"]
    assert again.history.drop(columns=drop).equals(full.history.drop(columns=drop))


def test_large_p_masks_have_no_subnormal_values():
    """lp16 masks once held values ~1e-40 whose products made CPU training ~11x slower."""
    model = sudoku_model("lp16", depth=2, width=8)
    for _, m in lp_layers(model):
        with torch.no_grad():                               # |C·(1, 0)|^16 = 1.329^16 ≈ 94.5:
            m.C.copy_(1.329 * torch.eye(2).expand_as(m.C))  # exp(-94.5) ≈ 9e-42 is subnormal
        mask = m.mask().detach()
        assert ((mask == 0) | (mask >= 1e-20)).all()
        assert (mask == 0).any() and mask.max() == 1.0
