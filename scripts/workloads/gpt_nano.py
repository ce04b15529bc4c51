"""Tiny pre-LN GPT written like Karpathy's nanoGPT train.py, on the Python stdlib's own source.

Run it (a few seconds on one CPU core, no download):

    python scripts/workloads/gpt_nano.py
    python scripts/workloads/gpt_nano.py --lr 2e-2 --warmup 60     # about the best schedule
    autowarm probe scripts/workloads/gpt_nano.py                   # pick warmup + peak LR

Flags: --steps N --lr X --warmup W --min-lr-ratio R --seed S --metrics-out FILE.

Why this workload: it is the loop most people copy. nanoGPT's train.py has pre-LN blocks
(LayerNorm *before* attention and MLP, a final LayerNorm), a tied embedding / LM head, AdamW
with two parameter groups (weight decay on matrices, none on biases and LayerNorm gains),
gradient accumulation, gradient clipping at 1.0, and a loop that sets every group's
``param_group["lr"] = get_lr(it)`` itself. A tuner has to work through all of that: two
groups, several backward passes per step, and an LR written by the user on every iteration.
Pre-LN is more forgiving than post-LN (recipes/charlm) -- nothing diverges outright here --
but warmup still pays: without it the best peak LR is about 3e-3, with 10% warmup about 1e-2
to 2e-2 trains clearly further, while the default 1e-3 under-trains. The data is the text of
the stdlib's .py files, always on disk.
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
# 0) defaults: what a typical user writes. nanoGPT's char-level LR (1e-3), a short warmup.
DEFAULTS = dict(steps=600, lr=1e-3, warmup=30, min_lr_ratio=0.0, seed=0)
N_CHARS = 250_000  # fixed slice of the stdlib text: 225k chars to train on, 25k to evaluate
BLOCK_SIZE = 32  # characters of context per sequence
BATCH = 8  # micro-batch
GRAD_ACCUM = 2  # micro-batches per optimizer step
N_LAYER, N_HEAD, N_EMBD = 2, 4, 48
WEIGHT_DECAY, BETAS = 0.1, (0.9, 0.95)  # nanoGPT's
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
    """One micro-batch: random windows of BLOCK_SIZE+1 characters, inputs and targets."""
    ix = torch.randint(len(data) - BLOCK_SIZE - 1, (BATCH,), generator=gen)
    x = torch.stack([data[i : i + BLOCK_SIZE] for i in ix])
    y = torch.stack([data[i + 1 : i + 1 + BLOCK_SIZE] for i in ix])
    return x, y


class CausalSelfAttention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c_attn = nn.Linear(N_EMBD, 3 * N_EMBD)
        self.c_proj = nn.Linear(N_EMBD, N_EMBD)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.c_attn(x).split(c, dim=2)
        q, k, v = (z.view(b, t, N_HEAD, c // N_HEAD).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).reshape(b, t, c))


class MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c_fc = nn.Linear(N_EMBD, 4 * N_EMBD)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * N_EMBD, N_EMBD)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(self.gelu(self.c_fc(x)))


class Block(nn.Module):
    """x = x + attn(LN(x)); x = x + mlp(LN(x)) -- normalization *before* each sublayer."""

    def __init__(self) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(N_EMBD)
        self.attn = CausalSelfAttention()
        self.ln_2 = nn.LayerNorm(N_EMBD)
        self.mlp = MLP()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, vocab: int = len(ALPHABET)) -> None:
        super().__init__()
        self.wte = nn.Embedding(vocab, N_EMBD)
        self.wpe = nn.Embedding(BLOCK_SIZE, N_EMBD)
        self.h = nn.ModuleList(Block() for _ in range(N_LAYER))
        self.ln_f = nn.LayerNorm(N_EMBD)
        self.lm_head = nn.Linear(N_EMBD, vocab, bias=False)
        self.wte.weight = self.lm_head.weight  # weight tying
        # nanoGPT's init: N(0, 0.02), zero biases, residual projections scaled by 1/sqrt(2L)
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * N_LAYER))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        t = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(t))
        for block in self.h:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1))


def build_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return GPT()


def build_optimizer(model: nn.Module, lr: float) -> torch.optim.Optimizer:
    """nanoGPT's configure_optimizers: weight decay on every >=2-D tensor (matrices and
    embeddings), none on biases and LayerNorm parameters."""
    params = [p for p in model.parameters() if p.requires_grad]  # tied weight listed once
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": WEIGHT_DECAY},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr, betas=BETAS)


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

    # 3) train, nanoGPT-style: set the LR, accumulate gradients, clip, step
    train_losses: list[float] = []
    initial = None
    for it in range(args.steps):
        lr = get_lr(
            it, lr=args.lr, warmup=args.warmup, steps=args.steps, min_lr_ratio=args.min_lr_ratio
        )
        for param_group in optimizer.param_groups:
            param_group["lr"] = lr
        step_loss = torch.zeros(())
        for _ in range(GRAD_ACCUM):
            loss = model(*get_batch(train, gen)) / GRAD_ACCUM  # scale for the accumulation
            loss.backward()
            step_loss += loss.detach()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.report(step_loss)  # once per step: the mean loss of its micro-batches
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        value = step_loss.item()
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
