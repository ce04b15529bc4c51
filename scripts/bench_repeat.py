"""Same seed, same search? `autowarm probe --seed K` run several times on one workload.

    python scripts/bench_repeat.py                                     # edge, seed 1, 4 runs
    python scripts/bench_repeat.py --workloads edge,poly_sgdm,gru_lm --seeds 0,1 --repeats 4

For each workload of scripts/bench_quality.py and seed K it runs the quality benchmark's own
probe command (`autowarm probe --json --seed K --total-steps N`, the workload's flags) `--repeats`
times, two at a time (so the runs also compete for the cores, as a busy machine would), never
cached, and prints each run's pick and how many trials ended differently from the first run's
(status or peak LR). With `--jobs 1` (the default) a search is a function of its seed: the
sampler sees every earlier trial, and a trial the cohort pruner stops ends at the step it was
stopped on (it used to run on while the signal travelled, and finish or diverge in one run and
be pruned in the next: edge's picks moved 1.5x between two runs of one seed).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import bench_quality as bq  # scripts/ is on sys.path when run as a script
from rich.console import Console
from rich.table import Table


def one_search(w: bq.Workload, seed: int) -> dict[str, Any]:
    """One fresh probe: its recipe and (number, status, peak LR) of every trial."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = bq.probe_command(w, seed, [], tmp)
        proc = subprocess.run(cmd, cwd=tmp, env=bq.clean_env(), capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"autowarm probe on {w.name}: {proc.stderr.strip()[-300:]}")
        doc = json.loads(proc.stdout)
        trials = [
            (r["number"], r["status"], r["peak_lr"])
            for r in bq.full_records(f"sqlite:///{tmp}/probe.db", doc.get("study"))
        ]
    return {
        "lr": doc["recipe"]["peak_lr"],
        "warmup": doc["recipe"]["warmup_steps"],
        "trials": trials,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workloads", default="edge", help="comma-separated quality workloads")
    p.add_argument("--seeds", default="1", help="comma-separated probe seeds")
    p.add_argument("--repeats", type=int, default=4)
    opts = p.parse_args()
    console = Console()
    by_name = {w.name: w for w in bq.WORKLOADS}
    table = Table(
        "workload", "seed", "picks (peak LR / warmup), run by run", "trials ended differently"
    )
    for name in opts.workloads.split(","):
        for seed in (int(s) for s in opts.seeds.split(",")):
            w = by_name[name]
            with ThreadPoolExecutor(2) as pool:
                runs = list(pool.map(one_search, [w] * opts.repeats, [seed] * opts.repeats))
            first = runs[0]["trials"]
            differ = [sum(a != b for a, b in zip(first, r["trials"])) for r in runs[1:]]
            picks = ", ".join(f"{r['lr']:.3g} / {r['warmup']}" for r in runs)
            table.add_row(name, str(seed), picks, ", ".join(map(str, differ)) or "-")
    console.print(table)


if __name__ == "__main__":
    main()
