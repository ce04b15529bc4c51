"""Probe-seed agreement: does `autowarm probe` recommend the same schedule whatever its seed?

    python scripts/bench_agreement.py                                   # 6 seeds x 3 recipes
    python scripts/bench_agreement.py --probe-args "--steps 50 --trials 40"

For every recipe and seed K it runs `autowarm probe --seed K --total-steps FULL [probe args]`
once and keeps the study (scripts/.cache/agreement/<probe args>/NAME-K.db); every later run only
*replays* the stored trials through the current recommendation code (autowarm.probe's
`recommend`), so a change to the recommendation rule is measured on the very same trials in
seconds. It prints each seed's (peak LR, warmup) and the spread across seeds (max / min; the
quality benchmark's targets are 1.5x for the LR and 2x for the warmup). How good each pick
trains is scripts/bench_quality.py's job.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rich.console import Console
from rich.table import Table

from autowarm._io import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "scripts" / ".cache" / "agreement"
RECIPES = ("charlm", "digits_resnet", "deep_mlp")
TOTAL_STEPS = 1000  # the recipes' default run length


def study_dir(probe_args: list[str]) -> Path:
    tag = hashlib.sha256(" ".join(probe_args).encode()).hexdigest()[:12]
    return CACHE / tag


def run_probe(name: str, seed: int, probe_args: list[str]) -> Path:
    """Run one probe (unless its study is stored) and return its JSON document's path."""
    out = study_dir(probe_args)
    doc = out / f"{name}-{seed}.json"
    if doc.exists():
        return doc
    out.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOWARM_")}
    cmd = [
        sys.executable, "-m", "autowarm", "probe", "--json", "--seed", str(seed),
        "--total-steps", str(TOTAL_STEPS), *probe_args,
        "--storage", f"sqlite:///{out / f'{name}-{seed}.db'}",
        "--out", str(out / f"{name}-{seed}.recipe.json"),
        str(ROOT / "recipes" / name / "train.py"),
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=out, env=env, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"autowarm probe {name} seed {seed}: exit {proc.returncode}: {tail}")
    atomic_write_text(doc, proc.stdout)
    return doc


def replay(doc: Path) -> tuple[float, int]:
    """The current code's recommendation from a stored study."""
    import optuna

    from autowarm.probe._recommend import HORIZON_EXPONENT, recommend
    from autowarm.probe._search import records

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ev = json.loads(doc.read_text())["recipe"]["evidence"]
    db = doc.with_suffix(".db")
    study = optuna.load_study(study_name=ev["study"], storage=f"sqlite:///{db}")
    a = study.user_attrs
    recipe = recommend(
        records(study),
        probe_steps=int(ev["probe_steps"]),
        total_steps=TOTAL_STEPS,
        decay=a.get("decay", "cosine"),
        margin=float(a.get("margin", 2.0)),
        warmup_transfer=a.get("warmup_transfer", "fraction"),
        horizon_exponent=float(a.get("horizon_exponent", HORIZON_EXPONENT)),
    )
    return recipe.peak_lr, recipe.warmup_steps


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipes", default=",".join(RECIPES), help="comma-separated recipe names")
    p.add_argument("--seeds", type=int, default=6, help="probe seeds 0..N-1 (default 6)")
    p.add_argument("--probe-args", default="", help="extra `autowarm probe` flags, quoted")
    p.add_argument("--workers", type=int, default=2, help="probes in parallel")
    opts = p.parse_args(argv)
    probe_args = opts.probe_args.split()
    names = [n.strip() for n in opts.recipes.split(",") if n.strip()]
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        p.error(f"--recipes: unknown recipe {unknown[0]!r}; known: {', '.join(RECIPES)}.")
    console = Console()
    jobs = [(n, k) for n in names for k in range(opts.seeds)]
    with ThreadPoolExecutor(opts.workers) as pool:
        docs = list(pool.map(lambda job: run_probe(*job, probe_args), jobs))
    table = Table(title=f"probe-seed agreement ({opts.seeds} seeds; probe args: "
                  f"{opts.probe_args or 'defaults'})")  # fmt: skip
    for col in ("recipe", "picks (peak LR / warmup) by seed", "LR spread", "warmup spread"):
        table.add_column(col)
    for name in names:
        picks = [replay(d) for (n, _), d in zip(jobs, docs) if n == name]
        lrs = [lr for lr, _ in picks]
        ws = [max(1, w) for _, w in picks]
        table.add_row(
            name,
            "  ".join(f"{lr:.3g}/{w}" for lr, w in picks),
            f"{max(lrs) / min(lrs):.2f}x",
            f"{max(ws) / min(ws):.2f}x",
        )
    console.print(table)
    console.print(f"studies in {study_dir(probe_args)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
