"""Warmup + decay learning-rate schedules as closed-form functions of the optimizer step.

A schedule is a *multiplier* of the peak LR: ``lr(step) = peak_lr * multiplier(step)``. It is a
pure function of the step (no state, no recursion like torch's chainable schedulers), so a
resumed run needs nothing but the step counter, and every value can be checked in isolation.

Conventions (the same as HF transformers' ``optimization.py`` so that parity is exact):

- ``s`` is the number of optimizer steps taken so far (``LambdaLR``'s ``last_epoch``); step ``s``
  uses ``multiplier(s)``. A run of ``total_steps`` steps uses steps ``0 .. total_steps - 1``.
- Warmup covers steps ``0 .. warmup_steps - 1``; the peak (multiplier 1.0) is reached exactly at
  step ``warmup_steps``.
- Decaying shapes go from 1.0 at step ``warmup_steps`` to the floor ``min_lr_ratio`` at step
  ``total_steps`` and stay on the floor after it (HF's cosine rises again past the end; ours
  does not, a run that goes on longer than planned keeps the floor).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from autowarm._errors import AutowarmError

WARMUP_SHAPES = ("linear", "cosine", "exponential", "1-sqrt")
DECAY_SHAPES = (
    "cosine",
    "linear",
    "constant",
    "polynomial",
    "inverse_sqrt",
    "wsd",
    "cosine_with_restarts",
)
COOLDOWN_SHAPES = ("linear", "cosine", "1-sqrt")
# shapes whose end is defined by total_steps (constant and inverse_sqrt run forever)
NEEDS_TOTAL = frozenset(DECAY_SHAPES) - {"constant", "inverse_sqrt"}
# inverse_sqrt's timescale when there is no warmup to take it from (HF's default)
DEFAULT_TIMESCALE = 10_000


# ----------------------------------------------------------------------------- validation
def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_steps(name: str, value: Any, *, minimum: int) -> int:
    """An integer step count ``>= minimum`` (``bool`` and ``2.5`` are refused)."""
    what = "a non-negative integer" if minimum == 0 else f"an integer >= {minimum}"
    if not _is_int(value):
        raise AutowarmError(f"{name} must be {what} but got {value!r}.")
    if value < minimum:
        raise AutowarmError(f"{name} must be {what} but got {value}.")
    return int(value)


def check_ratio(name: str, value: Any) -> float:
    """A finite number in [0, 1]."""
    if not _is_real(value) or not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise AutowarmError(f"{name} must be in [0, 1] but got {value!r}.")
    return float(value)


def check_positive(name: str, value: Any) -> float:
    """A finite number > 0."""
    if not _is_real(value) or not math.isfinite(value) or value <= 0:
        raise AutowarmError(f"{name} must be a finite number > 0 but got {value!r}.")
    return float(value)


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise AutowarmError(f"unknown {name} {value!r}; choose one of: {', '.join(choices)}.")
    return str(value)


# ----------------------------------------------------------------------------- the schedule
@dataclass(frozen=True)
class Schedule:
    """The shape of a schedule, without the peak LR. Validated on construction.

    Args:
        warmup_steps: steps of warmup; the peak is reached at this step. 0 = no warmup.
        total_steps: length of the run; required by every shape except ``constant`` and
            ``inverse_sqrt`` (``None`` until known; :meth:`multiplier` then raises for them).
        warmup: ``"linear"`` (default), ``"cosine"`` (half-cosine ease-in), ``"exponential"``
            (geometric: the same factor every step, from ``warmup_start_ratio`` to 1) or
            ``"1-sqrt"`` (as HF's WSD).
        decay: the shape after warmup, see :data:`DECAY_SHAPES`.
        min_lr_ratio: the floor, as a fraction of the peak, for every decaying shape (the end
            ratio of ``polynomial``; a lower bound for ``inverse_sqrt``; unused by ``constant``).
        warmup_start_ratio: multiplier at step 0. ``None`` (default) means ``1 / (warmup_steps
            + 1)``, i.e. linear warmup ``(s + 1) / (W + 1)`` as in nanoGPT: the first step
            already learns, whereas HF's ``s / W`` spends step 0 at LR exactly 0
            (transformers#34754) and cannot start an exponential warmup. Pass ``0.0`` to
            reproduce HF exactly.
        power: exponent of ``polynomial`` (1.0 = linear, as HF's default).
        num_cycles: number of cosine cycles of ``cosine_with_restarts`` (HF's default 1).
        timescale: ``inverse_sqrt``'s time scale; ``None`` = ``warmup_steps`` (or 10000 without
            warmup), as HF: ``multiplier = 1 / sqrt((s - W + timescale) / timescale)``.
        cooldown_steps: ``wsd``'s final decay ("cooldown") length: an ``int`` number of steps or
            a ``float`` fraction in (0, 1] of ``total_steps`` (default 0.2, i.e. 20% of the run,
            as in Hägele et al. 2024). Before the cooldown the LR stays at the peak.
        cooldown_shape: ``wsd``'s cooldown shape, ``"1-sqrt"`` (default; the best of the three in
            Hägele et al. 2024), ``"linear"`` or ``"cosine"``.
    """

    warmup_steps: int
    total_steps: int | None = None
    warmup: str = "linear"
    decay: str = "cosine"
    min_lr_ratio: float = 0.0
    warmup_start_ratio: float | None = None
    power: float = 1.0
    num_cycles: int = 1
    timescale: int | None = None
    cooldown_steps: int | float = 0.2
    cooldown_shape: str = "1-sqrt"

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise values (e.g. int 0 -> float 0.0) once
        set_(self, "warmup_steps", check_steps("warmup_steps", self.warmup_steps, minimum=0))
        if self.total_steps is not None:
            set_(self, "total_steps", check_steps("total_steps", self.total_steps, minimum=1))
            if self.warmup_steps > self.total_steps:
                raise AutowarmError(
                    f"warmup_steps must be <= total_steps but got "
                    f"{self.warmup_steps} > {self.total_steps}."
                )
        check_choice("warmup", self.warmup, WARMUP_SHAPES)
        check_choice("decay", self.decay, DECAY_SHAPES)
        set_(self, "min_lr_ratio", check_ratio("min_lr_ratio", self.min_lr_ratio))
        if self.warmup_start_ratio is not None:
            r0 = check_ratio("warmup_start_ratio", self.warmup_start_ratio)
            if self.warmup == "exponential" and r0 == 0.0:
                raise AutowarmError(
                    "warmup_start_ratio must be > 0 for exponential warmup but got 0.0; "
                    "pass a small ratio such as 0.01 or leave it unset."
                )
            set_(self, "warmup_start_ratio", r0)
        set_(self, "power", check_positive("power", self.power))
        set_(self, "num_cycles", check_steps("num_cycles", self.num_cycles, minimum=1))
        if self.timescale is not None:
            set_(self, "timescale", check_steps("timescale", self.timescale, minimum=1))
        check_choice("cooldown_shape", self.cooldown_shape, COOLDOWN_SHAPES)
        self._check_cooldown()

    def _check_cooldown(self) -> None:
        c = self.cooldown_steps
        if _is_int(c):
            if c < 0:
                raise AutowarmError(f"cooldown_steps cannot be negative but got {c}.")
            if self.total_steps is not None and c > self.total_steps - self.warmup_steps:
                raise AutowarmError(
                    f"cooldown_steps must be <= total_steps - warmup_steps but got {c} > "
                    f"{self.total_steps - self.warmup_steps}."
                )
        elif not _is_real(c) or not math.isfinite(c) or not 0.0 < c <= 1.0:
            raise AutowarmError(
                f"cooldown_steps must be an int number of steps or a float fraction in (0, 1] "
                f"of total_steps but got {c!r}."
            )

    # ------------------------------------------------------------------ resolved options
    @property
    def start_ratio(self) -> float:
        """The multiplier at step 0 (``warmup_start_ratio`` or its default ``1/(W+1)``)."""
        if self.warmup_start_ratio is not None:
            return self.warmup_start_ratio
        return 1.0 / (self.warmup_steps + 1)

    @property
    def resolved_timescale(self) -> int:
        if self.timescale is not None:
            return self.timescale
        return self.warmup_steps or DEFAULT_TIMESCALE

    def resolved_cooldown_steps(self, total_steps: int) -> int:
        """``cooldown_steps`` in steps; a fraction is rounded and kept after the warmup."""
        c = self.cooldown_steps
        if _is_int(c):
            return int(c)
        return min(round(c * total_steps), total_steps - self.warmup_steps)

    def with_total_steps(self, total_steps: int | None) -> Schedule:
        """This schedule for a run of ``total_steps`` (``None`` keeps the current one)."""
        if total_steps is None or total_steps == self.total_steps:
            return self
        return Schedule(**{**asdict(self), "total_steps": total_steps})

    def require_total(self) -> int | None:
        """``total_steps``, or a clear error when the decay shape cannot do without it."""
        if self.total_steps is None and self.decay in NEEDS_TOTAL:
            raise AutowarmError(
                f"total_steps is required for decay {self.decay!r} but got None; pass "
                f"total_steps=N (the number of optimizer steps of your run) or set it in the "
                f"recipe."
            )
        return self.total_steps

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    # ------------------------------------------------------------------ the function
    def multiplier(self, step: int) -> float:
        """The LR multiplier (1.0 = peak) at optimizer step ``step`` (0-based)."""
        if not _is_int(step) or step < 0:
            raise AutowarmError(f"step must be a non-negative integer but got {step!r}.")
        s, w = step, self.warmup_steps
        total = self.require_total()

        # 1) warmup: from start_ratio at step 0 towards the peak, reached at step w
        if s < w:
            r0, p = self.start_ratio, s / w
            if self.warmup == "exponential":  # same ratio every step: r0 * (1/r0) ** p
                return r0 ** (1.0 - p)
            return r0 + (1.0 - r0) * _ease_in(self.warmup, p)

        f = self.min_lr_ratio
        # 2) shapes without an end: they never reach the floor, it only bounds them
        if self.decay == "constant":
            return 1.0
        if self.decay == "inverse_sqrt":
            tau = self.resolved_timescale
            return max(f, 1.0 / math.sqrt((s - w + tau) / tau))

        # 3) the run is over: stay on the floor (also covers warmup_steps == total_steps)
        assert total is not None
        if s >= total:
            return f

        # 4) decay from the peak at step w to the floor at step total (w <= s < total, so
        #    total - w >= 1: no division by zero)
        p = (s - w) / (total - w)
        if self.decay == "wsd":
            cooldown = self.resolved_cooldown_steps(total)
            start = total - cooldown
            if s < start:  # 4a) stable phase at the peak
                return 1.0
            return f + (1.0 - f) * _ease_out(self.cooldown_shape, (s - start) / cooldown)
        if self.decay == "cosine_with_restarts":  # hard restarts: back to the peak each cycle
            return f + (1.0 - f) * 0.5 * (1.0 + math.cos(math.pi * ((self.num_cycles * p) % 1.0)))
        if self.decay == "polynomial":
            return f + (1.0 - f) * (1.0 - p) ** self.power
        return f + (1.0 - f) * _ease_out(self.decay, p)

    def describe(self) -> str:
        """One line for humans, e.g. ``"linear warmup over 200 steps from 0.5% of the peak ->
        cosine decay to 10% of the peak at step 5000"``."""
        if self.warmup_steps:
            first = f"{self.warmup} warmup over {self.warmup_steps} steps"
            parts = [f"{first} from {_percent(self.start_ratio)} of the peak"]
        else:
            parts = ["no warmup"]
        end = f"step {self.total_steps}" if self.total_steps is not None else "total_steps"
        to_floor = f"to {_percent(self.min_lr_ratio)} of the peak at {end}"
        if self.decay == "constant":
            parts.append("constant")
        elif self.decay == "inverse_sqrt":
            floor = f", floor {_percent(self.min_lr_ratio)}" if self.min_lr_ratio else ""
            parts.append(f"inverse-sqrt decay (timescale {self.resolved_timescale}{floor})")
        elif self.decay == "wsd":
            if self.total_steps is not None:
                cool = f"{self.resolved_cooldown_steps(self.total_steps)} steps"
            elif _is_int(self.cooldown_steps):
                cool = f"{self.cooldown_steps} steps"
            else:
                cool = f"{_percent(self.cooldown_steps)} of the run"
            parts.append(f"stable -> {self.cooldown_shape} cooldown over {cool} {to_floor}")
        elif self.decay == "polynomial":
            parts.append(f"polynomial (power {self.power:g}) decay {to_floor}")
        elif self.decay == "cosine_with_restarts":
            parts.append(f"cosine decay in {self.num_cycles} cycles (hard restarts) {to_floor}")
        else:
            parts.append(f"{self.decay} decay {to_floor}")
        return " -> ".join(parts)


def _percent(ratio: float) -> str:
    return f"{100 * ratio:.3g}%"


def _ease_in(shape: str, p: float) -> float:
    """0 at p=0 rising to 1 at p=1."""
    if shape == "cosine":
        return 0.5 * (1.0 - math.cos(math.pi * p))
    if shape == "1-sqrt":
        return 1.0 - math.sqrt(1.0 - p)
    return p  # linear


def _ease_out(shape: str, p: float) -> float:
    """1 at p=0 falling to 0 at p=1."""
    if shape == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * p))
    if shape == "1-sqrt":
        return 1.0 - math.sqrt(p)
    return 1.0 - p  # linear
