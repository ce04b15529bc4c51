"""The detector on synthetic series: each rule fires when it should, and only then."""

from __future__ import annotations

import json
import math
import pickle
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autowarm.monitor import Event, History, Thresholds
from autowarm.monitor._detect import Detector, Finding, _mad, _median, _SpikeDetector

# flat synthetic losses are stalls by design; the spike tests switch that rule off
NO_STALL = Thresholds(stall_steps=10_000)


def _feed(
    det: Detector,
    losses: list[float | None],
    grads: list[float] | None = None,
    amp: list[bool] | None = None,
) -> list[tuple[int, Finding]]:
    out = []
    for i, loss in enumerate(losses):
        g = grads[i] if grads is not None else 1.0
        a = amp[i] if amp is not None else False
        out += [(i, f) for f in det.update(i, loss, g, amp_overflow=a)]
    return out


def _noisy(n: int, level: float = 2.0, sigma: float = 0.05, seed: int = 0) -> list[float]:
    """Multiplicative (log-normal) noise around a constant level."""
    rng = random.Random(seed)
    return [level * math.exp(rng.gauss(0.0, sigma)) for _ in range(n)]


def _decaying(n: int, start: float = 4.0, end: float = 2.0, seed: int = 0) -> list[float]:
    rng = random.Random(seed)
    return [
        (end + (start - end) * math.exp(-i / 40)) * math.exp(rng.gauss(0, 0.03)) for i in range(n)
    ]


# -- nonfinite ------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("signal", ["loss", "grad_norm"])
def test_nonfinite_flagged_at_that_step(signal: str, bad: float) -> None:
    losses: list[float | None] = list(_noisy(50))
    grads = _noisy(50, level=1.0, seed=1)
    ref = losses[29] if signal == "loss" else grads[29]
    if signal == "loss":
        losses[30] = bad
    else:
        grads[30] = bad
    found = _feed(Detector(NO_STALL), losses, grads)
    assert [(i, f.kind, f.signal) for i, f in found] == [(30, "nonfinite", signal)]
    assert found[0][1].reference == ref
    assert math.isnan(found[0][1].value) if math.isnan(bad) else found[0][1].value == bad


def test_nan_never_poisons_the_statistics() -> None:
    det = Detector(NO_STALL)
    losses: list[float | None] = list(_noisy(100))
    grads = _noisy(100, level=1.0, seed=1)
    for i in (40, 41, 60):
        losses[i] = math.nan
        grads[i] = math.nan
    losses[80] = 20 * 2.0  # a real 20x spike after the NaNs
    found = _feed(det, losses, grads)
    kinds = [(i, f.kind, f.signal) for i, f in found]
    assert kinds == [
        (40, "nonfinite", "loss"),
        (40, "nonfinite", "grad_norm"),
        (41, "nonfinite", "loss"),
        (41, "nonfinite", "grad_norm"),
        (60, "nonfinite", "loss"),
        (60, "nonfinite", "grad_norm"),
        (80, "spike", "loss"),
    ]
    for spikes in det._spikes.values():
        assert all(math.isfinite(v) for v in spikes.values)
    assert math.isfinite(det.best_loss or math.nan)


# -- spike ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("signal", ["loss", "grad_norm"])
def test_spike_caught_at_that_step_with_the_median_as_reference(signal: str) -> None:
    losses: list[float | None] = list(_noisy(300))
    grads = _noisy(300, level=0.5, seed=1)
    if signal == "loss":
        losses[200] = 10 * 2.0
    else:
        grads[200] = 10 * 0.5
    found = _feed(Detector(NO_STALL), losses, grads)
    assert [(i, f.kind, f.signal) for i, f in found] == [(200, "spike", signal)]
    median = 2.0 if signal == "loss" else 0.5
    assert found[0][1].reference == pytest.approx(median, rel=0.05)
    assert "x the median of the last 64 steps" in found[0][1].detail


