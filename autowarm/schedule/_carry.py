"""How a probe's answer carries to a run of another length: the one rule for every path.

``autowarm probe --total-steps``, ``autowarm show --total-steps``, ``autowarm schedule
--total-steps``, ``Recipe.for_run()`` and everything built on it (``Recipe.scheduler(
total_steps=)``, ``lr_at(step, total_steps)``, ``training_args(total_steps)``) stretch a recipe
made by a probe with :func:`carry`, from what the recipe's evidence says of the probe: its
length, its (peak LR, warmup) and the transfer settings. A recipe with no probe behind it (one
written by hand) keeps its peak LR and warmup steps. See :mod:`autowarm.probe._recommend`
(step 6) for why the rule is what it is.
"""

from __future__ import annotations

from typing import Any

#: how a probe's warmup grows with the run: x (total / probe steps) ** this
_WARMUP_POWER = {"steps": 0.0, "sqrt": 0.5, "fraction": 1.0}
#: the names ``--warmup-transfer`` accepts (this is their one home)
WARMUP_TRANSFERS = tuple(_WARMUP_POWER)

#: the evidence keys a probe's recipe carries (:func:`probe_of` reads them)
PROBE_KEYS = ("probe_steps", "probe_peak_lr", "probe_warmup_steps")


def horizon_factor(probe_steps: int, total_steps: int | None, exponent: float) -> float:
    """How much lower the full run's peak LR is than the probe's best: ``(probe/total)^exponent``
    for a run longer than the probe; 1 when the run length is unknown or not longer."""
    if total_steps is None or total_steps <= probe_steps:
        return 1.0
    return float((probe_steps / total_steps) ** exponent)


def carry_warmup(warmup: int, *, probe_steps: int, total_steps: int | None, how: str) -> int:
    """The probe's warmup in the full run: the same number of steps (``steps``), the same
    fraction of the run (``fraction``), or in between (``sqrt``: steps x sqrt(total / probe),
    so a run 100x the probe gets 10x the probe's warmup, 1/10 of its fraction); never more
    than half the run."""
    if total_steps is None:
        return warmup
    scale = (total_steps / probe_steps) ** _WARMUP_POWER[how]
    return int(min(round(warmup * scale), total_steps // 2))


def carry(
    probe_lr: float,
    probe_warmup: int,
    *,
    probe_steps: int,
    total_steps: int | None,
    how: str,
    exponent: float,
) -> tuple[float, int, float]:
    """(peak LR, warmup steps, horizon factor) for a run of ``total_steps``; the LR is rounded
    to 3 significant digits, as a recipe file shows it."""
    factor = horizon_factor(probe_steps, total_steps, exponent)
    warmup = carry_warmup(probe_warmup, probe_steps=probe_steps, total_steps=total_steps, how=how)
    return float(f"{probe_lr * factor:.3g}"), warmup, factor


def exponent_at(evidence: dict[str, Any], passes: float | None) -> float:
    """The horizon exponent for a run that makes ``passes`` over its training data: the rule
    reads the passes (under the evidence's ``split``, ``MEMORISING_PASSES``, a model cannot
    memorise its data, so its LR falls less with the run's length), and a longer run makes
    more. A recipe that knew no passes keeps its exponent."""
    exponent = float(evidence.get("horizon_exponent", 0.0))
    sides = evidence.get("horizon_exponent_by_passes")
    if not isinstance(sides, dict) or passes is None:
        return exponent
    return float(sides["below"] if passes < sides["split"] else sides["from"])


def probe_of(evidence: dict[str, Any]) -> dict[str, Any] | None:
    """:func:`carry`'s arguments from a recipe's evidence; None when no probe made it."""
    if not all(isinstance(evidence.get(k), (int, float)) for k in PROBE_KEYS):
        return None
    return {
        "probe_lr": float(evidence["probe_peak_lr"]),
        "probe_warmup": int(evidence["probe_warmup_steps"]),
        "probe_steps": int(evidence["probe_steps"]),
        "how": str(evidence.get("warmup_transfer", "fraction")),
        "exponent": float(evidence.get("horizon_exponent", 0.0)),
    }
