"""Run autowarm on timm's own ``train.py``, a third-party script, and train its pick against
timm's default schedule at a sweep of LRs.

    # timm's checkout is not part of this repo; its train.py needs torchvision, so a venv of its own
    git clone https://github.com/huggingface/pytorch-image-models /tmp/timm/src
    python -m venv /tmp/timm/venv && /tmp/timm/venv/bin/pip install torch==2.14.1 \\
        torchvision==0.29.1 pyyaml huggingface_hub safetensors scikit-learn pillow -e .
    mkdir -p /tmp/timm/work && cp /tmp/timm/src/train.py /tmp/timm/work/
    PYTHONPATH=/tmp/timm/src /tmp/timm/venv/bin/python scripts/try_timm.py /tmp/timm/work \\
        --probe --seeds 0,1,2                                       # three searches
    PYTHONPATH=/tmp/timm/src /tmp/timm/venv/bin/python scripts/try_timm.py /tmp/timm/work \\
        --runs --seeds 0,1,2                                        # full runs: a table

What it does in that folder (never in this repository):
1) ``train.py`` gets the lines a user adds: ``import autowarm``, ``optimizer =
   autowarm.wrap(optimizer)`` after ``create_optimizer_v2`` and ``optimizer.report(_loss)`` at
   the top of its ``_backward``. For the full runs only, a ``RECIPE`` variable sets each
   update's LR from the recipe at the top of ``train_one_epoch``'s loop, which is what the
   probe's report tells a timm user to do (timm's scheduler writes ``param_group["lr"]``
   itself, so a pasted torch scheduler would be overwritten). ``data/`` gets scikit-learn's
   digits as 32x32 PNGs in timm's folder layout (1,437 train, 360 validation; no download);
2) the command is timm's own with a tiny model of its test zoo: ``train.py --data-dir data
   --model test_resnet --num-classes 10 --input-size 3 32 32 -b 64 -j 1 --epochs 20 --device
   cpu`` (22 updates an epoch, 440 in all; ``-j 0`` fails in timm with persistent workers).
   timm's defaults do the rest: SGD with Nesterov momentum 0.9, weight decay 2e-5, LR
   0.1 x 64 / 256 = 0.025, a 5-epoch warmup from 1e-5, cosine by epoch, its augmentation,
   a checkpoint every epoch (the trials' go to their scratch folders);
3) ``--probe``: ``autowarm probe --total-steps 440 --seed S train.py -- ARGS`` per seed, as a
   user would type it; each recipe is kept as ``recipe-S.json``;
4) ``--runs``: full runs (one torch thread each, ``--seed`` = the seed) of timm's defaults,
   of each ``recipe-S.json`` and of timm's defaults at ``--lr`` 0.01 ... 1. Reported per
   schedule, mean +- s.e. over seeds: the last epoch's validation loss and top-1.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import shlex
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

STEPS = 440  # 20 epochs x 22 updates (1,437 images, batch 64, the last partial batch dropped)
ARGS = shlex.split(
    "--data-dir data --model test_resnet --num-classes 10 --input-size 3 32 32 -b 64 -j 1 "
    "--epochs 20 --device cpu"
)
GRID = (0.01, 0.03, 0.1, 0.3, 1.0)
PATCH = [  # (timm's line, what it becomes)
    ("import torch\n", "import torch\nimport autowarm\n"),
    ("        **args.opt_kwargs,\n    )\n",
     "        **args.opt_kwargs,\n    )\n    optimizer = autowarm.wrap(optimizer)\n"),
    ("        def _backward(_loss):\n",
     "        def _backward(_loss):\n            optimizer.report(_loss)\n"),
    # the full runs' harness, not a user's edit: the recipe's LR at each update
    ("        last_batch = batch_idx == last_batch_idx\n",
     "        last_batch = batch_idx == last_batch_idx\n"
     "        if os.environ.get('RECIPE'):\n"
     "            _lr = autowarm.Recipe.load(os.environ['RECIPE']).lr_at(num_updates)\n"
     "            for param_group in optimizer.param_groups:\n"
     "                param_group['lr'] = _lr\n"),
]  # fmt: skip


def digits(folder: Path) -> None:
    """scikit-learn's digits, 8x8 upscaled to 32x32, as timm's folder dataset reads them."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    for k, i in enumerate(np.random.default_rng(0).permutation(len(d.target))):
        out = folder / "data" / ("validation" if k < 360 else "train") / str(d.target[i])
        out.mkdir(parents=True, exist_ok=True)
        pixels = (d.images[i] * 255 / 16).astype(np.uint8)
        Image.fromarray(pixels).resize((32, 32), Image.BILINEAR).save(out / f"{i}.png")


def prepare(folder: Path) -> None:
    path = folder / "train.py"
    src = path.read_text()
    if "autowarm" not in src:
        for old, new in PATCH:
            assert src.count(old) == 1, f"train.py changed: update the patch for {old!r}"
            src = src.replace(old, new)
        path.write_text(src)
    if not (folder / "data" / "train").exists():
        digits(folder)


def env(**extra: str) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", **extra}


