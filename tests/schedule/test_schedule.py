from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from autowarm._errors import AutowarmError
from autowarm.schedule._schedule import COOLDOWN_SHAPES, DECAY_SHAPES, WARMUP_SHAPES, Schedule

PEAK = 1e-3


def _hf_multipliers(name: str, total: int, **kwargs: object) -> list[float]:
    """The multiplier of a real transformers scheduler at steps 0..total (inclusive)."""
    transformers_optimization = pytest.importorskip("transformers.optimization")
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=PEAK)
    scheduler = getattr(transformers_optimization, name)(optimizer, **kwargs)
    values = []
    for _ in range(total + 1):
        values.append(scheduler.get_last_lr()[0] / PEAK)
        optimizer.step()
        scheduler.step()
    return values


# (HF builder, its kwargs, our Schedule options); HF's warmup is s/W: warmup_start_ratio=0.
# Steps W=0 (no warmup), W=1, a typical W and W = T - 1 are covered by the parametrization.
PARITY = [
    ("get_linear_schedule_with_warmup", {}, {"decay": "linear"}),
    ("get_cosine_schedule_with_warmup", {}, {"decay": "cosine"}),
    ("get_constant_schedule_with_warmup", {}, {"decay": "constant"}),
    (
        "get_polynomial_decay_schedule_with_warmup",
        {"power": 2.0, "lr_end": 1e-5},
        {"decay": "polynomial", "power": 2.0, "min_lr_ratio": 1e-5 / PEAK},
    ),
    (
        "get_polynomial_decay_schedule_with_warmup",
        {},  # HF defaults: power 1, lr_end 1e-7
        {"decay": "polynomial", "min_lr_ratio": 1e-7 / PEAK},
    ),
    (
        "get_cosine_with_hard_restarts_schedule_with_warmup",
        {"num_cycles": 3},
        {"decay": "cosine_with_restarts", "num_cycles": 3},
    ),
    ("get_inverse_sqrt_schedule", {}, {"decay": "inverse_sqrt"}),
    ("get_inverse_sqrt_schedule", {"timescale": 7}, {"decay": "inverse_sqrt", "timescale": 7}),
    (
        "get_cosine_with_min_lr_schedule_with_warmup",
        {"min_lr_rate": 0.1},
        {"decay": "cosine", "min_lr_ratio": 0.1},
    ),
]


