"""A seeded generator of Sudoku puzzles with a unique solution, vectorised over puzzles.

1. **Solution grids.** Each puzzle gets its own random complete grid: starting from an empty grid,
   repeatedly place a random candidate digit in a random cell with the fewest candidates and
   propagate naked and hidden singles; a grid that reaches a contradiction restarts. Grids are
   independent (not relabelled copies of one grid).
2. **Blanks.** The target number of blanks ``b`` is drawn uniformly from ``blanks=(lo, hi)`` per
   puzzle (difficulty is set by the number of blanks). Cells are visited in a random order; a
   given is removed only if the puzzle stays *uniquely solvable*. The check is sound by
   construction: a puzzle whose givens let naked and hidden singles fill every cell has exactly
   one solution (each single is a forced deduction). A cheap test accepts most removals — the
   removed digit is itself a naked or hidden single of the remaining givens — and otherwise
   singles are propagated to a fixpoint for all puzzles of the batch at once.
3. **Fallback.** A puzzle that cannot reach ``b`` blanks with singles alone is finished with the
   exact solver (:func:`~neurolp.sudoku.solver.count_solutions`: a removal is kept when the puzzle
   still has exactly one solution); if it still falls short it is replaced by a fresh one.

So every puzzle has exactly ``b`` blanks and a unique solution. Most puzzles need only singles to
solve (like the 1M-Sudoku dataset's, which are "easy" by solver backtracks); the exact fallback
adds some that need search. The output is a deterministic function of ``(n, blanks, seed)``.
"""

from __future__ import annotations

import numpy as np

from neurolp.errors import InputError
from neurolp.sudoku.grid import CELL_UNITS, FULL, POPCOUNT, UNITS

__all__ = ["generate_puzzles", "random_solutions", "propagate_singles", "parse_blanks",
           "blank_histogram"]

_BIT_TO_DIGIT = np.zeros(FULL + 1, dtype=np.uint8)
for _d in range(9):
    _BIT_TO_DIGIT[1 << _d] = _d + 1


def parse_blanks(blanks) -> tuple[int, int]:
    """``40``, ``"40"``, ``"40-60"`` or ``(40, 60)`` → ``(lo, hi)`` with 0 ≤ lo ≤ hi ≤ 64."""
    if isinstance(blanks, str):
        parts = blanks.replace(" ", "").split("-")
        try:
            vals = [int(p) for p in parts]
        except ValueError:
            vals = []
        if len(vals) not in (1, 2):
            raise InputError(f"blanks must be a number or a range LO-HI such as 40-60, got {blanks!r}")
    elif np.ndim(blanks) == 0:
        vals = [int(blanks)]
    else:
        vals = [int(v) for v in blanks]
    lo, hi = (vals[0], vals[0]) if len(vals) == 1 else (vals[0], vals[1])
    if not 0 <= lo <= hi <= 64:
        raise InputError(f"blanks must satisfy 0 <= LO <= HI <= 64 (a unique Sudoku has at least 17 "
                         f"givens), got {lo}-{hi}")
    return lo, hi


def _unit_reduce(m: np.ndarray):
    """``(once, twice)`` digit masks per unit of cell-major masks ``[81, B]``: digits seen at
    least once / at least twice in each unit (``[27, B]`` each)."""
    cells = m[UNITS]                                      # [27, 9, B]
    once = cells[:, 0].copy()
    twice = np.zeros_like(once)
    for k in range(1, 9):
        c = cells[:, k]
        twice |= once & c
        once |= c
    return once, twice


def _cells_or(unit_masks: np.ndarray) -> np.ndarray:
    """Per cell, the OR of a per-unit mask over the cell's row, column and box ([27, B] → [81, B])."""
    u = unit_masks[CELL_UNITS]                             # [81, 3, B]
    return u[:, 0] | u[:, 1] | u[:, 2]


