"""Issue 14's search cases, in-process on the synthetic landscape (probe_fakes.py): a seeded
resume (4), a second Ctrl-C (5), SIGTERM/SIGHUP (7), NaN from the first step (11) and a storage
that fails mid-search (3); one end-to-end SIGTERM of the real CLI."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
import sqlalchemy.exc
from optuna.trial import TrialState
from probe_cli import start_probe
from probe_fakes import FakeRunner, InterruptAfter

from autowarm.probe import _search
from autowarm.probe._config import ProbeConfig
from autowarm.probe._record import TrialRecord
from autowarm.probe._samplers import SAMPLERS, resumed_seed
from autowarm.probe._search import ProbeSearch, Reporter, SearchStopped, StorageFailed
from autowarm.probe._types import TrialResult, TrialSpec

optuna.logging.set_verbosity(optuna.logging.WARNING)
posix = pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
RANGE = (1e-3, 1e-1)


def open_study(storage: Any, cfg: ProbeConfig) -> optuna.Study:
    """What the CLI does: a study named once, its sampler built from --sampler and --seed."""
    return optuna.create_study(
        study_name="s",
        storage=storage,
        sampler=SAMPLERS[cfg.sampler](cfg.seed, cfg.trials),
        direction="minimize",
        load_if_exists=True,
    )


def states(study: optuna.Study) -> dict[int, tuple[TrialState, str | None]]:
    return {t.number: (t.state, t.user_attrs.get("status")) for t in study.trials}


# -- case 4 ---------------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
@pytest.mark.parametrize("sampler", ["tpe", "gp", "qmc"])
def test_case4_seeded_resume_continues_the_sequence(sampler: str) -> None:
    storage = optuna.storages.InMemoryStorage()
    cfg = ProbeConfig("x.py", steps=20, trials=6, seed=7, sampler=sampler, lr_range=RANGE)
    study = open_study(storage, cfg)
    assert ProbeSearch(FakeRunner(), study, cfg, reporter=InterruptAfter(3)).run().interrupted
    stored = {(t.params["peak_lr"], t.params["warmup_steps"]) for t in study.trials}
    assert len(stored) == 3

    # the same command again: a new process, a sampler built afresh with the same seed
    again = open_study(storage, cfg)
    assert not ProbeSearch(FakeRunner(), again, cfg).run().interrupted
    new = [t for t in again.trials[3:] if "retry_of" not in t.user_attrs]
    assert len(new) == 3
    for t in new:
        assert (t.params["peak_lr"], t.params["warmup_steps"]) not in stored, t.number


def test_case4_a_seeded_search_stays_reproducible_fresh_and_resumed() -> None:
    def search(stop_after: int | None) -> list[tuple[float, int]]:
        storage = optuna.storages.InMemoryStorage()
        cfg = ProbeConfig("x.py", steps=20, trials=6, seed=3, lr_range=RANGE)
        reporter = InterruptAfter(stop_after) if stop_after else None
        ProbeSearch(FakeRunner(), open_study(storage, cfg), cfg, reporter=reporter).run()
        study = open_study(storage, cfg)
        ProbeSearch(FakeRunner(), study, cfg).run()
        return [(t.params["peak_lr"], t.params["warmup_steps"]) for t in study.trials]

    assert search(None) == search(None)  # fresh: the seed gives the same trials
    assert search(2) == search(2)  # resumed at the same point: the same trials again
    assert resumed_seed(3, 2) == resumed_seed(3, 2) != resumed_seed(3, 4)


# -- case 5 ---------------------------------------------------------------------------------------
class TwoCtrlC(FakeRunner):
    """Trial 0 runs alone; with trials 1 and 2 both running the user presses Ctrl-C, and again
    while the search stops them. Trial 1 finishes meanwhile (a real result), trial 2 does not."""

    def __init__(self) -> None:
        super().__init__()
        self.running: set[int] = set()

    def run(self, spec: TrialSpec, *, on_step: Any = None) -> TrialResult:
        if spec.number == 0:
            return super().run(spec)
        with self._lock:
            self.running.add(spec.number)
            both = len(self.running) == 2
        if both:
            os.kill(os.getpid(), signal.SIGINT)
        assert self.interrupted.wait(10)
        if spec.number == 2:
            return TrialResult("interrupted", 3, losses=[3.0, 2.9, 2.8])
        time.sleep(0.3)  # still writing its last steps when the second Ctrl-C comes
        losses = [3.0 - 0.05 * i for i in range(spec.probe_steps)]
        return TrialResult("stable", spec.probe_steps, losses=losses)

    def interrupt(self) -> None:
        super().interrupt()
        os.kill(os.getpid(), signal.SIGINT)  # the second Ctrl-C, while the search cleans up


@posix
def test_case5_a_second_ctrl_c_while_stopping_tells_every_trial_once() -> None:
    study = optuna.create_study()
    cfg = ProbeConfig("x.py", steps=20, trials=6, jobs=2, lr_range=RANGE)
    try:
        res = ProbeSearch(TwoCtrlC(), study, cfg).run()
    except KeyboardInterrupt:
        pytest.fail("the second Ctrl-C escaped the search")
    assert res.interrupted and res.stop_signal == signal.SIGINT
    assert states(study) == {
        0: (TrialState.COMPLETE, "stable"),
        1: (TrialState.COMPLETE, "stable"),  # finished: kept with its result, not redone
        2: (TrialState.FAIL, "interrupted"),
    }
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


@posix
def test_case5_ctrl_c_while_a_trial_is_being_told_waits_for_the_tell(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_tell = _search.tell

    def tell_interrupted(*args: Any, **kwargs: Any) -> TrialRecord:
        os.kill(os.getpid(), signal.SIGINT)  # lands in the middle of the storage writes
        time.sleep(0.01)
        return real_tell(*args, **kwargs)

    monkeypatch.setattr(_search, "tell", tell_interrupted)
    study = optuna.create_study()
    cfg = ProbeConfig("x.py", steps=20, trials=6, lr_range=RANGE)
    try:
        res = ProbeSearch(FakeRunner(), study, cfg).run()
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C escaped the search")
    assert res.interrupted
    assert states(study) == {0: (TrialState.COMPLETE, "stable")}  # told, not left RUNNING


# -- case 7 ---------------------------------------------------------------------------------------
class SignalAt(FakeRunner):
    """Sends ``sig`` to this process while trial ``at`` runs; ``stops``: that trial ends only
    when the search stops it."""

    def __init__(self, sig: int, at: int, *, stops: bool = True) -> None:
        super().__init__()
        self.sig, self.at, self.stops = sig, at, stops

    def run(self, spec: TrialSpec, *, on_step: Any = None) -> TrialResult:
        if spec.number != self.at:
            return super().run(spec)
        os.kill(os.getpid(), self.sig)
        if not self.stops:
            time.sleep(0.1)  # the signal is handled (or not) meanwhile
            return super().run(spec)
        assert self.interrupted.wait(10)
        return TrialResult("interrupted", 2, losses=[3.0, 2.9])


@posix
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_case7_sigterm_and_sighup_stop_like_ctrl_c(sig: int) -> None:
    class Killed(Exception):
        pass

    def outside(signum: int, frame: Any) -> None:  # stands for "the process dies"
        raise Killed

    old = signal.signal(sig, outside)
    try:
        study = optuna.create_study()
        cfg = ProbeConfig("x.py", steps=20, trials=6, jobs=2, lr_range=RANGE)
        runner = SignalAt(sig, at=2)
        res = ProbeSearch(runner, study, cfg).run()
        assert signal.getsignal(sig) is outside  # the caller's handler is back
    finally:
        signal.signal(sig, old)
    assert res.interrupted and res.stop_signal == sig
    assert runner.interrupted.is_set()  # the running trials were stopped
    got = states(study)
    assert got.pop(0) == (TrialState.COMPLETE, "stable")
    assert got.pop(2) == (TrialState.FAIL, "interrupted")  # queued again on resume
    # trial 1 ran beside it: finished (kept) or stopped too, never left RUNNING
    ok = {(TrialState.COMPLETE, "stable"), (TrialState.FAIL, "interrupted")}
    assert set(got.values()) <= ok, got


@posix
def test_case7_an_ignored_sighup_stays_ignored() -> None:  # nohup autowarm probe …
    old = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        cfg = ProbeConfig("x.py", steps=20, trials=3, lr_range=RANGE)
        runner = SignalAt(signal.SIGHUP, at=1, stops=False)
        res = ProbeSearch(runner, optuna.create_study(), cfg).run()
    finally:
        signal.signal(signal.SIGHUP, old)
    assert not res.interrupted and len(res.records) == 3


@posix
def test_case7_sigterm_to_the_cli_keeps_finished_trials_and_says_how_to_resume(
    tmp_path: Path,
) -> None:
    script = Path(__file__).parent / "scripts_probe" / "train_tiny.py"
    args = [
        "probe", "--steps", "40", "--trials", "5", "--lr-range", "0.003", "0.03",
        str(script), "--steps", "100", "--step-sleep", "0.02",
    ]  # fmt: skip
    p = start_probe(args, cwd=tmp_path)
    assert p.stderr is not None
    deadline, line = time.monotonic() + 90, "…"
    while time.monotonic() < deadline and line and not line.lstrip().startswith("1/5"):
        line = p.stderr.readline()
    time.sleep(0.3)  # inside the second trial
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 128 + signal.SIGTERM, err  # as a shell reports a SIGTERM
    assert "Traceback" not in err
    assert "run the same command to resume" in out + err
    db = sqlite3.connect(tmp_path / ".autowarm" / "autowarm.db")
    rows = db.execute("SELECT state, COUNT(*) FROM trials GROUP BY state").fetchall()
    db.close()
    counts = dict(rows)
    assert "RUNNING" not in counts, counts  # the running trial was stopped and stored
    assert counts.get("COMPLETE", 0) >= 1, counts


# -- case 11 --------------------------------------------------------------------------------------
class NanFrom(FakeRunner):
    """Every trial's loss is NaN from step ``at`` on (0: the very first one, before any update)."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at = at

    def run(self, spec: TrialSpec, *, on_step: Any = None) -> TrialResult:
        if spec.number < 0:  # the calibration run reads the script's LR
            return super().run(spec)
        with self._lock:
            self.specs.append(spec)
        losses = [3.0] * self.at + [float("nan")]
        return TrialResult("nonfinite", self.at + 1, losses=losses, reason="nonfinite of loss")