@pytest.mark.parametrize(("warmup", "total"), [(0, 40), (1, 40), (10, 97), (39, 40)])
@pytest.mark.parametrize(("hf_name", "hf_kwargs", "ours"), PARITY)
def test_parity_with_transformers(
    hf_name: str, hf_kwargs: dict, ours: dict, warmup: int, total: int
) -> None:
    kwargs = dict(hf_kwargs, num_warmup_steps=warmup)
    if hf_name not in ("get_constant_schedule_with_warmup", "get_inverse_sqrt_schedule"):
        kwargs["num_training_steps"] = total
    expected = _hf_multipliers(hf_name, total, **kwargs)
    schedule = Schedule(warmup, total, warmup_start_ratio=0.0, **ours)
    got = [schedule.multiplier(s) for s in range(total + 1)]
    assert got == pytest.approx(expected, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("warmup_type", ["linear", "cosine", "1-sqrt"])
@pytest.mark.parametrize("decay_type", COOLDOWN_SHAPES)
@pytest.mark.parametrize(("warmup", "decay_steps", "min_lr_ratio"), [(0, 10, 0.0), (8, 25, 0.2)])
def test_parity_with_transformers_wsd(
    warmup_type: str, decay_type: str, warmup: int, decay_steps: int, min_lr_ratio: float
) -> None:
    total = 60
    expected = _hf_multipliers(
        "get_wsd_schedule",
        total,
        num_warmup_steps=warmup,
        num_decay_steps=decay_steps,
        num_training_steps=total,
        warmup_type=warmup_type,
        decay_type=decay_type,
        min_lr_ratio=min_lr_ratio,
    )
    # HF's WSD warmup starts at min_lr_ratio
    schedule = Schedule(
        warmup,
        total,
        warmup=warmup_type,
        decay="wsd",
        cooldown_steps=decay_steps,
        cooldown_shape=decay_type,
        min_lr_ratio=min_lr_ratio,
        warmup_start_ratio=min_lr_ratio,
    )
    got = [schedule.multiplier(s) for s in range(total + 1)]
    assert got == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_default_warmup_is_nanogpt_linear_from_first_step() -> None:
    # (s + 1) / (W + 1): step 0 already learns (HF: exactly 0), the peak at step W
    schedule = Schedule(4, 10, decay="constant")
    assert [schedule.multiplier(s) for s in range(6)] == pytest.approx(
        [1 / 5, 2 / 5, 3 / 5, 4 / 5, 1.0, 1.0]
    )


def test_exponential_warmup_is_geometric() -> None:
    schedule = Schedule(4, 10, warmup="exponential", warmup_start_ratio=1 / 16, decay="constant")
    values = [schedule.multiplier(s) for s in range(5)]
    assert values == pytest.approx([1 / 16, 1 / 8, 1 / 4, 1 / 2, 1.0])


def test_wsd_fraction_and_stable_phase() -> None:
    schedule = Schedule(10, 100, decay="wsd", cooldown_steps=0.2, cooldown_shape="linear")
    assert schedule.resolved_cooldown_steps(100) == 20
    assert all(schedule.multiplier(s) == 1.0 for s in range(10, 81))
    assert schedule.multiplier(90) == pytest.approx(0.5)
    assert schedule.multiplier(100) == 0.0


def test_wsd_fraction_is_kept_after_warmup() -> None:
    # 90% of 100 steps would start the cooldown inside a 50-step warmup: it starts at 50
    schedule = Schedule(50, 100, decay="wsd", cooldown_steps=0.9)
    assert schedule.resolved_cooldown_steps(100) == 50
    assert schedule.multiplier(50) == 1.0
    assert schedule.multiplier(51) < 1.0


def test_floor_after_total_and_inverse_sqrt_floor() -> None:
    cosine = Schedule(2, 10, min_lr_ratio=0.3)
    assert [cosine.multiplier(s) for s in (10, 11, 1000)] == [0.3, 0.3, 0.3]
    inv = Schedule(2, decay="inverse_sqrt", min_lr_ratio=0.25)
    assert inv.multiplier(2) == 1.0
    assert inv.multiplier(2 + 2 * 15) == pytest.approx(0.25)  # sqrt(2 / 32) = 0.25
    assert inv.multiplier(10_000) == 0.25


@pytest.mark.parametrize("decay", ["constant", "inverse_sqrt"])
def test_shapes_without_end_need_no_total(decay: str) -> None:
    assert Schedule(5, decay=decay).multiplier(1_000_000) > 0


@pytest.mark.parametrize("decay", sorted(set(DECAY_SHAPES) - {"constant", "inverse_sqrt"}))
def test_decaying_shapes_need_total(decay: str) -> None:
    with pytest.raises(AutowarmError, match=rf"total_steps is required for decay '{decay}'"):
        Schedule(5, decay=decay).multiplier(0)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"warmup_steps": -1}, "warmup_steps must be a non-negative integer but got -1."),
        ({"warmup_steps": 2.5}, "warmup_steps must be a non-negative integer but got 2.5."),
        ({"warmup_steps": True}, "warmup_steps must be a non-negative integer but got True."),
        ({"warmup_steps": 500, "total_steps": 200}, "must be <= total_steps but got 500 > 200."),
        ({"total_steps": 0}, "total_steps must be an integer >= 1 but got 0."),
        ({"decay": "cosin"}, "unknown decay 'cosin'; choose one of: cosine, linear, constant"),
        ({"warmup": "step"}, "unknown warmup 'step'; choose one of: linear, cosine"),
        ({"min_lr_ratio": 1.5}, "min_lr_ratio must be in [0, 1] but got 1.5."),
        ({"min_lr_ratio": -0.1}, "min_lr_ratio must be in [0, 1] but got -0.1."),
        ({"min_lr_ratio": math.nan}, "min_lr_ratio must be in [0, 1] but got nan."),
        ({"min_lr_ratio": "0.1"}, "min_lr_ratio must be in [0, 1] but got '0.1'."),
        ({"warmup_start_ratio": 2.0}, "warmup_start_ratio must be in [0, 1] but got 2.0."),
        (
            {"warmup": "exponential", "warmup_start_ratio": 0.0},
            "warmup_start_ratio must be > 0 for exponential warmup but got 0.0",
        ),
        ({"power": 0}, "power must be a finite number > 0 but got 0."),
        ({"num_cycles": 0}, "num_cycles must be an integer >= 1 but got 0."),
        ({"timescale": 0}, "timescale must be an integer >= 1 but got 0."),
        ({"cooldown_steps": -3}, "cooldown_steps cannot be negative but got -3."),
        ({"cooldown_steps": 1.5}, "cooldown_steps must be an int number of steps or a float"),
        ({"cooldown_steps": 95}, "cooldown_steps must be <= total_steps - warmup_steps but got"),
        ({"cooldown_shape": "sqrt"}, "unknown cooldown_shape 'sqrt'; choose one of: linear"),
    ],
)
def test_validation_messages(options: dict, message: str) -> None:
    kwargs = {"warmup_steps": 10, "total_steps": 100, **options}
    with pytest.raises(AutowarmError) as info:
        Schedule(**kwargs)
    text = str(info.value)
    assert message in text
    assert "\n" not in text


