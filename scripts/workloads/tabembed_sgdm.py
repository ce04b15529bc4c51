"""An MLP over categorical embeddings and numeric columns of a generated table: SGD momentum.

Run it (a few seconds on one CPU core, no download: the table is generated from a seed):

    python scripts/workloads/tabembed_sgdm.py
    autowarm probe scripts/workloads/tabembed_sgdm.py               # pick warmup + peak LR

Flags: --steps N --lr X --warmup W --min-lr-ratio R --seed S --metrics-out FILE, and
--score-on-val: probe trials are scored by the validation loss (``autowarm.score_with``)
instead of the training loss (no effect outside a probe).

Why this workload: the entity-embedding network of Guo & Berkhahn (2016), as people write it
for click or churn tables -- one ``nn.Embedding`` (8 wide) per categorical column, the
embeddings concatenated with the standardised numeric columns, then an MLP (-> 64 -> ReLU ->
dropout 0.2 -> 64 -> ReLU -> dropout 0.2 -> 1 logit) under a binary cross-entropy. Its six
categorical columns run from 4 to 200 levels with Zipf-like frequencies, so the rare levels'
embeddings are seen a few times a pass and start to fit noise late in the run. The label is a
Bernoulli draw from a hidden logit: a random effect per level of every column, an interaction
of two columns, and a non-linear function of the eight numeric ones. SGD with momentum 0.9
and weight decay 1e-4 at LR 0.01, the textbook settings, on mini-batches of 32 fed by a
shuffling ``DataLoader``: a rare level's embedding gets a gradient only in the batches that
hold it, and momentum carries it between them. 12,000 training rows, which 3,000 steps see 8
times (8 passes) -- a long run, 30 times a 100-step probe; 3,000 other rows are the
validation set.
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
from torch.utils.data import DataLoader, TensorDataset

import autowarm

# -----------------------------------------------------------------------------------------
# 0) defaults: what a typical user writes. SGD momentum at LR 0.01, no warmup.
DEFAULTS = dict(steps=3000, lr=0.01, warmup=0, min_lr_ratio=0.0, seed=0)
BATCH = 32
CARDINALITIES = (4, 7, 12, 30, 80, 200)  # levels of each categorical column
NUMERIC = 8
EMBED, WIDTH, DROPOUT = 8, 64, 0.2
N_TRAIN, N_VAL = 12000, 3000  # the table is fixed for all seeds (its own generator)


def build_data() -> tuple[torch.Tensor, ...]:
    """15,000 rows: categorical codes [N, 6] (Zipf-like level frequencies, so some levels are
    rare), numeric columns [N, 8] (standard normal), and 0/1 labels drawn from a hidden
    logit -- per-level effects (std 0.7), an interaction of the first two columns (std 0.8),
    a linear and a non-linear term of the numeric columns: a logit of std about 2, so the
    label is noisy but far from a coin flip."""
    gen = torch.Generator().manual_seed(1234)
    n = N_TRAIN + N_VAL
    cats, logit = [], torch.zeros(n)
    for card in CARDINALITIES:
        freq = 1.0 / torch.arange(1, card + 1, dtype=torch.float32) ** 0.8  # Zipf-like
        codes = torch.multinomial(freq, n, replacement=True, generator=gen)
        logit += 0.7 * torch.randn(card, generator=gen)[codes]
        cats.append(codes)
    x_cat = torch.stack(cats, 1)
    pair = torch.randn(CARDINALITIES[0], CARDINALITIES[1], generator=gen)
    logit += 0.8 * pair[x_cat[:, 0], x_cat[:, 1]]
    x_num = torch.randn(n, NUMERIC, generator=gen)
    w = torch.randn(NUMERIC, generator=gen) / math.sqrt(NUMERIC)
    logit += x_num @ w + torch.sin(2 * x_num[:, 0]) * x_num[:, 1] + 0.5 * (x_num[:, 2] ** 2 - 1)
    y = torch.bernoulli(torch.sigmoid(logit), generator=gen)
    return (x_cat[:N_TRAIN], x_num[:N_TRAIN], y[:N_TRAIN],
            x_cat[N_TRAIN:], x_num[N_TRAIN:], y[N_TRAIN:])  # fmt: skip


class EmbeddingMLP(nn.Module):
    """An embedding per categorical column, concatenated with the numeric columns -> MLP."""

    def __init__(self) -> None:
        super().__init__()
        self.embeds = nn.ModuleList(nn.Embedding(card, EMBED) for card in CARDINALITIES)
        self.mlp = nn.Sequential(
            nn.Linear(EMBED * len(CARDINALITIES) + NUMERIC, WIDTH), nn.ReLU(), nn.Dropout(DROPOUT),
            nn.Linear(WIDTH, WIDTH), nn.ReLU(), nn.Dropout(DROPOUT),
            nn.Linear(WIDTH, 1),
        )  # fmt: skip

    def forward(self, cat: torch.Tensor, num: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        h = torch.cat([emb(cat[:, i]) for i, emb in enumerate(self.embeds)] + [num], dim=1)
        return F.binary_cross_entropy_with_logits(self.mlp(h).squeeze(-1), targets)


def build_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return EmbeddingMLP()


def build_optimizer(model: nn.Module, lr: float) -> torch.optim.Optimizer:
    # one group: weight decay on every tensor, embeddings included, as most scripts have it
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)


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
def evaluate(model: nn.Module, cats: torch.Tensor, nums: torch.Tensor, y: torch.Tensor) -> float:
    """Binary cross-entropy on the whole validation set (dropout off: eval mode)."""
    model.eval()
    loss = model(cats, nums, y).item()
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
    c_train, n_train, y_train, c_val, n_val, y_val = build_data()
    model = build_model(args.seed)
    # the loader's own generator: the shuffle order depends on the seed and on nothing else
    # (not on how many random numbers the model's init drew); drop_last keeps every batch the
    # same size, so the loss's noise does not jump at the end of a pass
    loader = DataLoader(
        TensorDataset(c_train, n_train, y_train), batch_size=BATCH, shuffle=True, drop_last=True,
        generator=torch.Generator().manual_seed(args.seed),
    )  # fmt: skip

    # 2) optimizer, wrapped by autowarm: the monitor watches the loss; under `autowarm probe`
    #    it also owns the LR (our get_lr below is then overridden)
    optimizer = build_optimizer(model, args.lr)
    optimizer = autowarm.wrap(optimizer)
    if args.score_on_val:  # a probe trial's score: the validation loss where it ends
        autowarm.score_with(lambda: evaluate(model, c_val, n_val, y_val))

    # 3) train: one batch per step, a new shuffled pass whenever the loader runs out
    train_losses: list[float] = []
    initial = None
    batches = iter(loader)
    for it in range(args.steps):
        for group in optimizer.param_groups:
            group["lr"] = get_lr(
                it,
                lr=args.lr,
                warmup=args.warmup,
                steps=args.steps,
                min_lr_ratio=args.min_lr_ratio,
            )
        try:
            cb, nb, yb = next(batches)
        except StopIteration:
            batches = iter(loader)
            cb, nb, yb = next(batches)
        loss = model(cb, nb, yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.report(loss)
        optimizer.step()
        value = loss.item()
        initial = value if initial is None else initial
        train_losses.append(value)

    # 4) evaluate and report; "diverged" = nonfinite or ended above where it started
    final = evaluate(model, c_val, n_val, y_val)
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
