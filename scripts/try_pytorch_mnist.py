"""Run autowarm on pytorch/examples' ``mnist/main.py``, a third-party script whose ``StepLR`` is
stepped once an epoch, and train its picks against the script's own schedule at a sweep of LRs.

    # the example is not part of this repo; it imports torchvision, so timm's venv of
    # scripts/try_timm.py serves (torch 2.14.1 + torchvision 0.29.1, scikit-learn, autowarm -e)
    git clone https://github.com/pytorch/examples /tmp/examples
    mkdir -p /tmp/mnist && cp /tmp/examples/mnist/main.py /tmp/mnist/
    /tmp/timm/venv/bin/python scripts/try_pytorch_mnist.py /tmp/mnist --probe --seeds 0,1,2
    /tmp/timm/venv/bin/python scripts/try_pytorch_mnist.py /tmp/mnist --runs --seeds 0,1,2

What it does in that folder (never in this repository):
1) ``main.py`` gets the lines a user adds (``import autowarm``, ``optimizer =
   autowarm.wrap(...)`` around its ``Adadelta``, ``optimizer.report(loss)`` after the loss) and,
   so that nothing is downloaded, scikit-learn's digits (8x8, upscaled to MNIST's 28x28: 1,437
   train, 360 test) in place of ``datasets.MNIST``. The rest is the example's: Adadelta at LR
   1.0, ``StepLR(step_size=1, gamma=0.7)`` stepped after each epoch, batches of 64 (22 steps an
   epoch, unshuffled on the CPU, as the example does there), 14 epochs: 308 steps. For the full
   runs only, a ``RECIPE`` variable puts the recipe's scheduler in place of ``StepLR``, stepped
   after every ``optimizer.step()`` (what the probe's report says to do) and ``--seed`` seeds;
2) ``--probe``: ``autowarm probe --total-steps 308 --seed S main.py`` per seed, as a user would
   type it; each recipe is kept as ``recipe-S.json``;
3) ``--runs``: full runs (one torch thread each) of the example's own schedule at ``--lr`` 0.1
   ... 10 (1.0 is its default), of each ``recipe-S.json`` and of cosine with a 10 % warmup at
   0.3 ... 10. Reported per schedule, mean +- s.e. over seeds (the init and dropout): the test
   loss after the last epoch.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

STEPS = 308  # 14 epochs x 22 batches of 64 (1,437 images, the last batch partial)
GRID = (0.1, 0.3, 1.0, 3.0, 10.0)
COSINE = (0.3, 1.0, 3.0, 10.0)
DIGITS = """
def _digits(train):
    # scikit-learn's digits in place of MNIST (no download): 28x28, MNIST's normalisation
    import numpy as np
    from sklearn.datasets import load_digits
    d = load_digits()
    order = np.random.default_rng(0).permutation(len(d.target))
    order = order[360:] if train else order[:360]
    x = torch.tensor(d.images[order] / 16.0, dtype=torch.float32)[:, None]
    x = F.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False)
    x = (x - 0.1307) / 0.3081
    return torch.utils.data.TensorDataset(x, torch.tensor(d.target[order]))

