"""Smoke tests for the example training scripts in recipes/: each runs, learns, and reports.

Every recipe is run as a user would run it (its own process, short --steps); the full runs
and the quality comparison live in scripts/bench_quality.py (run by hand).
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted(ROOT.glob("recipes/*/train.py"))
IDS = [p.parent.name for p in RECIPES]


def run_recipe(script: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(script), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_at_least_three_recipes() -> None:
    assert {"charlm", "digits_resnet"} <= set(IDS)
    assert len(RECIPES) >= 3, IDS


@pytest.mark.parametrize("script", RECIPES, ids=IDS)
def test_recipe_has_exactly_the_two_autowarm_lines(script: Path) -> None:
    source = script.read_text()
    assert source.count("optimizer = autowarm.wrap(optimizer)") == 1
    assert source.count("optimizer.report(loss)") == 1
    # the docstring opens with the exact command to run it
    doc = source.split('"""')[1]
    assert f"python recipes/{script.parent.name}/train.py" in doc
    assert f"autowarm probe recipes/{script.parent.name}/train.py" in doc


@pytest.mark.parametrize("script", RECIPES, ids=IDS)
def test_recipe_smoke_run_writes_metrics_and_repeats_exactly(script: Path, tmp_path: Path) -> None:
    # two identical runs at once (this test is mostly interpreter start-up): the benchmark
    # caches results per (script, args, seed), which needs bitwise repeatability
    outs = [tmp_path / f"m{i}.json" for i in range(2)]
    args = ["--steps", "30", "--warmup", "5", "--seed", "1"]
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), *args, "--metrics-out", str(o)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for o in outs
    ]
    stdout, stderr = procs[0].communicate(timeout=120)
    procs[1].communicate(timeout=120)
    assert [p.returncode for p in procs] == [0, 0], stderr[-2000:]
    match = re.search(r"final eval loss: (\S+)", stdout)
    assert match, stdout
    metrics = json.loads(outs[0].read_text())
    assert metrics["steps"] == 30 and metrics["warmup"] == 5 and metrics["seed"] == 1
    assert math.isfinite(metrics["final_eval_loss"])
    assert float(match.group(1)) == pytest.approx(metrics["final_eval_loss"], abs=1e-4)
    # 30 steps at the default LR do not blow up (the deep MLP barely moves yet: it starts
    # slowly, which is the point of that recipe), and the diverged flag says what it means
    assert metrics["final_eval_loss"] < metrics["initial_loss"] + 0.05
    assert metrics["diverged"] is (metrics["final_eval_loss"] > metrics["initial_loss"])
    assert len(metrics["train_losses"]) == 30
    assert metrics["wall_s"] > 0
    assert not list(tmp_path.glob("*.tmp"))  # written atomically: no leftover temp file
    again = json.loads(outs[1].read_text())
    assert again["train_losses"] == metrics["train_losses"]
    assert again["final_eval_loss"] == metrics["final_eval_loss"]


def test_absurd_lr_is_flagged_as_diverged(tmp_path: Path) -> None:
    # the diverged flag is what the benchmark counts: LR 1e4 with SGD must trip it
    out = tmp_path / "metrics.json"
    script = ROOT / "recipes" / "digits_resnet" / "train.py"
    proc = run_recipe(
        script, "--steps", "20", "--lr", "1e4", "--warmup", "0", "--metrics-out", str(out)
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(out.read_text())["diverged"] is True