@pytest.mark.parametrize("step", [-1, 1.5])
def test_bad_step(step: object) -> None:
    with pytest.raises(AutowarmError, match="step must be a non-negative integer"):
        Schedule(1, 10).multiplier(step)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- properties
@st.composite
def schedules(draw: st.DrawFn) -> Schedule:
    total = draw(st.integers(1, 400))
    warmup = draw(st.one_of(st.just(0), st.just(total), st.integers(0, total)))
    warmup_shape = draw(st.sampled_from(WARMUP_SHAPES))
    start = draw(st.one_of(st.none(), st.floats(0.0, 1.0)))
    if warmup_shape == "exponential" and start == 0.0:
        start = None
    cooldown = draw(
        st.one_of(st.floats(0.01, 1.0), st.integers(0, total - warmup)),
    )
    return Schedule(
        warmup,
        total,
        warmup=warmup_shape,
        decay=draw(st.sampled_from(DECAY_SHAPES)),
        min_lr_ratio=draw(st.floats(0.0, 1.0)),
        warmup_start_ratio=start,
        power=draw(st.floats(0.1, 5.0)),
        num_cycles=draw(st.integers(1, 5)),
        timescale=draw(st.one_of(st.none(), st.integers(1, 1000))),
        cooldown_steps=cooldown,
        cooldown_shape=draw(st.sampled_from(COOLDOWN_SHAPES)),
    )


@settings(max_examples=150, deadline=None)
@given(schedules())
def test_property_warmup_monotone_and_ends_at_peak(schedule: Schedule) -> None:
    w, total = schedule.warmup_steps, schedule.total_steps
    assert total is not None
    values = [schedule.multiplier(s) for s in range(w)]
    assert all(0.0 <= v <= 1.0 for v in values)
    assert all(a <= b for a, b in itertools.pairwise(values))
    if w < total:  # the peak at step w (when w == total, step total is the end: the floor)
        assert schedule.multiplier(w) == 1.0
    if w > 0:
        assert values[0] == pytest.approx(schedule.start_ratio)


@settings(max_examples=150, deadline=None)
@given(schedules())
def test_property_decay_stays_above_floor_and_reaches_it(schedule: Schedule) -> None:
    w, total, floor = schedule.warmup_steps, schedule.total_steps, schedule.min_lr_ratio
    assert total is not None
    after = [schedule.multiplier(s) for s in range(w, total + 5)]
    assert all(floor - 1e-12 <= v <= 1.0 for v in after)
    assert all(math.isfinite(v) for v in after)
    if schedule.decay not in ("constant", "inverse_sqrt"):
        assert schedule.multiplier(total) == floor
        assert schedule.multiplier(total + 1000) == floor
    if schedule.decay not in ("cosine_with_restarts", "constant"):  # monotone non-increasing
        assert all(a >= b - 1e-12 for a, b in itertools.pairwise(after))


