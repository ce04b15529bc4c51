"""A schedule as a PNG: the one renderer both ``autowarm schedule --png`` and the probe's
``--png`` draw it with (matplotlib is imported only here, its Agg canvas, never pyplot)."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

from autowarm._errors import AutowarmError
from autowarm.schedule._schedule import NEEDS_TOTAL
from autowarm.schedule._view import horizon

if TYPE_CHECKING:
    from autowarm.schedule._recipe import Recipe


def require_matplotlib() -> None:
    """Fail before any work (not after a whole search) when matplotlib is missing."""
    try:
        import matplotlib.backends.backend_agg
        import matplotlib.figure  # noqa: F401
    except ImportError:
        raise AutowarmError(
            "--png needs matplotlib, which is not installed; install it with "
            "pip install 'autowarm[plot]'."
        ) from None


def figure(width: float, height: float, dpi: int) -> Any:
    """A matplotlib ``Figure`` on an Agg canvas (no pyplot, no global state)."""
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def png_bytes(fig: Any) -> bytes:
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def draw_schedule(ax: Any, recipe: Recipe) -> None:
    """The recipe's LR over its run (or :func:`horizon` steps when open-ended) on ``ax``."""
    last = horizon(recipe)
    total = None if recipe.total_steps is not None or recipe.decay not in NEEDS_TOTAL else last
    steps = list(range(last + 1))
    ax.plot(steps, [recipe.lr_at(s, total) for s in steps], color="tab:blue", linewidth=1.8)
    if recipe.warmup_steps:
        ax.axvspan(0, recipe.warmup_steps, color="tab:orange", alpha=0.15, label="warmup")
        ax.legend(loc="upper right")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("learning rate")
    ax.set_xlim(0, last)
    ax.set_ylim(0, recipe.peak_lr * 1.05)
    ax.set_title(_wrap_title(recipe.describe()), fontsize=9)
    ax.grid(alpha=0.3)


def schedule_png(recipe: Recipe) -> bytes:
    """``autowarm schedule --png``: the schedule alone."""
    fig = figure(7, 3.5, 120)
    draw_schedule(fig.add_subplot(), recipe)
    return png_bytes(fig)


def _wrap_title(text: str, width: int = 80) -> str:
    if len(text) <= width:
        return text
    cut = text.rfind(" ", 0, width)
    cut = cut if cut > 0 else width
    return text[:cut] + "\n" + text[cut + 1 :]
