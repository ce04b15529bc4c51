"""A bag-of-words classifier (nn.EmbeddingBag) of synthetic documents, Adagrad.

Run it (a second or two on one CPU core, no download: the data are generated from a seed):

    python scripts/workloads/adagrad_bow.py
    autowarm probe scripts/workloads/adagrad_bow.py               # pick warmup + peak LR

Flags: --steps N --lr X --warmup W --min-lr-ratio R --seed S --metrics-out FILE.

Why this workload: the sparse-feature classifier Adagrad was made for -- documents of 40
tokens from a 5,000-word vocabulary, each of 4 topics drawing 30 % of its tokens from its own
200 words and the rest from a Zipf background; an EmbeddingBag of 32 (mean), a hidden layer
of 64, cross-entropy, Adagrad, mini-batches of 32, fresh documents every batch (seeded), 500
steps, scored on 2,000 held-out documents. Added unseen, with lstm_charlm and mlp_autoenc, to
judge the near-best LR centre (scripts/bench_quality_variants.md).
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
# 0) defaults: what a typical user writes. Adagrad's default LR (1e-2), no warmup.
DEFAULTS = dict(steps=500, lr=1e-2, warmup=0, min_lr_ratio=0.0, seed=0)
BATCH = 32
VOCAB, TOPICS, TOPIC_WORDS, DOC_LEN, ON_TOPIC = 5000, 4, 200, 40, 0.3
N_VAL = 2000


def sample(n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """n documents and their topics: each token is the topic's own word (prob ON_TOPIC) or a
    Zipf-distributed background word."""
    topic = torch.randint(TOPICS, (n,), generator=gen)
    zipf = 1.0 / torch.arange(1, VOCAB + 1, dtype=torch.float32)
    background = torch.multinomial(zipf / zipf.sum(), n * DOC_LEN, replacement=True, generator=gen)
    own = (
        TOPICS * torch.randint(TOPIC_WORDS, (n, DOC_LEN), generator=gen) + topic[:, None]
    ).reshape(-1) % VOCAB
    pick = torch.rand(n * DOC_LEN, generator=gen) < ON_TOPIC
    tokens = torch.where(pick, own, background).view(n, DOC_LEN)
    return tokens, topic


def build_data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The held-out documents (seed 1234); training batches are drawn fresh (see get_batch)."""
    x_val, y_val = sample(N_VAL, torch.Generator().manual_seed(1234))
    return x_val[:0], y_val[:0], x_val, y_val


def get_batch(
    x: torch.Tensor, y: torch.Tensor, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    return sample(BATCH, gen)


class BagOfWords(nn.Module):
    """EmbeddingBag (mean) -> ReLU hidden layer -> topic logits; cross-entropy."""

    def __init__(self) -> None:
        super().__init__()
        self.bag = nn.EmbeddingBag(VOCAB, 32, mode="mean")
        self.mlp = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, TOPICS))

    def forward(self, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self.mlp(self.bag(x)), targets)


def build_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return BagOfWords()


def build_optimizer(model: nn.Module, lr: float) -> torch.optim.Optimizer:
    return torch.optim.Adagrad(model.parameters(), lr=lr)


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
