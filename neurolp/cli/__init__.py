"""The ``neurolp`` command line: a thin layer over the library.

Each subcommand lives in its own module in this package and defines::

    NAME = "fit-mpnd"                 # the subcommand
    HELP = "one line for `neurolp --help`"
    def add_arguments(parser): ...    # argparse options, typed with neurolp.cli.options
    def check(args): ...              # optional: checks across options, before any work
    def run(args) -> int: ...         # calls library functions, writes --out, prints a summary

Bad input never reaches ``run``: option values are checked while parsing (the types of
:mod:`neurolp.cli.options`: ranges, choices, readable inputs, writable outputs), then ``check``.
A :class:`~neurolp.errors.NeurolpError` or an ``OSError`` (a disk that filled up, a file that
vanished) raised anywhere becomes one line on stderr and exit status 2; an unknown flag names the
subcommand's ``--help``. Anything else is a bug in neurolp: one line asking for a report, exit 1
(``NEUROLP_DEBUG=1`` shows the traceback).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Sequence

from neurolp import __version__
from neurolp.errors import NeurolpError

# Subcommand modules, in the order `neurolp --help` lists them.
COMMANDS: tuple[str, ...] = (
    "fit_mpnd",
    "models",
    "train",
    "eval",
    "checkpoints",
    "allen",
    "rsa",
    "mmv1",
    "report",
    "sudoku",
    "hebbian",
)


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse with neurolp's exit convention: usage errors print one line and exit 2."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(2, f"neurolp: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="neurolp",
        description="Brain-inspired Lp-convolution toolkit (Kwon et al., ICLR 2025).",
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"neurolp {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for mod_name in COMMANDS:
        mod = importlib.import_module(f"neurolp.cli.{mod_name}")
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=(mod.__doc__ or mod.HELP).strip(),
                           formatter_class=_Formatter)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run, _check=getattr(mod, "check", None), _parser=p)
        _tag_nested(p)
    return parser


def _tag_nested(parser: argparse.ArgumentParser) -> None:
    """Give nested subcommands (``allen fetch``) their own parser as ``_parser`` for error messages."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                child.set_defaults(_parser=child)
                _tag_nested(child)


def one_line(exc: BaseException) -> str:
    """An error message on one line; a DataLoader worker's wrapped traceback shrinks to its last line."""
    text = str(exc) or exc.__class__.__name__
    if "Traceback (most recent call last)" in text:
        last = [ln for ln in text.strip().splitlines() if ln.strip()][-1]
        text = last.split(": ", 1)[1] if ": " in last and last.split(": ", 1)[0].replace(".", "").replace(
            "_", "").isalnum() else last
    return " ".join(text.split())


def _os_error(exc: OSError) -> str:
    where = " ".join(str(f) for f in (exc.filename, exc.filename2) if f)
    what = exc.strerror or one_line(exc)
    return (f"{what}{': ' + where if where else ''} — check free space, permissions and that the "
            "file still exists, then run the command again")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:  # argparse exits on --help, --version and bad options: return its status instead
        args, extra = parser.parse_known_args(argv)
        if extra:  # report against the subcommand that was being parsed, naming its --help
            (getattr(args, "_parser", None) or parser).error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 2
    try:
        if args._check is not None:
            args._check(args)
        return int(args._run(args) or 0)
    except NeurolpError as exc:
        print(f"neurolp: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"neurolp: error: {_os_error(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("neurolp: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - a bug: one line for users, the traceback on request
        if os.environ.get("NEUROLP_DEBUG"):
            raise
        print(f"neurolp: internal error ({exc.__class__.__name__}: {one_line(exc)[:300]}); this is a "
              "bug in neurolp — rerun with NEUROLP_DEBUG=1 for the traceback and report it",
              file=sys.stderr)
        return 1
