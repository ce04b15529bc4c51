"""The search loop in-process, on a synthetic landscape (probe_fakes.py beside this file); the
real CLI and runner are tested end to end in test_probe_cli.py."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState
from probe_fakes import FakeRunner

from autowarm.probe._config import ProbeConfig
from autowarm.probe._record import TrialRecord
from autowarm.probe._score import penalty
from autowarm.probe._search import ProbeSearch, Reporter, SearchStopped

optuna.logging.set_verbosity(optuna.logging.WARNING)


def study() -> optuna.Study:
    return optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0, multivariate=True))


def test_unstable_trials_complete_with_a_penalty_not_fail() -> None:
    st = study()
    runner = FakeRunner(edge_lr=0.05)
    res = ProbeSearch(runner, st, ProbeConfig("x.py", steps=60, trials=12, seed=0)).run()
    assert not res.interrupted
    states = {t.state for t in st.trials}
    assert TrialState.FAIL not in states and TrialState.COMPLETE in states
    bad = [t for t in st.trials if t.user_attrs["status"] == "nonfinite"]
    good = [t for t in st.trials if t.user_attrs["status"] == "stable"]
    assert bad and good
    ref = st.user_attrs["initial_loss"]
    assert all(t.value == pytest.approx(penalty(ref)) for t in bad)
    assert all(t.value < penalty(ref) for t in good)
    # calibration read the script's LR and centred the range on it
    assert st.user_attrs["script_lr"] == runner.script_lr
    assert res.lr_range == pytest.approx((runner.script_lr / 10, runner.script_lr * 50))
    # the first trial ran the script's own LR; the calibration run was 2 steps
    assert runner.specs[0].probe_steps == 2
    assert runner.specs[1].peak_lr == pytest.approx(runner.script_lr)


@pytest.mark.parametrize(
    ("failure", "message"),
    [
        ("crash", "the script failed on the first trial: boom; run it by hand: python x.py"),
        ("no_wrap", "never wrapped an optimizer"),
        ("too_short", "ended before the probe length"),
    ],
)
@pytest.mark.parametrize("lr_range", [None, (1e-3, 1e-1)])
def test_a_script_that_cannot_be_probed_stops_after_one_trial(
    failure: str, message: str, lr_range: tuple[float, float] | None
) -> None:
    runner = FakeRunner(fail=failure)
    cfg = ProbeConfig("x.py", steps=50, trials=10, jobs=3, lr_range=lr_range)
    with pytest.raises(SearchStopped, match=message.replace("(", r"\(")):
        ProbeSearch(runner, study(), cfg, command="python x.py").run()
    assert len(runner.specs) == 1


class InterruptAfter(Reporter):
    def __init__(self, n: int) -> None:
        self.n = n

    def trial_finished(self, rec: TrialRecord, done: int, total: int) -> None:
        if done >= self.n:
            raise KeyboardInterrupt


def test_interrupt_keeps_finished_trials_and_resume_reruns_only_the_rest() -> None:
    st = study()
    cfg = ProbeConfig("x.py", steps=40, trials=8, jobs=2, lr_range=(1e-3, 1e-1), seed=1)
    first = ProbeSearch(FakeRunner(), st, cfg, reporter=InterruptAfter(3)).run()
    assert first.interrupted
    done = [t for t in st.trials if t.state == TrialState.COMPLETE]
    failed = [t for t in st.trials if t.state == TrialState.FAIL]
    assert len(done) == 3
    assert all(t.user_attrs["status"] == "interrupted" for t in failed)
    runner = FakeRunner()
    again = ProbeSearch(runner, st, cfg).run()
    assert not again.interrupted
    complete = [t for t in st.trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 8
    # finished trials were not redone: only 8 - 3 new runs; interrupted ones re-ran as they were
    assert len(runner.specs) == 5
    rerun = {(s.peak_lr, s.warmup_steps) for s in runner.specs}
    for t in failed:
        assert (t.params["peak_lr"], t.params["warmup_steps"]) in rerun


def test_timeout_stops_asking_for_trials() -> None:
    class Slow(FakeRunner):
        def run(self, spec, *, on_step=None):
            import time

            time.sleep(0.3)
            return super().run(spec, on_step=on_step)

    cfg = ProbeConfig("x.py", steps=20, trials=50, lr_range=(1e-3, 1e-1), timeout=1.0)
    res = ProbeSearch(Slow(), study(), cfg).run()
    assert res.timed_out
    assert 1 <= len(res.records) < 10
