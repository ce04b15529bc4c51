from __future__ import annotations

import math

import pytest

from autowarm import AutowarmError, Recipe
from autowarm.probe._recommend import boundary, carry_warmup, choose, recommend
from autowarm.probe._search import TrialRecord


def rec(n: int, lr: float, w: int, status: str = "stable", score: float | None = None, **kw):
    if score is None and status in ("stable", "spike"):
        score = 1.0
    return TrialRecord(number=n, peak_lr=lr, warmup_steps=w, status=status, score=score, **kw)


def test_boundary_only_counts_similar_or_longer_warmups() -> None:
    trials = [rec(0, 0.1, 0, "diverged"), rec(1, 0.3, 50, "nonfinite"), rec(2, 1.0, 10, "stable")]
    assert boundary(trials, 0, 100) == pytest.approx(0.1)
    # warmup 40: the warmup-0 divergence says nothing; the warmup-50 one bounds it
    assert boundary(trials, 40, 100) == pytest.approx(0.3)
    # warmup 90 > 1.5 * 50 + 5: no unstable trial at a similar or longer warmup
    assert math.isinf(boundary(trials, 90, 100))


def test_margin_excludes_the_argmin_next_to_the_boundary() -> None:
    trials = [
        rec(0, 0.010, 20, score=1.20),
        rec(1, 0.020, 20, score=1.05),
        rec(2, 0.045, 20, score=1.00),  # best, but within 2x of the divergence at 0.06
        rec(3, 0.060, 20, "diverged"),
    ]
    c = choose(trials, probe_steps=100, margin=2.0)
    assert c.peak_lr <= 0.06 / 2
    assert c.evidence["best_trial"] == 1
    assert c.evidence["boundary_lr"] == pytest.approx(0.06)
    assert c.evidence["lowest_unstable"]["trial"] == 3
    # with no margin the argmin is allowed
    assert choose(trials, probe_steps=100, margin=1.0).evidence["best_trial"] == 2


def test_noise_ties_pick_the_centre_lr_and_the_longest_warmup() -> None:
    trials = [
        rec(0, 0.01, 30, score=1.004, noise=0.002),
        rec(1, 0.02, 20, score=1.002, noise=0.002),
        rec(2, 0.04, 10, score=1.000, noise=0.002),
        rec(3, 0.005, 10, score=1.5, noise=0.002),
    ]
    c = choose(trials, probe_steps=100)
    assert c.evidence["tied_trials"] == [0, 1, 2]
    assert c.peak_lr == pytest.approx(0.02, rel=1e-6)  # geometric mean of 0.01, 0.02, 0.04
    assert c.warmup_steps == 30
    assert c.evidence["tie_tolerance"] >= 2 * math.sqrt(2) * 0.002


def test_scores_apart_by_more_than_the_noise_are_not_ties() -> None:
    trials = [rec(0, 0.01, 10, score=1.10, noise=0.001), rec(1, 0.02, 10, score=1.00, noise=0.001)]
    c = choose(trials, probe_steps=100)
    assert c.evidence["tied_trials"] == [1]
    assert c.peak_lr == pytest.approx(0.02)


def test_spiky_runs_are_used_only_when_no_run_was_clean() -> None:
    c = choose([rec(0, 0.01, 5, score=2.0), rec(1, 0.02, 5, "spike", 1.0)], probe_steps=100)
    assert c.evidence["best_trial"] == 0
    c = choose([rec(1, 0.02, 5, "spike", 1.0), rec(2, 0.5, 5, "nonfinite")], probe_steps=100)
    assert c.evidence["best_trial"] == 1


@pytest.mark.parametrize(
    "trials",
    [
        [],
        [rec(0, 0.1, 0, "diverged"), rec(1, 0.2, 0, "nonfinite")],
        [rec(0, 0.1, 0, "failed", failure="crash", reason="boom"), rec(1, 0.1, 0, "timeout")],
    ],
)
def test_no_stable_trial_is_a_clear_error(trials: list[TrialRecord]) -> None:
    with pytest.raises(AutowarmError, match="no probe trial finished stably"):
        choose(trials, probe_steps=100)


