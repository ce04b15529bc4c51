"""Widening the LR range during a search: the rule on records, then the real search loop on the
synthetic landscape (probe_fakes.py) whose best LR lies above the default range."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest
from probe_fakes import FakeRunner

from autowarm.probe._config import (
    LR_RANGE_ATTR,
    LR_WIDENED_ATTR,
    WIDEN_AFTER,
    WIDEN_FACTOR,
    WIDEN_LEFT,
    WIDEN_MOST,
    ProbeConfig,
)
from autowarm.probe._recommend import choose
from autowarm.probe._record import TrialRecord
from autowarm.probe._samplers import SAMPLERS
from autowarm.probe._search import ProbeSearch
from autowarm.probe._widen import widening

optuna.logging.set_verbosity(optuna.logging.WARNING)
RANGE = (1e-4, 5e-2)


def rec(n: int, lr: float, w: int = 20, status: str = "stable", score: float | None = None):
    if score is None and status in ("stable", "spike"):
        score = 1.0
    return TrialRecord(number=n, peak_lr=lr, warmup_steps=w, status=status, score=score)


def rising(n: int = WIDEN_AFTER) -> list[TrialRecord]:
    """``n`` trials whose loss falls all the way to the top of RANGE, the best at 4.5e-2."""
    lrs = [float(v) for v in np.geomspace(3e-4, 4.5e-2, n)]
    return [rec(i, lr, 10 + i, score=2.0 - 0.1 * i) for i, lr in enumerate(lrs)]


def widen(records: list[TrialRecord], *, left: int = 10, widened: int = 0, lr_range=RANGE):
    return widening(records, lr_range, probe_steps=100, margin=2.0, left=left, widened=widened)


def test_a_best_trial_at_the_top_widens_the_range_upwards_and_probes_there_next() -> None:
    records = rising()
    found = widen(records)
    assert found is not None and found.end == "top"
    assert found.lr_range == pytest.approx((RANGE[0], RANGE[1] * WIDEN_FACTOR))
    best = records[-1]
    # half the new part's log width above the best trial, at its warmup
    assert found.first_trial["peak_lr"] == pytest.approx(best.peak_lr * math.sqrt(WIDEN_FACTOR))
    assert found.first_trial["warmup_steps"] == best.warmup_steps
    assert found.to_attr() == {
        "end": "top",
        "to": [RANGE[0], RANGE[1] * WIDEN_FACTOR],
        "after_trials": len(records),
    }
    assert found.text() == "widened the LR range to [0.0001, 0.5]: the best trials sit at its top"


def test_a_best_trial_at_the_bottom_widens_the_range_downwards() -> None:
    records = [rec(i, lr, score=s) for i, (lr, s) in
               enumerate([(1.1e-4, 0.8), (3e-4, 0.9), (1e-3, 1.0), (4e-3, 1.2), (1.5e-2, 1.5),
                          (4e-2, 1.9)])]  # fmt: skip
    found = widen(records)
    assert found is not None and found.end == "bottom"
    assert found.lr_range == pytest.approx((RANGE[0] / WIDEN_FACTOR, RANGE[1]))
    assert found.first_trial["peak_lr"] == pytest.approx(1.1e-4 / math.sqrt(WIDEN_FACTOR))


def test_no_widening_where_the_edge_was_found_or_the_best_is_inside() -> None:
    unstable_above = [*rising(), rec(99, 4.9e-2, 30, "diverged")]
    assert widen(unstable_above) is None
    inside = [rec(i, lr, score=1 + abs(math.log(lr / 3e-3))) for i, lr in
              enumerate([3e-4, 1e-3, 2e-3, 3e-3, 5e-3, 1e-2, 3e-2])]  # fmt: skip
    assert widen(inside) is None


def test_no_widening_too_early_too_late_or_too_often() -> None:
    assert widen(rising(WIDEN_AFTER - 1)) is None  # the sampler's start-up is not behind it
    assert widen(rising(), left=WIDEN_LEFT - 1) is None  # too few trials left to probe there
    assert widen(rising(), widened=WIDEN_MOST) is None
    assert widen(rising(), left=WIDEN_LEFT, widened=WIDEN_MOST - 1) is not None
    # interrupted trials are not results
    interrupted = [rec(i, 1e-3, status="interrupted") for i in range(WIDEN_AFTER)]
    assert widen(interrupted) is None


def test_a_range_where_every_trial_went_unstable_grows_downwards() -> None:
    statuses = ["diverged", "nonfinite"]
    records = [rec(i, 4e-2, w=5 * i, status=statuses[i % 2]) for i in range(WIDEN_AFTER)]
    found = widen(records)
    assert found is not None and found.end == "bottom"
    assert found.lr_range == pytest.approx((RANGE[0] / WIDEN_FACTOR, RANGE[1]))
    # the middle of the new part (in log LR), at the longest warmup tried
    assert found.first_trial == {
        "peak_lr": pytest.approx(RANGE[0] / math.sqrt(WIDEN_FACTOR)),
        "warmup_steps": 5 * (WIDEN_AFTER - 1),
    }
    assert found.text().endswith(f"all {WIDEN_AFTER} trials so far diverged or went NaN")
    # not before the sampler's start-up, nor past the limits of any widening
    assert widen(records[:-1]) is None
    assert widen(records, widened=WIDEN_MOST) is None
    # a trial that failed (the script crashed) says nothing about the LR, nor does a stall
    # (too hot or too cold)
    assert widen([*records, rec(WIDEN_AFTER, 1e-3, status="failed")]) is None
    assert widen([*records, rec(WIDEN_AFTER, 1e-3, status="stalled")]) is None


def cold_script(**kw) -> FakeRunner:
    """A script whose own LR (1e-4) is 200x below its best (2e-2): the default range
    [1e-5, 5e-3] ends where the loss still falls steeply."""
    return FakeRunner(script_lr=1e-4, best_lr=2e-2, edge_lr=0.2, **kw)


def hot_script(**kw) -> FakeRunner:
    """A script whose own LR (1.0) is 200x its divergence edge (5e-3): the default range
    [0.1, 50] holds no LR that trains."""
    return FakeRunner(script_lr=1.0, best_lr=2e-3, edge_lr=5e-3, **kw)


def tpe_study() -> optuna.Study:
    return optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0, multivariate=True))


def search(runner: FakeRunner, st: optuna.Study, **kw):
    cfg = ProbeConfig("x.py", steps=40, trials=20, seed=0, **kw)
    return ProbeSearch(runner, st, cfg).run()


def test_a_search_whose_best_lies_above_its_range_widens_and_recommends_from_there() -> None:
    st = tpe_study()
    runner = cold_script()
    res = search(runner, st)
    default_top = 1e-4 * 50
    widened = st.user_attrs[LR_WIDENED_ATTR]
    assert [w["end"] for w in widened] == ["top"] * len(widened) and 1 <= len(widened) <= 2
    assert res.lr_range == pytest.approx(tuple(widened[-1]["to"]))
    assert st.user_attrs[LR_RANGE_ATTR] == pytest.approx(list(res.lr_range))
    assert res.lr_range[1] == pytest.approx(default_top * WIDEN_FACTOR ** len(widened))
    # within the budget: calibration + the same 20 trials; several probed the new part
    assert len(runner.specs) == 1 + 20
    above = [s for s in runner.specs if s.peak_lr > default_top]
    assert len(above) >= WIDEN_LEFT
    best = min((r for r in res.records if r.score is not None), key=lambda r: r.score)
    assert best.peak_lr > default_top  # the best trial is one the old range could not hold


def test_a_range_the_user_gave_is_never_widened() -> None:
    st = tpe_study()
    runner = cold_script()
    res = search(runner, st, lr_range=(1e-5, 5e-3))
    assert res.lr_range == (1e-5, 5e-3)
    assert LR_WIDENED_ATTR not in st.user_attrs
    assert max(s.peak_lr for s in runner.specs) <= 5e-3


@pytest.mark.parametrize("sampler", ["gp", "qmc"])
def test_samplers_that_cannot_model_a_grown_range_keep_theirs(sampler: str) -> None:
    st = optuna.create_study(sampler=SAMPLERS[sampler](0, 12))
    runner = cold_script()
    cfg = ProbeConfig("x.py", steps=40, trials=12, seed=0, sampler=sampler)
    res = ProbeSearch(runner, st, cfg).run()
    assert res.lr_range == pytest.approx((1e-5, 5e-3))
    assert LR_WIDENED_ATTR not in st.user_attrs


def test_a_resumed_search_keeps_the_widened_range() -> None:
    st = tpe_study()
    first = search(cold_script(), st)
    assert st.user_attrs[LR_WIDENED_ATTR]
    runner = cold_script()
    cfg = ProbeConfig("x.py", steps=40, trials=24, seed=0)
    again = ProbeSearch(runner, st, cfg).run()
    assert again.lr_range[1] >= first.lr_range[1]
    assert runner.specs and all(s.probe_steps == 40 for s in runner.specs)  # no re-calibration


def test_a_script_whose_own_lr_diverges_gets_a_recommendation_below_its_edge() -> None:
    st = tpe_study()
    runner = hot_script()
    res = search(runner, st)  # before: "no probe trial finished stably" after 20 trials
    widened = st.user_attrs[LR_WIDENED_ATTR]
    assert [w["end"] for w in widened] == ["bottom"] * WIDEN_MOST
    assert res.lr_range == pytest.approx((0.1 / WIDEN_FACTOR**WIDEN_MOST, 50.0))
    assert len(runner.specs) == 1 + 20  # calibration + the same budget
    assert any(r.status in ("stable", "spike") for r in res.records)
    c = choose(res.records, probe_steps=40, margin=2.0)
    assert c.peak_lr < runner.edge(c.warmup_steps)  # below the script's true edge
