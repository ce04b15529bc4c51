from __future__ import annotations

import math

import pytest

from autowarm import AutowarmError, Recipe
from autowarm.probe._config import (
    HORIZON_EXPONENT,
    HORIZON_EXPONENT_AT_EDGE,
    HORIZON_EXPONENT_GAP,
    HORIZON_EXPONENT_NOISY,
    NOISE_SPLIT,
)
from autowarm.probe._recommend import boundary, choose, recommend
from autowarm.probe._record import TrialRecord
from autowarm.schedule._carry import carry_warmup


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


def soft_centre(trials: list[TrialRecord], temperature: float = 0.1) -> float:
    """The rule written out: exp(sum(w log lr) / sum(w)), w = exp(-(score - best) / T)."""
    best = min(t.score for t in trials)
    temp = temperature * abs(best) if best != 0 else temperature  # a loss of 0: absolute
    w = [math.exp(-(t.score - best) / temp) for t in trials]
    return math.exp(sum(wi * math.log(t.peak_lr) for wi, t in zip(w, trials)) / sum(w))


def test_soft_ties_pick_the_weighted_centre_of_lr_and_warmup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from autowarm.probe import _recommend

    trials = [
        rec(0, 0.01, 30, score=1.05),  # 5% worse: weight e^-0.5, near-best
        rec(1, 0.02, 20, score=1.02),
        rec(2, 0.04, 10, score=1.00),  # best
        rec(3, 0.005, 45, score=1.50),  # 50% worse: weight e^-5, not near-best
    ]
    c = choose(trials, probe_steps=100)
    assert c.peak_lr == pytest.approx(soft_centre(trials), rel=1e-9)
    assert 0.015 < c.peak_lr < 0.03  # the centre of 0.01..0.04, pulled toward the better runs
    assert c.evidence["near_best_trials"] == [0, 1, 2]
    # the default warmup is 10 % of the probe, whatever the trials' warmups
    assert c.warmup_steps == 10
    # the "centre" rule it replaced: the weighted mean warmup (44.9 / 2.43), pulled toward the
    # better runs' short ones; the far-off trial's 45 barely counts
    monkeypatch.setattr(_recommend, "WARMUP_RULE", "centre")
    assert choose(trials, probe_steps=100).warmup_steps == 18
    assert c.evidence["temperature"] == pytest.approx(0.1)
    assert c.evidence["weights"]["2"] == 1.0


def test_one_lucky_trial_does_not_decide() -> None:
    # a hard argmin would jump to the hottest trial; the weighted centre moves a little
    base = [rec(i, lr, 20, score=1.0 + 0.01 * i) for i, lr in enumerate([0.01, 0.012, 0.008])]
    lucky = [*base, rec(3, 0.05, 20, score=0.995)]
    assert choose(lucky, probe_steps=100).peak_lr < 2 * choose(base, probe_steps=100).peak_lr


def test_far_worse_trials_barely_move_the_lr() -> None:
    good = [rec(0, 0.01, 10, score=1.0), rec(1, 0.02, 10, score=1.0)]
    bad = [rec(2, 1e-5, 10, score=3.0), rec(3, 1e-5, 10, score=3.5)]
    assert choose(good + bad, probe_steps=100).peak_lr == pytest.approx(
        choose(good, probe_steps=100).peak_lr, rel=1e-6
    )


def test_temperature_must_be_positive() -> None:
    with pytest.raises(ValueError, match="temperature must be positive but got 0"):
        choose([rec(0, 0.01, 10)], probe_steps=100, temperature=0)


def test_spiky_runs_are_candidates() -> None:
    # a spike the run recovered from is a transient: its score counts like any other
    c = choose([rec(0, 0.01, 5, score=2.0), rec(1, 0.02, 5, "spike", 1.0)], probe_steps=100)
    assert c.evidence["best_trial"] == 1 and c.evidence["candidates"] == 2
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
    trials = [rec(0, 0.01, 20, score=3.0), rec(1, 0.03, 40, score=1.0), rec(2, 0.3, 50, "stalled")]
    r = recommend(trials, probe_steps=200, total_steps=5000, decay="linear", min_lr_ratio=0.1)
    assert isinstance(r, Recipe)
    # the probe is the run compressed 25x: warmup keeps its fraction (10 %: 20/200 ->
    # 500/5000), the peak LR falls with the horizon: 0.03 * (200 / 5000) ** 0.3 (the stall at
    # 0.3 is 10x above the pick, no edge near it)
    assert (r.warmup_steps, r.total_steps, r.decay) == (500, 5000, "linear")
    assert r.peak_lr == pytest.approx(0.03 * 0.04**0.3, rel=1e-2)
    assert r.evidence["probe_peak_lr"] == pytest.approx(0.03)
    assert r.evidence["horizon_factor"] == pytest.approx(0.04**0.3)
    assert r.evidence["horizon_exponent"] == 0.3 and r.evidence["near_stability_edge"] is False
    same = recommend(
        trials,
        probe_steps=200,
        total_steps=5000,
        decay="linear",
        warmup_transfer="steps",
        horizon_exponent=0.0,
    )
    assert (same.peak_lr, same.warmup_steps) == (0.03, 20)
    assert r.evidence["probe_steps"] == 200
    assert r.evidence["statuses"] == {"stable": 2, "stalled": 1}
    assert Recipe.from_dict(r.to_dict()) == r


