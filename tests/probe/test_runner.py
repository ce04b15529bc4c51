"""ProbeRunner end to end: real trial processes of tests/scripts_runner/train.py.

Most tests share one fork-server runner (module fixture) and pick the script's behaviour by
rewriting its ``--config`` JSON before each trial; a few start their own runner (spawn mode,
interrupt, fallback).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from autowarm import Recipe
from autowarm._errors import AutowarmError
from autowarm.probe._forkserver import ForkServer
from autowarm.probe._runner import ProbeRunner, _Devices, _third_party_imports, _visible_gpus
from autowarm.probe._types import TrialResult, TrialSpec

pytestmark = pytest.mark.skipif(os.name != "posix", reason="process groups are POSIX")

SCRIPTS = Path(__file__).parent / "scripts_runner"
TRAIN = str(SCRIPTS / "train.py")


class Script:
    """A runner of train.py whose behaviour each test sets through the config file."""

    def __init__(self, folder: Path, **kwargs: Any) -> None:
        self.config = folder / "config.json"
        self.log = folder / "lr.jsonl"
        self.config.write_text("{}")
        self.runner = ProbeRunner(TRAIN, ["--config", str(self.config)], **kwargs)

    def run(self, spec: TrialSpec, on_step: Any = None, **config: Any) -> TrialResult:
        self.log.unlink(missing_ok=True)
        self.config.write_text(json.dumps({"log": str(self.log), **config}))
        return self.runner.run(spec, on_step=on_step)

    def logged(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.read_text().splitlines()]


@pytest.fixture(scope="module")
def script(tmp_path_factory: pytest.TempPathFactory) -> Script:
    s = Script(tmp_path_factory.mktemp("runner"), trial_timeout=60)
    yield s
    s.runner.close()


def spec(
    peak_lr: float = 0.05, warmup_steps: int = 10, probe_steps: int = 30, number: int = 0, **kw: Any
) -> TrialSpec:
    return TrialSpec(
        number=number, peak_lr=peak_lr, warmup_steps=warmup_steps, probe_steps=probe_steps, **kw
    )


def test_uses_the_fork_server(script: Script) -> None:
    assert script.runner.mode == "forkserver", script.runner.fallback_reason
    # third-party, not stdlib (autowarm is local here: the repo is the cwd); sklearn's import
    # starts scipy's OpenBLAS threads, which are fork-safe: still preloaded
    assert script.runner._get_server().preloaded == ["torch", "sklearn.datasets:make_regression"]


def test_a_package_that_starts_a_thread_at_import_is_not_preloaded(tmp_path: Path) -> None:
    # forking a process with extra threads can deadlock the child: the server imports the
    # script's packages only while none of them starts one, else it restarts without them
    site = tmp_path / "site"
    for name, body in [("quietpkg", "X = 1\n"), ("threadpkg", THREAD_AT_IMPORT)]:
        (site / name).mkdir(parents=True)
        (site / name / "__init__.py").write_text(body)
    (tmp_path / "proj").mkdir()
    train = tmp_path / "proj" / "train.py"
    train.write_text("import quietpkg\nimport threadpkg\n" + TRAIN_LOOP)
    with ProbeRunner(str(train), env={"PYTHONPATH": str(site)}) as runner:
        assert runner.mode == "forkserver"
        assert runner._get_server().preloaded == []
        result = runner.run(spec(probe_steps=20))
    assert (result.status, result.steps) == ("stable", 20)


JEMALLOC_THREAD = """\
import os, pyarrow
names = [open(f"/proc/self/task/{t}/comm").read().strip() for t in os.listdir("/proc/self/task")]
print("jemalloc_bg_thd" in names)
"""


def test_pyarrows_jemalloc_thread_does_not_stop_the_preload(tmp_path: Path) -> None:
    # pyarrow (HF datasets' backend) starts jemalloc's background thread when it loads; it
    # quiesces itself around a fork, so the script's imports are still preloaded, and the
    # forked trials allocate through jemalloc
    pytest.importorskip("pyarrow")
    out = subprocess.run([sys.executable, "-c", JEMALLOC_THREAD], capture_output=True, text=True)
    if out.stdout.strip() != "True":
        pytest.skip("this pyarrow starts no jemalloc background thread")
    train = tmp_path / "train.py"
    allocate = "    pyarrow.array(list(range(10_000)))  # jemalloc in the forked child\n"
    loop = TRAIN_LOOP.replace("    opt.step()\n", "    opt.step()\n" + allocate)
    train.write_text("import pyarrow\n" + loop)
    with ProbeRunner(str(train)) as runner:
        assert runner.mode == "forkserver", runner.fallback_reason
        assert runner._get_server().preloaded == ["pyarrow", "torch"]
        results = [runner.run(spec(probe_steps=20, number=n)) for n in range(3)]
    assert [(r.status, r.steps) for r in results] == [("stable", 20)] * 3


THREAD_AT_IMPORT = """\
import threading, time
threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
"""
TRAIN_LOOP = """\
import torch, autowarm
model = torch.nn.Linear(4, 1)
opt = autowarm.wrap(torch.optim.SGD(model.parameters(), lr=0.01))
x = torch.ones(8, 4)
for _ in range(100):
    loss = model(x).pow(2).mean()
    opt.zero_grad()
    loss.backward()
    opt.report(loss)
    opt.step()