@pytest.mark.parametrize("ratio, clip_at, spike", [
    (5.0, 1.0, False),  # clipped (5 > 1.0): the update was bounded, not 8x: no spike
    (12.0, 1.0, True),  # clipped but 12x the median: a hard spike all the same
    (5.0, None, True),  # no clipping: 5x is a spike
    (5.0, 100.0, True),  # a clip threshold above the value: it was not clipped
])  # fmt: skip
def test_a_clipped_grad_norm_spikes_only_at_the_hard_ratio(ratio, clip_at, spike) -> None:
    det = Detector(NO_STALL)
    norms = _noisy(60, level=1.5, sigma=0.05)
    for i, g in enumerate(norms):
        det.update(i, 2.0, g, clip_at=clip_at)
    found = det.update(60, 2.0, 1.5 * ratio, clip_at=clip_at)
    assert [f.kind for f in found if f.signal == "grad_norm"] == (["spike"] if spike else [])


def test_no_spike_before_min_history() -> None:
    losses: list[float | None] = [2.0] * 10 + [200.0] + [2.0] * 9 + [2.0] * 5 + [200.0]
    found = _feed(Detector(Thresholds(min_history=20, stall_steps=10_000)), losses)
    # the first 100x value arrives with 10 values in the window: too early to judge (and it
    # enters the window); the second with 23 values and is flagged
    assert [(i, f.kind) for i, f in found] == [(25, "spike")]


@pytest.mark.parametrize(
    ("after", "expected"),
    [(1.05, []), (1.9, []), (2.5, ["spike"])],
    ids=["rounding", "just-below-ratio", "above-ratio"],
)
def test_zero_spread_guard(after: float, expected: list[str]) -> None:
    # a constant signal (e.g. a grad norm clipped every step): MAD is 0, the floors decide
    found = _feed(Detector(NO_STALL), [*[1.0] * 100, after])
    assert [f.kind for _, f in found] == expected


def test_flagged_values_stay_out_of_the_window() -> None:
    det = Detector(NO_STALL)
    losses: list[float | None] = [*_noisy(100), 30.0, 30.0, 30.0, *_noisy(20, seed=3)]
    found = _feed(det, losses)
    assert [(i, f.kind) for i, f in found] == [(100, "spike"), (101, "spike"), (102, "spike")]
    assert max(det._spikes["loss"].values) < 3.0


def test_a_lasting_level_change_stops_flagging() -> None:
    # after window // 8 flagged values in a row the new level is accepted
    losses: list[float | None] = _noisy(100, level=1.0) + _noisy(100, level=5.0, seed=2)
    found = _feed(Detector(NO_STALL), losses)
    spikes = [i for i, f in found if f.kind == "spike"]
    assert spikes == list(range(100, 108))


@pytest.mark.parametrize(
    ("sigma", "factor", "spike"),
    [
        (0.05, 3.0, True),  # quiet LM-like loss: 3x is far outside
        (0.05, 1.8, False),  # below the 2x ratio floor however quiet
        (0.8, 6.0, False),  # heavy-tailed near-zero loss: 6x is within its noise
        (0.8, 10.0, False),  # ... and so is 10x: 2.9 step-to-step sigmas (spike_hard_zscore)
        (0.8, 50.0, True),
        (0.8, 1000.0, True),
        (0.3, 10.0, True),  # 10x is a spike where the steps jump less (spike_hard_ratio = 8)
    ],
)
def test_spike_threshold_adapts_to_multiplicative_noise(
    sigma: float, factor: float, spike: bool
) -> None:
    losses: list[float | None] = list(_noisy(200, level=0.01, sigma=sigma, seed=4))
    det = Detector(NO_STALL)
    _feed(det, losses)
    median = sorted(det._spikes["loss"].values)[32]
    found = det.update(200, median * factor, 1.0)
    assert any(f.kind == "spike" for f in found) == spike


def test_a_10x_spike_on_a_fast_falling_loss_is_caught_however_wide_its_window() -> None:
    # the loss falls 1000x over the window (a wide spread of its values) with little noise
    # from step to step: the trend does not raise the hard threshold, so 10x is a spike
    rng = random.Random(5)
    losses: list[float | None] = [math.exp(-i / 20 + rng.gauss(0.0, 0.05)) for i in range(140)]
    det = Detector(NO_STALL)
    assert _feed(det, losses) == []
    median = sorted(det._spikes["loss"].values)[32]
    assert any(f.kind == "spike" for f in det.update(140, median * 10, 1.0))


