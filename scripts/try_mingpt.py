"""Run autowarm on Karpathy's minGPT adder (``projects/adder``), a third-party script, and train
its pick against the script's own LR and a grid of full runs.

    git clone https://github.com/karpathy/minGPT /tmp/mingpt        # not part of this repo
    python scripts/try_mingpt.py /tmp/mingpt --probe                 # autowarm probe on it
    python scripts/try_mingpt.py /tmp/mingpt --seeds 0,1 --workers 2     # full runs: a table
    python scripts/try_mingpt.py /tmp/mingpt --seeds 0,1,2,3,4,5 --grid 0.004:1000,0.016:1000

What it does to the checkout (never to this repository; minGPT's code is not committed here):
1) ``mingpt/trainer.py`` gets the two autowarm lines a user adds (``autowarm.wrap`` around
   ``configure_optimizers``, ``optimizer.report(self.loss)`` after the backward); minGPT's
   ``clip_grad_norm_(..., 1.0)`` stays;
2) ``--probe``: ``out/adder/model.pt`` and ``config.json`` stand in for the user's own files
   (the adder writes both: its config at start-up, its checkpoint at iteration 0), then
   ``autowarm probe --total-steps 2000 projects/adder/adder.py --trainer.num_workers=0`` runs
   from the checkout, and the two files are checked byte-identical afterwards;
3) full runs (2,000 iterations, the adder's own config: gpt-nano, batch 64, AdamW with two
   param groups, clipping at 1.0), the LR set before each iteration through minGPT's
   ``on_batch_end`` callback: the script's own constant 5e-4; ``autowarm.json``'s recipe; the
   same recipe shape (warmup, cosine decay) on a grid of peak LR x warmup. Reported per
   schedule, mean +- s.e. over seeds (a seed is the init and the batch order): the test
   accuracy on the adder's 500 held-out sums (greedy decoding, as the adder's ``eval_split``)
   and the mean training loss of the last 100 iterations (what the probe scores).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from _full_runs import print_table, run_cached  # scripts/ is sys.path[0]

TOTAL = 2000
WRAP = "        self.optimizer = model.configure_optimizers(config)\n"
BACKWARD = "            self.loss.backward()\n"
GRID_LRS = (5e-4, 1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2)
GRID_WARMUPS = (0, 200, 1000)


def patch(repo: Path) -> None:
    path = repo / "mingpt" / "trainer.py"
    src = path.read_text()
    if "autowarm.wrap" in src:
        return
    assert WRAP in src and BACKWARD in src, "minGPT's trainer.py changed: update the patch"
    src = src.replace(WRAP, "        import autowarm\n" + WRAP.replace(
        "model.configure_optimizers(config)", "autowarm.wrap(model.configure_optimizers(config))"
    ))  # fmt: skip
    src = src.replace(BACKWARD, BACKWARD + "            self.optimizer.report(self.loss)\n")
    path.write_text(src)


def probe(repo: Path) -> int:
    out = repo / "out" / "adder"
    out.mkdir(parents=True, exist_ok=True)
    mine = {"model.pt": b"the user's own checkpoint", "config.json": b'{"the user": "config"}'}
    for name, data in mine.items():
        (out / name).write_bytes(data)
    cmd = ["autowarm", "probe", f"--total-steps={TOTAL}", "projects/adder/adder.py",
           "--trainer.num_workers=0"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(repo)}
    code = subprocess.run(cmd, cwd=repo, env=env).returncode
    for name, data in mine.items():
        same = (out / name).read_bytes() == data
        print(f"out/adder/{name}: {'byte-identical' if same else 'CHANGED by the probe'}")
    return code


def train(repo: Path, spec: dict[str, Any]) -> dict[str, float]:
    """One full run in this process (called through ``--run``)."""
    sys.path[:0] = [str(repo), str(repo / "projects" / "adder")]
    import torch
    from adder import AdditionDataset, get_config  # the adder's own dataset and config
    from mingpt.model import GPT
    from mingpt.trainer import Trainer
    from mingpt.utils import set_seed

    import autowarm

    recipe = autowarm.Recipe.load(repo / "autowarm.json")
    if spec["kind"] == "constant":
        recipe = autowarm.Recipe(spec["lr"], 0, TOTAL, decay="constant")
    elif spec["kind"] == "grid":
        recipe = dataclasses.replace(recipe, peak_lr=spec["lr"], warmup_steps=spec["warmup"])
    recipe = recipe.for_run(TOTAL)
    torch.set_num_threads(1)
    config = get_config()
    config.trainer.max_iters, config.trainer.num_workers = TOTAL, 0
    config.trainer.learning_rate = recipe.lr_at(0)
    set_seed(3407 + spec["seed"])
    train_set = AdditionDataset(config.data, "train")
    test_set = AdditionDataset(config.data, "test")
    config.model.vocab_size = train_set.get_vocab_size()
    config.model.block_size = train_set.get_block_size()
    model = GPT(config.model)
    trainer = Trainer(config.trainer, model, train_set)
    losses: list[float] = []

    def on_batch_end(t: Trainer) -> None:  # after iteration t.iter_num: the next one's LR
        losses.append(t.loss.item())
        for group in t.optimizer.param_groups:
            group["lr"] = recipe.lr_at(t.iter_num + 1)

    trainer.set_callback("on_batch_end", on_batch_end)
    trainer.run()
    return {"test_acc": _accuracy(model, test_set, config.data.ndigit),
            "train_loss": statistics.fmean(losses[-100:])}  # fmt: skip


def _accuracy(model: Any, dataset: Any, ndigit: int) -> float:
    import torch

    model.eval()
    x = torch.stack([dataset[i][0] for i in range(len(dataset))])
    with torch.no_grad():
        out = model.generate(x[:, : 2 * ndigit], ndigit + 1, do_sample=False)
    powers = torch.tensor([10**i for i in range(ndigit + 1)])
    a = (x[:, :ndigit] * powers[:ndigit].flip(0)).sum(1)
    b = (x[:, ndigit : 2 * ndigit] * powers[:ndigit].flip(0)).sum(1)
    c = (out[:, -(ndigit + 1) :] * powers).sum(1)  # the sum's digits come out reversed
    return float((c == a + b).float().mean())


def run_all(repo: Path, seeds: list[int], workers: int, cells: list[tuple[float, int]]) -> None:
    specs = [{"kind": "constant", "lr": 5e-4}, {"kind": "autowarm"}] + [
        {"kind": "grid", "lr": lr, "warmup": w} for lr, w in cells
    ]
    results = run_cached(__file__, repo, repo / "out" / "autowarm-runs", specs, seeds, workers)
    metrics = [
        ("test_acc", "test accuracy", "{:.1%}"),
        ("train_loss", "train loss (last 100)", "{:.4f}"),
    ]
    print_table(repo, specs, seeds, results, metrics, grid_name="grid, cosine")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("repo", type=Path, help="a minGPT checkout (its trainer.py gets patched)")
    p.add_argument("--probe", action="store_true", help="run autowarm probe on the adder")
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--grid", help="grid cells LR:WARMUP,... (default: the full grid)")
    p.add_argument("--run", help=argparse.SUPPRESS)  # one full run, JSON spec (internal)
    opts = p.parse_args(argv)
    repo = opts.repo.resolve()
    patch(repo)
    if opts.run:
        print(json.dumps(train(repo, json.loads(opts.run))))
        return 0
    if opts.probe:
        return probe(repo)
    cells = [(lr, w) for lr in GRID_LRS for w in GRID_WARMUPS]
    if opts.grid:
        cells = [(float(c.split(":")[0]), int(c.split(":")[1])) for c in opts.grid.split(",")]
    run_all(repo, [int(s) for s in opts.seeds.split(",")], opts.workers, cells)
    return 0


if __name__ == "__main__":
    sys.exit(main())
