"""Character-level Transformer LM with post-LayerNorm blocks, on the Python stdlib's own source.

Run it (about 7 s on one CPU core, no download):

    python recipes/charlm/train.py
    python recipes/charlm/train.py --lr 2e-2 --warmup 0      # too hot without warmup: stalls
    autowarm probe recipes/charlm/train.py                   # pick warmup + peak LR

Flags: --steps N --lr X --warmup W --min-lr-ratio R --seed S --metrics-out FILE.

Why this recipe: post-LN Transformers (Vaswani et al. 2017, the original layout: LayerNorm
*after* each residual add) are the classic case that needs LR warmup (Xiong et al. 2020). The
LayerNorm on the residual stream rescales the gradients of the lower layers, so Adam's first
updates at full LR push the model into a region it cannot leave; with warmup the same peak LR
trains well. The data is the text of the standard library's .py files, so it is always there.
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

import autowarm

# -----------------------------------------------------------------------------------------
# 0) defaults: what a typical user writes. AdamW's default LR (1e-3), a short warmup.
DEFAULTS = dict(steps=1000, lr=1e-3, warmup=20, min_lr_ratio=0.0, seed=0)
N_CHARS = 200_000  # fixed slice of the stdlib text: ~180k chars to train on, ~20k to evaluate
CONTEXT = 32  # characters of context per sequence
BATCH = 8
D_MODEL, N_HEAD, N_LAYER = 64, 4, 2  # small enough for ~6 ms per step on one CPU core
EVAL_BATCHES = 8  # fixed validation batches, same for every run and seed
ALPHABET = "\n" + "".join(chr(c) for c in range(32, 127))  # printable ASCII + newline


def load_text(n_chars: int = N_CHARS) -> str:
    """The first ``n_chars`` characters of the stdlib's top-level modules, in sorted order.

    Private modules (``_*.py``) are skipped: they include generated files (``_sysconfigdata``)
    that differ between machines. Anything outside printable ASCII becomes ``?`` so the vocab
    is fixed."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    parts, size = [], 0
    for path in sorted(stdlib.glob("*.py")):
        if path.name.startswith("_"):
            continue
        parts.append(path.read_text(encoding="utf-8", errors="replace"))
        size += len(parts[-1])
        if size >= n_chars:
            break
    text = "".join(parts)[:n_chars].replace("\t", "    ")
    return "".join(c if c in ALPHABET else "?" for c in text)


def build_data() -> tuple[torch.Tensor, torch.Tensor]:
    """Encode the text as int64 token ids and split it 90/10 into train and validation."""
    stoi = {c: i for i, c in enumerate(ALPHABET)}
    ids = torch.tensor([stoi[c] for c in load_text()], dtype=torch.long)
    n_train = int(0.9 * len(ids))
    return ids[:n_train], ids[n_train:]


def get_batch(data: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random windows of CONTEXT+1 characters: inputs and next-character targets."""
    ix = torch.randint(len(data) - CONTEXT - 1, (BATCH,), generator=gen)
    x = torch.stack([data[i : i + CONTEXT] for i in ix])
    y = torch.stack([data[i + 1 : i + 1 + CONTEXT] for i in ix])
    return x, y


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention (nanoGPT's; faster on CPU than nn.MultiheadAttention)."""

    def __init__(self, d: int, n_head: int) -> None:
        super().__init__()
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.n_head = n_head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(x).split(c, dim=2)
        q, k, v = (z.view(b, t, self.n_head, c // self.n_head).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(b, t, c))


class PostLNBlock(nn.Module):
    """x = LN(x + attn(x)); x = LN(x + mlp(x)) -- normalization *after* the residual add."""

    def __init__(self, d: int, n_head: int) -> None:
        super().__init__()
        self.attn = CausalSelfAttention(d, n_head)
        self.ln1 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))
        self.ln2 = nn.LayerNorm(d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.ln1(x + self.attn(x))
        return self.ln2(x + self.mlp(x))


class CharTransformer(nn.Module):
    def __init__(self, vocab: int = len(ALPHABET)) -> None:
        super().__init__()
        self.tok = nn.Embedding(vocab, D_MODEL)
        self.pos = nn.Embedding(CONTEXT, D_MODEL)
        self.blocks = nn.ModuleList(PostLNBlock(D_MODEL, N_HEAD) for _ in range(N_LAYER))
        self.head = nn.Linear(D_MODEL, vocab)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        t = idx.shape[1]
        x = self.tok(idx) + self.pos(torch.arange(t))
        for block in self.blocks:
            x = block(x)
        logits = self.head(x)
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1))


def build_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return CharTransformer()


def build_optimizer(model: nn.Module, lr: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.999), weight_decay=0.01)


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
def evaluate(model: nn.Module, val: torch.Tensor) -> float:
    """Mean loss on EVAL_BATCHES fixed validation batches (own generator: same for all runs)."""
    model.eval()
    gen = torch.Generator().manual_seed(1234)
    losses = [model(*get_batch(val, gen)).item() for _ in range(EVAL_BATCHES)]
    model.train()
    return sum(losses) / len(losses)


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
    train, val = build_data()
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
        loss = model(*get_batch(train, gen))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        # why clip: this is what most Transformer recipes do; warmup still matters with it
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.report(loss)
        optimizer.step()
        value = loss.item()
        initial = value if initial is None else initial
        train_losses.append(value)

    # 4) evaluate and report; "diverged" = nonfinite or ended above where it started
    final = evaluate(model, val)
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
