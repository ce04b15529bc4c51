"""Inside one probe trial: force the trial's LR schedule and report every step to the parent.

This module runs in the trial's process (the user's script), never in the search. Two entry
points:

- :func:`attach` — called by ``MonitoredOptimizer.__init__`` when ``AUTOWARM_TRIAL`` is set;
  registers a :class:`Controller`'s ``before_step`` / ``after_step`` as the wrapper's step
  pre- and post-hooks.
- :func:`run_script` — the trial's bootstrap: runs the user's script like
  ``python script.py args`` would and turns however it ends into one final message.

Protocol (child -> parent), set up by :mod:`autowarm.probe._runner`:

- ``AUTOWARM_TRIAL``: the :class:`~autowarm.probe._types.TrialSpec` as JSON;
- ``AUTOWARM_TRIAL_FD``: an inherited pipe's write end; the trial writes one JSON object per
  line (``{"t": "wrap" | "step" | "event" | "end" | "exit" | "crash", ...}``);
- ``AUTOWARM_TRIAL_FIFO`` instead of the fd in a distributed trial (``torch.distributed.run``
  closes inherited fds before it starts its ranks): the path of a FIFO the parent reads. Every
  rank runs the bootstrap and says ``{"t": "rank"}`` when it starts (the parent tells a launcher
  that failed from a script that did); rank 0 (``RANK``) reports the trial, the other ranks
  only a crash (each message is one write of < ``PIPE_BUF`` bytes: ranks never interleave);
- ``AUTOWARM_TRIAL_PID``: set by the bootstrap to its own pid: only that process writes on the
  pipe. Subprocesses of the script that wrap optimizers too (a DDP rank, say) get the forced LR
  and end at ``probe_steps`` but report nothing, and so does a script run by hand with
  ``AUTOWARM_TRIAL='{"peak_lr": 0.01, "probe_steps": 100}' python train.py``.

The LR of step ``s`` (0-based) on every param group is ``Recipe(...).lr_at(s) * ratio``, set
right before the real update, so it wins over the script's own scheduler and over a
nanoGPT-style ``param_group["lr"] = lr`` in the loop. ``ratio`` keeps the script's ratios
between param groups: each group's base LR is its ``initial_lr`` (written by any torch LR
scheduler: the schedule's base even when the scheduler set LR 0 at step 0) or else its LR
when the optimizer was wrapped, divided by the base LR of the reference group (most
parameters; of the first wrapped optimizer when a script wraps several) -- the rule of
:mod:`autowarm.schedule._groups`, which ``RecipeLR`` applies to the recommendation too.

The trial ends itself (:class:`TrialEnd`, caught by :func:`run_script`) when
1) the monitor is sure it is unstable: a ``nonfinite`` event at once, ``divergence`` (the
   monitor's 12-step running median already ignores warmup "catapults"), ``stall`` — except a
   stall found inside the warmup, which a long warmup is allowed: then the stall rule is applied
   again at the end of the probe (status ``stalled`` if there still is no progress);
2) ``probe_steps`` steps are done: ``stable``, or ``spike`` if the monitor saw spikes; the
   script's ``autowarm.score_with(fn)``, if it asked for one, is called then and its value sent
   with the end (the trial's score instead of its training loss).
Only the first wrapped optimizer reports steps and ends the trial; the others just get their LR.
Under ``torch.distributed`` every rank judges its own monitor and the ranks agree on the stop with
one small all-reduce per step (:func:`_agree_stop`): they all end at the same step, none is left
waiting in a collective.
"""

from __future__ import annotations

import builtins
import contextlib
import importlib.machinery
import json
import math
import os
import signal
import sys
import time
import traceback
import types
from collections.abc import Callable
from dataclasses import fields
from typing import Any

from autowarm._errors import InstabilityError
from autowarm.probe import _loaders, _optimizer_class, _resume, _scheduler
from autowarm.probe import _scratch as scratch
from autowarm.probe._status import FINISHED, STOPPING_EVENTS, stops_trial
from autowarm.probe._types import TrialSpec
from autowarm.schedule._groups import (
    base_lrs,
    lr_value,
    ratios,
    reference_group,
    reference_lr,
    set_lrs,
)

