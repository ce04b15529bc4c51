"""A small U-Net with GroupNorm and SiLU that denoises the 8x8 digits: residual, MSE, AdamW.

Run it (a few seconds on one CPU core, no download: the digits ship with scikit-learn):

    python scripts/workloads/unet_denoise.py
    autowarm probe scripts/workloads/unet_denoise.py                 # pick warmup + peak LR

Flags: --steps N --lr X --warmup W --min-lr-ratio R --seed S --metrics-out FILE, and
--score-on-val: probe trials are scored by the validation loss (``autowarm.score_with``)
instead of the training loss (no effect outside a probe).

Why this workload: image denoising as people write it with the U-Net of Ronneberger et al.
(2015) in the blocks diffusion models made common (3x3 conv -> GroupNorm of 8 groups ->
SiLU), at the digits' scale -- two such blocks of 16 channels at 8x8, a max-pool, two of 32
at 4x4, a transposed conv back up, the skip concatenated, one block of 16 and a 3x3 conv to
one channel. As in DnCNN (Zhang et al., 2017) it predicts the noise, which is subtracted from
its input (residual learning); the loss is the mean squared error to the clean digit: about
0.2 at init, while doing nothing (the noisy input) scores 0.09. The noise (Gaussian, std 0.3)
is drawn afresh at every step, so no two batches are alike. AdamW at its default LR (1e-3)
and weight decay (1e-2) on mini-batches of 32 fed by a shuffling ``DataLoader``; 1,297
training digits, which 800 steps see about 20 times (19.7 passes); the other 500 are the
validation set, noised by a fixed generator, so a model has one validation loss.
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
from sklearn.datasets import load_digits
from torch.utils.data import DataLoader, TensorDataset

import autowarm

# -----------------------------------------------------------------------------------------
# 0) defaults: what a typical user writes. AdamW's default LR (1e-3), no warmup.
DEFAULTS = dict(steps=800, lr=1e-3, warmup=0, min_lr_ratio=0.0, seed=0)
BATCH = 32
NOISE = 0.3  # std of the Gaussian noise, pixels in [0, 1]
GROUPS = 8  # GroupNorm's groups, in every block
N_VAL = 500  # the other 1,297 digits train; the split is fixed for all seeds


def build_data() -> tuple[torch.Tensor, torch.Tensor]:
    """The 1,797 digits as [N, 1, 8, 8] images, pixels scaled from 0..16 to [0, 1], split at
    random by a fixed generator."""
    x = torch.tensor(load_digits().data, dtype=torch.float32).view(-1, 1, 8, 8) / 16.0
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(1234))
    return x[order[N_VAL:]], x[order[:N_VAL]]


def block(c_in: int, c_out: int) -> nn.Module:
    """3x3 conv (padding 1: the size is kept) -> GroupNorm -> SiLU. GroupNorm, not BatchNorm:
    it does not depend on the batch, so training and evaluation compute the same function."""
    conv = nn.Conv2d(c_in, c_out, 3, padding=1)
    return nn.Sequential(conv, nn.GroupNorm(GROUPS, c_out), nn.SiLU())


class UNet(nn.Module):
    """8x8 (16 ch) -> pool -> 4x4 (32 ch) -> up to 8x8, concat the skip -> 16 -> 1 channel."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Sequential(block(1, 16), block(16, 16))
        self.mid = nn.Sequential(block(16, 32), block(32, 32))
        self.up = nn.ConvTranspose2d(32, 16, 2, stride=2)
        self.dec = block(32, 16)
        self.out = nn.Conv2d(16, 1, 3, padding=1)

    def forward(self, noisy: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
        skip = self.enc(noisy)
        h = self.up(self.mid(F.max_pool2d(skip, 2)))
        noise = self.out(self.dec(torch.cat([h, skip], dim=1)))
        # residual learning: the net predicts the noise, which is subtracted; the noise is a
        # simpler target than the clean digit (DnCNN's argument), and zero noise = identity
        return F.mse_loss(noisy - noise, clean)


def build_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return UNet()


def build_optimizer(model: nn.Module, lr: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-2)


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
def evaluate(model: nn.Module, x: torch.Tensor) -> float:
    """MSE to the clean digits on the whole validation set, its noise drawn from a generator
    of its own: the same noise at every call, and none taken from the training's."""
    model.eval()
    noise = NOISE * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    loss = model(x + noise, x).item()
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
    x_train, x_val = build_data()
    model = build_model(args.seed)
    # the loader's own generator: the shuffle order depends on the seed and on nothing else
    # (not on how many random numbers the model's init drew); drop_last keeps every batch the
    # same size, so the loss's noise does not jump at the end of a pass. No labels: the
    # clean digits are the targets
    loader = DataLoader(
        TensorDataset(x_train), batch_size=BATCH, shuffle=True, drop_last=True,
        generator=torch.Generator().manual_seed(args.seed),
    )  # fmt: skip

    # 2) optimizer, wrapped by autowarm: the monitor watches the loss; under `autowarm probe`
    #    it also owns the LR (our get_lr below is then overridden)
    optimizer = build_optimizer(model, args.lr)
    optimizer = autowarm.wrap(optimizer)
    if args.score_on_val:  # a probe trial's score: the validation loss where it ends
        autowarm.score_with(lambda: evaluate(model, x_val))
    noise_gen = torch.Generator().manual_seed(args.seed)  # the noise's own stream, seeded alike

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
            (xb,) = next(batches)
        except StopIteration:
            batches = iter(loader)
            (xb,) = next(batches)
        # a fresh noise draw for every batch: the clean digits are the targets
        loss = model(xb + NOISE * torch.randn(xb.shape, generator=noise_gen), xb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.report(loss)
        optimizer.step()
        value = loss.item()
        initial = value if initial is None else initial
        train_losses.append(value)

    # 4) evaluate and report; "diverged" = nonfinite or ended above where it started
    final = evaluate(model, x_val)
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