"""


def test_stable_trial_reaches_the_probe_length(script: Script) -> None:
    result = script.run(spec(probe_steps=30))
    assert (result.status, result.failure, result.steps) == ("stable", None, 30)
    assert len(result.losses) == len(result.grad_norms) == 30
    assert all(math.isfinite(v) for v in result.losses + result.grad_norms)
    assert result.losses[-1] < result.losses[0]
    assert 0 < result.train_s < result.wall_s
    assert result.script_lr == pytest.approx(0.05)
    # the trial ended inside the 30th step(): its effective LR was never logged
    assert len(script.logged()) == 29


def test_batched_monitor_reads_report_every_step(script: Script) -> None:
    # on an accelerator the monitor reads its numbers in batches (one host sync each): the
    # trial still reports every step, in order, with the same values
    eager = script.run(spec(probe_steps=60))
    lazy = script.run(spec(probe_steps=60), lazy_monitor=True)
    assert (lazy.status, lazy.steps) == (eager.status, 60)
    assert lazy.losses == eager.losses and lazy.grad_norms == eager.grad_norms
    unstable = script.run(spec(peak_lr=1e12, warmup_steps=0, probe_steps=60), lazy_monitor=True)
    assert unstable.status == "nonfinite" and unstable.steps < 60


@pytest.mark.parametrize(
    ("sched", "split"),
    [
        ("none", False),
        ("lambda", False),
        ("early", False),  # a LambdaLR created before wrapping: LR 0 when wrapped
        ("nanogpt", False),
        ("both", False),
        ("both", True),
    ],
)
def test_forced_lr_wins_over_the_scripts_schedule_and_keeps_group_ratios(
    script: Script, sched: str, split: bool
) -> None:
    # split: two wrapped optimizers, the second one stepping first; the first one wrapped
    # sets the reference LR for both (and reports the steps)
    s = spec(peak_lr=0.2, warmup_steps=8, probe_steps=25, decay="cosine", min_lr_ratio=0.1)
    result = script.run(s, sched=sched, split=split)
    assert result.status in ("stable", "spike")
    recipe = Recipe(0.2, 8, 25, decay="cosine", min_lr_ratio=0.1)
    rows = script.logged()
    assert [r["step"] for r in rows] == list(range(24))
    for row in rows:  # effective LR of each SGD update, recovered from the parameter change
        expected = recipe.lr_at(row["step"])
        assert row["lr"][0] == pytest.approx(expected, rel=1e-4)
        assert row["lr"][1] == pytest.approx(0.1 * expected, rel=1e-4)
    # the script's own LR: its scheduler's base (LambdaLR set LR 0 at step 0) or its own
    assert result.script_lr == pytest.approx(0.05)


def test_nan_at_high_lr_stops_at_once(script: Script) -> None:
    result = script.run(spec(peak_lr=1e12, warmup_steps=0, probe_steps=50))
    assert result.status == "nonfinite"
    assert result.steps < 10
    assert "nonfinite" in result.reason
    assert any(e["kind"] == "nonfinite" for e in result.events)


@pytest.mark.parametrize(
    ("peak_lr", "warmup_steps", "status", "steps"),
    [
        (1e-7, 50, "stalled", 100),  # no progress 50 steps after its warmup: stopped
        (1e-7, 150, "stalled", 200),  # stall inside the warmup: judged at the end, still none
        (0.002, 190, "stable", 300),  # a long warmup slow to start, then progress: not stalled
    ],
)
def test_a_stall_inside_the_warmup_does_not_stop_the_trial(
    script: Script, peak_lr: float, warmup_steps: int, status: str, steps: int
) -> None:
    probe_steps = 300 if warmup_steps > 150 else 200
    result = script.run(spec(peak_lr, warmup_steps, probe_steps), steps=1000)
    assert (result.status, result.steps) == (status, steps)
    assert [e["kind"] for e in result.events] == ["stall"]  # the monitor saw one each time


def test_every_trial_starts_from_the_searchs_random_state_forked_or_not(tmp_path: Path) -> None:
    # pytorch/examples' imagenet seeds nothing: forked trials shared the fork server's torch
    # state (another at every search), fresh interpreters drew one each
    script = str(SCRIPTS / "unseeded.py")

    def first_losses(seed: int, forkserver: bool) -> list[float]:
        with ProbeRunner(script, cwd=str(tmp_path), seed=seed, forkserver=forkserver) as r:
            return [r.run(spec(lr, 0, 3, number=i)).losses[0] for i, lr in enumerate((0.01, 0.1))]

    forked, fresh = first_losses(7, True), first_losses(7, False)
    assert forked[0] == forked[1] == fresh[0] == fresh[1]  # the same init, data and noise
    assert first_losses(8, True)[0] != forked[0]  # another seed, another random state


def test_a_subprocess_that_wraps_an_optimizer_neither_reports_nor_breaks(
    script: Script, tmp_path: Path
) -> None:
    out = tmp_path / "sub_steps"
    result = script.run(spec(probe_steps=20), sub_train=str(out))
    assert (result.status, result.steps) == ("stable", 20)
    assert len(result.losses) == 20 and all(math.isfinite(v) for v in result.losses)
    assert out.read_text() == "3"  # ran its own 3 steps (with the trial's LR), not stopped


def test_crash_reports_the_exception_in_one_line(
    script: Script, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(script.runner, "log_dir", str(tmp_path))
    result = script.run(spec(number=7), crash_at=3)
    assert (result.status, result.failure, result.steps) == ("failed", "crash", 3)
    assert result.reason.startswith("RuntimeError: boom at step 3 (train.py, line ")
    assert "\n" not in result.reason
    log = (tmp_path / "trial-7.log").read_text()  # the whole traceback is kept there
    assert "Traceback (most recent call last)" in log and "boom at step 3" in log


def test_killed_by_a_signal(script: Script) -> None:
    result = script.run(spec(), abort_at=2)
    assert (result.status, result.failure, result.steps) == ("failed", "crash", 2)
    assert result.reason.startswith("killed by SIGABRT")


def test_hang_is_killed_after_the_trial_timeout(
    script: Script, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(script.runner, "trial_timeout", 1.5)
    result = script.run(spec(), hang_at=4)
    assert (result.status, result.steps) == ("timeout", 4)
    assert "1.5 s" in result.reason
    assert 1.5 <= result.wall_s < 6


def test_script_that_never_wraps(script: Script) -> None:
    result = script.run(spec(), no_wrap=True)
    assert (result.status, result.failure, result.steps) == ("failed", "no_wrap", 0)
    # the fact; the search states the fix, once (issue 14 case 13)
    assert result.reason == "it ended without wrapping an optimizer"


def test_script_that_ends_before_the_probe_length(script: Script) -> None:
    result = script.run(spec(probe_steps=30), steps=12)
    assert (result.status, result.failure, result.steps) == ("failed", "too_short", 12)
    assert result.reason == "it ran 12 of the probe's 30 optimizer steps"


@pytest.mark.parametrize("config", [{"finally_raise": True}, {"swallow": True}])
def test_the_end_of_the_probe_survives_the_scripts_error_handling(
    script: Script, config: dict[str, Any]
) -> None:
    # `finally: raise ...` and `except BaseException: pass` around step() do not turn the
    # planned end into a crash, nor let the trial train past the probe length
    result = script.run(spec(probe_steps=20), **config)
    assert (result.status, result.steps) == ("stable", 20)
    after_end = [r["lr"] for r in script.logged() if r["step"] >= 20]
    assert all(lr == [0.0, 0.0] for lr in after_end)  # step() no longer updates anything


def test_on_step_streams_steps_and_prunes(script: Script) -> None:
    seen: list[tuple[int, float, float]] = []

    def on_step(step: int, loss: float, grad_norm: float) -> bool:
        seen.append((step, loss, grad_norm))
        return step == 5

    result = script.run(spec(probe_steps=400), on_step=on_step, sleep=0.01)
    assert result.status == "pruned"
    assert "step 5" in result.reason
    assert 6 <= result.steps < 400
    assert [s for s, _, _ in seen] == list(range(6))  # not called again once pruned
    assert [loss for _, loss, _ in seen] == result.losses[:6]


def test_a_pruned_trial_ends_where_it_was_pruned_whatever_the_child_did_after(
    script: Script,
) -> None:
    # the child runs on while the search decides and the signal travels; a small script
    # finishes (or diverges) first. The decision stands, on the steps it was made on: else the
    # same seed gives another search
    def on_step(step: int, loss: float, grad_norm: float) -> bool:
        if step == 3:
            time.sleep(1.0)  # meanwhile the child runs its 20 steps and ends "stable"
            return True
        return False

    result = script.run(spec(probe_steps=20), on_step=on_step)
    assert (result.status, result.steps, len(result.losses)) == ("pruned", 4, 4)
    assert "step 3" in (result.reason or "")
    assert all(math.isfinite(v) for v in result.losses)


def test_a_pruned_trial_keeps_an_instability_seen_up_to_the_pruned_step(script: Script) -> None:
    # NaN from step 2, read with step 3 (the monitor reads 16 steps at a time): the search
    # prunes at step 3 on that same batch of steps; the NaN happened first and stands
    def on_step(step: int, loss: float, grad_norm: float) -> bool:
        return step == 3

    result = script.run(spec(probe_steps=60), on_step=on_step, nan_from=2, lazy_monitor=True)
    assert (result.status, result.steps) == ("nonfinite", 4), result.reason
    # after the pruned step nothing counts: NaN from step 40 on, pruned at 3, is "pruned"
    result = script.run(spec(probe_steps=60), on_step=on_step, nan_from=40, lazy_monitor=True)
    assert (result.status, result.steps) == ("pruned", 4), result.reason


def test_the_child_sends_an_instability_before_the_steps_read_with_it(
    script: Script, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the search prunes on a step's loss and kills the trial: an instability found up to that
    # step must already be in the pipe, or the kill can land between the child's two writes
    from autowarm.probe import _runner

    chunks: list[bytes] = []
    feed = _runner._TrialProcess._feed

    def spy(self: Any, data: bytes, on_step: Any) -> None:
        chunks.append(data)
        feed(self, data, on_step)

    monkeypatch.setattr(_runner._TrialProcess, "_feed", spy)
    result = script.run(spec(probe_steps=40), nan_from=2, lazy_monitor=True)
    assert result.status == "nonfinite"
    lines = b"".join(chunks).split(b"\n")
    messages = [json.loads(line) for line in lines if line.startswith(b"{")]
    first = next(i for i, m in enumerate(messages) if m.get("t") == "event")
    at = int(messages[first]["event"]["step"])
    assert all(m["i"] < at for m in messages[:first] if m.get("t") == "step")
    assert any(m.get("t") == "step" and m["i"] >= at for m in messages[first:])


def test_an_error_in_on_step_kills_the_trial_and_propagates(script: Script, tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"

    def on_step(step: int, loss: float, grad_norm: float) -> None:
        if step == 2:
            raise ValueError("bug in the search")

    with pytest.raises(ValueError, match="bug in the search"):
        script.run(spec(probe_steps=10_000), on_step, spawn_child=str(pidfile), steps=10_000)
    assert _gone(int(pidfile.read_text()))


def test_concurrent_runs_do_not_mix(script: Script) -> None:
    specs = [spec(peak_lr=0.02, probe_steps=40), spec(peak_lr=0.3, probe_steps=40)]
    script.config.write_text(json.dumps({"sleep": 0.005}))
    alone = [script.runner.run(s) for s in specs]
    together: list[TrialResult | None] = [None, None]

    def work(i: int) -> None:
        together[i] = script.runner.run(specs[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for a, b in zip(alone, together):
        assert b is not None and (b.status, b.steps) == (a.status, 40)
        assert b.losses == a.losses  # same seed, same LR: the same run
    assert alone[0].losses != alone[1].losses


def test_each_running_trial_gets_its_own_gpu(tmp_path: Path) -> None:
    # issue 13: --jobs 2 on a machine with GPUs 3 and 5 visible: one each, given back after
    s = Script(tmp_path, env={"CUDA_VISIBLE_DEVICES": "3,5"})
    seen = tmp_path / "cuda.txt"
    try:
        s.config.write_text(json.dumps({"sleep": 0.02, "cuda_out": str(seen)}))
        threads = [
            threading.Thread(target=s.runner.run, args=(spec(number=i, probe_steps=40),))
            for i in range(2)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sorted(seen.read_text().split()) == ["3", "5"]
        seen.unlink()
        assert s.run(spec(probe_steps=12), cuda_out=str(seen)).status == "stable"
        assert seen.read_text().split() == ["3"]  # both were given back
    finally:
        s.runner.close()


def test_gpus_are_shared_evenly_and_one_gpu_is_left_alone() -> None:
    gpus = _Devices(["0", "1"])
    assert [gpus.take(1) for _ in range(3)] == [["0"], ["1"], ["0"]]  # 3 trials, 2 GPUs
    gpus.give_back(["0"])
    gpus.give_back(["0"])
    assert gpus.take(2) == ["0", "1"]  # a 2-rank trial: the least used first
    assert _Devices(["0"]).take(1) == []  # one GPU: the trial sees it as the user set it
    assert _visible_gpus({"CUDA_VISIBLE_DEVICES": " 2, 7 "}) == ["2", "7"]
    assert _visible_gpus({"CUDA_VISIBLE_DEVICES": ""}) == []


def test_spawn_mode_forces_the_lr_too(tmp_path: Path) -> None:
    s = Script(tmp_path, forkserver=False)
    try:
        assert s.runner.mode == "spawn"
        result = s.run(spec(peak_lr=0.1, warmup_steps=5, probe_steps=12), sched="both")
    finally:
        s.runner.close()
    assert (result.status, result.steps) in {("stable", 12), ("spike", 12)}
    recipe = Recipe(0.1, 5, 12, decay="constant")
    assert [r["lr"][0] for r in s.logged()] == pytest.approx(
        [recipe.lr_at(i) for i in range(11)], rel=1e-4
    )


def _gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] in "ZX":
                    return True  # a zombie waiting for init to reap it: dead
        except FileNotFoundError:
            return True
        except OSError:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("forkserver", [True, False], ids=["forkserver", "spawn"])
def test_interrupt_kills_the_trials_process_group(tmp_path: Path, forkserver: bool) -> None:
    pidfile, workerfile = tmp_path / "child.pid", tmp_path / "workers.pid"
    s = Script(tmp_path, forkserver=forkserver)
    started = threading.Event()
    results: list[TrialResult] = []

    def on_step(step: int, loss: float, grad_norm: float) -> None:
        started.set()

    def work() -> None:
        cfg = {
            "spawn_child": str(pidfile),
            "workers": 1,
            "worker_pids": str(workerfile),
            "sleep": 0.05,
            "steps": 10_000,
        }
        results.append(s.run(spec(probe_steps=10_000), on_step=on_step, **cfg))

    thread = threading.Thread(target=work)
    thread.start()
    server = s.runner._get_server()
    try:
        assert started.wait(60), "the trial never stepped"
        child, worker = int(pidfile.read_text()), int(workerfile.read_text())
        assert not _gone(child, 0.1) and not _gone(worker, 0.1)
        t0 = time.monotonic()
        s.runner.interrupt()
        thread.join(10)
        assert not thread.is_alive()
        assert time.monotonic() - t0 < 3
    finally:
        s.runner.close()
    assert results[0].status == "interrupted"
    assert results[0].steps >= 1
    assert _gone(child), "the subprocess the script started survived the interrupt"
    assert _gone(worker), "the DataLoader worker survived the interrupt"
    if server is not None:  # close() stops the fork server too
        assert _gone(server._proc.pid)
    with pytest.raises(RuntimeError, match="closed"):
        s.runner.run(spec())


def test_interrupt_is_sticky(tmp_path: Path) -> None:
    s = Script(tmp_path, forkserver=False)
    s.runner.interrupt()
    t0 = time.monotonic()
    result = s.run(spec())
    s.runner.close()
    assert result.status == "interrupted"
    assert time.monotonic() - t0 < 0.5  # nothing was started


def test_falls_back_to_spawn_when_the_fork_server_cannot_start(tmp_path: Path) -> None:
    # the base interpreter of this venv has neither torch nor autowarm
    base_python = os.path.join(sys.base_prefix, "bin", "python3")
    if not os.path.exists(base_python) or sys.base_prefix == sys.prefix:
        pytest.skip("needs a virtual environment")
    s = Script(tmp_path, python=base_python)
    try:
        assert s.runner.mode == "spawn"
        assert "No module named" in s.runner.fallback_reason
        result = s.run(spec())
    finally:
        s.runner.close()
    assert (result.status, result.failure) == ("failed", "crash")
    assert "No module named" in result.reason


def test_deleted_script_is_not_found(tmp_path: Path) -> None:
    path = tmp_path / "train.py"
    path.write_text("print('hi')\n")
    runner = ProbeRunner(str(path), forkserver=False)
    path.unlink()
    result = runner.run(spec())
    runner.close()
    assert (result.status, result.failure) == ("failed", "not_found")


def test_bad_spec_raises(script: Script) -> None:
    with pytest.raises(AutowarmError, match="warmup_steps"):
        script.runner.run(spec(warmup_steps=50, probe_steps=30))
    with pytest.raises(AutowarmError, match="probe_steps"):
        script.runner.run(spec(warmup_steps=0, probe_steps=0))


@pytest.mark.parametrize(
    ("source", "kwargs", "match"),
    [
        (None, {}, r"script '.*missing.py' does not exist"),
        ("def f(:\n", {}, r"syntax error at line 1"),
        ("pass\n", {"python": "/no/such/python"}, r"python '/no/such/python' is not"),
        ("pass\n", {"trial_timeout": 0}, r"trial_timeout must be > 0 seconds but got 0"),
        ("pass\n", {"threads": 0}, r"threads must be >= 1 but got 0"),
        ("pass\n", {"cwd": "/no/such/dir"}, r"cwd must be an existing folder"),
    ],
)
def test_bad_input_is_one_clear_line(
    tmp_path: Path, source: str | None, kwargs: dict[str, Any], match: str
) -> None:
    path = tmp_path / "missing.py"
    if source is not None:
        path.write_text(source)
    with pytest.raises(AutowarmError, match=match) as info:
        ProbeRunner(str(path), **kwargs)
    assert "\n" not in str(info.value)


def test_a_dead_fork_server_fails_its_trial_and_the_next_ones_spawn(tmp_path: Path) -> None:
    s = Script(tmp_path)
    started = threading.Event()
    try:
        server = s.runner._get_server()
        assert server is not None

        def on_step(step: int, loss: float, grad_norm: float) -> None:
            if step == 3 and not started.is_set():
                started.set()
                os.kill(server._proc.pid, 9)  # the server, not the trial

        result = s.run(spec(probe_steps=10_000), on_step=on_step, sleep=0.01, steps=10_000)
        assert (result.status, result.failure) == ("failed", "crash")
        assert "fork server died" in result.reason
        after = s.run(spec(probe_steps=20))
        assert s.runner.mode == "spawn" and "died" in s.runner.fallback_reason
        assert (after.status, after.steps) == ("stable", 20)
    finally:
        s.runner.close()


def test_the_server_preloads_only_third_party_packages_every_run_imports(tmp_path: Path) -> None:
    (tmp_path / "model.py").write_text("")  # a local module: never preloaded
    (tmp_path / "data").mkdir()  # a local package
    source = """