TRIAL_ENV = "AUTOWARM_TRIAL"
FD_ENV = "AUTOWARM_TRIAL_FD"
# the trial's own process: only it reports on the pipe. A subprocess of the script (a spawned
# DDP rank, say) inherits the variables but not the pipe; its fd number may be another file.
PID_ENV = "AUTOWARM_TRIAL_PID"
FIFO_ENV = "AUTOWARM_TRIAL_FIFO"
#: the search's seed for the random state every trial starts from (see seed_trial)
SEED_ENV = "AUTOWARM_TRIAL_SEED"
#: what a rank other than 0 sends: that it started, and how it crashed
_ANY_RANK = ("rank", "crash")
#: how a trial ends, least to most severe: the ranks agree on the most severe one (MAX)
_ENDS = ("stable", "spike", "stalled", "diverged", "nonfinite", "interrupted")


# the monitor's numbers are read (a host sync on an accelerator) at most this often
_READ_INTERVAL_S = 0.05


#: the script's ``autowarm.score_with(fn)``: called once when a trial finishes (see _probing.py)
scorer: Callable[[], float] | None = None
scorer_name: str | None = None  # what the report calls its value (score_with's ``name``)


#: why a trial whose script trains in a process it started itself fails (the runner's reason)
SUBPROCESS_REASON = (
    "the script trains in a process it starts itself (torch.multiprocessing.spawn, "
    "Lightning's ddp_spawn), where a probe cannot follow it"
)


class TrialEnd(SystemExit):
    """Ends the user's script from inside ``optimizer.step()``.

    A ``SystemExit`` so that ``except Exception`` in the user's loop lets it through; the
    bootstrap recognises it (and any error raised by the script's ``finally`` blocks while it
    propagates) as the planned end of the trial, not a crash.
    """

    def __init__(self, status: str, reason: str | None = None) -> None:
        super().__init__(0)
        self.status = status
        self.reason = reason


def spec_to_json(spec: TrialSpec) -> str:
    return json.dumps({f.name: getattr(spec, f.name) for f in fields(spec)})


def spec_from_json(text: str) -> TrialSpec:
    data = json.loads(text)
    known = {f.name for f in fields(TrialSpec)}
    defaults = {"number": 0, "warmup_steps": 0}
    defaults.update({k: v for k, v in data.items() if k in known})
    if "probe_steps" not in defaults or "peak_lr" not in defaults:
        raise ValueError(f"{TRIAL_ENV} needs 'peak_lr' and 'probe_steps' but got {text!r}.")
    return TrialSpec(**defaults)


def schedule(spec: TrialSpec) -> Callable[[int], float]:
    """The trial's LR at each step: a Recipe with ``total_steps = probe_steps``."""
    from autowarm.schedule._recipe import Recipe

    shape = {"warmup": spec.warmup, "decay": spec.decay, "min_lr_ratio": spec.min_lr_ratio}
    return Recipe(spec.peak_lr, spec.warmup_steps, spec.probe_steps, **shape, **spec.options).lr_at


class _Channel:
    """Newline-delimited JSON messages on the inherited pipe (or nowhere).

    One ``write`` per message, unbuffered: a step costs a few microseconds more, and a trial
    killed by a signal (or the OOM killer) has still reported every step it finished.
    """

    def __init__(self, fd: int | None, *, rank: int = 0) -> None:
        self.fd = fd
        self.rank = rank  # rank 0 (or not distributed) reports the trial

    def send(self, msg: dict[str, Any]) -> None:
        if self.fd is None or not (self.rank == 0 or msg.get("t") in _ANY_RANK):
            return
        data = json.dumps({**msg, "rank": self.rank} if self.rank else msg).encode() + b"\n"
        try:
            while data:
                n = os.write(self.fd, data)
                data = data[n:]
        except OSError:
            # the parent is gone (search killed): nobody reads the results, stop training
            self.fd = None
            raise TrialEnd("interrupted", "the search that started this trial is gone") from None


