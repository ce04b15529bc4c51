"""Run autowarm on pytorch/examples' ``imagenet/main.py`` with ``--dummy`` (torchvision's
``FakeData``: nothing is downloaded), a third-party script whose ``StepLR`` is stepped once an
epoch and whose every epoch saves ``checkpoint.pth.tar`` and copies it to ``model_best.pth.tar``.

    # the example is not part of this repo; it imports torchvision, so timm's venv of
    # scripts/try_timm.py serves (torch 2.14.1 + torchvision 0.29.1, autowarm -e)
    git clone https://github.com/pytorch/examples /tmp/examples
    mkdir -p /tmp/imnet && cp /tmp/examples/imagenet/main.py /tmp/imnet/
    /tmp/timm/venv/bin/python scripts/try_pytorch_imagenet.py /tmp/imnet
    /tmp/timm/venv/bin/python scripts/try_pytorch_imagenet.py /tmp/imnet --trials 20 --workers 4

What it does in that folder (never in this repository):
1) ``main.py`` gets the lines a user adds (``import autowarm``, ``optimizer =
   autowarm.wrap(...)`` around its ``SGD``, ``optimizer.report(loss)`` after
   ``loss.backward()``) and, so that a CPU runs a step in about 0.1 s, a smaller ``FakeData``:
   256 training and 64 validation images of 3x64x64 in place of 1,281,167 and 50,000 of
   3x224x224 (still 1,000 classes; ``--dummy`` only). The rest is the example's: ResNet-18, SGD
   at LR 0.1 (momentum 0.9, weight decay 1e-4), ``StepLR(step_size=30, gamma=0.1)`` stepped
   after each epoch's validation, a checkpoint saved every epoch. With ``-b 16`` an epoch is 16
   steps; ``--epochs 15`` makes the user's run 240 steps;
2) one plain short run (2 epochs) stands in for the user's earlier run, so that
   ``checkpoint.pth.tar`` and ``model_best.pth.tar`` exist (kept if they do already);
3) ``autowarm probe --trials N --total-steps 240 --seed S main.py -- --dummy -a resnet18 -b 16
   -j J --epochs 15``, as a user would type it (``--trials``: 12 here, autowarm's default is
   20; ``-j``: the example's DataLoader workers, ``--workers`` here, the example's default is
   4), then a check that the user's files (``main.py`` and the two checkpoints) are
   byte-identical afterwards, and what ``autowarm.json`` says each trial paid outside its
   training steps and how often the script stepped its ``StepLR`` in a trial. Run it again
   after removing ``.autowarm/`` and ``autowarm.json`` for a fresh search.

Seen on two CPU cores shared with other jobs (so the times are loose): the default command took
7.5 min (12 trials of 30 steps, 6:26 of trials, 0.58 s of each outside its steps); the range
widened to [0.001, 5] at its bottom and the recipe was 0.0136 peak, 24 warmup steps of 240
(the script's LR is 0.1; on FakeData's noise images the training loss only measures how fast
ResNet-18 memorises 256 random labels, so the pick says nothing of real ImageNet); the report
read the StepLR stepped once in a trial's 30 steps and said to move ``scheduler.step()`` into
the batch loop; the two checkpoints stayed byte-identical. Not for the example's
``--multiprocessing-distributed``: its ``mp.spawn`` ranks are processes a probe cannot follow;
the search stops after its first trial with one line giving the torchrun form (``--dist-url
env://`` under ``autowarm probe --nproc-per-node N``), and what the ranks wrote went to the
trial's scratch (before that fix they overwrote both checkpoints).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

BATCH = 16
EPOCHS = 15
STEPS = EPOCHS * 256 // BATCH  # 240: 15 epochs x 16 batches of 16 (256 fake images)
PATCH = [  # (the example's line, what it becomes)
    # the user's edit: three lines
    ("import torch\n", "import torch\nimport autowarm\n"),
    ("    optimizer = torch.optim.SGD(model.parameters(), args.lr,\n"
     "                                momentum=args.momentum,\n"
     "                                weight_decay=args.weight_decay)\n",
     "    optimizer = autowarm.wrap(torch.optim.SGD(model.parameters(), args.lr,\n"
     "                                momentum=args.momentum,\n"
     "                                weight_decay=args.weight_decay))\n"),
    ("        loss.backward()\n", "        loss.backward()\n        optimizer.report(loss)\n"),
    # speed on a CPU, not a user's edit: fewer and smaller fake images
    ("FakeData(1281167, (3, 224, 224), 1000,", "FakeData(256, (3, 64, 64), 1000,"),
    ("FakeData(50000, (3, 224, 224), 1000,", "FakeData(64, (3, 64, 64), 1000,"),
]  # fmt: skip
USER_FILES = ("main.py", "checkpoint.pth.tar", "model_best.pth.tar")


def prepare(folder: Path) -> None:
    path = folder / "main.py"
    src = path.read_text()
    if "autowarm" not in src:
        for old, new in PATCH:
            assert src.count(old) == 1, f"main.py changed: update the patch for {old!r}"
            src = src.replace(old, new)
        path.write_text(src)


def script_args(workers: int, epochs: int) -> list[str]:
    return ["--dummy", "-a", "resnet18", "-b", str(BATCH), "-j", str(workers),
            "--epochs", str(epochs)]  # fmt: skip


def earlier_run(folder: Path, workers: int) -> None:
    """The user's own run, before autowarm: two epochs, a checkpoint after each."""
    if all((folder / name).exists() for name in USER_FILES):
        return
    cmd = [sys.executable, "main.py", *script_args(workers, 2), "--seed", "0"]
    print("$", shlex.join(["python", *cmd[1:]]), flush=True)
    subprocess.run(cmd, cwd=folder, check=True, capture_output=True)
    missing = [name for name in USER_FILES if not (folder / name).exists()]
    assert not missing, f"the plain run wrote no {missing} (no epoch was 'best'?)"


