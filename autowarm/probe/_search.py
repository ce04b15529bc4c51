"""The search: an Optuna study over peak LR (log scale) and warmup steps, one probe run each.

How a search goes (``ProbeSearch.run``):

1) calibrate: without ``--lr-range``, a 2-step run reads the script's own LR; the search range
   is around it (``[lr / 10, lr * 50]``) and stored with the study so a resume skips it;
2) the first trial runs alone: a script that crashes, never wraps its optimizer or ends before
   the probe length stops the search right there, with one clear reason (not N failed trials);
3) then up to ``--jobs`` trials at a time: ``study.ask`` -> ``ProbeRunner.run`` -> ``study.tell``.
   A stable run's value is its robust end-of-probe loss (:func:`score`); an unstable run's
   value is a penalty worse than the initial loss, so it still teaches the sampler where the
   stability boundary lies (a FAILed Optuna trial would teach it nothing);
4) Ctrl-C kills the running trials; finished ones stay in the storage and the same command
   resumes (interrupted trials are queued again with their parameters).
"""

from __future__ import annotations

import math
import os
import socket
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import TrialState

from autowarm._errors import AutowarmError
from autowarm.probe._config import LR_RANGE_ATTR, SCRIPT_LR_ATTR, ProbeConfig
from autowarm.probe._pruner import CohortPruner
from autowarm.probe._record import TrialRecord, records, tell
from autowarm.probe._status import SCRIPT_FAILURES, settled
from autowarm.probe._types import TrialResult, TrialSpec

#: Default LR search range around the script's own LR: ``[lr / LR_BELOW, lr * LR_ABOVE]``.
#: Skewed upwards: warmup exists to allow a higher LR, and on the three recipes the full runs'
#: best LR was 7.6-10x the script's default (never below it; scripts/bench_quality.py's grid).
LR_BELOW = 10.0
LR_ABOVE = 50.0
CALIBRATION_STEPS = 2

Running = dict[Future[TrialResult], tuple[optuna.Trial, TrialSpec]]


class SearchStopped(AutowarmError):
    """The script cannot be probed (first trial crashed, no wrap, too short): one line."""


@dataclass
class SearchResult:
    study: optuna.Study
    records: list[TrialRecord]
    interrupted: bool = False
    timed_out: bool = False
    wall_s: float = 0.0
    script_lr: float | None = None
    lr_range: tuple[float, float] = (0.0, 0.0)


