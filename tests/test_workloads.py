"""The quality benchmark's suite (scripts/bench_quality.py, run by hand): its workloads exist,
follow the scripts' contract, and keep a held-out set apart from the tuning set.

Only the contract is checked here (a few steps of the cheap plain-loop workloads); the full
runs, the oracle grids and the probes are the benchmark's.
"""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("bench_quality", ROOT / "scripts/bench_quality.py")
assert spec and spec.loader
bench = importlib.util.module_from_spec(spec)
sys.modules["bench_quality"] = bench  # dataclasses look their module up by name
spec.loader.exec_module(bench)
METRICS = {"final_eval_loss", "diverged", "initial_loss", "steps", "lr", "warmup", "seed",
           "train_losses", "wall_s"}  # fmt: skip


def test_the_suite_has_ten_workloads_and_a_held_out_set_of_four() -> None:
    names = [w.name for w in bench.WORKLOADS]
    assert len(names) == len(set(names)) >= 10
    held_out = [w for w in bench.WORKLOADS if w.split == "held-out"]
    assert len(held_out) >= 4
    assert {w.split for w in bench.WORKLOADS} == {"tuning", "held-out"}
    # a script is in one set only: tuning on it would leak into the held-out figures
    scripts = {w.script: w.split for w in bench.WORKLOADS}
    assert all(scripts[w.script] == w.split for w in bench.WORKLOADS)
    # at least two long runs, >= 5,000 steps
    assert sum(w.full_steps >= 5000 for w in bench.WORKLOADS) >= 2


@pytest.mark.parametrize("w", bench.WORKLOADS, ids=lambda w: w.name)
def test_each_workload_declares_its_defaults_and_a_box_around_its_default(w) -> None:
    d = w.defaults()
    assert {"steps", "lr", "warmup", "seed"} <= set(d)
    lo, hi = w.lr_box
    assert 0 < lo < hi and hi / lo >= 100  # under-training .. divergence: 2+ decades
    assert "autowarm" in w.path.read_text()


PLAIN_LOOPS = [
    "edge", "adamw_shallow", "finetune", "sgd_mlp", "softmax_sgd", "cnn_digits", "lsq_digits",
    "tanh_mse", "poly_sgdm", "deeplinear_sgd", "vit_digits", "seqcls_postln", "moons_mlp",
    "friedman_sgdm", "chargru_small", "postln_lm", "rmsprop_cnn", "conv1d_series", "matfact_sgd",
    "teacher_relu_sgd", "ridge_nesterov", "lstm_charlm", "mlp_autoenc", "adagrad_bow",
    "mlp_charlm", "gru_huber", "resmlp_radam", "textcnn_lines", "vae_digits", "gnn_graphs",
]  # fmt: skip


#: lsq_digits' own LR (SGD's usual 0.1) diverges by design: the contract is checked below its edge
LR = {"lsq_digits": ["--lr", "1e-3"]}


@pytest.mark.parametrize("name", PLAIN_LOOPS)
def test_a_plain_loop_workload_trains_and_writes_its_metrics(name: str, tmp_path: Path) -> None:
    w = next(w for w in bench.WORKLOADS if w.name == name)
    out = tmp_path / "m.json"
    args = ["--steps", "20", "--warmup", "2", *LR.get(name, []), "--metrics-out", str(out)]
    proc = subprocess.run(
        [sys.executable, str(w.path), *args], cwd=tmp_path, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    m = json.loads(out.read_text())
    assert set(m) >= METRICS
    assert m["steps"] == 20 and m["warmup"] == 2 and math.isfinite(m["final_eval_loss"])
    assert "final eval loss:" in proc.stdout
