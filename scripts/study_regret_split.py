"""Where autowarm's regret comes from: its peak LR or its warmup (a study on stored searches).

    python scripts/study_regret_split.py                 # all training-loss workloads
    python scripts/study_regret_split.py --workloads charlm,edge --exponents
    python scripts/study_regret_split.py --late-rise

Each stored search of ``scripts/bench_quality.py`` (replayed by today's recommendation rule) is
trained in full three ways on the evaluation seeds: as picked; with its peak LR and the
oracle's warmup (*LR only*); with the oracle's LR and its warmup (*warmup only*). Regret in %
of the oracle cell's eval loss, paired by seed, as the suite computes it. ``--exponents``
prints instead, per search, the horizon exponent that would have carried the probes' centre
LR onto the full run's best LR (the grid's parabola vertex at the best warmup) beside the one
the rule used, and the signals the rule could read; ``--noise-growth``, per search, how much
noisier for its level the near-best trials' training loss gets over the probe (the ratio of its
relative noise over the last 15 % to that over 35-50 % of the probe, soft-tie weighted), a
candidate sign of memorisation as against batch noise; ``--progress SPLIT``, a candidate
horizon rule simulated on the searches that take the default exponent (quiet, away from an
edge): the exponent 0.5 where the near-best trials' loss still falls by more than SPLIT between
30-45 % and 55-70 % of the probe, 0.1 where it does not, each pick rescaled from the rule's
and trained in full; ``--late-rise``, per search, how far the finished trials at 1.5-6x the
probe centre end above their own best stretch (the last tenth's mean loss over the lowest mean
of any tenth of the probe, minus 1): a hot failure that grows with the hot steps would show
there. ``--exponents`` also gives the full run's passes over its data (the search's, else the
workload's stated ``epochs``). Full runs are cached with the suite's.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_quality as bq

from autowarm.probe._config import HORIZON_EXPONENT

PROBE_SEEDS = (0, 1, 2)


def stored(w: bq.Workload) -> bool:
    """Whether the cache holds ``w``'s searches on their training loss (some workloads are
    probed on validation only, as ``<name>_val``)."""
    return not w.probe_flags and all(
        any(w.cache.glob(f"probe-{bq.probe_key(w, k, [])}-*.json")) for k in PROBE_SEEDS
    )


def regret(w: bq.Workload, grid: bq.Grid, choices: list[tuple[float, int]], con: Console) -> float:
    """Mean regret (%) of ``choices`` trained in full, paired by seed with the oracle cell."""
    bi, bj = grid.best
    seeds = bq.EVAL_SEEDS
    oracle = np.array([bq.eval_loss(grid.by_run[bq.Run(w, grid.lrs[bj], grid.warmups[bi], s)])
                       for s in seeds])  # fmt: skip
    runs = [bq.Run(w, lr, wu, s) for lr, wu in choices for s in seeds]
    losses = [bq.eval_loss(m) for m in bq.run_many(runs, 2, con, w.name)]
    per_seed = np.array(losses).reshape(len(choices), len(seeds)).mean(axis=0)
    return float((100 * (per_seed - oracle) / oracle.mean()).mean())


def vertex_lr(grid: bq.Grid) -> float:
    """The full run's best LR: the parabola's vertex in ln LR through the best warmup's row."""
    bi, bj = grid.best
    x, row = np.log(grid.lrs), np.log(grid.mean[bi])
    j = min(max(bj, 1), len(x) - 2)
    if not np.all(np.isfinite(row[j - 1 : j + 2])):
        return grid.lrs[bj]
    a, b, _ = np.polyfit(x[j - 1 : j + 2], row[j - 1 : j + 2], 2)
    if a <= 0:
        return grid.lrs[bj]
    return math.exp(float(np.clip(-b / (2 * a), x[j - 1], x[j + 1])))


