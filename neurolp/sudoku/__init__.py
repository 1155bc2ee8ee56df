"""The Sudoku challenge and the conformational adaptation of Lp-masks (paper §5, Fig. 4–5,
App. A.5–A.8).

* :mod:`~neurolp.sudoku.puzzles`  — :func:`load_puzzles` / :func:`save_puzzles` (the 1M-Sudoku CSV,
  validated row by row, cached);
* :mod:`~neurolp.sudoku.generate` — :func:`generate_puzzles`, seeded, unique solutions;
* :mod:`~neurolp.sudoku.solver`   — exact :func:`solve` and :func:`count_solutions`;
* :mod:`~neurolp.sudoku.grid`     — units, validity, the harness's encoding;
* :mod:`~neurolp.sudoku.metrics`  — cell accuracy, row/column/box/puzzle validity, one-shot and
  iterative solving;
* :mod:`~neurolp.sudoku.train`    — :class:`SudokuConfig`, :func:`train_sudoku` (on
  :mod:`neurolp.train.engine`), the five variants;
* :mod:`~neurolp.sudoku.analysis` — α/θ/γ of the masks per layer, mask grids, the orientation
  ablation with its random control.

The model, :class:`~neurolp.models.sudoku.SudokuCNN` (``{variant}-sudokucnn`` in the registry), is
re-exported here. Names are imported lazily.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "load_puzzles": "puzzles", "save_puzzles": "puzzles",
    "generate_puzzles": "generate", "blank_histogram": "generate",
    "solve": "solver", "count_solutions": "solver",
    "unit_validity": "grid", "valid_solutions": "grid", "encode_quizzes": "grid",
    "encode_targets": "grid",
    "grid_metrics": "metrics", "evaluate_puzzles": "metrics", "solve_iterative": "metrics",
    "predict": "metrics", "elimination_baseline": "metrics",
    "SudokuConfig": "train", "SUDOKU_PRESETS": "train", "VARIANTS": "train",
    "make_sudoku_config": "train", "train_sudoku": "train", "sudoku_model": "train",
    "load_split": "train",
    "mask_conformations": "analysis", "ablate_masks": "analysis", "orientation_ablation": "analysis",
    "select_orientation_masks": "analysis", "mask_values": "analysis",
    "plot_conformations": "analysis", "plot_mask_grid": "analysis", "plot_ablation": "analysis",
    "plot_curves": "analysis",
}
_MODEL = {"SudokuCNN", "Conv2dSame"}

__all__ = sorted(set(_EXPORTS) | _MODEL)


def __getattr__(name: str):
    if name in _MODEL:
        return getattr(importlib.import_module("neurolp.models.sudoku"), name)
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"neurolp.sudoku.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'neurolp.sudoku' has no attribute {name!r}")