def test_the_horizon_shift_is_small_where_a_stability_edge_sets_the_pick() -> None:
    # trial 2 diverged at 2.5x the best LR (within EDGE_REACH x margin = 4x of the pick): the
    # edge sets the full run's LR as much as the probes' ranking, so it keeps nearly its LR
    trials = [rec(0, 0.01, 20, score=3.0), rec(1, 0.04, 40, score=1.0), rec(2, 0.1, 50, "diverged")]
    r = recommend(trials, probe_steps=200, total_steps=5000, decay="linear")
    assert r.evidence["near_stability_edge"] is True
    assert r.evidence["horizon_exponent"] == HORIZON_EXPONENT_AT_EDGE
    assert r.peak_lr == pytest.approx(0.04 * 0.04**HORIZON_EXPONENT_AT_EDGE, rel=1e-2)
    # the same trials with the edge 25x away: the full short-horizon shift
    far = recommend(
        [*trials[:2], rec(2, 1.0, 50, "diverged")],
        probe_steps=200,
        total_steps=5000,
        decay="linear",
    )
    assert (far.evidence["near_stability_edge"], far.evidence["horizon_exponent"]) == (
        False,
        HORIZON_EXPONENT,
    )
    assert far.peak_lr == pytest.approx(0.04 * 0.04**HORIZON_EXPONENT, rel=1e-2)
    # --horizon-exponent fixes it either way
    fixed = recommend(
        trials, probe_steps=200, total_steps=5000, decay="linear", horizon_exponent=0.1
    )
    assert fixed.evidence["horizon_exponent"] == 0.1
    assert fixed.peak_lr == pytest.approx(0.04 * 0.04**0.1, rel=1e-2)


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
    assert c.peak_lr == pytest.approx(soft_centre(trials[1:3]), rel=1e-9)


def test_spikes_at_a_similar_lr_lengthen_the_warmup() -> None:
    trials = [
        rec(0, 0.01, 5, score=1.0),
        rec(1, 0.003, 5, score=1.3),
        rec(2, 0.012, 30, "spike", 1.5),  # similar LR, far from near-best, spiky up to 30
        rec(3, 0.1, 45, "spike", 2.0),  # much hotter: says nothing about 0.01
    ]
    c = choose(trials, probe_steps=100)
    assert c.evidence["near_best_trials"] == [0]
    assert c.peak_lr == pytest.approx(soft_centre(trials), rel=1e-9)
    assert c.warmup_steps == 30
    assert c.evidence["spiky_trials_near_lr"] == [2]


@pytest.mark.parametrize("shift", [0.0, -5.0, -1.0])
def test_soft_ties_work_for_zero_and_negative_losses(shift: float) -> None:
    # e.g. a negative ELBO or a loss that reaches 0: the temperature scales with |best|
    trials = [rec(0, 0.01, 10, score=shift + 0.5), rec(1, 0.02, 20, score=shift)]
    c = choose(trials, probe_steps=100)
    assert math.isfinite(c.peak_lr) and 0.01 <= c.peak_lr <= 0.02
    assert c.evidence["best_trial"] == 1
    # pulled toward the better trial (a negative temperature would pull it the other way)
    assert c.peak_lr > math.sqrt(0.01 * 0.02)
    assert c.peak_lr == pytest.approx(soft_centre(trials), rel=1e-9)


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("longest", 30),
        ("shortest", 10),
        ("centre", 18),
        ("median", 20),
        ("prior", 16),
        ("fixed", 10),
    ],
)
def test_warmup_rule_options(monkeypatch: pytest.MonkeyPatch, rule: str, expected: int) -> None:
    from autowarm.probe import _recommend

    monkeypatch.setattr(_recommend, "WARMUP_RULE", rule)
    trials = [
        rec(0, 0.01, 30, score=1.05),  # near-best (weight e^-0.5)
        rec(1, 0.02, 20, score=1.02),  # near-best (weight e^-0.2)
        rec(2, 0.04, 10, score=1.00),  # best
        rec(3, 0.005, 45, score=1.50),  # weight e^-5: barely counts in the centre or median
    ]
    # longest / shortest near-best: 30 / 10; weighted mean 18.4; weighted median: 20; the
    # weighted mean with a pseudo-trial of weight 1 at 10 % of the probe: 16.0; fixed: 10 %
    assert choose(trials, probe_steps=100).warmup_steps == expected


