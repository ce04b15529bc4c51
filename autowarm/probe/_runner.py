"""Run the user's script as probe trials: one process (group) per trial, results as they come.

``ProbeRunner(script, args).run(spec)`` starts the script with ``spec``'s LR schedule forced on
its wrapped optimizer (see :mod:`autowarm.probe._child`), streams each step to ``on_step``,
and returns a :class:`~autowarm.probe._types.TrialResult`. A crash, NaN, hang or kill of one
trial never takes the caller down: every trial is its own process in its own process group
(killing the group also kills its DataLoader workers and any subprocess it started).

Processes come from a fork server (:mod:`autowarm.probe._forkserver`) that has already paid
for the interpreter start and ``import torch``; when it cannot start (non-POSIX, autowarm not
importable by the user's Python, an import that started threads) or when asked
(``forkserver=False`` or ``AUTOWARM_NO_FORKSERVER=1``), each trial is a fresh
``python -c <bootstrap> script.py args``.

A distributed trial (``nproc_per_node`` K > 1) is ``python -m torch.distributed.run
--standalone --nproc-per-node K --no-python python -c <bootstrap> script.py args``: every rank
runs the bootstrap, the rendezvous store binds a free port of its own (trials in parallel never
share one), and the ranks report on a FIFO named in the environment (the launcher closes
inherited fds); rank 0 reports the trial. A launcher that fails before every rank started the
script is ``failed``/``launcher`` (tried once more first): it says nothing about the LR.

With several GPUs visible (``CUDA_VISIBLE_DEVICES``, else ``torch.cuda.device_count()``) each
running trial gets its own (K for a distributed one) through ``CUDA_VISIBLE_DEVICES``: the least
used ones, so more trials than GPUs share them evenly.

How a result's status is decided, first match wins:
1) the trial said how it ended (``end`` message): ``stable`` / ``spike`` at the probe length,
   or ``nonfinite`` / ``diverged`` / ``stalled`` stopped early by the monitor;
2) the runner stopped it: ``pruned`` (``on_step`` returned True), ``timeout``, ``interrupted``;
3) the script did not compile: ``failed``/``syntax``; a distributed trial's launcher failed
   before every rank started: ``failed``/``launcher``;
4) it died or exited after an instability the monitor had reported (or a NaN/Inf loss or grad
   norm): that instability (a script that stops itself on NaN is not a crash);
5) an exception, a non-zero exit or a signal: ``failed``/``crash`` with a one-line reason
   (``"RuntimeError: ... (train.py, line 42)"``, ``"killed by SIGSEGV"``); a failure the child
   named itself, the same way (``failed``/``resumed``: see probe/_resume.py);
6) it exited by itself: ``failed``/``no_wrap`` (never wrapped) or ``failed``/``too_short``;
7) it reached the probe length without ever calling ``report()``: ``failed``/``no_report``.
"""

from __future__ import annotations

import ast
import contextlib
import getpass
import json
import math
import os
import re
import secrets
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any

from autowarm._errors import AutowarmError
from autowarm._io import atomic_write_bytes
from autowarm.probe._child import (
    FD_ENV,
    FIFO_ENV,
    PID_ENV,
    SEED_ENV,
    SUBPROCESS_REASON,
    TRIAL_ENV,
    descendants,
    kill_processes,
    process_start,
    schedule,
    spec_to_json,
)
from autowarm.probe._forkserver import ForkedProcess, ForkServer, ForkServerError
from autowarm.probe._scratch import REMOVED_LOG, SCRATCH_ENV, SUBPROCESS_MARK, SYSTEM_TEMP_ENV
from autowarm.probe._status import FINISHED, STOPPING_EVENTS, stops_trial
from autowarm.probe._types import TrialResult, TrialSpec

OnStep = Callable[[int, float, float], "bool | None"]

# seconds a trial gets after SIGTERM before SIGKILL, and after its final message to exit by
# itself (its `finally:` blocks run) before its process group is killed
_TERM_GRACE_S = 2.0
_EXIT_GRACE_S = 2.0
_POLL_S = 0.05
_LOG_TAIL_BYTES = 1 << 16

#: variables that turn experiment trackers off (wandb, and the HF Trainer's wandb callback)
_TRACKERS_OFF = {"WANDB_MODE": "disabled", "WANDB_DISABLED": "true"}

_BOOTSTRAP = "from autowarm.probe._child import main; main()"
_NO_FORKSERVER_ENV = "AUTOWARM_NO_FORKSERVER"
# a distributed trial: the rendezvous store on a free port (EADDRINUSE-free with --jobs); the
# agent checks its ranks every 0.1 s, so a trial that ended is not kept waiting
_LAUNCHER = ("-m", "torch.distributed.run", "--standalone", "--monitor-interval", "0.1")
_GPUS_ENV = "CUDA_VISIBLE_DEVICES"


