"""``autowarm schedule RECIPE.json``: show a recipe's LR schedule (numbers, table, plot, code)."""

from __future__ import annotations

import argparse
import dataclasses
import io
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table
from rich.text import Text

from autowarm._errors import AutowarmError
from autowarm._io import atomic_write_bytes, check_writable
from autowarm._plot import render_chart
from autowarm._recipe import Recipe
from autowarm._render import TARGETS
from autowarm._schedules import NEEDS_TOTAL

if TYPE_CHECKING:
    from autowarm._schedules import Schedule

# how far to draw shapes that never end (constant, inverse_sqrt) when no length is given
_OPEN_HORIZON_WARMUPS = 10
_OPEN_HORIZON_MIN = 1000


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
        type=_positive_int,
        metavar="N",
        help="length of your run in optimizer steps (overrides the recipe's total_steps)",
    )
    parser.add_argument("--png", metavar="FILE", help="also save a matplotlib plot to FILE")
    parser.add_argument(
        "--code",
        choices=TARGETS,
        help="also print code to paste: plain torch, HF transformers or autowarm",
    )
    parser.set_defaults(func=run)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer but got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer but got {value}")
    return value


def run(args: argparse.Namespace, *, console: Console | None = None) -> int:
    # 1) everything that can fail on user input fails before anything is printed or written
    if args.png is not None:
        check_writable(args.png)
    recipe = Recipe.load(args.recipe)
    if args.total_steps is not None:
        if args.total_steps < recipe.warmup_steps:
            raise AutowarmError(
                f"--total-steps must be >= the recipe's warmup_steps but got "
                f"{args.total_steps} < {recipe.warmup_steps}."
            )
        recipe = dataclasses.replace(recipe, total_steps=args.total_steps)
    if recipe.total_steps is None and recipe.decay in NEEDS_TOTAL:
        raise AutowarmError(
            f"total_steps is required for decay {recipe.decay!r} but {args.recipe!r} has none; "
            f"pass --total-steps N (the number of optimizer steps of your run)."
        )
    png = _png_bytes(recipe) if args.png is not None else None

    # 2) print; 3) write the plot last, atomically
    console = console or Console()
    show_schedule(recipe, console=console)
    if args.code is not None:
        code = recipe.render(args.code, path=args.recipe if args.code == "autowarm" else None)
        console.print()
        # soft_wrap: never break a line of code at the terminal's width (it is for pasting)
        console.print(Text(code), soft_wrap=True)
    if png is not None:
        atomic_write_bytes(args.png, png)
        console.print(Text(f"saved plot to {args.png}"), soft_wrap=True)
    return 0


def horizon(recipe: Recipe) -> int:
    """The last step to show: ``total_steps``, or a few warmups' worth for open-ended shapes."""
    if recipe.total_steps is not None:
        return recipe.total_steps
    return max(_OPEN_HORIZON_WARMUPS * recipe.warmup_steps, _OPEN_HORIZON_MIN)


def landmarks(schedule: Schedule, last: int) -> list[tuple[int, str]]:
    """``(step, what)`` at the steps worth a look, in order: start, peak, quarters, end."""
    marks: dict[int, list[str]] = {}

    def add(step: int, what: str) -> None:
        if 0 <= step <= last:
            marks.setdefault(step, []).append(what)

    add(0, "first step")
    if schedule.warmup_steps > 0:
        add(schedule.warmup_steps - 1, "last warmup step")
    add(schedule.warmup_steps, "peak (end of warmup)")
    if schedule.decay == "wsd" and schedule.total_steps is not None:
        cooldown = schedule.resolved_cooldown_steps(schedule.total_steps)
        add(schedule.total_steps - cooldown, "cooldown starts")
    for quarter in (1, 2, 3):
        add(round(last * quarter / 4), f"{25 * quarter}% of the run")
    end_is_floor = schedule.total_steps is not None and schedule.decay in NEEDS_TOTAL
    add(last - 1, "last step")
    add(last, "end (floor)" if end_is_floor else "end of the plot")
    return [(step, ", ".join(marks[step])) for step in sorted(marks)]


