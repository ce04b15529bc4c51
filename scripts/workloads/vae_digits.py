"""A variational autoencoder of the 8x8 digits: Bernoulli decoder, negative ELBO, Adamax.

Run it (a few seconds on one CPU core, no download: the digits ship with scikit-learn):

    python scripts/workloads/vae_digits.py
    autowarm probe scripts/workloads/vae_digits.py                   # pick warmup + peak LR

Flags: --steps N --lr X --warmup W --min-lr-ratio R --seed S --metrics-out FILE, and
--score-on-val: probe trials are scored by the validation loss (``autowarm.score_with``)
instead of the training loss (no effect outside a probe).

Why this workload: the VAE of Kingma & Welling (2014) as the PyTorch example writes it -- an
MLP encoder (64 -> 256 -> ReLU) to the mean and log-variance of an 8-dimensional Gaussian, a
reparameterised sample, an MLP decoder (8 -> 256 -> ReLU -> 64) to pixel logits, the loss the
summed binary cross-entropy of the pixels (scaled to [0, 1]) plus the KL divergence to the
standard normal, per image. Its training loss is noisy twice over: the batch and the sampled
latent. Adamax (Adam's infinity-norm variant) at its default LR (2e-3) on mini-batches of 16
fed by a shuffling ``DataLoader``; 1,000 training digits, which 1,000 steps see 16 times (16
passes); the other 797 are the validation set, scored by the same loss with the latent noise
drawn from a fixed generator, so a model has one validation loss.
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
# 0) defaults: what a typical user writes. Adamax's default LR (2e-3), no warmup.
DEFAULTS = dict(steps=1000, lr=2e-3, warmup=0, min_lr_ratio=0.0, seed=0)
BATCH = 16
PIXELS, WIDTH, LATENT = 64, 256, 8
N_TRAIN = 1000  # the other 797 digits validate; the split is fixed for all seeds


def build_data() -> tuple[torch.Tensor, torch.Tensor]:
    """The 1,797 digits, pixels scaled from 0..16 to [0, 1] (the Bernoulli decoder's range),
    split at random by a fixed generator."""
    x = torch.tensor(load_digits().data, dtype=torch.float32) / 16.0
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(1234))
    return x[order[:N_TRAIN]], x[order[N_TRAIN:]]


class VAE(nn.Module):
    """Encoder 64 -> 256 -> (mean, log-variance) of 8; decoder 8 -> 256 -> 64 pixel logits."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Linear(PIXELS, WIDTH)
        self.mean = nn.Linear(WIDTH, LATENT)
        self.logvar = nn.Linear(WIDTH, LATENT)
        self.dec = nn.Sequential(nn.Linear(LATENT, WIDTH), nn.ReLU(), nn.Linear(WIDTH, PIXELS))

    def forward(self, x: torch.Tensor, eps: torch.Tensor | None = None) -> torch.Tensor:
        """The negative ELBO per image, averaged over the batch; ``eps`` is the latent noise
        (drawn here from the global generator when not given)."""
        h = F.relu(self.enc(x))
        mean, logvar = self.mean(h), self.logvar(h)
        eps = torch.randn_like(mean) if eps is None else eps
        z = mean + eps * torch.exp(0.5 * logvar)  # the reparameterisation: a path for grads
        recon = F.binary_cross_entropy_with_logits(self.dec(z), x, reduction="sum")
        kl = -0.5 * torch.sum(1 + logvar - mean.pow(2) - logvar.exp())
        return (recon + kl) / len(x)


def build_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return VAE()


def build_optimizer(model: nn.Module, lr: float) -> torch.optim.Optimizer:
    return torch.optim.Adamax(model.parameters(), lr=lr)


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
    """The negative ELBO per image on the whole validation set, its latent noise drawn from a
    generator of its own: the same noise at every call, and none taken from the training's."""
    model.eval()
    eps = torch.randn(len(x), LATENT, generator=torch.Generator().manual_seed(0))
    loss = model(x, eps).item()
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
    # digits are their own targets
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
        loss = model(xb)
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
