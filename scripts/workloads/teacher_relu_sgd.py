"""A ReLU student MLP fitted to a random ReLU teacher by MSE, plain SGD, batch 16.

Run it (a few seconds on one CPU core, no download: the data are generated from a seed):

    python scripts/workloads/teacher_relu_sgd.py
    autowarm probe scripts/workloads/teacher_relu_sgd.py          # pick warmup + peak LR

Flags: --steps N --lr X --warmup W --min-lr-ratio R --seed S --metrics-out FILE.

Why this workload: a fixed random teacher (20 -> 64 -> 64 -> 1, ReLU, seed 1234) labels
Gaussian inputs (fresh noise of std 0.05 on the labels); a student of the same shape (PyTorch's
default init) learns it from 3,000 examples by mean squared error and plain SGD on mini-batches
of 16, scored on 1,000 more. Small batches and no momentum: the run is limited by SGD's
stability edge and its gradient noise at once. Added unseen, with matfact_sgd and
ridge_nesterov, to judge the edge rung (scripts/bench_quality_variants.md).
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
# 0) defaults: what a typical user writes. SGD's usual LR (0.1), no warmup.
DEFAULTS = dict(steps=500, lr=0.1, warmup=0, min_lr_ratio=0.0, seed=0)
BATCH = 16
DIM_IN, WIDTH = 20, 64
N_TRAIN, N_VAL = 3000, 1000


def mlp() -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(DIM_IN, WIDTH), nn.ReLU(), nn.Linear(WIDTH, WIDTH), nn.ReLU(), nn.Linear(WIDTH, 1)
    )


def build_data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gaussian inputs, the teacher's outputs (scaled to unit variance) plus noise (std 0.05);
    the same for every seed (seed 1234): seeds vary the student's init and the batches."""
    torch.manual_seed(1234)
    teacher = mlp()
    gen = torch.Generator().manual_seed(1234)
    x = torch.randn(N_TRAIN + N_VAL, DIM_IN, generator=gen)
    with torch.no_grad():
        y = teacher(x).squeeze(-1)
    y = (y - y.mean()) / y.std() + 0.05 * torch.randn(len(y), generator=gen)
    return x[:N_TRAIN], y[:N_TRAIN], x[N_TRAIN:], y[N_TRAIN:]


def get_batch(
    x: torch.Tensor, y: torch.Tensor, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    ix = torch.randint(len(x), (BATCH,), generator=gen)
    return x[ix], y[ix]


class Student(nn.Module):
    """The teacher's shape with its own init; mean squared error."""

    def __init__(self) -> None:
        super().__init__()
        self.net = mlp()

    def forward(self, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(self.net(x).squeeze(-1), targets)


def build_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return Student()


def build_optimizer(model: nn.Module, lr: float) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.0)


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
    """Mean squared error on the whole validation set."""
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
