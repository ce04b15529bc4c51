"""The :class:`Monitor`: per-step history, events, actions and the rich summary."""

from __future__ import annotations

import math
from array import array
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, overload

import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from rich.text import Text

from autowarm._errors import AutowarmError, InstabilityError
from autowarm.monitor._detect import Detector, Thresholds
from autowarm.monitor._event import ACTIONS, EVENT_KINDS, INSTABILITY_KINDS, Event, StepRecord
from autowarm.monitor._ranks import is_rank_zero

# Invisible when healthy, loud when not. Nothing changes what the optimizer does by default:
# "skip" and "raise" alter the user's training and cost a host sync per step on CUDA (see
# _optimizer.py), so they are opt-in. amp_skip is GradScaler working as designed: record only.
DEFAULT_ACTIONS: dict[str, str] = {
    "nonfinite": "warn",
    "spike": "warn",
    "divergence": "warn",
    "stall": "warn",
    "amp_skip": "record",
}
# "skip" acts on the step being taken; only per-step findings can be skipped. Skipping while
# the smoothed loss is high (divergence/stall) would just freeze training.
_SKIPPABLE = frozenset({"nonfinite", "spike"})
# The list of events is capped so a run that went NaN for good does not grow it by one per step;
# counts and the summary keep counting past the cap.
MAX_EVENTS = 10_000


def resolve_actions(actions: str | Mapping[str, str] | None) -> dict[str, str]:
    """Merge ``actions`` over :data:`DEFAULT_ACTIONS`, validating kinds and action names.

    A string applies to every instability kind that accepts it (``"skip"`` to nonfinite and
    spike only); ``amp_skip`` stays "record".
    """
    resolved = dict(DEFAULT_ACTIONS)
    if actions is None:
        return resolved
    if isinstance(actions, str):
        kinds = _SKIPPABLE if actions == "skip" else INSTABILITY_KINDS
        actions = {k: actions for k in EVENT_KINDS if k in kinds}
    if not isinstance(actions, Mapping):
        raise AutowarmError(
            f"actions must be a str or a mapping of event kind to action but got "
            f"{type(actions).__name__}."
        )
    for kind, action in actions.items():
        if kind not in EVENT_KINDS:
            raise AutowarmError(
                f"actions has an unknown event kind {kind!r}; use one of {list(EVENT_KINDS)}."
            )
        allowed = ACTIONS if kind in _SKIPPABLE else tuple(a for a in ACTIONS if a != "skip")
        if action not in allowed:
            raise AutowarmError(
                f"actions[{kind!r}] must be one of {list(allowed)} but got {action!r}."
            )
        resolved[kind] = action
    return resolved


#: a step's (loss, grad_norm, amp_found_inf): each a float, or a 0-dim tensor not read yet
Stats = tuple[torch.Tensor | float, torch.Tensor | float, torch.Tensor | float]


@dataclass
class _Pending:
    step: int
    stats: Stats  # loss is NaN when has_loss is False
    has_loss: bool
    lr: float
    can_skip: bool
    clip_at: float | None = None  # the user's clip threshold (max_norm), when this step clipped


def _rows(pending: list[_Pending]) -> list[tuple[float, float, float]]:
    """Each pending step's ``(loss, grad_norm, found_inf)`` as floats: every tensor among them
    is read in one transfer -- the only host-device sync on the way."""
    tensors = [v for p in pending for v in p.stats if isinstance(v, torch.Tensor)]
    read = iter(torch.stack([t.to(tensors[0].device) for t in tensors]).tolist() if tensors else [])

    def value(v: torch.Tensor | float) -> float:
        return next(read) if isinstance(v, torch.Tensor) else v

    return [(value(p.stats[0]), value(p.stats[1]), value(p.stats[2])) for p in pending]


