"""LSTM classifying 600 synthetic token sequences by which of two tokens comes first, Adam.

Run it (a few seconds on one CPU core, no download: the sequences are generated from a seed):

    python scripts/workloads/lstm_order.py
    autowarm probe scripts/workloads/lstm_order.py --score-on-val   # pick warmup + peak LR

Flags: --steps N --lr X --warmup W --min-lr-ratio R --seed S --metrics-out FILE, and
--score-on-val: probe trials are scored by the validation loss (``autowarm.score_with``)
instead of the training loss (no effect outside a probe).

Why this workload: a small sequence classifier -- embeddings (32), one LSTM layer (64), a
linear head on the last state, Adam at its default LR, batches of 32 -- on 600 sequences of 20
tokens from a vocabulary of 16, labelled by whether token 1 first appears before token 2 (both
appear in each), 10 % of the training labels flipped; 400 steps are 21 epochs. 600 other
sequences, labelled cleanly, are the validation set.
Added unseen, probed with --score-on-val only, to judge the gap rule's split
(``GAP_SPLIT``, scripts/bench_quality_variants.md).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

import autowarm

# -----------------------------------------------------------------------------------------
# 0) defaults: what a typical user writes. Adam's default LR (1e-3), no warmup.
DEFAULTS = dict(steps=400, lr=1e-3, warmup=0, min_lr_ratio=0.0, seed=0)
BATCH = 32
WIDTH = 64
VOCAB = 16
LENGTH = 20
N_TRAIN = 600
N_VAL = 600  # the sequences are fixed for all seeds (their own generator, seed 0)


def build_data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random sequences holding tokens 1 and 2 at random places; label: 1 comes first."""
    gen = torch.Generator().manual_seed(0)
    n = N_TRAIN + N_VAL
    x = torch.randint(3, VOCAB, (n, LENGTH), generator=gen)
    places = torch.rand(n, LENGTH, generator=gen).argsort(dim=1)[:, :2]
    rows = torch.arange(n)
    x[rows, places[:, 0]], x[rows, places[:, 1]] = 1, 2
    y = (places[:, 0] < places[:, 1]).long()
    flip = torch.rand(N_TRAIN, generator=gen) < 0.1
    y[:N_TRAIN] = torch.where(flip, 1 - y[:N_TRAIN], y[:N_TRAIN])
    return x[:N_TRAIN], y[:N_TRAIN], x[N_TRAIN:], y[N_TRAIN:]


def get_batch(
    x: torch.Tensor, y: torch.Tensor, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    ix = torch.randint(len(x), (BATCH,), generator=gen)
    return x[ix], y[ix]


class OrderLSTM(nn.Module):
    """Embedding (32) -> one LSTM layer (64) -> linear on the last state. Default init."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(VOCAB, 32)
        self.lstm = nn.LSTM(32, WIDTH, batch_first=True)
        self.head = nn.Linear(WIDTH, 2)

    def forward(self, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(self.emb(x))
        return F.cross_entropy(self.head(out[:, -1]), targets)


def build_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return OrderLSTM()


def build_optimizer(model: nn.Module, lr: float) -> torch.optim.Optimizer:
    return torch.optim.Adam(model.parameters(), lr=lr)


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
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Cross-entropy on the whole validation set."""
    model.eval()
    loss = model(x, y).item()
    model.train()
    return loss


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=DEFAULTS["steps"], help="optimizer steps")
    p.add_argument("--lr", type=float, default=DEFAULTS["lr"], help="peak learning rate")
    p.add_argument("--warmup", type=int, default=DEFAULTS["warmup"], help="warmup steps")
    p.add_argument("--min-lr-ratio", type=float, default=DEFAULTS["min_lr_ratio"])
    p.add_argument("--seed", type=int, default=DEFAULTS["seed"])
    p.add_argument("--metrics-out", help="write final metrics as JSON to this file")
    p.add_argument("--score-on-val", action="store_true", help="probe on the validation loss")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> float:
    args = parse_args(argv)
    # 1) one thread: probes and benchmark grid points run side by side, and a single thread
    #    keeps the step time (and thus every timing we report) repeatable
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    x_train, y_train, x_val, y_val = build_data()
    model = build_model(args.seed)
    gen = torch.Generator().manual_seed(args.seed)  # data order depends on the seed too

    # 2) optimizer, wrapped by autowarm: the monitor watches the loss; under `autowarm probe`
    #    it also owns the LR (our get_lr below is then overridden)
    optimizer = build_optimizer(model, args.lr)
    optimizer = autowarm.wrap(optimizer)
    if args.score_on_val:  # a probe trial's score: the validation loss where it ends
        autowarm.score_with(lambda: evaluate(model, x_val, y_val))

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
        loss = model(*get_batch(x_train, y_train, gen))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.report(loss)
        optimizer.step()
        value = loss.item()
        initial = value if initial is None else initial
        train_losses.append(value)

    # 4) evaluate and report; "diverged" = nonfinite or ended above where it started
    final = evaluate(model, x_val, y_val)
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
