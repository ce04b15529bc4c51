"""A schedule in the terminal: key numbers, the LR at landmark steps and a chart."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table
from rich.text import Text

from autowarm.schedule._chart import render_chart
from autowarm.schedule._schedule import NEEDS_TOTAL

if TYPE_CHECKING:
    from autowarm.schedule._recipe import Recipe
    from autowarm.schedule._schedule import Schedule

# how far to draw shapes that never end (constant, inverse_sqrt) when no length is given
_OPEN_HORIZON_WARMUPS = 10
_OPEN_HORIZON_MIN = 1000


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
    """Print a recipe's key numbers, landmark table and terminal plot."""
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