class Reporter:
    """What the search tells the outside world (the rich report implements it)."""

    def started(self, done: int, total: int, lr_range: tuple[float, float]) -> None: ...
    def trial_started(self, spec: TrialSpec) -> None: ...
    def trial_step(self, number: int, step: int, loss: float) -> None: ...
    def trial_finished(self, rec: TrialRecord, done: int, total: int) -> None: ...
    def tick(self) -> None: ...
    def note(self, text: str) -> None: ...


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ProbeSearch:
    def __init__(
        self,
        runner: Any,
        study: optuna.Study,
        config: ProbeConfig,
        *,
        reporter: Reporter | None = None,
        command: str = "",
    ) -> None:
        self.runner = runner
        self.study = study
        self.config = config
        self.reporter = reporter or Reporter()
        self.command = command  # "python train.py …", for "run it by hand" hints
        self._lock = threading.Lock()
        self._owner = f"{socket.gethostname()}:{os.getpid()}"
        self.pruner = CohortPruner(config.steps) if config.prune == "cohort" else None
        self._checkpoints: dict[int, float] = {}  # trial number -> loss at the checkpoint

    # 1) calibrate ----------------------------------------------------------------------------
    def _lr_range(self) -> tuple[tuple[float, float], float | None]:
        attrs = self.study.user_attrs
        script_lr = attrs.get(SCRIPT_LR_ATTR)
        if self.config.lr_range is not None:
            return self.config.lr_range, script_lr
        if script_lr is None:
            self.reporter.note("reading the script's own learning rate (a 2-step run)…")
            res = self.runner.run(
                TrialSpec(number=-1, peak_lr=1e-3, warmup_steps=0, probe_steps=CALIBRATION_STEPS)
            )
            if res.status == "interrupted":
                raise KeyboardInterrupt
            if res.status in ("failed", "timeout"):
                self._stop_for(res)
            script_lr = res.script_lr
            if script_lr is None or not (script_lr > 0 and math.isfinite(script_lr)):
                raise SearchStopped(
                    f"could not read the script's learning rate (got {script_lr!r}); "
                    "pass --lr-range MIN MAX."
                )
            self.study.set_user_attr(SCRIPT_LR_ATTR, float(script_lr))
        return (script_lr / LR_BELOW, script_lr * LR_ABOVE), script_lr

    def _stop_for(self, res: TrialResult) -> None:
        why = res.reason or res.status
        if res.status == "timeout":
            raise SearchStopped(
                f"the script timed out on the first trial ({why}); raise --trial-timeout or "
                f"run it by hand: {self.command}"
            )
        if res.failure == "no_wrap":
            raise SearchStopped(
                f"the script never wrapped an optimizer ({why}); add "
                "`optimizer = autowarm.wrap(optimizer)` and `optimizer.report(loss)` to it."
            )
        if res.failure == "too_short":
            raise SearchStopped(
                f"the script ended before the probe length ({why}); lower --steps below "
                "the number of optimizer steps it runs, or make it train longer."
            )
        raise SearchStopped(
            f"the script failed on the first trial: {why}; run it by hand: {self.command}"
        )

    # 2) resume -------------------------------------------------------------------------------
    def _requeue_interrupted(self) -> None:
        """Queue again every trial a previous run did not finish (Ctrl-C, a killed process)."""
        trials = self.study.get_trials(deepcopy=False)
        retried = {t.user_attrs.get("retry_of") for t in trials}
        host = socket.gethostname()
        for t in trials:
            stale = False
            if t.state == TrialState.RUNNING:
                owner = str(t.user_attrs.get("owner", ""))
                h, _, pid = owner.partition(":")
                stale = h == host and pid.isdigit() and not _pid_alive(int(pid))
                if stale:
                    self.study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
            interrupted = t.state == TrialState.FAIL and t.user_attrs.get(
                "status", "interrupted"
            ) in ("interrupted",)
            if (stale or interrupted) and t.number not in retried and "peak_lr" in t.params:
                self.study.enqueue_trial(dict(t.params), user_attrs={"retry_of": t.number})

    def _done(self) -> int:
        states = (TrialState.COMPLETE, TrialState.PRUNED)
        return len(self.study.get_trials(deepcopy=False, states=states))

    # 3) one trial ----------------------------------------------------------------------------
    def _ask(self, lr_range: tuple[float, float]) -> tuple[optuna.Trial, TrialSpec]:
        dists = {
            "peak_lr": FloatDistribution(lr_range[0], lr_range[1], log=True),
            "warmup_steps": IntDistribution(0, self.config.warmup_max),
        }
        trial = self.study.ask(dists)
        trial.set_user_attr("owner", self._owner)
        spec = TrialSpec(
            number=trial.number,
            peak_lr=float(trial.params["peak_lr"]),
            warmup_steps=int(trial.params["warmup_steps"]),
            probe_steps=self.config.steps,
            decay=self.config.decay,
            min_lr_ratio=self.config.min_lr_ratio,
        )
        return trial, spec

    def _run(self, spec: TrialSpec, done: list[TrialRecord]) -> TrialResult:
        losses: list[float] = []

        def on_step(step: int, loss: float, grad_norm: float) -> bool:
            losses.append(loss)
            self.reporter.trial_step(spec.number, step, loss)
            if self.pruner is not None and len(losses) == self.pruner.at:
                self._checkpoints[spec.number] = self.pruner.window(losses)
                with self._lock:
                    snapshot = list(done)
                return self.pruner.should_prune(spec.warmup_steps, losses, snapshot)
            return False

        return self.runner.run(spec, on_step=on_step)

    def _tell(
        self,
        trial: optuna.Trial,
        spec: TrialSpec,
        res: TrialResult,
        *,
        script_failure: bool = False,
    ) -> TrialRecord:
        checkpoint = self._checkpoints.get(spec.number)
        return tell(
            self.study, trial, spec, res, checkpoint_loss=checkpoint, script_failure=script_failure
        )

    def _abandon(self, running: Running) -> None:
        """Stop the running trials and store them as interrupted (queued again on resume)."""
        if not running:
            return
        self.runner.interrupt()
        for fut, (trial, spec) in running.items():
            try:
                res = fut.result(timeout=30)
            except BaseException:
                res = TrialResult(status="interrupted", steps=0, reason="interrupted")
            res.status = "interrupted"
            self._tell(trial, spec, res)
        running.clear()

    # 4) the loop -----------------------------------------------------------------------------
    def run(self) -> SearchResult:
        t0 = time.monotonic()
        result = SearchResult(study=self.study, records=[])
        self._requeue_interrupted()
        try:
            result.lr_range, result.script_lr = self._lr_range()
        except KeyboardInterrupt:
            self.runner.interrupt()  # the calibration run must not outlive us
            result.interrupted = True
        else:
            self.study.set_user_attr(LR_RANGE_ATTR, list(result.lr_range))
            self._enqueue_anchor(result.lr_range, result.script_lr)
            running: Running = {}
            pool = ThreadPoolExecutor(
                max_workers=self.config.jobs, thread_name_prefix="autowarm-trial"
            )
            try:
                n_done = self._loop(result.lr_range, pool, running, t0)
                result.timed_out = self.config.timeout is not None and n_done < self.config.trials
            except KeyboardInterrupt:
                result.interrupted = True  # Ctrl-C: the running trials are re-run on resume
            finally:
                self._abandon(running)  # also when SearchStopped while others ran: no orphans
                pool.shutdown(wait=True)
        result.records = records(self.study)
        result.wall_s = time.monotonic() - t0
        return result

    def _enqueue_anchor(self, lr_range: tuple[float, float], script_lr: float | None) -> None:
        """A fresh study's first trial runs the script's own LR (clipped to the range) with a
        short warmup: a known anchor for the sampler and the recommendation."""
        waiting = self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        if script_lr is None or self._done() > 0 or waiting:
            return
        lr0 = min(max(script_lr, lr_range[0]), lr_range[1])
        self.study.enqueue_trial({"peak_lr": lr0, "warmup_steps": self.config.warmup_max // 4})

    def _past_deadline(self, t0: float) -> bool:
        timeout = self.config.timeout
        return timeout is not None and time.monotonic() >= t0 + timeout

    def _loop(
        self, lr_range: tuple[float, float], pool: ThreadPoolExecutor, running: Running, t0: float
    ) -> int:
        """Run trials until ``--trials`` are done or the deadline; returns how many are done."""
        cfg = self.config
        finished = settled(records(self.study), exclude=("interrupted",))
        n_done = started = self._done()
        # a resumed study whose first trial got past the script checks need not check again
        first_checked = any(r.status not in ("failed", "timeout") for r in finished)
        self.reporter.started(n_done, cfg.trials, lr_range)
        while True:
            # a) start trials: the first one alone, then up to --jobs at a time
            slots = cfg.jobs if first_checked else 1
            while len(running) < slots and started < cfg.trials and not self._past_deadline(t0):
                trial, spec = self._ask(lr_range)
                self.reporter.trial_started(spec)
                running[pool.submit(self._run, spec, finished)] = (trial, spec)
                started += 1
            if not running:
                return n_done
            # b) wait for one to end (a short timeout keeps the live display moving)
            ready, _ = wait(list(running), timeout=0.25, return_when=FIRST_COMPLETED)
            self.reporter.tick()
            for fut in ready:
                trial, spec = running.pop(fut)
                res = fut.result()
                # the script cannot be probed: record the trial as FAILed (it says nothing
                # about its LR) and stop with the reason
                if (not first_checked and res.status in ("failed", "timeout")) or (
                    res.status == "failed" and res.failure in SCRIPT_FAILURES
                ):
                    self._tell(trial, spec, res, script_failure=True)
                    self._stop_for(res)
                first_checked = True
                rec = self._tell(trial, spec, res)
                with self._lock:
                    finished.append(rec)
                n_done += res.status != "interrupted"
                self.reporter.trial_finished(rec, n_done, cfg.trials)
