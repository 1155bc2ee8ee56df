"""An exact Sudoku solver: constraint propagation (naked and hidden singles) plus depth-first search
on the cell with the fewest candidates. It decides uniqueness for the generator and is exposed as
:func:`solve` and :func:`count_solutions`.

Candidates are 9-bit masks per cell (bit ``d − 1`` for digit ``d``); the search is exhaustive, so
``count_solutions(quiz, limit)`` is exact up to ``limit`` (``limit=2`` answers "is it unique?").
"""

from __future__ import annotations

import numpy as np

from neurolp.errors import InputError
from neurolp.sudoku.grid import FULL, PEERS, POPCOUNT, UNITS

__all__ = ["solve", "count_solutions", "parse_grid"]

_UNITS = [tuple(int(c) for c in u) for u in UNITS]
_CELL_UNITS = [[u for u in _UNITS if i in u] for i in range(81)]
_BIT = {1 << d: d + 1 for d in range(9)}
_POP = POPCOUNT.tolist()  # list indexing is faster than numpy in the scalar search


def parse_grid(quiz) -> list[int]:
    """81 digits from a string (``0`` or ``.`` for blanks) or a sequence / array of 81 ints."""
    if isinstance(quiz, str):
        text = quiz.strip()
        if len(text) != 81 or any(c not in "0123456789." for c in text):
            raise InputError(f"a Sudoku grid is 81 characters 0-9 (0 or . for blanks), got "
                             f"{len(text)} characters: {text[:90]!r}")
        return [0 if c == "." else int(c) for c in text]
    arr = np.asarray(quiz).reshape(-1)
    if arr.size != 81 or not np.issubdtype(arr.dtype, np.integer) or arr.min() < 0 or arr.max() > 9:
        raise InputError(f"a Sudoku grid is 81 integers 0-9, got shape {np.shape(quiz)}")
    return [int(v) for v in arr]


def _assign(cand: list[int], i: int, bit: int) -> bool:
    """Place digit ``bit`` in cell ``i`` and propagate naked singles; False on a contradiction.

    Invariant between calls: every cell with a single candidate has been removed from its peers.
    """
    if not cand[i] & bit:
        return False
    if cand[i] == bit:
        return True
    cand[i] = bit
    stack = [(i, bit)]
    while stack:
        i, bit = stack.pop()
        for j in PEERS[i]:
            c = cand[j]
            if c & bit:
                c &= ~bit
                if not c:
                    return False
                cand[j] = c
                if _POP[c] == 1:
                    stack.append((j, c))
    return True


def _hidden(cand: list[int]) -> int:
    """Place every digit that has exactly one possible cell in some unit.

    Returns 1 if something changed, 0 if not, -1 on a contradiction (a digit with no cell).
    """
    changed = 0
    for unit in _UNITS:
        once = twice = 0
        for i in unit:
            c = cand[i]
            twice |= once & c
            once |= c
        if once != FULL:
            return -1
        only = once & ~twice
        if not only:
            continue
        for i in unit:
            c = cand[i]
            hit = c & only
            if hit and c != hit:
                if _POP[hit] > 1 or not _assign(cand, i, hit):
                    return -1
                changed = 1
    return changed


def _propagate(cand: list[int]) -> bool:
    while True:
        r = _hidden(cand)
        if r < 0:
            return False
        if r == 0:
            return True


def _search(cand: list[int], limit: int, found: list) -> None:
    if not _propagate(cand):
        return
    best, best_n = -1, 10
    for i in range(81):
        n = _POP[cand[i]]
        if 1 < n < best_n:
            best, best_n = i, n
            if n == 2:
                break
    if best < 0:
        found.append(list(cand))
        return
    c = cand[best]
    while c:
        bit = c & -c
        c ^= bit
        trial = list(cand)
        if _assign(trial, best, bit):
            _search(trial, limit, found)
            if len(found) >= limit:
                return


def _initial(digits: list[int]) -> list[int] | None:
    cand = [FULL] * 81
    for i, d in enumerate(digits):
        if d and not _assign(cand, i, 1 << (d - 1)):
            return None
    return cand


def count_solutions(quiz, limit: int = 2) -> int:
    """The number of solutions of ``quiz``, counted exactly up to ``limit`` (0 = contradictory).

    ``count_solutions(q) == 1`` means ``q`` has a unique solution.
    """
    if int(limit) < 1:
        raise InputError(f"limit must be >= 1, got {limit}")
    cand = _initial(parse_grid(quiz))
    if cand is None:
        return 0
    found: list = []
    _search(cand, int(limit), found)
    return len(found)


def solve(quiz) -> str | None:
    """The solution of ``quiz`` (81 characters, ``0``/``.`` blanks) as an 81-digit string, or
    ``None`` when it has none. With several solutions, the first one found is returned (use
    :func:`count_solutions` to check uniqueness)."""
    cand = _initial(parse_grid(quiz))
    if cand is None:
        return None
    found: list = []
    _search(cand, 1, found)
    if not found:
        return None
    return "".join(str(_BIT[c]) for c in found[0])
