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
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState

from autowarm._errors import AutowarmError
from autowarm.probe._types import TrialResult, TrialSpec

#: Statuses of a run that reached the probe length; all others ended early.
FINISHED = ("stable", "spike")
#: Statuses that mark the LR as too hot (used for the penalty and the stability boundary).
UNSTABLE = ("diverged", "nonfinite", "stalled")
#: Failures that are about the script, not the trial's LR: the search cannot go on.
SCRIPT_FAILURES = ("no_wrap", "too_short", "syntax", "not_found")
#: The last fraction of the probe whose mean loss is a trial's score.
SCORE_WINDOW = 0.15
#: How many losses a trial keeps in the storage (for ``show``, the dashboard and the PNG).
KEEP_LOSSES = 100
#: How many of them become Optuna intermediate values (the dashboard's curves; a write each).
REPORT_POINTS = 20
#: Default LR search range around the script's own LR: ``[lr / LR_BELOW, lr * LR_ABOVE]``.
#: Skewed upwards: warmup exists to allow a higher LR, and on the three recipes the full runs'
#: best LR was 7.6-10x the script's default (never below it; scripts/bench_quality.py's grid).
LR_BELOW = 10.0
LR_ABOVE = 50.0
CALIBRATION_STEPS = 2


@dataclass(frozen=True)
class ProbeConfig:
    """Everything that defines a search (the CLI flags, validated)."""

    script: str
    args: tuple[str, ...] = ()
    steps: int = 100
    trials: int = 20
    total_steps: int | None = None
    decay: str = "cosine"
    min_lr_ratio: float = 0.0
    lr_range: tuple[float, float] | None = None
    max_warmup: int | None = None  # None: half the probe
    jobs: int = 1
    timeout: float | None = None
    seed: int | None = None
    sampler: str = "tpe"
    prune: str = "cohort"
    margin: float = 2.0

    @property
    def warmup_max(self) -> int:
        return self.steps // 2 if self.max_warmup is None else self.max_warmup

    def design(self) -> dict[str, Any]:
        """What makes two trials comparable (part of the default study name)."""
        return {
            "steps": self.steps,
            "decay": self.decay,
            "min_lr_ratio": self.min_lr_ratio,
            "lr_range": list(self.lr_range) if self.lr_range else None,
            "max_warmup": self.warmup_max,
            "seed": self.seed,  # another seed is another search, not a resume
        }


def validate(config: ProbeConfig) -> None:
    """Bad flags -> one AutowarmError line, before anything runs or is written."""
    if config.steps < 10:
        raise AutowarmError(f"--steps must be >= 10 but got {config.steps}.")
    if config.trials < 1:
        raise AutowarmError(f"--trials must be >= 1 but got {config.trials}.")
    if config.jobs < 1:
        raise AutowarmError(f"--jobs must be >= 1 but got {config.jobs}.")
    if config.lr_range is not None:
        lo, hi = config.lr_range
        if not (lo > 0 and hi > 0):
            raise AutowarmError(f"--lr-range must be positive but got {lo:g} {hi:g}.")
        if lo >= hi:
            raise AutowarmError(f"--lr-range MIN must be < MAX but got {lo:g} >= {hi:g}.")
    if config.max_warmup is not None and config.max_warmup < 0:
        raise AutowarmError(f"--max-warmup cannot be negative but got {config.max_warmup}.")
    if config.warmup_max >= config.steps:
        raise AutowarmError(
            f"--max-warmup must be < --steps but got {config.warmup_max} >= {config.steps}; "
            "a probe must run past its longest warmup (raise --steps or lower --max-warmup)."
        )
    if config.total_steps is not None and config.total_steps < 1:
        raise AutowarmError(f"--total-steps must be >= 1 but got {config.total_steps}.")
    if config.timeout is not None and config.timeout <= 0:
        raise AutowarmError(f"--timeout must be > 0 but got {config.timeout:g}.")
    if not config.margin >= 1.0:
        raise AutowarmError(f"--margin must be >= 1 but got {config.margin:g}.")
    if config.sampler not in SAMPLERS:
        raise AutowarmError(
            f"--sampler must be one of {', '.join(SAMPLERS)} but got {config.sampler!r}."
        )
    if config.prune not in ("none", "cohort"):
        raise AutowarmError(f"--prune must be none or cohort but got {config.prune!r}.")


# ---------------------------------------------------------------------------------------------
# scoring