def test_recommend_reads_the_module_temperature(monkeypatch: pytest.MonkeyPatch) -> None:
    from autowarm.probe import _recommend

    monkeypatch.setattr(_recommend, "TEMPERATURE", 0.2)
    trials = [rec(0, 0.01, 20, score=1.1), rec(1, 0.03, 40, score=1.0)]
    r = recommend(trials, probe_steps=200, total_steps=None, decay="cosine")
    assert r.evidence["temperature"] == pytest.approx(0.2)


@pytest.mark.parametrize(
    ("variant", "at_edge", "boundary"),
    [("", False, None), ("reach", True, None), ("edge", True, 0.1)],
)
def test_trials_pruned_above_the_best_lr_count_only_in_their_variant(
    monkeypatch: pytest.MonkeyPatch, variant: str, at_edge: bool, boundary: float | None
) -> None:
    from autowarm.probe import _recommend

    monkeypatch.setattr(_recommend, "PRUNED_HOT", variant)
    trials = [
        rec(0, 0.01, 20, score=3.0),
        rec(1, 0.04, 20, score=1.0),
        rec(2, 0.1, 20, "pruned"),  # stopped by the search above the best LR, not unstable
        rec(3, 1e-3, 20, "pruned"),  # below the best LR: too cold, never an edge
    ]
    r = recommend(trials, probe_steps=200, total_steps=5000, decay="linear")
    assert r.evidence["pruned_hot_lr"] == 0.1
    assert r.evidence["near_stability_edge"] is at_edge
    assert r.evidence["boundary_lr"] == boundary


@pytest.mark.parametrize(
    ("relative", "expected"),
    [(0.5 * NOISE_SPLIT, HORIZON_EXPONENT), (2 * NOISE_SPLIT, HORIZON_EXPONENT_NOISY)],
    ids=["quiet-loss", "noisy-loss"],
)
def test_a_noisy_training_loss_takes_the_larger_horizon_exponent(
    relative: float, expected: float
) -> None:
    # near-best trials whose loss is noisy relative to its level (a model fitting most of its
    # batches): the full run overfits at the probes' LR, so the LR falls faster with the length
    lrs, scores = [1e-3, 3e-3, 1e-2, 3e-2, 1e-1], [0.3, 0.12, 0.1, 0.11, 0.4]
    trials = [
        rec(i, lr, 10, score=s, noise=relative * s) for i, (lr, s) in enumerate(zip(lrs, scores))
    ]
    r = recommend(trials, probe_steps=100, total_steps=1000, decay="cosine")
    assert r.evidence["relative_noise"] == pytest.approx(relative)
    assert r.evidence["horizon_exponent"] == expected
    probe_lr = r.evidence["probe_peak_lr"]
    assert r.peak_lr == pytest.approx(probe_lr * 0.1**expected, rel=1e-2)
    # a stability edge near the pick sets the LR whatever the noise
    edged = recommend(
        [*trials, rec(5, 0.025, 10, "diverged")], probe_steps=100, total_steps=1000, decay="cosine"
    )
    assert edged.evidence["horizon_exponent"] == HORIZON_EXPONENT_AT_EDGE


@pytest.mark.parametrize(
    ("source", "exponent"), [("training", HORIZON_EXPONENT_NOISY), ("score", HORIZON_EXPONENT)]
)
def test_a_trial_scored_on_held_out_data_has_the_noise_of_its_training_loss(
    monkeypatch: pytest.MonkeyPatch, source: str, exponent: float
) -> None:
    from autowarm.probe import _recommend
    from autowarm.probe._score import noise, score

    monkeypatch.setattr(_recommend, "NOISE_OF", source)
    monkeypatch.setattr(_recommend, "GAP_RULE", False)  # the score is 1.5x the training loss
    # training losses alternating 1.5 / 0.5 (a model fitting most of its batches); each trial
    # is scored by score_with() on validation, whose own noise is not known
    losses = [1.0 + 0.5 * (-1) ** i for i in range(100)]
    curve = [[i, v] for i, v in enumerate(losses)]
    trials = [
        rec(i, lr, 10, score=1.5 + 0.01 * i, script_scored=True, loss_curve=curve)
        for i, lr in enumerate([1e-3, 3e-3, 1e-2, 3e-2, 1e-1])
    ]
    r = recommend(trials, probe_steps=100, total_steps=1000, decay="cosine")
    relative = noise(losses, 100) / score(losses, 100) if source == "training" else 0.0
    assert relative == 0.0 or relative > NOISE_SPLIT
    assert r.evidence["relative_noise"] == pytest.approx(relative)
    assert r.evidence["horizon_exponent"] == exponent


