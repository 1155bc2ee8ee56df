"""Sudoku metrics (the paper harness's, Fig. 4b) and solving with a trained network.

Per puzzle, on the network's one-shot prediction (argmax digit of *every* cell, givens included,
as the official harness scores it):

* ``cell_accuracy``  — correct cells / 81 (the harness's "number accuracy");
* ``blank_accuracy`` — correct cells among the blanks (what the network has to infer);
* ``row_validity`` / ``column_validity`` / ``box_validity`` — fraction of the 9 rows / columns /
  boxes that hold 1–9 exactly once (rule validity, not equality with the solution);
* ``puzzle_validity`` — all 27 units valid.

Solving (givens always kept):

* ``oneshot_solved`` — one forward pass, every blank filled with its argmax digit, grid = solution;
* ``iterative_solved`` — repeatedly fill only the blank the network is most confident about (highest
  softmax probability of its argmax digit), re-encode, and run the network again until no blank is
  left (Oinar 2021's "fill one blank at a time"); grid = solution.

Reference points: ``chance_blank_accuracy`` = 1/9, and ``elimination_blank_accuracy``, the
expected accuracy of guessing each blank uniformly among the digits its peers' givens allow.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from torch import nn

from neurolp.sudoku.grid import digit_masks, encode_quizzes, encode_targets, unit_validity

__all__ = ["grid_metrics", "predict", "solve_iterative", "evaluate_puzzles",
           "elimination_baseline", "METRIC_COLUMNS"]

METRIC_COLUMNS = ("loss", "cell_accuracy", "blank_accuracy", "row_validity", "column_validity",
                  "box_validity", "puzzle_validity", "oneshot_solved", "iterative_solved")


def grid_metrics(pred: np.ndarray, quizzes: np.ndarray, solutions: np.ndarray) -> dict[str, np.ndarray]:
    """Per-puzzle metrics of predicted grids ``pred [n, 81]`` (digits 1–9) — see the module doc."""
    pred = np.asarray(pred).reshape(-1, 81)
    q, s = np.asarray(quizzes).reshape(-1, 81), np.asarray(solutions).reshape(-1, 81)
    correct = pred == s
    blank = q == 0
    v = unit_validity(pred)
    n_blank = blank.sum(1)
    return {
        "cell_accuracy": correct.mean(1),
        "blank_accuracy": np.where(n_blank > 0, (correct & blank).sum(1) / np.maximum(n_blank, 1), 1.0),
        "row_validity": v["row"].mean(1),
        "column_validity": v["column"].mean(1),
        "box_validity": v["box"].mean(1),
        "puzzle_validity": (v["row"].all(1) & v["column"].all(1) & v["box"].all(1)).astype(float),
    }


def elimination_baseline(quizzes: np.ndarray) -> float:
    """Expected blank accuracy of guessing each blank among the digits its peers' givens allow."""
    from neurolp.sudoku.grid import CELL_UNITS, POPCOUNT, UNITS

    q = np.asarray(quizzes).reshape(-1, 81)
    m = digit_masks(q)
    unit_or = np.bitwise_or.reduce(m[:, UNITS], axis=2)                  # [n, 27]
    seen = np.bitwise_or.reduce(unit_or[:, CELL_UNITS], axis=2)          # [n, 81]
    free = 9 - POPCOUNT[seen]
    blank = q == 0
    return float((1.0 / np.maximum(free, 1))[blank].mean()) if blank.any() else 1.0


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def predict(model: nn.Module, quizzes: np.ndarray, *, batch_size: int = 512, targets=None,
            autocast=None) -> tuple[np.ndarray, np.ndarray, float | None]:
    """One forward pass per puzzle: ``(digits [n, 81], confidence [n, 81], mean CE loss or None)``.

    ``confidence`` is the softmax probability of the argmax digit; the loss (over all 81 cells, as
    training) is computed when ``targets`` (solutions) are given.
    """
    device = _device_of(model)
    digits, conf = [], []
    loss_sum, cells = 0.0, 0
    for i in range(0, len(quizzes), batch_size):
        x = encode_quizzes(quizzes[i:i + batch_size]).to(device)
        ctx = autocast() if autocast is not None else contextlib.nullcontext()
        with ctx:
            logits = model(x)
        logits = logits.float()
        if targets is not None:
            y = encode_targets(targets[i:i + batch_size]).to(device)
            loss_sum += float(nn.functional.cross_entropy(logits, y, reduction="sum"))
            cells += y.numel()
        p, k = logits.softmax(1).max(1)
        digits.append((k + 1).reshape(len(x), 81).to(torch.uint8).cpu().numpy())
        conf.append(p.reshape(len(x), 81).cpu().numpy())
    loss = loss_sum / cells if targets is not None and cells else None
    return np.concatenate(digits), np.concatenate(conf), loss


@torch.no_grad()
def solve_iterative(model: nn.Module, quizzes: np.ndarray, *, batch_size: int = 512,
                    autocast=None) -> np.ndarray:
    """Fill the most confident blank, one at a time, until the grids are full; ``[n, 81]`` digits."""
    grids = np.array(quizzes, dtype=np.uint8).reshape(-1, 81).copy()
    while True:
        open_ = np.flatnonzero((grids == 0).any(1))
        if open_.size == 0:
            return grids
        digits, conf, _ = predict(model, grids[open_], batch_size=batch_size, autocast=autocast)
        conf = np.where(grids[open_] == 0, conf, -1.0)
        cell = conf.argmax(1)
        grids[open_, cell] = digits[np.arange(open_.size), cell]


def evaluate_puzzles(model: nn.Module, quizzes: np.ndarray, solutions: np.ndarray, *,
                     iterative: int | None = None, batch_size: int = 512, autocast=None,
                     per_puzzle: bool = False):
    """Mean metrics of ``model`` on puzzles (see the module docstring); the model should be in eval
    mode. ``iterative`` limits iterative solving to the first N puzzles (0 skips it, None = all).

    Returns a dict of floats (``per_puzzle=True``: also the per-puzzle arrays under ``"per_puzzle"``).
    """
    q, s = np.asarray(quizzes), np.asarray(solutions)
    pred, _, loss = predict(model, q, batch_size=batch_size, targets=s, autocast=autocast)
    per = grid_metrics(pred, q, s)
    filled = np.where(q == 0, pred, q)
    per["oneshot_solved"] = (filled == s).all(1).astype(float)
    out = {"loss": loss, **{k: float(v.mean()) for k, v in per.items()}}
    n_it = len(q) if iterative is None else min(int(iterative), len(q))
    if n_it > 0:
        solved = solve_iterative(model, q[:n_it], batch_size=batch_size, autocast=autocast)
        it = (solved == s[:n_it]).all(1)
        out["iterative_solved"] = float(it.mean())
        if per_puzzle:
            per["iterative_solved"] = np.concatenate([it.astype(float), np.full(len(q) - n_it, np.nan)])
    else:
        out["iterative_solved"] = None
    out["n"] = int(len(q))
    if per_puzzle:
        out["per_puzzle"] = per
    return out
