"""Validation shared by every command and library entry point: ranges, choices, inputs, outputs.

Each check returns the normalised value or raises :class:`~neurolp.errors.InputError` (or
:class:`~neurolp.errors.DataNotFoundError`) whose message names the option (``name``: a CLI flag such
as ``--batch-size`` or a parameter name), the value it got, and what to do instead. The CLI wraps
them as argparse types (:mod:`neurolp.cli.options`), so bad input is refused while the arguments
are parsed, before any work starts.

Outputs are probed, not guessed: :func:`check_output_dir` creates and removes a file where the
output will be staged, so a read-only folder, a path under a file or a full quota is reported
before minutes of computation rather than after.
"""

from __future__ import annotations

import difflib
import math
import os
import tempfile
from pathlib import Path
from typing import Iterable, Sequence

from neurolp.errors import DataNotFoundError, InputError

__all__ = ["check_int", "check_float", "check_choice", "check_choices", "did_you_mean",
           "check_input_path", "check_output_dir", "check_output_file", "probe_writable"]


def _fmt_bound(lo, hi, lo_open: bool, hi_open: bool) -> str:
    def num(x):
        return str(x) if isinstance(x, int) else f"{x:g}"

    if lo is not None and hi is not None:
        return f"in {'(' if lo_open else '['}{num(lo)}, {num(hi)}{')' if hi_open else ']'}"
    if lo is not None:
        return f"{'>' if lo_open else '>='} {num(lo)}"
    return f"{'<' if hi_open else '<='} {num(hi)}"


def check_int(value, name: str | None, *, min: int | None = None, max: int | None = None,
              hint: str = "") -> int:
    """``value`` as an int within [min, max]; a bool, a float with a fraction or text is refused."""
    if isinstance(value, bool):
        raise _err(name, f"must be an integer, got {value!r}")
    try:
        if isinstance(value, str):
            v = int(value.strip())
        elif isinstance(value, float):
            if not value.is_integer():
                raise ValueError
            v = int(value)
        else:
            v = int(value)
    except (TypeError, ValueError, OverflowError):
        raise _err(name, f"must be an integer, got {value!r}{_hint(hint)}") from None
    if (min is not None and v < min) or (max is not None and v > max):
        raise _err(name, f"must be an integer {_fmt_bound(min, max, False, False)}, "
                         f"got {v}{_hint(hint)}")
    return v


def check_float(value, name: str | None, *, min: float | None = None, max: float | None = None,
                min_open: bool = False, max_open: bool = False, hint: str = "") -> float:
    """``value`` as a finite float within the bounds (``*_open``: the bound itself is excluded)."""
    if isinstance(value, bool):
        raise _err(name, f"must be a number, got {value!r}")
    try:
        v = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise _err(name, f"must be a number, got {value!r}{_hint(hint)}") from None
    if not math.isfinite(v):
        raise _err(name, f"must be a finite number, got {value!r}{_hint(hint)}")
    bad = ((min is not None and (v < min or (min_open and v == min)))
           or (max is not None and (v > max or (max_open and v == max))))
    if bad:
        raise _err(name, f"must be {_fmt_bound(min, max, min_open, max_open)}, got "
                         f"{v:g}{_hint(hint)}")
    return v


def _err(name: str | None, rest: str, *, sep: str = " ", cls=InputError):
    """The error ``"<name> <rest>"``; without a name (argparse types: argparse names the flag)
    just ``rest``."""
    return cls(f"{name}{sep}{rest}" if name else rest)


def _hint(hint: str) -> str:
    return f"; {hint}" if hint else ""


