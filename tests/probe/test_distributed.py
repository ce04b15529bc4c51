"""Probe trials of a DDP script (issue 13): 2 ranks on gloo, CPU, under torch.distributed.run.

Every test runs real launcher processes (a few seconds each): the trials of one test run at once
where they can.
"""

from __future__ import annotations

import json
import math
import os
import socket
import threading
from pathlib import Path
from typing import Any

import pytest

from autowarm.probe import _runner
from autowarm.probe._recommend import _is_unstable
from autowarm.probe._record import TrialRecord
from autowarm.probe._runner import ProbeRunner
from autowarm.probe._status import SCRIPT_FAILURES
from autowarm.probe._types import TrialResult, TrialSpec

pytestmark = pytest.mark.skipif(os.name != "posix", reason="FIFOs and process groups are POSIX")

TRAIN = str(Path(__file__).parent / "scripts_ddp" / "train_ddp.py")
STEPS = 30


def _runner_for(log: Path, *args: str) -> ProbeRunner:
    env = {"OMP_NUM_THREADS": "1"}
    return ProbeRunner(
        TRAIN, ["--log", str(log), *args], nproc_per_node=2, trial_timeout=90, env=env
    )


def _logged(log: Path) -> dict[int, list[dict[str, Any]]]:
    """Each rank's records of the optimizer steps it finished."""
    by_rank: dict[int, list[dict[str, Any]]] = {0: [], 1: []}
    for line in log.read_text().splitlines():
        record = json.loads(line)
        by_rank[record["rank"]].append(record)
    return by_rank


def _spec(peak_lr: float, number: int = 0) -> TrialSpec:
    return TrialSpec(number=number, peak_lr=peak_lr, warmup_steps=5, probe_steps=STEPS)


def _both(runners: list[ProbeRunner], specs: list[TrialSpec]) -> list[TrialResult]:
    """Two trials at once, as ``--jobs 2`` runs them."""
    results: list[TrialResult | None] = [None, None]

    def work(i: int) -> None:
        results[i] = runners[i].run(specs[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert all(r is not None for r in results), "a trial hung"
    return results  # type: ignore[return-value]


def test_two_ddp_trials_at_once_one_stable_one_too_hot(tmp_path: Path) -> None:
    logs = [tmp_path / "stable.jsonl", tmp_path / "hot.jsonl"]
    runners = [_runner_for(log) for log in logs]
    try:
        stable, hot = _both(runners, [_spec(0.01, 0), _spec(50.0, 1)])
    finally:
        for r in runners:
            r.close()
    # 1) both ran (each its own rendezvous port): the stable one to the probe length
    assert runners[0].mode == "spawn"
    assert stable.status in ("stable", "spike") and stable.failure is None, stable.reason
    assert stable.steps == STEPS
    ranks = _logged(logs[0])
    assert [r["step"] for r in ranks[0]] == [r["step"] for r in ranks[1]] == list(range(STEPS - 1))
    # rank 0 reports: its own losses (rank 1's batches, and losses, differ)
    assert stable.losses[: STEPS - 1] == pytest.approx([r["loss"] for r in ranks[0]], rel=1e-6)
    assert stable.losses[0] != pytest.approx(ranks[1][0]["loss"], rel=1e-3)
    # 2) the hot one stopped early, every rank at the same step
    assert hot.status in ("nonfinite", "diverged"), hot.reason
    assert hot.steps < STEPS
    hot_ranks = _logged(logs[1])
    assert len(hot_ranks[0]) == len(hot_ranks[1]) == hot.steps - 1


def test_a_stop_seen_by_rank_1_alone_stops_every_rank_at_the_same_step(tmp_path: Path) -> None:
    # rank 1's monitor alone sees the NaN loss: without the agreed stop rank 0 would wait for
    # it in the next gradient all-reduce until the trial timeout
    log = tmp_path / "nan.jsonl"
    with _runner_for(log, "--nan-on-rank1-at", "8") as runner:
        res = runner.run(_spec(0.01))
    assert res.status == "nonfinite", res.reason
    assert "on another rank" in (res.reason or "")
    assert 8 < res.steps < STEPS
    assert all(math.isfinite(v) for v in res.losses)  # rank 0's losses, not rank 1's NaN
    ranks = _logged(log)
    assert len(ranks[0]) == len(ranks[1]) == res.steps - 1
    assert res.wall_s < 60


def test_a_launcher_failure_is_its_own_kind_never_an_instability(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the case: a fixed MASTER_PORT that another trial already holds (EADDRINUSE)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        launcher = ("-m", "torch.distributed.run", "--master-port", str(port))
        monkeypatch.setattr(_runner, "_LAUNCHER", launcher)
        with _runner_for(tmp_path / "log.jsonl") as runner:
            res = runner.run(_spec(0.01))
    assert (res.status, res.failure, res.steps) == ("failed", "launcher", 0), res.reason
    assert "0 of 2 ranks started" in (res.reason or "")
    # the search FAILs it like a script failure (no penalty); never counted as unstable
    assert "launcher" in SCRIPT_FAILURES
    record = TrialRecord(0, 0.01, 5, status="failed", failure="launcher", reason=res.reason)
    assert not _is_unstable(record)
