"""What the monitor reports: one :class:`Event` per detected problem, one :class:`StepRecord`
per optimizer step."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from autowarm._json import finite_or_none

EventKind = Literal["nonfinite", "spike", "divergence", "stall", "amp_skip"]
Signal = Literal["loss", "grad_norm"]
Action = Literal["record", "warn", "skip", "raise"]

EVENT_KINDS: tuple[str, ...] = ("nonfinite", "spike", "divergence", "stall", "amp_skip")
# amp_skip is GradScaler doing its job; every other kind means training is in trouble.
INSTABILITY_KINDS: frozenset[str] = frozenset({"nonfinite", "spike", "divergence", "stall"})
ACTIONS: tuple[str, ...] = ("record", "warn", "skip", "raise")


@dataclass(frozen=True)
class Event:
    """One detected problem.

    ``value`` is what was observed (NaN/Inf for ``nonfinite``), ``reference`` what it was judged
    against (the window median for a spike, the best smoothed loss for a divergence, the initial
    loss for a stall, the last finite value for a non-finite value; ``None`` when there is none
    yet). ``action`` is what the monitor did about it; ``detail`` says it in words.
    """

    step: int
    kind: str
    signal: str
    value: float
    reference: float | None
    action: str = "record"
    detail: str = ""

    @property
    def is_instability(self) -> bool:
        """False only for ``amp_skip``: a step GradScaler skipped is normal operation."""
        return self.kind in INSTABILITY_KINDS

    def to_dict(self) -> dict[str, Any]:
        # strict JSON (autowarm._json): a non-finite value is null; from_dict reads it as NaN
        return {
            "step": self.step,
            "kind": self.kind,
            "signal": self.signal,
            "value": finite_or_none(self.value),
            "reference": finite_or_none(self.reference),
            "action": self.action,
            "detail": self.detail,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Event:
        ref = d.get("reference")
        return cls(
            step=int(d["step"]),
            kind=str(d["kind"]),
            signal=str(d["signal"]),
            value=math.nan if d.get("value") is None else float(d["value"]),
            reference=None if ref is None else float(ref),
            action=str(d.get("action", "record")),
            detail=str(d.get("detail", "")),
        )

    def __str__(self) -> str:
        text = f"step {self.step}: {self.kind} in {self.signal} ({_fmt(self.value)}"
        if self.reference is not None:
            text += f", reference {_fmt(self.reference)}"
        text += ")"
        if self.detail:
            text += f": {self.detail}"
        return text


@dataclass(frozen=True)
class StepRecord:
    """One optimizer step as the monitor saw it.

    ``loss`` is the mean of the values passed to ``report()`` since the previous step (``None``
    when nothing was reported), ``grad_norm`` the total L2 norm of all gradients the step used
    (unscaled when GradScaler is in use; before clipping when the wrapper's ``clip_grad_norm_``
    did the clipping), ``lr`` the first param group's learning rate. ``skipped`` is True when the
    update was not applied (GradScaler found Inf/NaN, or the monitor's ``skip`` action);
    ``amp_overflow`` when GradScaler reported Inf/NaN gradients.
    """

    step: int
    loss: float | None
    grad_norm: float
    lr: float
    skipped: bool = False
    amp_overflow: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "loss": finite_or_none(self.loss),
            "grad_norm": finite_or_none(self.grad_norm),
            "lr": self.lr,
            "skipped": self.skipped,
            "amp_overflow": self.amp_overflow,
        }


def _fmt(x: float) -> str:
    if not math.isfinite(x):
        return str(x)
    return f"{x:.4g}"