def did_you_mean(value: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'X'?)`` for the closest choice (case-insensitive, prefixes count), or ``""``."""
    choices = [str(c) for c in choices]
    low = str(value).lower()
    prefixed = [c for c in choices if c.lower().startswith(low) and low]
    if len(prefixed) == 1:
        return f" (did you mean {prefixed[0]!r}?)"
    lowered = {c.lower(): c for c in choices}
    close = difflib.get_close_matches(low, list(lowered), n=1, cutoff=0.6)
    return f" (did you mean {lowered[close[0]]!r}?)" if close else ""


def check_choice(value, name: str | None, choices: Sequence, *, what: str = "value",
                 case_sensitive: bool = True) -> str:
    """``value`` if it is one of ``choices`` (matched case-insensitively unless asked otherwise,
    returned in the choices' spelling), else an error listing them with the closest match."""
    text = str(value)
    for c in choices:
        if text == str(c) or (not case_sensitive and text.lower() == str(c).lower()):
            return c
    shown = ", ".join(map(str, choices))
    raise _err(name, f"unknown {what} {text!r}{did_you_mean(text, map(str, choices))}; "
                     f"valid: {shown}", sep=": ")


def check_choices(values: Iterable, name: str | None, choices: Sequence, *, what: str = "value",
                  case_sensitive: bool = True) -> list:
    """Every value checked with :func:`check_choice`; all unknown ones are named in one message."""
    out, bad = [], []
    for v in values:
        try:
            out.append(check_choice(v, name, choices, what=what, case_sensitive=case_sensitive))
        except InputError:
            bad.append(str(v))
    if bad:
        hints = "".join(did_you_mean(b, map(str, choices)) for b in bad[:1])
        raise _err(name, f"unknown {what}{'s' if len(bad) > 1 else ''} "
                         f"{', '.join(map(repr, bad))}{hints}; valid: {', '.join(map(str, choices))}",
                   sep=": ")
    return out


def check_input_path(value, name: str | None, *, kind: str = "file", suffixes: Sequence[str] = (),
                     hint: str = "") -> Path:
    """An existing, readable file (``kind="file"``), folder (``"dir"``) or either (``"any"``)."""
    text = os.fspath(value) if value is not None else ""
    if not str(text).strip():
        raise _err(name, f"is empty; give a path{_hint(hint)}")
    path = Path(text).expanduser()
    if not path.exists():
        raise _err(name, f"{path} does not exist{_hint(hint)}", cls=DataNotFoundError)
    if kind == "file" and path.is_dir():
        raise _err(name, f"{path} is a folder; expected a file{_hint(hint)}")
    if kind == "dir" and not path.is_dir():
        raise _err(name, f"{path} is a file; expected a folder{_hint(hint)}")
    if suffixes and path.is_file() and path.suffix.lower() not in {s.lower() for s in suffixes}:
        raise _err(name, f"{path} is not a {'/'.join(suffixes)} file{_hint(hint)}")
    if not os.access(path, os.R_OK | (os.X_OK if path.is_dir() else 0)):
        raise _err(name, f"{path} is not readable (permissions); fix them or copy the data "
                         "somewhere readable")
    return path


def _existing_ancestor(path: Path, name: str | None, shown: Path) -> Path:
    """The nearest existing folder at or above ``path``; a file on the way is an error."""
    for anc in (path, *path.parents):
        if anc.exists() or anc.is_symlink():
            if not anc.is_dir():
                raise _err(name, f"{shown}: {anc} is a file, so nothing can be created under it; "
                                 "choose another path")
            return anc
    return Path(os.sep)  # pragma: no cover - the root always exists


def probe_writable(folder: Path, name: str | None, shown: Path) -> None:
    """Create and remove a file in ``folder``: the only reliable test (read-only mounts, ACLs, quota)."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=".neurolp-probe-", dir=folder)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        raise _err(name, f"{shown}: cannot write in {folder} ({reason}); choose a writable "
                         "location") from None


def check_output_dir(value, name: str | None = "--out") -> Path:
    """A folder that can hold the outputs: not empty, not a file, nothing but folders above it, and
    writable where the outputs will be staged (inside it when it exists, else in its nearest
    existing ancestor). Nothing is created."""
    text = os.fspath(value) if value is not None else ""
    if not str(text).strip():
        raise _err(name, f"is empty; give a folder for the outputs, e.g. {name or '--out'} runs/my-run")
    path = Path(text).expanduser()
    if path.exists() and not path.is_dir():
        raise _err(name, f"{path} exists and is a file; choose a folder for the outputs")
    probe_writable(_existing_ancestor(path, name, path), name, path)
    return path


def check_output_file(value, name: str | None) -> Path:
    """A file path that can be written atomically: not a folder, its folder creatable and writable."""
    text = os.fspath(value) if value is not None else ""
    if not str(text).strip():
        raise _err(name, "is empty; give a file name, e.g. table.csv")
    path = Path(text).expanduser()
    if path.is_dir() or str(text).endswith(("/", os.sep)):
        raise _err(name, f"{path} is a folder; give a file name, e.g. {path / 'table.csv'}")
    probe_writable(_existing_ancestor(path.parent, name, path), name, path)
    return path
