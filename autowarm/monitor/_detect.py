"""Instability detection on the host, one optimizer step at a time.

The detector sees, per step, the loss (mean of the values reported since the previous step, or
None), the total gradient norm and whether GradScaler found Inf/NaN gradients. It is plain
Python on floats: the optimizer wrapper computes these numbers on the device and hands them over
in batches (see ``_optimizer.py`` for when the host reads them).

Rules, with the defaults of :class:`Thresholds`. The defaults were tuned on
``python scripts/bench_detect.py`` (3 tasks -- a character Transformer LM, an MLP classifier,
an MLP regression -- x 5 seeds; 13,650 healthy steps, faults injected at step 150), which gives
0 false alarms and the results quoted below.

1) ``nonfinite``: the loss or the gradient norm is NaN/Inf. One fused ``_foreach_norm`` pass
   gives the norm, and the norm is non-finite iff some gradient element is, so a NaN in any
   single gradient is caught at the very step it appears (bench: 45/45 at the same step).
2) ``amp_skip``: GradScaler found Inf/NaN gradients and skipped the update. That is how dynamic
   loss scaling searches its scale, so it is recorded, never an instability -- unless
   ``amp_skip_patience`` (16) steps in a row are skipped: 16 halvings divide the scale by 65536
   (GradScaler's default initial scale is 2**16), after which the gradients themselves are
   non-finite, so it is reported as ``nonfinite``. A non-finite *loss* is never excused by AMP:
   the scale does not touch the forward pass.
3) ``spike``: a finite value far above its own recent history. Robust statistics over the last
   ``window`` (64) accepted values, in log space for positive signals (noise in losses and grad
   norms is multiplicative): with m and MAD the median and MAD of log(values), x is a spike when
   ``log x - m > max(spike_zscore * spread, log(spike_ratio))``, ``spread = max(1.4826 * MAD,
   spread_floor)``. A spike must be improbable (robust z-score above ``spike_zscore`` = 6,
   OLMo-core's 6 sigma; the largest healthy z at 2x or more in the bench is 5.4) and large (at
   least ``spike_ratio`` = 2 times the median: quiet LM losses then flag a 3x spike while their
   healthy extremes stay below 1.8x). Guards: nothing fires before ``min_history`` (20) accepted
   values; ``spread_floor`` (0.02) keeps a constant signal (a grad norm clipped every step) from
   turning rounding noise into spikes; flagged values and NaN/Inf never enter the window (ZClip's
   and llm.c's EMA take the NaN in and are poisoned from then on); after ``window // 8`` flagged
   values in a row the level really changed (a new LR regime) and the window restarts from them
   instead of flagging forever. A window holding values <= 0 uses the same test in linear units.
   Whatever the spread, a value ``spike_hard_ratio`` (8) times the median or more is a spike: on
   near-zero losses whose batches vary 2-3x from step to step (log spread 0.5-0.8) a 10x value is
   only 3-5 spreads high, and without this rule the bench caught loss 10x in 10/15 runs and grad
   norm 10x in 7/15; with it, 15/15 each, still with no false alarm in 13,650 healthy steps.
   Unless the values jump from step to step by so much that 8x is fewer than
   ``spike_hard_zscore`` (4) of those jumps (the step-to-step noise, 1.4826 x the median
   absolute successive difference of log values over sqrt(2), blind to a trend): on a model
   that has nearly memorised a small training set, one hard example in a batch lifts the loss
   8-12x the median on healthy steps. Healthy default runs of the quality suite's small-data
   scripts (cancer_mlp and fewshot_digits, 5 seeds each; diabetes_sgdm, finetune, cnn_digits,
   softmax_sgd, 2 each: 8,100 steps) gave 24 spike events with the 8x rule alone, 4 / 1 / 0
   with this gate at 2.5 / 3 / 4, and the bench's figures stay exactly as above at each.
   Bench: 10x and 100x spikes of loss and grad norm caught at that step in every run; 3x only on
   the quiet LM loss (5/15). Under the user's gradient clipping a pre-clip norm *above the clip
   threshold* is a spike only at ``spike_hard_ratio`` (8x) the median: clipping bounded that
   step's update, and on nanoGPT's own train.py (scripts/try_nanogpt.py, 3 seeds x 1,000 steps,
   clip 1.0) the 2-6x pre-clip excursions it gave 6 warnings for left the loss as it was (mean
   of the next 10 losses / the 10 before: 0.95-1.01), while an injected x100 spike is still
   caught at its step.
4) ``divergence``: the loss, smoothed by a running median over ``divergence_window`` (12) steps,
   sustained well above its best smoothed value: it gave back at least ``divergence_fraction``
   (0.09) of the progress made from the initial smoothed loss AND rose at least ``divergence_rise``
   (0.2) above the best. Either alone false-alarms: a near-zero loss doubles on noise, and a run
   that has barely progressed "gives back its progress" on noise; the largest healthy values in the
   bench were 0.095 of progress (at a 0.17 rise) and a 2.3x rise (at 0.01 of progress). A median
   over 12 steps only moves when more than 6 of the last 12 losses are high, so a transient warmup
   rise ("catapult") that recovers within a few steps is not a divergence. A third condition
   keeps long runs quiet: the rise must also exceed ``divergence_noise`` (4) robust standard
   deviations of single-step losses around their trend (from the median absolute difference of
   successive losses in the spike window; read only when the other two conditions hold). Over
   thousands of steps of a noisy loss the best running median is itself a low outlier -- a
   healthy 5,000-step MLP run with batch 128 (scripts/workloads/long_mlp.py) gave 7 false
   divergences without it, from medians 0.2 above a best reached by luck; with it, none. Bench:
   LR x100 mid-run caught in at most 6 steps; LR x10 in 13/15 runs (15/15 without the noise
   condition) within 18 steps -- the two misses are on the LM task, where a 10x LR from step 0
   never diverges either. One event per episode: it re-arms when the smoothed loss comes back
   below the threshold.
5) ``stall``: after ``stall_steps`` (100) steps with a finite loss, the best smoothed loss never
   got more than ``stall_tolerance`` (0.05) below the initial smoothed loss -- Adam's usual
   failure when the LR is too hot is to sit near the initial loss instead of going NaN. Checked
   once, at that step. (No healthy bench run comes near it: all lose more than half their
   initial loss within 100 steps. A slow fine-tune can: raise ``stall_steps`` there.)
"""

