"""Reading and writing Sudoku puzzle CSVs (the 1M-Sudoku format), validated, with a checked cache.

Format (Park 2018, Kaggle "1 Million Sudoku Games", ``sudoku.csv``; also its 30-puzzle
``test.csv``, whose header starts with a UTF-8 byte-order mark)::

    quizzes,solutions
    0043002090050090010700600430060020871900074000503600340080007000200900609... ,8643712593...

one puzzle per line, each field 81 digits in row-major order, ``0`` for a blank. Windows line
endings and a missing final newline are accepted.

:func:`load_puzzles` validates **every** row — 81 digits in each field, a solution whose rows,
columns and boxes hold 1–9 exactly once, givens that agree with the solution — and reports the
first bad row by its line number. Parsing is vectorised (1M rows in a few seconds); the parsed
arrays are cached as a ``.npy`` artefact keyed by the CSV's path, size and modification time and
carrying a SHA-256 that is checked on every read, so a stale or damaged cache is rebuilt, never
trusted. Uniqueness of the solution is not checked here (1M exact solves take long); generated
puzzles (:func:`~neurolp.sudoku.generate.generate_puzzles`) are unique by construction and
:func:`~neurolp.sudoku.solver.count_solutions` checks any puzzle.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from neurolp.errors import DataFormatError, DataNotFoundError, InputError
from neurolp.sudoku.grid import consistent, unit_validity
from neurolp.utils.io import file_sha256

__all__ = ["load_puzzles", "save_puzzles", "CACHE_ENV_VAR", "default_cache_dir", "HEADER"]

HEADER = "quizzes,solutions"
CACHE_ENV_VAR = "NEUROLP_CACHE"
CACHE_VERSION = 1
_BOM = b"\xef\xbb\xbf"
_GET = ("the 1M-Sudoku CSV is `sudoku.csv` of Kaggle's \"1 Million Sudoku Games\" (bryanpark/sudoku); "
        "or make puzzles with `neurolp sudoku make --n 100000 --out puzzles.csv`")


def default_cache_dir() -> Path:
    """``$NEUROLP_CACHE/sudoku`` (default ``~/.cache/neurolp/cache/sudoku``)."""
    from neurolp.utils.runtime import user_dir

    return user_dir(CACHE_ENV_VAR, "cache") / "sudoku"


def _row_error(path: Path, row: int, what: str) -> DataFormatError:
    return DataFormatError(f"{path}: row {row + 1} (line {row + 2}) {what}; every row must be "
                           "two 81-digit fields `quiz,solution` (0 = blank in the quiz)")


def _split_rows(data: bytes, path: Path):
    """The general path: lines of any length; the first malformed one is reported."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    lines = [ln[:-1] if ln.endswith(b"\r") else ln for ln in lines]
    for i, ln in enumerate(lines):
        if len(ln) != 163 or ln[81:82] != b",":
            fields = ln.split(b",")
            if len(fields) != 2:
                raise _row_error(path, i, f"has {len(fields)} field(s), not 2")
            a, b = (len(f.strip()) for f in fields)
            raise _row_error(path, i, f"has fields of {a} and {b} characters, not 81 and 81")
    arr = np.frombuffer(b"".join(lines), dtype=np.uint8).reshape(-1, 163)
    return arr[:, :81], arr[:, 82:163]


def _parse(data: bytes, path: Path) -> tuple[np.ndarray, np.ndarray]:
    if data.startswith(_BOM):
        data = data[len(_BOM):]
    nl = data.find(b"\n")
    header = (data if nl < 0 else data[:nl]).rstrip(b"\r").decode("utf-8", "replace").strip()
    if header.replace(" ", "").lower() != HEADER:
        raise DataFormatError(f"{path}: the header is {header[:60]!r}, expected {HEADER!r} (the "
                              f"1M-Sudoku CSV format); {_GET}")
    body = data[nl + 1:] if nl >= 0 else b""
    if not body.strip():
        raise DataFormatError(f"{path} holds no puzzles (only a header)")
    eol = b"\r\n" if data[:nl + 1].endswith(b"\r\n") else b"\n"
    body = body.rstrip(b"\r\n \t") + eol  # trailing blank lines and a missing final newline
    arr = np.frombuffer(body, dtype=np.uint8)
    q = s = None
    for eol in (1, 2):  # fast path: every row `quiz,solution` + \n or \r\n (all 1M rows alike)
        width = 163 + eol
        if arr.size % width:
            continue
        rows = arr.reshape(-1, width)
        ok = (rows[:, 81] == ord(",")) & (rows[:, -1] == ord("\n"))
        if eol == 2:
            ok &= rows[:, -2] == ord("\r")
        if ok.all():
            q, s = rows[:, :81], rows[:, 82:163]
            break
    if q is None:  # rows of other lengths somewhere: find and report the first bad one
        q, s = _split_rows(body, path)
    zero = ord("0")
    for name, a, lo in (("quiz", q, 0), ("solution", s, 1)):
        bad = ((a < zero + lo) | (a > zero + 9)).any(1)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            col = int(np.flatnonzero((a[i] < zero + lo) | (a[i] > zero + 9))[0])
            allowed = "0-9" if lo == 0 else "1-9"
            raise _row_error(path, i, f"has {chr(a[i, col])!r} at position {col + 1} of its {name} "
                                      f"(only digits {allowed} are allowed)")
    return (q - zero).astype(np.uint8), (s - zero).astype(np.uint8)


