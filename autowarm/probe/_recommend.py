"""From probe trials to a recommended schedule: not a bare argmin.

1) stability boundary: a trial that diverged, went NaN/Inf, stalled at an LR above the best
   finished run's (a stall below it is a run too cold to learn, not an instability) or crashed
   mid-search marks its peak LR as too hot for every warmup up to its own (a longer warmup
   tolerates a higher LR, so an unstable run says nothing about longer warmups). The boundary
   at warmup w is the lowest unstable LR among trials with a similar or longer warmup;
2) margin: a candidate's peak LR must stay below boundary / margin (default 2): a probe is short
   and a full run has more chances to hit an instability than one probe did;
3) noise: a trial whose score is within ``max(2·SE_diff, 0.5%·|best|)`` of the best eligible
   score ties with it, where SE_diff is the standard error of the score difference from the two
   runs' per-step losses paired by step (a seeded script shows every trial the same batches, so
   most mini-batch noise cancels in the difference); one lucky mini-batch does not decide;
4) conservative choice among ties: the geometric mean of their peak LRs (the centre of the
   flat region, not its hottest edge) and the longest of their warmups, capped again by the
   boundary. Stability is monotone (a lower LR or a longer warmup is no less stable), so the
   point is safe: the hottest tied run was stable with a shorter or equal warmup. Spiky runs
   (finished, but the monitor saw spikes) at a similar LR are a soft boundary: the warmup is
   lengthened to at least the longest of theirs;
5) carry over to the full run (``--total-steps``). The probe is the full schedule compressed
   (same warmup fraction, same decay shape, annealed at its end), so by default the warmup
   keeps its *fraction* of the run (``--warmup-transfer steps`` keeps its length instead; a
   longer warmup is never less stable, so the fraction is the safe side), and the peak LR is
   scaled by ``(probe_steps / total_steps) ** horizon_exponent`` (default 0.3): the best LR
   falls as training gets longer (short-horizon bias, Wu et al. 2018; Bjorck et al. 2024). The
   exponent is measured: on the quality benchmark's charlm oracle grid the best LR of 100-step
   probes (~8e-3) is twice the best LR of the 1000-step run (~4e-3), 10x longer: 10^-0.3 = 0.5.

Everything the choice used goes into ``recipe.evidence``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from autowarm._errors import AutowarmError
from autowarm.probe._search import SCORE_WINDOW, UNSTABLE, TrialRecord

#: the full run's best LR ~ the probe's x (probe_steps / total_steps) ** HORIZON_EXPONENT
HORIZON_EXPONENT = 0.3
#: scores within this fraction of the best are ties even with no measurable noise
REL_TOL = 0.005
#: "similar" warmup for the boundary: an unstable trial at warmup w_u bounds candidates with
#: warmup w <= SIMILAR * w_u + 5% of the probe
SIMILAR = 1.5


def _is_unstable(r: TrialRecord) -> bool:
    return r.status in UNSTABLE or (r.status == "failed" and r.failure == "crash")


def boundary(records: Sequence[TrialRecord], warmup: int, probe_steps: int) -> float:
    """The lowest peak LR seen unstable at a warmup similar to or longer than ``warmup``."""
    slack = 0.05 * probe_steps
    lrs = [
        r.peak_lr for r in records if _is_unstable(r) and warmup <= SIMILAR * r.warmup_steps + slack
    ]
    return min(lrs) if lrs else math.inf


def paired_se(a: TrialRecord, b: TrialRecord, probe_steps: int) -> float | None:
    """Standard error of ``score(a) - score(b)`` from their stored per-step losses, paired by
    step over the score window; None when they have too few common points."""
    if a is b:
        return 0.0
    start = probe_steps - max(1, math.ceil(SCORE_WINDOW * probe_steps))
    la = {int(s): v for s, v in a.losses if v is not None and s >= start}
    lb = {int(s): v for s, v in b.losses if v is not None and s >= start}
    common = sorted(set(la) & set(lb))
    if len(common) < 4:
        return None
    d = np.array([la[s] - lb[s] for s in common])
    return float(d.std(ddof=1) / math.sqrt(len(d)))


@dataclass
class Choice:
    peak_lr: float
    warmup_steps: int
    evidence: dict[str, Any] = field(default_factory=dict)


def choose(
    records: Sequence[TrialRecord],
    *,
    probe_steps: int,
    margin: float = 2.0,
    rel_tol: float = REL_TOL,
    rule: str = "centre",
) -> Choice:
    """Pick (peak LR, warmup) from the trials of one study; see the module docstring."""
    done = [r for r in records if r.status not in ("running", "waiting", "interrupted")]
    counts: dict[str, int] = {}
    for r in done:
        counts[r.status] = counts.get(r.status, 0) + 1
    # candidates: finished runs with a score; spiky runs only when no run was clean
    scored = [r for r in done if r.score is not None and math.isfinite(r.score)]
    pool = [r for r in scored if r.status == "stable"] or [r for r in scored if r.status == "spike"]
    if not pool:
        raise AutowarmError(
            f"no probe trial finished stably ({_fmt_counts(counts)}); lower the LR range "
            "(--lr-range MIN MAX), lengthen --max-warmup, or check the script by hand."
        )
    # a stall is an instability only on the hot side (Adam too hot stalls near the initial
    # loss); below the best finished run's LR it is a run too cold to make progress
    hot_from = min(pool, key=lambda r: r.score).peak_lr  # type: ignore[arg-type,return-value]
    unstable = [
        r for r in done if _is_unstable(r) and (r.status != "stalled" or r.peak_lr > hot_from)
    ]
    cold = sum(r.status == "stalled" and r.peak_lr <= hot_from for r in done)

    # 1) + 2) keep a margin from the stability boundary
    def cap(r: TrialRecord) -> float:
        return boundary(unstable, r.warmup_steps, probe_steps) / margin

    eligible = [r for r in pool if r.peak_lr <= cap(r) * (1 + 1e-9)]
    margin_relaxed = not eligible
    if margin_relaxed:  # every finished run was near the edge: take them, then cut the LR
        eligible = pool

    # 3) noise: ties with the best. Trials of a seeded script see the same batches, so their
    # per-step noise is shared: the noise of a *difference* of scores is the spread of the
    # paired per-step differences over the window (much smaller than either run's own noise);
    # without stored curves, fall back to sqrt(2) x the typical per-run standard error.
    best = min(eligible, key=lambda r: r.score)  # type: ignore[arg-type,return-value]
    se = float(np.median([r.noise for r in eligible])) if eligible else 0.0
    floor = rel_tol * abs(best.score)  # type: ignore[arg-type]

    def tol_for(r: TrialRecord) -> float:
        pse = paired_se(r, best, probe_steps)
        return max(2.0 * (pse if pse is not None else math.sqrt(2.0) * se), floor)

    ties = [r for r in eligible if r.score <= best.score + tol_for(r)]  # type: ignore[operator]
    tol = max((tol_for(r) for r in eligible if r is not best), default=floor)

    # 4) the centre of the tied set, capped by the boundary at the chosen warmup
    lr = float(math.exp(np.mean([math.log(r.peak_lr) for r in ties])))
    # the longest tied warmup: warmup is cheap insurance (never less stable, and in the full
    # runs of the quality benchmark's oracle grid it costs < 1.5% loss at a good LR), while a
    # short probe cannot see the benefit a long warmup brings over a long run
    warmup = max(r.warmup_steps for r in ties)
    if rule == "argmin":
        lr, warmup = best.peak_lr, best.warmup_steps
    # stability is monotone (a lower LR or a longer warmup is no less stable): the hottest tied
    # run had at most this warmup and at least this LR and was stable, so this point is too
    # spikes are a soft boundary: runs at a similar LR (within 2x) that spiked with warmups up to
    # w_s say the early phase is rough at this LR -- step out of it along the cheap axis, the
    # warmup (on the deep_mlp recipe this is what moves the choice to the long warmups that the
    # full runs prefer; a 100-step probe alone scores them slightly worse)
    spiky = [r for r in done if r.status == "spike" and lr / 2 <= r.peak_lr <= lr * 2]
    spike_warmup = max((r.warmup_steps for r in spiky), default=None)
    if spike_warmup is not None and rule != "argmin":
        warmup = min(max(warmup, spike_warmup), probe_steps // 2)
    edge = boundary(unstable, warmup, probe_steps)
    capped = lr > edge / margin
    lr = min(lr, edge / margin)

    lowest = min(unstable, key=lambda r: r.peak_lr) if unstable else None
    evidence: dict[str, Any] = {
        "method": "autowarm probe",
        "probe_steps": probe_steps,
        "trials": len(done),
        "statuses": counts,
        "cold_stalls": cold,
        "candidates": len(pool),
        "eligible": len(eligible),
        "margin": margin,
        "margin_relaxed": margin_relaxed,
        "boundary_lr": None if math.isinf(edge) else edge,
        "lowest_unstable": None
        if lowest is None
        else {
            "trial": lowest.number,
            "peak_lr": lowest.peak_lr,
            "warmup_steps": lowest.warmup_steps,
            "status": lowest.status,
        },
        "best_trial": best.number,
        "best_score": best.score,
        "best_peak_lr": best.peak_lr,
        "best_warmup_steps": best.warmup_steps,
        "noise_se": se,
        "tie_tolerance": tol,
        "tied_trials": sorted(r.number for r in ties),
        "rule": (
            "ties = eligible trials within tie_tolerance of the best score; peak LR = geometric "
            "mean of the ties' LRs, warmup = the longest of their warmups; peak LR <= "
            "boundary_lr / margin"
        ),
        "capped_by_boundary": capped,
        "spiky_trials_near_lr": sorted(r.number for r in spiky),
        "spike_warmup": spike_warmup,
    }
    return Choice(peak_lr=lr, warmup_steps=int(warmup), evidence=evidence)


def _fmt_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no trials"


def horizon_factor(probe_steps: int, total_steps: int | None, exponent: float) -> float:
    """How much lower the full run's peak LR is than the probe's best: ``(probe/total)^exponent``
    for a run longer than the probe; 1 when the run length is unknown or not longer."""
    if total_steps is None or total_steps <= probe_steps:
        return 1.0
    return float((probe_steps / total_steps) ** exponent)


def carry_warmup(warmup: int, *, probe_steps: int, total_steps: int | None, how: str) -> int:
    """The probe's warmup in the full run: the same number of steps (``steps``), or the same
    fraction of the run (``fraction``); never more than half the run."""
    if total_steps is None:
        return warmup
    w = warmup if how == "steps" else round(warmup / probe_steps * total_steps)
    return int(min(w, total_steps // 2))


def recommend(
    records: Sequence[TrialRecord],
    *,
    probe_steps: int,
    total_steps: int | None,
    decay: str,
    min_lr_ratio: float = 0.0,
    margin: float = 2.0,
    warmup_transfer: str = "fraction",
    horizon_exponent: float = HORIZON_EXPONENT,
    extra_evidence: dict[str, Any] | None = None,
) -> Any:
    """The :class:`autowarm.Recipe` for the full run (``total_steps`` may be None)."""
    from autowarm import Recipe

    choice = choose(records, probe_steps=probe_steps, margin=margin)
    warmup = carry_warmup(
        choice.warmup_steps, probe_steps=probe_steps, total_steps=total_steps, how=warmup_transfer
    )
    factor = horizon_factor(probe_steps, total_steps, horizon_exponent)
    evidence = {
        **choice.evidence,
        "probe_peak_lr": choice.peak_lr,
        "probe_warmup_steps": choice.warmup_steps,
        "warmup_transfer": warmup_transfer,
        "horizon_exponent": horizon_exponent,
        "horizon_factor": factor,
        **(extra_evidence or {}),
    }
    return Recipe(
        peak_lr=float(f"{choice.peak_lr * factor:.3g}"),
        warmup_steps=warmup,
        total_steps=total_steps,
        decay=decay,
        min_lr_ratio=min_lr_ratio,
        evidence=evidence,
    )
