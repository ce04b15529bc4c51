"""From probe trials to a recommended schedule: not a bare argmin.

1) stability boundary: a trial that diverged, went NaN/Inf, stalled at an LR above the best
   finished run's (a stall below it is a run too cold to learn, not an instability) or crashed
   mid-search marks its peak LR as too hot for every warmup up to its own (a longer warmup
   tolerates a higher LR, so an unstable run says nothing about longer warmups). The boundary
   at warmup w is the lowest unstable LR among trials with a similar or longer warmup;
2) margin: a candidate's peak LR must stay below boundary / margin (default 2): a probe is short
   and a full run has more chances to hit an instability than one probe did;
3) candidates are the finished runs, spiky ones included: a spike the run recovered from is a
   transient (Kalra & Barkeshli 2024: warmup-phase "catapults" recover and are not failures),
   and its score already carries whatever the spike cost. On the deep_mlp recipe most probes
   spike; keeping only the clean ones left 3-6 candidates and a peak LR that moved 3-7x from one
   search seed to the next;
4) soft ties: each candidate weighs ``exp(-(score - best) / T)`` with ``T = TEMPERATURE x |best|``
   (10%): a probe's loss is a noisy, short-horizon stand-in for the full run's, and the best
   region of the landscape is flat, so the peak LR is the weighted geometric mean of the
   candidates' LRs -- the centre of the good region, not its hottest edge or one lucky trial.
   A hard argmin or a hard tie set jumps with one trial; the weighted centre moves smoothly;
5) the warmup is a fixed 10 % of the probe (``WARMUP_PRIOR``), lengthened to at least the
   longest of spiky runs at a similar LR, up to half the probe (a spike says that LR wants more
   warmup: turning that off made the two spiky tuning workloads worse); the LR is then capped
   again by the boundary at that warmup (stability is monotone: a lower LR or a longer warmup
   is no less stable). The trials' scores rarely tell warmups apart: trained in full with the
   oracle's peak LR, the warmups the searches picked cost under 1.4 % on 18 of 24 workloads
   (``scripts/study_regret_split.py``), and three probe seeds' picks disagreed by more than 2x
   on 14 of 27, so a searched warmup was mostly noise.
   The rules it replaced, measured on the quality benchmark's stored searches
   (``scripts/bench_quality.py --replay --rule WARMUP_RULE=...``, 3 probe seeds x 2 training
   seeds): the longest near-best warmup ("longest") sat at the warmup cap in most searches
   (tuning mean +6.24 %); the soft-weighted mean of the eligible trials' warmups ("centre", the
   default until this rule) +3.77 % (weighted "median" +4.11 %, "shortest" near-best +4.88 %,
   the fit's minimum "fit" +3.52 % with the seeds' warmups 240-360x apart). Fixed at 10 %
   (replayed as a "prior" pseudo-trial outweighing every trial) the warmup spread fell within 2x
   on 22 of 27 training-loss workloads against 13, tuning +3.78 -> +3.83 %, held-out
   +32.18 -> +33.67 %; registered, then judged on three fresh scripts, two chosen so that the
   warmup matters (postln_lm, rmsprop_cnn, conv1d_series): their mean regret +14.10 ->
   +13.71 %, none worse beyond twice its pooled SE, the spread within 2x on 3 of 3 against 2
   (scripts/bench_quality_variants.md);
6) carry over to the full run (``--total-steps``). The probe is the full schedule compressed
   (same warmup fraction, same decay shape, annealed at its end), so by default the warmup
   keeps its *fraction* of the run (``--warmup-transfer steps`` keeps its length instead; a
   longer warmup is never less stable, so the fraction is the safe side), and the peak LR is
   scaled by ``(probe_steps / total_steps) ** e``: the best LR falls as training gets longer
   (short-horizon bias, Wu et al. 2018; Bjorck et al. 2024). ``e = HORIZON_EXPONENT`` (0.3),
   except where the pick sits near a stability edge the probes found (the lowest unstable LR
   at its warmup within ``EDGE_REACH`` x margin of it, :func:`near_edge`): there the edge, not
   the probes' short-horizon ranking, sets the LR, and an edge (plain SGD's ~2 / sharpness)
   hardly moves with the run's length, so ``e = HORIZON_EXPONENT_AT_EDGE`` (0.05). Measured on
   the quality benchmark's stored searches (``--replay --rule HORIZON_EXPONENT=...``, 3 probe
   seeds x 2 training seeds): 0.05 everywhere gave the tuning set +60.5% mean regret (sgd_mlp,
   plain SGD where no probe diverged, +404% with 2 of 6 full runs diverged; the other six
   +3.25%), 0.3 everywhere +3.99% (+1.60% for the six: long_mlp +7.7 -> -1.9, gru_lm
   +8.5 -> +1.2, sgd_mlp +18.4, charlm +0.7 -> +4.5) but the held-out mean +73 -> +119% (edge
   +166 -> +296, edge_long +21 -> +255: both picks sit at a found edge). No tuning search found
   an edge near its pick, so this rule keeps 0.3's tuning figures and the edge pair's 0.05
   ones. The at-edge branch was drawn after the held-out edge pair was seen, so those two no
   longer judge it: softmax_sgd and cnn_digits were added, unseen, to do that (README).
   Away from an edge, where the near-best trials' training loss is noisy relative to its level
   (the soft-tie-weighted mean of score noise / |score|, ``relative_noise``, above
   ``NOISE_SPLIT``, 0.1), ``e = HORIZON_EXPONENT_NOISY`` (1.0): such a loss is what a model
   fitting most of its batches gives, and a small-data run overfits at a hot LR over its full
   length. Drawn from the held-out rows of finetune, lightning_mlp and cnn_digits (0.16-0.24
   there, at most 0.082 in the other 54 of 63 searches, the tuning set's 0.009-0.033: its
   picks are unchanged), registered with the exponent 0.5 (plain SGD's noise-limited optimum,
   LR ~ T^-1/2), then judged on three fresh small-data scripts (cancer_mlp, diabetes_sgdm,
   fewshot_digits): their mean regret +60.8 -> +52.8 %, the rule firing on 4 of their 9
   searches. At 0.5 the picks still sat 4-26x above the full run's best LR on finetune,
   cancer_mlp and fewshot_digits (the exponents that would have landed on it: 1.05-1.9; 0.5-0.7
   on lightning_mlp and cnn_digits), as in the gap rule below: a model fitting its data learns
   by LR x steps, so its best LR falls like 1 / T. The exponent 1.0 was
   registered, then judged on three more fresh scripts (synth_cls_mlp, cnn_fewdigits,
   chartf_small): their mean regret +27.3 -> +13.2 %, the rule firing on 6 of their 9
   searches, none worse. Its known miss: a run that sees each example only a few times is
   noisy without fitting anything (smallbatch_reg, seen: +24.6 -> +46.6 %); it fired so on
   both fresh scripts of that kind met since (teacher_relu_sgd, adagrad_bow: +98 and +231
   points against the rule off; rmsprop_cnn, 13 passes over its data, +6.5). No stored signal
   told the two kinds apart; the full run's passes over its training data did on the twelve
   seen scripts where the rule fired (it helped at 20-85 passes, hurt or was even at 0-17).
   So the rule acts only where the passes are unknown or at least ``MEMORISING_PASSES`` (20,
   ``PASSES_RULE``): they come from the HF and Lightning callbacks, a plain loop's
   ``DataLoader`` (:mod:`autowarm.probe._loaders`) or ``--epochs``. Registered, then judged on
   three fresh ``DataLoader`` scripts under 20 passes (mlp_charlm, gru_huber, resmlp_radam):
   their mean regret +4.45 -> +2.82 %, the rule firing on the 3 searches of gru_huber (6
   passes: +6.68 -> +1.81 %), none worse. And where the passes are known and below
   ``MEMORISING_PASSES`` (away from an edge, the noise rule and the gap rule),
   ``e = HORIZON_EXPONENT_FRESH`` (0.1, ``FRESH_RULE``): a model that sees each example a few
   times cannot memorise it, so its best LR falls less with the run's length (the exponent
   that would have put each stored search's probe centre on its full run's best LR: median
   +0.08 over the 27 seen workloads under 20 passes). Replayed on every seen training-loss
   search with its passes stated: held-out +23.67 -> +20.15 % over 35, tuning +3.83 ->
   +13.04 % (sgd_mlp, plain SGD whose full run dies 2-3x below its probes' cliff: +12.6 ->
   +69 %, its known price); registered, then judged on three fresh ``DataLoader`` scripts
   under 20 passes (tabembed_sgdm, seq2seq_reverse, unet_denoise): their mean regret +5.21
   -> +3.83 %, all three better, no full run diverged.
   Where the probes are scored on held-out data (``score_with``, the HF and Lightning
   callbacks' eval sets) the score's noise is unknown, and reading the training loss's instead
   was rejected (``NOISE_OF``: it cannot tell batch noise from memorisation: a batch-4
   regression on fresh data lost 6 points). There the rule reads how far the near-best trials'
   held-out score ends above their own training loss, over the score (``generalization_gap``):
   above ``GAP_SPLIT`` (0.2) a model is fitting its training data (first with ``e`` 0.5). Drawn from
   the seen ``*_val`` rows (+0.34 to +0.89 on the three whose full runs want a cooler LR, -0.37
   to +0.09 on six others), registered, then judged on three fresh val-scored scripts
   (digits_small, hf_lm_small, lightning_small): their mean regret +35.9 -> +28.4 %, the rule
   firing on 6 of their 9 searches, none worse. Its exponent is ``HORIZON_EXPONENT_GAP``, 1.0
   (it was 0.5): a model fitting its data learns by LR x steps, so the full run's best LR
   falls like 1 / T; drawn from the seen ``*_val`` rows (picks still 3-35x above the oracle's
   LR at 0.5), registered, then judged on three more fresh val-scored scripts (moons_mlp,
   friedman_sgdm, chargru_small): their mean regret +17.3 -> +15.5 %, the rule firing on the 3
   searches of chargru_small (+5.70 -> +0.24 %), none worse.

Everything the choice used goes into ``recipe.evidence``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from autowarm._errors import AutowarmError
from autowarm.probe._config import (
    EDGE_REACH,
    GAP_SPLIT,
    HORIZON_EXPONENT,
    HORIZON_EXPONENT_AT_EDGE,
    HORIZON_EXPONENT_FRESH,
    HORIZON_EXPONENT_GAP,
    HORIZON_EXPONENT_NOISY,
    MARGIN,
    MEMORISING_PASSES,
    NOISE_SPLIT,
    TEMPERATURE,
    WARMUP_TRANSFER,
)
from autowarm.probe._record import TrialRecord
from autowarm.probe._score import noise, score
from autowarm.probe._status import FINISHED, UNSTABLE, settled
from autowarm.probe._surface import minimum
from autowarm.schedule._carry import carry

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


@dataclass
class Choice:
    peak_lr: float
    warmup_steps: int
    evidence: dict[str, Any] = field(default_factory=dict)


def choose(
    records: Sequence[TrialRecord],
    *,
    probe_steps: int,
    margin: float = MARGIN,
    temperature: float = TEMPERATURE,
) -> Choice:
    """Pick (peak LR, warmup) from the trials of one study; see the module docstring."""
    if temperature <= 0:
        raise ValueError(f"temperature must be positive but got {temperature}.")
    done = settled(records, exclude=("interrupted",))
    pool = _candidates(done)
    # a stall is an instability only on the hot side (Adam too hot stalls near the initial
    # loss); below the best finished run's LR it is a run too cold to make progress
    hot_from = min(pool, key=_score).peak_lr
    unstable = [
        r for r in done if _is_unstable(r) and (r.status != "stalled" or r.peak_lr > hot_from)
    ]
    # trials the search pruned above the best LR: recorded; an edge only in a variant
    hot_pruned = [r for r in done if r.status == "pruned" and r.peak_lr > hot_from]
    if PRUNED_HOT == "edge":
        unstable += [dataclasses.replace(r, status="diverged") for r in hot_pruned]
    # 1) + 2) keep a margin from the stability boundary
    eligible = [
        r
        for r in pool
        if r.peak_lr <= boundary(unstable, r.warmup_steps, probe_steps) / margin * (1 + 1e-9)
    ]
    margin_relaxed = not eligible
    if margin_relaxed:  # every finished run was near the edge: take them, then cut the LR
        eligible = pool
    # 4) soft ties: the weighted centre of the good region
    near_default = [r for r in eligible if r.warmup_steps <= LR_WARMUP_MAX * probe_steps]
    soft = _soft_tie(near_default or eligible, temperature, probe_steps)
    fitted = _fitted(soft, probe_steps) if "fit" in (LR_RULE, WARMUP_RULE) else None
    centre = fitted[0] if fitted is not None and LR_RULE == "fit" else soft.lr
    # 5) the rule's warmup (WARMUP_PRIOR of the probe), lengthened past spiky runs at a similar LR
    ruled = fitted[1] if fitted is not None and WARMUP_RULE == "fit" else _warmup(soft, probe_steps)
    spiky = [r for r in done if r.status == "spike" and centre / 2 <= r.peak_lr <= centre * 2]
    spike_warmup = max((r.warmup_steps for r in spiky), default=None)
    warmup = ruled
    if spike_warmup is not None and SPIKE_WARMUP:
        warmup = min(max(ruled, spike_warmup), probe_steps // 2)
    edge = boundary(unstable, warmup, probe_steps)
    lr = min(centre, edge / margin)
    evidence = {
        "method": "autowarm probe",
        "probe_steps": probe_steps,
        "trials": len(done),
        "statuses": _counts(done),
        "cold_stalls": sum(r.status == "stalled" and r.peak_lr <= hot_from for r in done),
        "candidates": len(pool),
        "eligible": len(eligible),
        "margin": margin,
        "margin_relaxed": margin_relaxed,
        "boundary_lr": None if math.isinf(edge) else edge,
        "lowest_unstable": _lowest(unstable),
        **soft.evidence(),
        "fitted_peak_lr": None if fitted is None else fitted[0],
        "fitted_warmup_steps": None if fitted is None else fitted[1],
        "capped_by_boundary": centre > edge / margin,
        "spiky_trials_near_lr": sorted(r.number for r in spiky),
        "spike_warmup": spike_warmup,
        "warmup_rule": WARMUP_RULE,
        "warmup_lengthened": warmup > ruled,
        "pruned_hot_lr": min((r.peak_lr for r in hot_pruned), default=None),
    }
    return Choice(peak_lr=lr, warmup_steps=int(warmup), evidence=evidence)


#: step 5's rule, one of _WARMUP_RULES (the module docstring has the measurements)
WARMUP_RULE = "fixed"
#: what each of step 5's rules takes (also the evidence's "rule" text)
_WARMUP_RULES = {
    "fixed": "{prior:.0%} of the probe",
    "centre": "weighted mean of their warmups",
    "median": "weighted median of their warmups",
    "longest": "the longest warmup among trials with weight >= 1/e",
    "shortest": "the shortest warmup among trials with weight >= 1/e",
    "fit": "the minimum of a weighted quadratic fit of the scores",
    "prior": "weighted mean of their warmups and of a prior warmup (WARMUP_PRIOR of the probe, "
    "weight WARMUP_PRIOR_WEIGHT)",
}
#: the "fixed" rule's warmup, a fraction of the probe (a conventional 10 %); in the "prior"
#: rule, a pseudo-trial at this fraction weighing WARMUP_PRIOR_WEIGHT (the best trial weighs 1)
WARMUP_PRIOR = 0.1
WARMUP_PRIOR_WEIGHT = 1.0
#: lengthen the warmup to the longest of spiky trials at a similar LR
SPIKE_WARMUP = True
#: step 4 reads only the trials warming up for at most this fraction of the probe, all if none
#: does (a variant: the LR read near the warmup the recipe keeps; bench_quality_variants.md)
LR_WARMUP_MAX = 1.0
#: trials pruned at an LR above the best finished one: ignored (""), counted as unstable
#: ("edge"), or counted only by the at-edge test of step 6 ("reach") -- variants measured in
#: scripts/bench_quality_variants.md
PRUNED_HOT = ""
#: step 4's centre: over every eligible trial ("weighted"), the "near"-best ones only, or the
#: minimum of a weighted quadratic "fit" of the scores (:mod:`._surface`); WARMUP_RULE "fit" too
LR_RULE = "weighted"
NEAR = math.exp(-1) - 1e-12  # weight of a near-best trial: within one temperature of the best


def _fitted(soft: _SoftTie, probe_steps: int) -> tuple[float, int] | None:
    """(peak LR, warmup) at the minimum of the weighted quadratic fit of the scores, inside
    the near-best trials' box (:mod:`._surface`); None when too few trials to fit."""
    near = soft.near
    x = [math.log(r.peak_lr) for r in soft.eligible]
    w = [r.warmup_steps / probe_steps for r in soft.eligible]
    box_x = (min(math.log(r.peak_lr) for r in near), max(math.log(r.peak_lr) for r in near))
    box_w = (min(r.warmup_steps for r in near) / probe_steps,
             max(r.warmup_steps for r in near) / probe_steps)  # fmt: skip
    found = minimum(x, w, [_score(r) for r in soft.eligible], soft.weights, (box_x, box_w))
    if found is None:
        return None
    return math.exp(found[0]), round(found[1] * probe_steps)


