"""Argument types for every ``neurolp`` command: the checks of :mod:`neurolp.utils.checks` as
argparse ``type=`` callables, so bad values are refused while the command line is parsed, before
any work starts, with one line that names the flag::

    from neurolp.cli.options import Int, Float, InPath, OutDir, OutFile, JSONObject

    p.add_argument("--batch-size", type=Int(min=1), default=256)
    p.add_argument("--lr", type=Float(min=0, min_open=True))
    p.add_argument("--data-dir", type=InPath("dir"))
    p.add_argument("--out", type=OutDir(), default="runs/x")   # probed for writability
    p.add_argument("--csv", type=OutFile())

argparse reports a type error as ``argument --batch-size: must be an integer >= 1, got 0``; the
``neurolp`` parser turns it into one line on stderr, names the subcommand's ``--help`` and exits 2.
Checks that involve several options go in the command module's ``check(args)`` hook, which the CLI
runs after parsing and before ``run(args)``; raise :class:`~neurolp.errors.InputError` there with
the flag names in the message (:func:`require`, :func:`exclusive` cover the common cases).
"""

from __future__ import annotations

import argparse
import json
from neurolp.errors import ConfigError, InputError
from neurolp.utils import checks

__all__ = ["Int", "Float", "InPath", "OutDir", "OutFile", "JSONObject", "Choice", "require",
           "exclusive"]


class _Type:
    """Base: call the check, turn its error into argparse's type error (argparse names the flag)."""

    name = "value"

    def __call__(self, text: str):
        from neurolp.errors import DataNotFoundError

        try:
            return self.check(text)
        except (InputError, DataNotFoundError) as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    def check(self, text: str):  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:  # shown by argparse in some messages
        return self.name


class Int(_Type):
    """An integer in [min, max]."""

    name = "int"

    def __init__(self, min: int | None = None, max: int | None = None, hint: str = ""):
        self.min, self.max, self.hint = min, max, hint

    def check(self, text):
        return checks.check_int(text, None, min=self.min, max=self.max, hint=self.hint)


class Float(_Type):
    """A finite float within the bounds (``*_open``: the bound itself excluded)."""

    name = "float"

    def __init__(self, min: float | None = None, max: float | None = None, *, min_open: bool = False,
                 max_open: bool = False, hint: str = ""):
        self.kw = dict(min=min, max=max, min_open=min_open, max_open=max_open, hint=hint)

    def check(self, text):
        return checks.check_float(text, None, **self.kw)


class Choice(_Type):
    """One of ``choices``, matched case-insensitively, with a did-you-mean hint."""

    name = "choice"

    def __init__(self, choices, what: str = "value", case_sensitive: bool = False):
        self.choices, self.what, self.case = list(choices), what, case_sensitive

    def check(self, text):
        return checks.check_choice(text, None, self.choices, what=self.what,
                                   case_sensitive=self.case)


class InPath(_Type):
    """An existing readable file (``"file"``), folder (``"dir"``) or either (``"any"``)."""

    name = "path"

    def __init__(self, kind: str = "file", suffixes=(), hint: str = ""):
        self.kind, self.suffixes, self.hint = kind, tuple(suffixes), hint

    def check(self, text):
        return str(checks.check_input_path(text, None, kind=self.kind, suffixes=self.suffixes,
                                           hint=self.hint))


class OutDir(_Type):
    """A folder for outputs, probed for writability (nothing is created)."""

    name = "folder"

    def check(self, text):
        return str(checks.check_output_dir(text, None))


class OutFile(_Type):
    """A file to write (e.g. ``--csv``): not a folder, its folder writable."""

    name = "file"

    def check(self, text):
        return str(checks.check_output_file(text, None))


class JSONObject(_Type):
    """A JSON object (``'{"width": 16}'``) given inline, as a dict."""

    name = "JSON"

    def check(self, text):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"is not valid JSON ({exc.msg} at character {exc.pos}): {text!r}; "
                             "write an object such as '{\"width\": 16}' (quote it for the shell)"
                             ) from None
        if not isinstance(value, dict):
            raise InputError(f"must be a JSON object such as '{{\"width\": 16}}', got {text!r}")
        return value


def require(condition: bool, message: str) -> None:
    """Raise :class:`ConfigError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise ConfigError(message)


def exclusive(args, *flags: str) -> None:
    """At most one of ``flags`` (e.g. ``"--images", "--allen-cache"``) may be given."""
    given = [f for f in flags if getattr(args, f.lstrip("-").replace("-", "_"), None) not in (None, False)]
    if len(given) > 1:
        raise ConfigError(f"{' and '.join(given)} exclude each other; give only one")

