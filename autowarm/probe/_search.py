"""The search: an Optuna study over peak LR (log scale) and warmup steps, one probe run each.

How a search goes (``ProbeSearch.run``):

1) calibrate: without ``--lr-range``, a 2-step run reads the script's own LR; the search range
   is around it (``[lr / 10, lr * 50]``) and stored with the study so a resume skips it. While
   trials are left, it widens where the best trials sit at its end (:mod:`._widen`);
2) the first trial runs alone: a script that crashes, never wraps its optimizer or ends before
   the probe length stops the search right there, with one clear reason (not N failed trials);
3) then up to ``--jobs`` trials at a time: ``study.ask`` -> ``ProbeRunner.run`` -> ``study.tell``.
   A stable run's value is its robust end-of-probe loss (:func:`score`); an unstable run's
   value is a penalty worse than the initial loss, so it still teaches the sampler where the
   stability boundary lies (a FAILed Optuna trial would teach it nothing);
4) Ctrl-C, SIGTERM or SIGHUP kills the running trials; finished ones stay in the storage
   (told exactly once, also when a second Ctrl-C comes during that cleanup) and the same
   command resumes: interrupted trials are queued again with their parameters, and a seeded
   sampler continues its sequence instead of replaying it;
5) a storage that fails (disk full) stops the search with one line naming it; the trials it
   recorded before stay;
6) several workers (processes, machines) may run the same search on one storage: ``--trials``
   counts the study's trials (a worker starts one only while finished + running ones of all
   workers < N), calibration and the anchor happen once (the lowest-numbered RUNNING trial
   leads, see ``_calibrate_once``), and a dead worker's trial is failed and
   re-run by a live one (heartbeats, see :mod:`autowarm.probe._workers`).
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from types import FrameType
from typing import Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState

from autowarm._errors import AutowarmError
from autowarm.probe._config import LR_RANGE_ATTR, LR_WIDENED_ATTR, SCRIPT_LR_ATTR, ProbeConfig
from autowarm.probe._pruner import CohortPruner
from autowarm.probe._record import TrialRecord, records, tell
from autowarm.probe._samplers import WIDENING, resumed_sampler
from autowarm.probe._status import SCRIPT_FAILURES, settled
from autowarm.probe._storage import mask_url
from autowarm.probe._types import TrialResult, TrialSpec
from autowarm.probe._widen import widening
from autowarm.probe._workers import (
    OWNER_ATTR,
    STORAGE_ERRORS,
    Heartbeat,
    Watcher,
    heartbeat_interval,
    new_owner,
)

#: Default LR search range around the script's own LR: ``[lr / LR_BELOW, lr * LR_ABOVE]``.
#: Skewed upwards: warmup exists to allow a higher LR, and on the three recipes the full runs'
#: best LR was 7.6-10x the script's default (never below it; scripts/bench_quality.py's grid).
LR_BELOW = 10.0
LR_ABOVE = 50.0
CALIBRATION_STEPS = 2
#: Signals that stop the search like Ctrl-C (a terminal closed, ``kill``, a batch scheduler).
STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)
#: Seconds the running trials get to end once the search stops (they are killed at once;
#: this bounds a runner that does not answer).
ABANDON_S = 30.0
#: Seconds between two looks at the study while waiting for other workers (their calibration,
#: their last trials).
POLL_S = 0.25

Running = dict[Future[TrialResult], tuple[optuna.Trial, TrialSpec]]

__all__ = ["STORAGE_ERRORS", "ProbeSearch", "Reporter", "SearchResult", "SearchStopped"]


class SearchStopped(AutowarmError):
    """The script cannot be probed (first trial crashed, no wrap, too short): one line."""


class StorageFailed(AutowarmError):
    """The storage failed while the search wrote to it (disk full, server gone): one line."""


@dataclass
class SearchResult:
    study: optuna.Study
    records: list[TrialRecord]
    interrupted: bool = False
    timed_out: bool = False
    wall_s: float = 0.0
    script_lr: float | None = None
    lr_range: tuple[float, float] = (0.0, 0.0)
    #: the signal that interrupted the search (``signal.SIGINT`` for Ctrl-C); None otherwise
    stop_signal: int | None = None
    #: this worker's name, as its trials' ``owner`` attribute holds it
    owner: str = ""


class Reporter:
    """What the search tells the outside world (the rich report implements it)."""

    def started(self, done: int, total: int, lr_range: tuple[float, float]) -> None: ...
    def trial_started(self, spec: TrialSpec) -> None: ...
    def trial_step(self, number: int, step: int, loss: float) -> None: ...
    def trial_finished(self, rec: TrialRecord, done: int, total: int) -> None: ...
    def tick(self) -> None: ...
    def note(self, text: str) -> None: ...


def _storage_name(study: optuna.Study) -> str:
    """The storage's URL as the user gave it (password masked), for messages."""
    storage = study._storage
    backend = getattr(storage, "_backend", storage)  # Optuna wraps an RDBStorage in a cache
    url = getattr(backend, "url", None)
    if isinstance(url, str):
        return mask_url(url)
    path = getattr(backend, "_file_path", None)  # a JournalStorage's file
    if isinstance(path, str):  # spelt as --storage takes it (see _storage._journal_path)
        return f"journal://{path}" if os.path.isabs(path) else f"journal:{path}"
    return type(backend).__name__