def split_row(w: bq.Workload, grid: bq.Grid, con: Console) -> str:
    bi, bj = grid.best
    olr, owu = grid.lrs[bj], grid.warmups[bi]
    picks = [(float(r["peak_lr"]), int(r["warmup_steps"]))
             for r in (bq.probe(w, k, [], replay=True)["recipe"] for k in PROBE_SEEDS)]  # fmt: skip
    cells = [regret(w, grid, c, con) for c in
             (picks, [(lr, owu) for lr, _ in picks], [(olr, wu) for _, wu in picks])]  # fmt: skip
    shown = ", ".join(f"{lr:.3g}/{wu}" for lr, wu in picks)
    return (f"| {w.name} | {w.split} | {olr:.3g} / {owu} | {shown} | "
            + " | ".join(f"{c:+.2f}" for c in cells) + " |")  # fmt: skip


def exponent_rows(w: bq.Workload, grid: bq.Grid) -> list[str]:
    best, rows = vertex_lr(grid), []
    for k in PROBE_SEEDS:
        ev = bq.probe(w, k, [], replay=True)["recipe"]["evidence"]
        shrink = math.log(ev["probe_steps"] / w.full_steps)
        need = math.log(best / ev["probe_peak_lr"]) / shrink
        edge = (ev.get("lowest_unstable") or {}).get("peak_lr")
        hot = ev.get("pruned_hot_lr")
        over = [f"{v / ev['probe_peak_lr']:.2f}" if v else "-" for v in (edge, hot)]
        passes = ev.get("data_passes") or w.epochs or "-"
        rows.append(f"| {w.name} | {w.split} | {best:.3g} | {ev['probe_peak_lr']:.3g} | "
                    f"{ev['horizon_exponent']} | {need:+.2f} | {ev['near_stability_edge']} | "
                    f"{ev['relative_noise']:.3f} | {ev['lr_width']:.2f} | "
                    f"{over[0]} | {over[1]} | {passes} |")  # fmt: skip
    return rows


def late_rise(doc: dict) -> float:
    """The largest late rise of a finished trial at 1.5-6x the probe centre (0: none)."""
    ev = doc["recipe"]["evidence"]
    centre, length, worst = ev["probe_peak_lr"], ev["probe_steps"], 0.0
    for r in doc.get("records") or []:
        if r["status"] not in ("stable", "spike") or not 1.5 * centre <= r["peak_lr"] <= 6 * centre:
            continue
        losses = np.array([v for step, v in r["loss_curve"] if v is not None and step < length])
        tenth = len(losses) // 10
        if tenth < 1:
            continue
        lowest = np.convolve(losses, np.ones(tenth) / tenth, "valid").min()
        worst = max(worst, float(losses[-tenth:].mean() / lowest - 1))
    return worst


def _window_noise(curve: list[list[float]], lo: float, hi: float) -> float:
    values = [v for step, v in curve if lo <= step < hi]
    level = float(np.mean(values)) if len(values) > 1 else 0.0
    return float(np.std(values)) / level if level > 0 else math.nan


def growth_rows(w: bq.Workload) -> list[str]:
    rows = []
    for k in PROBE_SEEDS:
        doc = bq.probe(w, k, [], replay=True)
        ev, length = doc["recipe"]["evidence"], doc["recipe"]["evidence"]["probe_steps"]
        weights, ratios = [], []
        for r in doc.get("records") or []:
            curve = r.get("loss_curve") or []
            if str(r["number"]) in ev["weights"] and curve:
                late = _window_noise(curve, 0.85 * length, math.inf)
                mid = _window_noise(curve, 0.35 * length, 0.5 * length)
                if math.isfinite(late / mid):
                    weights.append(ev["weights"][str(r["number"])])
                    ratios.append(late / mid)
        ratio = float(np.average(ratios, weights=weights)) if ratios else math.nan
        rows.append(f"| {w.name} | {k} | {ev['relative_noise']:.3f} | {ratio:.2f} | "
                    f"{ev['horizon_exponent']} |")  # fmt: skip
    return rows


PROGRESS_EXPONENTS = (0.1, 0.5)  # (slow progress, fast progress)


def _mean_loss(curve: list[list[float]], lo: float, hi: float) -> float:
    values = [v for step, v in curve if lo <= step < hi]
    return float(np.mean(values)) if values else math.nan


