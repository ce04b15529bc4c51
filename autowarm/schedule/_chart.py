"""Small Unicode charts for the terminal: ``autowarm schedule`` draws a recipe's LR with them.

Plain strings, no colours: callers wrap them in ``rich.text.Text`` so that no character is
taken for markup.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

# eighth blocks: a column of ``height`` cells shows ``8 * height`` levels
_BLOCKS = " ▁▂▃▄▅▆▇█"


def resample(values: Sequence[float], width: int) -> list[float]:
    """``width`` values picked evenly from ``values`` (first and last kept); shorter input is
    returned as is rather than stretched."""
    n = len(values)
    if n <= width:
        return [float(v) for v in values]
    if width == 1:
        return [float(values[-1])]
    return [float(values[round(i * (n - 1) / (width - 1))]) for i in range(width)]


def render_curve(
    values: Sequence[float],
    width: int = 60,
    height: int = 8,
    *,
    lo: float | None = None,
    hi: float | None = None,
) -> str:
    """A filled area chart of ``values``: ``height`` lines of at most ``width`` characters.

    The y range is ``[lo, hi]`` (default: 0 or the minimum if it is negative, and the maximum).
    Non-finite values (a diverged loss) leave their column empty, drawn as ``×`` on the bottom
    line so that they are not mistaken for zero.
    """
    if width < 1 or height < 1:
        raise ValueError(f"width and height must be >= 1 but got {width} and {height}.")
    columns = resample(values, width)
    finite = [v for v in columns if math.isfinite(v)]
    if not finite:
        return "\n".join(" " * len(columns) for _ in range(height - 1)) + "\n" + "×" * len(columns)
    lo = min(0.0, min(finite)) if lo is None else lo
    hi = max(finite) if hi is None else hi
    span = hi - lo if hi > lo else 1.0
    levels = []  # filled eighths per column; -1 marks a non-finite value
    for v in columns:
        if not math.isfinite(v):
            levels.append(-1)
            continue
        fraction = min(max((v - lo) / span, 0.0), 1.0)
        # a value above lo always shows at least one eighth, so a small LR is not invisible
        level = round(fraction * 8 * height)
        levels.append(max(level, 1) if v > lo else level)
    rows = []
    for row in range(height - 1, -1, -1):  # top line first
        line = []
        for level in levels:
            if level < 0:
                line.append("×" if row == 0 else " ")
            else:
                line.append(_BLOCKS[min(max(level - 8 * row, 0), 8)])
        rows.append("".join(line))
    return "\n".join(rows)


def render_chart(
    values: Sequence[float],
    *,
    width: int = 60,
    height: int = 8,
    x_start: int = 0,
    y_format: str = "{:.2e}",
) -> str:
    """:func:`render_curve` with y labels (max/min) on the left and x labels (first/last step)
    below. ``values[i]`` belongs to step ``x_start + i``."""
    if not values:
        return "(no values)"
    finite = [v for v in values if math.isfinite(v)]
    hi = max(finite) if finite else 0.0
    lo = min(0.0, min(finite)) if finite else 0.0
    curve = render_curve(values, width, height, lo=lo, hi=hi).split("\n")
    top, bottom = y_format.format(hi), y_format.format(lo)
    pad = max(len(top), len(bottom))
    lines = []
    for i, row in enumerate(curve):
        label = top if i == 0 else bottom if i == len(curve) - 1 else ""
        lines.append(f"{label:>{pad}} ┤{row}")
    cols = len(curve[0])
    first, last = str(x_start), str(x_start + len(values) - 1)
    axis = " " * pad + " └" + "─" * cols
    labels = " " * (pad + 2) + first + " " * max(cols - len(first) - len(last), 1) + last
    return "\n".join([*lines, axis, labels])