def _problem(e: BaseException) -> str:
    """The root cause of a storage error in a few words ("database or disk is full"):
    SQLAlchemy keeps the driver's error as ``orig``, Optuna chains its own vaguer one."""
    seen: set[int] = set()
    cause: BaseException | None = e
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        orig = getattr(cause, "orig", None)
        if isinstance(orig, BaseException) and str(orig).strip():
            return str(orig).strip().splitlines()[0]
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror[:1].lower() + cause.strerror[1:]
        cause = cause.__cause__ or cause.__context__
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


class ProbeSearch:
    def __init__(
        self,
        runner: Any,
        study: optuna.Study,
        config: ProbeConfig,
        *,
        reporter: Reporter | None = None,
        command: str = "",
        heartbeat_s: float | None = None,
    ) -> None:
        self.runner = runner
        self.study = study
        self.config = config
        self.reporter = reporter or Reporter()
        self.command = command  # "python train.py …", for "run it by hand" hints
        self._lock = threading.Lock()
        self._owner = new_owner()
        self._heartbeat = Heartbeat(study, heartbeat_s or heartbeat_interval())
        self._watcher = Watcher(study, self._heartbeat)
        #: a trial this worker asked for before it knew the LR range (see _calibrate_once)
        self._held: optuna.Trial | None = None
        self._range: tuple[float, float] = (0.0, 0.0)  # the LR range new trials draw from
        self.pruner = CohortPruner(config.steps) if config.prune == "cohort" else None
        self._checkpoints: dict[int, float] = {}  # trial number -> loss at the checkpoint
        self._first_checked = False  # a trial got past the script checks (see _loop)
        # stopping (see _on_signal): the first stop signal, whether the search is stopping,
        # how many storage writes a signal must wait for, and a signal that waits
        self._stop_signal: int | None = None
        self._stopping = False
        self._atomic_depth = 0
        self._pending = False
        self._storage_failed = False  # then nothing more is written to it

    # 1) calibrate, once per study ---------------------------------------------------------------
    def _calibrate_once(self) -> tuple[tuple[float, float], float | None]:
        """The search range, calibrating first when the study has no script LR yet. Several
        workers may start at once: each holds a trial (Optuna numbers them atomically) and the
        lowest-numbered RUNNING trial leads -- it calibrates and its trial becomes the anchor;
        the others wait for the study's script LR. A leader that dies is found by its
        heartbeat and the next one leads."""
        script_lr = self.study.user_attrs.get(SCRIPT_LR_ATTR)
        if self.config.lr_range is not None or script_lr is not None:
            return self._lr_range(script_lr), script_lr
        with self._recording("starting a trial"):
            self._held = self._claim(self.study.ask())
        waiting = False
        while True:
            with self._recording("reading the study"):
                script_lr = self.study.user_attrs.get(SCRIPT_LR_ATTR)
                leads = script_lr is None and self._leads()
            if script_lr is not None:
                return self._lr_range(script_lr), script_lr
            if leads:
                return self._lead()
            if not waiting:
                self.reporter.note("waiting for another worker to read the script's learning rate…")
                waiting = True
            with self._recording("looking for dead workers"):
                self._watcher.poll()
            time.sleep(POLL_S)

    def _leads(self) -> bool:
        assert self._held is not None
        running = self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        # the lowest RUNNING trial, with or without parameters: a leader's held trial gets
        # the anchor's parameters just before the script LR is stored
        return min(t.number for t in running) >= self._held.number

    def _lead(self) -> tuple[tuple[float, float], float]:
        """Calibrate; the held trial becomes the anchor of a study without probes yet. Its
        parameters are stored before the script LR, so no worker sees the LR without them."""
        assert self._held is not None
        script_lr = self._calibrate()
        lr_range = self._lr_range(script_lr)
        with self._recording("storing the script's learning rate"):
            if not any(t.params for t in self.study.get_trials(deepcopy=False)):
                self._held._fixed_params = self._anchor(lr_range, script_lr)  # as enqueue_trial's
                self._fill(self._held, lr_range)
            self.study.set_user_attr(SCRIPT_LR_ATTR, float(script_lr))
        return lr_range, script_lr

    def _lr_range(self, script_lr: float | None) -> tuple[float, float]:
        if self.config.lr_range is not None:
            return self.config.lr_range
        stored = self.study.user_attrs.get(LR_RANGE_ATTR)  # as a search widened it (_widen)
        if stored:
            return float(stored[0]), float(stored[1])
        assert script_lr is not None
        return (script_lr / LR_BELOW, script_lr * LR_ABOVE)

    def _calibrate(self) -> float:
        """The script's own LR, from a 2-step run."""
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
        return float(script_lr)

    def _stop_for(self, res: TrialResult) -> None:
        why = res.reason or res.status
        if res.status == "timeout":
            raise SearchStopped(
                f"the script timed out on the first trial ({why}); raise --trial-timeout or "
                f"run it by hand: {self.command}"
            )
        if res.failure == "no_wrap":
            raise SearchStopped(
                "the script never wrapped an optimizer; add `optimizer = "
                "autowarm.wrap(optimizer)` and `optimizer.report(loss)` to it."
            )
        if res.failure == "launcher":
            raise SearchStopped(
                f"torch.distributed.run could not start the script's ranks ({why}); check "
                f"that this works by hand: torchrun --standalone --nproc-per-node "
                f"{self.config.nproc_per_node} {self.config.script}"
            )
        if res.failure == "no_report":
            raise SearchStopped(
                "the script wraps its optimizer but never reports its loss; add "
                "`optimizer.report(loss)` after `loss.backward()` (or `autowarm.report(optimizer, "
                "loss)` when a framework wraps the optimizer)."
            )
        if res.failure == "subprocess":
            raise SearchStopped(
                f"{why}; probe it as one process, or start its ranks with torchrun instead: "
                f"autowarm probe --nproc-per-node N {self.config.script}"
            )
        if res.failure == "resumed":  # the reason names the checkpoint and the fix
            raise SearchStopped(str(why))
        if res.failure == "too_short" and res.steps == 0:  # a shorter probe cannot help
            raise SearchStopped(
                "the script wrapped an optimizer but ended before its first step; check that "
                f"these arguments train (not an evaluation-only run): {self.command}"
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
    def _continue_sequence(self) -> None:
        """A resumed seeded search continues its sampler's sequence (see ``resumed_sampler``);
        a fresh study keeps the sampler it was created with (the same seed, the same trials)."""
        cfg = self.config
        stored = len(self.study.get_trials(deepcopy=False))
        sampler = resumed_sampler(cfg.sampler, cfg.seed, cfg.trials, stored)
        if sampler is not None:
            self.study.sampler = sampler

    def _requeue_interrupted(self) -> None:
        """Queue again every trial a previous run did not finish (Ctrl-C, a killed process):
        the dead trials first (the watcher's first look), then the interrupted ones."""
        self._watcher.poll()
        trials = self.study.get_trials(deepcopy=False)
        retried = {t.user_attrs.get("retry_of") for t in trials}
        for t in trials:
            interrupted = t.state == TrialState.FAIL and t.user_attrs.get(
                "status", "interrupted"
            ) in ("interrupted",)
            if interrupted and t.number not in retried and "peak_lr" in t.params:
                self.study.enqueue_trial(dict(t.params), user_attrs={"retry_of": t.number})

    def _done(self) -> int:
        """The study's finished trials, all workers'."""
        states = (TrialState.COMPLETE, TrialState.PRUNED)
        return len(self.study.get_trials(deepcopy=False, states=states))

    def _room(self) -> tuple[int, int]:
        """How many trials this worker may start -- ``--trials`` less the study's finished and
        running ones (all workers'; the trial it holds is its own to start) -- and how many
        the study has finished."""
        states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
        trials = self.study.get_trials(deepcopy=False, states=states)
        done = sum(t.state != TrialState.RUNNING for t in trials)
        return self.config.trials - len(trials) + (self._held is not None), done

    # 3) stopping: signals, storage failures --------------------------------------------------
    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        """SIGTERM and SIGHUP stop the search like Ctrl-C (a KeyboardInterrupt in the main
        thread, where Python delivers signals); the old handlers come back afterwards. A
        signal the caller ignores (``nohup``) stays ignored."""
        old: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                current = signal.getsignal(sig)
                if current is not None and current is not signal.SIG_IGN:  # None: set in C
                    old[sig] = signal.signal(sig, self._on_signal)
        try:
            yield
        finally:
            for sig, handler in old.items():
                signal.signal(sig, handler)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._stopping:
            return  # stopping already (a second Ctrl-C): let the cleanup finish
        self._stopping, self._stop_signal = True, signum
        if self._atomic_depth:
            self._pending = True  # raised once the storage write in progress is done
            return
        raise KeyboardInterrupt

    @contextlib.contextmanager
    def _atomic(self, *, ending: bool = False) -> Iterator[None]:
        """A step a stop signal must not cut in half (a trial asked for but not running, told
        but still running, half told): the signal waits until it is done. ``ending``: the
        search ends anyway, the signal only marks it interrupted."""
        self._atomic_depth += 1
        try:
            yield
        finally:
            self._atomic_depth -= 1
            if ending:
                self._pending = False
        if self._pending and not self._atomic_depth:
            self._pending = False
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def _recording(self, what: str, *, quiet: bool = False) -> Iterator[None]:
        """A storage write: its failure becomes one :class:`StorageFailed` line (``quiet``:
        none, the search is ending anyway and the trial is re-run on resume)."""
        try:
            yield
        except STORAGE_ERRORS as e:
            self._storage_failed = True
            if quiet:
                return
            problem = _problem(e)
            fix = "free disk space" if "full" in problem or "space" in problem else "fix it"
            raise StorageFailed(
                f"storage {_storage_name(self.study)!r} failed while {what}: {problem}; "
                f"{fix} and run the same command to resume (the finished trials are kept)."
            ) from None

    # 4) one trial ----------------------------------------------------------------------------
    def _claim(self, trial: optuna.Trial) -> optuna.Trial:
        """A trial this worker runs: named as its own and kept alive by its heartbeat."""
        trial.set_user_attr(OWNER_ATTR, self._owner)
        self._heartbeat.add(trial._trial_id)
        return trial

    def _fill(self, trial: optuna.Trial, lr_range: tuple[float, float]) -> tuple[float, int]:
        """The trial's parameters, sampled (or fixed, or already stored) as ``study.ask`` with
        these distributions would."""
        lr = trial.suggest_float("peak_lr", lr_range[0], lr_range[1], log=True)
        return float(lr), int(trial.suggest_int("warmup_steps", 0, self.config.warmup_max))

    def _ask(self, lr_range: tuple[float, float]) -> tuple[optuna.Trial, TrialSpec] | None:
        """A new trial, or None when the study has its ``--trials`` already (see _ahead)."""
        with self._recording("starting a trial"):
            trial, self._held = self._held, None
            if trial is None:
                trial = self._claim(self.study.ask())
            if self._ahead(trial) >= self.config.trials:
                self._held = trial
                self._release()
                return None
            peak_lr, warmup = self._fill(trial, lr_range)
        spec = TrialSpec(
            number=trial.number,
            peak_lr=peak_lr,
            warmup_steps=warmup,
            probe_steps=self.config.steps,
            decay=self.config.decay,
            min_lr_ratio=self.config.min_lr_ratio,
        )
        return trial, spec

    def _ahead(self, trial: optuna.Trial) -> int:
        """Finished and running trials numbered before ``trial``: workers that looked at the
        study at the same moment all saw room for one more; the storage's atomic trial
        numbers decide which of them get it."""
        states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
        trials = self.study.get_trials(deepcopy=False, states=states)
        return sum(t.number < trial.number for t in trials)

    def _release(self) -> None:
        """A held trial the search did not run (stopped before): FAILed, it holds nothing."""
        trial, self._held = self._held, None
        if trial is not None and not self._storage_failed:
            self._heartbeat.remove(trial._trial_id)
            with contextlib.suppress(UpdateFinishedTrialError, *STORAGE_ERRORS):
                self.study.tell(trial, state=TrialState.FAIL)

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

    def _settle(
        self, trial: optuna.Trial, spec: TrialSpec, res: TrialResult, *, quiet: bool = False
    ) -> tuple[TrialRecord | None, bool]:
        """Tell how the trial ended; returns its record (None: ``quiet`` and the storage
        failed, or another worker took this worker for dead and failed the trial) and whether
        it says the script cannot be probed: then it is FAILed (it says nothing about its LR)
        and the search stops with the reason."""
        script_failure = (not self._first_checked and res.status in ("failed", "timeout")) or (
            res.status == "failed" and res.failure in SCRIPT_FAILURES
        )
        checkpoint = self._checkpoints.get(spec.number)
        rec = None
        with self._recording(f"recording trial #{spec.number}", quiet=quiet):
            try:
                rec = tell(
                    self.study,
                    trial,
                    spec,
                    res,
                    checkpoint_loss=checkpoint,
                    script_failure=script_failure,
                )
            except UpdateFinishedTrialError:  # its heartbeats stalled; it is queued again
                self.reporter.note(
                    f"trial #{spec.number} was failed by another worker (no "
                    "heartbeat seen); its parameters run again"
                )
                return None, False
            finally:  # beats until told: a slow tell (many attribute writes) is not death
                self._heartbeat.remove(trial._trial_id)
        return rec, script_failure

    def _abandon(self, running: Running) -> None:
        """Stop the running trials and tell each one once: with its result when it finished
        meanwhile, else as interrupted (queued again on resume). Stop signals that come now
        are ignored: they would leave trials untold (RUNNING, redone on resume)."""
        if not running:
            return
        with self._atomic(ending=True):
            self.runner.interrupt()
            deadline = time.monotonic() + ABANDON_S
            for fut, (trial, spec) in list(running.items()):
                try:
                    res = fut.result(timeout=max(0.0, deadline - time.monotonic()))
                except Exception:  # a runner that does not answer, or failed
                    res = TrialResult(status="interrupted", steps=0, reason="interrupted")
                if not self._storage_failed:  # else it stays RUNNING: stale, redone on resume
                    self._settle(trial, spec, res, quiet=True)
                del running[fut]

    # 5) the loop -----------------------------------------------------------------------------
    def run(self) -> SearchResult:
        t0 = time.monotonic()
        result = SearchResult(study=self.study, records=[], owner=self._owner)
        with self._signals(), self._heartbeat.running():
            try:
                self._search(result, t0)
            except KeyboardInterrupt:
                self._stopping = True  # the running trials are re-run on resume
            finally:
                with self._atomic(ending=True):
                    self._release()
            with self._atomic(ending=True):
                result.records = records(self.study)
            # also a stop signal that came during the cleanup: the user asked to stop
            result.interrupted = self._stopping
            if self._stopping:
                result.stop_signal = self._stop_signal or signal.SIGINT
        result.wall_s = time.monotonic() - t0
        return result

    def _search(self, result: SearchResult, t0: float) -> None:
        self._continue_sequence()
        with self._recording("queueing the interrupted trials again"):
            self._requeue_interrupted()
        try:
            result.lr_range, result.script_lr = self._calibrate_once()
        except KeyboardInterrupt:
            self.runner.interrupt()  # the calibration run must not outlive us
            raise
        self._range = result.lr_range
        with self._recording("storing the LR range"):
            self.study.set_user_attr(LR_RANGE_ATTR, list(result.lr_range))
            self._enqueue_anchor(result.lr_range, result.script_lr)
        running: Running = {}
        pool = ThreadPoolExecutor(max_workers=self.config.jobs, thread_name_prefix="autowarm-trial")
        try:
            n_done = self._loop(pool, running, t0)
            result.timed_out = self.config.timeout is not None and n_done < self.config.trials
        finally:
            self._abandon(running)  # also on SearchStopped while others ran: no orphans
            pool.shutdown(wait=True)
            result.lr_range = self._range  # widened, maybe

    def _anchor(self, lr_range: tuple[float, float], script_lr: float) -> dict[str, Any]:
        """A fresh study's first trial runs the script's own LR (clipped to the range) with a
        short warmup: a known anchor for the sampler and the recommendation."""
        lr0 = min(max(script_lr, lr_range[0]), lr_range[1])
        return {"peak_lr": lr0, "warmup_steps": self.config.warmup_max // 4}

    def _enqueue_anchor(self, lr_range: tuple[float, float], script_lr: float | None) -> None:
        """The anchor of a study whose script LR is known but which ran no probe yet (the
        leader of a fresh study runs it as its held trial, see ``_lead``)."""
        trials = self.study.get_trials(deepcopy=False)
        if script_lr is None or any(t.params or t.state == TrialState.WAITING for t in trials):
            return
        self.study.enqueue_trial(self._anchor(lr_range, script_lr))

    def _past_deadline(self, t0: float) -> bool:
        timeout = self.config.timeout
        return timeout is not None and time.monotonic() >= t0 + timeout

    def _loop(self, pool: ThreadPoolExecutor, running: Running, t0: float) -> int:
        """Run trials until the study has ``--trials`` finished ones (all workers') or the
        deadline; returns how many it has."""
        cfg = self.config
        finished = settled(records(self.study), exclude=("interrupted",))
        n_done = self._done()
        # a resumed study whose first trial got past the script checks need not check again
        self._first_checked = any(r.status not in ("failed", "timeout") for r in finished)
        self.reporter.started(n_done, cfg.trials, self._range)
        look_at = 0.0  # when to read the study's trial counts again (at once after a trial ends)
        while True:
            # a) start trials: the first one alone, then up to --jobs at a time
            slots = cfg.jobs if self._first_checked else 1
            now = time.monotonic()
            if len(running) < slots and now >= look_at and not self._past_deadline(t0):
                look_at = now + 4 * POLL_S
                with self._recording("reading the study"):
                    self._watcher.poll()
                    room, n_done = self._room()
                while len(running) < slots and room > 0:
                    with self._atomic():  # asked for = in `running` (told by _abandon if need be)
                        asked = self._ask(self._range)
                        if asked is not None:
                            running[pool.submit(self._run, asked[1], finished)] = asked
                    if asked is None:
                        break
                    self.reporter.trial_started(asked[1])
                    room -= 1
            if not running:
                with self._recording("reading the study"):
                    n_done = self._done()
                if n_done >= cfg.trials or self._past_deadline(t0):
                    return n_done
                # the last trials run on other workers: wait for them (one may die)
                time.sleep(POLL_S)
                self.reporter.tick()
                continue
            # b) wait for one to end (a short timeout keeps the live display moving)
            ready, _ = wait(list(running), timeout=POLL_S, return_when=FIRST_COMPLETED)
            self.reporter.tick()
            for fut in ready:
                n_done = self._finish(fut, running, finished, n_done)
                look_at = 0.0

    def _finish(
        self, fut: Future[TrialResult], running: Running, finished: list[TrialRecord], n_done: int
    ) -> int:
        """Tell the trial of ``fut``, which leaves ``running`` in the same step; returns
        ``n_done`` (the study's finished trials at the last look) with it counted. Raises
        SearchStopped when the script cannot be probed."""
        trial, spec = running[fut]
        res = fut.result()
        with self._atomic():
            rec, script_failure = self._settle(trial, spec, res)
            del running[fut]
        if script_failure:
            self._stop_for(res)
        if rec is None:  # another worker failed it (see _settle)
            return n_done
        self._first_checked = True
        with self._lock:
            finished.append(rec)
        n_done += res.status != "interrupted"
        self.reporter.trial_finished(rec, n_done, self.config.trials)
        self._stop_if_nan_from_the_start(finished)
        cfg = self.config
        if res.status != "interrupted" and cfg.lr_range is None and cfg.sampler in WIDENING:
            self._widen()
        return n_done

    def _widen(self) -> None:
        """Widen the LR range where the best trials so far sit at its end (:mod:`._widen`).
        From the study's trials and range, so workers adopt each other's widenings."""
        with self._atomic(), self._recording("widening the LR range"):
            attrs = self.study.user_attrs
            stored, past = attrs.get(LR_RANGE_ATTR), attrs.get(LR_WIDENED_ATTR, [])
            if stored:
                self._range = (float(stored[0]), float(stored[1]))
            left, _ = self._room()
            cfg = self.config
            found = widening(
                records(self.study), self._range, probe_steps=cfg.steps, margin=cfg.margin,
                left=left, widened=len(past),
            )  # fmt: skip
            if found is None:
                return
            self.study.enqueue_trial(found.first_trial)
            self.study.set_user_attr(LR_WIDENED_ATTR, [*past, found.to_attr()])
            self.study.set_user_attr(LR_RANGE_ATTR, list(found.lr_range))
            self._range = found.lr_range
        self.reporter.note(found.text())

    def _stop_if_nan_from_the_start(self, finished: list[TrialRecord]) -> None:
        """Every trial so far (two at least) had a NaN/Inf loss or gradient at its very first
        step, so it stopped after 1 step: that value comes before any update, so no LR made it
        (an LR too hot for even one update shows up at step 1 or later). A bug in the script;
        the rest of the trials would only repeat it."""
        ended = [r for r in finished if r.status != "interrupted"]
        if len(ended) < 2 or any(r.status != "nonfinite" or r.steps > 1 for r in ended):
            return
        lrs = [r.peak_lr for r in ended]
        raise SearchStopped(
            f"the script's loss or gradient is NaN/Inf at its first step, before any update, "
            f"in all {len(ended)} trials (peak LR {min(lrs):.3g} to {max(lrs):.3g}): a bug "
            f"in the script (loss, data or model), not the LR; run it by hand: {self.command}"
        )