class History(Sequence[StepRecord]):
    """Per-step records, stored as columns (about 40 bytes a step) and built on access."""

    def __init__(self) -> None:
        self._step = array("q")
        self._loss = array("d")  # NaN where nothing was reported, see _has_loss
        self._has_loss = array("b")
        self._grad_norm = array("d")
        self._lr = array("d")
        self._flags = array("b")  # bit 0: skipped, bit 1: amp overflow

    def _append(
        self, step: int, loss: float | None, grad_norm: float, lr: float, skipped: bool, amp: bool
    ) -> None:
        self._step.append(step)
        self._loss.append(math.nan if loss is None else loss)
        self._has_loss.append(loss is not None)
        self._grad_norm.append(grad_norm)
        self._lr.append(lr)
        self._flags.append(int(skipped) | (int(amp) << 1))

    def _mark_skipped(self, step: int) -> None:
        """The update of ``step`` (the last record) was skipped after all (another rank)."""
        if len(self) and self._step[-1] == step:
            self._flags[-1] |= 1

    def __len__(self) -> int:
        return len(self._step)

    def _record(self, i: int) -> StepRecord:
        flags = self._flags[i]
        return StepRecord(
            step=self._step[i],
            loss=self._loss[i] if self._has_loss[i] else None,
            grad_norm=self._grad_norm[i],
            lr=self._lr[i],
            skipped=bool(flags & 1),
            amp_overflow=bool(flags & 2),
        )

    @overload
    def __getitem__(self, i: int) -> StepRecord: ...
    @overload
    def __getitem__(self, i: slice) -> list[StepRecord]: ...
    def __getitem__(self, i: int | slice) -> StepRecord | list[StepRecord]:
        if isinstance(i, slice):
            return [self._record(j) for j in range(*i.indices(len(self)))]
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"history index {i} out of range for {n} steps")
        return self._record(i % n)

    def __iter__(self) -> Iterator[StepRecord]:
        return (self._record(i) for i in range(len(self)))

    def column(self, name: str) -> np.ndarray:
        """One column as a numpy array: "step", "loss" (NaN where unreported), "grad_norm",
        "lr", "skipped" or "amp_overflow"."""
        columns: dict[str, Callable[[], np.ndarray]] = {
            "step": lambda: np.array(self._step, dtype=np.int64),
            "loss": lambda: np.array(self._loss, dtype=np.float64),
            "grad_norm": lambda: np.array(self._grad_norm, dtype=np.float64),
            "lr": lambda: np.array(self._lr, dtype=np.float64),
            "skipped": lambda: np.array(self._flags, dtype=np.int8) & 1 > 0,
            "amp_overflow": lambda: np.array(self._flags, dtype=np.int8) & 2 > 0,
        }
        if name not in columns:
            raise AutowarmError(f"column must be one of {list(columns)} but got {name!r}.")
        return columns[name]()