def show_schedule(recipe: Recipe, *, console: Console | None = None) -> None:
    """Print a recipe's key numbers, landmark table and terminal plot (reused by the probe)."""
    console = console or Console()
    schedule = recipe.schedule()
    last = horizon(recipe)
    lrs = [recipe.lr_at(s, last if recipe.total_steps is None else None) for s in range(last + 1)]
    if recipe.total_steps is None:
        schedule = recipe.schedule(last) if recipe.decay in NEEDS_TOTAL else schedule

    # 1) key numbers
    console.print(Text("LR schedule", style="bold"))
    for number, phase in enumerate(schedule.describe().split(" -> "), start=1):
        console.print(Text(f"  {number}) {phase}"))
    floor = recipe.peak_lr * recipe.min_lr_ratio
    numbers = [
        ("peak LR", f"{recipe.peak_lr:.3g}"),
        ("warmup", f"{recipe.warmup_steps} steps ({recipe.warmup})"),
        ("total", f"{recipe.total_steps} steps" if recipe.total_steps else "not set"),
        ("decay", recipe.decay),
        ("start LR", f"{lrs[0]:.3g}"),
    ]
    if recipe.decay != "constant":
        numbers.append(("floor LR", f"{floor:.3g} ({recipe.min_lr_ratio:g} x peak)"))
    evidence = _evidence_summary(recipe.evidence)
    if evidence:
        numbers.append(("evidence", evidence))
    width = max(len(k) for k, _ in numbers)
    for key, value in numbers:
        console.print(Text(f"  {key:<{width}}  {value}"))

    # 2) the LR at landmark steps
    table = Table(title=None, box=None, pad_edge=False, padding=(0, 2))
    table.add_column("step", justify="right")
    table.add_column("LR", justify="right")
    table.add_column("x peak", justify="right")
    table.add_column("")
    for step, what in landmarks(schedule, last):
        table.add_row(str(step), f"{lrs[step]:.4g}", f"{lrs[step] / recipe.peak_lr:.4f}", what)
    console.print()
    console.print(table)

    # 3) terminal plot
    chart_width = max(min(console.width - 12, 72), 10)
    console.print()
    console.print(Text(render_chart(lrs, width=chart_width, height=8, y_format="{:.2e}")))


def _evidence_summary(evidence: dict, *, limit: int = 6) -> str:
    """How the recipe was found, in one line: its first few short scalar entries."""
    items = []
    for key, value in evidence.items():
        if isinstance(value, float):
            text = f"{value:.4g}"
        elif isinstance(value, (bool, int, str)):
            text = str(value)
        else:
            continue  # nested details stay in the file
        if len(text) <= 40:
            items.append(f"{key}={text}")
        if len(items) == limit:
            break
    return ", ".join(items)


def _png_bytes(recipe: Recipe) -> bytes:
    """The schedule as a PNG (matplotlib imported only here; its Agg canvas, no pyplot)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise AutowarmError(
            "--png needs matplotlib, which is not installed; install it with "
            "pip install 'autowarm[plot]'."
        ) from None
    last = horizon(recipe)
    total = None if recipe.total_steps is not None or recipe.decay not in NEEDS_TOTAL else last
    steps = list(range(last + 1))
    lrs = [recipe.lr_at(s, total) for s in steps]
    fig = Figure(figsize=(7, 3.5), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot(steps, lrs, color="tab:blue", linewidth=1.8)
    if recipe.warmup_steps:
        ax.axvspan(0, recipe.warmup_steps, color="tab:orange", alpha=0.15, label="warmup")
        ax.legend(loc="upper right")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("learning rate")
    ax.set_xlim(0, last)
    ax.set_ylim(0, recipe.peak_lr * 1.05)
    ax.set_title(_wrap_title(recipe.describe()), fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _wrap_title(text: str, width: int = 80) -> str:
    if len(text) <= width:
        return text
    cut = text.rfind(" ", 0, width)
    cut = cut if cut > 0 else width
    return text[:cut] + "\n" + text[cut + 1 :]


__all__ = ["horizon", "landmarks", "register", "run", "show_schedule"]