def progress(doc: dict) -> float:
    """How much the near-best trials' loss still falls mid-probe (soft-tie weighted)."""
    ev = doc["recipe"]["evidence"]
    length, weights, drops = ev["probe_steps"], [], []
    for r in doc.get("records") or []:
        curve = r.get("loss_curve") or []
        if str(r["number"]) in ev["weights"] and curve:
            first = _mean_loss(curve, 0.3 * length, 0.45 * length)
            second = _mean_loss(curve, 0.55 * length, 0.7 * length)
            if first > 0 and math.isfinite(second):
                weights.append(ev["weights"][str(r["number"])])
                drops.append((first - second) / first)
    return float(np.average(drops, weights=weights)) if drops else math.nan


def progress_row(w: bq.Workload, grid: bq.Grid, split: float, con: Console) -> str:
    today, rule, cells = [], [], []
    for k in PROBE_SEEDS:
        doc = bq.probe(w, k, [], replay=True)
        recipe, ev = doc["recipe"], doc["recipe"]["evidence"]
        pick = (float(recipe["peak_lr"]), int(recipe["warmup_steps"]))
        drop, e = progress(doc), float(ev["horizon_exponent"])
        new_e = e
        if e == HORIZON_EXPONENT and math.isfinite(drop):
            new_e = PROGRESS_EXPONENTS[drop > split]
        shrink = ev["probe_steps"] / w.full_steps
        today.append(pick)
        rule.append((float(f"{pick[0] * shrink ** (new_e - e):.3g}"), pick[1]))
        cells.append(f"{drop:+.2f}/{new_e:g}")
    return (f"| {w.name} | {w.split} | {', '.join(cells)} | {regret(w, grid, today, con):+.2f} | "
            f"{regret(w, grid, rule, con):+.2f} |")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--workloads",
        help="comma-separated (default: every workload whose training-loss searches are stored)",
    )
    p.add_argument("--exponents", action="store_true", help="the needed horizon exponents")
    p.add_argument("--noise-growth", action="store_true", help="the relative noise's growth")
    p.add_argument("--progress", type=float, help="simulate the progress rule at this split")
    p.add_argument("--late-rise", action="store_true", help="the hot trials' late rise")
    args = p.parse_args(argv)
    con, out = Console(stderr=True), Console(soft_wrap=True)
    opts = argparse.Namespace(quick=False, workers=2)
    by_name = {w.name: w for w in bq.WORKLOADS}
    if args.progress is not None:
        out.print("| workload | set | mid-probe drop / exponent (3 searches) | today | rule |")
    elif args.noise_growth:
        out.print("| workload | probe seed | relative noise | late / mid-probe | e used |")
    elif args.late_rise:
        out.print("| workload | set | hot trials' late rise (3 searches) |")
    elif args.exponents:
        out.print("| workload | set | full run's best LR | probe centre | e used | e needed | "
                  "at edge | noise | width | lowest unstable / centre | "
                  "pruned hot / centre | passes |")  # fmt: skip
    else:
        out.print("| workload | set | oracle LR / warmup | picks (LR / warmup) | as picked | "
                  "LR only | warmup only |")  # fmt: skip
    names = (
        args.workloads.split(",") if args.workloads else [w.name for w in bq.WORKLOADS if stored(w)]
    )
    if not names:
        con.print(f"no stored searches in {bq.CACHE}: run scripts/bench_quality.py first.")
        return 1
    for name in names:
        w = by_name[name]
        if args.progress is not None:
            rows = [progress_row(w, bq.oracle_grid(w, opts, con), args.progress, con)]
        elif args.noise_growth:
            rows = growth_rows(w)
        elif args.late_rise:
            rises = [late_rise(bq.probe(w, k, [], replay=True)) for k in PROBE_SEEDS]
            rows = [f"| {w.name} | {w.split} | " + ", ".join(f"{v:.3f}" for v in rises) + " |"]
        else:
            grid = bq.oracle_grid(w, opts, con)
            rows = exponent_rows(w, grid) if args.exponents else [split_row(w, grid, con)]
        for row in rows:
            out.print(row, markup=False, highlight=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
