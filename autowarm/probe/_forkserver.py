"""A fork server: pay the interpreter start and ``import torch`` once, not once per trial.

The server is a long-lived process started with the user's Python in the user's working
directory. It imports torch (with torch._dynamo, which building the first optimizer imports:
about 1 s of its own), numpy, autowarm and the third-party packages every run of the script
imports, freezes those objects out of the GC (fewer copy-on-write pages per child), then forks
one child per trial. Each child becomes its own session
(``setsid``: its own process group, so the runner can kill it with its DataLoader workers),
points stdin at /dev/null and stdout/stderr at the trial's log, sets the trial's environment
and runs the script like ``python script.py args`` (:func:`autowarm.probe._child.run_script`).

Forking after ``import torch`` is safe as long as the server never runs a torch op (no
intra-op thread pool, no CUDA context): the server checks that CUDA is not initialised and
that no preloaded package started threads beyond the baseline other than OpenBLAS pools
(numpy's, scipy's via sklearn) and jemalloc's background thread (pyarrow's: HF ``datasets``),
which stop themselves around a fork; if one did, the runner restarts it with the baseline
imports only. Seeds: the server seeds nothing; every trial, forked or not, seeds Python's
``random``, numpy and torch with the search's seed (``_child.seed_trial``).

Parent <-> server: a Unix socketpair of JSON datagrams. Parent: ``{"id", "script", "args",
"cwd", "env"}`` with two fds attached (the trial's log and its channel's write end). Server:
``{"ready": true}`` once, then ``{"id", "pid"}`` per fork and ``{"id", "exit"}`` (Popen-style
return code: negative for a signal) when it reaps the child. When the parent goes away, the
server kills every trial it started and exits.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import select
import signal
import socket
import subprocess
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from autowarm.probe._child import become_subreaper, descendants, kill_processes

_BASELINE = ("torch", "autowarm", "autowarm.probe._child")
# imported when present: creating the first optimizer imports torch._dynamo (~1 s)
_OPTIONAL = ("numpy", "torch.optim", "torch._dynamo")
_MAX_MSG = 1 << 20
_START_TIMEOUT_S = 60.0  # a fork takes milliseconds: a server this slow is stuck


def _socketpair() -> tuple[socket.socket, socket.socket]:
    # SEQPACKET keeps message boundaries and reports EOF when the peer dies (Linux);
    # DGRAM keeps boundaries everywhere (peer death is then noticed by polling the process).
    try:
        return socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    except (OSError, AttributeError):
        return socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)


def _thread_count() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return threading.active_count()


#: threads that quiesce themselves around a fork (``pthread_atfork``): jemalloc's background
#: purger, which pyarrow -- so HF ``datasets`` -- starts when it loads (Redis forks under it for
#: every snapshot); without it an HF script's imports are paid again by every trial
_FORK_SAFE_THREADS = frozenset({"jemalloc_bg_thd"})


def _fork_safe_threads() -> int:
    """Threads of this process named in ``_FORK_SAFE_THREADS`` (0 where that cannot be read)."""
    try:
        tasks = os.listdir("/proc/self/task")
        names = [Path(f"/proc/self/task/{t}/comm").read_text().strip() for t in tasks]
    except OSError:
        return 0
    return sum(name in _FORK_SAFE_THREADS for name in names)


def _blas_workers() -> int:
    """Worker threads of the OpenBLAS libraries loaded now (numpy's, scipy's: ``import
    sklearn`` loads a second one). OpenBLAS stops its pool before a fork and restarts it after
    (``pthread_atfork``), so these threads are safe; counted with threadpoolctl where present."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return 0
    try:
        libs = threadpool_info()
    except Exception:
        return 0
    return sum(
        max(0, int(lib.get("num_threads") or 1) - 1)
        for lib in libs
        if lib.get("internal_api") == "openblas"
    )


# ---------------------------------------------------------------------------------------------
# server side (runs in the user's Python)


def serve(sock_fd: int, preload: Sequence[str]) -> None:
    sock = socket.socket(fileno=sock_fd)

    def send(msg: dict) -> None:
        with contextlib.suppress(OSError):
            sock.send(json.dumps(msg).encode())

    # 1) the imports every trial would pay for
    loaded = _preload(preload, send)
    if loaded is None:
        return
    # 2) SIGCHLD wakes the select loop through a pipe: reap children as they exit
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # what a dead trial leaves behind outside its process group comes to us, to be ended
    become_subreaper()
    # everything imported so far lives on: keep the children's GC from touching (and so
    # copying) those pages
    gc.collect()
    gc.freeze()
    send({"ready": True, "pid": os.getpid(), "preloaded": loaded})
    _serve_forks(sock, send, (wake_r, wake_w))