def _validate(quizzes: np.ndarray, solutions: np.ndarray, path) -> None:
    v = unit_validity(solutions)
    for unit in ("row", "column", "box"):
        bad = ~v[unit].all(1)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            k = int(np.flatnonzero(~v[unit][i])[0])
            raise _row_error(Path(path), i, f"has an invalid solution: its {unit} {k + 1} does not "
                                            "hold the digits 1-9 exactly once")
    ok = consistent(quizzes, solutions)
    if not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        cell = int(np.flatnonzero((quizzes[i] != 0) & (quizzes[i] != solutions[i]))[0])
        raise _row_error(Path(path), i, f"has a quiz that contradicts its solution at cell "
                                        f"{cell + 1} (row {cell // 9 + 1}, column {cell % 9 + 1}): "
                                        f"{quizzes[i, cell]} vs {solutions[i, cell]}")


def _cache_paths(path: Path, cache_dir: Path) -> tuple[Path, Path, dict]:
    st = path.stat()
    source = {"path": str(path.resolve()), "size": int(st.st_size), "mtime_ns": int(st.st_mtime_ns),
              "version": CACHE_VERSION}
    key = hashlib.sha1(json.dumps(source, sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir / f"puzzles-{key}.npy", cache_dir / f"puzzles-{key}.json", source


def _read_cache(npy: Path, meta_path: Path, source: dict):
    if not (npy.is_file() and meta_path.is_file()):
        return None
    try:
        meta = json.loads(meta_path.read_text())
        if meta.get("source") != source or meta.get("sha256") != file_sha256(npy):
            return None  # stale or damaged: rebuilt by the caller
        arr = np.load(npy, allow_pickle=False)
    except (OSError, ValueError):
        return None
    if arr.dtype != np.uint8 or arr.ndim != 2 or arr.shape[1] != 162 or len(arr) != meta.get("n"):
        return None
    return arr[:, :81].copy(), arr[:, 81:].copy()


def _write_cache(npy: Path, meta_path: Path, source: dict, q: np.ndarray, s: np.ndarray) -> bool:
    from neurolp.utils.io import atomic_write, atomic_write_text

    try:
        with atomic_write(npy, "wb") as fh:
            np.save(fh, np.concatenate([q, s], axis=1), allow_pickle=False)
        atomic_write_text(meta_path, json.dumps({"source": source, "n": int(len(q)),
                                                 "sha256": file_sha256(npy)}) + "\n")
        return True
    except OSError:
        return False  # read-only cache folder: work without it


def load_puzzles(path: str | os.PathLike, *, cache: bool = True,
                 cache_dir: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Quizzes and solutions of a 1M-Sudoku-format CSV as ``uint8 [n, 81]`` arrays (0 = blank).

    Every row is validated (see the module docstring); the first bad row raises
    :class:`~neurolp.errors.DataFormatError` naming its row and line. With ``cache`` the parsed,
    validated arrays are kept in ``cache_dir`` (default :func:`default_cache_dir`) and reused
    while the CSV is unchanged.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        raise InputError(f"{path} is a folder; pass the puzzle CSV file (e.g. {path / 'sudoku.csv'})")
    if not path.is_file():
        raise DataNotFoundError(f"puzzle file {path} does not exist; {_GET}")
    if cache:
        npy, meta, source = _cache_paths(path, Path(cache_dir) if cache_dir else default_cache_dir())
        got = _read_cache(npy, meta, source)
        if got is not None:
            return got
    q, s = _parse(path.read_bytes(), path)
    _validate(q, s, path)
    if cache:
        _write_cache(npy, meta, source, q, s)
    return q, s


def save_puzzles(path: str | os.PathLike, quizzes: np.ndarray, solutions: np.ndarray) -> Path:
    """Write puzzles in the 1M-Sudoku CSV format (``quizzes,solutions`` header), atomically."""
    from neurolp.utils.io import atomic_write

    q = np.asarray(quizzes, dtype=np.uint8).reshape(-1, 81)
    s = np.asarray(solutions, dtype=np.uint8).reshape(-1, 81)
    if len(q) != len(s):
        raise InputError(f"{len(q)} quizzes but {len(s)} solutions")
    _validate(q, s, path)
    rows = np.empty((len(q), 164), dtype=np.uint8)
    rows[:, :81] = q + ord("0")
    rows[:, 81] = ord(",")
    rows[:, 82:163] = s + ord("0")
    rows[:, 163] = ord("\n")
    with atomic_write(path, "wb") as fh:
        fh.write((HEADER + "\n").encode())
        fh.write(rows.tobytes())
    return Path(path)
