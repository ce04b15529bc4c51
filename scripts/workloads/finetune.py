"""Fine-tuning: an MLP pretrained (in this script) on one synthetic task, fine-tuned on another.

Run it (a few seconds on one CPU core, no download):

    python scripts/workloads/finetune.py
    python scripts/workloads/finetune.py --lr 1e-2 --warmup 0    # too hot: wrecks the features
    autowarm probe scripts/workloads/finetune.py                 # pick warmup + peak LR
    autowarm probe scripts/workloads/finetune.py --score-on-val  # ... scored on validation

Flags: --steps N --lr X --warmup W --min-lr-ratio R --seed S --metrics-out FILE, and
--score-on-val: probe trials are scored by the validation loss (``autowarm.score_with``)
instead of the training loss, which this fine-tune overfits (no effect outside a probe).

Why this workload: fine-tuning is where a user most often reaches for a low LR and a warmup.
Two tasks share hidden features: the body was pretrained on task A (20,000 examples), the
classifier head for task B is new and random, and task B's fine-tuning set is small (300
examples) -- too small to learn the features from scratch (a model trained from scratch on it
ends at about 1.4 validation loss, the pretrained one near 0.96). A hot run -- Adam moves every
weight by about the LR, while the fresh head still sends back large, arbitrary gradients --
scrambles the pretrained features, and 300 examples do not teach them back: the run memorises
the fine-tuning set and its validation loss climbs far above the initial one. A too-cold run
barely moves the head. So the best peak LR sits low (about 1e-3 here), and a hot LR is hurt
less with a warmup. The damage only shows over the full run: a short probe at a hot LR still
looks good, which is what this workload tests.

The pretraining is part of the setup, identical for every run (fixed seed 1234, fixed steps,
about a second); it is not cached on disk. Only the fine-tuning optimizer is wrapped by autowarm,
and only its LR and warmup are what the flags control. --seed changes the new head's init and
the fine-tuning data order; the data, the validation set and the pretrained body are fixed.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

import autowarm

# -----------------------------------------------------------------------------------------
# 0) defaults: what a typical user writes. AdamW's default LR (1e-3), a short warmup.
DEFAULTS = dict(steps=400, lr=1e-3, warmup=20, min_lr_ratio=0.0, seed=0)
BATCH = 32
WIDTH, DEPTH = 128, 3  # hidden ReLU layers of the body
N_IN, N_FEAT = 32, 16  # input and hidden-feature dimensions of the synthetic tasks
N_PRE_CLASSES, N_CLASSES = 50, 10  # task A (pretraining) and task B (fine-tuning)
N_PRE, N_FT, N_VAL = 20_000, 300, 4_000
PRETRAIN_SEED, PRETRAIN_STEPS, PRETRAIN_LR, PRETRAIN_BATCH = 1234, 600, 2e-3, 128


def build_data() -> dict[str, torch.Tensor]:
    """Two tasks on the same hidden features. A fixed random "teacher" layer maps Gaussian
    inputs to 16 features h(x) = tanh(x @ W); task A's 50 labels are argmax(h(x) @ W_A),
    task B's 10 are argmax(h(x) @ W_B) for another fixed W_B. Pretraining: 20,000 examples
    of task A (50 classes: enough directions to learn all of h); fine-tuning: only 300 of
    task B -- too few to learn h from scratch, enough to read task B off pretrained features.
    Validation: 4,000 more of task B. All fixed (seed 0)."""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(N_IN, N_FEAT, generator=g) / N_IN**0.5
    w_a = torch.randn(N_FEAT, N_PRE_CLASSES, generator=g)
    w_b = torch.randn(N_FEAT, N_CLASSES, generator=g)
    x = torch.randn(N_PRE + N_FT + N_VAL, N_IN, generator=g)
    h = torch.tanh(x @ w)
    y_a, y_b = (h @ w_a).argmax(1), (h @ w_b).argmax(1)
    ft, val = slice(N_PRE, N_PRE + N_FT), slice(N_PRE + N_FT, None)
    return {
        "x_pre": x[:N_PRE],
        "y_pre": y_a[:N_PRE],
        "x_ft": x[ft],
        "y_ft": y_b[ft],
        "x_val": x[val],
        "y_val": y_b[val],
    }


def get_batch(
    x: torch.Tensor, y: torch.Tensor, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    ix = torch.randint(len(x), (BATCH,), generator=gen)
    return x[ix], y[ix]


class MLP(nn.Module):
    """A body of DEPTH x (Linear -> ReLU) and a linear head. PyTorch's default init."""

    def __init__(self, n_in: int = N_IN, n_out: int = N_CLASSES) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(DEPTH):
            layers += [nn.Linear(n_in if i == 0 else WIDTH, WIDTH), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(WIDTH, n_out)

    def forward(self, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self.head(self.body(x)), targets)


def pretrain(x: torch.Tensor, y: torch.Tensor) -> nn.Module:
    """The setup every run shares: train on task A with a fixed seed and schedule."""
    torch.manual_seed(PRETRAIN_SEED)
    model = MLP(n_out=N_PRE_CLASSES)
    gen = torch.Generator().manual_seed(PRETRAIN_SEED)
    opt = torch.optim.Adam(model.parameters(), lr=PRETRAIN_LR)
    for _ in range(PRETRAIN_STEPS):
        ix = torch.randint(len(x), (PRETRAIN_BATCH,), generator=gen)
        loss = model(x[ix], y[ix])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model


def build_model(pretrained: nn.Module, seed: int = 0) -> nn.Module:
    """The pretrained body and a new, seeded, random head for task B."""
    model = copy.deepcopy(pretrained)
    torch.manual_seed(seed)
    model.head = nn.Linear(WIDTH, N_CLASSES)
    return model


def build_optimizer(model: nn.Module, lr: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)


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
    data = build_data()
    pretrained = pretrain(data["x_pre"], data["y_pre"])  # same for every run and seed
    model = build_model(pretrained, args.seed)
    gen = torch.Generator().manual_seed(args.seed)  # data order depends on the seed too

    # 2) the fine-tuning optimizer, wrapped by autowarm: the monitor watches the loss; under
    #    `autowarm probe` it also owns the LR (our get_lr below is then overridden)
    optimizer = build_optimizer(model, args.lr)
    optimizer = autowarm.wrap(optimizer)
    if args.score_on_val:  # a probe trial's score: the validation loss where it ends
        autowarm.score_with(lambda: evaluate(model, data["x_val"], data["y_val"]))

    # 3) fine-tune
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
        loss = model(*get_batch(data["x_ft"], data["y_ft"], gen))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.report(loss)
        optimizer.step()
        value = loss.item()
        initial = value if initial is None else initial
        train_losses.append(value)

    # 4) evaluate and report; "diverged" = nonfinite or ended above where it started
    final = evaluate(model, data["x_val"], data["y_val"])
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