class ProbeRunner:
    """Runs probe trials of ``python script args`` in ``cwd``.

    Args:
        script: the training script, as the user would pass it to Python (relative to ``cwd``).
        args: the script's own arguments.
        cwd: working directory of every trial (default: the current one).
        python: the interpreter (default: this one).
        trial_timeout: seconds after which a trial is killed (status ``"timeout"``).
        env: variables added to (or overriding) this process's environment for the trials.
        forkserver: ``None`` (default) uses a fork server where possible unless
            ``AUTOWARM_NO_FORKSERVER=1``; ``False`` spawns a fresh interpreter per trial.
        threads: torch/BLAS threads per trial (``OMP_NUM_THREADS`` etc.) where the environment
            sets none; pass ``cpu_count // jobs`` when running trials in parallel.
        log_dir: keep each trial's stdout+stderr as ``trial-<number>.log`` there.
        nproc_per_node: > 1 runs each trial under ``torch.distributed.run`` with that many
            ranks (``torchrun --nproc-per-node``); the fork server is then not used.

    ``run`` may be called from several threads at once. ``interrupt()`` kills every running
    trial and makes later ``run`` calls return ``"interrupted"`` at once; ``close()`` (or the
    ``with`` block's end) also stops the fork server.
    """

    def __init__(
        self,
        script: str,
        args: Sequence[str] = (),
        *,
        cwd: str | None = None,
        python: str = sys.executable,
        trial_timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        forkserver: bool | None = None,
        threads: int | None = None,
        log_dir: str | None = None,
        nproc_per_node: int = 1,
        seed: int | None = None,
    ) -> None:
        # 1) validate everything the user typed, before any process starts
        self.cwd = os.path.abspath(cwd if cwd is not None else os.getcwd())
        if not os.path.isdir(self.cwd):
            raise AutowarmError(f"cwd must be an existing folder but got {cwd!r}.")
        self.script = os.fspath(script)
        self.args = [str(a) for a in args]
        self._script_path = os.path.join(self.cwd, self.script)
        source = _read_script(self.script, self._script_path)
        self.python = _resolve_python(python)
        _check_options(trial_timeout, threads, log_dir, nproc_per_node)
        self.trial_timeout, self.log_dir, self.nproc_per_node = (
            trial_timeout,
            log_dir,
            nproc_per_node,
        )

        # 2) the trials' environment: ours + the user's, never a stale trial's
        self._env = _trial_env(env, threads)
        # one random state for every trial (see _child.seed_trial): from the search's seed,
        # else drawn once, as a fresh run of the script would
        self._env[SEED_ENV] = str(seed if seed is not None else secrets.randbits(63))

        #: the user's paths trials wrote (they went to scratch folders, see _scratch.py)
        self.redirected: set[str] = set()
        #: the user's paths trials removed, in their own view only (see _scratch.py)
        self.removed: set[str] = set()
        self._lock = threading.Lock()  # the set of live trials
        self._server_lock = threading.Lock()  # starting the server (slow: not under _lock)
        self._live: set[_TrialProcess] = set()
        self._interrupted = False
        self._closed = False
        self._gpus: _Devices | None = None  # found at the first trial (see _devices)

        # 3) start the fork server now: it imports torch while the caller sets up its search
        if nproc_per_node > 1:  # the launcher starts the ranks, not a fork of ours
            forkserver = False
        if forkserver is None:
            forkserver = (
                os.name == "posix"
                and hasattr(socket, "send_fds")
                and os.environ.get(_NO_FORKSERVER_ENV, "").lower() not in ("1", "true", "yes")
            )
        self.fallback_reason: str | None = None  # why trials are spawned despite forkserver
        self._server: ForkServer | None = None
        self._server_checked = not forkserver
        self._preload = _third_party_imports(source, self._script_path, self.cwd)
        if forkserver:
            self._start_server(self._preload)

    # -- the fork server ---------------------------------------------------------------------

    @property
    def mode(self) -> str:
        """``"forkserver"`` or ``"spawn"``: how trials start (waits for the server's start)."""
        return "forkserver" if self._get_server() is not None else "spawn"

    def _start_server(self, preload: Sequence[str]) -> None:
        try:
            self._server = ForkServer(self.python, self.cwd, self._env, preload)
        except OSError as e:
            self._server, self.fallback_reason = None, f"the fork server did not start: {e}"

    def _get_server(self) -> ForkServer | None:
        with self._server_lock:
            if self._server_checked:
                if self._server is not None and self._server.dead:
                    self.fallback_reason = self.fallback_reason or "the fork server died"
                    self._server = None
                return self._server
            server = self._server
            if server is not None and not server.wait_ready() and server.unsafe and self._preload:
                # a package the script imports starts threads at import: fork after torch only
                server.close()
                self._start_server(())
                server = self._server
                if server is not None:
                    server.wait_ready()
            if server is not None and server.error is not None:
                self.fallback_reason = server.error
                server.close()
                self._server = None
            self._server_checked = True
            return self._server

    # -- trials ------------------------------------------------------------------------------

    def run(self, spec: TrialSpec, *, on_step: OnStep | None = None) -> TrialResult:
        """Run one trial; blocks until it ends. Thread-safe."""
        t0 = time.perf_counter()
        if self._closed:
            raise RuntimeError("this ProbeRunner is closed.")
        if spec.probe_steps < 1:
            raise AutowarmError(f"probe_steps must be >= 1 but got {spec.probe_steps}.")
        schedule(spec)  # a bad spec is the caller's error, raised here (AutowarmError)
        if self._interrupted:
            return TrialResult("interrupted", 0, reason="the search was interrupted")
        if not os.path.isfile(self._script_path):
            return TrialResult(
                "failed",
                0,
                failure="not_found",
                reason=f"script {self.script!r} does not exist (anymore).",
                wall_s=time.perf_counter() - t0,
            )

        server = self._get_server()  # waits for its start-up on the first trials
        if self._interrupted:
            return TrialResult("interrupted", 0, reason="the search was interrupted")
        devices = self._devices().take(self.nproc_per_node)
        try:
            result = self._run_once(spec, server, devices, on_step)
            if result.failure == "launcher" and not self._interrupted:
                # a port taken between the launcher's choice and its bind, say: once more
                result = self._run_once(spec, server, devices, on_step)
        finally:
            self._devices().give_back(devices)
        result.wall_s = time.perf_counter() - t0
        return result

    def _devices(self) -> _Devices:
        with self._lock:
            if self._gpus is None:
                self._gpus = _Devices(_visible_gpus(self._env))
            return self._gpus

    def _run_once(
        self,
        spec: TrialSpec,
        server: ForkServer | None,
        devices: list[str],
        on_step: OnStep | None,
    ) -> TrialResult:
        # what the script writes lands here, never over the user's files, and its temp files
        # in a temp folder of its own: both removed after the trial, however it ended (a
        # trial ends by os._exit or is killed, so no atexit hook of the script removes its
        # DataLoader workers' pymp-* folder; see _scratch.py)
        scratch_dir = tempfile.mkdtemp(prefix=f"autowarm-trial-{spec.number}-")
        temp = _trial_temp(self._env[SYSTEM_TEMP_ENV])
        env = {SCRATCH_ENV: scratch_dir, **({"TMPDIR": temp} if temp else {})}
        try:
            result = self._run_in(env, spec, server, devices, on_step)
            marked = os.path.exists(os.path.join(scratch_dir, SUBPROCESS_MARK))
            if marked and result.status == "failed" and result.steps == 0:
                # its training was all in a process it started, out of the trial's reach,
                # however that ended (mp.spawn raises in the parent when a worker exits)
                result.failure, result.reason = "subprocess", SUBPROCESS_REASON
            return result
        finally:
            self._sweep(scratch_dir)
            if temp is not None:
                shutil.rmtree(temp, ignore_errors=True)

    def _run_in(
        self,
        env: dict[str, str],
        spec: TrialSpec,
        server: ForkServer | None,
        devices: list[str],
        on_step: OnStep | None,
    ) -> TrialResult:
        log = tempfile.TemporaryFile()  # noqa: SIM115 (closed below, after the trial)
        channel = _Inbox(fifo=self.nproc_per_node > 1)
        env = {**env, TRIAL_ENV: spec_to_json(spec)}
        if devices:
            env[_GPUS_ENV] = ",".join(devices)
        try:
            proc = self._start(server, env, log, channel)
        except BaseException:
            channel.close()
            log.close()
            raise
        finally:
            channel.started()
        ranks = self.nproc_per_node if channel.fifo is not None else 0
        child = _TrialProcess(spec, proc, channel.read_fd, self.trial_timeout, ranks=ranks)
        with self._lock:
            self._live.add(child)
            if self._interrupted:
                child.stop("interrupted", "the search was interrupted")
        try:
            child.follow(on_step)
        finally:
            with self._lock:
                self._live.discard(child)
            child.kill_group(signal.SIGKILL)  # leftovers: workers, subprocesses of the script
            channel.close()
        log_bytes = _read_log(log, whole=self.log_dir is not None)
        log.close()
        if self.log_dir is not None:
            path = os.path.join(self.log_dir, f"trial-{spec.number}.log")
            atomic_write_bytes(path, log_bytes)
        return child.result(log_bytes)

    def _sweep(self, scratch_dir: str) -> None:
        """Note which of the user's paths the trial wrote (into its scratch) and removed (in
        its own view only), then delete the scratch."""
        log = os.path.join(scratch_dir, REMOVED_LOG)
        written = [
            os.sep + os.path.relpath(os.path.join(d, f), scratch_dir)
            for d, _, files in os.walk(scratch_dir)
            for f in files
            if f not in (REMOVED_LOG, SUBPROCESS_MARK) or d != scratch_dir
        ]
        removed = _read_lines(log)
        with self._lock:
            self.redirected.update(written)
            self.removed.update(removed)
        shutil.rmtree(scratch_dir, ignore_errors=True)

    def _start(
        self, server: ForkServer | None, env: dict[str, str], log: IO[bytes], channel: _Inbox
    ) -> subprocess.Popen[bytes] | ForkedProcess:
        if channel.fifo is not None:
            ranks = ["--nproc-per-node", str(self.nproc_per_node), "--no-python", "--", self.python]
            command = [self.python, *_LAUNCHER, *ranks, "-c", _BOOTSTRAP, self.script, *self.args]
            return self._spawn(command, {**env, FIFO_ENV: channel.fifo}, log, ())
        if server is not None:
            try:
                return server.start(
                    self.script,
                    self.args,
                    cwd=self.cwd,
                    env=env,
                    log_fd=log.fileno(),
                    chan_fd=channel.write_fd,
                )
            except ForkServerError as e:
                self.fallback_reason = str(e)  # the server died: spawn from now on
        command = [self.python, "-c", _BOOTSTRAP, self.script, *self.args]
        env = {**env, FD_ENV: str(channel.write_fd)}
        return self._spawn(command, env, log, (channel.write_fd,))

    def _spawn(
        self, command: list[str], env: dict[str, str], log: IO[bytes], fds: tuple[int, ...]
    ) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            command,
            cwd=self.cwd,
            env={**self._env, **env},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            pass_fds=fds,
            start_new_session=True,  # own process group: killpg reaches workers too
        )

    def interrupt(self) -> None:
        """Kill every running trial now (status ``"interrupted"``); later runs do not start."""
        with self._lock:
            self._interrupted = True
            children = list(self._live)
        for child in children:
            child.stop("interrupted", "the search was interrupted")

    def close(self) -> None:
        if self._closed:
            return
        with self._lock:
            busy = bool(self._live)
        if busy:
            self.interrupt()
        self._closed = True
        with self._server_lock:
            server, self._server, self._server_checked = self._server, None, True
        if server is not None:
            server.close()

    def __enter__(self) -> ProbeRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Inbox:
    """The parent's end of a trial's messages: a pipe whose write end the trial inherits, or
    (``fifo``) a FIFO in a private folder whose path the ranks of a distributed trial open."""

    def __init__(self, *, fifo: bool) -> None:
        self.fifo: str | None = None
        if not fifo:
            self.read_fd, self.write_fd = os.pipe()
            return
        self._folder = tempfile.mkdtemp(prefix="autowarm-trial-")
        self.fifo = os.path.join(self._folder, "channel")
        os.mkfifo(self.fifo, 0o600)
        self.read_fd = os.open(self.fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        # our own writer: no EOF before the ranks open it (the trial's end is the process's)
        self.write_fd = os.open(self.fifo, os.O_WRONLY | os.O_CLOEXEC)

    def started(self) -> None:
        """The trial has started: a pipe's write end is now the child's alone (EOF when it
        is gone)."""
        if self.fifo is None and self.write_fd >= 0:
            os.close(self.write_fd)
            self.write_fd = -1

    def close(self) -> None:
        for fd in (self.read_fd, self.write_fd):
            if fd >= 0:
                os.close(fd)
        self.read_fd = self.write_fd = -1
        if self.fifo is not None:
            shutil.rmtree(self._folder, ignore_errors=True)


class _Devices:
    """The GPUs the trials share: each trial takes the least used ones (its own while there
    are enough) and gives them back when it ends. Fewer than two: nothing is assigned."""

    def __init__(self, ids: list[str]) -> None:
        self._use = dict.fromkeys(ids if len(ids) > 1 else [], 0)
        self._lock = threading.Lock()

    def take(self, n: int) -> list[str]:
        with self._lock:
            chosen = sorted(self._use, key=self._use.__getitem__)[:n]  # stable: lowest first
            for device in chosen:
                self._use[device] += 1
            return chosen

    def give_back(self, ids: list[str]) -> None:
        with self._lock:
            for device in ids:
                self._use[device] -= 1


def _visible_gpus(env: Mapping[str, str]) -> list[str]:
    """The GPU ids trials may use: ``CUDA_VISIBLE_DEVICES`` as the trials would see it, else
    ``torch.cuda.device_count()`` (NVML-based: it does not initialise CUDA here)."""
    text = env.get(_GPUS_ENV)
    if text is not None:
        return [d.strip() for d in text.split(",") if d.strip()]
    try:
        import torch
    except ImportError:
        return []
    return [str(i) for i in range(torch.cuda.device_count())]


class _TrialProcess:
    """The parent's side of one running trial: its messages and how it was stopped."""

    def __init__(
        self,
        spec: TrialSpec,
        proc: subprocess.Popen[bytes] | ForkedProcess,
        read_fd: int,
        timeout: float | None,
        *,
        ranks: int = 0,
    ) -> None:
        self.spec = spec
        self.proc = proc
        self.pid = proc.pid
        self.read_fd = read_fd
        self.ranks = ranks  # a distributed trial's rank count (0: a plain process)
        self.ranks_started = 0
        self.timeout = timeout
        self.started = time.monotonic()
        self.losses: dict[int, float] = {}
        self.grad_norms: dict[int, float] = {}
        self.events: list[dict[str, Any]] = []
        self.final: dict[str, Any] | None = None  # the child's end / exit / crash message
        self.wrapped = False
        self.script_lr: float | None = None
        self.sets_lr = False  # the script's loop sets the LR itself (see _child.py)
        self.trainer: str | None = None  # the framework's trainer, when its callback said so
        self.data: dict[str, int] | None = None  # its training data's size, the same way
        self.scheduler: dict[str, Any] | None = None  # the script's own LR scheduler
        self.optimizer: str | None = None  # the class of the optimizer it built
        self.compile_s = 0.0  # torch.compile's seconds before the first step
        self.script_score: float | None = None  # its autowarm.score_with() value
        self.score_name: str | None = None  # and what the script called it
        self.train_s = 0.0
        self.stop_status: str | None = None  # pruned / timeout / interrupted
        self.stop_reason: str | None = None
        self.pruned_at: int | None = None  # the step whose loss the search pruned on
        self.kill_at: float | None = None
        self._tree: dict[int, tuple[int, int]] = {}  # every descendant seen: pid -> stat
        self._start = None if self.pid is None else process_start(self.pid)
        self._buf = b""

    # -- stopping ----------------------------------------------------------------------------

    def kill_group(self, sig: int) -> None:
        """Signal the trial's process group and every descendant that left it (its own
        session). The trial is a subreaper (see ``_child.become_subreaper``): while it lives,
        all of them are below it; remembered, they are reached after it died too."""
        if self.pid is None:
            return
        if self._start is not None:  # else it is gone already (and its pid maybe reused)
            self._tree.update(descendants(self.pid, self._start))
        kill_processes(self._tree, sig)
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError:  # the group is gone and its id reused elsewhere
            pass

    def stop(self, status: str, reason: str) -> None:
        if self.stop_status is None and self.final is None:
            self.stop_status, self.stop_reason = status, reason
        self.kill_group(signal.SIGTERM)
        if self.kill_at is None:
            self.kill_at = time.monotonic() + _TERM_GRACE_S

    # -- following the child -----------------------------------------------------------------

    def follow(self, on_step: OnStep | None) -> None:
        eof = False
        try:
            while True:
                now = time.monotonic()
                # 1) deadlines: the trial's timeout, then SIGKILL after the SIGTERM grace
                running = self.stop_status is None and self.final is None
                if running and self.timeout is not None and now - self.started > self.timeout:
                    steps = len(self.losses)
                    self.stop("timeout", f"killed after {self.timeout:g} s at step {steps}")
                if self.kill_at is not None and now > self.kill_at:
                    self.kill_group(signal.SIGKILL)
                # 2) read what the child sent
                if not eof:
                    readable, _, _ = select.select([self.read_fd], [], [], _POLL_S)
                    if readable:
                        data = os.read(self.read_fd, 1 << 16)
                        eof = not data
                        self._feed(data, on_step)
                else:
                    _wait(self.proc, _POLL_S)
                # 3) the process is gone: read what is left in the pipe, done
                if self.proc.poll() is not None or getattr(self.proc, "lost", False):
                    while not eof and select.select([self.read_fd], [], [], 0)[0]:
                        data = os.read(self.read_fd, 1 << 16)
                        eof = not data
                        self._feed(data, None)
                    return
                # 4) the child said how it ended: give its `finally:` blocks a moment
                if self.final is not None and self.kill_at is None:
                    self.kill_at = time.monotonic() + _EXIT_GRACE_S
        except BaseException:
            self.kill_group(signal.SIGKILL)
            raise

    def _feed(self, data: bytes, on_step: OnStep | None) -> None:
        self._buf += data
        *lines, self._buf = self._buf.split(b"\n")
        for line in lines:
            if not line:
                continue
            try:
                msg = json.loads(line)
            except ValueError:
                continue  # only the trial's bootstrap writes here; never trust it blindly
            kind = msg.get("t")
            if kind == "step":
                i = int(msg["i"])
                self.losses[i], self.grad_norms[i] = float(msg["loss"]), float(msg["gn"])
                self.train_s = float(msg["s"])
                if msg.get("script_lr") is not None:
                    self.script_lr = float(msg["script_lr"])
                self.compile_s = float(msg.get("compile_s") or self.compile_s)
                running = self.stop_status is None and self.final is None
                if (
                    running
                    and on_step is not None
                    and on_step(i, self.losses[i], self.grad_norms[i])
                ):
                    self.stop("pruned", f"pruned by the search at step {i}")
                    self.pruned_at = i
            elif kind == "event":
                self.events.append(msg["event"])
            elif kind == "wrap":
                self.wrapped = True
            elif kind == "rank":
                self.ranks_started += 1
            elif kind in ("end", "exit", "crash"):
                if self.final is not None and (self.final.get("t") == "end" or msg.get("rank")):
                    # the script caught the end and went on: the end stands; and rank 0's
                    # word, or the first rank's crash, stands over another rank's crash
                    continue
                self.final = msg
                self.wrapped = self.wrapped or bool(msg.get("wrapped"))
                self.train_s = float(msg.get("train_s") or self.train_s)
                if msg.get("script_lr") is not None:
                    self.script_lr = float(msg["script_lr"])
                self.sets_lr = bool(msg.get("sets_lr"))
                self.trainer = msg.get("trainer") or self.trainer
                self.data = msg.get("data") or self.data
                self.scheduler = msg.get("scheduler") or self.scheduler
                self.optimizer = msg.get("optimizer") or self.optimizer
                if msg.get("score") is not None:
                    self.script_score = float(msg["score"])
                    self.score_name = msg.get("score_name")

    # -- the result --------------------------------------------------------------------------

    def result(self, log: bytes) -> TrialResult:
        steps = max(self.losses, default=-1) + 1
        if self.final is not None and "steps" in self.final:
            steps = max(steps, int(self.final["steps"]))
        result = TrialResult(
            "failed",
            steps,
            losses=[self.losses.get(i, math.nan) for i in range(steps)],
            grad_norms=[self.grad_norms.get(i, math.nan) for i in range(steps)],
            events=self.events,
            train_s=self.train_s,
            script_lr=self.script_lr,
            sets_lr=self.sets_lr,
            trainer=self.trainer,
            data=self.data,
            scheduler=self.scheduler,
            optimizer=self.optimizer,
            compile_s=self.compile_s,
            script_score=self.script_score,
            score_name=self.score_name,
        )
        if self.pruned_at is not None:
            # what the child ran into up to the pruned step stands (the same steps' data told
            # the search to prune): an instability read late, with the checkpoint's loss
            unstable = self._instability(upto=self.pruned_at)
            result = _cut(result, self.pruned_at + 1, self.stop_reason)
            if unstable is not None:
                result.status, result.reason = unstable  # type: ignore[assignment]
            return result
        final = self.final or {}
        kind = final.get("t")
        # 1) the child ended the trial itself: reached probe_steps or the monitor was sure
        if kind == "end":
            result.status, result.reason = final["status"], final.get("reason")
            if result.status in FINISHED and not any(math.isfinite(v) for v in result.losses):
                # wrapped, stepped, but report() never called: nothing to score, any LR
                result.status, result.failure = "failed", "no_report"
                result.reason = "it never reported a loss"
            elif result.script_score is not None and not math.isfinite(result.script_score):
                result.status = "diverged"  # the script's own score says what the loss did not
                result.reason = f"autowarm.score_with() gave {result.script_score}"
            return result
        # 2) we stopped it: pruned, timed out, interrupted
        if self.stop_status is not None:
            result.status, result.reason = self.stop_status, self.stop_reason  # type: ignore[assignment]
            return result
        if kind == "crash" and final.get("syntax"):
            result.failure, result.reason = "syntax", final.get("reason")
            return result
        launcher = self._launcher_failure(log) if kind is None else None
        if launcher is not None:
            result.failure, result.reason = "launcher", launcher
            return result
        # 3) it died or stopped early after an instability (its own NaN check, say)
        unstable = self._instability()
        if unstable is not None:
            result.status, result.reason = unstable  # type: ignore[assignment]
            return result
        result.failure, result.reason = self._failure(final, log, steps)
        return result

    def _failure(self, final: dict[str, Any], log: bytes, steps: int) -> tuple[str, str | None]:
        """(failure, reason) of a trial that ended without an instability or a stop."""
        kind = final.get("t")
        # 4) a crash, a bad exit code, a signal
        code = final.get("code") if kind == "exit" else self.proc.poll()
        if kind == "crash":  # the child's own word on what failed, else a crash
            return final.get("failure") or "crash", final.get("reason")
        if getattr(self.proc, "lost", False):
            return "crash", "the fork server died during the trial"
        if code is not None and code < 0:
            return "crash", _signal_reason(-code, log)
        if code:
            last = _last_line(log)
            return "crash", f"the script exited with code {code}" + (f": {last}" if last else "")
        # 5) it ended by itself before the probe length (the fix is the search's to state)
        if not self.wrapped:
            return "no_wrap", "it ended without wrapping an optimizer"
        return "too_short", f"it ran {steps} of the probe's {self.spec.probe_steps} optimizer steps"

    def _launcher_failure(self, log: bytes) -> str | None:
        """Why a distributed trial's launcher failed before every rank started the script
        (port in use, rendezvous error, a rank that could not start); None if they all did."""
        if self.ranks_started >= self.ranks:
            return None
        last = _last_line(log)
        started = f"the launcher failed after {self.ranks_started} of {self.ranks} ranks started"
        return started + (f": {last}" if last else "")

    def _instability(self, upto: int | None = None) -> tuple[str, str] | None:
        """(status, reason) of the first instability the child saw, or None. ``upto``: only
        up to that step, and as the child stops on it (:func:`stops_trial`)."""
        for event in self.events:
            kind, step = event.get("kind"), int(event.get("step", 0))
            if upto is None:
                status = STOPPING_EVENTS.get(str(kind))
            else:
                status = stops_trial(event, self.spec.warmup_steps) if step <= upto else None
            if status is not None:
                return status, f"{kind} at step {step}"
        # a NaN loss is only a real one when the script reports its loss at other steps
        reports_loss = any(math.isfinite(v) for v in self.losses.values())
        for i in sorted(self.losses):
            if upto is not None and i > upto:
                break
            loss, grad_norm = self.losses[i], self.grad_norms[i]
            if math.isinf(loss) or (reports_loss and math.isnan(loss)):
                return "nonfinite", f"loss {loss} at step {i}"
            if not math.isfinite(grad_norm):
                return "nonfinite", f"grad norm {grad_norm} at step {i}"
        return None


def _check_options(
    trial_timeout: float | None, threads: int | None, log_dir: str | None, nproc_per_node: int
) -> None:
    if trial_timeout is not None and not trial_timeout > 0:
        raise AutowarmError(f"trial_timeout must be > 0 seconds but got {trial_timeout}.")
    if threads is not None and threads < 1:
        raise AutowarmError(f"threads must be >= 1 but got {threads}.")
    if log_dir is not None and not os.path.isdir(log_dir):
        raise AutowarmError(f"log_dir must be an existing folder but got {log_dir!r}.")
    if nproc_per_node < 1:
        raise AutowarmError(
            f"nproc_per_node must be >= 1 but got {nproc_per_node}; pass the number of ranks."
        )


def _trial_env(extra: Mapping[str, str] | None, threads: int | None) -> dict[str, str]:
    """This process's environment for the trials, less any stale trial's variables."""
    base = {**os.environ, **(extra or {})}
    for name in (TRIAL_ENV, FD_ENV, FIFO_ENV, PID_ENV):
        base.pop(name, None)
    if threads is not None:
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            base.setdefault(name, str(threads))
    # experiment trackers stay off inside trials (20 probe runs are not 20 experiments); a
    # user who set these variables asked for their own value, which is kept
    for name, value in _TRACKERS_OFF.items():
        base.setdefault(name, value)
    # each trial has a temp folder of its own (TMPDIR, see _scratch.py); what depends on the
    # temp folder the script would have had stays there: the kept-writes rule and
    # torch.compile's cache, which the trials share (torch's default place)
    temp = next((base[n] for n in ("TMPDIR", "TEMP", "TMP") if base.get(n)), None)
    temp = temp or tempfile.gettempdir()
    base[SYSTEM_TEMP_ENV] = temp
    base.setdefault("TORCHINDUCTOR_CACHE_DIR", _inductor_cache(temp))
    return base


#: the longest path of a trial's own temp folder: multiprocessing binds AF_UNIX sockets under
#: it (``pymp-XXXXXXXX/listener-XXXXXXXX``, 32 more characters) and a socket path has at most
#: 104 (macOS; 108 on Linux). Longer: the trial keeps the system's temp folder
_TEMP_MAX = 104 - 32 - 1


def _trial_temp(system_temp: str) -> str | None:
    """A temp folder of the trial's own in ``system_temp`` (None where its path would be too
    long for the sockets made in it, or it cannot be made)."""
    if len(os.path.realpath(system_temp)) + len("/aw-trial-XXXXXXXX") > _TEMP_MAX:
        return None
    try:
        return tempfile.mkdtemp(prefix="aw-trial-", dir=system_temp)
    except OSError:
        return None


def _inductor_cache(temp: str) -> str:
    """torch.compile's default cache folder for the temp folder ``temp``, named as torch's
    ``torch._inductor.runtime.cache_dir_utils.default_cache_dir`` names it (that one reads this
    process's temp folder, not the trial's, so it cannot be called here)."""
    try:
        user = getpass.getuser()
    except (KeyError, ModuleNotFoundError, OSError):
        user = f"uid_{os.getuid()}"
    return os.path.join(temp, "torchinductor_" + re.sub(r'[\\/:*?"<>|]', "_", user))


def _cut(result: TrialResult, steps: int, reason: str | None) -> TrialResult:
    """A pruned trial as the search decided it: its first ``steps`` steps and nothing after.

    The child runs on while the signal travels (a small script may finish, or diverge, before
    it lands); what it did meanwhile is dropped, or the same seed would give another search:
    measured on the quality benchmark's ``edge``, two trials pruned in one run of a search were
    ``diverged`` in the next, which moved its stability boundary and its pick 1.5x."""
    result.status, result.reason, result.steps = "pruned", reason, steps
    result.losses, result.grad_norms = result.losses[:steps], result.grad_norms[:steps]
    result.events = [e for e in result.events if int(e.get("step", 0)) < steps]
    result.script_score = None  # score_with() runs at a trial's end: this one has none
    return result


def _wait(proc: subprocess.Popen[bytes] | ForkedProcess, timeout: float) -> None:
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout)


