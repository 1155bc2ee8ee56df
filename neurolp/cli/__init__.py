"""The ``neurolp`` command line: a thin layer over the library.

Each subcommand lives in its own module in this package and defines::

    NAME = "fit-mpnd"                 # the subcommand
    HELP = "one line for `neurolp --help`"
    def add_arguments(parser): ...    # argparse options (no heavy imports here)
    def run(args) -> int: ...         # calls library functions, writes --out, prints a summary

A :class:`~neurolp.errors.NeurolpError` raised anywhere becomes one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
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
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except NeurolpError as exc:
        msg = " ".join(str(exc).split())  # one line, whatever the message's layout
        print(f"neurolp: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("neurolp: interrupted", file=sys.stderr)
        return 130
