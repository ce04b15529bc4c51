"""Several workers on one study: heartbeats for a worker's running trials, and the recovery of
trials whose worker died (killed, its machine gone).

One mechanism for every storage (SQLite, PostgreSQL, journal files): while a trial runs, its
worker rewrites the trial's :data:`HEARTBEAT_ATTR` user attribute (a counter) every
``interval`` seconds from a thread (:class:`Heartbeat`). Every live worker looks at the other
RUNNING trials every ``interval`` seconds (:class:`Watcher`) and judges a trial dead when its
counter has not changed for ``GRACE_BEATS * interval`` seconds of the *watcher's own monotonic
clock*: no wall clocks are compared, so machines whose clocks differ agree. A dead trial is
FAILed and its parameters queued again (:func:`recover`); the storage's FAIL transition raises
for every worker but the first, so it is queued once. A trial of a dead process on this host is
recovered at once (its pid is gone), without waiting for the grace.

Bound: a killed worker's trial is FAILed and re-queued within ``(GRACE_BEATS + 2) * interval``
seconds of its last heartbeat (grace, plus up to one interval for the last beat to be seen and
one for the next look) -- 40 s with the default interval of 5 s.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator

import optuna
from optuna.exceptions import StorageInternalError, UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.exc import SQLAlchemyError  # an Optuna dependency

from autowarm._errors import AutowarmError

#: What a failing storage raises: RDBStorage wraps SQLAlchemy's errors in StorageInternalError
#: (not all of them), a journal file's write fails with OSError ("no space left on device").
STORAGE_ERRORS = (StorageInternalError, SQLAlchemyError, OSError)
#: The trial user attributes: who runs the trial (``host:pid:token``) and its heartbeat counter.
OWNER_ATTR = "owner"
HEARTBEAT_ATTR = "heartbeat"
#: Seconds between two heartbeats (and two looks at the other workers' trials).
HEARTBEAT_S = 5.0
#: A trial whose heartbeat has not changed for this many intervals is dead. Six: a worker
#: whose storage writes stall for half a minute (a busy server) is not taken for dead.
GRACE_BEATS = 6
#: Overrides HEARTBEAT_S (seconds); the tests run with a fraction of a second.
HEARTBEAT_ENV = "AUTOWARM_HEARTBEAT_S"


def heartbeat_interval() -> float:
    raw = os.environ.get(HEARTBEAT_ENV)
    if raw is None:
        return HEARTBEAT_S
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not value > 0 or value == float("inf"):
        raise AutowarmError(f"{HEARTBEAT_ENV}={raw!r} is not a number of seconds > 0; unset it.")
    return value


def new_owner() -> str:
    """This worker's name: host and pid (the same-host fast path), and a token that tells
    apart two searches in one process."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def _dead_here(owner: str) -> bool:
    """The owner is a process on this host that no longer exists."""
    host, _, rest = owner.partition(":")
    pid = rest.split(":", 1)[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def recover(study: optuna.Study, t: FrozenTrial) -> bool:
    """FAIL the dead trial ``t`` and queue its parameters again; False when another worker did
    it first (the FAIL transition of a finished trial raises)."""
    try:
        study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
    except UpdateFinishedTrialError:
        return False
    if "peak_lr" in t.params:  # a held trial without parameters (see ProbeSearch) is dropped
        study.enqueue_trial(dict(t.params), user_attrs={"retry_of": t.number})
    return True


class Heartbeat:
    """Beats for this worker's RUNNING trials, from a daemon thread."""

    def __init__(self, study: optuna.Study, interval: float) -> None:
        self._storage = study._storage
        self.interval = interval
        self._beats: dict[int, int] = {}  # trial id -> beats so far
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def add(self, trial_id: int) -> None:
        with self._lock:
            self._beats[trial_id] = 0

    def remove(self, trial_id: int) -> None:
        with self._lock:
            self._beats.pop(trial_id, None)

    def mine(self) -> set[int]:
        with self._lock:
            return set(self._beats)

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        thread = threading.Thread(target=self._run, name="autowarm-heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            self._stop.set()
            thread.join(timeout=self.interval + 5.0)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                due = [(tid, n + 1) for tid, n in self._beats.items()]
            for tid, n in due:
                try:
                    self._storage.set_trial_user_attr(tid, HEARTBEAT_ATTR, n)
                except UpdateFinishedTrialError:  # told meanwhile, or failed by a watcher
                    self.remove(tid)
                    continue
                except STORAGE_ERRORS:  # "database is locked": the next beat tries again (a
                    continue  # storage that stays down stops the search from the main thread)
                with self._lock:
                    if tid in self._beats:
                        self._beats[tid] = n


class Watcher:
    """Looks at the other workers' RUNNING trials every ``interval`` seconds and recovers the
    dead ones (see the module's docstring)."""

    def __init__(self, study: optuna.Study, heartbeat: Heartbeat) -> None:
        self.study = study
        self.heartbeat = heartbeat
        self.grace = GRACE_BEATS * heartbeat.interval
        self._seen: dict[int, tuple[object, float]] = {}  # trial id -> (beat, unchanged since)
        self._next = 0.0

    def poll(self) -> list[int]:
        """The numbers of the trials this call recovered (rate-limited: [] between looks)."""
        now = time.monotonic()
        if now < self._next:
            return []
        self._next = now + self.heartbeat.interval
        mine = self.heartbeat.mine()
        running = self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        seen: dict[int, tuple[object, float]] = {}
        recovered = []
        for t in running:
            if t._trial_id in mine:
                continue
            beat = t.user_attrs.get(HEARTBEAT_ATTR)
            old = self._seen.get(t._trial_id)
            since = old[1] if old is not None and old[0] == beat else now
            seen[t._trial_id] = (beat, since)
            dead = now - since > self.grace or _dead_here(str(t.user_attrs.get(OWNER_ATTR, "")))
            if dead and recover(self.study, t):
                recovered.append(t.number)
        self._seen = seen
        return recovered
