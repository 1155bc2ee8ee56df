"""Sudoku data: the exact solver, the seeded unique-solution generator, the validated CSV loader
and its cache, and the grid metrics on hand-checked grids."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neurolp.errors import DataFormatError, DataNotFoundError, InputError
from neurolp.sudoku import generate as gen
from neurolp.sudoku.generate import blank_histogram, generate_puzzles, parse_blanks
from neurolp.sudoku.grid import consistent, unit_validity, valid_solutions
from neurolp.sudoku.metrics import elimination_baseline, grid_metrics
from neurolp.sudoku.puzzles import load_puzzles, save_puzzles
from neurolp.sudoku.solver import count_solutions, solve

# Arto Inkala's "hardest" puzzle and its known solution (a unique puzzle that needs search)
HARD = "800000000003600000070090200050007000000045700000100030001000068008500010090000400"
HARD_SOL = "812753649943682175675491283154237896369845721287169534521974368438526917796318452"


@pytest.fixture(scope="module")
def puzzles():
    return generate_puzzles(60, (30, 50), seed=7)


def _row(q, s):
    return "".join(map(str, q)) + "," + "".join(map(str, s))


# --- solver ----------------------------------------------------------------------------------------
def test_solver_on_known_puzzles():
    assert solve(HARD) == HARD_SOL and count_solutions(HARD) == 1
    assert solve(HARD.replace("0", ".")) == HARD_SOL
    assert count_solutions("0" * 81, limit=3) == 3          # the empty grid has many
    assert count_solutions("11" + "0" * 79) == 0 and solve("11" + "0" * 79) is None
    # the solution with an unavoidable rectangle blanked has exactly two completions:
    # rows 1-2 (same band), columns 1 and 3 (same stack) hold 8 1 / 9 3 ... find one and blank it
    grid = np.array([int(c) for c in HARD_SOL]).reshape(9, 9)
    found = None
    for r1 in range(9):
        for r2 in range(r1 + 1, 9):
            if r1 // 3 != r2 // 3:
                continue
            for c1 in range(9):
                for c2 in range(9):
                    if c1 // 3 == c2 // 3 or c1 == c2:
                        continue
                    a, b = grid[r1, c1], grid[r1, c2]
                    if grid[r2, c1] == b and grid[r2, c2] == a:
                        found = (r1, r2, c1, c2)
    assert found is not None
    r1, r2, c1, c2 = found
    q = grid.copy()
    q[[r1, r1, r2, r2], [c1, c2, c1, c2]] = 0
    assert count_solutions(q.ravel()) == 2 and count_solutions(q.ravel(), limit=1) == 1
    with pytest.raises(InputError, match="81 characters"):
        solve("123")
    with pytest.raises(InputError, match="81 integers"):
        count_solutions(np.full(81, 12))


# --- generator -------------------------------------------------------------------------------------
def test_generated_puzzles_are_valid_unique_and_seeded(puzzles):
    q, s = puzzles
    assert q.shape == s.shape == (60, 81) and q.dtype == np.uint8
    assert valid_solutions(s).all() and consistent(q, s).all()
    blanks = (q == 0).sum(1)
    assert blanks.min() >= 30 and blanks.max() <= 50 and len(set(blanks)) > 5
    for quiz, sol in zip(q, s):
        assert count_solutions(quiz) == 1                         # unique (exact check)
        assert solve(quiz) == "".join(map(str, sol))
    assert len({x.tobytes() for x in s}) == 60                    # independent grids
    q2, s2 = generate_puzzles(60, (30, 50), seed=7)
    assert (q2 == q).all() and (s2 == s).all()
    q3, _ = generate_puzzles(60, (30, 50), seed=8)
    assert not (q3 == q).all()
    assert sum(blank_histogram(q).values()) == 60


def test_generator_output_does_not_depend_on_jobs(monkeypatch):
    monkeypatch.setattr(gen, "CHUNK", 10)
    a = generate_puzzles(25, 45, seed=3, jobs=1)
    b = generate_puzzles(25, 45, seed=3, jobs=2)
    assert (a[0] == b[0]).all() and (a[1] == b[1]).all()
    assert ((a[0] == 0).sum(1) == 45).all()                       # an exact number of blanks


def test_blank_ranges_are_validated():
    assert parse_blanks("40-60") == (40, 60) and parse_blanks(45) == (45, 45)
    for bad in ("60-40", "70", "a-b", "1-2-3"):
        with pytest.raises(InputError, match="blanks"):
            parse_blanks(bad)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000))
def test_property_every_generated_puzzle_solves_back_to_its_solution(seed):
    q, s = generate_puzzles(3, (45, 55), seed=seed)
    for quiz, sol in zip(q, s):
        assert count_solutions(quiz) == 1 and solve(quiz) == "".join(map(str, sol))


# --- loader ----------------------------------------------------------------------------------------
def test_load_round_trip_bom_crlf_and_cache(tmp_path, puzzles, monkeypatch):
    q, s = puzzles
    path = save_puzzles(tmp_path / "p.csv", q, s)
    got = load_puzzles(path, cache_dir=tmp_path / "cache")
    assert (got[0] == q).all() and (got[1] == s).all()
    # Kyubyong's test.csv style: BOM, CRLF, no final newline
    text = "quizzes,solutions\r\n" + "\r\n".join(_row(a, b) for a, b in zip(q[:5], s[:5]))
    bom = tmp_path / "test.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + text.encode())
    got = load_puzzles(bom, cache=False)
    assert (got[0] == q[:5]).all()
    # the cache is used while the file is unchanged, rebuilt when damaged or stale
    from neurolp.sudoku import puzzles as mod

    calls = []
    real = mod._parse
    monkeypatch.setattr(mod, "_parse", lambda *a: calls.append(1) or real(*a))
    load_puzzles(path, cache_dir=tmp_path / "cache")
    assert calls == []
    npy = next((tmp_path / "cache").glob("*.npy"))
    blob = bytearray(npy.read_bytes())
    blob[-1] ^= 1
    npy.write_bytes(bytes(blob))
    got = load_puzzles(path, cache_dir=tmp_path / "cache")
    assert calls == [1] and (got[1] == s).all()                   # damaged cache not trusted
    os.utime(path, ns=(1, 1))
    load_puzzles(path, cache_dir=tmp_path / "cache")
    assert calls == [1, 1]                                        # stale cache rebuilt


@pytest.mark.parametrize("mutate, message", [
    (lambda rows: rows.__setitem__(1, rows[1][:-3]), r"row 2 \(line 3\) has fields of 81 and 78 characters"),
    (lambda rows: rows.__setitem__(0, rows[0].replace(",", ";")), r"row 1 \(line 2\) has 1 field\(s\), not 2"),
    (lambda rows: rows.__setitem__(2, "x" + rows[2][1:]), r"row 3 \(line 4\) has 'x' at position 1 of its quiz"),
    (lambda rows: rows.__setitem__(1, rows[1][:82] + "0" + rows[1][83:]),
     r"row 2 \(line 3\) has '0' at position 1 of its solution"),
])
def test_malformed_rows_are_reported_by_row(tmp_path, puzzles, mutate, message):
    q, s = puzzles
    rows = [_row(a, b) for a, b in zip(q[:4], s[:4])]
    mutate(rows)
    path = tmp_path / "bad.csv"
    path.write_text("quizzes,solutions\n" + "\n".join(rows) + "\n")
    with pytest.raises(DataFormatError, match=message):
        load_puzzles(path, cache=False)


def test_inconsistent_and_invalid_rows(tmp_path, puzzles):
    q, s = (x[:3].copy() for x in puzzles)
    given = int(np.flatnonzero(q[1])[0])
    q[1, given] = q[1, given] % 9 + 1                             # a given that contradicts
    path = tmp_path / "inc.csv"
    path.write_text("quizzes,solutions\n" + "\n".join(_row(a, b) for a, b in zip(q, s)))
    with pytest.raises(DataFormatError, match=rf"row 2 \(line 3\) has a quiz that contradicts its "
                                              rf"solution at cell {given + 1}"):
        load_puzzles(path, cache=False)
    q, s = (x[:3].copy() for x in puzzles)
    s[2, [0, 1]] = s[2, [1, 0]]                                   # two columns now repeat a digit
    q[2, [0, 1]] = 0
    path.write_text("quizzes,solutions\n" + "\n".join(_row(a, b) for a, b in zip(q, s)))
    with pytest.raises(DataFormatError, match=r"row 3 \(line 4\) has an invalid solution: its column 1"):
        load_puzzles(path, cache=False)
    path.write_text("quiz,answer\n" + _row(q[0], s[0]))
    with pytest.raises(DataFormatError, match="expected 'quizzes,solutions'"):
        load_puzzles(path, cache=False)
    with pytest.raises(DataNotFoundError, match="does not exist; the 1M-Sudoku CSV is"):
        load_puzzles(tmp_path / "nope.csv")


# --- metrics on hand-checked grids ----------------------------------------------------------------
def test_grid_metrics_against_hand_checked_grids():
    sol = np.array([int(c) for c in HARD_SOL])
    quiz = np.array([int(c) for c in HARD])
    m = grid_metrics(sol[None], quiz[None], sol[None])
    assert all(m[k][0] == 1.0 for k in m)
    swapped = sol.copy()
    swapped[[0, 1]] = swapped[[1, 0]]                             # same row, same box: 2 columns break
    m = grid_metrics(swapped[None], quiz[None], sol[None])
    assert m["cell_accuracy"][0] == pytest.approx(79 / 81)
    assert (m["row_validity"][0], m["column_validity"][0], m["box_validity"][0]) == (1.0, 7 / 9, 1.0)
    assert m["puzzle_validity"][0] == 0.0
    assert m["blank_accuracy"][0] == pytest.approx(1 - 1 / 60)    # 60 blanks; cell 1 is one of them
    changed = sol.copy()
    changed[40] = changed[40] % 9 + 1                             # centre cell wrong: its row, column, box
    m = grid_metrics(changed[None], quiz[None], sol[None])
    assert (m["row_validity"][0], m["column_validity"][0], m["box_validity"][0]) == (8 / 9, 8 / 9, 8 / 9)
    v = unit_validity(changed[None])
    assert not v["row"][0, 4] and not v["column"][0, 4] and not v["box"][0, 4]
    # the elimination baseline: a blank whose peers' givens leave k digits counts 1/k
    one_blank = sol.copy()
    one_blank[0] = 0
    assert elimination_baseline(one_blank[None]) == 1.0
    assert elimination_baseline(np.zeros((1, 81), dtype=np.uint8)) == pytest.approx(1 / 9)