def _read_lines(path: str) -> list[str]:
    """The non-empty lines of a small text file; none where it is missing."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return [line for line in f.read().splitlines() if line]
    except OSError:
        return []


def _read_log(log: IO[bytes], *, whole: bool) -> bytes:
    """The trial's output: all of it to keep, else its tail (for the reason of a failure)."""
    log.flush()
    size = log.seek(0, os.SEEK_END)
    log.seek(0 if whole else max(0, size - _LOG_TAIL_BYTES))
    return log.read()


def _last_line(log: bytes) -> str | None:
    for line in reversed(log.decode(errors="replace").splitlines()):
        if line.strip():
            return " ".join(line.split())[:400]
    return None


def _signal_reason(signum: int, log: bytes) -> str:
    try:
        name = signal.Signals(signum).name
    except ValueError:
        name = f"signal {signum}"
    hint = " (out of memory?)" if signum == signal.SIGKILL else ""
    last = _last_line(log)
    return f"killed by {name}{hint}" + (f"; last output: {last}" if last else "")


def _read_script(script: str, path: str) -> str:
    if not os.path.exists(path):
        raise AutowarmError(f"script {script!r} does not exist; pass the path of your train.py.")
    if not os.path.isfile(path):
        raise AutowarmError(f"script {script!r} is not a file; pass the path of your train.py.")
    try:
        with open(path, "rb") as f:
            source = f.read()
    except OSError as e:
        raise AutowarmError(f"script {script!r} cannot be read: {e.strerror}.") from None
    try:
        compile(source, path, "exec", dont_inherit=True)
    except SyntaxError as e:
        raise AutowarmError(
            f"script {script!r} has a syntax error at line {e.lineno}: {e.msg}; fix it first."
        ) from None
    except ValueError as e:  # null bytes
        raise AutowarmError(f"script {script!r} is not Python source: {e}.") from None
    return source.decode("utf-8", errors="replace")