def _single(m: np.ndarray) -> np.ndarray:
    """Masks with exactly one bit set."""
    return (m != 0) & ((m & (m - 1)) == 0)


def _propagate_t(cand: np.ndarray, max_iter: int = 81) -> tuple[np.ndarray, np.ndarray]:
    """:func:`propagate_singles` on cell-major masks ``[81, B]`` (rows are contiguous per cell)."""
    cand = np.array(cand, dtype=np.uint16, copy=True)
    bad = np.zeros(cand.shape[1], dtype=bool)
    live = np.arange(cand.shape[1])
    for _ in range(max_iter):
        if live.size == 0:
            break
        c = cand[:, live]
        a = c * _single(c)                                 # assigned cells' digits, else 0
        a_once, a_twice = _unit_reduce(a)
        new = (c & ~_cells_or(a_once)) | a                 # naked: peers lose assigned digits
        once, twice = _unit_reduce(new)
        hit = new & _cells_or(once & ~twice)               # hidden: the only place of a digit
        new = hit | (new * (hit == 0))
        contra = ((a_twice != 0).any(0) | (once != FULL).any(0) | (new == 0).any(0)
                  | ((hit & (hit - 1)) != 0).any(0))
        changed = (new != c).any(0)
        cand[:, live] = new
        bad[live[contra]] = True
        live = live[changed & ~contra]
    return cand, bad


def propagate_singles(cand: np.ndarray, max_iter: int = 81) -> tuple[np.ndarray, np.ndarray]:
    """Naked and hidden singles to a fixpoint for a batch of candidate masks ``[B, 81]``.

    Returns ``(cand, contradiction)``; a puzzle is solved by singles when every cell of ``cand``
    holds one candidate and it has no contradiction. Only puzzles that still change are processed.
    """
    c, bad = _propagate_t(np.ascontiguousarray(np.asarray(cand, dtype=np.uint16).T), max_iter)
    return np.ascontiguousarray(c.T), bad


def _given_masks(q: np.ndarray, blank: int = 0) -> np.ndarray:
    """Digit masks of givens; ``blank`` for blanks."""
    table = np.array([blank] + [1 << d for d in range(9)], dtype=np.uint16)
    return table[q]


def _solved_by_singles(q: np.ndarray) -> np.ndarray:
    """Cell-major quizzes ``[81, B]`` → whether singles alone fill every cell."""
    cand, bad = _propagate_t(_given_masks(q, FULL))
    return _single(cand).all(0) & ~bad


