"""Run autowarm on PyTorch's own word-level language model example (pytorch/examples,
``word_language_model/main.py``: a 2-layer LSTM on WikiText-2), a third-party script, and
train its pick against the script's own LR and a few cosine schedules.

    git clone https://github.com/pytorch/examples /tmp/ex    # not part of this repo
    python scripts/try_word_lm.py /tmp/ex/word_language_model --probe    # autowarm probe on it
    python scripts/try_word_lm.py /tmp/ex/word_language_model --seeds 0,1 --workers 2   # a table

What it does to the checkout (never to this repository; the example's code is not committed):
1) ``main.py`` gets the lines a user adds to its ``--use-optimizer`` path: ``autowarm.wrap``
   around its AdamW and ``optimizer.report(loss)`` after the backward (under the script's own
   ``if args.use_optimizer:``, as its manual-SGD path has no optimizer). The loop clips at 0.25
   with ``clip_grad_norm_``, catches ``KeyboardInterrupt`` around its epochs, saves
   ``model.pt`` whenever the validation loss improves, and "anneals" a variable ``lr`` that
   the AdamW never sees; it has no scheduler;
2) the data, ``data/wt8k``: WikiText-2 as the checkout ships it, made small enough for two CPU
   cores -- its ``valid.txt`` (214k words) is the training text and its ``test.txt``, split in
   halves, the validation and test texts; words outside the training text's 8,000 most common
   become ``<unk>`` (a 175 ms step instead of 350 ms with the 33k vocabulary);
3) ``--probe``: ``model.pt`` stands in for the user's own checkpoint, then
   ``autowarm probe --total-steps 1860 main.py --data data/wt8k --use-optimizer --lr 0.001
   --epochs 6`` runs from the checkout (6 epochs of 310 batches), and ``model.pt`` is checked
   unchanged afterwards;
4) full runs (6 epochs, the script's defaults: 200-wide embeddings and LSTM, dropout 0.2, batch
   20, bptt 35, clip 0.25, AdamW), the LR set before each step: the script's ``--lr 0.001``
   held constant, ``autowarm.json``'s recipe, and cosine schedules with a 5 % warmup at a few
   peak LRs. A seed is the init and the dropout. Reported per schedule, mean +- s.e. over
   seeds: the final model's loss on the test text (the script reports its best-validation
   epoch's instead) and the mean training loss of the last 100 steps.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from _full_runs import print_table, run_cached  # scripts/ is sys.path[0]

EPOCHS = 6
STEPS_PER_EPOCH = 310  # 213,886 training words / (batch 20 x bptt 35)
TOTAL = EPOCHS * STEPS_PER_EPOCH
SCRIPT_LR = 1e-3
OPTIMIZER = "    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)\n"
BACKWARD = "        loss.backward()\n"
GRID_LRS = (1e-3, 3e-3, 1e-2)
VOCAB = 8000
METRICS = [
    ("test_loss", "test loss", "{:.4f}"),
    ("train_loss", "train loss (last 100)", "{:.4f}"),
]


def patch(repo: Path) -> None:
    path = repo / "main.py"
    src = path.read_text()
    if "autowarm.wrap" not in src:
        assert src.count(OPTIMIZER) == 1 and src.count(BACKWARD) == 1, "main.py changed: update"
        wrapped = OPTIMIZER.replace("torch.optim.AdamW(", "autowarm.wrap(torch.optim.AdamW(")
        src = src.replace(OPTIMIZER, wrapped.replace(")\n", "))\n"))
        report = "        if args.use_optimizer:\n            optimizer.report(loss)\n"
        src = src.replace(BACKWARD, BACKWARD + report)
        path.write_text(src.replace("import argparse\n", "import argparse\nimport autowarm\n", 1))
    _small_data(repo)


def _small_data(repo: Path) -> None:
    out = repo / "data" / "wt8k"
    if (out / "test.txt").exists():
        return
    source = repo / "data" / "wikitext-2"
    test = (source / "test.txt").read_text(encoding="utf-8").splitlines(keepends=True)
    texts = {
        "train": (source / "valid.txt").read_text(encoding="utf-8").splitlines(keepends=True),
        "valid": test[: len(test) // 2],
        "test": test[len(test) // 2 :],
    }
    counts = collections.Counter(w for line in texts["train"] for w in line.split())
    keep = {w for w, _ in counts.most_common(VOCAB)}
    out.mkdir(parents=True, exist_ok=True)
    for name, lines in texts.items():
        words = (" ".join(w if w in keep else "<unk>" for w in line.split()) for line in lines)
        (out / f"{name}.txt").write_text("".join(f"{line}\n" for line in words), encoding="utf-8")


def probe(repo: Path) -> int:
    ckpt = repo / "model.pt"
    ckpt.write_bytes(b"the user's own checkpoint")
    cmd = ["autowarm", "probe", f"--total-steps={TOTAL}", "main.py", "--data", "data/wt8k",
           "--use-optimizer", "--lr", str(SCRIPT_LR), "--epochs", str(EPOCHS)]  # fmt: skip
    code = subprocess.run(cmd, cwd=repo).returncode
    same = ckpt.read_bytes() == b"the user's own checkpoint"
    print(f"model.pt: {'unchanged' if same else 'CHANGED'}")
    return code


def train(repo: Path, spec: dict[str, Any]) -> dict[str, float]:
    """One full run in this process (called through ``--run``): main.py's loop, the LR set
    before each step."""
    sys.path.insert(0, str(repo))
    import data  # the example's own modules
    import model as models
    import torch

    import autowarm

    recipe = autowarm.Recipe.load(repo / "autowarm.json")
    if spec["kind"] == "constant":
        recipe = autowarm.Recipe(spec["lr"], 0, TOTAL, decay="constant")
    elif spec["kind"] == "grid":
        recipe = dataclasses.replace(recipe, peak_lr=spec["lr"], warmup_steps=spec["warmup"])
    recipe = recipe.for_run(TOTAL)
    torch.set_num_threads(1)
    torch.manual_seed(1111 + spec["seed"])
    corpus = data.Corpus(str(repo / "data" / "wt8k"))

    def batchify(d: torch.Tensor, bsz: int) -> torch.Tensor:
        return d.narrow(0, 0, d.size(0) // bsz * bsz).view(bsz, -1).t().contiguous()

    train_data, test_data = batchify(corpus.train, 20), batchify(corpus.test, 10)
    lm = models.RNNModel("LSTM", len(corpus.dictionary), 200, 200, 2, 0.2, False)
    opt = torch.optim.AdamW(lm.parameters(), lr=recipe.lr_at(0))
    criterion = torch.nn.NLLLoss()
    losses: list[float] = []
    step = 0
    for _ in range(EPOCHS):
        lm.train()
        hidden = lm.init_hidden(20)
        for i in range(0, train_data.size(0) - 1, 35):
            x, y = _batch(train_data, i)
            for group in opt.param_groups:
                group["lr"] = recipe.lr_at(step)
            opt.zero_grad()
            hidden = tuple(h.detach() for h in hidden)
            out, hidden = lm(x, hidden)
            loss = criterion(out, y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(lm.parameters(), 0.25)
            opt.step()
            losses.append(loss.item())
            step += 1
    return {
        "test_loss": _evaluate(lm, criterion, test_data),
        "train_loss": statistics.fmean(losses[-100:]),
    }


def _batch(source: Any, i: int) -> tuple[Any, Any]:
    n = min(35, len(source) - 1 - i)
    return source[i : i + n], source[i + 1 : i + 1 + n].reshape(-1)


def _evaluate(lm: Any, criterion: Any, source: Any) -> float:
    import torch

    lm.eval()
    total, hidden = 0.0, lm.init_hidden(10)
    with torch.no_grad():
        for i in range(0, source.size(0) - 1, 35):
            x, y = _batch(source, i)
            out, hidden = lm(x, hidden)
            total += len(x) * criterion(out, y).item()
    return total / (len(source) - 1)


def run_all(repo: Path, seeds: list[int], workers: int, lrs: list[float]) -> None:
    specs = [{"kind": "constant", "lr": SCRIPT_LR}, {"kind": "autowarm"}] + [
        {"kind": "grid", "lr": lr, "warmup": round(0.05 * TOTAL)} for lr in lrs
    ]
    results = run_cached(__file__, repo, repo / "autowarm-runs", specs, seeds, workers)
    print_table(repo, specs, seeds, results, METRICS)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("repo", type=Path, help="the example's folder (its main.py gets patched)")
    p.add_argument("--probe", action="store_true", help="run autowarm probe on the example")
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
