"""Trial records: what the storage keeps of a trial, written (:func:`tell`) and read back
(:func:`record_from_frozen`) in one place, so both sides agree on every attribute.

A record is what ``show``, the report and the recommendation see of a trial; the runner's
:class:`~autowarm.probe._types.TrialResult` (every step's loss, every event) stays in memory.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from autowarm._json import finite_or_none
from autowarm.probe._config import INITIAL_LOSS_ATTR
from autowarm.probe._score import initial_loss, noise, penalty, trial_score
from autowarm.probe._status import FINISHED
from autowarm.probe._types import TrialResult, TrialSpec

#: How many losses a trial keeps in the storage (for ``show``, the dashboard and the PNG).
KEEP_LOSSES = 100
#: How many of them become Optuna intermediate values (the dashboard's curves; a write each).
REPORT_POINTS = 20


@dataclass
class TrialRecord:
    number: int
    peak_lr: float
    warmup_steps: int
    status: str  # a TrialResult status, or "running" / "waiting"
    score: float | None = None  # end-of-probe loss (finished runs only)
    value: float | None = None  # what the sampler saw (score or penalty)
    steps: int = 0
    reason: str | None = None
    failure: str | None = None
    noise: float = 0.0
    initial_loss: float | None = None
    loss_curve: list[list[float | None]] = field(default_factory=list)  # [[step, loss], ...]
    train_s: float = 0.0
    wall_s: float = 0.0
    event_counts: dict[str, int] = field(default_factory=dict)  # event kind -> how many
    checkpoint_loss: float | None = None  # loss at the cohort pruner's checkpoint
    sets_lr: bool = False  # the script's loop set the LR itself (no torch scheduler)
    trainer: str | None = None  # the framework's trainer it ran under ("hf"), if one said so
    data: dict[str, int] | None = None  # its training data's size, if that trainer's said so
    scheduler: dict[str, Any] | None = None  # the script's own LR scheduler (_scheduler.py)
    optimizer: str | None = None  # the class of the optimizer it built ("torch.optim.SGD")
    compile_s: float = 0.0  # its torch.compile before the first step (part of wall - train)
    script_scored: bool = False  # score is the script's autowarm.score_with(), not the loss
    score_name: str | None = None  # what score_with() called it
    owner: str = ""  # the worker that ran it (host:pid:token; see _workers.new_owner)

    def losses(self, steps: int) -> np.ndarray:
        """Its training loss at each of ``steps`` steps, from ``loss_curve`` (every step of a
        probe of up to ``KEEP_LOSSES`` steps); NaN where none is kept."""
        out = np.full(steps, np.nan)
        for step, loss in self.loss_curve:
            if loss is not None and 0 <= int(step) < steps:
                out[int(step)] = loss
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "peak_lr": self.peak_lr,
            "warmup_steps": self.warmup_steps,
            "status": self.status,
            "score": self.score,
            "value": self.value,
            "steps": self.steps,
            "reason": self.reason,
            "failure": self.failure,
            "train_s": round(self.train_s, 4),
            "wall_s": round(self.wall_s, 4),
        }


def subsample(values: Sequence[float], n: int = KEEP_LOSSES) -> list[list[float | None]]:
    """``[[step, value], …]`` at most ``n`` points (always keeping the last); NaN -> None."""
    if not values:
        return []
    idx = np.unique(np.linspace(0, len(values) - 1, min(n, len(values))).round().astype(int))
    return [[int(i), finite_or_none(values[i])] for i in idx]


# -- the write side -------------------------------------------------------------------------------
def _attrs(res: TrialResult, spec: TrialSpec, checkpoint_loss: float | None) -> dict[str, Any]:
    finished = res.status in FINISHED
    scripted = res.script_score is not None
    counts: dict[str, int] = {}
    for e in res.events:
        counts[str(e.get("kind"))] = counts.get(str(e.get("kind")), 0) + 1
    return {
        "status": res.status,
        "failure": res.failure,
        "reason": res.reason,
        "steps": res.steps,
        "score": (
            finite_or_none(trial_score(res.losses, spec.probe_steps, res.script_score))
            if finished
            else None
        ),
        "script_scored": scripted,
        "score_name": res.score_name,
        # the training loss's noise; a score_with() value's is not known
        "noise": noise(res.losses, spec.probe_steps) if finished and not scripted else 0.0,
        "initial_loss": finite_or_none(initial_loss(res.losses)),
        "loss_curve": subsample(res.losses),
        "train_s": res.train_s,
        "wall_s": res.wall_s,
        "event_counts": counts,
        "checkpoint_loss": finite_or_none(checkpoint_loss),
        "sets_lr": res.sets_lr,
        "trainer": res.trainer,
        "data": res.data,
        "scheduler": res.scheduler,
        "optimizer": res.optimizer,
        "compile_s": round(res.compile_s, 3),
    }


def tell(
    study: optuna.Study,
    trial: optuna.Trial,
    spec: TrialSpec,
    res: TrialResult,
    *,
    checkpoint_loss: float | None = None,
    script_failure: bool = False,
) -> TrialRecord:
    """Store how ``trial`` ended and tell the sampler; returns the stored record.

    Finished runs are told their score; unstable, crashed and timed-out runs a penalty worse
    than the study's initial loss -- COMPLETE, so samplers learn from them (a FAILed trial
    teaches nothing). Interrupted runs and script failures say nothing about their LR: FAIL.
    """
    attrs = _attrs(res, spec, checkpoint_loss)
    ref = study.user_attrs.get(INITIAL_LOSS_ATTR)
    if ref is None and attrs["initial_loss"] is not None:
        ref = attrs["initial_loss"]
        study.set_user_attr(INITIAL_LOSS_ATTR, ref)
    for k, v in attrs.items():
        trial.set_user_attr(k, v)
    # intermediate values: the loss curve for the dashboard (written once, not per step)
    for step, loss in subsample(res.losses, REPORT_POINTS):
        if loss is not None:
            trial.report(loss, int(step))  # type: ignore[arg-type]
    if res.status == "interrupted" or script_failure:
        frozen = study.tell(trial, state=TrialState.FAIL)
    elif res.status == "pruned":
        frozen = study.tell(trial, state=TrialState.PRUNED)
    else:
        sc = attrs["score"]
        value = sc if sc is not None else penalty(math.nan if ref is None else ref)
        frozen = study.tell(trial, value)
    rec = record_from_frozen(frozen)
    assert rec is not None
    return rec


# -- the read side --------------------------------------------------------------------------------
def _status(t: FrozenTrial) -> str:
    status = t.user_attrs.get("status")
    if t.state == TrialState.FAIL and status not in ("failed", "interrupted"):
        # its worker was killed after writing how the trial ended, before telling it: another
        # worker FAILed it and ran its parameters again (probe/_workers.py), so it is no result
        return "interrupted"
    if status is not None:
        return str(status)
    if t.state == TrialState.RUNNING:
        return "running"
    if t.state == TrialState.WAITING:
        return "waiting"
    return "interrupted" if t.state == TrialState.FAIL else "failed"


def record_from_frozen(t: FrozenTrial) -> TrialRecord | None:
    """The record of a stored trial; None for a trial that is not a probe (no LR × warmup)."""
    # a WAITING trial (queued again, or the anchor) has its parameters only as enqueue_trial's
    params = t.params if t.state != TrialState.WAITING else t.system_attrs.get("fixed_params", {})
    if "peak_lr" not in params or "warmup_steps" not in params:
        return None
    a = t.user_attrs
    return TrialRecord(
        number=t.number,
        peak_lr=float(params["peak_lr"]),
        warmup_steps=int(params["warmup_steps"]),
        status=_status(t),
        score=a.get("score"),
        value=t.value if t.state == TrialState.COMPLETE else None,
        steps=int(a.get("steps", 0)),
        reason=a.get("reason"),
        failure=a.get("failure"),
        noise=float(a.get("noise") or 0.0),
        initial_loss=a.get("initial_loss"),
        # studies stored by earlier versions call these "losses" and "events"
        loss_curve=a.get("loss_curve", a.get("losses", [])),
        train_s=float(a.get("train_s", 0.0)),
        wall_s=float(a.get("wall_s", 0.0)),
        event_counts=a.get("event_counts", a.get("events", {})),
        checkpoint_loss=a.get("checkpoint_loss"),
        sets_lr=bool(a.get("sets_lr", False)),
        trainer=a.get("trainer"),
        data=a.get("data"),
        scheduler=a.get("scheduler"),
        optimizer=a.get("optimizer"),
        compile_s=float(a.get("compile_s") or 0.0),
        script_scored=bool(a.get("script_scored", False)),
        score_name=a.get("score_name"),
        owner=str(a.get("owner", "")),
    )


def records(study: optuna.Study) -> list[TrialRecord]:
    out = [record_from_frozen(t) for t in study.get_trials(deepcopy=False)]
    return [r for r in out if r is not None]