@pytest.mark.parametrize("lr_range", [None, RANGE], ids=["script-lr", "lr-range"])
def test_case11_nan_at_the_first_step_of_every_trial_is_a_script_bug(
    lr_range: tuple[float, float] | None,
) -> None:
    runner = NanFrom(0)
    cfg = ProbeConfig("x.py", steps=30, trials=20, jobs=2, lr_range=lr_range)
    with pytest.raises(SearchStopped) as stopped:
        ProbeSearch(runner, optuna.create_study(), cfg, command="python x.py").run()
    text = str(stopped.value)
    assert "NaN/Inf at its first step, before any update" in text and "not the LR" in text
    assert "\n" not in text and text.endswith("run it by hand: python x.py")
    trials = [s for s in runner.specs if s.number >= 0]  # not the calibration run
    assert len(trials) <= 3  # the first trial, then the next one or two: not 20


def test_case11_nan_after_the_first_update_is_not_called_a_script_bug() -> None:
    # one update at every LR tried may be too hot already: the search goes on (and advises
    # a lower range at the end), it does not blame the script
    runner = NanFrom(1)
    cfg = ProbeConfig("x.py", steps=30, trials=6, lr_range=RANGE)
    res = ProbeSearch(runner, optuna.create_study(), cfg).run()
    assert len(res.records) == 6 and {r.status for r in res.records} == {"nonfinite"}


