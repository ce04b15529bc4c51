"""When to say a recommendation is unsure: what the trials could not show.

A search answers inside the box it was given, from the trials it ran. Eight things make its
answer weaker than it looks, and each becomes one line of the report and one entry of
``recipe.evidence["doubts"]`` (``kind``, ``text``, ``fix``: the flag that addresses it):

1) ``lr_top`` / ``lr_bottom``: the best trial sits at an end of the LR range (its last tenth,
   in log scale) and nothing beyond it was seen unstable -- the optimum may lie outside. A
   search widens its default range on this doubt while it has trials left
   (:mod:`autowarm.probe._widen`); the report says it when it still holds at the end;
2) ``warmup_cap``: every near-best trial uses (about) the longest warmup searched, while the
   recipe keeps its fixed fraction of the run (``WARMUP_PRIOR``, :mod:`._recommend`, step 5).
   The line says so and what to compare; it does not move the recipe: over the quality
   suite's 204 stored searches this held on 17 (10 workloads), and the full runs' best warmup
   was at most 15 % of the run on 9 of those workloads (0 on four; 30 % on tanh_mse):
   long-warmup probes mostly win by a cooler early LR, which the short horizon favours;
3) ``few_near_best``: fewer than three trials within one temperature of the best -- another
   search seed is likely to pick differently;
4) ``no_instability``: no trial went unstable, so no stability edge was found and the margin
   never acted: the LR rests on the probes' short-horizon losses alone (short probes prefer a
   lower LR than a full run: Wu et al. 2018). Its fix is LRs higher up, or, where trials at
   ``EXPLORED`` (4) times the best LR or more already ran (and did worse) without going
   unstable, longer probes;
5) ``held_by_margin``: trials that scored better than every trial the margin allows sat within
   the margin below an LR that went unstable -- the best LR may sit just under that edge, as on
   the quality suite's edge, edge_long and lsq_digits (plain SGD at a cliff, where the margin's
   2x cost them 20-166 %). The pick stays on the safe side; the line says what was held back
   and the ``--margin`` that would admit it, a diverged full run being the risk;
6) ``flat_ranking``: the near-best trials span more than ``FLAT`` (100x) in peak LR -- the
   probes hardly tell LRs apart, so the pick is the middle of that span, not a measured
   optimum. Over the quality suite's 63 stored searches this holds on all three of
   vit_digits (a tiny ViT probed for 40 steps: spans of 220-12,000x; its probes' ranking
   correlates with the full runs' at rho 0.01) and on none of the others (at most 21x,
   gpt_nano; seqcls_postln, a post-LN encoder added unseen to check it, 1.0-2.2x). Probes
   twice as long cut vit_digits' regret from +49 % to +15 % at the same budget (10 trials of
   80 steps), and then the near-best trials span 1-4x, so the fix is a longer ``--steps``;
7) ``noisy_loss``: the near-best trials' training loss is noisy for its level (their score
   noise over |score| above ``NOISE_SPLIT``, the rule that cuts the LR more for the full run,
   :mod:`autowarm.probe._recommend` step 6): what a model fitting most of its training batches
   gives. Then the probes rank LRs by a loss the full run will overfit. Scoring the probes on
   held-out data (``autowarm.score_with``) measures what the full run is judged by: over the
   quality suite's 11 scripts probed both ways it did better on 7 (finetune -2.7 against
   +7.9 %, hf_smalldata +8.4 against +32.2 %), worse on 4 (synth_cls_mlp +36.8 against +0.6 %;
   README, *Quality*). The fix named fits the script: an ``eval_dataset`` under the HF
   Trainer, a validation loop under Lightning (their callbacks score on those). Where the
   rule's cut set the LR, the text also says when it is too much: a run that sees each example
   only a few times is noisy without overfitting (smallbatch_reg +47 %, teacher_relu_sgd
   +110 %, adagrad_bow +236 % with the cut; +18, +13 and +5 % without it), and
   ``--epochs`` (how many times the run sees each example) then lifts the cut below
   ``MEMORISING_PASSES``. Where the passes are known (the HF and Lightning callbacks, a plain
   loop's ``DataLoader``, ``--epochs``), the text says them: below ``MEMORISING_PASSES`` (20: on
   the suite the cut helped on every script making 20-85 passes and on none making 0-17) the
   rule does not cut, and the text says why the LR was left alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from autowarm.probe._config import (
    HORIZON_EXPONENT,
    HORIZON_EXPONENT_NOISY,
    MEMORISING_PASSES,
    NOISE_SPLIT,
    WIDEN_FACTOR,
)
from autowarm.probe._recommend import _candidates, _is_unstable, boundary
from autowarm.probe._record import TrialRecord
from autowarm.probe._status import FINISHED

#: "at the end of the range": within this fraction of the range's log width from an end
EDGE = 0.1
#: "at the warmup cap": at least this fraction of the longest warmup searched
CAP = 0.8
#: fewer near-best trials than this and a search's pick is likely to move with its seed
FEW = 3
#: near-best trials spanning more than this ratio of peak LRs: the probes do not rank LRs
FLAT = 100.0


def _warmup_cap(warmup_max: int, evidence: dict[str, Any]) -> dict[str, str]:
    """Doubt 2: the recipe's warmup and the cap the near-best trials sat at, as fractions."""
    probe_steps = int(evidence["probe_steps"])
    cap, kept = warmup_max / probe_steps, evidence.get("probe_warmup_steps", 0) / probe_steps
    return {
        "kind": "warmup_cap",
        "text": f"every near-best trial warms up for about the longest warmup searched "
        f"({warmup_max} probe steps, {cap:.0%} of the probe) while the recipe's is {kept:.0%}: "
        "in short probes a long warmup often wins only by its cooler early LR",
        "fix": f"compare full runs at the recipe's warmup and at {cap:.0%} of the run",
    }


