"""Lightning: an MLP on 250 of sklearn's digits, trained by ``lightning.Trainer`` with AdamW.

Run it (a few seconds on one CPU core, most of it importing Lightning; no download):

    python scripts/workloads/lightning_small.py
    python scripts/workloads/lightning_small.py --lr 3e-2 --warmup 0
    autowarm probe scripts/workloads/lightning_small.py            # pick warmup + peak LR
    autowarm probe scripts/workloads/lightning_small.py --score-on-val  # ... scored on validation

Flags: --steps N --lr X --warmup W --min-lr-ratio R --seed S --metrics-out FILE, and
--score-on-val: the fit gets the validation set, and the callback scores probe trials by the
``val_loss`` one validation run logs at their end (training is the same with or without it).

Why this workload: the training loop is Lightning's, not ours. The script only says what a
Lightning user writes -- a LightningModule whose ``configure_optimizers`` returns AdamW and a
warmup + cosine ``LambdaLR`` stepped every batch, ``gradient_clip_val=1.0``, and
``callbacks=[AutowarmCallback()]`` -- and autowarm has to find the optimizer, the loss and the
gradient norm through Lightning's closure and its LR scheduler. The task (an MLP on the 8x8
digits) is small; with the clip, a hot LR shows up as a worse final loss rather than NaN.

lightning_mlp's script on 250 training digits (400 steps of 32: about 51 epochs), the same
497 for validation: a fit that memorises its data. Added unseen, probed with --score-on-val
only (the callback's own validation scoring), to judge the gap rule (``GAP_RULE``,
scripts/bench_quality_variants.md).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
import warnings
from pathlib import Path

import lightning.pytorch as pl
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch.utils.data import DataLoader, TensorDataset

from autowarm.integrations.lightning import AutowarmCallback

warnings.filterwarnings("ignore", module="lightning")  # hints about workers, loggers, ...
logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)  # "GPU available: ..." lines

# -----------------------------------------------------------------------------------------
# 0) defaults: what a typical user writes. AdamW's default LR (1e-3), a short warmup.
DEFAULTS = dict(steps=400, lr=1e-3, warmup=20, min_lr_ratio=0.0, seed=0)
BATCH = 32
WIDTH, DEPTH = 128, 3  # hidden ReLU layers
N_VAL = 497  # the last 497 of the 1,797 digits are the validation set (fixed for all seeds)
N_TRAIN = 250  # the first 250 are the training set


def build_data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """sklearn's 8x8 digits (all 10 classes), scaled to [0, 1]; a fixed train/val split."""
    x, y = load_digits(return_X_y=True)
    x_t = torch.tensor(x, dtype=torch.float32) / 16.0
    y_t = torch.tensor(y, dtype=torch.long)
    return x_t[:N_TRAIN], y_t[:N_TRAIN], x_t[-N_VAL:], y_t[-N_VAL:]


def get_lr_factor(it: int, *, warmup: int, steps: int, min_lr_ratio: float) -> float:
    """The schedule as a multiple of the peak LR (LambdaLR's form), a pure function of the
    step: linear warmup from 1/(warmup+1), then cosine down to min_lr_ratio."""
    if it < warmup:
        return (it + 1) / (warmup + 1)
    progress = (it - warmup) / max(1, steps - warmup)
    coeff = 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return min_lr_ratio + (1.0 - min_lr_ratio) * coeff


class DigitsMLP(pl.LightningModule):
    """DEPTH x (Linear -> ReLU), then a linear classifier. PyTorch's default init."""

    def __init__(self, *, lr: float, warmup: int, steps: int, min_lr_ratio: float) -> None:
        super().__init__()
        self.lr, self.warmup, self.steps, self.min_lr_ratio = lr, warmup, steps, min_lr_ratio
        layers: list[nn.Module] = []
        for i in range(DEPTH):
            layers += [nn.Linear(64 if i == 0 else WIDTH, WIDTH), nn.ReLU()]
        self.net = nn.Sequential(*layers, nn.Linear(WIDTH, 10))
        self.log_every = max(1, steps // 100)
        self.train_losses: list[float] = []
        self.initial: float | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], _idx: int) -> torch.Tensor:
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        if self.initial is None:
            self.initial = loss.item()
        if self.global_step % self.log_every == 0:
            self.train_losses.append(loss.item())
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], _idx: int) -> None:
        x, y = batch
        self.log("val_loss", F.cross_entropy(self(x), y))

    def configure_optimizers(self) -> dict:
        opt = torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=0.01)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt,
            lambda it: get_lr_factor(
                it, warmup=self.warmup, steps=self.steps, min_lr_ratio=self.min_lr_ratio
            ),
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Cross-entropy on the whole validation set."""
    model.eval()
    loss = F.cross_entropy(model(x), y).item()
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
    torch.manual_seed(args.seed)  # model init depends on the seed ...
    model = DigitsMLP(
        lr=args.lr, warmup=args.warmup, steps=args.steps, min_lr_ratio=args.min_lr_ratio
    )
    loader = DataLoader(  # ... and so does the data order
        TensorDataset(x_train, y_train),
        batch_size=BATCH,
        shuffle=True,
        drop_last=True,
        generator=torch.Generator().manual_seed(args.seed),
    )

    # 2) Lightning's loop; the callback wraps the optimizer configure_optimizers returned
    #    (under `autowarm probe` the wrapper owns the LR and ends the run at the probe length)
    trainer = pl.Trainer(
        max_steps=args.steps,
        max_epochs=-1,
        accelerator="cpu",
        devices=1,
        gradient_clip_val=1.0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        deterministic=True,
        callbacks=[AutowarmCallback()],
    )
    # the validation set as one batch: its val_loss is evaluate()'s; validation runs only at
    # an epoch's end, after the whole run, or for the callback at a probe trial's end
    val = DataLoader(TensorDataset(x_val, y_val), batch_size=N_VAL)
    trainer.fit(model, train_dataloaders=loader, val_dataloaders=val if args.score_on_val else None)

    # 3) evaluate and report; "diverged" = nonfinite or ended above where it started
    final = evaluate(model, x_val, y_val)
    initial = model.initial
    diverged = not math.isfinite(final) or final > (initial or math.inf)
    metrics = {
        "final_eval_loss": final,
        "diverged": diverged,
        "initial_loss": initial,
        "steps": args.steps,
        "lr": args.lr,
        "warmup": args.warmup,
        "seed": args.seed,
        "train_losses": model.train_losses,
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