class _Session:
    """Per-process trial state, shared by every wrapped optimizer in the script."""

    def __init__(self, spec: TrialSpec, channel: _Channel) -> None:
        self.pid = os.getpid()
        self.spec = spec
        self.lr_at = schedule(spec)
        self.channel = channel
        self.controllers: list[Controller] = []
        self.ended: TrialEnd | None = None
        self.steps = 0
        self.t_first: float | None = None
        self.t_last: float | None = None
        self.reference_lr: float | None = None  # base LR of the primary's largest group
        self.wrap_lr: float | None = None  # script's LR (largest group) when wrapped
        self.initial_lr: float | None = None  # its scheduler's initial_lr at the first step
        self.max_script_lr = 0.0  # largest LR the script itself set before a step
        # the script's loop set param_group["lr"] itself with no torch LR scheduler (nanoGPT):
        # a scheduler pasted into it would be overwritten every iteration
        self.sets_lr = False
        # the framework's trainer the script runs under, as its autowarm callback tells
        # (note_trainer): the report then prints the schedule as that trainer's own arguments
        self.trainer: str | None = None
        # the training data as the trainer feeds it (note_data): how many passes the full run
        # makes over it, which the noisy_loss doubt weighs
        self.data: dict[str, int] | None = None

    @property
    def train_s(self) -> float:
        if self.t_first is None or self.t_last is None:
            return 0.0
        return self.t_last - self.t_first

    @property
    def script_lr(self) -> float | None:
        """The script's own LR: its scheduler's base LR, else the LR it built the optimizer
        with, else the largest LR it set itself during the probe (all of its largest group)."""
        for lr in (self.initial_lr, self.wrap_lr, self.max_script_lr):
            if lr is not None and lr > 0:
                return lr
        return self.wrap_lr

    def summary(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "train_s": self.train_s,
            "script_lr": self.script_lr,
            "wrapped": bool(self.controllers),
            "sets_lr": self.sets_lr,
            "trainer": self.trainer,
            # a trainer's callback told it, else the DataLoader the loop drew from
            "data": self.data or _loaders.data(self.steps),
            "scheduler": _scheduler.summary(
                [c.optimizer for c in self.controllers], steps=self.steps
            ),
            "optimizer": _optimizer_class.optimizer_class([c.optimizer for c in self.controllers]),
        }

    def fail(self, failure: str, reason: str) -> TrialEnd:
        """End the trial as ``failed`` with ``failure`` (one of _status.Failure): about the
        script, not the trial's LR."""
        self.ended = TrialEnd("failed", reason)
        self.channel.send({"t": "crash", "reason": reason, "failure": failure, **self.summary()})
        return self.ended

    def end(self, status: str, reason: str | None, score: float | None = None) -> TrialEnd:
        self.ended = TrialEnd(status, reason)
        msg = {"t": "end", "status": status, "reason": reason, **self.summary()}
        if score is not None:
            msg["score"] = score  # json writes NaN/Infinity; the runner reads them back
            msg["score_name"] = scorer_name
        self.channel.send(msg)
        return self.ended


_session: _Session | None = None


def _get_session() -> _Session:
    global _session
    if _session is None or _session.pid != os.getpid():  # new, or a forked subprocess
        _session = _Session(spec_from_json(os.environ[TRIAL_ENV]), _open_channel())
    return _session


def _open_channel() -> _Channel:
    """The trial's pipe (inherited fd), or its FIFO in a distributed trial; no channel in a
    subprocess of the script (it is not the bootstrap's process)."""
    if os.environ.get(PID_ENV) != str(os.getpid()):
        return _Channel(None)
    fd_text, fifo = os.environ.get(FD_ENV), os.environ.get(FIFO_ENV)
    if fd_text:
        return _Channel(int(fd_text))
    if not fifo:
        return _Channel(None)
    try:
        # non-blocking open: fails at once (ENXIO) when the parent is gone instead of waiting
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return _Channel(None)
    os.set_blocking(fd, True)  # a full FIFO waits for the parent to read, as the pipe does
    return _Channel(fd, rank=int(os.environ.get("RANK", "0")))