from __future__ import annotations

import itertools
import math
from bisect import bisect_left, insort
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
    spike_hard_ratio: float = 8.0
    spike_hard_zscore: float = 4.0
    spread_floor: float = 0.02
    divergence_window: int = 12
    divergence_fraction: float = 0.09
    divergence_rise: float = 0.2
    divergence_noise: float = 4.0
    stall_steps: int = 100
    stall_tolerance: float = 0.05
    amp_skip_patience: int = 16

    def __setstate__(self, state: dict[str, object]) -> None:
        # pickled before a field existed (a run resumed across versions): that field's default
        for f in fields(self):
            object.__setattr__(self, f.name, state.get(f.name, f.default))

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
        if self.spike_hard_ratio < self.spike_ratio:
            raise AutowarmError(
                "spike_hard_ratio must be >= spike_ratio but got "
                f"{self.spike_hard_ratio!r} < {self.spike_ratio!r}."
            )
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


def _step_noise(values: deque[float]) -> float:
    """A robust standard deviation of single-step losses around their trend: from the median
    absolute difference of successive values (a trend cancels out of differences; for iid
    noise ``median |x_t - x_(t-1)| = 0.6745 * sqrt(2) * sigma``)."""
    v = list(values)
    diffs = sorted(abs(b - a) for a, b in itertools.pairwise(v))
    return _median(diffs) / (0.6745 * math.sqrt(2)) if diffs else 0.0