def score(losses: Sequence[float], steps: int) -> float:
    """Robust end-of-probe loss: the mean of the finite losses over the last 15% of the probe
    (a single last loss is one noisy mini-batch)."""
    arr = np.asarray(losses[:steps], dtype=float)
    n = max(1, math.ceil(SCORE_WINDOW * steps))
    tail = arr[-n:]
    tail = tail[np.isfinite(tail)]
    return float(tail.mean()) if tail.size else math.nan


def noise(losses: Sequence[float], steps: int) -> float:
    """Standard error of :func:`score`: spread of the window's losses around a linear trend,
    over sqrt(window)."""
    arr = np.asarray(losses[:steps], dtype=float)
    n = max(1, math.ceil(SCORE_WINDOW * steps))
    tail = arr[-n:]
    tail = tail[np.isfinite(tail)]
    if tail.size < 3:
        return 0.0
    x = np.arange(tail.size)
    resid = tail - np.polyval(np.polyfit(x, tail, 1), x)
    return float(resid.std(ddof=2) / math.sqrt(tail.size))


def initial_loss(losses: Sequence[float]) -> float:
    head = np.asarray(losses[:5], dtype=float)
    head = head[np.isfinite(head)]
    return float(np.median(head)) if head.size else math.nan


def penalty(reference: float) -> float:
    """The value of an unstable trial: 10% worse than the initial loss, i.e. worse than any
    run that learned anything (a constant, so GP/TPE see a plateau, not wild outliers)."""
    if not math.isfinite(reference):
        return 1e6
    return reference + 0.1 * abs(reference) + 1e-3


def subsample(values: Sequence[float], n: int = KEEP_LOSSES) -> list[list[float | None]]:
    """``[[step, value], …]`` at most ``n`` points (always keeping the last); NaN -> None."""
    if not values:
        return []
    idx = np.unique(np.linspace(0, len(values) - 1, min(n, len(values))).round().astype(int))
    return [[int(i), float(values[i]) if math.isfinite(values[i]) else None] for i in idx]


# ---------------------------------------------------------------------------------------------
# trial records (what the storage keeps; shared by the search, ``show`` and the report)


@dataclass
class TrialRecord:
    number: int
    peak_lr: float
    warmup_steps: int
    status: str  # a TrialResult status, or "running" / "waiting"
    score: float | None = None  # end-of-probe loss (finished runs only)
    value: float | None = None  # what the sampler saw (score or penalty)
    steps: int = 0
    reason: str | None = None
    failure: str | None = None
    noise: float = 0.0
    initial_loss: float | None = None
    losses: list[list[float | None]] = field(default_factory=list)
    train_s: float = 0.0
    wall_s: float = 0.0
    events: dict[str, int] = field(default_factory=dict)
    checkpoint_loss: float | None = None  # loss at the cohort pruner's checkpoint

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "peak_lr": self.peak_lr,
            "warmup_steps": self.warmup_steps,
            "status": self.status,
            "score": self.score,
            "value": self.value,
            "steps": self.steps,
            "reason": self.reason,
            "train_s": round(self.train_s, 4),
            "wall_s": round(self.wall_s, 4),
        }


def _finite_or_none(x: float | None) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def record_from_frozen(t: FrozenTrial) -> TrialRecord | None:
    if "peak_lr" not in t.params or "warmup_steps" not in t.params:
        return None
    a = t.user_attrs
    status = a.get("status")
    if status is None:
        status = {TrialState.RUNNING: "running", TrialState.WAITING: "waiting"}.get(
            t.state, "interrupted" if t.state == TrialState.FAIL else "failed"
        )
    return TrialRecord(
        number=t.number,
        peak_lr=float(t.params["peak_lr"]),
        warmup_steps=int(t.params["warmup_steps"]),
        status=status,
        score=a.get("score"),
        value=t.value if t.state == TrialState.COMPLETE else None,
        steps=int(a.get("steps", 0)),
        reason=a.get("reason"),
        failure=a.get("failure"),
        noise=float(a.get("noise") or 0.0),
        initial_loss=a.get("initial_loss"),
        losses=a.get("losses", []),
        train_s=float(a.get("train_s", 0.0)),
        wall_s=float(a.get("wall_s", 0.0)),
        events=a.get("events", {}),
        checkpoint_loss=a.get("checkpoint_loss"),
    )


def records(study: optuna.Study) -> list[TrialRecord]:
    out = [record_from_frozen(t) for t in study.get_trials(deepcopy=False)]
    return [r for r in out if r is not None]