class Controller:
    """Forces the trial's LR on one wrapped optimizer; the first one also reports steps.

    It rides the wrapper's own step hooks (``register_step_pre_hook`` / ``_post_hook``):
    :meth:`before_step` sets this step's LR right before the update, :meth:`after_step` reads
    what the monitor recorded and may end the trial.
    """

    def __init__(self, optimizer: Any, session: _Session) -> None:
        self.session = session
        self.optimizer = optimizer
        self.primary = not session.controllers
        self._wrap_lrs = [lr_value(g["lr"]) for g in optimizer.param_groups]
        self._ratios: list[float] | None = None
        self._step = 0
        self._n_events = 0
        self._sent = 0  # history records reported
        self._last_read = 0.0
        self._spikes = 0
        self._forced: float | None = None  # the LR we set on the reference group last step
        self._scheduled = False  # a torch LR scheduler drives these optimizers (seen so far)
        self._stall_in_warmup: dict[str, Any] | None = None
        if self.primary:
            session.wrap_lr = self._wrap_lrs[reference_group(optimizer.param_groups)]
            session.channel.send({"t": "wrap", "lrs": self._wrap_lrs})
        session.controllers.append(self)

    def _capture_ratios(self, optimizer: Any) -> list[float]:
        session = self.session
        groups = optimizer.param_groups
        bases = base_lrs(groups, self._wrap_lrs)
        if session.reference_lr is None:
            # the first wrapped optimizer's base LR is the peak LR, whichever steps first
            primary = session.controllers[0]
            session.reference_lr = reference_lr(
                primary.optimizer.param_groups,
                base_lrs(primary.optimizer.param_groups, primary._wrap_lrs),
            )
        if self.primary:
            group = groups[reference_group(groups)]
            if "initial_lr" in group:
                session.initial_lr = lr_value(group["initial_lr"])
        return ratios(bases, session.reference_lr or reference_lr(groups, bases))

    def before_step(self, optimizer: Any, *_: Any) -> None:
        session = self.session
        if session.ended is not None:  # the script caught the end and kept training
            raise TrialEnd(session.ended.status, session.ended.reason)
        groups = optimizer.param_groups
        if self._ratios is None or len(self._ratios) != len(groups):
            self._ratios = self._capture_ratios(optimizer)
        reference = reference_group(groups) if self.primary else 0
        if self.primary:
            script_lr = lr_value(groups[reference]["lr"])
            if script_lr != self._forced:  # the script (or its scheduler) set it since
                session.max_script_lr = max(session.max_script_lr, script_lr)
                if (
                    self._forced is not None
                    and not session.sets_lr
                    and not self._torch_scheduled(groups[reference])
                ):
                    session.sets_lr = True  # no torch scheduler did it: the loop itself
            if session.t_first is None:
                session.t_first = time.perf_counter()
        if self.primary and self._step == 0:
            why = _resume.resumed(optimizer)
            if why is not None:  # it warms up a model that has trained already: not a probe
                raise session.fail("resumed", why)
        lr = session.lr_at(self._step)
        set_lrs(groups, [lr * ratio for ratio in self._ratios])
        if self.primary:
            self._forced = lr_value(groups[reference]["lr"])

    def _torch_scheduled(self, group: dict[str, Any]) -> bool:
        """Whether a torch LR scheduler drives these optimizers (it sets ``initial_lr``, but so
        does timm's own scheduler, which writes ``param_group["lr"]`` as a loop would)."""
        if "initial_lr" not in group:
            return False
        if not self._scheduled:  # once found, it stays
            drives = _scheduler.summary([c.optimizer for c in self.session.controllers])
            self._scheduled = drives is not None
        return self._scheduled

    def after_step(self, optimizer: Any, *_: Any) -> None:
        self._step += 1
        if not self.primary:
            return
        try:
            stop = self._judge(optimizer.monitor)
        except TrialEnd as e:  # the parent is gone: the other ranks must hear it too
            stop = (e.status, e.reason)
        agreed = _agree_stop(stop, self._step, optimizer)
        if agreed is not None and stop is None:
            # another rank's stop: this rank's last steps may still be unread (read every
            # _READ_INTERVAL_S); report them, else the trial's losses end in holes
            optimizer.monitor.flush()
            self._send_steps(optimizer.monitor._history)
        if agreed is not None:
            raise self.session.end(*agreed, score=_script_score(agreed[0]))

    def _judge(self, monitor: Any) -> tuple[str, str | None] | None:
        """Report the steps and events the monitor has recorded since the last call; how the
        trial ends now (status, reason), or None to go on."""
        session = self.session
        now = time.perf_counter()
        session.steps, session.t_last = self._step, now
        last = self._step >= session.spec.probe_steps
        # reading the monitor's device-side numbers is a host sync on an accelerator: do it
        # every _READ_INTERVAL_S (and on the first and last step), report what was read
        if last or self._step == 1 or now - self._last_read >= _READ_INTERVAL_S:
            monitor.flush()
            self._last_read = now
        # 1) the monitor is sure it is unstable: stop now, a longer run teaches nothing. The
        #    events go out before the steps they were read with: the search prunes on a step's
        #    loss, and what happened up to that step must reach it first (else the kill that
        #    follows a prune can land between the two writes, and one run of a seed keeps the
        #    instability while the next loses it)
        stop: tuple[str, str | None] | None = None
        events = monitor._events
        for event in events[self._n_events :]:
            data = event.to_dict()
            session.channel.send({"t": "event", "event": data})
            kind = data.get("kind")
            if kind == "spike":
                self._spikes += 1
            status = stops_trial(data, session.spec.warmup_steps)
            if kind == "stall" and status is None:
                self._stall_in_warmup = data  # judged again at the end of the probe
            elif stop is None and status is not None:
                stop = (status, _describe(data))
        self._n_events = len(events)
        # what was read so far (monitor.history itself would read the pending steps now)
        self._send_steps(monitor._history)
        if stop is not None or not last:
            return stop
        # 2) probe length reached: end the script cleanly
        if self._stall_in_warmup is not None and _no_progress(monitor):
            return "stalled", _describe(self._stall_in_warmup) + "; still no progress at the end"
        if self._spikes:
            return "spike", f"{self._spikes} spike(s)"
        return "stable", None

    def _send_steps(self, history: Any) -> None:
        session = self.session
        for rec in history[self._sent :]:
            i = int(_field(rec, "step"))
            msg = {
                "t": "step",
                "i": i,
                "loss": _field(rec, "loss"),
                "gn": _field(rec, "grad_norm"),
                "lr": session.lr_at(i),
                "s": session.train_s,
            }
            if self._sent == 0:
                msg["script_lr"] = session.script_lr
                msg["compile_s"] = compile_seconds()  # torch.compile's, before this step
            session.channel.send(msg)
            self._sent += 1


