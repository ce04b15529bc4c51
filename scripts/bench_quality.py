"""Quality benchmark: does autowarm's schedule train as well as brute force, for less?

    python scripts/bench_quality.py                     # all recipes, full grid (~2 h on 2 cores)
    python scripts/bench_quality.py --quick             # small grid, 1 seed: a smoke check
    python scripts/bench_quality.py --recipes charlm --workers 2 --long-run
    python scripts/bench_quality.py --long-run --holdout --probe-seeds 0,1,2,3,4,5   # README

For every recipe in recipes/*/train.py, on the same data and seeds:

1) oracle     full trainings over warmup (6 values, 0..30% of the run) x peak LR (10 log-spaced
              values, under-training .. divergence) x 4 seeds; the best mean eval loss;
2) default    the optimizer's default LR (the script's own), no warmup;
3) lr-finder  torch-lr-finder's LR range test (exp ramp 1e-7..10 over 100 steps, steepest-
              gradient suggestion), run in this process on the recipe's own model, optimizer
              and batches (imported from the script: build_model/build_optimizer/build_data/
              get_batch), with the untuned warmup rule 2/(1-beta2) for Adam-family (capped at 30%
              of the run) or 5% of the run for SGD;
4) optuna-tpe plain Optuna TPE over *full* runs (training seed 0), as many as autowarm's
              mean tuning cost buys (at least 1), same search box as the oracle grid; one study
              per sampler seed (--tpe-seeds, default the probe seeds), since at ~2 trials TPE
              is still sampling at random and one study is one lucky or unlucky draw;
5) autowarm   `autowarm probe train.py --json --seed K --total-steps FULL` for K = 0, 1, 2.

Every method's choice is then trained in full on the evaluation seeds (0..3), and scored by
its mean final eval loss; regret = (loss - oracle) / oracle, with its standard error from the
per-seed differences to the oracle's cell (paired by seed: two seeds of one cell differ by
1-5% near the optimum, so a regret is only known to about that SE). With --holdout every choice,
the oracle's cell included, is also retrained on seeds 4..7 that no method chose on, and the
table adds that regret: the oracle's cell is the best of 60 noisy means, so on the seeds it
was picked on its loss is biased low (the winner's curse). A run "diverged" when its eval
loss is not finite or above its initial training loss. Each full run is its own process
(`--workers` at a time) and its metrics are cached under scripts/.cache/quality/, keyed by
the recipe file's hash and the run's arguments; probe results are cached by the recipe's and
the autowarm package's source hashes -- so a rerun after changing autowarm redoes only the
probes and the runs of new choices. Output: a table on the terminal, a markdown file and a PNG
(the oracle's grid as a heatmap per recipe, each method's choice marked).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import io
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from autowarm._io import atomic_write_bytes, atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "scripts" / ".cache" / "quality"
EVAL_SEEDS = (0, 1, 2, 3)
#: --holdout: seeds no method (the oracle included) chose on, for an unbiased regret
HOLDOUT_SEEDS = (4, 5, 6, 7)
WARMUP_FRACTIONS = (0.0, 0.02, 0.05, 0.1, 0.2, 0.3)

#: per recipe: the oracle's LR box (10 log-spaced values), from clear under-training to clear
#: divergence -- measured by hand first (see the recipes' docstrings)
LR_BOX = {
    "charlm": (3e-4, 1e-1),
    "digits_resnet": (1e-2, 10.0),
    "deep_mlp": (1e-4, 1e-1),
}


# -----------------------------------------------------------------------------------------
# full runs: one subprocess each, cached


def file_hash(*paths: Path) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def autowarm_hash() -> str:
    return file_hash(*sorted((ROOT / "autowarm").rglob("*.py")))


@dataclass(frozen=True)
class Run:
    recipe: str
    lr: float
    warmup: int
    seed: int
    steps: int
    min_lr_ratio: float = 0.0

    @property
    def script(self) -> Path:
        return ROOT / "recipes" / self.recipe / "train.py"

    def args(self) -> list[str]:
        return [
            "--steps", str(self.steps), "--lr", repr(self.lr), "--warmup", str(self.warmup),
            "--seed", str(self.seed), "--min-lr-ratio", repr(self.min_lr_ratio),
        ]  # fmt: skip

    def cache_path(self) -> Path:
        key = hashlib.sha256(" ".join([file_hash(self.script), *self.args()]).encode())
        return CACHE / self.recipe / f"{key.hexdigest()[:20]}.json"


def run_full(run: Run) -> dict[str, Any]:
    """Train once (or read the cache). Returns the script's metrics JSON."""
    path = run.cache_path()
    if path.exists():
        return json.loads(path.read_text())
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "metrics.json"
        env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOWARM_")}
        proc = subprocess.run(
            [sys.executable, str(run.script), *run.args(), "--metrics-out", str(out)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        if proc.returncode != 0 or not out.exists():
            tail = proc.stderr.strip().splitlines()[-1:] or ["no output"]
            raise RuntimeError(f"{run.recipe} {' '.join(run.args())} failed: {tail[0]}")
        metrics = json.loads(out.read_text())
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(metrics))
    return metrics


def run_many(runs: list[Run], workers: int, console: Console, label: str) -> list[dict]:
    todo = sum(not r.cache_path().exists() for r in runs)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(run_full, runs))
    if todo:
        console.print(
            f"  {label}: {todo} new runs of {len(runs)} in {time.perf_counter() - t0:.0f} s"
        )
    return results