def test_spike_on_a_negative_loss_uses_linear_statistics() -> None:
    losses: list[float | None] = [-1.0 + 0.01 * math.sin(i) for i in range(100)] + [1.0]
    found = _feed(Detector(NO_STALL), losses)
    assert [(i, f.kind) for i, f in found] == [(100, "spike")]


_WINDOW_VALUES = st.one_of(
    st.floats(-5, 5, allow_nan=False),
    st.sampled_from([0.0, -0.0, 1e-3, 1.0, 2.0]),  # ties and zeros
)


@given(st.lists(_WINDOW_VALUES, min_size=1, max_size=80))
def test_mad_from_the_sorted_window_is_the_median_of_the_sorted_deviations(
    values: list[float],
) -> None:
    s = sorted(values)
    med = _median(s)
    assert _mad(s, med) == _median(sorted(abs(v - med) for v in s))  # the same float


@settings(max_examples=50)
@given(st.lists(st.one_of(st.floats(1e-3, 1e3), st.just(0.0), st.just(500.0)), max_size=300))
def test_the_sorted_windows_follow_the_window_through_spikes_and_restarts(
    stream: list[float],
) -> None:
    det = _SpikeDetector("loss", Thresholds(window=16, min_history=4))
    for x in stream:
        det.update(x)
        assert det._sorted_values == sorted(det.values)
        assert det._sorted_logs == sorted(det.logs)
        assert det._nonpositive == sum(v <= 0 for v in det.values)


_QUIET = st.floats(0.97, 1.03)
_JUMPS = st.sampled_from([1.9, 2.0, 2.0000001, 2.05, 2.5, 3.0, 7.9, 8.0, 8.1, 20.0, 0.0, -1.0])


@settings(max_examples=100)
@given(
    st.lists(_QUIET, min_size=4, max_size=20),  # a quiet window first, then anything
    st.lists(st.one_of(_QUIET, _QUIET, _JUMPS), max_size=100),
    st.booleans(),
)
def test_the_healthy_step_shortcut_never_changes_a_finding(
    quiet: list[float], rest: list[float], hard_only: bool
) -> None:
    # the shortcut skips the MAD where the value is under every threshold the window could
    # give; a detector without it must find the same spikes at the same values
    fast = _SpikeDetector("loss", Thresholds(window=16, min_history=4))
    full = _SpikeDetector("loss", Thresholds(window=16, min_history=4))
    full._below_any_threshold = lambda x: False  # type: ignore[method-assign]
    for x in quiet + rest:
        assert fast.update(x, hard_only=hard_only) == full.update(x, hard_only=hard_only)


def test_a_detector_pickled_without_sorted_windows_rebuilds_them() -> None:
    det = _SpikeDetector("loss", Thresholds(window=16, min_history=4))
    for x in [3.0, 1.0, 2.0, 5.0, 4.0]:
        det.update(x)
    state = {k: v for k, v in det.__dict__.items() if not k.startswith("_sorted")}
    old = _SpikeDetector.__new__(_SpikeDetector)
    old.__setstate__(state)  # what unpickling a detector of an older autowarm does
    assert old._sorted_values == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert old._sorted_logs == sorted(old.logs)
    assert pickle.loads(pickle.dumps(det))._sorted_values == det._sorted_values


# -- divergence -----------------------------------------------------------------------------------
def test_sustained_rise_is_divergence_once() -> None:
    rng = random.Random(5)
    losses: list[float | None] = _decaying(300) + [
        3.6 * math.exp(rng.gauss(0, 0.03)) for _ in range(40)
    ]
    found = _feed(Detector(), losses)
    div = [(i, f) for i, f in found if f.kind == "divergence"]
    assert len(div) == 1
    step, f = div[0]
    # the running median over 12 steps crosses once more than half of them are high
    assert 300 <= step <= 300 + 12
    assert f.reference == pytest.approx(2.0, rel=0.05)
    assert f.value >= 1.2 * f.reference  # divergence_rise = 0.2 of the best
    assert "rose from its best" in f.detail