@pytest.mark.parametrize(
    ("how", "warmup", "total", "expected"),
    [
        ("steps", 30, 10_000, 30),
        ("fraction", 30, 10_000, 1500),
        ("steps", 30, None, 30),
        ("steps", 300, 400, 200),  # never more than half the run
    ],
)
def test_carry_warmup(how: str, warmup: int, total: int | None, expected: int) -> None:
    assert carry_warmup(warmup, probe_steps=200, total_steps=total, how=how) == expected


def test_recommend_builds_a_recipe_with_evidence() -> None:
    trials = [rec(0, 0.01, 20, score=1.2), rec(1, 0.03, 40, score=1.0), rec(2, 0.3, 50, "stalled")]
    r = recommend(trials, probe_steps=200, total_steps=5000, decay="linear", min_lr_ratio=0.1)
    assert isinstance(r, Recipe)
    # the probe is the run compressed 25x: warmup keeps its fraction (40/200 -> 1000/5000), the
    # peak LR falls with the horizon: 0.03 * (200 / 5000) ** 0.3
    assert (r.warmup_steps, r.total_steps, r.decay) == (1000, 5000, "linear")
    assert r.peak_lr == pytest.approx(0.03 * 0.04**0.3, rel=1e-2)
    assert r.evidence["probe_peak_lr"] == pytest.approx(0.03)
    assert r.evidence["horizon_factor"] == pytest.approx(0.04**0.3)
    same = recommend(
        trials,
        probe_steps=200,
        total_steps=5000,
        decay="linear",
        warmup_transfer="steps",
        horizon_exponent=0.0,
    )
    assert (same.peak_lr, same.warmup_steps) == (0.03, 40)
    assert r.evidence["probe_steps"] == 200
    assert r.evidence["statuses"] == {"stable": 2, "stalled": 1}
    assert Recipe.from_dict(r.to_dict()) == r


def _curve(base: float, noise: list[float]) -> list[list[float | None]]:
    return [[i, base + n] for i, n in enumerate(noise)]


def test_shared_batch_noise_cancels_in_the_paired_difference() -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    shared = list(rng.normal(0, 0.3, 100))  # same batches in both runs: same noise per step
    a = rec(0, 0.01, 10, score=1.02, noise=0.08, losses=_curve(1.02, shared))
    b = rec(1, 0.02, 10, score=1.00, noise=0.08, losses=_curve(1.00, shared))
    # per-run noise says "tie" (2 * sqrt(2) * 0.08 >> 0.02); the paired difference is exact
    assert choose([a, b], probe_steps=100).evidence["tied_trials"] == [1]
    other = list(rng.normal(0, 0.3, 100))  # different batches: the difference is noisy
    a2 = rec(0, 0.01, 10, score=1.02, noise=0.08, losses=_curve(1.02, other))
    assert choose([a2, b], probe_steps=100).evidence["tied_trials"] == [0, 1]


def test_a_stall_below_the_best_lr_is_too_cold_not_unstable() -> None:
    trials = [
        rec(0, 1e-5, 10, "stalled"),  # too cold to learn: not a boundary
        rec(1, 1e-3, 10, score=1.5),
        rec(2, 1e-2, 10, score=1.0),
        rec(3, 1e-1, 10, "stalled"),  # too hot: the boundary
    ]
    c = choose(trials, probe_steps=100)
    assert c.evidence["cold_stalls"] == 1
    assert c.evidence["lowest_unstable"]["trial"] == 3
    assert c.peak_lr == pytest.approx(1e-2)


def test_spikes_at_a_similar_lr_lengthen_the_warmup() -> None:
    trials = [
        rec(0, 0.01, 5, score=1.0),
        rec(1, 0.003, 5, score=1.3),
        rec(2, 0.012, 30, "spike", 1.1),  # similar LR, spiky up to warmup 30
        rec(3, 0.1, 45, "spike", 2.0),  # much hotter: says nothing about 0.01
    ]
    c = choose(trials, probe_steps=100)
    assert c.peak_lr == pytest.approx(0.01) and c.warmup_steps == 30
    assert c.evidence["spiky_trials_near_lr"] == [2]
