"""Does a script show, in probes 1x, 2x and 4x as long, where its full run's best LR lies?

    python scripts/bench_horizon.py                                   # every workload
    python scripts/bench_horizon.py --workloads gru_lm,charlm --workers 2

The question behind issue 11's "LR optimum's trend with probe length, measured per script": the
probes' best peak LR is not the full run's (short-horizon bias), and one exponent for the whole
suite cannot serve (README, *The horizon rule*). If the best LR of probes at L, 2L and 4L steps
(L = autowarm's default probe length) moved towards the full run's, a search could measure the
trend and carry it on. For each workload of scripts/bench_quality.py:

1) the script is run as a probe would run it -- the whole schedule compressed into L, 2L, 4L
   steps, warmup 10 %, at 9 LRs log-spaced over the workload's box, the grid's 2 seeds -- scored by
   the probe's own score (mean training loss over the last 15 %, a diverged run worst); the
   best LR at each length is the vertex of the parabola through the best point and its two
   neighbours (in log LR, mean over seeds);
2) the full run's best LR is the same vertex on the quality benchmark's oracle grid (its eval
   loss, at the oracle's warmup): from its cache, or run here the first time;
3) the carried guesses: the probe's best x (L / T) ** 0.3 (autowarm's rule away from an edge),
   the 4L best x (4L / T) ** 0.3, and the measured trend from L to 4L extrapolated to T
   (its exponent clipped to [0, 1]); each as a ratio to the full run's best LR.

Runs are cached with the quality benchmark's (scripts/.cache/quality/, same keys).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))
import bench_quality as bq

from autowarm.probe._config import HORIZON_EXPONENT, default_steps

N_LR = 9
LENGTHS = (1, 2, 4)  # x the default probe length


def best_lr(lrs: list[float], scores: list[float]) -> float:
    """Vertex of the parabola through the best point and its neighbours (log LR)."""
    j = int(np.argmin(scores))
    lo, hi = max(0, j - 1), min(len(lrs), j + 2)
    if hi - lo < 3:
        return lrs[j]
    return bq.vertex(lrs[lo:hi], scores[lo:hi])


def probe_optima(w: bq.Workload, workers: int, console: Console) -> dict[int, float]:
    lrs = [float(f"{v:.3g}") for v in np.geomspace(*w.lr_box, N_LR)]
    out = {}
    for k in LENGTHS:
        steps = k * default_steps(w.full_steps)
        short = dataclasses.replace(w, steps=steps)
        seeds = w.grid_seeds
        runs = [bq.Run(short, lr, round(0.1 * steps), s) for lr in lrs for s in seeds]
        ms = bq.run_many(runs, workers, console, f"{w.name} at {steps} steps")
        n = len(seeds)
        scores = [float(np.mean([bq.tail_score(m) for m in ms[n * i : n * (i + 1)]]))
                  for i in range(len(lrs))]  # fmt: skip
        out[steps] = best_lr(lrs, scores)
    return out


def full_optimum(w: bq.Workload, workers: int, console: Console) -> float:
    grid = bq.oracle_grid(w, argparse.Namespace(quick=False, workers=workers), console)
    bi = grid.best[0]
    return best_lr(grid.lrs, list(grid.mean[bi]))


def row(w: bq.Workload, workers: int, console: Console) -> list[str]:
    optima = probe_optima(w, workers, console)
    full = full_optimum(w, workers, console)
    (l1, o1), (_, o2), (l4, o4) = sorted(optima.items())
    T = w.full_steps
    e = min(max(math.log(o1 / o4) / math.log(l4 / l1), 0.0), 1.0)
    guesses = {
        "L x rule": o1 * (l1 / T) ** HORIZON_EXPONENT,
        "4L x rule": o4 * (l4 / T) ** HORIZON_EXPONENT,
        "trend": o4 * (l4 / T) ** e,
    }
    cells = [w.name, w.split, str(T), str(l1), *(f"{o:.3g}" for o in (o1, o2, o4)), f"{e:.2f}"]
    cells += [f"{full:.3g}", *(f"{g / full:.2f}x" for g in guesses.values())]
    return cells


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workloads", default="", help="comma-separated names (default: all)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    names = set(filter(None, args.workloads.split(",")))
    console = Console()
    cols = ["workload", "set", "steps T", "probe L", "best LR at L", "at 2L", "at 4L",
            "trend exp.", "full run's best", "L x rule", "4L x rule", "trend"]  # fmt: skip
    table = Table(title="best peak LR by probe length, and guesses / the full run's best")
    for c in cols:
        table.add_column(c, justify="left" if c in ("workload", "set") else "right")
    for w in bq.WORKLOADS:
        if w.same_runs_as or (names and w.name not in names):
            continue
        table.add_row(*row(w, args.workers, console))
    console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
