"""The ``gnnsys`` command: parses the subcommand and dispatches; no logic lives here.

Exit codes: 0 success, 2 a user mistake (one line on stderr, no traceback), 1 a runtime
failure (one line), 130 interrupted.
"""
from __future__ import annotations

import argparse
import importlib
import re
import sys
from typing import Optional, Sequence

from gnnsys import __version__
from gnnsys.allocator import request_huge_pages
from gnnsys.errors import RuntimeFailure, UserError
from gnnsys.threads import limit_numba_threads

COMMANDS = ("datasets", "partition", "info", "train", "bench")


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad flags as one line with exit code 2."""

    def error(self, message: str) -> None:  # noqa: D401 - argparse API
        self.exit(2, f"gnnsys {self.prog.split()[-1]}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with every available subcommand registered."""
    parser = _Parser(prog="gnnsys", description="Distributed GNN training with plain mpirun: "
                     "partition a graph offline, then train it on P ranks.",
                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--version", action="version", version=f"gnnsys {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"gnnsys.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"gnnsys.commands.{name}":
                continue  # subcommand not built yet
            raise
        module.register(sub)
    return parser


#: a list of integers that starts with a minus sign (``-1,25``): argparse would read it as a flag.
_NEGATIVE_LIST = re.compile(r"^-\d+(,-?\d+)+$")


def join_negative_lists(argv: Sequence[str]) -> list[str]:
    """Return ``argv`` with ``--flag -1,25`` written as ``--flag=-1,25``.

    argparse takes a plain ``-1`` as a value but a comma list starting with a minus sign as an
    unknown flag, so ``--fanouts -1,25`` would fail with "expected one argument".
    """
    out: list[str] = []
    for arg in argv:
        if out and out[-1].startswith("--") and "=" not in out[-1] and _NEGATIVE_LIST.match(arg):
            out[-1] = f"{out[-1]}={arg}"
        else:
            out.append(arg)
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``gnnsys`` with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    limit_numba_threads()  # before any module imports numba
    request_huge_pages()  # before torch's first allocation
    parser = build_parser()
    args = parser.parse_args(join_negative_lists(sys.argv[1:] if argv is None else argv))
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"gnnsys {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except RuntimeFailure as exc:
        print(f"gnnsys {args.command}: failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"gnnsys {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