class Monitor:
    """Watches one optimizer: ``history``, ``events``, ``flush()`` and ``summary()``.

    Created by :func:`autowarm.wrap`; reach it as ``optimizer.monitor``. ``actions`` (kind to
    action) and ``callback`` may be changed at any time.
    """

    def __init__(
        self,
        *,
        thresholds: Thresholds | None = None,
        actions: str | Mapping[str, str] | None = None,
        callback: Callable[[Event], Any] | None = None,
        console: Console | None = None,
        read_every: int = 16,
        warn_interval: int = 100,
    ) -> None:
        self.thresholds = thresholds or Thresholds()
        self.actions = resolve_actions(actions)
        self.callback = callback
        self.console = console
        self.read_every = read_every
        self.warn_interval = warn_interval
        self.step_count = 0
        self._history = History()
        self._events: list[Event] = []
        self._counts: Counter[str] = Counter()
        self._detector = Detector(self.thresholds)
        # steps not read yet: the host reads them every `read_every` steps, when a step must
        # be judged before its update, or when history/events/counts are looked at
        self._pending: list[_Pending] = []
        # (kind, signal) -> [count, first step, last step, worst value, last action]
        self._table: dict[tuple[str, str], list[Any]] = {}
        self._last_warned: dict[str, int] = {}
        self._suppressed: Counter[str] = Counter()

    # -- what was recorded (reading it reads the pending steps first) --------------------------
    @property
    def history(self) -> History:
        """Per-step records; the steps not read yet are read first (one sync on CUDA)."""
        self.flush()
        return self._history

    @property
    def events(self) -> list[Event]:
        """The events so far (at most ``MAX_EVENTS``); pending steps are read first."""
        self.flush()
        return self._events

    @property
    def counts(self) -> Counter[str]:
        """Events per kind, past the cap of ``events`` too; pending steps are read first."""
        self.flush()
        return self._counts

    # -- state the detector exposes ------------------------------------------------------------
    @property
    def initial_loss(self) -> float | None:
        """Median of the first ``divergence_window`` reported losses (None before that)."""
        return self._detector.initial_loss

    @property
    def best_loss(self) -> float | None:
        """Lowest running-median loss so far (None before the first full window)."""
        return self._detector.best_loss

    @property
    def smoothed_loss(self) -> float | None:
        """Median of the last ``divergence_window`` reported losses."""
        return self._detector.smoothed_loss

    def needs_decision(self, *, device_skip: bool = False) -> bool:
        """True when the host must judge each step before its update: a "raise", or a "skip"
        the device cannot do by itself (``device_skip``: the optimizer skips non-finite steps
        on the device, see ``_optimizer.py``)."""
        for kind, action in self.actions.items():
            if action == "raise" or (
                action == "skip" and not (device_skip and kind == "nonfinite")
            ):
                return True
        return False

    # -- feeding -------------------------------------------------------------------------------
    def _push(
        self,
        step: int,
        stats: Stats,
        *,
        has_loss: bool,
        lr: float,
        can_skip: bool,
        clip_at: float | None = None,
    ) -> None:
        self._pending.append(_Pending(step, stats, has_loss, lr, can_skip, clip_at))

    def flush(self) -> list[Event]:
        """Read the device-side statistics of the steps not yet read (one host sync on CUDA),
        run detection and the actions. Returns the new events."""
        if not self._pending:
            return []
        pending, self._pending = self._pending, []
        rows = _rows(pending)
        new: list[Event] = []
        to_raise: Event | None = None
        for p, (loss, grad_norm, found_inf) in zip(pending, rows):
            amp = found_inf > 0
            findings = self._detector.update(
                p.step, loss if p.has_loss else None, grad_norm, amp_overflow=amp,
                clip_at=p.clip_at,
            )  # fmt: skip
            skipped = amp
            for f in findings:
                action = self.actions[f.kind]
                if action == "skip" and not p.can_skip:
                    action = "warn"
                skipped = skipped or action == "skip"
                event = Event(p.step, f.kind, f.signal, f.value, f.reference, action, f.detail)
                new.append(event)
                if to_raise is None and action == "raise":
                    to_raise = event
            self._history._append(
                p.step, loss if p.has_loss else None, grad_norm, p.lr, skipped, amp
            )
        for event in new:
            self._record(event)
        if to_raise is not None:
            raise InstabilityError(to_raise)
        return new

    def _record(self, event: Event) -> None:
        self._counts[event.kind] += 1
        if len(self._events) < MAX_EVENTS:
            self._events.append(event)
        row = self._table.setdefault(
            (event.kind, event.signal), [0, event.step, event.step, event.value, event.action]
        )
        row[0] += 1
        row[2] = event.step
        if _worse(event.value, row[3]):
            row[3] = event.value
        row[4] = event.action
        if event.action in ("warn", "skip", "raise"):
            self._warn(event)
        if self.callback is not None:
            self.callback(event)

    def _warn(self, event: Event) -> None:
        if not is_rank_zero():  # data-parallel ranks see the same run: one of them speaks
            return
        # rate limit: at most one line per kind per warn_interval steps, never a line per step
        last = self._last_warned.get(event.kind)
        if last is not None and event.step - last < self.warn_interval:
            self._suppressed[event.kind] += 1
            return
        self._last_warned[event.kind] = event.step
        text = Text("autowarm: ", style="bold yellow")
        text.append(str(event))
        if event.action == "skip":
            text.append(" -- update skipped")
        hidden = self._suppressed.pop(event.kind, 0)
        if hidden:
            text.append(f" (+{hidden} more since step {last})", style="dim")
        self._console().print(text, soft_wrap=True)

    def _console(self) -> Console:
        if self.console is None:
            self.console = Console(stderr=True)
        return self.console

    # -- reporting -----------------------------------------------------------------------------
    def summary(self, console: Console | None = None) -> None:
        """Render a table of what happened: per event kind and signal, the count, first and last
        step, the worst value and the action taken."""
        self.flush()
        console = console or self._console()
        skipped = int(self.history.column("skipped").sum()) if len(self.history) else 0
        title = f"autowarm monitor: {self.step_count} steps, {skipped} skipped"
        if not self._table:
            console.print(f"{title}; no events.")
            return
        table = Table(title=title, title_justify="left")
        for name in ("event", "signal", "count", "first step", "last step", "worst", "action"):
            justify = "right" if name in ("count", "first step", "last step", "worst") else "left"
            table.add_column(name, justify=justify)  # type: ignore[arg-type]
        for kind in EVENT_KINDS:
            for (k, signal), (count, first, last, worst, action) in self._table.items():
                if k != kind:
                    continue
                style = "yellow" if kind in ("amp_skip",) else "red"
                table.add_row(
                    Text(kind, style=style),
                    signal,
                    str(count),
                    str(first),
                    str(last),
                    f"{worst:.4g}" if math.isfinite(worst) else str(worst),
                    action,
                )
        console.print(table)

    def __getstate__(self) -> dict[str, Any]:
        # pickled: history, events, counts, settings; not the console or the callback, which
        # need not be picklable (they come back as None)
        self.flush()
        state = self.__dict__.copy()
        state["console"] = None
        state["callback"] = None
        return state


def _worse(new: float, old: float) -> bool:
    # NaN is the worst, then +Inf, then the largest value
    if math.isnan(new):
        return not math.isnan(old)
    if math.isnan(old):
        return False
    return new > old