def eval_loss(m: dict) -> float:
    v = m["final_eval_loss"]
    return v if v is not None and math.isfinite(v) else math.inf


# -----------------------------------------------------------------------------------------
# the recipe as a module (for its defaults and for the in-process LR range test)


def load_recipe(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(
        f"recipe_{name}", ROOT / "recipes" / name / "train.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def lr_finder_suggestion(module: Any, seed: int = 0, num_iter: int = 100) -> tuple[float, float]:
    """torch-lr-finder's range test on the recipe's own model/optimizer/batches.

    The recipes' models take (inputs, targets) and return the loss, so the finder's "model" is
    a thin adapter and its criterion passes the loss through. Returns (suggested LR, seconds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch
    from torch_lr_finder import LRFinder

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    data = module.build_data()
    train = data[:1] if len(data) == 2 else data[:2]  # charlm: (train, val); others: x, y, ...

    class Batches(torch.utils.data.IterableDataset):
        def __iter__(self):
            gen = torch.Generator().manual_seed(seed)
            while True:
                x, y = module.get_batch(*train, gen)
                yield (x, y), y

    class Adapter(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, inputs: tuple) -> torch.Tensor:
            return self.inner(*inputs)

    model = Adapter(module.build_model(seed))
    optimizer = module.build_optimizer(model.inner, 1e-7)
    finder = LRFinder(model, optimizer, lambda loss, _labels: loss, device="cpu")
    loader = torch.utils.data.DataLoader(Batches(), batch_size=None)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        finder.range_test(loader, start_lr=1e-7, end_lr=10, num_iter=num_iter, step_mode="exp")
        fig, ax = plt.subplots()
        _, suggestion = finder.plot(ax=ax, suggest_lr=True)
        plt.close(fig)
    return float(suggestion), time.perf_counter() - t0


def untuned_warmup(module: Any, steps: int) -> int:
    """2/(1-beta2) steps for Adam-family (Ma & Yarats 2019), capped at 30% of the run (the
    rule gives 2,000 steps for beta2=0.999, longer than these runs); 5% of the run for SGD."""
    opt = module.build_optimizer(module.build_model(0), 1e-3)
    betas = opt.param_groups[0].get("betas")
    if betas is None:  # SGD and friends
        return round(0.05 * steps)
    return min(round(2 / (1 - betas[1])), round(0.3 * steps))


# -----------------------------------------------------------------------------------------
# autowarm probe (cached by recipe + autowarm source + arguments)


def autowarm_cli(command: str, args: list[str], *, cwd: Path) -> dict[str, Any]:
    """Run ``autowarm COMMAND --json ARGS`` (no AUTOWARM_* variables leaking in) and return
    its JSON document; a failure raises with the command's last stderr line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOWARM_")}
    cmd = [sys.executable, "-m", "autowarm", command, "--json", *args]
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"autowarm {command} {' '.join(args)}: exit {proc.returncode}: {tail}")
    return json.loads(proc.stdout)


def probe(recipe: str, seed: int, total_steps: int, extra: list[str]) -> dict[str, Any]:
    script = ROOT / "recipes" / recipe / "train.py"
    args = ["--seed", str(seed), "--total-steps", str(total_steps), *extra]
    key = hashlib.sha256(" ".join([file_hash(script), autowarm_hash(), "--json", *args]).encode())
    path = CACHE / recipe / f"probe-{key.hexdigest()[:20]}.json"
    if path.exists():
        return json.loads(path.read_text())
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        doc = autowarm_cli(
            "probe",
            [*args, "--storage", f"sqlite:///{tmp}/probe.db", "--out", f"{tmp}/recipe.json",
             str(script)],
            cwd=Path(tmp),
        )  # fmt: skip
        doc["bench_wall_s"] = time.perf_counter() - t0
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(doc))
    return doc


