"""The contract between the trial runner (processes) and the search (Optuna, output).

``ProbeRunner.run(spec)`` runs the user's script once with the LR schedule of ``spec`` forced
on every wrapped optimizer and returns a :class:`TrialResult`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from autowarm.probe._status import Failure, Status


@dataclass(frozen=True)
class TrialSpec:
    """What one probe run does: warmup to ``peak_lr`` over ``warmup_steps``, then ``decay``
    over the rest of ``probe_steps`` (a :class:`autowarm.Recipe` with
    ``total_steps=probe_steps`` gives the LR at every step)."""

    number: int
    peak_lr: float
    warmup_steps: int
    probe_steps: int
    warmup: str = "linear"
    decay: str = "constant"
    min_lr_ratio: float = 0.0
    options: dict[str, Any] = field(default_factory=dict)  # shape-specific Recipe options


@dataclass
class TrialResult:
    status: Status
    steps: int  # optimizer steps the trial ran (step() calls on the wrapped optimizer)
    losses: list[float] = field(default_factory=list)  # per step; nan where none was reported
    grad_norms: list[float] = field(default_factory=list)  # per step
    events: list[dict[str, Any]] = field(default_factory=list)  # Event fields as a dict
    failure: Failure | None = None
    reason: str | None = None  # one line, for failed / timeout / early stops
    wall_s: float = 0.0  # from asking for the trial to its result
    train_s: float = 0.0  # from the first to the last optimizer step inside the script
    script_lr: float | None = None  # the script's own LR (reference group) at its first step
    sets_lr: bool = False  # its loop sets param_group["lr"] itself, without a torch scheduler
    trainer: str | None = None  # the framework's trainer it ran under ("hf": our HF callback)
    # its training data as that trainer's callback said: {"train_examples", "examples_per_step"}
    data: dict[str, int] | None = None
    # the LR scheduler the script built on the wrapped optimizer: {"text", "library",
    # "accelerate"} (probe/_scheduler.py), None if none
    scheduler: dict[str, Any] | None = None
    optimizer: str | None = None  # the class of the bare optimizer it wrapped (_optimizer_class.py)
    compile_s: float = 0.0  # the script's torch.compile, before its first step (seconds)
    script_score: float | None = None  # what the script's autowarm.score_with() gave, if asked
    score_name: str | None = None  # score_with's name for it ("eval_loss": the HF callback's)