def _agree_stop(
    stop: tuple[str, str | None] | None, step: int, optimizer: Any
) -> tuple[str, str | None] | None:
    """Under ``torch.distributed``: the ranks stop at the same step (one all-reduce MAX of
    the most severe end any rank wants), else the others would wait forever in the next
    collective. A rank keeps its own reason; one that saw nothing ends with the agreed status.
    Outside distributed runs: ``stop`` unchanged, nothing is exchanged."""
    from autowarm.monitor import _ranks

    if not _ranks._distributed():
        return stop
    import torch

    dist = torch.distributed
    params = [p for g in optimizer.param_groups for p in g["params"]]
    device = params[0].device if params else torch.device("cpu")
    # NCCL reduces CUDA tensors only; gloo (and the rest) CPU ones (as the monitor's agree)
    on = device if dist.get_backend() == "nccl" else torch.device("cpu")
    code = torch.tensor([0 if stop is None else 1 + _ENDS.index(stop[0])], device=on)
    dist.all_reduce(code, op=dist.ReduceOp.MAX)
    agreed = int(code.item())
    if stop is not None or agreed == 0:
        return stop
    status = _ENDS[agreed - 1]
    return status, f"{status} on another rank at step {step}"


def _script_score(status: str) -> float | None:
    """The script's ``score_with()`` value for a finished trial (None: none asked for)."""
    if scorer is None or status not in FINISHED:
        return None
    import torch

    with torch.no_grad():
        return float(scorer())


def _no_progress(monitor: Any) -> bool:
    """The monitor's stall rule, applied now: the best smoothed loss is not
    ``stall_tolerance`` below the initial one."""
    initial, best = getattr(monitor, "initial_loss", None), getattr(monitor, "best_loss", None)
    thresholds = getattr(monitor, "thresholds", None)
    tolerance = getattr(thresholds, "stall_tolerance", 0.05)
    if initial is None or best is None:
        return False
    return best > initial - tolerance * abs(initial)


def _field(rec: Any, name: str) -> float:
    value = rec.get(name) if isinstance(rec, dict) else getattr(rec, name, None)
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _describe(event: dict[str, Any]) -> str:
    kind, signal, step = event.get("kind"), event.get("signal"), event.get("step")
    value, reference = event.get("value"), event.get("reference")
    text = f"{kind} of {signal} at step {step}"
    if isinstance(value, (int, float)):
        text += f": {value:.4g}"
        if isinstance(reference, (int, float)):
            text += f" (reference {reference:.4g})"
    return text


def compile_seconds() -> float:
    """The seconds this process spent in ``torch.compile`` so far: Dynamo's tracing with the
    forward's compile, and the backward's compile (at its first backward), as Dynamo times
    them; 0 when nothing was compiled (or a torch without these timings)."""
    utils = sys.modules.get("torch._dynamo.utils")
    metrics = getattr(utils, "compilation_time_metrics", None)
    if not isinstance(metrics, dict):
        return 0.0
    names = ("_compile.compile_inner", "_compile.<locals>.compile_inner")
    names += ("compile_fx.<locals>.bw_compiler",)
    return float(sum(sum(metrics.get(name, ())) for name in names))