def doubts(
    records: Sequence[TrialRecord],
    evidence: dict[str, Any],
    *,
    lr_range: tuple[float, float],
    warmup_max: int,
) -> list[dict[str, str]]:
    """The doubts about one recommendation (its ``evidence`` as :func:`recommend` made it)."""
    by_number = {r.number: r for r in records}
    near = [by_number[n] for n in evidence.get("near_best_trials", []) if n in by_number]
    unstable = _unstable(records, evidence)
    out: list[dict[str, str]] = []
    edge = lr_edge(records, evidence, lr_range=lr_range)
    if edge is not None:
        out.append(edge)
    if near and warmup_max > 0 and all(r.warmup_steps >= CAP * warmup_max for r in near):
        out.append(_warmup_cap(warmup_max, evidence))
    if 0 < len(near) < FEW:
        out.append({
            "kind": "few_near_best",
            "text": f"only {len(near)} trial{'s' if len(near) > 1 else ''} near the best: "
            "another search seed is likely to pick differently",
            "fix": "more --trials",
        })  # fmt: skip
    if not unstable:
        out.append(_no_instability(records, evidence))
    held = held_by_margin(records, evidence, unstable)
    if held is not None:
        out.append(held)
    flat = flat_ranking(near, int(evidence["probe_steps"]))
    if flat is not None:
        out.append(flat)
    noisy = float(evidence.get("relative_noise") or 0.0)
    if noisy > NOISE_SPLIT and evidence.get("scored_by") != "score_with":  # else the fix is in
        out.append({
            "kind": "noisy_loss",
            "text": f"the near-best trials' training loss is noisy for its level ({noisy:.0%} "
            "of it), as when a model fits most of its training batches: the full run may then "
            f"overfit at the probes' LR, and the training loss ranks LRs poorly{_cut(evidence)}",
            "fix": _held_out_fix(evidence.get("script_trainer")),
        })  # fmt: skip
    return out


def _cut(evidence: dict[str, Any]) -> str:
    """Whether the noise rule's exponent set the LR: how much it cut, and when that is wrong --
    judged by the full run's passes over its data where they are known."""
    from autowarm.probe import _recommend  # its PASSES_RULE read now (a replay's --rule)

    passes, data = evidence.get("data_passes"), evidence.get("script_data") or {}
    examples = f" over its {data['train_examples']:,} training examples" if data else ""
    over = f"{passes:.3g} passes{examples}" if passes is not None else ""
    if evidence.get("noise_cut_held"):  # the rule's own verdict (probe/_recommend.py)
        return f"; the LR was not cut for it: the full run makes only {over}, too few to memorise"
    if evidence.get("horizon_exponent") != HORIZON_EXPONENT_NOISY:
        return ""
    cut = f"; the LR was cut for it ({evidence['horizon_factor']:.2g}x for the longer run)"
    if passes is None:
        fix = (
            "pass --epochs with how many times the full run sees each example"
            if _recommend.PASSES_RULE
            else f"then pass --horizon-exponent {HORIZON_EXPONENT:g}"
        )
        return (
            f"{cut}, too far if the run sees each example only a few times (plentiful or "
            f"freshly generated data: {fix})"
        )
    if passes >= MEMORISING_PASSES:
        return f"{cut}; the full run makes {over}, enough to memorise them"
    return (
        f"{cut}, but the full run makes only {over}, too few to memorise them (the cut helped "
        f"only from about {MEMORISING_PASSES} passes on the quality suite): likely too far, "
        f"pass --horizon-exponent {HORIZON_EXPONENT:g}"
    )


def _held_out_fix(trainer: str | None) -> str:
    """How this script scores its probes on held-out data: under the HF Trainer, our callback
    does it with the eval set the Trainer is given."""
    if trainer == "hf":
        return "score the probes on held-out data: Trainer(..., eval_dataset=...)"
    if trainer == "lightning":
        return "score the probes on held-out data: a validation_step logging val_loss"
    return "score the probes on held-out data: autowarm.score_with(<validation loss>)"


#: doubt 4's hot side counts as explored where a trial ran at this many times the best LR
EXPLORED = 4.0