def _median(sorted_values: list[float]) -> float:
    n = len(sorted_values)
    mid = n // 2
    return sorted_values[mid] if n % 2 else 0.5 * (sorted_values[mid - 1] + sorted_values[mid])


def _jitter(values: deque[float]) -> float:
    """The step-to-step noise of ``values`` (in order), blind to a trend: 1.4826 x the median
    of the absolute successive differences, over sqrt(2) (a difference has twice the variance
    of one value). Only computed for a value that might be a spike."""
    diffs = sorted(abs(b - a) for a, b in itertools.pairwise(values))
    return 1.4826 * _median(diffs) / math.sqrt(2) if diffs else 0.0


def _mad(sorted_values: list[float], med: float) -> float:
    """Median of ``|v - med|`` over ``sorted_values``, in O(log n) and without sorting: the
    deviations grow outward from ``med`` on both sides, two sorted runs, and the k-th smallest
    of two sorted runs is a binary search over how many come from the left one. The same floats
    as ``_median(sorted(abs(v - med) ...))``, since ``a - b == -(b - a)`` exactly."""
    s, n = sorted_values, len(sorted_values)
    split = bisect_left(s, med)  # left run: med - s[split - 1 - i]; right run: s[split + i] - med
    n_left, n_right = split, n - split
    take = n // 2 + 1  # the smallest `take` deviations hold the median (and, n even, its twin)
    lo, hi = max(0, take - n_right), min(take, n_left)
    while True:  # i from the left run, take - i from the right
        i = (lo + hi) // 2
        j = take - i
        if i < n_left and j > 0 and s[split + j - 1] - med > med - s[split - 1 - i]:
            lo = i + 1  # the right run's last taken is larger than the left's next: more left
        elif i > 0 and j < n_right and med - s[split - i] > s[split + j] - med:
            hi = i - 1
        else:
            break
    # the largest two taken are among each run's last two taken
    tops = sorted(
        [med - s[split - k] for k in (i, i - 1) if k > 0]
        + [s[split + k - 1] - med for k in (j, j - 1) if k > 0]
    )
    return tops[-1] if n % 2 else 0.5 * (tops[-2] + tops[-1])


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
        self.logs: deque[float] = deque(maxlen=t.window)  # log of each value, computed once
        # the same windows kept sorted, so that a step costs O(window) list moves, not a sort
        # (the host's per-step cost is what the monitor adds to a small CPU step)
        self._sorted_values: list[float] = []
        self._sorted_logs: list[float] = []
        self._nonpositive = 0  # values <= 0 in the window (then: linear statistics)
        self.flagged: list[float] = []
        self.regime_shift = max(2, t.window // 8)

    def _push(self, x: float) -> None:
        if len(self.values) == self.values.maxlen:
            old, old_log = self.values[0], self.logs[0]
            self._nonpositive -= old <= 0
            del self._sorted_values[bisect_left(self._sorted_values, old)]
            del self._sorted_logs[bisect_left(self._sorted_logs, old_log)]
        log = math.log(x) if x > 0 else 0.0
        self.values.append(x)
        self.logs.append(log)
        insort(self._sorted_values, x)
        insort(self._sorted_logs, log)
        self._nonpositive += x <= 0

    def __setstate__(self, state: dict[str, object]) -> None:
        # a detector pickled before the sorted windows existed (a run resumed across versions)
        self.__dict__.update(state)
        if "_sorted_values" not in state:
            self._sorted_values = sorted(self.values)
            self._sorted_logs = sorted(self.logs)

    def _clear(self) -> None:
        self.values.clear()
        self.logs.clear()
        self._sorted_values.clear()
        self._sorted_logs.clear()
        self._nonpositive = 0

    def _threshold(self) -> tuple[float, float]:
        """(median, threshold) of the current window."""
        t = self.t
        if not self._nonpositive:
            logs = self._sorted_logs
            log_med = _median(logs)
            log_mad = _mad(logs, log_med)
            spread = max(1.4826 * log_mad, t.spread_floor)
            margin = max(t.spike_zscore * spread, math.log(t.spike_ratio))
            # a value spike_hard_ratio x the median is a spike however noisy the window, unless
            # the values jump so much from step to step that this is fewer than
            # spike_hard_zscore of those jumps (a trend, as early in training, does not count)
            hard = max(math.log(t.spike_hard_ratio), t.spike_hard_zscore * _jitter(self.logs))
            margin = min(margin, hard)
            return math.exp(log_med), math.exp(log_med + margin)
        s = self._sorted_values
        med = _median(s)
        mad = _mad(s, med)
        spread = max(1.4826 * mad, t.spread_floor * abs(med), 1e-12)
        margin = max(t.spike_zscore * spread, (t.spike_ratio - 1.0) * abs(med))
        if med != 0:  # a ratio to a zero median means nothing: keep the z-score test alone
            margin = min(margin, (t.spike_hard_ratio - 1.0) * abs(med))
        return med, med + margin

    def _below_any_threshold(self, x: float) -> bool:
        """True when ``x`` is under every threshold the window could give: the threshold is at
        least ``spike_ratio`` x the median (or, in linear units, the median plus that ratio's
        share of it), so a healthy step needs only the median -- the MAD, the dearest part of
        the test, is computed only for a value that might be a spike."""
        t = self.t
        if not self._nonpositive:
            # the same float operations as _threshold's, so the bound never exceeds it
            return x <= math.exp(_median(self._sorted_logs) + math.log(t.spike_ratio))
        med = _median(self._sorted_values)
        return x <= med + (t.spike_ratio - 1.0) * abs(med)

    def update(self, x: float, *, hard_only: bool = False) -> Finding | None:
        if len(self.values) >= self.t.min_history and not self._below_any_threshold(x):
            med, threshold = self._threshold()
            if hard_only and med > 0:  # only a value spike_hard_ratio x the median is a spike
                threshold = max(threshold, med * self.t.spike_hard_ratio)
            if x > threshold:
                self.flagged.append(x)
                if len(self.flagged) >= self.regime_shift:
                    # the level moved for good: start the statistics over from the new level
                    self._clear()
                    for v in self.flagged:
                        self._push(v)
                    self.flagged.clear()
                n = len(self.values)
                detail = (
                    f"{x / med:.3g}x the median of the last {n} steps (threshold {threshold:.4g})"
                    if med > 0
                    else f"above the threshold {threshold:.4g}"
                )
                return Finding("spike", self.signal, x, med, detail)
        self.flagged.clear()
        self._push(x)
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
        self,
        step: int,
        loss: float | None,
        grad_norm: float,
        *,
        amp_overflow: bool = False,
        clip_at: float | None = None,
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
            # a pre-clip norm above the user's clip threshold was clipped: the update it made
            # was no larger than a clipped step's, so only a hard spike is one (see rule 3)
            clipped = signal == "grad_norm" and clip_at is not None and value > clip_at
            spike = self._spikes[signal].update(value, hard_only=clipped)
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

        # divergence: gave back part of the progress made AND rose well above the best AND by
        # more than the batches' noise. Each alone false-alarms: near-zero losses double on
        # noise (rise), runs that barely progressed give back "half their progress" on noise
        # (fraction), and over thousands of steps the best running median is itself a low
        # outlier of a noisy loss (noise: read only when the other two hold, so it costs
        # nothing on a healthy step)
        needed = max(t.divergence_fraction * (initial - best), t.divergence_rise * abs(best), 1e-12)
        rise = smoothed - best
        if rise >= needed and rise >= t.divergence_noise * _step_noise(self._spikes["loss"].values):
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
