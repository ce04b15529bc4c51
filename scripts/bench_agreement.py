"""Probe-seed agreement: does `autowarm probe` recommend the same schedule whatever its seed?

    python scripts/bench_agreement.py                                   # 6 seeds x 3 recipes
    python scripts/bench_agreement.py --probe-args "--steps 50 --trials 40"

For every recipe and seed K it runs `autowarm probe --seed K --total-steps FULL [probe args]`
once and keeps the study (scripts/.cache/agreement/<probe args>/NAME-K.db); every later run
only *replays* the stored trials through the current recommendation code (`autowarm show`),
so a change to the recommendation rule is measured on the very same trials in seconds. It
prints each seed's (peak LR, warmup) and the spread across seeds (max / min; the quality
benchmark's targets are 1.5x for the LR and 2x for the warmup). How good each pick trains is
scripts/bench_quality.py's job.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench_quality import autowarm_cli  # scripts/ is on sys.path when run as a script
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "scripts" / ".cache" / "agreement"
RECIPES = ("charlm", "digits_resnet", "deep_mlp")
TOTAL_STEPS = 1000  # the recipes' default run length


def study_dir(probe_args: list[str]) -> Path:
    tag = hashlib.sha256(" ".join(probe_args).encode()).hexdigest()[:12]
    return CACHE / tag


def run_probe(name: str, seed: int, probe_args: list[str]) -> Path:
    """Run one probe (unless its study is stored) and return its study's database."""
    out = study_dir(probe_args)
    db = out / f"{name}-{seed}.db"
    if (out / f"{name}-{seed}.done").exists():
        return db
    out.mkdir(parents=True, exist_ok=True)
    db.unlink(missing_ok=True)  # a half-run study from an interrupted run: start it again
    args = [
        "--seed", str(seed), "--total-steps", str(TOTAL_STEPS), *probe_args,
        "--storage", f"sqlite:///{db}", "--out", str(out / f"{name}-{seed}.recipe.json"),
        str(ROOT / "recipes" / name / "train.py"),
    ]  # fmt: skip
    autowarm_cli("probe", args, cwd=out)
    (out / f"{name}-{seed}.done").touch()
    return db


def replay(db: Path) -> tuple[float, int]:
    """The current code's recommendation from a stored study (``autowarm show``)."""
    doc = autowarm_cli("show", ["--storage", f"sqlite:///{db}"], cwd=db.parent)
    return float(doc["recipe"]["peak_lr"]), int(doc["recipe"]["warmup_steps"])


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
        dbs = list(pool.map(lambda job: run_probe(*job, probe_args), jobs))
    table = Table(title=f"probe-seed agreement ({opts.seeds} seeds; probe args: "
                  f"{opts.probe_args or 'defaults'})")  # fmt: skip
    for col in ("recipe", "picks (peak LR / warmup) by seed", "LR spread", "warmup spread"):
        table.add_column(col)
    for name in names:
        picks = [replay(d) for (n, _), d in zip(jobs, dbs) if n == name]
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
