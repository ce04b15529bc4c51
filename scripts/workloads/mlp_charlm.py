"""A Bengio-style MLP language model: 4 characters of context -> the next, SGD momentum.

Run it (a few seconds on one CPU core, no download: the text is Python's own source):

    python scripts/workloads/mlp_charlm.py
    autowarm probe scripts/workloads/mlp_charlm.py                   # pick warmup + peak LR

Flags: --steps N --lr X --warmup W --min-lr-ratio R --seed S --metrics-out FILE, and
--score-on-val: probe trials are scored by the validation loss (``autowarm.score_with``)
instead of the training loss (no effect outside a probe).

Why this workload: the neural probabilistic language model of Bengio et al. (2003) at
character level -- a shared embedding table (24 per character) for a context window of 4,
concatenated, one tanh hidden layer of 256, a linear head to the 97-symbol vocabulary --
trained by SGD with momentum 0.9 on mini-batches of 32 fed by a shuffling ``DataLoader``.
Every position of the first 20,000 characters of the standard library's ``difflib.py`` is a
training example (19,996 of them), which 1,200 steps see about twice (1.9 passes): the run
under-fits rather than memorises; the next 5,000 characters are the validation text.
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
# 0) defaults: what a typical user writes. SGD momentum's usual LR (0.1), no warmup.
DEFAULTS = dict(steps=1200, lr=0.1, warmup=0, min_lr_ratio=0.0, seed=0)
BATCH = 32
CONTEXT = 4  # characters the model sees before the one it predicts
EMBED, WIDTH = 24, 256
TRAIN_CHARS, VAL_CHARS = 20_000, 5_000
VOCAB = 97  # newline is 1, printable ASCII (32..126) 2..96; anything else is a space


def encode(name: str) -> torch.Tensor:
    """A standard-library file's first TRAIN_CHARS + VAL_CHARS characters as token ids."""
    text = (Path(sysconfig.get_paths()["stdlib"]) / name).read_text(encoding="utf-8")
    text = text[: TRAIN_CHARS + VAL_CHARS]
    ids = [1 if c == "\n" else (ord(c) - 30 if 32 <= ord(c) < 127 else 2) for c in text]
    return torch.tensor(ids, dtype=torch.long)


def windows(ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Every (overlapping) window of CONTEXT characters and the character after it."""
    x = ids.unfold(0, CONTEXT, 1)[:-1]  # [len - CONTEXT, CONTEXT]
    return x, ids[CONTEXT:]


def build_data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Training windows from the first 20,000 characters of difflib.py, validation windows
    from the 5,000 after them: a contiguous split, so no validation target is in training."""
    ids = encode("difflib.py")
    return (*windows(ids[:TRAIN_CHARS]), *windows(ids[TRAIN_CHARS:]))


class MLPLM(nn.Module):
    """Embedding (24) per context character, concatenated -> tanh (256) -> vocabulary logits."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(VOCAB, EMBED)
        self.hidden = nn.Linear(CONTEXT * EMBED, WIDTH)
        self.head = nn.Linear(WIDTH, VOCAB)

    def forward(self, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.hidden(self.emb(x).flatten(1)))
        return F.cross_entropy(self.head(h), targets)


def build_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return MLPLM()


def build_optimizer(model: nn.Module, lr: float) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)


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
    """Cross-entropy per character on the whole validation text."""
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