# -----------------------------------------------------------------------------------------
# one recipe


@dataclass
class Method:
    name: str
    choices: list[tuple[float, int]]  # (peak LR, warmup) -- one per probe seed for autowarm
    cost_steps: float = 0.0  # tuning cost in optimizer steps (mean over probe seeds)
    tune_wall_s: float = 0.0
    min_lr_ratio: float = 0.0
    losses: list[float] = field(default_factory=list)
    regret_se: float = math.nan  # % points, from the per-seed differences to the oracle's cell
    holdout_loss: float = math.nan  # mean eval loss on HOLDOUT_SEEDS (--holdout)
    diverged: int = 0
    runs: int = 0
    note: str = ""


def bench_recipe(name: str, opts: argparse.Namespace, console: Console) -> dict[str, Any]:
    module = load_recipe(name)
    steps = int(module.DEFAULTS["steps"])
    default_lr = float(module.DEFAULTS["lr"])
    lo, hi = LR_BOX[name]
    n_lr, fracs, seeds = (
        (5, (0.0, 0.05, 0.3), (0,)) if opts.quick else (10, WARMUP_FRACTIONS, EVAL_SEEDS)
    )
    lrs = [float(f"{v:.3g}") for v in np.geomspace(lo, hi, n_lr)]
    warmups = [round(f * steps) for f in fracs]
    console.rule(f"[bold]{name}[/]  ({steps} steps, default LR {default_lr:g})")

    # 1) oracle grid
    grid_runs = [Run(name, lr, w, s, steps) for w in warmups for lr in lrs for s in seeds]
    # --reverse-grid: a second bench process filling the same cache from the other end
    order = grid_runs[::-1] if opts.reverse_grid else grid_runs
    grid = run_many(order, opts.workers, console, "oracle grid")
    grid = grid[::-1] if opts.reverse_grid else grid
    mean = np.zeros((len(warmups), len(lrs)))
    by_run = dict(zip(grid_runs, grid))
    for i, w in enumerate(warmups):
        for j, lr in enumerate(lrs):
            mean[i, j] = np.mean([eval_loss(by_run[Run(name, lr, w, s, steps)]) for s in seeds])
    horizons = horizon_study(grid_runs, by_run, mean, lrs, warmups, seeds, steps)
    bi, bj = np.unravel_index(np.argmin(mean), mean.shape)
    oracle_loss = float(mean[bi, bj])
    grid_wall = sum(m["wall_s"] for m in grid)

    methods: list[Method] = [
        Method("oracle grid", [(lrs[bj], warmups[bi])], len(grid_runs) * steps, grid_wall)
    ]
    # 2) default LR, no warmup
    methods.append(Method("default LR, no warmup", [(default_lr, 0)]))
    # 3) LR range test + untuned warmup
    sugg, finder_s = lr_finder_suggestion(module)
    methods.append(
        Method("lr-finder + rule warmup", [(sugg, untuned_warmup(module, steps))], 100, finder_s)
    )
    # 5) autowarm (before TPE: TPE gets the same compute)
    probes = []
    if not opts.skip_autowarm:
        t0 = time.perf_counter()
        with ThreadPoolExecutor(min(opts.workers, len(opts.probe_seeds))) as pool:
            probes = list(
                pool.map(lambda k: probe(name, k, steps, opts.probe_args), opts.probe_seeds)
            )
        console.print(f"  autowarm probes: {time.perf_counter() - t0:.0f} s")
        recipes = [p["recipe"] for p in probes]
        aw = Method(
            "autowarm",
            [(float(r["peak_lr"]), int(r["warmup_steps"])) for r in recipes],
            float(np.mean([p["cost"]["optimizer_steps"] for p in probes])),
            float(np.mean([p["cost"]["wall_s"] for p in probes])),
            min_lr_ratio=float(recipes[0].get("min_lr_ratio", 0.0)),
        )
        decays = {r.get("decay") for r in recipes}
        if decays != {"cosine"}:
            aw.note = f"recipe decay {decays} != the scripts' cosine"
        methods.append(aw)
    # 4) plain Optuna TPE over full runs, same compute as autowarm
    budget = max(1, round((methods[-1].cost_steps if probes else 2 * steps) / steps))
    methods.insert(3, tpe_method(name, steps, lrs, warmups, budget, opts, console))

    def train(m: Method, on: tuple[int, ...]) -> list[dict]:
        """Every choice of ``m`` trained in full on the seeds ``on`` (choice-major order)."""
        runs = [Run(name, lr, w, s, steps, m.min_lr_ratio) for lr, w in m.choices for s in on]
        return run_many(runs, opts.workers, console, m.name)

    # 6) train every choice in full on the evaluation seeds
    for m in methods:
        results = train(m, seeds)
        m.losses = [eval_loss(r) for r in results]
        # paired by seed: mean over this method's choices at seed s minus the oracle cell at s
        per_seed = np.array(m.losses).reshape(len(m.choices), len(seeds)).mean(axis=0)
        oracle_seed = [eval_loss(by_run[Run(name, lrs[bj], warmups[bi], s, steps)]) for s in seeds]
        diff = 100 * (per_seed - np.array(oracle_seed)) / oracle_loss
        m.regret_se = float(diff.std(ddof=1) / math.sqrt(len(diff))) if len(diff) > 1 else math.nan
        m.diverged = sum(bool(r["diverged"]) for r in results)
        m.runs = len(results)
    # 7) --holdout: the oracle's cell is the best of 60 noisy means, so its loss on the seeds it
    #    was picked on is biased low (winner's curse); retrain every choice, the oracle's
    #    included, on seeds nobody chose on
    if opts.holdout:
        for m in methods:
            m.holdout_loss = float(np.mean([eval_loss(r) for r in train(m, HOLDOUT_SEEDS)]))
    return {
        "name": name, "steps": steps, "lrs": lrs, "warmups": warmups, "mean": mean,
        "oracle": oracle_loss, "methods": methods, "probes": probes, "horizons": horizons,
    }  # fmt: skip


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Rank correlation (no ties expected in float losses)."""
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def horizon_study(
    runs: list[Run],
    by_run: dict[Run, dict],
    mean: np.ndarray,
    lrs: list[float],
    warmups: list[int],
    seeds: tuple[int, ...],
    steps: int,
) -> list[dict[str, Any]]:
    """Short-horizon bias, measured on the oracle grid for free: what would a probe that runs
    the *first h steps of the full schedule* pick? For each h, the training loss around step h
    (mean of the logged losses over the last 20% of the first h steps, mean over seeds) ranks
    the grid cells; we report its argmin, that cell's full-run regret, and the rank correlation
    between the short-horizon loss and the final eval loss over all cells."""
    out = []
    name = runs[0].recipe
    for h in (100, 200, 300, 500):
        if h >= steps:
            continue
        short = np.zeros_like(mean)
        for i, w in enumerate(warmups):
            for j, lr in enumerate(lrs):
                vals = []
                for s in seeds:
                    m = by_run[Run(name, lr, w, s, steps)]
                    every = max(1, steps // 100)  # the scripts log every (steps // 100) steps
                    logged = np.array(m["train_losses"], dtype=float)
                    tl = logged[int(0.8 * h) // every : h // every]
                    vals.append(np.mean(tl) if np.all(np.isfinite(tl)) else np.inf)
                short[i, j] = np.mean(vals)
        si, sj = np.unravel_index(np.argmin(short), short.shape)
        ok = np.isfinite(short) & np.isfinite(mean)
        rho = spearman(short[ok], mean[ok]) if ok.sum() > 2 else float("nan")
        out.append({
            "h": h, "lr": lrs[sj], "warmup": warmups[si],
            "regret": 100 * (mean[si, sj] - mean.min()) / mean.min(), "rho": float(rho),
        })  # fmt: skip
    return out


def tpe_method(
    name: str,
    steps: int,
    lrs: list[float],
    warmups: list[int],
    budget: int,
    opts: argparse.Namespace,
    console: Console,
) -> Method:
    """One TPE study per sampler seed in ``opts.tpe_seeds``, ``budget`` full runs each (on
    training seed 0), its best trial being that seed's choice. With a budget of ~2 full runs
    TPE is still in its random start-up phase, so one study is one random draw: its regret is
    only comparable to autowarm's (a mean over probe seeds) as a mean over as many studies."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def study(k: int) -> tuple[tuple[float, int], float, int]:
        """(best choice, wall seconds, new runs) of the study with sampler seed ``k``."""
        st = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=k))
        wall, todo = 0.0, 0
        for _ in range(budget):
            trial = st.ask()
            lr = trial.suggest_float("lr", lrs[0], lrs[-1], log=True)
            w = trial.suggest_int("warmup", 0, warmups[-1])
            run = Run(name, float(f"{lr:.4g}"), w, 0, steps)
            todo += not run.cache_path().exists()
            m = run_full(run)
            wall += m["wall_s"]
            # a diverged run is a bad score, not a FAILed trial (which would teach TPE nothing)
            st.tell(
                trial,
                min(eval_loss(m), m["initial_loss"]) if not m["diverged"] else m["initial_loss"],
            )
        best = st.best_params
        return (float(f"{best['lr']:.4g}"), int(best["warmup"])), wall, todo

    t0 = time.perf_counter()
    with ThreadPoolExecutor(opts.workers) as pool:  # the studies are independent
        choices, walls, todos = zip(*pool.map(study, opts.tpe_seeds))
    if sum(todos):
        console.print(f"  optuna TPE: {sum(todos)} new runs in {time.perf_counter() - t0:.0f} s")
    n = len(choices)
    return Method(
        "optuna TPE (full runs)", list(choices), budget * steps, sum(walls) / n,
        note=f"{budget} full runs per study, {n} studies",
    )  # fmt: skip


