"""Run Karpathy's nanoGPT ``train.py`` under the monitor, with its own clipping left as it is.

    git clone https://github.com/karpathy/nanoGPT /tmp/nanogpt        # not part of this repo
    python scripts/try_nanogpt.py /tmp/nanogpt --iters 2000 --seeds 0,1,2
    python scripts/try_nanogpt.py /tmp/nanogpt --iters 200 --spike-x100 120   # a fault

What it does to the checkout (never to this repository; nanoGPT's code is not committed here):
1) data: ``data/stdlib_char/`` gets ``input.txt`` = the Python standard library's own source
   (~1 MB, no download) and ``prepare.py`` from shakespeare_char run on it;
2) ``train_autowarm.py`` = ``train.py`` plus the two autowarm lines (``optimizer =
   autowarm.wrap(optimizer, actions="record")`` after ``configure_optimizers``,
   ``optimizer.report(loss)`` after each micro-step's backward) and, at the end, a dump of the
   monitor's history and events (JSON); nanoGPT's ``clip_grad_norm_(model.parameters(), 1.0)``
   stays: the monitor reads the norm that call measured, before clipping;
3) it runs nanoGPT's own CPU recipe (README: block 64, batch 12, 4 layers, 128 wide, no
   dropout, lr_decay_iters = iters) per seed, and prints, per run, the pre-clip grad norms,
   the spike events and what the loss did after each (the mean loss of the 10 steps after the
   event over the 10 before): a spike the loss never felt is a false alarm for a user.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np

WRAP = "optimizer = model.configure_optimizers(weight_decay, learning_rate, (beta1, beta2), device_type)\n"  # noqa: E501
BACKWARD = "        scaler.scale(loss).backward()\n"
DUMP = """
import json as _json
_m = optimizer.monitor
_m.flush()
_json.dump({"history": [[r.step, r.loss, r.grad_norm] for r in _m.history],
            "events": [[e.step, e.kind, e.signal, e.value, e.reference] for e in _m.events]},
           open(os.environ["AUTOWARM_DUMP"], "w"))
"""
FAULT = """        if os.environ.get("SPIKE_AT") and iter_num == int(os.environ["SPIKE_AT"]):
            for p in model.parameters():
                if p.grad is not None:
                    p.grad.mul_(100.0)  # an injected x100 gradient spike
"""


def prepare(repo: Path) -> None:
    data = repo / "data" / "stdlib_char"
    if (data / "train.bin").exists():
        return
    data.mkdir(parents=True, exist_ok=True)
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    text = "".join(p.read_text(errors="replace") for p in sorted(stdlib.glob("*.py")))
    (data / "input.txt").write_text(text[:1_000_000])
    shutil.copy(repo / "data" / "shakespeare_char" / "prepare.py", data / "prepare.py")
    src = (data / "prepare.py").read_text().replace("import requests\n", "")
    (data / "prepare.py").write_text(src)
    subprocess.run([sys.executable, "prepare.py"], cwd=data, check=True, capture_output=True)


def patch(repo: Path) -> Path:
    src = (repo / "train.py").read_text()
    assert WRAP in src and BACKWARD in src, "nanoGPT's train.py changed: update the patch"
    src = src.replace(
        WRAP, WRAP + 'import autowarm\noptimizer = autowarm.wrap(optimizer, actions="record")\n'
    )
    src = src.replace(BACKWARD, BACKWARD + "        optimizer.report(loss)\n")
    clip = "    if grad_clip != 0.0:\n"
    src = src.replace(clip, FAULT + clip, 1)
    out = repo / "train_autowarm.py"
    out.write_text(src + DUMP)
    return out


def run(repo: Path, script: Path, iters: int, seed: int, spike_at: int | None) -> dict:
    dump = repo / f"monitor-{seed}-{iters}-{spike_at}.json"
    args = [
        "--dataset=stdlib_char", "--device=cpu", "--compile=False", "--dtype=float32",
        "--eval_iters=1", f"--eval_interval={iters * 10}", "--log_interval=100000",
        "--block_size=64", "--batch_size=12", "--n_layer=4", "--n_head=4", "--n_embd=128",
        f"--max_iters={iters}", f"--lr_decay_iters={iters}", "--dropout=0.0",
        "--always_save_checkpoint=False", f"--out_dir=out-{seed}", "--wandb_log=False",
        "config/train_shakespeare_char.py",
    ]  # fmt: skip
    # nanoGPT seeds with 1337 + rank; a seed is a different init and data order
    src = script.read_text().replace("torch.manual_seed(1337 + seed_offset)",
                                     f"torch.manual_seed({1337 + seed} + seed_offset)")  # fmt: skip
    seeded = repo / f"train_autowarm_{seed}.py"
    seeded.write_text(src)
    env = {"AUTOWARM_DUMP": str(dump), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    if "PYTHONPATH" in os.environ:  # to try an autowarm checkout that is not installed
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    if spike_at is not None:
        env["SPIKE_AT"] = str(spike_at)
    config = args.pop()
    subprocess.run([sys.executable, seeded.name, config, *args], cwd=repo, env=env, check=True,
                   capture_output=True)  # fmt: skip
    return json.loads(dump.read_text())


def report(doc: dict, seed: int) -> None:
    hist = np.array([[s, np.nan if v is None else v, g] for s, v, g in doc["history"]], float)
    norms, losses = hist[:, 2], hist[:, 1]
    print(f"seed {seed}: {len(hist)} steps; pre-clip grad norm median {np.median(norms):.3f}, "
          f"max {norms.max():.3f} (step {int(hist[norms.argmax(), 0])}), "
          f"{int((norms > 1.0).sum())} steps above the clip (1.0)")  # fmt: skip
    for step, kind, signal, value, ref in doc["events"]:
        before = np.nanmean(losses[max(0, step - 10) : step])
        after = np.nanmean(losses[step + 1 : step + 11])
        print(f"  step {step}: {kind} in {signal} ({value:.3g} vs reference {ref:.3g}, "
              f"{value / ref:.1f}x); loss over the next 10 steps / the 10 before = "
              f"{after / before:.3f}")  # fmt: skip
    if not doc["events"]:
        print("  no events")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("repo", type=Path, help="a nanoGPT checkout (it gets data and a patched copy)")
    p.add_argument("--iters", type=int, default=2000)
    p.add_argument("--seeds", default="0")
    p.add_argument("--spike-x100", type=int, metavar="STEP", help="multiply grads by 100 there")
    opts = p.parse_args(argv)
    prepare(opts.repo)
    script = patch(opts.repo)
    for seed in (int(s) for s in opts.seeds.split(",")):
        report(run(opts.repo, script, opts.iters, seed, opts.spike_x100), seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