def _preload(preload: Sequence[str], send: Callable[[dict], None]) -> list[str] | None:
    """Import what every trial needs; None (after saying why) when forking would be unsafe."""
    for name in _BASELINE:
        importlib.import_module(name)
    for name in _OPTIONAL:
        with contextlib.suppress(Exception):
            importlib.import_module(name)
    baseline_threads = _thread_count()
    baseline_safe = _blas_workers() + _fork_safe_threads()
    loaded = []
    for item in preload:  # "module" or "module:name,name" (see _runner._third_party_imports)
        module, _, names = item.partition(":")
        try:
            imported = importlib.import_module(module)
            for name in filter(None, names.split(",")):
                with contextlib.suppress(Exception):
                    getattr(imported, name)  # lazy packages import the submodule now
        except Exception:
            continue  # the script will fail on it itself, with its own traceback
        extra = _thread_count() - baseline_threads
        if extra > 0 and extra > _blas_workers() + _fork_safe_threads() - baseline_safe:
            send({"unsafe": f"importing {item!r} started a thread"})
            return None
        loaded.append(item)
    import torch

    if torch.cuda.is_initialized():
        send({"unsafe": "CUDA was initialised by an import"})
        return None
    return loaded


def _serve_forks(sock: socket.socket, send: Callable[[dict], None], wake: tuple[int, int]) -> None:
    """Fork a trial per request; report each one's pid and exit code; die with the parent."""
    ids: dict[int, int] = {}  # pid -> request id
    while True:
        readable, _, _ = select.select([sock, wake[0]], [], [], 1.0)
        if wake[0] in readable:
            with contextlib.suppress(BlockingIOError):
                os.read(wake[0], 4096)
        if sock in readable:
            try:
                data, fds, _, _ = socket.recv_fds(sock, _MAX_MSG, 4)
            except OSError:
                data, fds = b"", []
            if not data:  # 3) the parent is gone: take every trial down with it
                for pid in ids:
                    with contextlib.suppress(OSError):
                        os.killpg(pid, signal.SIGKILL)
                os._exit(0)  # no interpreter teardown: nothing to save, torch is slow to unload
            req = json.loads(data)
            pid = _fork_trial(req, fds, sock, wake)
            ids[pid] = req["id"]
            send({"id": req["id"], "pid": pid})
        _reap(ids, send)


def _reap(ids: dict[int, int], send: Callable[[dict], None]) -> None:
    """Report each trial that exited; end the orphans its death handed to us (a subreaper)."""
    reaped = False
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
        reaped = True
        if pid in ids:
            send({"id": ids.pop(pid), "exit": os.waitstatus_to_exitcode(status)})
    if reaped:  # each killed orphan is reaped here in turn, and hands us its own children
        me = os.getpid()
        orphans = {p: s for p, s in descendants(me).items() if s[0] == me and p not in ids}
        kill_processes(orphans, signal.SIGKILL)


def _fork_trial(req: dict, fds: list[int], sock: socket.socket, wake: tuple[int, int]) -> int:
    log_fd, chan_fd = fds
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid:
        # wait until the child is its own session, so that killpg(pid) reaches it at once
        os.close(ready_w)
        os.read(ready_r, 1)
        os.close(ready_r)
        os.close(log_fd)
        os.close(chan_fd)
        return pid
    code = 1
    try:
        os.setsid()
        os.close(ready_r)
        os.write(ready_w, b"x")
        os.close(ready_w)
        # 1) undo the server's process state
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        sock.close()
        for fd in wake:
            os.close(fd)
        # 2) stdio: nothing to read, everything written goes to the trial's log
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.close(log_fd)
        # 3) what `cd cwd && env ... python script.py args` would have
        os.chdir(req["cwd"])
        os.environ.update(req["env"])
        os.environ["AUTOWARM_TRIAL_FD"] = str(chan_fd)
        threads = os.environ.get("OMP_NUM_THREADS", "")
        if threads.isdigit() and int(threads) > 0:
            import torch

            torch.set_num_threads(int(threads))
        from autowarm.probe._child import run_script

        code = run_script(req["script"], req["args"])
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        os._exit(code)


# ---------------------------------------------------------------------------------------------
# parent side


class ForkedProcess:
    """A trial forked by the server: ``pid``, ``poll()`` and ``wait()`` like ``Popen``."""

    def __init__(self) -> None:
        self.pid: int | None = None
        self.returncode: int | None = None
        self.lost = False  # the server died before reporting the exit
        self._started = threading.Event()
        self._exited = threading.Event()

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int | None:
        self._exited.wait(timeout)
        return self.returncode


class ForkServerError(RuntimeError):
    pass


