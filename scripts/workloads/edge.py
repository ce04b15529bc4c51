"""Linear regression with plain SGD (no momentum): the best LR sits just under divergence.

Run it (a second or two on one CPU core, no download):

    python scripts/workloads/edge.py
    python scripts/workloads/edge.py --lr 1.2 --warmup 0      # just over the edge: blows up
    autowarm probe scripts/workloads/edge.py                  # pick warmup + peak LR

Flags: --steps N --lr X --warmup W --min-lr-ratio R --seed S --metrics-out FILE.

Why this workload: on a quadratic, SGD is stable only below a sharp threshold set by the
largest curvature (about 2/lambda_max, lower with small batches), and below it a larger LR is
simply faster along the flat directions, which this budget never finishes. So the loss keeps
improving with the LR right up to the edge and then the run blows up within a few steps --
no gentle "too hot" region in between. The best schedule is the one a step under the cliff:
a tuner that overshoots by a little diverges, one that backs off a safety factor of several
pays for it. Warmup barely helps: the threshold does not move during training.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import autowarm

# -----------------------------------------------------------------------------------------
# 0) defaults: what a typical user writes. SGD's usual LR (0.1), no warmup.
DEFAULTS = dict(steps=500, lr=0.1, warmup=0, min_lr_ratio=0.0, seed=0)
BATCH = 32
N_FEATURES = 32
N_TRAIN, N_VAL = 4000, 1000
NOISE = 0.1  # label noise: the best reachable eval MSE is about NOISE**2


def build_data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A fixed synthetic regression (numpy seed 0, the same for every run): Gaussian inputs
    whose covariance has eigenvalues log-spaced from 1 down to 1e-3 in a random basis, and a
    target whose every eigen-direction explains the same share of the variance (so the flat
    directions matter as much as the steep one), plus a bias and Gaussian label noise."""
    rng = np.random.RandomState(0)
    eigs = np.logspace(0.0, -3.0, N_FEATURES)
    basis, _ = np.linalg.qr(rng.randn(N_FEATURES, N_FEATURES))
    x = rng.randn(N_TRAIN + N_VAL, N_FEATURES) * np.sqrt(eigs) @ basis.T
    w = basis @ (rng.choice([-1.0, 1.0], N_FEATURES) / np.sqrt(eigs * N_FEATURES))  # var 1
    y = x @ w + 0.5 + NOISE * rng.randn(len(x))
    x_t = torch.tensor(x, dtype=torch.float32)
    y_t = torch.tensor(y, dtype=torch.float32)
    return x_t[:N_TRAIN], y_t[:N_TRAIN], x_t[N_TRAIN:], y_t[N_TRAIN:]


def get_batch(
    x: torch.Tensor, y: torch.Tensor, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    ix = torch.randint(len(x), (BATCH,), generator=gen)
    return x[ix], y[ix]


class LinearRegression(nn.Module):
    """One nn.Linear (PyTorch's default init), mean squared error."""

    def __init__(self, n_in: int = N_FEATURES) -> None:
        super().__init__()
        self.linear = nn.Linear(n_in, 1)

    def forward(self, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(self.linear(x).squeeze(-1), targets)


def build_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return LinearRegression()


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
