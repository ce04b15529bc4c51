"""Per-trial fixed cost of the probe runner: fork server vs a fresh interpreter per trial.

Runs the same small torch script (tests/scripts_runner/train.py: a 2-layer regression,
``--steps`` optimizer steps) as probe trials, sequentially, once with the fork server and
once spawning ``python`` per trial, and prints the overhead of each trial: wall time from
``ProbeRunner.run`` to its result minus the time between the first and the last optimizer
step (interpreter start, imports, building the model, process exit, reporting).

    python scripts/bench_runner.py --trials 8 --steps 100
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from autowarm.probe._runner import ProbeRunner
from autowarm.probe._types import TrialSpec

SCRIPT = Path(__file__).resolve().parent.parent / "tests" / "scripts_runner" / "train.py"


def bench(forkserver: bool, trials: int, steps: int) -> dict[str, float]:
    t0 = time.perf_counter()
    runner = ProbeRunner(str(SCRIPT), ["--steps", str(steps + 1)], forkserver=forkserver)
    try:
        mode = runner.mode  # waits for the fork server's imports
        ready = time.perf_counter() - t0
        overheads, walls, trains = [], [], []
        for i in range(trials):
            spec = TrialSpec(number=i, peak_lr=0.05, warmup_steps=10, probe_steps=steps)
            res = runner.run(spec)
            if res.status not in ("stable", "spike"):
                raise SystemExit(f"trial {i} {res.status}: {res.reason}")
            walls.append(res.wall_s)
            trains.append(res.train_s)
            overheads.append(res.wall_s - res.train_s)
    finally:
        runner.close()
    return {
        "mode": mode,
        "startup": ready,
        "wall": statistics.median(walls),
        "train": statistics.median(trains),
        "overhead": statistics.median(overheads),
        "overhead_max": max(overheads),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()
    console = Console()
    table = Table(title=f"probe runner: {args.trials} trials of {args.steps} steps (medians)")
    for col in ("mode", "start-up s", "wall s", "train s", "overhead s", "max overhead s"):
        table.add_column(col, justify="right")
    for forkserver in (True, False):
        r = bench(forkserver, args.trials, args.steps)
        table.add_row(
            str(r["mode"]),
            f"{r['startup']:.2f}",
            f"{r['wall']:.3f}",
            f"{r['train']:.3f}",
            f"{r['overhead']:.3f}",
            f"{r['overhead_max']:.3f}",
        )
    console.print(table)


if __name__ == "__main__":
    main()
