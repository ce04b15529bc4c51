"""The ``autowarm`` command line: ``schedule``, ``probe`` and ``show``.

Each subcommand lives next to the code it drives and registers itself through a
``register(subparsers)`` function; this module only dispatches and turns
:class:`AutowarmError` into one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except AutowarmError as e:
        sys.stderr.write(f"autowarm: error: {e}\n")
        return 2
    except KeyboardInterrupt:
        return 130