# -----------------------------------------------------------------------------------------
# output


def fmt_regret(regret: float, se: float) -> str:
    return f"{regret:+.2f}%" + (f" ± {se:.2f}" if math.isfinite(se) and se > 0 else "")


def render(results: list[dict], opts: argparse.Namespace, console: Console) -> str:
    lines = [
        "| recipe | method | peak LR | warmup | mean eval loss | regret ± SE | diverged | "
        "tuning cost (steps) | full-run equiv. | tuning wall (s) |"
        + (" held-out regret |" if opts.holdout else ""),
        "|---|---|---|---|---|---|---|---|---|---|" + ("---|" if opts.holdout else ""),
    ]
    table = Table(title="quality benchmark (mean final eval loss over seeds "
                  f"{','.join(map(str, EVAL_SEEDS))})")  # fmt: skip
    cols = ["recipe", "method", "peak LR", "warmup", "eval loss", "regret ± SE", "div.",
            "cost (steps)", "full runs", "wall s"]  # fmt: skip
    cols += ["held-out"] if opts.holdout else []
    for col in cols:
        table.add_column(col, justify="left" if col in ("recipe", "method") else "right")
    for res in results:
        for m in res["methods"]:
            loss = float(np.mean(m.losses))
            regret = 100 * (loss - res["oracle"]) / res["oracle"]
            lrs = sorted(lr for lr, _ in m.choices)
            ws = sorted(w for _, w in m.choices)
            lr_s = f"{lrs[0]:.3g}" if len(lrs) == 1 else f"{lrs[0]:.3g}..{lrs[-1]:.3g}"
            w_s = f"{ws[0]}" if len(ws) == 1 else f"{ws[0]}..{ws[-1]}"
            row = [
                res["name"], m.name, lr_s, w_s, f"{loss:.4f}", fmt_regret(regret, m.regret_se),
                f"{m.diverged}/{m.runs}", f"{m.cost_steps:,.0f}",
                f"{m.cost_steps / res['steps']:.2f}", f"{m.tune_wall_s:.0f}",
            ]  # fmt: skip
            if opts.holdout:
                oracle_h = res["methods"][0].holdout_loss
                row.append(f"{100 * (m.holdout_loss - oracle_h) / oracle_h:+.2f}%")
            table.add_row(*row)
            lines.append("| " + " | ".join(row) + " |")
        table.add_section()
    console.print(table)
    md = "\n".join(lines) + "\n"
    # probe-seed agreement and the long-run case
    notes = []
    for res in results:
        if res["probes"]:
            lrs = [float(p["recipe"]["peak_lr"]) for p in res["probes"]]
            ws = [max(1, int(p["recipe"]["warmup_steps"])) for p in res["probes"]]
            notes.append(
                f"- {res['name']}: probe seeds {list(opts.probe_seeds)} -> peak LR spread "
                f"{max(lrs) / min(lrs):.2f}x (target <= 1.5x), warmup spread "
                f"{max(ws) / min(ws):.2f}x (target <= 2x)"
            )
        if res.get("long"):
            lg = res["long"]
            notes.append(
                f"- {res['name']} long run (--total-steps {lg['total']}): probe cost "
                f"{lg['cost']:,} steps = {100 * lg['cost'] / lg['total']:.1f}% of the run "
                f"(target <= 10%); recommends peak LR {lg['lr']:.3g}, warmup {lg['warmup']}"
            )
            if "loss" in lg:
                so_lr, so_w, so_loss = lg["short_oracle"]
                notes.append(
                    f"  trained {lg['total']} steps, seed 0: that recipe {lg['loss']:.4f} vs the "
                    f"{res['steps']}-step oracle's schedule (LR {so_lr:.3g}, warmup {so_w}) "
                    f"{so_loss:.4f} ({100 * (lg['loss'] - so_loss) / so_loss:+.1f}%)"
                )
    for res in results:  # a mean over several choices hides how far the worst one was
        for m in res["methods"]:
            if len(m.choices) > 1:
                per = np.array(m.losses).reshape(len(m.choices), -1).mean(axis=1)
                regrets = 100 * (per - res["oracle"]) / res["oracle"]
                ranked = sorted(zip(regrets, m.choices))
                notes.append(
                    f"- {res['name']} {m.name}: regret per choice (peak LR/warmup; mean over the "
                    "evaluation seeds) "
                    + ", ".join(f"{r:+.2f}% ({lr:.3g}/{w})" for r, (lr, w) in ranked)
                    + f"; median {np.median(regrets):+.2f}%"
                )
    for res in results:
        bi, bj = np.unravel_index(np.argmin(res["mean"]), res["mean"].shape)
        best = f"full-run best: LR {res['lrs'][bj]:.3g}, warmup {res['warmups'][bi]}"
        parts = [
            f"h={d['h']}: LR {d['lr']:.3g}, warmup {d['warmup']}, regret {d['regret']:+.1f}%, "
            f"rho {d['rho']:.2f}"
            for d in res["horizons"]
        ]
        notes.append(f"- {res['name']} short-horizon argmin ({best}): " + "; ".join(parts))
    if notes:
        console.print("\n".join(notes))
        md += "\n" + "\n".join(notes) + "\n"
    return md


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    markers = {
        "oracle grid": ("*", "white"),
        "default LR, no warmup": ("s", "black"),
        "lr-finder + rule warmup": ("^", "magenta"),
        "optuna TPE (full runs)": ("D", "orange"),
        "autowarm": ("o", "red"),
    }
    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 5.6), squeeze=False)
    for ax, res in zip(axes[0], results):
        mean = np.where(np.isfinite(res["mean"]), res["mean"], np.nan)
        # colour range: best .. a bit above the default run, so the interesting part is visible
        vmax = float(np.nanpercentile(mean, 75))
        im = ax.imshow(mean, origin="lower", aspect="auto", cmap="viridis_r",
                       vmin=res["oracle"], vmax=vmax)  # fmt: skip
        ax.set_xticks(range(len(res["lrs"])), [f"{v:.2g}" for v in res["lrs"]], rotation=60)
        ax.set_yticks(range(len(res["warmups"])), [str(w) for w in res["warmups"]])
        ax.set_xlabel("peak LR")
        ax.set_ylabel("warmup steps")
        ax.set_title(f"{res['name']}: mean eval loss ({res['steps']} steps)")
        fig.colorbar(im, ax=ax)
        for (i, j), v in np.ndenumerate(res["mean"]):  # the numbers, small, in each cell
            text = f"{v:.2f}" if math.isfinite(v) else "nan"
            ax.text(j, i, text, ha="center", va="center", fontsize=5, color="grey")
        loglrs = np.log(res["lrs"])
        for m in res["methods"]:
            mk, colour = markers.get(m.name, ("x", "cyan"))
            for k, (lr, w) in enumerate(m.choices):
                x = np.interp(
                    math.log(lr), loglrs, range(len(loglrs)), left=-0.4, right=len(loglrs) - 0.6
                )
                y = np.interp(w, res["warmups"], range(len(res["warmups"])))
                ax.scatter([x], [y], marker=mk, s=120, c=colour, edgecolors="black",
                           label=m.name if k == 0 else None, zorder=3)  # fmt: skip
        # below the map, not over it; choices outside the grid sit on its edge
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.28), ncol=2)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipes", default=",".join(LR_BOX), help="comma-separated recipe names")
    p.add_argument("--workers", type=int, default=2, help="full runs in parallel")
    p.add_argument("--quick", action="store_true", help="5 LRs x 3 warmups x 1 seed grid")
    p.add_argument(
        "--probe-seeds", type=lambda s: [int(v) for v in s.split(",")], default=[0, 1, 2]
    )
    p.add_argument(
        "--tpe-seeds",
        type=lambda s: [int(v) for v in s.split(",")],
        help="sampler seeds of the TPE baseline's studies (default: the probe seeds)",
    )
    p.add_argument("--probe-args", default="", help="extra `autowarm probe` flags, quoted")
    p.add_argument("--skip-autowarm", action="store_true", help="oracle and baselines only")
    p.add_argument("--reverse-grid", action="store_true", help="run the grid back to front")
    p.add_argument("--long-run", action="store_true", help="also probe with 20x --total-steps")
    p.add_argument(
        "--holdout",
        action="store_true",
        help=f"also retrain every choice on seeds {HOLDOUT_SEEDS} (the oracle's too)",
    )
    p.add_argument("--md", type=Path, default=ROOT / "scripts" / "bench_quality.md")
    p.add_argument("--png", type=Path, default=ROOT / "scripts" / "bench_quality.png")
    opts = p.parse_args(argv)
    opts.probe_args = opts.probe_args.split()
    opts.tpe_seeds = opts.tpe_seeds or opts.probe_seeds
    global EVAL_SEEDS
    if opts.quick:
        EVAL_SEEDS = (0,)
    console = Console(width=max(140, Console().width))  # the table needs ~130 columns
    names = [n.strip() for n in opts.recipes.split(",") if n.strip()]
    unknown = [n for n in names if n not in LR_BOX]
    if unknown:
        p.error(f"--recipes: unknown recipe {unknown[0]!r}; known: {', '.join(LR_BOX)}.")
    t0 = time.perf_counter()
    results = []
    for name in names:
        res = bench_recipe(name, opts, console)
        if opts.long_run and not opts.skip_autowarm:
            total = 20 * res["steps"]
            doc = probe(name, opts.probe_seeds[0], total, opts.probe_args)
            res["long"] = {
                "total": total, "cost": doc["cost"]["optimizer_steps"],
                "lr": doc["recipe"]["peak_lr"], "warmup": doc["recipe"]["warmup_steps"],
            }  # fmt: skip
            # does the long-run recipe beat carrying the short run's best schedule over?
            # one seed each (a 20x run is minutes on one core)
            oracle_lr, oracle_w = res["methods"][0].choices[0]
            pair = [
                Run(
                    name,
                    float(doc["recipe"]["peak_lr"]),
                    int(doc["recipe"]["warmup_steps"]),
                    0,
                    total,
                ),
                Run(name, oracle_lr, oracle_w, 0, total),
            ]
            got = run_many(pair, opts.workers, console, "long runs")
            res["long"]["loss"] = eval_loss(got[0])
            res["long"]["short_oracle"] = (pair[1].lr, pair[1].warmup, eval_loss(got[1]))
        results.append(res)
    md = render(results, opts, console)
    cmd = "python scripts/bench_quality.py " + " ".join(argv if argv is not None else sys.argv[1:])
    md = (
        f"Command: `{cmd.strip()}` ({time.perf_counter() - t0:.0f} s for this invocation; runs "
        "and probes already in scripts/.cache/quality were reused). Tuning wall times are sums "
        "of per-run wall seconds on 2 CPU cores shared with other jobs.\n\n" + md
    )
    atomic_write_text(opts.md, md)
    plot(results, opts.png)
    console.print(f"wrote {opts.md} and {opts.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
