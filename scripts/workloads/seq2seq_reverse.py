"""A GRU encoder-decoder that reverses digit strings of varying length: seq2seq, Adam + L2.

Run it (a few seconds on one CPU core, no download: the strings are generated from a seed):

    python scripts/workloads/seq2seq_reverse.py
    autowarm probe scripts/workloads/seq2seq_reverse.py              # pick warmup + peak LR

Flags: --steps N --lr X --warmup W --min-lr-ratio R --seed S --metrics-out FILE, and
--score-on-val: probe trials are scored by the validation loss (``autowarm.score_with``)
instead of the training loss (no effect outside a probe).

Why this workload: the sequence-to-sequence model of Sutskever et al. (2014) as the PyTorch
tutorials write it -- an embedding (32) and a one-layer GRU (64) encode a padded, packed
source; its last state starts a GRU decoder (same sizes) fed the target shifted right behind
a start token (teacher forcing), a linear head over the vocabulary, the loss the token
cross-entropy with the padding ignored, gradients clipped at 1.0 as RNN recipes do. The task
is to reverse a string of 3 to 10 random digits and close it with an end token: without
attention, the whole string must pass through one 64-wide state, so the long strings are
the hard part. Adam at its default LR (1e-3) with an L2 weight decay of 1e-5 (Adam's own
``weight_decay``, coupled to the gradient) on mini-batches of 32 fed by a shuffling
``DataLoader``; 8,000 training strings, which 1,000 steps see four times (4 passes); 1,000
other strings are the validation set.
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
from torch.nn.utils.rnn import pack_padded_sequence
from torch.utils.data import DataLoader, TensorDataset

import autowarm

# -----------------------------------------------------------------------------------------
# 0) defaults: what a typical user writes. Adam's default LR (1e-3), no warmup.
DEFAULTS = dict(steps=1000, lr=1e-3, warmup=0, min_lr_ratio=0.0, seed=0)
BATCH = 32
MIN_LEN, MAX_LEN = 3, 10  # digits per source string
BOS, EOS, PAD = 10, 11, 12  # after the ten digits
VOCAB = 13
EMBED, WIDTH = 32, 64
N_TRAIN, N_VAL = 8000, 1000  # the strings are fixed for all seeds (their own generator)


def build_data() -> tuple[torch.Tensor, ...]:
    """9,000 strings of 3..10 uniform random digits: the sources [N, 10] (right-padded with
    PAD), their lengths [N], and the targets [N, 11] -- the digits reversed, then EOS, then
    PAD. The 10^3..10^10 possible strings leave nothing to memorise: it must learn the rule."""
    gen = torch.Generator().manual_seed(1234)
    n = N_TRAIN + N_VAL
    lengths = torch.randint(MIN_LEN, MAX_LEN + 1, (n,), generator=gen)
    digits = torch.randint(0, 10, (n, MAX_LEN), generator=gen)
    pos = torch.arange(MAX_LEN)
    src = torch.where(pos < lengths[:, None], digits, PAD)
    # reversed: position j of the target holds source position length-1-j
    rev = digits.gather(1, (lengths[:, None] - 1 - pos).clamp(min=0))
    tgt = torch.full((n, MAX_LEN + 1), PAD)
    tgt[:, :MAX_LEN] = torch.where(pos < lengths[:, None], rev, PAD)
    tgt[torch.arange(n), lengths] = EOS
    return (src[:N_TRAIN], lengths[:N_TRAIN], tgt[:N_TRAIN],
            src[N_TRAIN:], lengths[N_TRAIN:], tgt[N_TRAIN:])  # fmt: skip


class Seq2Seq(nn.Module):
    """GRU encoder (packed: the pads never enter its state) -> GRU decoder, teacher-forced."""

    def __init__(self) -> None:
        super().__init__()
        self.src_embed = nn.Embedding(VOCAB, EMBED, padding_idx=PAD)
        self.encoder = nn.GRU(EMBED, WIDTH, batch_first=True)
        self.tgt_embed = nn.Embedding(VOCAB, EMBED, padding_idx=PAD)
        self.decoder = nn.GRU(EMBED, WIDTH, batch_first=True)
        self.head = nn.Linear(WIDTH, VOCAB)

    def forward(self, src: torch.Tensor, lengths: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(
            self.src_embed(src), lengths, batch_first=True, enforce_sorted=False
        )
        _, state = self.encoder(packed)  # each string's state after its own last digit
        # teacher forcing: the decoder reads BOS then the target shifted right by one
        dec_in = torch.cat([torch.full_like(tgt[:, :1], BOS), tgt[:, :-1]], dim=1)
        out, _ = self.decoder(self.tgt_embed(dec_in), state)
        logits = self.head(out)
        return F.cross_entropy(logits.reshape(-1, VOCAB), tgt.reshape(-1), ignore_index=PAD)


def build_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return Seq2Seq()


def build_optimizer(model: nn.Module, lr: float) -> torch.optim.Optimizer:
    # Adam's own L2 term (added to the gradient before the moments), as scripts often set it
    return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-5)


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
def evaluate(
    model: nn.Module, src: torch.Tensor, lengths: torch.Tensor, tgt: torch.Tensor
) -> float:
    """Token cross-entropy on the whole validation set, teacher-forced like the training."""
    model.eval()
    loss = model(src, lengths, tgt).item()
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
    s_train, l_train, t_train, s_val, l_val, t_val = build_data()
    model = build_model(args.seed)
    # the loader's own generator: the shuffle order depends on the seed and on nothing else
    # (not on how many random numbers the model's init drew); drop_last keeps every batch the
    # same size, so the loss's noise does not jump at the end of a pass
    loader = DataLoader(
        TensorDataset(s_train, l_train, t_train), batch_size=BATCH, shuffle=True, drop_last=True,
        generator=torch.Generator().manual_seed(args.seed),
    )  # fmt: skip

    # 2) optimizer, wrapped by autowarm: the monitor watches the loss; under `autowarm probe`
    #    it also owns the LR (our get_lr below is then overridden)
    optimizer = build_optimizer(model, args.lr)
    optimizer = autowarm.wrap(optimizer)
    if args.score_on_val:  # a probe trial's score: the validation loss where it ends
        autowarm.score_with(lambda: evaluate(model, s_val, l_val, t_val))

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
            sb, lb, tb = next(batches)
        except StopIteration:
            batches = iter(loader)
            sb, lb, tb = next(batches)
        loss = model(sb, lb, tb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        # why clip: what most RNN recipes do (exploding gradients); the LR still matters
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.report(loss)
        optimizer.step()
        value = loss.item()
        initial = value if initial is None else initial
        train_losses.append(value)

    # 4) evaluate and report; "diverged" = nonfinite or ended above where it started
    final = evaluate(model, s_val, l_val, t_val)
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
