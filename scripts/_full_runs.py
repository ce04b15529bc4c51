"""The full-run half of the ``scripts/try_*.py`` trials of third-party scripts: every schedule
trained by the trial script itself in a subprocess (``script --run SPEC``), each run cached as
JSON, and the table of means +- s.e. over seeds.

A spec is a dict: ``kind`` "constant" (the script's own LR), "autowarm" (the checkout's
``autowarm.json``) or "grid" (a cell: ``lr``, ``warmup``), plus ``seed``. An autowarm run's
cache name carries the recipe's hash, so a new probe's recipe is trained again.
"""

from __future__ import annotations

import hashlib
import json
import math
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

#: a table column: (result key, header, format of one number)
Metric = tuple[str, str, str]


def run_cached(
    script: str,
    repo: Path,
    cache: Path,
    specs: list[dict[str, Any]],
    seeds: list[int],
    workers: int,
) -> list[dict[str, float]]:
    """Every spec x seed, spec-major: ``python script repo --run SPEC`` unless cached."""
    cache.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha1((repo / "autowarm.json").read_bytes()).hexdigest()[:8]

    def one(job: tuple[dict[str, Any], int]) -> dict[str, float]:
        spec = {**job[0], "seed": job[1]}
        name = "-".join(f"{k}{v}" for k, v in spec.items())
        path = cache / f"{name}-{key if spec['kind'] == 'autowarm' else 'x'}.json"
        if not path.exists():
            cmd = [sys.executable, script, str(repo), "--run", json.dumps(spec)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            path.write_text(out.strip().splitlines()[-1])
        return json.loads(path.read_text())

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, [(s, seed) for s in specs for seed in seeds]))


def print_table(
    repo: Path,
    specs: list[dict[str, Any]],
    seeds: list[int],
    results: list[dict[str, float]],
    metrics: list[Metric],
    grid_name: str = "cosine",
) -> None:
    """A markdown table: one row per spec, mean +- s.e. over the seeds of each metric."""
    recipe = json.loads((repo / "autowarm.json").read_text())
    print("| schedule | peak LR | warmup | " + " | ".join(m[1] for m in metrics) + " |")
    print("|---|---|---|" + "---|" * len(metrics))
    names = {"constant": "the script's own (constant)", "autowarm": "**autowarm**"}
    for i, spec in enumerate(specs):
        rows = results[i * len(seeds) : (i + 1) * len(seeds)]
        cells = []
        for key, _, fmt in metrics:
            vals = [r[key] for r in rows]
            se = statistics.stdev(vals) / math.sqrt(len(vals)) if len(vals) > 1 else 0.0
            cells.append(fmt.format(statistics.fmean(vals)) + " ± " + fmt.format(se))
        auto = spec["kind"] == "autowarm"
        lr = recipe["peak_lr"] if auto else spec["lr"]
        warmup = recipe["warmup_steps"] if auto else spec.get("warmup", 0)
        name = names.get(spec["kind"], grid_name)
        print(f"| {name} | {lr:.3g} | {warmup} | " + " | ".join(cells) + " |")