def test_case11_one_good_trial_means_the_script_can_be_probed() -> None:
    class FirstOk(NanFrom):
        def run(self, spec: TrialSpec, *, on_step: Any = None) -> TrialResult:
            if spec.number == 0:
                return FakeRunner.run(self, spec)
            return super().run(spec)

    cfg = ProbeConfig("x.py", steps=30, trials=5, lr_range=RANGE)
    res = ProbeSearch(FirstOk(0), optuna.create_study(), cfg).run()
    assert len(res.records) == 5


# -- case 3 ---------------------------------------------------------------------------------------
def disk_full() -> sqlalchemy.exc.OperationalError:
    orig = sqlite3.OperationalError("database or disk is full")
    return sqlalchemy.exc.OperationalError("UPDATE trials SET state=?", None, orig)


def open_storage(kind: str, folder: Path) -> tuple[Any, str, BaseException]:
    """A storage, its name in messages and what it raises when the disk is full."""
    if kind == "sqlite":
        url = f"sqlite:///{folder}/x.db"
        return url, url, disk_full()
    from optuna.storages.journal import JournalFileBackend

    path = f"{folder}/x.log"
    full = OSError(28, "No space left on device")
    return optuna.storages.JournalStorage(JournalFileBackend(path)), f"journal://{path}", full


@pytest.mark.parametrize(
    ("kind", "method", "what", "problem"),
    [
        ("sqlite", "set_trial_state_values", r"recording trial #\d+", "database or disk is full"),
        ("sqlite", "create_new_trial", "starting a trial", "database or disk is full"),
        ("journal", "set_trial_state_values", r"recording trial #\d+", "no space left on device"),
    ],
)
def test_case3_a_full_disk_under_the_storage_is_one_line_and_keeps_finished_trials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, method: str, what: str, problem: str
) -> None:
    storage, name, error = open_storage(kind, tmp_path)
    study = optuna.create_study(study_name="s", storage=storage)
    real = getattr(study._storage, method)
    full = threading.Event()

    def failing(*args: Any, **kwargs: Any) -> Any:
        if full.is_set():
            raise error
        return real(*args, **kwargs)

    monkeypatch.setattr(study._storage, method, failing)

    class FullAfter(Reporter):
        def trial_finished(self, rec: TrialRecord, n: int, total: int) -> None:
            if n == 3:
                full.set()  # the disk is full from now on

    runner = FakeRunner()
    cfg = ProbeConfig("x.py", steps=20, trials=8, jobs=2, lr_range=RANGE)
    with pytest.raises(StorageFailed) as failed:
        ProbeSearch(runner, study, cfg, reporter=FullAfter()).run()
    text = str(failed.value)
    assert re.fullmatch(
        rf"storage '{re.escape(name)}' failed while {what}: {problem}; free disk space and "
        r"run the same command to resume \(the finished trials are kept\)\.",
        text,
    ), text
    assert runner.interrupted.is_set()  # the running trials were stopped
    monkeypatch.undo()
    kept = optuna.load_study(study_name="s", storage=storage)
    assert sum(t.state == TrialState.COMPLETE for t in kept.trials) >= 3