def test_transient_warmup_rise_is_not_divergence() -> None:
    # a catapult: the loss jumps for a few steps and comes back
    losses: list[float | None] = _decaying(120)
    for i in range(60, 65):
        losses[i] = 4.5
    found = _feed(Detector(), losses)
    assert [f.kind for _, f in found if f.kind == "divergence"] == []


def test_divergence_rearms_after_recovery() -> None:
    base = _decaying(200)
    high = [3.6] * 30
    losses: list[float | None] = base + high + [2.0] * 40 + high
    found = _feed(Detector(), losses)
    assert len([i for i, f in found if f.kind == "divergence"]) == 2


def test_near_zero_loss_doubling_on_noise_is_not_divergence() -> None:
    # a loss 2x its best is no divergence when it is 0.02 after starting at 2.3
    rng = random.Random(6)
    losses: list[float | None] = [2.3 * math.exp(-i / 20) + 0.01 for i in range(150)]
    losses += [0.02 * math.exp(rng.gauss(0, 0.3)) for _ in range(100)]
    found = _feed(Detector(), losses)
    assert [f.kind for _, f in found if f.kind == "divergence"] == []


def _long_noisy_run(seed: int, n: int = 5000, sigma: float = 0.25) -> list[float | None]:
    """A healthy long run with a noisy batch loss: fast progress from 2.8, then a slow drift
    from 0.7 to 0.5 with log-normal batch noise (a small batch on a 16-class task)."""
    rng = random.Random(seed)
    out: list[float | None] = []
    for i in range(n):
        level = 0.5 + 0.2 * (1 - i / n) + 2.1 * math.exp(-i / 60)
        out.append(level * math.exp(rng.gauss(0.0, sigma)))
    return out


@pytest.mark.parametrize("seed", range(3))
def test_a_long_noisy_healthy_run_is_no_divergence(seed: int) -> None:
    # over thousands of steps the best 12-step median is a low outlier of the noise; a median
    # 0.2 above it is noise, not a divergence (7 false alarms on a 5,000-step run before)
    losses = _long_noisy_run(seed)
    assert [i for i, f in _feed(Detector(), losses) if f.kind == "divergence"] == []
    # the same run with the noise guard off false-alarms: the guard is what keeps it quiet
    loose = Thresholds(divergence_noise=1e-9)
    assert [i for i, f in _feed(Detector(loose), losses) if f.kind == "divergence"]


def test_a_real_divergence_late_in_a_long_noisy_run_is_still_caught() -> None:
    rng = random.Random(7)
    losses = _long_noisy_run(0, n=4000)
    losses += [2.5 * math.exp(rng.gauss(0.0, 0.25)) for _ in range(40)]  # LR x10: loss x4
    div = [i for i, f in _feed(Detector(), losses) if f.kind == "divergence"]
    assert div and 4000 <= div[0] <= 4000 + 12


# -- stall ----------------------------------------------------------------------------------------
def test_flat_loss_is_a_stall_reported_once() -> None:
    found = _feed(Detector(), list(_noisy(300, level=4.0, sigma=0.02)))
    stalls = [(i, f) for i, f in found if f.kind == "stall"]
    assert [i for i, _ in stalls] == [99]  # the 100th reported loss
    assert stalls[0][1].reference == pytest.approx(4.0, rel=0.03)
    assert [f.kind for _, f in found] == ["stall"]


def test_learning_run_does_not_stall() -> None:
    found = _feed(Detector(), list(_decaying(300)))
    assert found == []


# -- AMP ------------------------------------------------------------------------------------------
def test_amp_skips_are_not_instabilities_until_they_persist() -> None:
    n = 80
    amp = [False] * n
    for i in (3, 4, 5, 30):  # GradScaler searching its scale, then a rare overflow
        amp[i] = True
    for i in range(50, 50 + 16):  # then every step: the gradients really are non-finite
        amp[i] = True
    grads = [math.inf if a else 1.0 for a in amp]
    found = _feed(Detector(), list(_decaying(n)), grads, amp)
    skips = [i for i, f in found if f.kind == "amp_skip"]
    assert skips == [3, 4, 5, 30, *range(50, 66)]
    assert all(
        not Event(i, f.kind, f.signal, f.value, f.reference).is_instability
        for i, f in found
        if f.kind == "amp_skip"
    )
    bad = [(i, f.kind, f.signal) for i, f in found if f.kind != "amp_skip"]
    assert bad == [(65, "nonfinite", "grad_norm")]
    assert "16 steps in a row" in next(f.detail for _, f in found if f.kind == "nonfinite")


