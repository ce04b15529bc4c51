"""Character-level GRU language model with Adam, on the Python stdlib's own source.

Run it (a few seconds on one CPU core, no download):

    python scripts/workloads/gru_lm.py
    python scripts/workloads/gru_lm.py --lr 1e-2 --warmup 50       # about the best schedule
    autowarm probe scripts/workloads/gru_lm.py                     # pick warmup + peak LR

Flags: --steps N --lr X --warmup W --min-lr-ratio R --seed S --metrics-out FILE.

Why this workload: a recurrent net, not a Transformer -- the other common sequence model. A GRU
has no attention softmax or residual LayerNorm to go wrong early; its gates saturate instead,
and the gradient through 32 time steps grows fast once the recurrent weights get large (the
loop clips it at 1.0, as RNN recipes do). Adam's default LR (1e-3) under-trains it badly in
this budget, about 10x that is best, and a few times more than that is already clearly worse:
the peak LR is what matters here, a short warmup helps a little. The data is the text of the
stdlib's .py files, so it is always there.
"""

from __future__ import annotations

import argparse
import json
import math
import sysconfig
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

import autowarm

# -----------------------------------------------------------------------------------------
# 0) defaults: what a typical user writes. Adam's default LR (1e-3), no warmup.
DEFAULTS = dict(steps=500, lr=1e-3, warmup=0, min_lr_ratio=0.0, seed=0)
N_CHARS = 250_000  # fixed slice of the stdlib text: 225k chars to train on, 25k to evaluate
CONTEXT = 32  # characters per training sequence (backprop through 32 time steps)
BATCH = 16
EMBED, HIDDEN = 32, 128  # one GRU layer
EVAL_BATCHES = 8  # fixed validation batches, same for every run and seed
ALPHABET = "\n" + "".join(chr(c) for c in range(32, 127))  # printable ASCII + newline


def load_text(n_chars: int = N_CHARS) -> str:
    """The first ``n_chars`` characters of the stdlib's top-level modules, in sorted order.

    Private modules (``_*.py``) are skipped: they include generated files (``_sysconfigdata``)
    that differ between machines. Anything outside printable ASCII becomes ``?`` so the vocab
    is fixed."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    parts, size = [], 0
    for path in sorted(stdlib.glob("*.py")):
        if path.name.startswith("_"):
            continue
        parts.append(path.read_text(encoding="utf-8", errors="replace"))
        size += len(parts[-1])
        if size >= n_chars:
            break
    text = "".join(parts)[:n_chars].replace("\t", "    ")
    return "".join(c if c in ALPHABET else "?" for c in text)


def build_data() -> tuple[torch.Tensor, torch.Tensor]:
    """Encode the text as int64 token ids and split it 90/10 into train and validation."""
    stoi = {c: i for i, c in enumerate(ALPHABET)}
    ids = torch.tensor([stoi[c] for c in load_text()], dtype=torch.long)
    n_train = int(0.9 * len(ids))
    return ids[:n_train], ids[n_train:]


def get_batch(data: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random windows of CONTEXT+1 characters: inputs and next-character targets."""
    ix = torch.randint(len(data) - CONTEXT - 1, (BATCH,), generator=gen)
    x = torch.stack([data[i : i + CONTEXT] for i in ix])
    y = torch.stack([data[i + 1 : i + 1 + CONTEXT] for i in ix])
    return x, y


class CharGRU(nn.Module):
    """Embedding -> one GRU layer -> linear head. PyTorch's default init."""

    def __init__(self, vocab: int = len(ALPHABET)) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, EMBED)
        self.rnn = nn.GRU(EMBED, HIDDEN, batch_first=True)
        self.head = nn.Linear(HIDDEN, vocab)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(self.embed(idx))
        logits = self.head(out)
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1))


def build_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return CharGRU()


def build_optimizer(model: nn.Module, lr: float) -> torch.optim.Optimizer:
    return torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.999))


def get_lr(it: int, *, lr: float, warmup: int, steps: int, min_lr_ratio: float) -> float:
    """nanoGPT-style schedule, a pure function of the step."""
    # 1) linear warmup from lr/(warmup+1) -- never exactly 0, so step 0 is not wasted
    if it < warmup:
        return lr * (it + 1) / (warmup + 1)
    # 2) cosine decay from lr to min_lr_ratio * lr over the rest of the run
    progress = (it - warmup) / max(1, steps - warmup)
    coeff = 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return lr * (min_lr_ratio + (1.0 - min_lr_ratio) * coeff)


@torch.no_grad()
def evaluate(model: nn.Module, val: torch.Tensor) -> float:
    """Mean loss on EVAL_BATCHES fixed validation batches (own generator: same for all runs)."""
    model.eval()
    gen = torch.Generator().manual_seed(1234)
    losses = [model(*get_batch(val, gen)).item() for _ in range(EVAL_BATCHES)]
    model.train()
    return sum(losses) / len(losses)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=DEFAULTS["steps"], help="optimizer steps")
    p.add_argument("--lr", type=float, default=DEFAULTS["lr"], help="peak learning rate")
    p.add_argument("--warmup", type=int, default=DEFAULTS["warmup"], help="warmup steps")
    p.add_argument("--min-lr-ratio", type=float, default=DEFAULTS["min_lr_ratio"])
    p.add_argument("--seed", type=int, default=DEFAULTS["seed"])
    p.add_argument("--metrics-out", help="write final metrics as JSON to this file")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> float:
    args = parse_args(argv)
    # 1) one thread: probes and benchmark grid points run side by side, and a single thread
    #    keeps the step time (and thus every timing we report) repeatable
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    train, val = build_data()
    model = build_model(args.seed)
    gen = torch.Generator().manual_seed(args.seed)  # data order depends on the seed too

    # 2) optimizer, wrapped by autowarm: the monitor watches the loss; under `autowarm probe`
    #    it also owns the LR (our get_lr below is then overridden)
    optimizer = build_optimizer(model, args.lr)
    optimizer = autowarm.wrap(optimizer)

    # 3) train
    train_losses: list[float] = []
    initial = None
    for it in range(args.steps):
        for group in optimizer.param_groups:
            group["lr"] = get_lr(
                it,
                lr=args.lr,
                warmup=args.warmup,
                steps=args.steps,
                min_lr_ratio=args.min_lr_ratio,
            )
        loss = model(*get_batch(train, gen))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        # why clip: what most RNN recipes do (exploding gradients); the LR still matters
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.report(loss)
        optimizer.step()
        value = loss.item()
        initial = value if initial is None else initial
        train_losses.append(value)

    # 4) evaluate and report; "diverged" = nonfinite or ended above where it started
    final = evaluate(model, val)
    diverged = not math.isfinite(final) or final > (initial or math.inf)
    metrics = {
        "final_eval_loss": final,
        "diverged": diverged,
        "initial_loss": initial,
        "steps": args.steps,
        "lr": args.lr,
        "warmup": args.warmup,
        "seed": args.seed,
        "train_losses": train_losses[:: max(1, args.steps // 100)],
        "wall_s": time.perf_counter() - t0,
    }
    if args.metrics_out:  # write then rename: a reader never sees half a file
        tmp = Path(f"{args.metrics_out}.tmp")
        tmp.write_text(json.dumps(metrics))
        tmp.replace(args.metrics_out)
    print(f"final eval loss: {final:.4f}")
    return final


if __name__ == "__main__":
    main()
