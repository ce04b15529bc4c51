"""``autowarm schedule RECIPE.json``: show a recipe's LR schedule (numbers, table, plot, code)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rich.console import Console
from rich.text import Text

from autowarm._args import positive_int
from autowarm._errors import AutowarmError
from autowarm._io import atomic_write_bytes, check_writable
from autowarm.schedule._carry import probe_of
from autowarm.schedule._code import TARGETS
from autowarm.schedule._png import require_matplotlib, schedule_png
from autowarm.schedule._recipe import Recipe
from autowarm.schedule._schedule import NEEDS_TOTAL
from autowarm.schedule._view import horizon, landmarks, show_schedule


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "schedule",
        help="show a recipe's learning-rate schedule",
        description=(
            "Print a recipe's LR schedule: key numbers, the LR at landmark steps and a "
            "terminal plot; optionally save a PNG plot or print code to paste."
        ),
    )
    parser.add_argument("recipe", metavar="RECIPE.json", help="recipe file (autowarm probe output)")
    parser.add_argument(
        "--total-steps",
        type=positive_int,
        metavar="N",
        help="length of your run in optimizer steps (overrides the recipe's total_steps)",
    )
    parser.add_argument("--png", metavar="FILE", help="also save a matplotlib plot to FILE")
    parser.add_argument(
        "--code",
        choices=TARGETS,
        help="also print code to paste: plain torch, HF transformers, a Lightning "
        "configure_optimizers, autowarm, or a loop that sets the LR itself",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="one JSON document on stdout (the recipe for this run length, its landmark "
        "steps, the code if --code), nothing else",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, *, console: Console | None = None) -> int:
    # 1) everything that can fail on user input fails before anything is printed or written
    if args.png is not None:
        check_writable(args.png)
        require_matplotlib()
    recipe = Recipe.load(args.recipe)
    carried = None
    if args.total_steps is not None:
        carried = _carried(recipe, args.total_steps)
        recipe = recipe.for_run(args.total_steps)
    if recipe.total_steps is None and recipe.decay in NEEDS_TOTAL:
        raise AutowarmError(
            f"total_steps is required for decay {recipe.decay!r} but {args.recipe!r} has none; "
            f"pass --total-steps N (the number of optimizer steps of your run)."
        )
    png = schedule_png(recipe) if args.png is not None else None

    code = None
    if args.code is not None:
        code = recipe.render(args.code, path=args.recipe if args.code == "autowarm" else None)

    # 2) print; 3) write the plot last, atomically
    if args.json:
        console = Console(quiet=True)
    console = console or Console()
    if carried:
        console.print(Text(carried), soft_wrap=True)
    show_schedule(recipe, console=console)
    if code is not None:
        console.print()
        # soft_wrap: never break a line of code at the terminal's width (it is for pasting)
        console.print(Text(code), soft_wrap=True)
    if png is not None:
        atomic_write_bytes(args.png, png)
        console.print(Text(f"saved plot to {args.png}"), soft_wrap=True)
    if args.json:
        sys.stdout.write(json.dumps(_document(recipe, code, args.png), allow_nan=False) + "\n")
    return 0


def _carried(recipe: Recipe, total_steps: int) -> str | None:
    """Validate ``--total-steps``; the line saying how a probe's recipe was carried to it."""
    if probe_of(recipe.evidence) is None:
        if total_steps < recipe.warmup_steps:
            raise AutowarmError(
                f"--total-steps must be >= the recipe's warmup_steps but got "
                f"{total_steps} < {recipe.warmup_steps}."
            )
        return None
    stretched = recipe.for_run(total_steps)
    if (stretched.peak_lr, stretched.warmup_steps) == (recipe.peak_lr, recipe.warmup_steps):
        return None
    ev = recipe.evidence
    return (
        f"carried to {total_steps} steps from the probe, as `autowarm show --total-steps "
        f"{total_steps}` would: warmup {stretched.warmup_steps} steps "
        f"({ev.get('warmup_transfer', 'fraction')} of the probe's "
        f"{ev['probe_warmup_steps']}/{ev['probe_steps']}), peak LR {stretched.peak_lr:.3g} "
        f"(recipe file: {recipe.warmup_steps} steps, {recipe.peak_lr:.3g})"
    )


def _document(recipe: Recipe, code: str | None, png: str | None) -> dict[str, Any]:
    last = horizon(recipe)
    total = None if recipe.total_steps is not None or recipe.decay not in NEEDS_TOTAL else last
    marks = [
        {"step": step, "lr": recipe.lr_at(step, total), "what": what}
        for step, what in landmarks(recipe.schedule(total), last)
    ]
    return {"recipe": recipe.to_dict(), "landmarks": marks, "code": code, "png": png}
