"""Linear regression on the diabetes data's raw pairwise products, Nesterov SGD (momentum 0.9).

Run it (a second or two on one CPU core, no download: the data ship with scikit-learn):

    python scripts/workloads/ridge_nesterov.py
    autowarm probe scripts/workloads/ridge_nesterov.py            # pick warmup + peak LR

Flags: --steps N --lr X --warmup W --min-lr-ratio R --seed S --metrics-out FILE.

Why this workload: scikit-learn's diabetes data (442 patients, 10 features, each centred and
scaled to unit norm over the patients, then x20), expanded with every pairwise product (65
features, not rescaled: correlated columns make the curvature ill-conditioned), the target
standardised;
a linear model by mean squared error, Nesterov momentum 0.9, mini-batches of 32 of 342 training
patients, scored on the other 100. A convex problem whose edge is set by the largest curvature
and the momentum. Added unseen, with matfact_sgd and teacher_relu_sgd, to judge the edge rung
(scripts/bench_quality_variants.md).
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
from sklearn.datasets import load_diabetes

import autowarm

# -----------------------------------------------------------------------------------------
# 0) defaults: what a typical user writes. SGD's usual LR (0.1), no warmup.
DEFAULTS = dict(steps=500, lr=0.1, warmup=0, min_lr_ratio=0.0, seed=0)
BATCH = 32
N_TRAIN = 342


def build_data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The features, their pairwise products (i <= j), a fixed split (seed 1234)."""
    data = load_diabetes()
    x = torch.tensor(data.data, dtype=torch.float32) * 20.0  # each column now of norm ~20
    i, j = torch.triu_indices(x.shape[1], x.shape[1])
    x = torch.cat([x, x[:, i] * x[:, j]], dim=1)
    y = torch.tensor(data.target, dtype=torch.float32)
    y = (y - y.mean()) / y.std()
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(1234))
    x, y = x[perm], y[perm]
    return x[:N_TRAIN], y[:N_TRAIN], x[N_TRAIN:], y[N_TRAIN:]


def get_batch(
    x: torch.Tensor, y: torch.Tensor, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    ix = torch.randint(len(x), (BATCH,), generator=gen)
    return x[ix], y[ix]


class LinearRegression(nn.Module):
    """One nn.Linear (PyTorch's default init), mean squared error."""

    def __init__(self, n_in: int = 65) -> None:
        super().__init__()
        self.linear = nn.Linear(n_in, 1)

    def forward(self, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(self.linear(x).squeeze(-1), targets)


def build_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return LinearRegression()


def build_optimizer(model: nn.Module, lr: float) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True)


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
