"""A GRU regressor of noisy two-sine series with outlying targets: Huber loss, NAdam.

Run it (a few seconds on one CPU core, no download: the series are generated from a seed):

    python scripts/workloads/gru_huber.py
    autowarm probe scripts/workloads/gru_huber.py                    # pick warmup + peak LR

Flags: --steps N --lr X --warmup W --min-lr-ratio R --seed S --metrics-out FILE, and
--score-on-val: probe trials are scored by the validation loss (``autowarm.score_with``)
instead of the training loss (no effect outside a probe).

Why this workload: sequence regression as people write it for sensor data -- a one-layer GRU
(32 wide) over a univariate series, a linear head on its last state -- with robust targets:
each series is two noisy sines of random frequency, amplitude and phase, its target the
amplitude-weighted sum of the two frequencies (standardised), and one target in ten is
corrupted by a Cauchy error, so the loss is Huber's (delta 1), not MSE, which those outliers
would dominate. NAdam at its default LR (2e-3) on mini-batches of 16 fed by a shuffling
``DataLoader``; 1,600 training series, which 600 steps see six times (6 passes); 1,000 other
series (their targets corrupted alike) are the validation set.
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
# 0) defaults: what a typical user writes. NAdam's default LR (2e-3), no warmup.
DEFAULTS = dict(steps=600, lr=2e-3, warmup=0, min_lr_ratio=0.0, seed=0)
BATCH = 16
LENGTH = 32  # samples per series
WIDTH = 32
OUTLIERS = 0.1  # the share of targets corrupted by a heavy-tailed error
N_TRAIN, N_VAL = 1600, 1000  # the series are fixed for all seeds (their own generator)


def build_data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each series is two sines (frequency 0.1..1.5 rad per sample, amplitude 0.5..1.5, random
    phase) plus noise of std 0.3, as [N, LENGTH, 1]; its target, the amplitude-weighted sum of
    the two frequencies (standardised), plus noise of std 0.1, plus -- for a tenth of the
    targets -- a Cauchy error (scale 1, clipped to +-20): the outliers Huber's loss is for."""
    gen = torch.Generator().manual_seed(1234)
    n = N_TRAIN + N_VAL
    t = torch.arange(LENGTH, dtype=torch.float32)
    freq = 0.1 + 1.4 * torch.rand(n, 2, 1, generator=gen)
    phase = 2 * math.pi * torch.rand(n, 2, 1, generator=gen)
    amp = 0.5 + torch.rand(n, 2, 1, generator=gen)
    x = (amp * torch.sin(freq * t + phase)).sum(1) + 0.3 * torch.randn(n, LENGTH, generator=gen)
    target = (amp * freq).sum((1, 2))
    y = (target - target.mean()) / target.std() + 0.1 * torch.randn(n, generator=gen)
    cauchy = torch.tan(math.pi * (torch.rand(n, generator=gen) - 0.5)).clamp(-20, 20)
    y = y + torch.where(torch.rand(n, generator=gen) < OUTLIERS, cauchy, 0.0)
    x = x.unsqueeze(-1)
    return x[:N_TRAIN], y[:N_TRAIN], x[N_TRAIN:], y[N_TRAIN:]


class GRURegressor(nn.Module):
    """One GRU layer (32) over the series -> linear on the last state; Huber loss (delta 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(1, WIDTH, batch_first=True)
        self.head = nn.Linear(WIDTH, 1)

    def forward(self, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(x)
        return F.huber_loss(self.head(out[:, -1]).squeeze(-1), targets, delta=1.0)


def build_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return GRURegressor()


def build_optimizer(model: nn.Module, lr: float) -> torch.optim.Optimizer:
    return torch.optim.NAdam(model.parameters(), lr=lr)


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
    """Huber loss on the whole validation set (its outliers included)."""
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
    # the loader's own generator: the shuffle order depends on the seed and on nothing else
    # (not on how many random numbers the model's init drew); drop_last keeps every batch the
    # same size, so the loss's noise does not jump at the end of a pass
    loader = DataLoader(
        TensorDataset(x_train, y_train), batch_size=BATCH, shuffle=True, drop_last=True,
        generator=torch.Generator().manual_seed(args.seed),
    )  # fmt: skip

    # 2) optimizer, wrapped by autowarm: the monitor watches the loss; under `autowarm probe`
    #    it also owns the LR (our get_lr below is then overridden)
    optimizer = build_optimizer(model, args.lr)
    optimizer = autowarm.wrap(optimizer)
    if args.score_on_val:  # a probe trial's score: the validation loss where it ends
        autowarm.score_with(lambda: evaluate(model, x_val, y_val))

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
            xb, yb = next(batches)
        except StopIteration:
            batches = iter(loader)
            xb, yb = next(batches)
        loss = model(xb, yb)
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
