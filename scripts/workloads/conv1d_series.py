"""A dilated 1-D CNN forecasting noisy synthetic waves, AdamW, fresh data every batch.

Run it (a few seconds on one CPU core, no download: the series are generated from a seed):

    python scripts/workloads/conv1d_series.py
    autowarm probe scripts/workloads/conv1d_series.py                 # pick warmup + peak LR

Flags: --steps N --lr X --warmup W --min-lr-ratio R --seed S --metrics-out FILE.

Why this workload: a forecasting model as people write one for sensor data -- three dilated
1-D convolutions (kernel 5, dilation 1/2/4) with ReLU and a linear head reading the next 8
values from the last 64 -- trained by MSE with AdamW (weight decay 0.05) on batches of 64
series drawn fresh from a generator (sums of three sines of random frequency, phase and
amplitude, plus noise): nothing to memorise, and no normalisation layer. Added unseen to judge
a fixed 10 % warmup (``WARMUP_RULE=prior``, scripts/bench_quality_variants.md).
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
# 0) defaults: what a typical user writes. AdamW's default LR (1e-3), no warmup.
DEFAULTS = dict(steps=500, lr=1e-3, warmup=0, min_lr_ratio=0.0, seed=0)
BATCH = 64
PAST, AHEAD = 64, 8
CHANNELS = 32
NOISE = 0.1
N_VAL = 512


def waves(n: int, gen: torch.Generator) -> torch.Tensor:
    """``n`` series of PAST + AHEAD values: three sines each, plus Gaussian noise."""
    t = torch.arange(PAST + AHEAD, dtype=torch.float32)
    freq = 0.02 + 0.3 * torch.rand(n, 3, 1, generator=gen)
    phase = 2 * math.pi * torch.rand(n, 3, 1, generator=gen)
    amp = 0.2 + torch.rand(n, 3, 1, generator=gen)
    clean = (amp * torch.sin(2 * math.pi * freq * t + phase)).sum(dim=1)
    return clean + NOISE * torch.randn(n, PAST + AHEAD, generator=gen)


def build_data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Only the validation series are fixed (seed 1234); training batches are drawn fresh."""
    val = waves(N_VAL, torch.Generator().manual_seed(1234))
    empty = torch.empty(0)
    return empty, empty, val[:, :PAST], val[:, PAST:]


def get_batch(
    x: torch.Tensor, y: torch.Tensor, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """A fresh batch from the generator (``x``, ``y`` are unused: there is no training set)."""
    series = waves(BATCH, gen)
    return series[:, :PAST], series[:, PAST:]


class Forecaster(nn.Module):
    """3 x (dilated conv1d k5 -> ReLU) -> linear from the flattened features. Default init."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(1, CHANNELS, 5, padding=2), nn.ReLU(),
            nn.Conv1d(CHANNELS, CHANNELS, 5, padding=4, dilation=2), nn.ReLU(),
            nn.Conv1d(CHANNELS, CHANNELS, 5, padding=8, dilation=4), nn.ReLU(),
            nn.Flatten(), nn.Linear(CHANNELS * PAST, AHEAD),
        )  # fmt: skip

    def forward(self, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(self.net(x.unsqueeze(1)), targets)


def build_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return Forecaster()


def build_optimizer(model: nn.Module, lr: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)


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