@pytest.mark.parametrize(
    ("rule", "train_loss", "exponent"),
    [
        (True, 0.5, HORIZON_EXPONENT_GAP),
        (True, 1.4, HORIZON_EXPONENT),
        (False, 0.5, HORIZON_EXPONENT),
    ],
)
def test_the_gap_rule_reads_a_held_out_score_far_above_the_training_loss(
    monkeypatch: pytest.MonkeyPatch, rule: bool, train_loss: float, exponent: float
) -> None:
    from autowarm.probe import _recommend

    monkeypatch.setattr(_recommend, "GAP_RULE", rule)
    # quiet training losses at train_loss; each trial scored by score_with() at about 1.5
    curve = [[i, train_loss] for i in range(100)]
    trials = [
        rec(i, lr, 10, score=1.5 + 0.01 * i, script_scored=True, loss_curve=curve)
        for i, lr in enumerate([1e-3, 3e-3, 1e-2, 3e-2, 1e-1])
    ]
    r = recommend(trials, probe_steps=100, total_steps=1000, decay="cosine")
    gap = r.evidence["generalization_gap"]
    assert gap == pytest.approx(1 - train_loss / 1.51, abs=0.01)
    assert r.evidence["horizon_exponent"] == exponent


@pytest.mark.parametrize(("variant", "narrow", "wide"), [("", 0.3, 0.3), ("width", 0.5, 0.1)])
def test_the_width_horizon_rule_reads_how_sharply_the_score_peaks_in_lr(
    monkeypatch: pytest.MonkeyPatch, variant: str, narrow: float, wide: float
) -> None:
    # the variant rejected on the held-out set, kept selectable for replays: a score sharply
    # peaked in LR takes the large exponent, a wide flat good region the small one
    from autowarm.probe import _recommend

    monkeypatch.setattr(_recommend, "HORIZON_RULE", variant)
    lrs = [1e-3, 3e-3, 1e-2, 3e-2, 1e-1]
    sharp = [rec(i, lr, 10, score=s) for i, (lr, s) in enumerate(zip(lrs, [3, 2, 1, 2, 3]))]
    flat = [
        rec(i, lr, 10, score=s) for i, (lr, s) in enumerate(zip(lrs, [1.02, 1.01, 1, 1.01, 1.02]))
    ]
    exponents = []
    for trials in (sharp, flat):
        r = recommend(trials, probe_steps=100, total_steps=1000, decay="cosine")
        exponents.append(r.evidence["horizon_exponent"])
    assert exponents == [narrow, wide]


def test_the_gain_temperature_is_unmoved_by_a_constant_added_to_the_loss(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the variant: a fraction of what the best trial learned (initial loss - best), so a loss
    # floor of 3 nats added to every score and initial loss changes nothing; |best| does
    from autowarm.probe import _recommend

    def search(offset: float) -> list[TrialRecord]:
        scores = [1.4, 1.1, 1.0, 1.2, 1.9]
        lrs = [1e-3, 3e-3, 1e-2, 3e-2, 1e-1]
        return [
            rec(i, lr, 10, score=s + offset, initial_loss=2.0 + offset)
            for i, (lr, s) in enumerate(zip(lrs, scores))
        ]

    picks = {}
    for base in ("best", "gain"):
        monkeypatch.setattr(_recommend, "TEMPERATURE_BASE", base)
        for offset in (0.0, 3.0):
            r = recommend(search(offset), probe_steps=100, total_steps=1000, decay="cosine")
            picks[base, offset] = (r.peak_lr, r.evidence["temperature"])
    assert picks["gain", 0.0] == picks["gain", 3.0]
    assert picks["gain", 0.0][1] == pytest.approx(_recommend.TEMPERATURE_GAIN * 1.0)
    assert picks["best", 3.0][1] == pytest.approx(4 * picks["best", 0.0][1])  # 0.1 x |best|
    assert picks["best", 3.0][0] < picks["best", 0.0][0]  # softer: pulled to the cold trials


def test_the_lr_can_be_read_from_short_warmup_trials_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from autowarm.probe import _recommend

    trials = [rec(0, 0.01, 10, score=1.0), rec(1, 0.04, 45, score=0.99)]
    both = choose(trials, probe_steps=100).peak_lr
    assert 0.01 < both < 0.04  # the soft centre of both trials
    monkeypatch.setattr(_recommend, "LR_WARMUP_MAX", 0.25)  # a variant: warmups <= 25 steps
    assert choose(trials, probe_steps=100).peak_lr == pytest.approx(0.01)
