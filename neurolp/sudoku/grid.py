"""9×9 Sudoku grids as arrays: the 27 units, validity checks, and the paper harness's encoding.

Grids are row-major ``uint8`` arrays of 81 digits (``0`` = blank), one puzzle per row:
``quizzes [n, 81]`` and ``solutions [n, 81]``. Every check is vectorised over puzzles with 9-bit
digit masks (bit ``d − 1`` for digit ``d``): a unit is valid when the OR of its nine cells' masks
is ``0x1FF`` and no digit repeats, i.e. it holds 1–9 exactly once.
"""

from __future__ import annotations

import numpy as np

#: The five SudokuCNN variants of the paper (§5); any lp{p} / lp{p}f also works.
VARIANTS = ("base", "large", "lp2", "lp16", "lp256f")

__all__ = ["ROWS", "COLS", "BOXES", "UNITS", "CELL_UNITS", "PEERS", "FULL", "POPCOUNT",
           "digit_masks", "unit_validity", "valid_solutions", "consistent", "encode_quizzes",
           "encode_targets", "format_grid"]

_IDX = np.arange(81).reshape(9, 9)
ROWS = _IDX.copy()                                        # [9, 9] cell indices of each row
COLS = _IDX.T.copy()                                      # [9, 9] of each column
BOXES = np.array([_IDX[r:r + 3, c:c + 3].ravel() for r in (0, 3, 6) for c in (0, 3, 6)])
UNITS = np.concatenate([ROWS, COLS, BOXES])               # [27, 9]: rows 0-8, cols 9-17, boxes 18-26
CELL_UNITS = np.array([[i // 9, 9 + i % 9, 18 + 3 * (i // 27) + (i % 9) // 3] for i in range(81)])
PEERS = [tuple(sorted(set(UNITS[CELL_UNITS[i]].ravel()) - {i})) for i in range(81)]  # 20 each
FULL = 0x1FF
#: Number of set bits (candidate digits) of each 9-bit mask.
POPCOUNT = np.array([bin(m).count("1") for m in range(FULL + 1)], dtype=np.int64)


_MASK_TABLE = np.array([0] + [1 << d for d in range(9)] + [0] * 246, dtype=np.uint16)


def digit_masks(grids: np.ndarray) -> np.ndarray:
    """``uint16`` masks ``1 << (d − 1)`` of digits 1–9; 0 for blanks (and anything out of range)."""
    g = np.asarray(grids)
    if g.dtype != np.uint8:
        g = np.where((g >= 0) & (g <= 9), g, 0).astype(np.uint8)
    return _MASK_TABLE[g]


def _or9(parts) -> np.ndarray:
    acc = parts[0].copy()
    for p in parts[1:]:
        acc |= p
    return acc


def unit_validity(grids: np.ndarray, chunk: int = 65536) -> dict[str, np.ndarray]:
    """Per puzzle, which rows / columns / boxes hold 1–9 exactly once.

    Returns ``{"row": [n, 9], "column": [n, 9], "box": [n, 9]}`` boolean arrays (a unit with a
    blank or a repeated digit is invalid: nine cells hold nine distinct digits iff the OR of their
    masks is full).
    """
    g = np.asarray(grids).reshape(-1, 81)
    out = {k: np.empty((len(g), 9), dtype=bool) for k in ("row", "column", "box")}
    for i in range(0, len(g), chunk):
        m = digit_masks(g[i:i + chunk]).reshape(-1, 9, 9)                 # [n, row, col]
        out["row"][i:i + chunk] = _or9([m[:, :, c] for c in range(9)]) == FULL
        out["column"][i:i + chunk] = _or9([m[:, r, :] for r in range(9)]) == FULL
        b = m.reshape(-1, 3, 3, 3, 3)                                      # [n, band, r, stack, c]
        box = _or9([b[:, :, r, :, c] for r in range(3) for c in range(3)])  # [n, band, stack]
        out["box"][i:i + chunk] = box.reshape(-1, 9) == FULL
    return out


def valid_solutions(solutions: np.ndarray) -> np.ndarray:
    """Boolean per grid: every row, column and box holds 1–9 exactly once."""
    v = unit_validity(solutions)
    return v["row"].all(1) & v["column"].all(1) & v["box"].all(1)


def consistent(quizzes: np.ndarray, solutions: np.ndarray) -> np.ndarray:
    """Boolean per puzzle: every given digit of the quiz equals the solution's digit there."""
    q, s = np.asarray(quizzes), np.asarray(solutions)
    return ((q == 0) | (q == s)).all(axis=1)


def encode_quizzes(quizzes: np.ndarray):
    """The paper harness's input: ``digit / 9 − 0.5`` as ``float32 [n, 1, 9, 9]`` (blank = −0.5)."""
    import torch

    q = torch.as_tensor(np.asarray(quizzes, dtype=np.uint8).reshape(-1, 1, 9, 9))
    return q.float() / 9.0 - 0.5


def encode_targets(solutions: np.ndarray):
    """The harness's target: ``solution − 1`` as ``int64 [n, 9, 9]`` (classes 0–8)."""
    import torch

    s = torch.as_tensor(np.asarray(solutions, dtype=np.uint8).reshape(-1, 9, 9))
    return s.long() - 1


def format_grid(grid) -> str:
    """A grid as nine lines of digits with box separators (``.`` for blanks), for messages."""
    g = np.asarray(grid).reshape(9, 9)
    lines = []
    for r in range(9):
        if r in (3, 6):
            lines.append("------+-------+------")
        row = ["." if v == 0 else str(int(v)) for v in g[r]]
        lines.append(" ".join(row[:3]) + " | " + " ".join(row[3:6]) + " | " + " ".join(row[6:]))
    return "\n".join(lines)
