"""False alarms of the monitor on healthy runs of the quality suite's small-data scripts.

    python scripts/bench_false_alarms.py                       # about 4 minutes on 2 cores
    python scripts/bench_false_alarms.py --zscores 1e-9,2.5,4  # 1e-9: the 8x hard ratio alone

Each script in ``scripts/workloads/`` runs at its own defaults (the LR its author would use,
no warmup), seeds 0..N-1, with ``autowarm.wrap(..., spike_hard_zscore=Z, actions="record")``
for each Z; printed: the instability events per script and Z, and per 10,000 healthy steps.
On a model that nearly memorises a small training set, one hard example in a batch lifts a
healthy step's loss 8-12x the median: what ``spike_hard_zscore`` is for
(``autowarm/monitor/_detect.py``). ``scripts/bench_detect.py`` has the detection side.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
#: script -> seeds: the two whose healthy runs raised events, more seeds
SCRIPTS = {
    "cancer_mlp": 5,
    "fewshot_digits": 5,
    "diabetes_sgdm": 2,
    "finetune": 2,
    "cnn_digits": 2,
    "softmax_sgd": 2,
}

# one run in a fresh interpreter: wrap() patched to record every event at threshold Z
_CHILD = """
import contextlib, io, json, runpy, sys
import autowarm
z, script, seed = float(sys.argv[1]), sys.argv[2], sys.argv[3]
wrapped, wrap = [], autowarm.wrap
def patched(opt, **kw):
    w = wrap(opt, **{**kw, "actions": "record", "spike_hard_zscore": z})
    wrapped.append(w)
    return w
autowarm.wrap = patched
sys.argv = [script, "--seed", seed]
with contextlib.redirect_stdout(io.StringIO()):
    runpy.run_path(script, run_name="__main__")
events = [f"{e.kind}:{e.signal}" for w in wrapped for e in w.monitor.events]
print(json.dumps({"steps": sum(len(w.monitor.history) for w in wrapped), "events": events}))
"""


def run(z: float, script: str, seed: int) -> dict:
    path = ROOT / "scripts" / "workloads" / f"{script}.py"
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, repr(z), str(path), str(seed)],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zscores", default="1e-9,2.5,3,4", help="spike_hard_zscore values")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    zs = [float(z) for z in args.zscores.split(",")]
    jobs = [(z, s, k) for z in zs for s, n in SCRIPTS.items() for k in range(n)]
    with ThreadPoolExecutor(args.workers) as pool:
        results = list(pool.map(lambda j: run(*j), jobs))
    table = Table(title="instability events on healthy default runs")
    table.add_column("script (seeds)")
    for z in zs:
        table.add_column(f"Z = {z:g}", justify="right")
    for script, n in SCRIPTS.items():
        row = [f"{script} ({n})"]
        for z in zs:
            got = [r for (jz, js, _), r in zip(jobs, results) if jz == z and js == script]
            row.append(str(sum(len(r["events"]) for r in got)))
        table.add_row(*row)
    total = ["per 10,000 steps"]
    for z in zs:
        got = [r for (jz, _, _), r in zip(jobs, results) if jz == z]
        steps = sum(r["steps"] for r in got)
        total.append(f"{1e4 * sum(len(r['events']) for r in got) / steps:.1f} ({steps:,} steps)")
    table.add_row(*total)
    Console(width=110).print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