def _pick_bits(masks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One uniformly random set bit of each mask."""
    pop = POPCOUNT[masks].astype(np.int64)
    r = (rng.random(len(masks)) * pop).astype(np.int64)
    out = np.zeros(len(masks), dtype=np.uint16)
    seen = np.zeros(len(masks), dtype=np.int64)
    for d in range(9):
        has = (masks >> d) & 1 == 1
        take = has & (seen == r) & (out == 0)
        out[take] = 1 << d
        seen += has
    return out


def random_solutions(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` independent random complete grids, ``uint8 [n, 81]``."""
    cand = np.full((81, n), FULL, dtype=np.uint16)
    todo = np.arange(n)
    while todo.size:
        c, bad = _propagate_t(cand[:, todo])
        c[:, bad] = FULL                                   # contradiction: restart that grid
        open_ = ~(_single(c).all(0) & ~bad)
        if open_.any():
            co = c[:, open_]
            p = POPCOUNT[co].astype(np.float64)
            score = np.where(p > 1, p + rng.random(co.shape), np.inf)  # fewest candidates, random ties
            cell = score.argmin(0)
            cols = np.arange(co.shape[1])
            co[cell, cols] = _pick_bits(co[cell, cols], rng)
            c[:, open_] = co
        cand[:, todo] = c
        todo = todo[open_]
    return np.ascontiguousarray(_BIT_TO_DIGIT[cand].T)


def _removable_directly(q: np.ndarray, cell: np.ndarray, bit: np.ndarray) -> np.ndarray:
    """Whether the (already blanked) ``cell`` of each cell-major quiz ``[81, B]`` is a naked or a
    hidden single of the remaining givens (then removing it keeps the puzzle singles-solvable)."""
    unit_or = np.bitwise_or.reduce(_given_masks(q)[UNITS], axis=1)     # [27, B] given digits
    peer_or = _cells_or(unit_or)                                        # [81, B] seen by each cell
    cols = np.arange(q.shape[1])
    naked = (peer_or[cell, cols] | bit) == FULL
    hidden = np.zeros(q.shape[1], dtype=bool)
    for k in range(3):
        unit = UNITS[CELL_UNITS[cell, k]].T                             # [9, B] cells of that unit
        blocked = (q[unit, cols] > 0) | ((peer_or[unit, cols] & bit) != 0) | (unit == cell)
        hidden |= blocked.all(0)
    return naked | hidden


def _blank_batch(solutions: np.ndarray, targets: np.ndarray, rng: np.random.Generator):
    """Remove givens in a random order while singles still solve the puzzle.

    Returns ``(quizzes [n, 81], blanks [n], order [n, 81])``; a puzzle stops at its target or when
    no further given can go (a singles-minimal puzzle).
    """
    n = len(solutions)
    q = np.ascontiguousarray(solutions.T).copy()                        # cell-major [81, n]
    order = np.argsort(rng.random((n, 81)), axis=1)
    blanks = np.zeros(n, dtype=np.int64)
    cols = np.arange(n)
    for k in range(81):
        act = cols[blanks < targets]
        if act.size == 0:
            break
        cell = order[act, k]
        digit = q[cell, act].copy()
        q[cell, act] = 0
        bit = np.left_shift(1, digit.astype(np.int32) - 1).astype(np.uint16)
        qa = q[:, act]
        ok = _removable_directly(qa, cell, bit)
        rest = np.flatnonzero(~ok)
        if rest.size:
            ok[rest] = _solved_by_singles(qa[:, rest])
        q[cell[~ok], act[~ok]] = digit[~ok]
        blanks[act[ok]] += 1
    return np.ascontiguousarray(q.T), blanks, order


def _finish_exact(quiz: np.ndarray, target: int, order: np.ndarray) -> np.ndarray:
    """Continue removing givens with the exact uniqueness check (slow, pure Python)."""
    from neurolp.sudoku.solver import count_solutions

    q = quiz.copy()
    blanks = int((q == 0).sum())
    for cell in order:
        if blanks >= target:
            break
        if q[cell] == 0:
            continue
        d = q[cell]
        q[cell] = 0
        if count_solutions(q, 2) == 1:
            blanks += 1
        else:
            q[cell] = d
    return q


CHUNK = 8192  # puzzles per independently seeded chunk (the output does not depend on `jobs`)


def _generate_chunk(n: int, lo: int, hi: int, seed: int, chunk: int, retries: int, exact: bool,
                    batch_size: int, progress_queue=None):
    """One seeded chunk: targets drawn up front, attempts pooled into full batches."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5D0C, int(chunk)]))
    targets = rng.integers(lo, hi + 1, size=n)
    best_q = np.zeros((n, 81), dtype=np.uint8)
    best_s = np.zeros((n, 81), dtype=np.uint8)
    best_b = np.full(n, -1, dtype=np.int64)
    order_ = np.zeros((n, 81), dtype=np.int64)
    attempts = np.zeros(n, dtype=np.int64)
    queue = np.arange(n)
    max_attempts_below_lo = 50 + retries
    while queue.size:
        idx, queue = queue[:batch_size], queue[batch_size:]
        sols = random_solutions(idx.size, rng)
        q, b, o = _blank_batch(sols, targets[idx], rng)
        better = b > best_b[idx]
        j = idx[better]
        best_q[j], best_s[j], best_b[j], order_[j] = q[better], sols[better], b[better], o[better]
        attempts[idx] += 1
        short = best_b[idx] < targets[idx]
        again = short & ((attempts[idx] <= retries) | (best_b[idx] < lo))
        stuck = idx[again & (attempts[idx] >= max_attempts_below_lo)]
        if stuck.size:
            raise InputError(f"could not make puzzles with at least {lo} blanks in "
                             f"{max_attempts_below_lo} attempts (random minimal puzzles have about "
                             "57 blanks); lower the blanks range")
        queue = np.concatenate([queue, idx[again]])
        if progress_queue is not None:
            progress_queue(int((~again).sum()))
    if exact:
        for i in np.flatnonzero(best_b < targets):
            best_q[i] = _finish_exact(best_q[i], int(targets[i]), order_[i])
    return best_q, best_s


def _chunk_job(args):
    return _generate_chunk(*args)


def generate_puzzles(n: int, blanks=(40, 60), seed: int = 0, *, retries: int = 3,
                     exact: bool = False, jobs: int = 1, batch_size: int = 4096,
                     progress: bool = False):
    """``n`` puzzles with a unique solution and a seeded number of blanks.

    Args:
        n: number of puzzles.
        blanks: blanks per puzzle: a number or an inclusive range ``(lo, hi)`` / ``"lo-hi"``; each
            puzzle's target is drawn uniformly from it.
        seed: the output is a deterministic function of ``(n, blanks, seed, retries, exact,
            batch_size)``; ``jobs`` and ``progress`` do not change it.
        retries: a puzzle that cannot reach its target (it became minimal first) is tried again
            this many times with a fresh grid; the attempt with the most blanks is kept.
        exact: then continue removing givens with the exact solver's uniqueness check (slow;
            reaches a few more blanks, and puzzles that need search to solve).
        jobs: worker processes (chunks of 8192 puzzles are generated independently).

    Every puzzle has a unique solution and at least ``lo`` blanks. Targets that a random removal
    order rarely reaches (57 or more blanks: random minimal puzzles have about 24 clues) can end
    below their target, so the realised distribution of blanks is thinner than uniform there; see
    :func:`blank_histogram`.

    Returns ``(quizzes, solutions)``, ``uint8 [n, 81]`` each (0 = blank).
    """
    from tqdm.auto import tqdm

    n = int(n)
    if n < 1:
        raise InputError(f"n must be >= 1, got {n}")
    lo, hi = parse_blanks(blanks)
    jobs = max(1, int(jobs))
    sizes = [min(CHUNK, n - k) for k in range(0, n, CHUNK)]
    bar = tqdm(total=n, desc="generating puzzles", unit="puzzle", disable=not progress)
    args = [(m, lo, hi, int(seed), k, int(retries), bool(exact), int(batch_size))
            for k, m in enumerate(sizes)]
    try:
        if jobs == 1 or len(sizes) == 1:
            parts = [_generate_chunk(*a, progress_queue=bar.update) for a in args]
        else:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            # fork where there is one (workers use NumPy only); spawn would re-run the caller's script
            method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
            with ProcessPoolExecutor(min(jobs, len(sizes)), mp_context=mp.get_context(method)) as ex:
                parts = []
                for part, m in zip(ex.map(_chunk_job, args), sizes):
                    parts.append(part)
                    bar.update(m)
    finally:
        bar.close()
    return (np.concatenate([p[0] for p in parts]).astype(np.uint8),
            np.concatenate([p[1] for p in parts]).astype(np.uint8))


def blank_histogram(quizzes: np.ndarray) -> dict[int, int]:
    """``{number of blanks: count}`` of a set of quizzes."""
    counts = np.bincount((np.asarray(quizzes) == 0).sum(1), minlength=82)
    return {int(k): int(v) for k, v in enumerate(counts) if v}
