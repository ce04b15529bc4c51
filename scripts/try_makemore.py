"""Run autowarm on Karpathy's makemore (``makemore.py``, names.txt), a third-party script, and
train its pick against the script's own LR and a few cosine schedules.

    git clone https://github.com/karpathy/makemore /tmp/makemore    # not part of this repo
    python scripts/try_makemore.py /tmp/makemore --probe             # autowarm probe on it
    python scripts/try_makemore.py /tmp/makemore --seeds 0,1,2 --workers 1   # full runs: a table

What it does to the checkout (never to this repository; makemore's code is not committed here):
1) ``makemore.py`` gets the two autowarm lines a user adds (``autowarm.wrap`` around its
   AdamW, ``optimizer.report(loss)`` after the backward). The loop has no scheduler and runs
   until ``--max-steps``; it logs to tensorboard (``SummaryWriter(log_dir=work_dir)``) and
   saves ``model.pt`` there when the test loss improves;
2) ``--probe``: ``out/model.pt`` and an event file stand in for the user's own run, then
   ``autowarm probe --total-steps 5000 makemore.py -i names.txt -o out --max-steps 5000`` runs
   from the checkout, as a user would type it (DataLoader workers included), and ``out/`` is
   checked unchanged afterwards (before the fix, every trial left an event file there);
3) full runs (5,000 steps, makemore's default 4-layer transformer, batch 32, AdamW with
   betas (0.9, 0.99), weight decay 0.01), the LR set before each step: the script's own
   constant 5e-4; ``autowarm.json``'s recipe; cosine with a 5 % warmup on a few peak LRs. The
   split of names.txt is the script's (seed 3407); a seed is the init and the batch order.
   Reported per schedule, mean +- s.e. over seeds: the loss on the 1,000 test names (what
   makemore reports) and the mean training loss of the last 100 steps (what the probe scores).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

from _full_runs import print_table, run_cached  # scripts/ is sys.path[0]

TOTAL = 5000
OPTIMIZER = "    optimizer = torch.optim.AdamW("
BACKWARD = "        loss.backward()\n"
GRID_LRS = (1e-3, 2e-3, 4e-3, 8e-3)
GRID_WARMUP = 250
METRICS = [
    ("test_loss", "test loss", "{:.4f}"),
    ("train_loss", "train loss (last 100)", "{:.4f}"),
]


def patch(repo: Path) -> None:
    path = repo / "makemore.py"
    src = path.read_text()
    if "autowarm.wrap" in src:
        return
    assert src.count(OPTIMIZER) == 1 and src.count(BACKWARD) == 1, "makemore changed: update"
    start = src.index(OPTIMIZER)
    end = src.index("\n", start)
    line = src[start:end].replace("torch.optim.AdamW(", "autowarm.wrap(torch.optim.AdamW(") + ")"
    src = src[:start] + line + src[end:]
    src = src.replace(BACKWARD, BACKWARD + "        optimizer.report(loss)\n")
    src = src.replace("import argparse\n", "import argparse\nimport autowarm\n", 1)
    path.write_text(src)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def probe(repo: Path) -> int:
    out = repo / "out"
    out.mkdir(exist_ok=True)
    (out / "model.pt").write_bytes(b"the user's own checkpoint")
    (out / "events.out.tfevents.1.user").write_bytes(b"the user's own tensorboard run")
    before = _snapshot(out)
    cmd = ["autowarm", "probe", f"--total-steps={TOTAL}", "makemore.py", "-i", "names.txt",
           "-o", "out", f"--max-steps={TOTAL}"]  # fmt: skip
    code = subprocess.run(cmd, cwd=repo).returncode
    after = _snapshot(out)
    changed = sorted(k for k in {*before, *after} if before.get(k) != after.get(k))
    print(f"out/: {'CHANGED: ' + ', '.join(changed) if changed else 'unchanged'}")
    return code


def train(repo: Path, spec: dict[str, Any]) -> dict[str, float]:
    """One full run in this process (called through ``--run``)."""
    sys.path.insert(0, str(repo))
    import makemore as mm  # its classes; its main block does not run on import
    import torch

    import autowarm

    recipe = autowarm.Recipe.load(repo / "autowarm.json")
    if spec["kind"] == "constant":
        recipe = autowarm.Recipe(spec["lr"], 0, TOTAL, decay="constant")
    elif spec["kind"] == "grid":
        recipe = dataclasses.replace(recipe, peak_lr=spec["lr"], warmup_steps=spec["warmup"])
    recipe = recipe.for_run(TOTAL)
    torch.set_num_threads(1)
    mm.args = types.SimpleNamespace(device="cpu")  # evaluate() reads the script's global args
    torch.manual_seed(3407)  # the script's own split of names.txt
    train_set, test_set = mm.create_datasets(str(repo / "names.txt"))
    torch.manual_seed(3407 + spec["seed"])
    config = mm.ModelConfig(vocab_size=train_set.get_vocab_size(),
                            block_size=train_set.get_output_length(),
                            n_layer=4, n_head=4, n_embd=64, n_embd2=64)  # fmt: skip
    model = mm.Transformer(config)
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr_at(0), weight_decay=0.01,
                            betas=(0.9, 0.99), eps=1e-8)  # fmt: skip
    loader = mm.InfiniteDataLoader(train_set, batch_size=32, num_workers=0)
    losses: list[float] = []
    for step in range(TOTAL):
        for group in opt.param_groups:
            group["lr"] = recipe.lr_at(step)
        x, y = loader.next()
        _, loss = model(x, y)
        model.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    test = mm.evaluate(model, test_set, batch_size=100)
    return {"test_loss": test, "train_loss": statistics.fmean(losses[-100:])}


def run_all(repo: Path, seeds: list[int], workers: int, lrs: list[float]) -> None:
    specs = [{"kind": "constant", "lr": 5e-4}, {"kind": "autowarm"}] + [
        {"kind": "grid", "lr": lr, "warmup": GRID_WARMUP} for lr in lrs
    ]
    results = run_cached(__file__, repo, repo / "autowarm-runs", specs, seeds, workers)
    print_table(repo, specs, seeds, results, METRICS)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("repo", type=Path, help="a makemore checkout (its makemore.py gets patched)")
    p.add_argument("--probe", action="store_true", help="run autowarm probe on makemore")
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--lrs", help="peak LRs of the cosine schedules, comma-separated")
    p.add_argument("--run", help=argparse.SUPPRESS)  # one full run, JSON spec (internal)
    opts = p.parse_args(argv)
    repo = opts.repo.resolve()
    patch(repo)
    if opts.run:
        print(json.dumps(train(repo, json.loads(opts.run))))
        return 0
    if opts.probe:
        return probe(repo)
    lrs = [float(x) for x in opts.lrs.split(",")] if opts.lrs else list(GRID_LRS)
    run_all(repo, [int(s) for s in opts.seeds.split(",")], opts.workers, lrs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