import os, numpy as np, torch.nn as nn
from sklearn.datasets import load_digits
from model import Net
import data.loaders
from . import sibling
try:
    import rich
except ImportError:
    pass
if args.wandb:
    import wandb
def main():
    import optuna
if __name__ == "__main__":
    import transformers
"""
    found = _third_party_imports(source, str(tmp_path / "train.py"), str(tmp_path))
    # as "module" or "module:name,...": lazy packages load a submodule on the name's lookup
    assert found == ["numpy", "torch.nn", "sklearn.datasets:load_digits", "rich", "transformers"]


def test_the_fork_server_can_be_turned_off_by_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTOWARM_NO_FORKSERVER", "1")
    path = tmp_path / "train.py"
    path.write_text("pass\n")
    with ProbeRunner(str(path)) as runner:
        assert runner.mode == "spawn" and runner.fallback_reason is None


@pytest.mark.parametrize("end", ["finished", "pruned", "killed by a signal"])
def test_case10_subprocesses_in_their_own_session_end_with_the_trial(
    script: Script, tmp_path: Path, end: str
) -> None:
    # one `start_new_session=True` sleep, one orphaned by its shell: neither is in the trial's
    # process group, and the orphan is not even the trial's child
    pids_file = tmp_path / "pids.json"
    alive: list[bool] = []

    def on_step(step: int, loss: float, grad_norm: float) -> bool:
        if step == 0:
            alive.extend(not _gone(pid, 0.0) for pid in json.loads(pids_file.read_text()))
        return end == "pruned" and step == 3

    config: dict[str, Any] = {"detach": str(pids_file), "sleep": 0.01}
    if end == "killed by a signal":
        config["abort_at"] = 5
    result = script.run(spec(probe_steps=20), on_step, **config)
    assert result.status == {"finished": "stable", "pruned": "pruned"}.get(end, "failed")
    assert alive == [True, True]
    for pid in json.loads(pids_file.read_text()):
        assert _gone(pid), f"a subprocess of the trial ({end}) outlived it"


def test_case10_a_runner_stop_ends_the_subprocesses_outside_the_group(tmp_path: Path) -> None:
    # spawn mode: no fork server to hand orphans to; the runner itself ends the whole tree
    s = Script(tmp_path, forkserver=False)
    pids_file = tmp_path / "pids.json"
    try:
        result = s.run(
            spec(probe_steps=400), lambda step, *_: step == 3, detach=str(pids_file), sleep=0.01
        )
    finally:
        s.runner.close()
    assert result.status == "pruned"
    for pid in json.loads(pids_file.read_text()):
        assert _gone(pid), "a subprocess of the trial outlived it"


def test_case9_closing_the_fork_server_at_once_raises_nothing_in_its_reader(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # an early exit (a bad --storage) closes the server before its reader thread has run;
    # a reader slow to be scheduled makes that race certain
    errors: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: errors.append(args.exc_value))
    read = ForkServer._read

    def late_read(self: ForkServer) -> None:
        time.sleep(0.3)
        read(self)

    monkeypatch.setattr(ForkServer, "_read", late_read)
    server = ForkServer("/bin/true", os.getcwd(), dict(os.environ))
    server.close()
    server._reader.join(5)
    assert not server._reader.is_alive()
    assert errors == []
    server.close()  # twice is harmless


def test_case11_a_nan_loss_from_the_start_ends_the_trial_at_its_first_step(
    script: Script,
) -> None:
    # what the search's "NaN at any LR" rule relies on: the first loss, taken before any
    # update, is NaN -> the trial is nonfinite after 1 step whatever its LR
    result = script.run(spec(peak_lr=1e-6, probe_steps=30), nan_loss=True)
    assert (result.status, result.steps) == ("nonfinite", 1)


@pytest.mark.parametrize(("batch", "accumulate"), [(64, 1), (16, 1), (8, 4)])
def test_a_trial_reads_its_training_data_from_the_dataloader_it_draws(
    script: Script, batch: int, accumulate: int
) -> None:
    # the full run's passes over its data (the noise rule's gate) from a plain loop: the
    # loader drawn with grad enabled, not the evaluation's 8 batches a step under no_grad
    result = script.run(spec(probe_steps=15), batch=batch, accumulate=accumulate, eval_draws=8)
    assert result.status in ("stable", "spike"), result.reason
    assert result.data == {"train_examples": 64, "examples_per_step": batch * accumulate}


@pytest.mark.parametrize(
    ("sched", "sets_lr"),
    [("nanogpt", True), ("timm", True), ("lambda", False), ("hf", False), ("none", False)],
)
def test_the_runner_knows_whether_the_loop_sets_the_lr_itself(
    script: Script, sched: str, sets_lr: bool
) -> None:
    # issue 12: a nanoGPT-style loop overwrites any pasted scheduler every iteration, and so
    # does timm's scheduler, though it notes param_group["initial_lr"] as torch's schedulers do
    result = script.run(spec(probe_steps=15), sched=sched)
    assert result.status in ("stable", "spike"), result.reason
    assert result.sets_lr is sets_lr


@pytest.mark.parametrize(("adam", "name"), [(True, "torch.optim.Adam"), (False, "torch.optim.SGD")])
def test_the_runner_names_the_optimizer_the_script_built(
    script: Script, adam: bool, name: str
) -> None:
    # the code to paste builds the script's own optimizer with the peak LR, not an AdamW
    result = script.run(spec(probe_steps=15), adam=adam)
    assert result.status in ("stable", "spike"), result.reason
    assert result.optimizer == name


@pytest.mark.parametrize(
    ("sched", "text", "library"),
    [
        ("lambda", "LambdaLR, with the script's own function", "script"),
        ("early", "LambdaLR, with the script's own function", "script"),  # before wrapping
        ("hf", "LambdaLR, from transformers.optimization", "transformers"),
        ("nanogpt", None, None),
        ("none", None, None),
    ],
)
def test_the_runner_names_the_scheduler_the_script_steps(
    script: Script, sched: str, text: str | None, library: str | None
) -> None:
    # the report says which scheduler the recipe replaces, in that library's terms
    result = script.run(spec(probe_steps=15), sched=sched)
    assert result.status in ("stable", "spike"), result.reason
    if text is None:
        assert result.scheduler is None
    else:
        # stepped after each update: the trial ends at its 15th, before the script steps it
        told = {"text": text, "library": library, "accelerate": False, "calls": 14, "steps": 15}
        assert result.scheduler == told


def test_the_runner_counts_how_often_the_script_steps_its_scheduler(script: Script) -> None:
    # a loop stepping its scheduler once an epoch (here every 5 steps): a pasted scheduler
    # stepped there would stretch its warmup by the steps of an epoch, so the report says so
    result = script.run(spec(probe_steps=15), sched="epoch")
    assert result.status in ("stable", "spike"), result.reason
    assert result.scheduler is not None
    assert (result.scheduler["calls"], result.scheduler["steps"]) == (2, 15)


@pytest.mark.parametrize("compiled", [True, False])
def test_the_runner_measures_the_scripts_torch_compile(script: Script, compiled: bool) -> None:
    # the report says when torch.compile is most of what a trial pays outside its steps
    result = script.run(spec(probe_steps=10), compile=compiled)
    assert result.status in ("stable", "spike"), result.reason
    assert (result.compile_s > 0) is compiled
    assert result.compile_s < result.wall_s


def test_score_with_scores_a_finished_trial_once_at_its_end(script: Script) -> None:
    result = script.run(spec(probe_steps=20), score_with=100.0)
    assert result.status == "stable", result.reason
    # 100 + |body weight| of the trained model, read when its last step was done
    assert result.script_score is not None and result.script_score > 100.0
    calls = [r for r in script.logged() if "scored" in r]
    assert calls == [{"scored": True, "grad": False}]  # once, under torch.no_grad()


def test_a_non_finite_score_with_marks_the_trial_diverged(script: Script) -> None:
    result = script.run(spec(probe_steps=20), score_with=math.inf)
    assert result.status == "diverged"
    assert result.reason == "autowarm.score_with() gave inf"


def test_an_unstable_trial_is_not_scored(script: Script) -> None:
    result = script.run(spec(probe_steps=20), score_with=100.0, nan_loss=True)
    assert result.status == "nonfinite" and result.script_score is None
    assert not [r for r in script.logged() if "scored" in r]


def _checkpoint(path: Path, *flags: str) -> bytes:
    """What an earlier 5-step run of the script left at ``path``."""
    command = [sys.executable, TRAIN, "--steps", "5", "--save", str(path), *flags]
    subprocess.run(command, check=True, capture_output=True)
    return path.read_bytes()


@pytest.mark.parametrize(
    ("flags", "shown"), [(["--momentum", "0.9"], "momentum buffers"), (["--adam"], "5 steps taken")]
)
def test_a_script_that_resumed_a_run_before_the_first_step_fails_naming_its_checkpoint(
    script: Script, tmp_path: Path, flags: list[str], shown: str
) -> None:
    ckpt = tmp_path / "ckpt.pt"
    saved = _checkpoint(ckpt, *flags)
    config = {"resume": str(ckpt), "save": str(ckpt), "momentum": 0.9, "adam": "--adam" in flags}
    res = script.run(spec(), **config)
    assert (res.status, res.failure) == ("failed", "resumed"), res.reason
    assert f"state has {shown}, after torch.load of" in res.reason and "ckpt.pt" in res.reason
    assert "if not autowarm.probing()" in res.reason
    assert ckpt.read_bytes() == saved  # the trial's own save went to its scratch folder
    # pretrained weights alone (a fine-tune's start, not a resume): the trial runs
    _checkpoint(ckpt, *flags, "--weights-only")
    assert script.run(spec(), **config).status == "stable"