def _no_instability(records: Sequence[TrialRecord], evidence: dict[str, Any]) -> dict[str, str]:
    """Doubt 4. Its fix: LRs higher up, unless trials far above the best LR already ran (and
    did worse, or were pruned) without going unstable: then longer probes, which rank LRs
    closer to the full run (Lightning's Transformer example: trials up to 49x its best)."""
    text = (
        "no trial went unstable, so no stability edge was found: the LR rests on the probes' "
        "short-run losses alone, scaled to the full run by an average horizon factor that fits "
        "some scripts better than others"
    )
    best = evidence.get("best_peak_lr")
    hottest = max((r.peak_lr for r in records if r.status in ("pruned", *FINISHED)), default=0.0)
    if best is None or hottest < EXPLORED * float(best):
        return {"kind": "no_instability", "text": text, "fix": "a wider --lr-range upwards"}
    probe_steps = int(evidence["probe_steps"])
    return {
        "kind": "no_instability",
        "text": f"{text}; trials up to LR {hottest:.3g} ran worse or were pruned, but stayed "
        "stable",
        "fix": f"--steps {2 * probe_steps}: longer probes rank LRs closer to the full run",
    }


def flat_ranking(near: Sequence[TrialRecord], probe_steps: int) -> dict[str, str] | None:
    """Doubt 6: the near-best trials' LRs span more than ``FLAT``, or None."""
    if len(near) < FEW:
        return None
    lo, hi = min(r.peak_lr for r in near), max(r.peak_lr for r in near)
    if hi <= FLAT * lo:
        return None
    return {
        "kind": "flat_ranking",
        "text": f"the probes hardly tell LRs apart: the {len(near)} near-best trials span "
        f"{hi / lo:.0f}x in peak LR ({lo:.3g}-{hi:.3g}), so the pick is the middle of that "
        "span, not a measured optimum",
        "fix": f"--steps {2 * probe_steps}: longer probes rank LRs better",
    }  # fmt: skip


def held_by_margin(
    records: Sequence[TrialRecord], evidence: dict[str, Any], unstable: Sequence[TrialRecord]
) -> dict[str, str] | None:
    """Doubt 5: the best-scoring finished trial the margin kept out, or None."""
    best = evidence.get("best_score")
    if best is None or not unstable:
        return None
    # the recommendation's candidates that beat its best eligible one: the margin kept them out
    better = [r for r in _candidates(records) if r.score < best]  # type: ignore[operator]
    if not better:
        return None
    top = min(better, key=lambda r: r.score)  # type: ignore[arg-type, return-value]
    edge = boundary(unstable, top.warmup_steps, int(evidence["probe_steps"]))
    if not math.isfinite(edge):  # counted unstable differently from the choice: say nothing
        return None
    admit = max(1.0, math.floor(20 * edge / top.peak_lr) / 20)  # the margin that admits it
    return {
        "kind": "held_by_margin",
        "text": f"{len(better)} trial{'s' if len(better) > 1 else ''} scored better than the "
        f"pick allows (best: LR {top.peak_lr:.3g}, loss {top.score:.4g} against "
        f"{float(best):.4g}) but sat within the {evidence['margin']:g}x margin below an LR "
        f"that went unstable ({edge:.3g}): the best LR may sit just under that edge",
        "fix": f"--margin {admit:g}: a full run there may diverge",
    }  # fmt: skip


def _unstable(records: Sequence[TrialRecord], evidence: dict[str, Any]) -> list[TrialRecord]:
    """The unstable trials as :func:`recommend` counts them: a stall below the best LR is a
    run too cold, not unstable."""
    best_lr = evidence.get("best_peak_lr")
    cold = float(best_lr) if best_lr is not None else math.inf
    return [r for r in records if _is_unstable(r) and (r.status != "stalled" or r.peak_lr > cold)]


def lr_edge(
    records: Sequence[TrialRecord], evidence: dict[str, Any], *, lr_range: tuple[float, float]
) -> dict[str, str] | None:
    """Doubt 1 alone (``lr_top`` / ``lr_bottom``), or None: the search widens its range on
    it while trials are left (:mod:`autowarm.probe._widen`), the report says it after."""
    best = evidence.get("best_peak_lr")
    lo, hi = lr_range
    if best is None or not (0 < lo < hi):
        return None
    best_lr = float(best)
    width = math.log(hi / lo)
    hotter = any(r.peak_lr > best_lr for r in _unstable(records, evidence))
    if math.log(hi / best_lr) <= EDGE * width and not hotter:
        return {
            "kind": "lr_top",
            "text": f"the best trial's LR {best_lr:.3g} is at the top of the range searched "
            f"({lo:.3g}-{hi:.3g}) and nothing above it went unstable: the best LR may be higher",
            "fix": f"--lr-range {lo:.3g} {hi * WIDEN_FACTOR:.3g}",
        }  # fmt: skip
    if math.log(best_lr / lo) <= EDGE * width:
        return {
            "kind": "lr_bottom",
            "text": f"the best trial's LR {best_lr:.3g} is at the bottom of the range searched "
            f"({lo:.3g}-{hi:.3g}): the best LR may be lower",
            "fix": f"--lr-range {lo / WIDEN_FACTOR:.3g} {hi:.3g}",
        }  # fmt: skip
    return None
