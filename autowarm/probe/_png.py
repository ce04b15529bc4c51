"""``autowarm probe --png``: the stability map (warmup × peak LR, colour = probe loss, marker =
how a run ended) beside the recommended schedule, drawn by the schedule's own PNG renderer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from autowarm._io import atomic_write_bytes
from autowarm.probe._record import TrialRecord
from autowarm.probe._report import probe_point
from autowarm.probe._status import FINISHED, STATUSES, settled
from autowarm.schedule._png import draw_schedule, figure, png_bytes


def write_png(
    path: str,
    records: Sequence[TrialRecord],
    recipe: Any | None,
    *,
    lr_range: tuple[float, float],
    warmup_max: int,
) -> None:
    fig = figure(11, 4.2, 110)
    ax, ax2 = fig.subplots(1, 2)
    _draw_map(fig, ax, settled(records), recipe, lr_range=lr_range, warmup_max=warmup_max)
    if recipe is not None:
        draw_schedule(ax2, recipe)
    else:
        ax2.axis("off")
    atomic_write_bytes(path, png_bytes(fig))


def _draw_map(
    fig: Any,
    ax: Any,
    done: Sequence[TrialRecord],
    recipe: Any | None,
    *,
    lr_range: tuple[float, float],
    warmup_max: int,
) -> None:
    ok = [r for r in done if r.status in FINISHED and r.score is not None]
    if ok:
        sc = ax.scatter(
            [r.peak_lr for r in ok],
            [r.warmup_steps for r in ok],
            c=[r.score for r in ok],
            cmap="viridis_r",
            s=60,
            edgecolors="k",
            label="finished",
        )
        fig.colorbar(sc, ax=ax, label="probe loss")
    for status, how in STATUSES.items():
        bad = [r for r in done if r.status == status]
        if how.marker is not None and bad:
            ax.scatter(
                [r.peak_lr for r in bad],
                [r.warmup_steps for r in bad],
                marker=how.marker,
                c="gray" if status == "pruned" else "red",
                s=60,
                label=how.label,
            )
    if recipe is not None:
        lr, w = probe_point(recipe)
        ax.scatter([lr], [w], marker="*", s=300, c="cyan", edgecolors="k")
        ax.scatter([], [], marker="*", c="cyan", label="recommended")
    ax.set_xscale("log")
    ax.set_xlim(*lr_range)
    ax.set_ylim(-0.05 * warmup_max, 1.05 * warmup_max)
    ax.set_xlabel("peak LR")
    ax.set_ylabel("warmup steps (probe)")
    ax.set_title("Stability map")
    ax.legend(fontsize=7, loc="best")