def _resolve_python(python: str) -> str:
    found = shutil.which(python) if os.sep not in python else python
    if found is None or not os.path.isfile(found) or not os.access(found, os.X_OK):
        raise AutowarmError(f"python {python!r} is not an executable; pass the interpreter path.")
    return os.path.abspath(found)


def _third_party_imports(source: str, script_path: str, cwd: str) -> list[str]:
    """What the fork server imports once so trials do not pay for it (transformers takes
    seconds): the script's imports of packages that are neither stdlib nor local files, as
    ``"module"`` or ``"module:name,name"`` (``from module import name``: lazy packages such as
    transformers load the submodule behind ``name`` only when it is looked up)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    found: dict[str, list[str]] = {}

    # only imports every run executes: module level, in a top-level `try:` or under
    # `if __name__ == "__main__":` (not `if args.wandb: import wandb`, not inside functions)
    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    found.setdefault(alias.name, [])
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = found.setdefault(node.module, [])
                names.extend(a.name for a in node.names if a.name != "*")
            elif isinstance(node, ast.Try) or (
                isinstance(node, ast.If) and _is_main_guard(node.test)
            ):
                visit(node.body)

    visit(tree.body)
    folders = {os.path.dirname(os.path.realpath(script_path)), cwd}
    stdlib = getattr(sys, "stdlib_module_names", frozenset())
    keep = []
    for module, names in found.items():
        top = module.split(".")[0]
        local = any(
            os.path.exists(os.path.join(d, top + ".py")) or os.path.isdir(os.path.join(d, top))
            for d in folders
        )
        if not local and top not in stdlib and top not in sys.builtin_module_names:
            keep.append(f"{module}:{','.join(dict.fromkeys(names))}" if names else module)
    return keep


def _is_main_guard(test: ast.expr) -> bool:
    return (
        isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
        and len(test.comparators) == 1
        and isinstance(test.comparators[0], ast.Constant)
        and test.comparators[0].value == "__main__"
    )