"""
PATCH = [  # (the example's line, what it becomes)
    ("import torch\n", "import os\n\nimport torch\nimport autowarm\n"),
    ("def train(args,", DIGITS + "\ndef train(args,"),
    ("    optimizer = optim.Adadelta(model.parameters(), lr=args.lr)\n",
     "    optimizer = autowarm.wrap(optim.Adadelta(model.parameters(), lr=args.lr))\n"),
    ("        loss = F.nll_loss(output, target)\n",
     "        loss = F.nll_loss(output, target)\n        optimizer.report(loss)\n"),
    ("    dataset1 = datasets.MNIST('../data', train=True, download=True,\n"
     "                       transform=transform)\n",
     "    dataset1 = _digits(train=True)\n"),
    ("    dataset2 = datasets.MNIST('../data', train=False,\n"
     "                       transform=transform)\n",
     "    dataset2 = _digits(train=False)\n"),
    # the full runs' harness, not a user's edit: the recipe's scheduler, stepped every step
    ("    scheduler = StepLR(optimizer, step_size=1, gamma=args.gamma)\n",
     "    scheduler = StepLR(optimizer, step_size=1, gamma=args.gamma)\n"
     "    if os.environ.get('RECIPE'):\n"
     "        global _RECIPE_SCHEDULER\n"
     "        scheduler = _RECIPE_SCHEDULER = autowarm.Recipe.load(os.environ['RECIPE'])"
     ".scheduler(optimizer)\n"),
    ("        optimizer.step()\n",
     "        optimizer.step()\n"
     "        if os.environ.get('RECIPE'):\n"
     "            _RECIPE_SCHEDULER.step()\n"),
    ("        scheduler.step()\n",
     "        if not os.environ.get('RECIPE'):\n"
     "            scheduler.step()\n"),
]  # fmt: skip


def prepare(folder: Path) -> None:
    path = folder / "main.py"
    src = path.read_text()
    if "autowarm" not in src:
        for old, new in PATCH:
            assert src.count(old) == 1, f"main.py changed: update the patch for {old!r}"
            src = src.replace(old, new)
        path.write_text(src)


def env(**extra: str) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", **extra}


def probe(folder: Path, seed: int) -> None:
    cmd = [sys.executable, "-m", "autowarm", "probe", "--total-steps", str(STEPS)]
    cmd += ["--seed", str(seed), "--out", f"recipe-{seed}.json", "main.py"]
    print("$", " ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, cwd=folder, env=env(), check=True)


def run(folder: Path, lr: float, recipe: str | None, seed: int) -> float:
    """One full run: the example's test loss after its last epoch."""
    out = folder / f"out-{recipe or lr}-{seed}.txt"
    if not out.exists():
        cmd = [sys.executable, "main.py", "--lr", str(lr), "--seed", str(seed)]
        done = subprocess.run(
            cmd, cwd=folder, env=env(**({"RECIPE": recipe} if recipe else {})),
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        out.write_text(done.stdout)
    return float(re.findall(r"Test set: Average loss: ([\d.]+)", out.read_text())[-1])


def cosine(folder: Path, lr: float) -> str:
    """A recipe file: cosine from ``lr`` after a 10 % warmup (the grid the picks are judged on;
    the example's own StepLR decays 0.7x an epoch, another shape)."""
    from autowarm import Recipe

    path = folder / f"cosine-{lr:g}.json"
    Recipe(lr, STEPS // 10, STEPS, decay="cosine").save(path)
    return path.name


def table(folder: Path, seeds: list[int], workers: int) -> None:
    schedules: dict[str, tuple[float, str | None]] = {}
    for lr in GRID:
        label = f"the example's StepLR at --lr {lr:g}" + (" (its default)" if lr == 1.0 else "")
        schedules[label] = (lr, None)
    for seed in seeds:
        path = folder / f"recipe-{seed}.json"
        if path.exists():
            r = json.loads(path.read_text())
            label = f"autowarm seed {seed}: {r['peak_lr']:.3g}, warmup {r['warmup_steps']}"
            schedules[label] = (r["peak_lr"], path.name)
    for lr in COSINE:
        schedules[f"cosine {lr:g}, warmup 10%"] = (lr, cosine(folder, lr))
    jobs = [(label, *how, seed) for label, how in schedules.items() for seed in seeds]
    with ThreadPoolExecutor(workers) as pool:
        losses = list(pool.map(lambda j: run(folder, *j[1:]), jobs))
    print(f"\n| schedule ({len(seeds)} seeds) | test loss |\n|---|---|")
    for label in schedules:
        vals = [v for job, v in zip(jobs, losses) if job[0] == label]
        se = statistics.stdev(vals) / len(vals) ** 0.5 if len(vals) > 1 else float("nan")
        print(f"| {label} | {statistics.fmean(vals):.4f} ± {se:.4f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="where main.py (the example) was copied")
    parser.add_argument("--probe", action="store_true", help="one autowarm search per seed")
    parser.add_argument("--runs", action="store_true", help="full runs: the table")
    parser.add_argument("--seeds", default="0", help="comma-separated")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    prepare(args.folder)
    if args.probe:
        for seed in seeds:
            probe(args.folder, seed)
    if args.runs:
        table(args.folder, seeds, args.workers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
