"""The ``autowarm`` command line: ``schedule``, ``probe`` and ``show``.

Each subcommand lives next to the code it drives and registers itself through a
``register(subparsers)`` function; this module only dispatches and turns
:class:`AutowarmError` into one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence

from autowarm import __version__
from autowarm._errors import AutowarmError

# module path of each subcommand's ``register(subparsers)``; imported lazily so that
# ``autowarm schedule`` does not pay for importing optuna.
_COMMANDS = {
    "schedule": "autowarm.schedule._cli",
    "probe": "autowarm.probe._cli",
    "show": "autowarm.probe._cli",
}


class UsageError(Exception):
    """A bad command line (argparse's own errors): usage and one line on stderr, exit 2."""

    def __init__(self, parser: argparse.ArgumentParser, message: str) -> None:
        super().__init__(message)
        self.parser = parser


class _Parser(argparse.ArgumentParser):
    # argparse exits from inside parse_args(); raising lets main() answer --json users too
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(self, message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="autowarm",
        description="Pick LR warmup and peak LR for PyTorch training from short probe runs.",
    )
    parser.add_argument("--version", action="version", version=f"autowarm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    seen: set[str] = set()
    for module in _COMMANDS.values():
        if module in seen:
            continue
        seen.add(module)
        importlib.import_module(module).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as e:
        e.parser.print_usage(sys.stderr)
        return _fail(f"{e.parser.prog}: error:", str(e), as_json="--json" in argv)
    _keep_separator(argv, args)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except AutowarmError as e:
        return _fail("autowarm: error:", str(e), as_json=getattr(args, "json", False))
    except KeyboardInterrupt:
        return 130


def _keep_separator(argv: list[str], args: argparse.Namespace) -> None:
    """Put back the ``--`` of ``train.py -- ARGS``, which says that every one of ARGS is the
    script's own: argparse drops it from the script's arguments (Python 3.11), and the probe
    then took the script's ``--steps`` for its own, misplaced."""
    rest = getattr(args, "script_args", None)
    if rest is None or rest[:1] == ["--"]:
        return
    for i, arg in enumerate(argv):
        if arg == args.script and argv[i + 1 : i + 2] == ["--"] and argv[i + 2 :] == rest:
            args.script_args = ["--", *rest]
            return


def _fail(prefix: str, message: str, *, as_json: bool) -> int:
    """One line on stderr and exit 2; with ``--json`` also one JSON document on stdout."""
    sys.stderr.write(f"{prefix} {message}\n")
    if as_json:
        sys.stdout.write(json.dumps({"error": message, "exit_code": 2}) + "\n")
    return 2
