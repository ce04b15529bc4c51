"""Small ResNet with BatchNorm on scikit-learn's 8x8 digits, large-batch SGD with momentum.

Run it (a few seconds on one CPU core, no download):

    python recipes/digits_resnet/train.py
    python recipes/digits_resnet/train.py --lr 3.0 --warmup 0     # too hot without warmup
    autowarm probe recipes/digits_resnet/train.py                 # pick warmup + peak LR

Flags: --steps N --lr X --warmup W --min-lr-ratio R --seed S --metrics-out FILE.

Why this recipe: Goyal et al. 2017 ("ImageNet in 1 hour") showed that large-batch SGD needs
a larger LR and that jumping straight to it makes the early updates blow up; a gradual warmup
lets the same peak LR train well. Here the batch is a big share of the small training set, the
typical user LR is SGD's classic 0.1, and the best schedule uses a larger peak with warmup.
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

import autowarm

# -----------------------------------------------------------------------------------------
# 0) defaults: what a typical user writes. SGD's classic LR 0.1, a short warmup.
DEFAULTS = dict(steps=1000, lr=0.1, warmup=10, min_lr_ratio=0.0, seed=0)
BATCH = 256  # large batch: a sixth of the 1,437 training images per step
WIDTH = 8  # channels of the stem (the residual block has 2x); ~7 ms per step on one core
N_VAL = 360  # the last 360 of the 1,797 digits are the validation set (fixed for all seeds)
VAL_COPIES = 4  # noisy copies of each validation digit: a less noisy eval loss
NOISE = 0.5  # std of the Gaussian pixel noise (pixels are in [0, 1])


def build_data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """sklearn's digits as float images in [0, 1] (N, 1, 8, 8) and int64 labels, split.

    The task is *noisy* digits: Gaussian pixel noise (std NOISE) on every image. Clean digits
    are too easy -- the model memorizes them in a few hundred steps and the eval loss then
    measures overconfidence on a handful of images, not the schedule. The validation set is
    VAL_COPIES fixed noisy copies of the held-out digits (the same for every run and seed)."""
    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(digits.target, dtype=torch.long)
    x_val, y_val = x[-N_VAL:].repeat(VAL_COPIES, 1, 1, 1), y[-N_VAL:].repeat(VAL_COPIES)
    gen = torch.Generator().manual_seed(1234)
    x_val = x_val + NOISE * torch.randn(x_val.shape, generator=gen)
    return x[:-N_VAL], y[:-N_VAL], x_val, y_val


def get_batch(
    x: torch.Tensor, y: torch.Tensor, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """A random batch, shifted by up to one pixel, with fresh pixel noise."""
    ix = torch.randint(len(x), (BATCH,), generator=gen)
    xb = F.pad(x[ix], (1, 1, 1, 1))
    dx, dy = torch.randint(3, (2,), generator=gen).tolist()  # one shift per batch: cheap
    xb = xb[:, :, dy : dy + 8, dx : dx + 8]
    return xb + NOISE * torch.randn(xb.shape, generator=gen), y[ix]


class BasicBlock(nn.Module):
    """The ResNet basic block: conv-BN-ReLU-conv-BN plus a (projected) shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet(nn.Module):
    """stem (8x8) -> residual block (4x4, 2x channels) -> global pool -> linear.

    One block only: convolutions on 8x8 images are slow on one CPU core, and one block with
    its BatchNorms and projected shortcut is enough to show the large-batch warmup effect."""

    def __init__(self, width: int = WIDTH, n_classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width))
        self.layer = BasicBlock(width, 2 * width, 2)
        self.fc = nn.Linear(2 * width, n_classes)

    def forward(self, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        h = self.layer(F.relu(self.stem(x)))
        logits = self.fc(h.mean(dim=(2, 3)))
        return F.cross_entropy(logits, targets)


def build_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return ResNet()


def build_optimizer(model: nn.Module, lr: float) -> torch.optim.Optimizer:
    # the usual ResNet recipe: momentum 0.9, weight decay 5e-4 (Nesterov off: plain SGD users)
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)


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
    """Cross-entropy on the whole (fixed, noisy) validation set; BatchNorm uses its running
    statistics, as at inference."""
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