def attach(optimizer: Any) -> Controller:
    """Called by ``MonitoredOptimizer.__init__`` inside a probe trial (``AUTOWARM_TRIAL`` set):
    the trial's controller rides the wrapper's step hooks. A process the script started itself
    has no way to report; it marks the trial, and where the script's own process never
    wrapped one (its training is all there: ``mp.spawn``, Lightning's ``ddp_spawn``) the
    runner says so (``failed``/``subprocess``)."""
    scratch_dir = os.environ.get(scratch.SCRATCH_ENV)
    if os.environ.get(PID_ENV) not in (None, str(os.getpid())) and scratch_dir:
        with open(os.path.join(scratch_dir, scratch.SUBPROCESS_MARK), "a") as mark:
            mark.write(f"{os.getpid()}\n")
    controller = Controller(optimizer, _get_session())
    optimizer.register_step_pre_hook(controller.before_step)
    optimizer.register_step_post_hook(controller.after_step)
    return controller


def note_trainer(name: str) -> None:
    """A framework's autowarm callback (``"hf"``, ``"lightning"``) says the script trains
    under its trainer: inside a trial, the report then prints the schedule in that trainer's
    own terms (TrainingArguments; a ``configure_optimizers``)."""
    if TRIAL_ENV in os.environ:
        _get_session().trainer = name


def note_data(train_examples: int, examples_per_step: int) -> None:
    """A framework's autowarm callback says how many training examples its trainer holds and
    how many one optimizer step takes (batch x accumulation x processes): inside a trial, the
    report can then say how many passes over them the full run makes (``noisy_loss``).
    Unknown or non-positive sizes (an iterable dataset) are left unsaid."""
    if TRIAL_ENV in os.environ and train_examples > 0 and examples_per_step > 0:
        _get_session().data = {
            "train_examples": int(train_examples),
            "examples_per_step": int(examples_per_step),
        }


# ---------------------------------------------------------------------------------------------
# the trial's bootstrap: ``python script.py args`` with the end of the trial reported


def one_line(exc: BaseException, script: str | None = None) -> str:
    """``"RuntimeError: shapes do not match (train.py, line 42)"``: the last line of the
    traceback plus the deepest frame of the user's script."""
    text = " ".join(traceback.format_exception_only(type(exc), exc)[-1].split())
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{text} ({os.path.basename(exc.filename)}, line {exc.lineno})"[:400]
    where = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if script is not None and os.path.realpath(frame.filename) == os.path.realpath(script):
            where = frame
    if where is not None:
        text += f" ({os.path.basename(where.filename)}, line {where.lineno})"
    return text[:400]


def _exec_main(script: str, args: list[str]) -> None:
    """What ``python script args`` does with the script: it becomes ``__main__`` (for good,
    not runpy's temporary module: pickling and multiprocessing look it up there) with
    ``__file__`` absolute, ``sys.argv[0]`` as typed, its real folder first on ``sys.path``."""
    path = os.path.abspath(script)
    with open(path, "rb") as f:
        source = f.read()
    main = types.ModuleType("__main__")
    main.__file__ = path
    main.__loader__ = importlib.machinery.SourceFileLoader("__main__", path)
    main.__builtins__ = builtins
    sys.modules["__main__"] = main
    sys.argv = [script, *args]
    sys.path[0] = os.path.dirname(os.path.realpath(script))
    exec(compile(source, path, "exec", dont_inherit=True), main.__dict__)


# ---------------------------------------------------------------------------------------------
# the trial's process tree: a subprocess started with `start_new_session=True` (or a daemon
# that double-forks) leaves the trial's process group, so killing the group misses it

_PR_SET_CHILD_SUBREAPER = 36  # <linux/prctl.h>


def become_subreaper() -> None:
    """Linux: descendants orphaned inside this process's tree are reparented to it instead of
    init, so they stay in its tree (:func:`descendants`) until it ends them."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):  # no libc prctl: the process group still is killed
        pass


def _stat(pid: int) -> tuple[int, int] | None:
    """``(parent pid, start time)`` of a live process, from ``/proc/PID/stat``."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data.rsplit(b")", 1)[-1].split()  # after "pid (comm)": state, ppid, ...
    try:
        return int(fields[1]), int(fields[19])
    except (IndexError, ValueError):
        return None


