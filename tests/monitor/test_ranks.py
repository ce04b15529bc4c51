"""DDP: skip and raise decisions are agreed across ranks (2 ranks, gloo, CPU, torchrun)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent / "scripts" / "ddp_spike.py"


def _run(tmp_path: Path, action: str) -> list[dict]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("AUTOWARM_TRIAL", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    proc = subprocess.run(
        [*cmd, str(SCRIPT), str(tmp_path), action],
        capture_output=True, text=True, timeout=120, env=env, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads((tmp_path / f"rank-{r}.json").read_text()) for r in (0, 1)]


def test_a_spike_on_one_rank_is_skipped_on_every_rank(tmp_path: Path) -> None:
    r0, r1 = _run(tmp_path, "skip")
    assert r0["skipped"] == r1["skipped"] == [25]
    assert r0["checksum"] == pytest.approx(r1["checksum"], abs=1e-9)  # no drift


def test_a_raise_on_one_rank_is_raised_on_every_rank(tmp_path: Path) -> None:
    r0, r1 = _run(tmp_path, "raise")
    assert r0["raised"] == r1["raised"] == 25
    assert r0["checksum"] == pytest.approx(r1["checksum"], abs=1e-9)