# ---------------------------------------------------------------------------------------------
# samplers. Measured with `python scripts/bench_probe.py --samplers --sampler-names tpe gp qmc
# --seeds 20 --trials 20`: 20 synthetic probe landscapes, the real ProbeSearch; regret vs the
# landscape's optimum of the best trial found (isolates the sampler); the sampler was chosen on
# that column. The recommendation's regret there (median) was 2.25% (TPE) with the earlier
# hard-tie rule and is 3.75% (TPE) / 5.57% (QMC) with the soft-tie rule: the synthetic
# landscape charges every long warmup a loss and has no horizon effect, exactly what the real
# recipes' full runs do not show (their regret fell with the soft-tie rule; see the README):
#   sampler             best-trial regret   sampler time per trial
#   tpe (multivariate)  0.69%               3 ms
#   gp                  0.47%               570 ms (2 busy cores)
#   qmc (Sobol)         0.70%               6 ms
# GP finds slightly better trials, but its per-trial time alone would use most of the 10%
# overhead budget for 5-s trials and it does not account for running trials under --jobs;
# multivariate TPE (constant liar for parallel trials) is the default, `--sampler gp` is there
# for long trials.


def _tpe(seed: int | None, n: int) -> optuna.samplers.BaseSampler:
    return optuna.samplers.TPESampler(
        seed=seed, multivariate=True, n_startup_trials=max(4, n // 4), constant_liar=True
    )


def _gp(seed: int | None, n: int) -> optuna.samplers.BaseSampler:
    return optuna.samplers.GPSampler(seed=seed, n_startup_trials=max(4, n // 4))


def _qmc(seed: int | None, n: int) -> optuna.samplers.BaseSampler:
    return optuna.samplers.QMCSampler(seed=seed, scramble=True)


SAMPLERS: dict[str, Callable[[int | None, int], optuna.samplers.BaseSampler]] = {
    "tpe": _tpe,
    "gp": _gp,
    "qmc": _qmc,
}


# ---------------------------------------------------------------------------------------------
# pruning that does not punish long warmups


@dataclass
class CohortPruner:
    """Stop a run that is clearly worse than runs with a *similar warmup* at the same step.

    Measured (charlm and deep_mlp recipes, --total-steps 1000, seed 0, 20 trials, `--prune
    cohort` vs `none`): the same warmup and a peak LR 7% / 4% lower than without pruning, for
    8% / 6% fewer optimizer steps (1,840 vs 2,000; 1,880 vs 2,000) -- the default.

    A median pruner compares every run at step s; a run with a long warmup is still at a low LR
    there and always looks behind. Here a run is only compared once its own warmup is over, at
    one checkpoint (60% of the probe), against finished runs whose warmup is within 15% of the
    probe of its own, and stopped only when worse than the 75th percentile of at least 4 of them.
    """

    steps: int
    checkpoint: float = 0.6
    width: float = 0.15
    quantile: float = 0.75
    min_cohort: int = 4

    @property
    def at(self) -> int:
        return int(self.checkpoint * self.steps)

    def window(self, losses: Sequence[float]) -> float:
        lo = max(0, self.at - max(1, self.steps // 20))
        seg = np.asarray(losses[lo : self.at], dtype=float)
        seg = seg[np.isfinite(seg)]
        return float(seg.mean()) if seg.size else math.nan

    def should_prune(self, warmup: int, losses: Sequence[float], done: list[TrialRecord]) -> bool:
        if warmup >= self.at or len(losses) < self.at:
            return False
        cohort = [
            r.checkpoint_loss
            for r in done
            if r.status in FINISHED
            and abs(r.warmup_steps - warmup) <= self.width * self.steps
            and r.checkpoint_loss is not None
        ]
        if len(cohort) < self.min_cohort:
            return False
        return self.window(losses) > float(np.quantile(cohort, self.quantile))


# ---------------------------------------------------------------------------------------------
# the search


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
        script_lr = attrs.get("script_lr")
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
            self.study.set_user_attr("script_lr", float(script_lr))
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
        ref = self.study.user_attrs.get("initial_loss")
        init = initial_loss(res.losses)
        if ref is None and math.isfinite(init):
            ref = init
            self.study.set_user_attr("initial_loss", init)
        sc = score(res.losses, spec.probe_steps) if res.status in FINISHED else math.nan
        events: dict[str, int] = {}
        for e in res.events:
            events[str(e.get("kind"))] = events.get(str(e.get("kind")), 0) + 1
        attrs = {
            "status": res.status,
            "failure": res.failure,
            "reason": res.reason,
            "steps": res.steps,
            "score": _finite_or_none(sc),
            "noise": noise(res.losses, spec.probe_steps) if res.status in FINISHED else 0.0,
            "initial_loss": _finite_or_none(init),
            "losses": subsample(res.losses),
            "train_s": res.train_s,
            "wall_s": res.wall_s,
            "events": events,
            "checkpoint_loss": _finite_or_none(self._checkpoints.get(spec.number, math.nan)),
        }
        for k, v in attrs.items():
            trial.set_user_attr(k, v)
        # intermediate values: the loss curve for the dashboard (written once, not per step)
        for step, loss in subsample(res.losses, REPORT_POINTS):
            if loss is not None:
                trial.report(loss, int(step))
        if res.status == "interrupted" or script_failure:
            frozen = self.study.tell(trial, state=TrialState.FAIL)
        elif res.status == "pruned":
            frozen = self.study.tell(trial, state=TrialState.PRUNED)
        else:
            # finished runs are told their loss; everything else (unstable, crashed, timed out)
            # a penalty worse than the initial loss -- COMPLETE, so samplers learn from it.
            value = sc if math.isfinite(sc) else penalty(ref if ref is not None else math.nan)
            frozen = self.study.tell(trial, float(value))
        rec = record_from_frozen(frozen)
        assert rec is not None
        return rec

    # 4) the loop -----------------------------------------------------------------------------
    def run(self) -> SearchResult:
        t0 = time.monotonic()
        cfg = self.config
        result = SearchResult(study=self.study, records=[])
        self._requeue_interrupted()
        try:
            lr_range, script_lr = self._lr_range()
        except KeyboardInterrupt:
            self.runner.interrupt()  # the calibration run must not outlive us
            result.interrupted = True
            result.records = records(self.study)
            result.wall_s = time.monotonic() - t0
            return result
        result.script_lr, result.lr_range = script_lr, lr_range
        self.study.set_user_attr("lr_range", list(lr_range))
        if (
            script_lr is not None
            and self._done() == 0
            and not self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        ):
            # the first trial runs the script's own LR (clipped to the range) with a short
            # warmup: a known anchor for the sampler and the recommendation
            lr0 = min(max(script_lr, lr_range[0]), lr_range[1])
            self.study.enqueue_trial({"peak_lr": lr0, "warmup_steps": cfg.warmup_max // 4})

        done_records = [r for r in records(self.study) if r.status not in ("running", "waiting")]
        finished = [r for r in done_records if r.status != "interrupted"]
        n_done = self._done()
        # a resumed study whose first trial got past the script checks need not check again
        first_checked = any(r.status not in ("failed", "timeout") for r in finished)
        self.reporter.started(n_done, cfg.trials, lr_range)
        deadline = None if cfg.timeout is None else t0 + cfg.timeout
        running: dict[Future[TrialResult], tuple[optuna.Trial, TrialSpec]] = {}
        started = n_done
        pool = ThreadPoolExecutor(max_workers=cfg.jobs, thread_name_prefix="autowarm-trial")
        try:
            while True:
                # a) start trials: the first one alone, then up to --jobs at a time
                slots = cfg.jobs if first_checked else 1
                while (
                    len(running) < slots
                    and started < cfg.trials
                    and (deadline is None or time.monotonic() < deadline)
                ):
                    trial, spec = self._ask(lr_range)
                    self.reporter.trial_started(spec)
                    running[pool.submit(self._run, spec, finished)] = (trial, spec)
                    started += 1
                if not running:
                    break
                # b) wait for one to end (a short timeout keeps the live display moving)
                ready, _ = wait(list(running), timeout=0.25, return_when=FIRST_COMPLETED)
                self.reporter.tick()
                for fut in ready:
                    trial, spec = running.pop(fut)
                    res = fut.result()
                    # the script cannot be probed: record the trial as FAILed (it says
                    # nothing about its LR) and stop with the reason
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
            result.timed_out = deadline is not None and n_done < cfg.trials
        except KeyboardInterrupt:
            # Ctrl-C: kill the running trials, record them as interrupted (re-run on resume)
            result.interrupted = True
            self.runner.interrupt()
            for fut, (trial, spec) in running.items():
                try:
                    res = fut.result(timeout=30)
                except BaseException:
                    res = TrialResult(status="interrupted", steps=0, reason="interrupted")
                res.status = "interrupted"
                self._tell(trial, spec, res)
            running.clear()
        finally:
            if running:  # SearchStopped while others ran: do not leave orphans
                self.runner.interrupt()
                for fut, (trial, spec) in running.items():
                    try:
                        res = fut.result(timeout=30)
                    except BaseException:
                        res = TrialResult(status="interrupted", steps=0)
                    res.status = "interrupted"
                    self._tell(trial, spec, res)
            pool.shutdown(wait=True)
        result.records = records(self.study)
        result.wall_s = time.monotonic() - t0
        return result