def probe(folder: Path, seed: int) -> None:
    cmd = [sys.executable, "-m", "autowarm", "probe", "--total-steps", str(STEPS)]
    cmd += ["--seed", str(seed), "--out", f"recipe-{seed}.json", "train.py", "--", *ARGS]
    print("$", " ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, cwd=folder, env=env(), check=True)


def run(folder: Path, name: str, args: list[str], recipe: str | None, seed: int) -> dict:
    """One full run: its last epoch's row of timm's summary.csv."""
    summary = folder / "runs" / f"{name}-{seed}" / "summary.csv"
    if not summary.exists():
        cmd = [sys.executable, "train.py", *args, "--seed", str(seed), "--output", "runs"]
        cmd += ["--experiment", f"{name}-{seed}", "--checkpoint-hist", "1"]
        subprocess.run(
            cmd, cwd=folder, env=env(**({"RECIPE": recipe} if recipe else {})),
            capture_output=True, check=True,
        )  # fmt: skip
    with open(summary) as f:
        return list(csv.DictReader(f))[-1]


def timm_flags(recipe: Path) -> list[str]:
    """timm's own schedule flags for a recipe, as the probe's report prints them."""
    from autowarm import Recipe
    from autowarm.schedule._timm import timm_command

    line = timm_command(Recipe.load(recipe), ["python", "train.py", *ARGS])
    assert line is not None
    return shlex.split(line.splitlines()[-1])[2:]


def check_flags(folder: Path, seeds: list[int]) -> None:
    """timm's own scheduler built from the flags against the recipe, update by update."""
    import importlib.util

    import torch
    from timm.scheduler import create_scheduler_v2, scheduler_kwargs

    from autowarm import Recipe

    spec = importlib.util.spec_from_file_location("timm_train", folder / "train.py")
    assert spec is not None and spec.loader is not None
    train = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train)
    per_epoch = STEPS // 20
    for seed in seeds:
        path = folder / f"recipe-{seed}.json"
        recipe, flags = Recipe.load(path), timm_flags(path)
        sys.argv = ["train.py", *flags]
        args, _ = train._parse_args()
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=args.lr)
        scheduler, epochs = create_scheduler_v2(
            optimizer, **scheduler_kwargs(args), updates_per_epoch=per_epoch
        )
        lrs = []
        for update in range(epochs * per_epoch):  # as train_one_epoch steps it
            lrs.append(optimizer.param_groups[0]["lr"])
            scheduler.step_update(num_updates=update + 1)
            if (update + 1) % per_epoch == 0:
                scheduler.step((update + 1) // per_epoch)
        # against the recipe, and against it with timm's whole-epoch warmup
        rounded = dataclasses.replace(recipe, warmup_steps=args.warmup_epochs * per_epoch)
        worst = [
            max(abs(a - r.lr_at(i)) for i, a in enumerate(lrs)) / recipe.peak_lr
            for r in (recipe, rounded)
        ]
        print(f"{path.name}: {' '.join(flags[-17:])}")
        print(f"  timm: {len(lrs)} updates, {epochs} epochs; recipe: {recipe.total_steps}; "
              f"largest difference {worst[0]:.2e} of the peak, {worst[1]:.2e} with the "
              f"warmup rounded to {rounded.warmup_steps} as timm's")  # fmt: skip


def table(folder: Path, seeds: list[int], workers: int) -> None:
    schedules: dict[str, tuple[str, list[str], str | None]] = {
        "timm's defaults: 0.025, 5-epoch warmup": ("default", ARGS, None)
    }
    for seed in seeds:
        path = folder / f"recipe-{seed}.json"
        if path.exists():
            r = json.loads(path.read_text())
            label = f"autowarm seed {seed}: {r['peak_lr']:.3g}, warmup {r['warmup_steps']}"
            schedules[label] = (f"recipe{seed}", ARGS, path.name)
            schedules[f"{label}, as timm's flags"] = (f"flags{seed}", timm_flags(path), None)
    for lr in GRID:
        schedules[f"timm's defaults at --lr {lr:g}"] = (f"lr{lr:g}", [*ARGS, "--lr", str(lr)], None)
    jobs = [(label, *how, seed) for label, how in schedules.items() for seed in seeds]
    with ThreadPoolExecutor(workers) as pool:
        rows = list(pool.map(lambda j: run(folder, *j[1:]), jobs))
    print(f"\n| schedule ({len(seeds)} seeds) | validation loss | top-1 % |\n|---|---|---|")
    for label in schedules:
        got = [row for job, row in zip(jobs, rows) if job[0] == label]
        cells = []
        for key in ("eval_loss", "eval_top1"):
            vals = [float(row[key]) for row in got]
            se = statistics.stdev(vals) / len(vals) ** 0.5 if len(vals) > 1 else float("nan")
            cells.append(f"{statistics.fmean(vals):.4f} ± {se:.4f}")
        print(f"| {label} | {' | '.join(cells)} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="where train.py (timm's) was copied")
    parser.add_argument("--probe", action="store_true", help="one autowarm search per seed")
    parser.add_argument("--runs", action="store_true", help="full runs: the table")
    parser.add_argument(
        "--check-flags", action="store_true", help="timm's scheduler from the flags vs the recipe"
    )
    parser.add_argument("--seeds", default="0", help="comma-separated")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    prepare(args.folder)
    if args.probe:
        for seed in seeds:
            probe(args.folder, seed)
    if args.check_flags:
        check_flags(args.folder, seeds)
    if args.runs:
        table(args.folder, seeds, args.workers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
