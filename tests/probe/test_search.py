"""The search loop in-process, on a synthetic landscape (probe_fakes.py beside this file); the
real CLI and runner are tested end to end in test_probe_cli.py."""

from __future__ import annotations

import math
import time

import optuna
import pytest
from optuna.trial import TrialState
from probe_fakes import FakeRunner, InterruptAfter

from autowarm.probe._config import ProbeConfig
from autowarm.probe._recommend import recommend
from autowarm.probe._score import penalty
from autowarm.probe._search import ProbeSearch, SearchStopped
from autowarm.probe._status import settled

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
        ("subprocess", "probe it as one process, or start its ranks with torchrun"),
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


def test_interrupt_keeps_finished_trials_and_resume_reruns_only_the_rest() -> None:
    st = study()
    cfg = ProbeConfig("x.py", steps=40, trials=8, jobs=2, lr_range=(1e-3, 1e-1), seed=1)
    first = ProbeSearch(FakeRunner(), st, cfg, reporter=InterruptAfter(3)).run()
    assert first.interrupted
    done = [t for t in st.trials if t.state == TrialState.COMPLETE]
    failed = [t for t in st.trials if t.state == TrialState.FAIL]
    # the trial beside the third may have ended before the interrupt reached it: then it is
    # kept with its result (the search reads the study between trials: a slower loop)
    assert len(done) in (3, 4) and len(done) + len(failed) == len(st.trials)
    assert all(t.user_attrs["status"] == "interrupted" for t in failed)
    runner = FakeRunner()
    again = ProbeSearch(runner, st, cfg).run()
    assert not again.interrupted
    complete = [t for t in st.trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 8
    # finished trials were not redone: only the rest ran; interrupted ones re-ran as they were
    assert len(runner.specs) == 8 - len(done)
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


# -- several workers on one study (the real processes: test_workers.py) ---------------------------
def _stale_trial(st: optuna.Study, *, lr_only: bool = False) -> optuna.trial.FrozenTrial:
    """A RUNNING trial of a worker on another host that died: its heartbeat never changes.
    ``lr_only``: it died between its two parameter draws."""
    from optuna.distributions import FloatDistribution, IntDistribution

    params: dict[str, float] = {"peak_lr": 0.02, "warmup_steps": 3}
    dists = {
        "peak_lr": FloatDistribution(1e-3, 1e-1, log=True),
        "warmup_steps": IntDistribution(0, 20),
    }
    if lr_only:
        del params["warmup_steps"], dists["warmup_steps"]
    trial = optuna.trial.create_trial(
        state=TrialState.RUNNING,
        params=params,
        distributions=dists,
        user_attrs={"owner": "elsewhere:1:abc", "heartbeat": 7},
    )
    st.add_trial(trial)
    return st.get_trials(deepcopy=False)[-1]


def test_a_dead_workers_trial_is_failed_and_rerun_once_by_a_live_worker() -> None:
    from autowarm.probe._workers import Heartbeat, Watcher

    st = study()
    stale = _stale_trial(st)
    # two live workers notice it: the FAIL transition lets one of them queue it again
    watchers = [Watcher(st, Heartbeat(st, 0.05)) for _ in range(2)]
    assert [w.poll() for w in watchers] == [[], []]  # not before the grace (6 beats)
    time.sleep(0.35)
    assert [w.poll() for w in watchers] == [[stale.number], []]
    assert st.trials[stale.number].state == TrialState.FAIL
    retries = [t for t in st.trials if t.user_attrs.get("retry_of") == stale.number]
    assert len(retries) == 1 and retries[0].state == TrialState.WAITING
    # a search on the study runs it with its parameters; --trials counts the study's trials
    runner = FakeRunner()
    cfg = ProbeConfig("x.py", steps=30, trials=4, lr_range=(1e-3, 1e-1), seed=0)
    ProbeSearch(runner, st, cfg, heartbeat_s=0.05).run()
    assert (runner.specs[0].peak_lr, runner.specs[0].warmup_steps) == (0.02, 3)
    assert len([t for t in st.trials if t.state == TrialState.COMPLETE]) == 4


def test_a_trial_that_died_between_its_two_draws_reruns_its_lr_with_a_warmup_drawn_anew() -> None:
    from autowarm.probe._workers import Heartbeat, Watcher

    st = study()
    stale = _stale_trial(st, lr_only=True)
    watcher = Watcher(st, Heartbeat(st, 0.05))
    deadline = time.monotonic() + 5
    while not watcher.poll() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert st.trials[stale.number].state == TrialState.FAIL
    runner = FakeRunner()
    cfg = ProbeConfig("x.py", steps=30, trials=2, lr_range=(1e-3, 1e-1), seed=0)
    ProbeSearch(runner, st, cfg, heartbeat_s=0.05).run()
    (retry,) = [t for t in st.trials if t.user_attrs.get("retry_of") == stale.number]
    assert retry.state == TrialState.COMPLETE and retry.params["peak_lr"] == 0.02
    assert 0 <= retry.params["warmup_steps"] <= cfg.warmup_max
    assert runner.specs[0].peak_lr == 0.02


def test_a_running_trial_whose_heartbeat_stops_is_recovered_during_the_search() -> None:
    st = study()
    cfg = ProbeConfig("x.py", steps=30, trials=3, lr_range=(1e-3, 1e-1), seed=0)
    stale = _stale_trial(st)  # counts as running: this worker waits, then takes it over
    runner = FakeRunner()
    ProbeSearch(runner, st, cfg, heartbeat_s=0.05).run()
    assert st.trials[stale.number].state == TrialState.FAIL
    assert len([t for t in st.trials if t.state == TrialState.COMPLETE]) == 3
    assert (0.02, 3) in {(s.peak_lr, s.warmup_steps) for s in runner.specs}


def test_workers_started_at_once_calibrate_once_and_share_the_trial_count(tmp_path) -> None:
    import threading

    url = f"sqlite:///{tmp_path / 's.db'}"
    optuna.create_study(study_name="s", storage=url)
    runners = [FakeRunner() for _ in range(3)]
    cfg = ProbeConfig("x.py", steps=30, trials=9, jobs=2, seed=0)
    results = []

    def work(runner: FakeRunner) -> None:
        st = optuna.load_study(study_name="s", storage=url)
        # 0.2 s: three searches in one process share the GIL and SQLite's write lock
        results.append(ProbeSearch(runner, st, cfg, heartbeat_s=0.2).run())

    threads = [threading.Thread(target=work, args=(r,)) for r in runners]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    st = optuna.load_study(study_name="s", storage=url)
    calibrations = [s for r in runners for s in r.specs if s.probe_steps == 2]
    assert len(calibrations) == 1
    anchors = [t for t in st.trials if t.params.get("peak_lr") == runners[0].script_lr]
    assert len(anchors) == 1 and anchors[0].number == 0
    done = [t for t in st.trials if t.state == TrialState.COMPLETE]
    assert len(done) == 9  # not 27: --trials counts the study's trials
    # a trial held while waiting for the calibration and not needed any more is FAILed
    rest = [t for t in st.trials if t.state != TrialState.COMPLETE]
    assert all(t.state == TrialState.FAIL and not t.params for t in rest), [
        (t.state, t.params, t.user_attrs) for t in rest
    ]
    # every worker ends with the records of every trial, not only its own
    assert len(results) == 3
    # each waited for the others' last trials: all end with the same 9 records
    assert [len(settled(res.records)) for res in results] == [9, 9, 9]


def test_trials_are_scored_by_the_scripts_score_with_when_it_gives_one() -> None:
    # a fine-tune's validation loss is best at a 10x lower LR than its training loss is
    best_val = 3e-3
    runner = FakeRunner(best_lr=3e-2, score_with=lambda t: 1 + math.log(t.peak_lr / best_val) ** 2)
    st = study()
    res = ProbeSearch(runner, st, ProbeConfig("x.py", steps=60, trials=16, seed=0)).run()
    scored = [r for r in res.records if r.status == "stable"]
    assert scored and all(r.script_scored for r in scored)
    assert all(r.noise == 0.0 for r in scored)  # the training loss's noise is not the score's
    for r in scored:
        assert r.score == pytest.approx(1 + math.log(r.peak_lr / best_val) ** 2)
    rec = recommend(res.records, probe_steps=60, total_steps=None, decay="cosine")
    assert best_val / 2 < rec.peak_lr < best_val * 2  # the validation optimum, not 3e-2's