def process_start(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot); None when it is gone or unknown."""
    stat = _stat(pid)
    return None if stat is None else stat[1]


def descendants(pid: int, start: int | None = None) -> dict[int, tuple[int, int]]:
    """Every process below ``pid``: ``{pid: (parent pid, start time)}`` (empty without
    ``/proc``, or when ``pid`` is no longer the process that began at ``start``). The start
    time tells a process from a later one that reuses its pid."""
    if start is not None and process_start(pid) != start:
        return {}
    try:
        names = [int(n) for n in os.listdir("/proc") if n.isdigit()]
    except OSError:
        return {}
    children: dict[int, list[int]] = {}
    info: dict[int, tuple[int, int]] = {}
    for p in names:
        stat = _stat(p)
        if stat is not None:
            info[p] = stat
            children.setdefault(stat[0], []).append(p)
    found: dict[int, tuple[int, int]] = {}
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found[child] = info[child]
                todo.append(child)
    return found


def kill_processes(procs: dict[int, tuple[int, int]], sig: int) -> None:
    """Signal each of ``procs`` that is still the same process (same start time)."""
    for pid, (_, start) in procs.items():
        stat = _stat(pid)
        if stat is not None and stat[1] == start:
            with contextlib.suppress(OSError):
                os.kill(pid, sig)


def seed_trial() -> None:
    """Seed Python's ``random``, numpy's global state and torch with the search's seed (plus
    the rank), so that every trial of a search starts from the same random state: a script
    that seeds nothing itself gets the same init and batch order in each trial (they differ by
    their schedule alone), in a fork server's child as in a fresh interpreter, and the same
    run after run under ``--seed``. A script that seeds itself overrides it, as it would."""
    value = os.environ.get(SEED_ENV, "")
    if not value.isdigit():
        return
    seed = int(value) + int(os.environ.get("RANK", "0") or 0)
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # CUDA's generators lazily: no CUDA context is made here


def run_script(script: str, args: list[str]) -> int:
    """Run ``script`` as ``__main__`` like ``python script args``; report how it ended.

    Returns the exit code for ``os._exit``: the caller skips interpreter teardown (atexit
    hooks of loggers, DataLoader workers) because the parent has all it needs and kills the
    trial's process group anyway.
    """
    os.environ[PID_ENV] = str(os.getpid())
    become_subreaper()
    scratch.install()  # the script's writes go to the trial's scratch folder
    _resume.install()  # the files torch.load reads: a resumed run names its checkpoint
    _scheduler.install()  # the script's own LR scheduler: the report says what to replace
    _loaders.install()  # the DataLoader it trains from: the full run's passes over its data
    seed_trial()
    session = _get_session()
    code = 0
    try:
        if os.environ.get(FIFO_ENV):  # a rank of a distributed trial: it started
            session.channel.send({"t": "rank"})
        _exec_main(script, args)
        if session.ended is None:  # else the script caught the end and finished its loop
            session.channel.send({"t": "exit", "code": 0, **session.summary()})
    except SystemExit as e:
        if session.ended is None:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            if e.code is not None and not isinstance(e.code, int):
                sys.stderr.write(f"{e.code}\n")
            session.channel.send({"t": "exit", "code": code, **session.summary()})
    except BaseException as e:
        # an error while the trial's end propagates (a `finally:` in the script saving a
        # checkpoint, say) is not the trial's result: the end message is already sent
        event = getattr(e, "event", None) if isinstance(e, InstabilityError) else None
        if session.ended is None and event is not None:
            # the script's monitor raises on instabilities (action "raise"): same as a stop
            data = event.to_dict()
            session.end(STOPPING_EVENTS.get(data.get("kind"), "diverged"), _describe(data))
        elif session.ended is None:
            traceback.print_exc()
            syntax = isinstance(e, SyntaxError) and os.path.realpath(
                e.filename or ""
            ) == os.path.realpath(script)
            session.channel.send(
                {"t": "crash", "reason": one_line(e, script), "syntax": syntax, **session.summary()}
            )
            code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        # the trial's whole tree ends with it, also what left its process group
        kill_processes(descendants(os.getpid()), signal.SIGKILL)
    return code


def main() -> None:
    """``python -c "from autowarm.probe._child import main; main()" script.py args...``."""
    code = run_script(sys.argv[1], sys.argv[2:])
    os._exit(code)