def _warmup(soft: _SoftTie, probe_steps: int) -> int:
    if WARMUP_RULE == "fixed":
        return round(WARMUP_PRIOR * probe_steps)
    if WARMUP_RULE in ("centre", "prior"):
        w = np.array([r.warmup_steps for r in soft.eligible], dtype=float)
        prior = WARMUP_PRIOR_WEIGHT if WARMUP_RULE == "prior" else 0.0
        total = float(np.sum(soft.weights * w)) + prior * WARMUP_PRIOR * probe_steps
        return round(total / (float(soft.weights.sum()) + prior))
    if WARMUP_RULE == "median":  # the soft-weighted median of the eligible trials' warmups
        order = sorted(zip((r.warmup_steps for r in soft.eligible), soft.weights))
        cum = np.cumsum([wt for _, wt in order])
        return int(order[int(np.searchsorted(cum, cum[-1] / 2))][0])
    if WARMUP_RULE == "shortest":
        return min(r.warmup_steps for r in soft.near)
    return max(r.warmup_steps for r in soft.near)


def _score(r: TrialRecord) -> float:
    return r.score  # type: ignore[return-value]  # candidates all have one


def _counts(done: Sequence[TrialRecord]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in done:
        counts[r.status] = counts.get(r.status, 0) + 1
    return counts


def _candidates(done: Sequence[TrialRecord]) -> list[TrialRecord]:
    """3) every finished run with a score, spiky or not; none is one clear error line."""
    pool = [
        r for r in done if r.status in FINISHED and r.score is not None and math.isfinite(r.score)
    ]
    if not pool:
        raise AutowarmError(
            f"no probe trial finished stably ({_fmt_counts(_counts(done))}); lower the LR range "
            "(--lr-range MIN MAX), lengthen --max-warmup, or check the script by hand."
        )
    return pool


def _lowest(unstable: Sequence[TrialRecord]) -> dict[str, Any] | None:
    if not unstable:
        return None
    lowest = min(unstable, key=lambda r: r.peak_lr)
    return {
        "trial": lowest.number,
        "peak_lr": lowest.peak_lr,
        "warmup_steps": lowest.warmup_steps,
        "status": lowest.status,
    }


@dataclass
class _SoftTie:
    """Step 4: each eligible trial weighs ``exp(-(score - best) / temperature)``."""

    eligible: list[TrialRecord]
    best: TrialRecord
    temperature: float  # absolute: the relative one times |best score|
    weights: np.ndarray
    lr: float  # the weighted geometric mean of the eligible trials' LRs
    width: float = 0.0  # the weighted standard deviation of their ln LRs (:func:`_width`)
    relative_noise: float = 0.0  # the weighted mean of their training loss's noise / level
    gap: float | None = None  # scored on held-out data: the weighted mean of their _gap()

    @property
    def near(self) -> list[TrialRecord]:
        """The near-best trials: within one temperature of the best (weight >= 1/e)."""
        return [r for r, wt in zip(self.eligible, self.weights) if wt >= NEAR]

    def evidence(self) -> dict[str, Any]:
        top = sorted(zip(self.eligible, self.weights), key=lambda t: -t[1])[:8]
        return {
            "best_trial": self.best.number,
            "best_score": self.best.score,
            "best_peak_lr": self.best.peak_lr,
            "best_warmup_steps": self.best.warmup_steps,
            "temperature": self.temperature,
            "weights": {str(r.number): round(float(wt), 4) for r, wt in top},
            "near_best_trials": sorted(r.number for r in self.near),
            "lr_width": self.width,
            "relative_noise": self.relative_noise,
            "generalization_gap": self.gap,
            "rule": (
                "weight = exp(-(score - best) / temperature) over the eligible trials; peak LR "
                "= weighted geometric mean of their LRs, warmup = "
                f"{_WARMUP_RULES[WARMUP_RULE].format(prior=WARMUP_PRIOR)}"
                f"{', at least the longest of spiky trials at a similar LR' * SPIKE_WARMUP}; "
                "peak LR <= boundary_lr / margin"
            ),
        }


#: what the soft-tie temperature is a fraction of: "best" -- |best score| (the default); or, a
#: variant measured in scripts/bench_quality_variants.md, "gain" -- what the best trial learned,
#: the trials' median initial loss less its score, times TEMPERATURE_GAIN: unmoved by a constant
#: added to the loss (an LM's 2-5 nats of floor make |best| a loose scale)
TEMPERATURE_BASE = "best"
TEMPERATURE_GAIN = 0.1


def _temperature(eligible: list[TrialRecord], best: TrialRecord, temperature: float) -> float:
    """Step 4's absolute temperature (see ``TEMPERATURE_BASE``)."""
    if TEMPERATURE_BASE not in ("best", "gain"):
        raise ValueError(f"TEMPERATURE_BASE must be 'best' or 'gain' but got {TEMPERATURE_BASE!r}.")
    initial = [x for x in (r.initial_loss for r in eligible) if x is not None and math.isfinite(x)]
    gain = float(np.median(initial)) - _score(best) if initial else math.nan
    if TEMPERATURE_BASE == "gain" and gain > 0:  # unknown (NaN) fails too
        return TEMPERATURE_GAIN * gain
    # relative to the loss's size; a best loss of exactly 0 leaves the temperature absolute
    return temperature * abs(_score(best)) if best.score != 0 else temperature


#: where step 6's noise rule reads a trial's noise: "training" -- its training loss, whatever
#: scores it (a trial scored by score_with() on held-out data still fits its training batches
#: as the script does); "score" -- the score's own, unknown for a score_with() value, so the
#: rule was off in every search scored on validation (the HF and Lightning callbacks' default)
NOISE_OF = "score"  # "training" was rejected on fresh scripts (bench_quality_variants.md)
_NOISE_OF = ("training", "score")


def _relative_noise(r: TrialRecord, probe_steps: int) -> float:
    """A finished trial's training-loss noise over its level (see ``NOISE_OF``)."""
    if not r.script_scored:
        return r.noise / abs(_score(r)) if _score(r) else 0.0
    if NOISE_OF not in _NOISE_OF:
        raise ValueError(f"NOISE_OF must be one of {_NOISE_OF} but got {NOISE_OF!r}.")
    if NOISE_OF == "score":
        return 0.0
    losses = r.losses(probe_steps)  # the score's own noise is the training loss's, unscored
    level = score(losses, probe_steps)
    return noise(losses, probe_steps) / abs(level) if level and math.isfinite(level) else 0.0


def _soft_tie(eligible: list[TrialRecord], temperature: float, probe_steps: int) -> _SoftTie:
    best = min(eligible, key=_score)
    temp = _temperature(eligible, best, temperature)
    weights = np.array([math.exp(-(_score(r) - _score(best)) / temp) for r in eligible])
    log_lrs = np.log([r.peak_lr for r in eligible])
    w_lr = weights if LR_RULE == "weighted" else np.where(weights >= NEAR, weights, 0.0)
    lr = float(math.exp(np.sum(w_lr * log_lrs) / w_lr.sum()))
    rel = np.array([_relative_noise(r, probe_steps) for r in eligible])
    rel_noise = float(np.sum(weights * rel) / weights.sum())
    gap = None  # only a held-out score can end above the training loss
    if eligible[0].script_scored:
        gaps = np.array([_gap(r, probe_steps) for r in eligible])
        gap = float(np.sum(weights * gaps) / weights.sum())
    return _SoftTie(eligible, best, temp, weights, lr, _width(log_lrs, weights), rel_noise, gap)


def _gap(r: TrialRecord, probe_steps: int) -> float:
    """How far a trial scored by score_with() on held-out data ends above its own training
    loss, over the score: a model fitting its training data leaves a gap, fresh batches do not."""
    if not r.score:
        return 0.0
    level = score(r.losses(probe_steps), probe_steps)
    return (r.score - level) / abs(r.score) if math.isfinite(level) else 0.0


def _width(log_lrs: np.ndarray, weights: np.ndarray) -> float:
    """How wide the good region is: the soft-tie-weighted standard deviation of ln LR."""
    mu = float(np.sum(weights * log_lrs) / weights.sum())
    return float(math.sqrt(np.sum(weights * (log_lrs - mu) ** 2) / weights.sum()))


def _fmt_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no trials"


def near_edge(choice: Choice, margin: float) -> bool:
    """Step 6: the pick sits near a stability edge the probes saw -- the lowest unstable LR
    at its warmup is within ``EDGE_REACH`` x the margin of it (the margin alone puts it at
    >= 1 x margin). Read at call time, so a replay's --rule reaches EDGE_REACH."""
    edge = choice.evidence["boundary_lr"]
    if PRUNED_HOT == "reach" and choice.evidence.get("pruned_hot_lr") is not None:
        edge = min(edge or math.inf, choice.evidence["pruned_hot_lr"])
    return edge is not None and edge <= EDGE_REACH * margin * choice.peak_lr * (1 + 1e-9)


#: step 6's exponent away from a found edge: by the probes' relative loss noise ("noise", the
#: default: HORIZON_EXPONENT_NOISY above NOISE_SPLIT, else HORIZON_EXPONENT); HORIZON_EXPONENT
#: alone (""), the rule before it; or, a rejected variant, by the width of the soft-tie region
#: ("width"): a score sharply peaked in LR (width < WIDTH_SPLIT, in ln LR) takes
#: HORIZON_EXPONENT_NARROW, a wide, flat good region HORIZON_EXPONENT_WIDE. Fitted on the tuning
#: set, replayed on the stored searches: tuning +3.65 -> +1.36 %, held-out +43.3 -> +48.9 %
#: (plain-SGD and post-LN scripts are narrow too: poly_sgdm, seqcls_postln)
HORIZON_RULE = "noise"
_HORIZON_RULES = ("", "width", "noise")
WIDTH_SPLIT = 0.74
HORIZON_EXPONENT_NARROW = 0.5
HORIZON_EXPONENT_WIDE = 0.1


#: the noise rule's form for searches scored on held-out data (score_with(), a callback's eval
#: set), whose score has no known noise: HORIZON_EXPONENT_GAP where the near-best trials'
#: held-out score ends above their training loss by more than GAP_SPLIT of it (a model fitting
#: its training data). Registered, then adopted on three fresh scripts (module docstring);
#: False: the rule before it, off in such searches
GAP_RULE = True

#: the noise rule only where the full run's passes over its training data are unknown or at
#: least MEMORISING_PASSES (a run that sees each example a few times is noisy without
#: memorising them; registered, then adopted on three fresh scripts: module docstring);
#: False: the rule before it, by the noise alone
PASSES_RULE = True

#: where the full run's passes over its training data are known and below MEMORISING_PASSES,
#: the default exponent is HORIZON_EXPONENT_FRESH instead of HORIZON_EXPONENT (a model that
#: cannot memorise its data keeps more of the probes' LR; registered, then adopted on three
#: fresh scripts: module docstring); False: the rule before it
FRESH_RULE = True


def horizon_exponent_for(choice: Choice, at_edge: bool, passes: float | None = None) -> float:
    """Step 6's exponent for ``choice``, whose full run makes ``passes`` over its training data
    (None: unknown); read at call time, so a replay's --rule reaches it."""
    if HORIZON_RULE not in _HORIZON_RULES:
        raise ValueError(f"HORIZON_RULE must be one of {_HORIZON_RULES} but got {HORIZON_RULE!r}.")
    if at_edge:
        return HORIZON_EXPONENT_AT_EDGE
    if HORIZON_RULE == "width":
        narrow = choice.evidence["lr_width"] < WIDTH_SPLIT
        return HORIZON_EXPONENT_NARROW if narrow else HORIZON_EXPONENT_WIDE
    memorises = not PASSES_RULE or passes is None or passes >= MEMORISING_PASSES
    if HORIZON_RULE == "noise" and choice.evidence["relative_noise"] > NOISE_SPLIT and memorises:
        return HORIZON_EXPONENT_NOISY
    gap = choice.evidence.get("generalization_gap")
    if HORIZON_RULE == "noise" and GAP_RULE and gap is not None and gap > GAP_SPLIT:
        return HORIZON_EXPONENT_GAP
    if FRESH_RULE and passes is not None and passes < MEMORISING_PASSES:
        return HORIZON_EXPONENT_FRESH
    return HORIZON_EXPONENT


def recommend(
    records: Sequence[TrialRecord],
    *,
    probe_steps: int,
    total_steps: int | None,
    decay: str,
    min_lr_ratio: float = 0.0,
    margin: float = MARGIN,
    warmup_transfer: str = WARMUP_TRANSFER,
    horizon_exponent: float | None = None,
    extra_evidence: dict[str, Any] | None = None,
) -> Any:
    """The :class:`autowarm.Recipe` for the full run (``total_steps`` may be None;
    ``horizon_exponent`` None: step 6's rule)."""
    from autowarm import Recipe

    # the module's TEMPERATURE read at call time (a replay's --rule TEMPERATURE= reaches it)
    choice = choose(records, probe_steps=probe_steps, margin=margin, temperature=TEMPERATURE)
    at_edge = near_edge(choice, margin)
    held = False  # the full run's passes held the noise rule's cut back (noisy_loss says why)
    by_passes = None  # the exponent on either side of MEMORISING_PASSES: a longer run has more
    if horizon_exponent is None:
        passes = (extra_evidence or {}).get("data_passes")
        horizon_exponent = horizon_exponent_for(choice, at_edge, passes)
        held = horizon_exponent != HORIZON_EXPONENT_NOISY == horizon_exponent_for(choice, at_edge)
        if passes is not None:  # schedule/_carry.py: the same rule for a run of another length
            by_passes = {
                "split": MEMORISING_PASSES,
                "below": horizon_exponent_for(choice, at_edge, 0.0),
                "from": horizon_exponent_for(choice, at_edge, float(MEMORISING_PASSES)),
            }
    peak_lr, warmup, factor = carry(
        choice.peak_lr,
        choice.warmup_steps,
        probe_steps=probe_steps,
        total_steps=total_steps,
        how=warmup_transfer,
        exponent=horizon_exponent,
    )
    evidence = {
        **choice.evidence,
        "probe_peak_lr": choice.peak_lr,
        "probe_warmup_steps": choice.warmup_steps,
        "warmup_transfer": warmup_transfer,
        "near_stability_edge": at_edge,
        "horizon_exponent": horizon_exponent,
        "horizon_exponent_by_passes": by_passes,
        "horizon_factor": factor,
        "noise_cut_held": held,
        **(extra_evidence or {}),
    }
    return Recipe(
        peak_lr=peak_lr,
        warmup_steps=warmup,
        total_steps=total_steps,
        decay=decay,
        min_lr_ratio=min_lr_ratio,
        evidence=evidence,
    )
