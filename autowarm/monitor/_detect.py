"""Instability detection on the host, one optimizer step at a time.

The detector sees, per step, the loss (mean of the values reported since the previous step, or
None), the total gradient norm and whether GradScaler found Inf/NaN gradients. It is plain
Python on floats: the optimizer wrapper computes these numbers on the device and hands them over
in batches (see ``_optimizer.py`` for when the host reads them).

Rules (defaults in :class:`Thresholds`; measured with ``python scripts/bench_detect.py``):

1) ``nonfinite``: the loss or the gradient norm is NaN/Inf. One fused ``_foreach_norm`` pass
   gives the norm, and the norm is non-finite iff some gradient element is, so this catches a NaN
   in any single gradient at the very step it appears.
2) ``amp_skip``: GradScaler found Inf/NaN gradients and skipped the update. That is how dynamic
   loss scaling searches its scale, so it is recorded, never an instability -- unless
   ``amp_skip_patience`` (16) steps in a row are skipped: 16 halvings divide the scale by 65536
   (GradScaler's default initial scale is 2**16), after which the gradients themselves are
   non-finite, so it is reported as ``nonfinite``. A non-finite *loss* is never excused by AMP:
   the scale does not touch the forward pass.
3) ``spike``: a finite value far above its own recent history. Robust statistics over the last
   ``window`` (64) accepted values: median m and MAD; a value x is a spike when
   ``x > m + max(spike_zscore * spread, (spike_ratio - 1) * |m|)`` with
   ``spread = max(1.4826 * MAD, spread_floor * |m|)``. So a spike must be both improbable (robust
   z-score above ``spike_zscore`` = 6, OLMo-core's 6 sigma) and large (``spike_ratio`` = 2 times
   the median -- noisy small-batch losses and grad norms wander by tens of percent and must not
   fire). Guards: nothing fires before ``min_history`` (20) accepted values; the spread floor
   (``spread_floor`` = 0.02 of the median) keeps a constant signal (grad norm clipped every
   step, a loss that stopped moving) from turning rounding noise into spikes; flagged values and
   NaN/Inf never enter the window (ZClip's and llm.c's EMA take the NaN in and are poisoned from
   then on). If ``window // 8`` values in a row are flagged, the level really changed (a new LR
   regime): the window restarts from those values instead of flagging forever.
4) ``divergence``: the loss, smoothed by a running median over ``divergence_window`` (10) steps,
   sustained well above its best smoothed value. "Well above": it gave back at least
   ``divergence_fraction`` (0.5) of the progress made from the initial smoothed loss, or rose to
   ``divergence_ratio`` (2) times its best -- whichever is reached first -- and in any case at
   least ``divergence_min_rise`` (0.1) of the best (noise guard early on, when little progress
   has been made). Because a median over 10 steps only moves when more than 5 of the last 10
   losses are high, a transient warmup rise ("catapult") that recovers within a few steps is
   not a divergence. One event per episode: it re-arms when the smoothed loss comes back below
   the threshold.
5) ``stall``: after ``stall_steps`` (100) steps with a finite loss, the best smoothed loss never
   got more than ``stall_tolerance`` (0.05) below the initial smoothed loss -- Adam's usual
   failure when the LR is too hot is to sit near the initial loss instead of going NaN. Checked
   once, at that step.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, fields
from typing import NamedTuple

from autowarm._errors import AutowarmError


@dataclass(frozen=True)
class Thresholds:
    """Detection thresholds; see the module docstring for what each means and why."""

    window: int = 64
    min_history: int = 20
    spike_zscore: float = 6.0
    spike_ratio: float = 2.0
    spread_floor: float = 0.02
    divergence_window: int = 12
    divergence_fraction: float = 0.09
    divergence_rise: float = 0.2
    stall_steps: int = 100
    stall_tolerance: float = 0.05
    amp_skip_patience: int = 16

    def __post_init__(self) -> None:
        # 1) type and sign of each field, with a message naming the field and the value
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "int":
                if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                    raise AutowarmError(f"{f.name} must be a positive int but got {value!r}.")
            else:
                if (
                    isinstance(value, bool)
                    or not isinstance(value, (int, float))
                    or not math.isfinite(value)
                    or value <= 0
                ):
                    raise AutowarmError(
                        f"{f.name} must be a positive finite number but got {value!r}."
                    )
        # 2) relations between fields
        if self.min_history > self.window:
            raise AutowarmError(
                f"min_history must be <= window but got {self.min_history} > {self.window}."
            )
        if self.spike_ratio <= 1:
            raise AutowarmError(f"spike_ratio must be > 1 but got {self.spike_ratio!r}.")
        if self.divergence_fraction > 1:
            raise AutowarmError(
                f"divergence_fraction must be <= 1 but got {self.divergence_fraction!r}."
            )
        if self.stall_tolerance >= 1:
            raise AutowarmError(f"stall_tolerance must be < 1 but got {self.stall_tolerance!r}.")


class Finding(NamedTuple):
    """What the detector found at one step; the monitor turns it into an :class:`Event`."""

    kind: str
    signal: str
    value: float
    reference: float | None
    detail: str


def _median(sorted_values: list[float]) -> float:
    n = len(sorted_values)
    mid = n // 2
    return sorted_values[mid] if n % 2 else 0.5 * (sorted_values[mid - 1] + sorted_values[mid])


class _SpikeDetector:
    """Robust spike test for one signal; flagged values stay out of the window.

    Positive signals (grad norms, most losses) are judged in log space, where noise is
    multiplicative: a loss near zero whose batches vary 3x from one another has a wide log
    spread, an LM loss that varies by 5% a narrow one, and one z-score threshold fits both.
    A window holding a value <= 0 falls back to the same test in linear units.
    """

    def __init__(self, signal: str, t: Thresholds) -> None:
        self.signal = signal
        self.t = t
        self.values: deque[float] = deque(maxlen=t.window)
        self.flagged: list[float] = []
        self.regime_shift = max(2, t.window // 8)

    def _threshold(self) -> tuple[float, float]:
        """(median, threshold) of the current window."""
        t = self.t
        s = sorted(self.values)
        med = _median(s)
        if s[0] > 0:
            logs = [math.log(v) for v in s]
            log_med = _median(logs)
            log_mad = _median(sorted(abs(v - log_med) for v in logs))
            spread = max(1.4826 * log_mad, t.spread_floor)
            margin = max(t.spike_zscore * spread, math.log(t.spike_ratio))
            return med, math.exp(log_med + margin)
        mad = _median(sorted(abs(v - med) for v in s))
        spread = max(1.4826 * mad, t.spread_floor * abs(med), 1e-12)
        return med, med + max(t.spike_zscore * spread, (t.spike_ratio - 1.0) * abs(med))

    def update(self, x: float) -> Finding | None:
        if len(self.values) >= self.t.min_history:
            med, threshold = self._threshold()
            if x > threshold:
                self.flagged.append(x)
                if len(self.flagged) >= self.regime_shift:
                    # the level moved for good: start the statistics over from the new level
                    self.values.clear()
                    self.values.extend(self.flagged)
                    self.flagged.clear()
                n = len(self.values)
                detail = (
                    f"{x / med:.3g}x the median of the last {n} steps (threshold {threshold:.4g})"
                    if med > 0
                    else f"above the threshold {threshold:.4g}"
                )
                return Finding("spike", self.signal, x, med, detail)
        self.flagged.clear()
        self.values.append(x)
        return None


class Detector:
    """Streaming detector: call :meth:`update` once per optimizer step, in order."""

    def __init__(self, thresholds: Thresholds | None = None) -> None:
        self.t = thresholds or Thresholds()
        self._spikes = {s: _SpikeDetector(s, self.t) for s in ("loss", "grad_norm")}
        self._last_finite: dict[str, float | None] = {"loss": None, "grad_norm": None}
        self._recent_losses: deque[float] = deque(maxlen=self.t.divergence_window)
        self._n_losses = 0
        self.initial_loss: float | None = None
        self.best_loss: float | None = None
        self.smoothed_loss: float | None = None
        self._diverged = False
        self._stall_checked = False
        self.amp_streak = 0

    def update(
        self, step: int, loss: float | None, grad_norm: float, *, amp_overflow: bool = False
    ) -> list[Finding]:
        found: list[Finding] = []

        # 1) AMP: an overflow is GradScaler's business unless it persists
        if amp_overflow:
            self.amp_streak += 1
            found.append(
                Finding("amp_skip", "grad_norm", grad_norm, None, "GradScaler skipped the step")
            )
            if self.amp_streak == self.t.amp_skip_patience:
                found.append(
                    Finding(
                        "nonfinite",
                        "grad_norm",
                        grad_norm,
                        self._last_finite["grad_norm"],
                        f"GradScaler skipped {self.amp_streak} steps in a row",
                    )
                )
        else:
            self.amp_streak = 0

        # 2) per signal: non-finite, else spike test (which also feeds the statistics)
        for signal, value in (("loss", loss), ("grad_norm", grad_norm)):
            if value is None or (signal == "grad_norm" and amp_overflow):
                continue
            if not math.isfinite(value):
                found.append(Finding("nonfinite", signal, value, self._last_finite[signal], ""))
                continue
            self._last_finite[signal] = value
            spike = self._spikes[signal].update(value)
            if spike is not None:
                found.append(spike)

        # 3) divergence and stall on the smoothed loss
        if loss is not None and math.isfinite(loss):
            found.extend(self._update_loss_level(loss))
        return found

    def _update_loss_level(self, loss: float) -> list[Finding]:
        t = self.t
        self._recent_losses.append(loss)
        self._n_losses += 1
        if len(self._recent_losses) < t.divergence_window:
            return []
        smoothed = _median(sorted(self._recent_losses))
        self.smoothed_loss = smoothed
        if self.initial_loss is None:
            self.initial_loss = smoothed
        self.best_loss = smoothed if self.best_loss is None else min(self.best_loss, smoothed)
        initial, best = self.initial_loss, self.best_loss
        found: list[Finding] = []

        # divergence: gave back part of the progress made AND rose well above the best. Each
        # alone false-alarms: near-zero losses double on noise (rise), and runs that barely
        # progressed give back "half their progress" on noise (fraction).
        needed = max(t.divergence_fraction * (initial - best), t.divergence_rise * abs(best), 1e-12)
        if smoothed - best >= needed:
            if not self._diverged:
                self._diverged = True
                found.append(
                    Finding(
                        "divergence",
                        "loss",
                        smoothed,
                        best,
                        f"median loss of the last {t.divergence_window} steps rose from "
                        f"its best {best:.4g} to {smoothed:.4g} (initial {initial:.4g})",
                    )
                )
        else:
            self._diverged = False

        # stall: checked once, when enough steps have passed
        if not self._stall_checked and self._n_losses >= t.stall_steps:
            self._stall_checked = True
            if best > initial - t.stall_tolerance * abs(initial):
                found.append(
                    Finding(
                        "stall",
                        "loss",
                        smoothed,
                        initial,
                        f"after {self._n_losses} steps the loss never went more than "
                        f"{t.stall_tolerance:.0%} below its initial level {initial:.4g}",
                    )
                )
        return found