def test_amp_does_not_excuse_a_nonfinite_loss() -> None:
    found = Detector().update(0, math.inf, math.inf, amp_overflow=True)
    assert [(f.kind, f.signal) for f in found] == [("amp_skip", "grad_norm"), ("nonfinite", "loss")]


def test_unreported_loss_only_checks_the_gradient() -> None:
    found = _feed(Detector(NO_STALL), [None] * 200, [1.0] * 199 + [math.nan])
    assert [(i, f.kind, f.signal) for i, f in found] == [(199, "nonfinite", "grad_norm")]


# -- events and history ---------------------------------------------------------------------------
def test_event_dict_round_trip_is_strict_json() -> None:
    e = Event(7, "nonfinite", "loss", math.nan, None, "skip", "why")
    text = json.dumps(e.to_dict(), allow_nan=False)
    back = Event.from_dict(json.loads(text))
    assert back.step == 7 and back.kind == "nonfinite" and math.isnan(back.value)
    assert back.reference is None and back.action == "skip"
    assert str(e) == "step 7: nonfinite in loss (nan): why"
    e2 = Event(3, "spike", "grad_norm", 12.0, 1.5)
    assert Event.from_dict(json.loads(json.dumps(e2.to_dict()))) == e2
    assert str(e2) == "step 3: spike in grad_norm (12, reference 1.5)"


def test_history_sequence_and_columns() -> None:
    h = History()
    h._append(0, 2.0, 1.0, 0.1, False, False)
    h._append(1, None, math.inf, 0.1, True, True)
    assert len(h) == 2 and h
    assert h[-1].loss is None and h[-1].skipped and h[-1].amp_overflow
    assert [r.step for r in h[0:2]] == [0, 1]
    assert h[0].to_dict() == {
        "step": 0,
        "loss": 2.0,
        "grad_norm": 1.0,
        "lr": 0.1,
        "skipped": False,
        "amp_overflow": False,
    }
    assert h.column("skipped").tolist() == [False, True]
    assert math.isnan(h.column("loss")[1])
    with pytest.raises(IndexError):
        h[2]


# -- property: a NaN step is invisible to the statistics ------------------------------------------
@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    nan_at=st.sets(st.integers(0, 179), max_size=12),
    spikes=st.sets(st.integers(30, 179), max_size=4),
)
def test_nan_steps_do_not_change_what_else_is_found(
    seed: int, nan_at: set[int], spikes: set[int]
) -> None:
    rng = random.Random(seed)
    base = [(3.0 * math.exp(-i / 50) + 1.0) * math.exp(rng.gauss(0, 0.05)) for i in range(180)]
    grads = [math.exp(rng.gauss(0, 0.1)) for _ in range(180)]
    for i in spikes:
        base[i] *= 20
    clean = [(f.kind, f.signal, f.value) for _, f in _feed(Detector(), list(base), grads)]
    # the same run with NaN/Inf steps inserted before the chosen positions
    losses: list[float | None] = []
    gs: list[float] = []
    for i in range(180):
        if i in nan_at:
            losses.append(math.nan)
            gs.append(math.inf)
        losses.append(base[i])
        gs.append(grads[i])
    found = _feed(Detector(), losses, gs)
    rest = [(f.kind, f.signal, f.value) for _, f in found if f.kind != "nonfinite"]
    assert rest == clean
    assert sum(f.kind == "nonfinite" for _, f in found) == 2 * len(nan_at)


def test_thresholds_pickled_before_a_field_existed_load_with_its_default() -> None:
    t = Thresholds(spike_zscore=5.0)
    reduced = t.__reduce_ex__(2)
    state = dict(reduced[2])
    del state["spike_hard_zscore"]  # as pickled by a version without it
    old = pickle.loads(pickle.dumps(t))
    old.__setstate__(state)
    assert old.spike_zscore == 5.0
    assert old.spike_hard_zscore == Thresholds().spike_hard_zscore
    assert pickle.loads(pickle.dumps(t)) == t
