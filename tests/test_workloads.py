"""The quality benchmark's suite (scripts/bench_quality.py, run by hand): its workloads exist,
follow the scripts' contract, and keep a held-out set apart from the tuning set.

Only the contract is checked here (a few steps of the cheap plain-loop workloads); the full
runs, the oracle grids and the probes are the benchmark's.
"""

from __future__ import annotations

import importlib.util
import json
import math
import select
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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
    "tabembed_sgdm", "seq2seq_reverse", "unet_denoise",
]  # fmt: skip


#: lsq_digits' own LR (SGD's usual 0.1) diverges by design: the contract is checked below its edge
LR = {"lsq_digits": ["--lr", "1e-3"]}


#: one interpreter per test process runs the scripts in turn, each as ``python script.py``
#: would (``runpy`` as ``__main__``, its argv, its cwd): torch's import and the first optimizer
#: step's (torch._dynamo) cost 3-4 s of each script's 5, paid once here instead of 30 times
_RUN_SCRIPTS = """
import contextlib, io, json, os, runpy, sys, traceback
for line in sys.stdin:
    job = json.loads(line)
    out, err, rc = io.StringIO(), io.StringIO(), 0
    os.chdir(job["cwd"])
    sys.argv = [job["path"], *job["args"]]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            runpy.run_path(job["path"], run_name="__main__")
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else int(e.code is not None)
        except BaseException:
            rc = 1
            traceback.print_exc()
    print(json.dumps({"rc": rc, "stdout": out.getvalue(), "stderr": err.getvalue()}), flush=True)
"""


@pytest.fixture(scope="module")
def run_script() -> Iterator[Callable[[Path, list[str], Path], dict[str, Any]]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _RUN_SCRIPTS], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None

    def run(path: Path, args: list[str], cwd: Path) -> dict[str, Any]:
        job = {"path": str(path), "args": args, "cwd": str(cwd)}
        proc.stdin.write(json.dumps(job) + "\n")  # type: ignore[union-attr]
        proc.stdin.flush()  # type: ignore[union-attr]
        ready, _, _ = select.select([proc.stdout], [], [], 120)
        if not ready:  # a hung script fails its test, as subprocess.run's timeout did
            proc.kill()
            pytest.fail(f"{path.name} ran over 120 s")
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert line, f"the script runner died running {path.name}"
        return json.loads(line)

    yield run
    proc.stdin.close()
    proc.wait(timeout=30)


@pytest.mark.parametrize("name", PLAIN_LOOPS)
def test_a_plain_loop_workload_trains_and_writes_its_metrics(
    name: str, tmp_path: Path, run_script: Callable[[Path, list[str], Path], dict[str, Any]]
) -> None:
    w = next(w for w in bench.WORKLOADS if w.name == name)
    out = tmp_path / "m.json"
    args = ["--steps", "20", "--warmup", "2", *LR.get(name, []), "--metrics-out", str(out)]
    proc = run_script(w.path, args, tmp_path)
    assert proc["rc"] == 0, proc["stderr"]
    m = json.loads(out.read_text())
    assert set(m) >= METRICS
    assert m["steps"] == 20 and m["warmup"] == 2 and math.isfinite(m["final_eval_loss"])
    assert "final eval loss:" in proc["stdout"]
