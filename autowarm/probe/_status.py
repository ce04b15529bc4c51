"""How a probe trial ended: the one vocabulary of trial statuses and what each one means.

A detector that should stop trials touches this module (its event kind in
:data:`STOPPING_EVENTS`, its status in :data:`STATUSES` and :data:`UNSTABLE`) and the detector.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

#: How a trial ended.
#: - ``stable``: reached ``probe_steps`` with no instability event;
#: - ``spike``: reached ``probe_steps`` but the monitor saw loss/grad-norm spikes;
#: - ``diverged`` / ``stalled`` / ``nonfinite``: stopped early by the monitor;
#: - ``pruned``: stopped early by the search (``on_step`` returned True);
#: - ``failed``: the script crashed, never wrapped an optimizer, or ended before
#:   ``probe_steps`` (``failure`` says which, ``reason`` says why in one line);
#: - ``timeout``: killed after ``trial_timeout`` seconds;
#: - ``interrupted``: killed because the search was interrupted (Ctrl-C).
Status = Literal[
    "stable",
    "spike",
    "diverged",
    "stalled",
    "nonfinite",
    "pruned",
    "failed",
    "timeout",
    "interrupted",
]

#: Why a ``failed`` trial failed. ``launcher``: ``torch.distributed.run`` failed before every
#: rank started the script (rendezvous error, port in use, a rank that could not start): it says
#: nothing about the trial's LR, so it is never an instability. ``resumed``: the script resumed
#: a run from a checkpoint before the probe's first step (see probe/_resume.py).
#: ``subprocess``: it trains in a process it started itself (``mp.spawn``; see probe/_child.py).
Failure = Literal[
    "crash", "no_wrap", "no_report", "too_short", "syntax", "not_found", "launcher", "resumed",
    "subprocess",
]  # fmt: skip

#: Statuses of a run that reached the probe length; all others ended early.
FINISHED = ("stable", "spike")
#: Statuses that mark the LR as too hot (used for the penalty and the stability boundary).
UNSTABLE = ("diverged", "nonfinite", "stalled")
#: The unstable statuses that say "too hot" on their own: a stall may also be an LR too cold
#: to learn (see probe/_recommend.py), so with nothing finished to compare it says neither.
HOT = ("diverged", "nonfinite")
#: Failures that are about the script, not the trial's LR: the search cannot go on.
SCRIPT_FAILURES = (
    "no_wrap", "no_report", "too_short", "syntax", "not_found", "launcher", "resumed",
    "subprocess",
)  # fmt: skip
#: Monitor event kind -> the status it ends a trial with. Spikes do not end a trial (warmup
#: transients recover; the search judges them), AMP skips are normal operation.
STOPPING_EVENTS = {"nonfinite": "nonfinite", "divergence": "diverged", "stall": "stalled"}


def stops_trial(event: Mapping[str, Any], warmup_steps: int) -> str | None:
    """The status a probe trial ends with on this monitor event, or None. A stall inside the
    warmup does not end it: a long warmup may be slow to start, that is what it is for (the
    child judges it again at the probe's end; a stall stop would punish long warmups)."""
    kind = event.get("kind")
    if kind == "stall" and int(event.get("step", 0)) < warmup_steps:
        return None
    return STOPPING_EVENTS.get(str(kind))


#: Stored trials that have not ended yet (Optuna RUNNING / WAITING): not results.
ACTIVE = ("running", "waiting")


@dataclass(frozen=True)
class Look:
    """How a status is shown: its words, rich style, map glyph and PNG marker."""

    label: str
    style: str
    glyph: str | None = None  # in the stability map; None: a finished run, drawn as a shade
    glyph_style: str = ""
    marker: str | None = None  # in the PNG; None: not drawn as its own series


STATUSES: dict[str, Look] = {
    "stable": Look("stable", "green"),
    "spike": Look("spike", "yellow"),
    "diverged": Look("diverged", "red", "×", "bold red", "x"),
    "nonfinite": Look("NaN/Inf", "magenta", "N", "bold magenta", "X"),
    "stalled": Look("stalled", "yellow", "=", "yellow", "s"),
    "pruned": Look("pruned", "dim", "p", "dim", "."),
    "failed": Look("failed", "bold red", "!", "bold red", "v"),
    "timeout": Look("timeout", "red", "T", "red"),
    "interrupted": Look("interrupted", "dim", "?", "dim"),
}


def look(status: str) -> Look:
    return STATUSES.get(status, Look(status, "", "?"))


class _HasStatus(Protocol):
    status: str


R = TypeVar("R", bound=_HasStatus)


def settled(records: Iterable[R], *, exclude: Sequence[str] = ()) -> list[R]:
    """The records of trials that have ended (not running or waiting), less ``exclude``."""
    return [r for r in records if r.status not in ACTIVE and r.status not in exclude]