class ForkServer:
    """Parent-side handle of a running fork server."""

    def __init__(
        self,
        python: str,
        cwd: str,
        env: Mapping[str, str],
        preload: Sequence[str] = (),
    ) -> None:
        self._sock, child_sock = _socketpair()
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
        code = (
            "import sys; from autowarm.probe._forkserver import serve; "
            "serve(int(sys.argv[1]), sys.argv[2:])"
        )
        try:
            self._proc = subprocess.Popen(
                [python, "-c", code, str(child_sock.fileno()), *preload],
                cwd=cwd,
                env=dict(env),
                pass_fds=(child_sock.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=self._log,
                start_new_session=True,  # the user's Ctrl-C is for the search, not for us
            )
        finally:
            child_sock.close()
        self._lock = threading.Lock()
        self._next_id = 0
        self._children: dict[int, ForkedProcess] = {}
        self._ready = threading.Event()
        self.error: str | None = None  # why the server is not usable
        self.unsafe = False  # a preloaded import made forking unsafe
        self.dead = False
        self.preloaded: list[str] = []  # the script's packages the server imported
        self._closing = False
        # the reader owns the socket's lifetime: close() shuts it down (the reader sees EOF),
        # joins the reader and only then closes the fd, so no recv ever runs on a closed or
        # reused descriptor
        self._sock.settimeout(0.5)
        self._reader = threading.Thread(target=self._read, name="autowarm-forkserver", daemon=True)
        self._reader.start()

    def wait_ready(self, timeout: float = 120.0) -> bool:
        self._ready.wait(timeout)
        if not self._ready.is_set():
            self.error = self.error or f"the fork server did not start in {timeout:g} s"
            self.close()
        return self.error is None

    def _read(self) -> None:
        while True:
            try:
                data = self._sock.recv(_MAX_MSG)
            except TimeoutError:
                if self._proc.poll() is None and not self._closing:
                    continue
                data = b""
            except OSError:
                data = b""
            if not data:
                break
            try:
                msg = json.loads(data)
            except ValueError:
                continue
            if msg.get("ready"):
                self.preloaded = list(msg.get("preloaded", []))
                self._ready.set()
            elif "unsafe" in msg:
                self.error, self.unsafe = msg["unsafe"], True
                self._ready.set()
            elif "pid" in msg:
                with self._lock:
                    child = self._children.get(msg["id"])
                if child is not None:
                    child.pid = msg["pid"]
                    child._started.set()
            elif "exit" in msg:
                with self._lock:
                    child = self._children.pop(msg["id"], None)
                if child is not None:
                    child.returncode = msg["exit"]
                    child._exited.set()
        # the server is gone: whoever waits on it must not wait forever
        self.dead = True
        if not self._ready.is_set():
            self.error = self.error or self._startup_error()
            self._ready.set()
        with self._lock:
            children, self._children = list(self._children.values()), {}
        for child in children:
            child.lost = True
            child._started.set()
            child._exited.set()

    def _startup_error(self) -> str:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(5)
        try:
            self._log.seek(0)
            text = self._log.read().decode(errors="replace")
        except (OSError, ValueError):  # closed meanwhile
            text = ""
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        last = lines[-1] if lines else f"exit code {self._proc.returncode}"
        return f"the fork server exited: {last}"

    def start(
        self,
        script: str,
        args: Sequence[str],
        *,
        cwd: str,
        env: Mapping[str, str],
        log_fd: int,
        chan_fd: int,
    ) -> ForkedProcess:
        """Fork one trial. ``env`` holds only the variables to add to the server's own."""
        child = ForkedProcess()
        with self._lock:
            if self.dead:
                raise ForkServerError("the fork server is not running")
            self._next_id += 1
            req_id = self._next_id
            self._children[req_id] = child
            msg = {"id": req_id, "script": script, "args": list(args), "cwd": cwd, "env": dict(env)}
            try:
                socket.send_fds(self._sock, [json.dumps(msg).encode()], [log_fd, chan_fd])
            except OSError as e:
                self._children.pop(req_id, None)
                raise ForkServerError(f"the fork server is not running: {e}") from None
        if not child._started.wait(_START_TIMEOUT_S):
            self.close()  # a stuck server: closing it kills whatever it still forks
            raise ForkServerError(f"the fork server did not answer in {_START_TIMEOUT_S:g} s")
        if child.pid is None:
            raise ForkServerError("the fork server died while starting a trial")
        return child

    def close(self) -> None:
        with self._lock:
            if self._closing:
                return
            self._closing = True
        # EOF to the server (it kills its trials and exits) and to our reader
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        try:
            self._proc.wait(5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                os.killpg(self._proc.pid, 9)
            self._proc.wait()
        if self._reader is not threading.current_thread():
            self._reader.join(timeout=10)
        self._sock.close()
        self._log.close()
        self.dead = True
