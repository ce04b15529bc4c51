"""Widening the LR range during a search, when its best trial sits at an end of it.

The default range is centred on the script's own LR (``[lr / 10, lr x 50]``, see
:mod:`autowarm.probe._search`), and a script's own LR can be far from its best: the HF
Trainer's default 5e-5 makes that range end at 2.5e-3, while the full runs' best LR on the
quality suite's ``hf_trainer`` was 9.8e-3 -- every search's best trials sat at the top edge,
with nothing unstable above them. Warning afterwards (the report's ``lr_top`` doubt) leaves the
user to run the search again; widening while trials are left searches there within the same
budget:

1) once ``WIDEN_AFTER`` trials have finished (the sampler's random start-up is behind it) and
   while ``WIDEN_LEFT`` trials are left, the recommendation is made from the trials so far;
   when its best trial raises the ``lr_top`` / ``lr_bottom`` doubt
   (:func:`autowarm.probe._doubts.lr_edge`: the last tenth of the log range, nothing hotter
   unstable), the range grows by ``WIDEN_FACTOR`` at that end;
2) the next trial probes the new part: the best trial's warmup at its LR x sqrt(factor) (half
   the new part's log width away); the sampler then draws from the wider range;
3) at most ``WIDEN_MOST`` times a search; never a range the user gave (``--lr-range``), which
   is their box, and only with a sampler that models a range grown mid-study (TPE, the
   default; :data:`autowarm.probe._samplers.WIDENING`). ``--trials`` stays the budget;
4) with no best trial at all -- every trial so far diverged or went NaN -- the range
   grows at the bottom (:func:`_all_too_hot`). On ``lsq_digits`` of the quality suite
   (least squares on raw pixels, SGD's usual 0.1 some 30x over the divergence edge) the
   default range ``[0.01, 5]`` held no stable LR, and the search ended after its 20 trials
   with "no probe trial finished stably".

What it changed on the quality suite, tuning and held-out sets: README, *Quality* (the table
of variants) and scripts/bench_quality_variants.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from autowarm._errors import AutowarmError
from autowarm.probe._config import WIDEN_AFTER, WIDEN_FACTOR, WIDEN_LEFT, WIDEN_MOST
from autowarm.probe._doubts import lr_edge
from autowarm.probe._recommend import choose
from autowarm.probe._record import TrialRecord
from autowarm.probe._status import HOT, settled


@dataclass(frozen=True)
class Widening:
    """One widening: the new range, and the trial that probes its new part first."""

    end: str  # "top" or "bottom"
    lr_range: tuple[float, float]
    first_trial: dict[str, Any]  # the parameters of that trial: peak_lr, warmup_steps
    after_trials: int  # finished trials when it was decided
    why: str = ""  # why it widened, when not because the best trials sit at that end

    def to_attr(self) -> dict[str, Any]:
        """How the study stores it (``LR_WIDENED_ATTR``, one entry a widening)."""
        return {"end": self.end, "to": list(self.lr_range), "after_trials": self.after_trials}

    def text(self) -> str:
        lo, hi = self.lr_range
        why = self.why or f"the best trials sit at its {self.end}"
        return f"widened the LR range to [{lo:.3g}, {hi:.3g}]: {why}"


def widening(
    records: Sequence[TrialRecord],
    lr_range: tuple[float, float],
    *,
    probe_steps: int,
    margin: float,
    left: int,
    widened: int,
) -> Widening | None:
    """The widening the trials so far call for, or None. ``left``: trials the study may still
    start; ``widened``: how often this search widened already."""
    done = settled(records, exclude=("interrupted",))
    if len(done) < WIDEN_AFTER or left < WIDEN_LEFT or widened >= WIDEN_MOST:
        return None
    try:
        choice = choose(done, probe_steps=probe_steps, margin=margin)
    except AutowarmError:  # nothing finished stably yet: no best trial to place
        return _all_too_hot(done, lr_range)
    doubt = lr_edge(done, choice.evidence, lr_range=lr_range)
    if doubt is None:
        return None
    lo, hi = lr_range
    best = float(choice.evidence["best_peak_lr"])
    warmup = int(choice.evidence["best_warmup_steps"])
    step = math.sqrt(WIDEN_FACTOR)
    if doubt["kind"] == "lr_top":
        new, lr, end = (lo, hi * WIDEN_FACTOR), min(best * step, hi * WIDEN_FACTOR), "top"
    else:
        new, lr, end = (lo / WIDEN_FACTOR, hi), max(best / step, lo / WIDEN_FACTOR), "bottom"
    first = {"peak_lr": lr, "warmup_steps": warmup}
    return Widening(end=end, lr_range=new, first_trial=first, after_trials=len(done))


def _all_too_hot(done: Sequence[TrialRecord], lr_range: tuple[float, float]) -> Widening | None:
    """4) every settled trial diverged or went NaN: the whole range is too hot -- the script's
    own LR (near the default range's bottom) diverges, the commonest reason a user reaches for
    a warmup tuner. So the range grows downwards, and the next trial probes the new part's
    middle at the longest warmup tried (the gentlest start). A stall says nothing here (Adam
    too hot stalls, and so does an LR too cold to learn), nor does a trial that failed for
    another reason (the script crashed): then no widening."""
    if not done or any(r.status not in HOT for r in done):
        return None
    lo, hi = lr_range
    first = {
        "peak_lr": lo / math.sqrt(WIDEN_FACTOR),
        "warmup_steps": max(r.warmup_steps for r in done),
    }
    return Widening(
        end="bottom", lr_range=(lo / WIDEN_FACTOR, hi), first_trial=first,
        after_trials=len(done), why=f"all {len(done)} trials so far diverged or went NaN",
    )  # fmt: skip