@settings(max_examples=150, deadline=None)
@given(schedules())
def test_property_continuous_where_phases_meet(schedule: Schedule) -> None:
    # the step before and after each phase boundary differ by at most one step's worth of
    # change: the largest slope of any shape is pi/2 (cosine) or 1/(2 sqrt(p)) (1-sqrt, only
    # near its start), so compare with a bound of a few steps' slope.
    w, total = schedule.warmup_steps, schedule.total_steps
    assert total is not None
    if 1 < w < total:
        jump = abs(schedule.multiplier(w) - schedule.multiplier(w - 1))
        step_size = 1.0 / w
        bound = (
            (1.0 - schedule.start_ratio) * step_size * 2.0
            if schedule.warmup != "exponential"
            else 1.0 - schedule.start_ratio ** (1.0 / w)
        )
        if schedule.warmup == "1-sqrt":
            bound = (1.0 - schedule.start_ratio) * math.sqrt(step_size) + 1e-12
        assert jump <= bound + 1e-12
    if schedule.decay == "wsd" and total - w >= 2:
        cooldown = schedule.resolved_cooldown_steps(total)
        start = total - cooldown
        if cooldown >= 2 and start > w:
            # entering the cooldown: the last stable step is the peak, the first cooldown step too
            assert schedule.multiplier(start - 1) == 1.0
            assert schedule.multiplier(start) == pytest.approx(1.0)


@settings(max_examples=150, deadline=None)
@given(schedules())
def test_property_decay_leaves_the_peak_and_meets_the_floor_smoothly(schedule: Schedule) -> None:
    # one step moves the multiplier by at most (1 - floor) * (largest slope) / (phase length)
    w, total, f = schedule.warmup_steps, schedule.total_steps, schedule.min_lr_ratio
    assert total is not None
    n = total - w
    if n < 2:
        return
    first_drop = 1.0 - schedule.multiplier(w + 1)
    last_gap = schedule.multiplier(total - 1) - f
    if schedule.decay in ("linear", "cosine"):
        assert first_drop <= (1.0 - f) * (math.pi / 2) / n + 1e-12
        assert last_gap <= (1.0 - f) * (math.pi / 2) / n + 1e-12
    elif schedule.decay == "polynomial":
        assert first_drop <= (1.0 - f) * max(schedule.power, 1.0) / n + 1e-12
    elif schedule.decay == "cosine_with_restarts":  # each cycle is num_cycles times shorter
        assert first_drop <= (1.0 - f) * (math.pi / 2) * schedule.num_cycles / n + 1e-12
    elif schedule.decay == "inverse_sqrt":
        assert first_drop <= 1.0 / (2 * schedule.resolved_timescale) + 1e-12
    elif schedule.decay == "wsd":
        cooldown = schedule.resolved_cooldown_steps(total)
        if cooldown >= 2:  # 1-sqrt is the steepest at the end: 1 - sqrt(1 - 1/D) <= 1/D
            assert last_gap <= (1.0 - f) * (math.pi / 2) / cooldown + 1e-12


@pytest.mark.parametrize("decay", DECAY_SHAPES)
@pytest.mark.parametrize(("warmup", "total"), [(0, 1), (1, 1), (0, 2), (5, 5), (0, 1000)])
def test_edge_lengths_never_divide_by_zero(decay: str, warmup: int, total: int) -> None:
    for warmup_shape in WARMUP_SHAPES:
        schedule = Schedule(
            warmup, total, warmup=warmup_shape, decay=decay, cooldown_steps=total - warmup
        )
        values = [schedule.multiplier(s) for s in range(total + 3)]
        assert all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in values)
