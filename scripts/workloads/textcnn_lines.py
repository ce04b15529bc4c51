"""A TextCNN telling which standard-library module a line of source comes from, SGD Nesterov.

Run it (a few seconds on one CPU core, no download: the lines are Python's own source):

    python scripts/workloads/textcnn_lines.py
    autowarm probe scripts/workloads/textcnn_lines.py                # pick warmup + peak LR

Flags: --steps N --lr X --warmup W --min-lr-ratio R --seed S --metrics-out FILE, and
--score-on-val: probe trials are scored by the validation loss (``autowarm.score_with``)
instead of the training loss (no effect outside a probe).

Why this workload: the convolutional sentence classifier of Kim (2014) at character level --
an embedding (16 per character) of a line cut or padded to 64 characters, three 1-D
convolutions of widths 3, 4 and 5 (48 filters each), ReLU, a max over positions, dropout 0.5
and a linear head -- trained by SGD with Nesterov momentum 0.9 on mini-batches of 32 fed by a
shuffling ``DataLoader``. The classes are five standard-library modules (argparse, typing,
subprocess, inspect, tarfile), the examples their first 1,500 lines of at least 8 characters
each, indentation kept; many lines (``return None``) say little of where they come from, so
the loss stays well above zero. 6,000 lines are the training set, which 900 steps see about
five times (4.8 passes); the other 1,500 are the validation set.
"""

from __future__ import annotations

import argparse
import json
import math
import sysconfig
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

import autowarm

# -----------------------------------------------------------------------------------------
# 0) defaults: what a typical user writes. SGD Nesterov's usual LR (0.1), no warmup.
DEFAULTS = dict(steps=900, lr=0.1, warmup=0, min_lr_ratio=0.0, seed=0)
BATCH = 32
MODULES = ("argparse.py", "typing.py", "subprocess.py", "inspect.py", "tarfile.py")
LINES_PER_MODULE = 1500
MIN_CHARS = 8  # shorter lines (blank, ``else:``, ``)``) carry no sign of their module
LENGTH = 64  # characters a line is cut or padded to
EMBED, FILTERS, WIDTHS, DROPOUT = 16, 48, (3, 4, 5), 0.5
N_VAL = 1500  # the rest (6,000) train; the split is fixed for all seeds (its own generator)
VOCAB = 96  # padding is 0, printable ASCII (32..126) 1..95; anything else is a space


def encode(line: str) -> list[int]:
    """A line's first LENGTH characters as token ids, padded with 0 to LENGTH."""
    ids = [ord(c) - 31 if 32 <= ord(c) < 127 else 1 for c in line[:LENGTH]]
    return ids + [0] * (LENGTH - len(ids))


def build_data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The first LINES_PER_MODULE lines of each module with at least MIN_CHARS characters
    (trailing whitespace cut, indentation kept), labelled by module, split at random."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    ids: list[list[int]] = []
    labels: list[int] = []
    for label, name in enumerate(MODULES):
        lines = (stdlib / name).read_text(encoding="utf-8").splitlines()
        kept = [line.rstrip() for line in lines if len(line.strip()) >= MIN_CHARS]
        ids += [encode(line) for line in kept[:LINES_PER_MODULE]]
        labels += [label] * LINES_PER_MODULE
    x = torch.tensor(ids, dtype=torch.long)
    y = torch.tensor(labels, dtype=torch.long)
    # a random split, not a contiguous one: a module's last lines (its tests, its __all__)
    # are unlike the rest of it, and the validation set should look like the training set
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(1234))
    val, train = order[:N_VAL], order[N_VAL:]
    return x[train], y[train], x[val], y[val]


class TextCNN(nn.Module):
    """Embedding (16) -> conv widths 3/4/5 (48 each) -> ReLU -> max over positions ->
    dropout 0.5 -> module logits."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(VOCAB, EMBED, padding_idx=0)
        self.convs = nn.ModuleList(nn.Conv1d(EMBED, FILTERS, w) for w in WIDTHS)
        self.drop = nn.Dropout(DROPOUT)
        self.head = nn.Linear(FILTERS * len(WIDTHS), len(MODULES))

    def forward(self, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        e = self.emb(x).transpose(1, 2)  # [B, EMBED, LENGTH]: channels first for Conv1d
        h = torch.cat([F.relu(conv(e)).amax(-1) for conv in self.convs], dim=1)
        return F.cross_entropy(self.head(self.drop(h)), targets)


def build_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return TextCNN()


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
    """Cross-entropy on the whole validation set (dropout off: eval mode)."""
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