def digests(folder: Path) -> dict[str, str]:
    return {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in USER_FILES}


def probe(folder: Path, trials: int, seed: int, workers: int) -> int:
    cmd = ["autowarm", "probe", "--trials", str(trials), "--total-steps", str(STEPS)]
    cmd += ["--seed", str(seed), "main.py", "--", *script_args(workers, EPOCHS)]
    print("$", shlex.join(cmd), flush=True)
    start = time.perf_counter()
    code = subprocess.run([sys.executable, "-m", *cmd], cwd=folder).returncode
    print(f"exit code {code} after {time.perf_counter() - start:.1f} s", flush=True)
    return code


def summary(folder: Path) -> None:
    path = folder / "autowarm.json"
    if not path.exists():
        return
    recipe = json.loads(path.read_text())
    evidence = recipe["evidence"]
    cost = evidence.get("cost") or {}
    scheduler = evidence.get("script_scheduler") or {}
    print(f"recipe: peak LR {recipe['peak_lr']:.3g}, warmup {recipe['warmup_steps']} of "
          f"{recipe['total_steps']} steps (script's LR {evidence.get('script_lr')})")  # fmt: skip
    print(f"the script's scheduler: {scheduler.get('text')}, stepped {scheduler.get('calls')} "
          f"time(s) in a trial's {scheduler.get('steps')} steps")  # fmt: skip
    print(f"outside the training steps: {cost.get('fixed_s_per_trial')} s per trial "
          f"(median), {cost.get('fixed_share')} of the trials' time")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folder", type=Path, help="where main.py (the example) was copied")
    p.add_argument("--trials", type=int, default=12, help="autowarm probe --trials")
    p.add_argument("--seed", type=int, default=0, help="autowarm probe --seed")
    p.add_argument("--workers", type=int, default=2, help="the example's -j (DataLoader)")
    opts = p.parse_args(argv)
    folder = opts.folder.resolve()
    prepare(folder)
    earlier_run(folder, opts.workers)
    before = digests(folder)
    code = probe(folder, opts.trials, opts.seed, opts.workers)
    summary(folder)
    after = digests(folder)
    changed = [name for name in USER_FILES if before[name] != after[name]]
    print("the user's files:", "CHANGED: " + ", ".join(changed) if changed else "byte-identical")
    return code or bool(changed)


if __name__ == "__main__":
    sys.exit(main())
