"""HF transformers: a tiny GPT-2 trained by ``transformers.Trainer`` on 24,000 characters.

Run it (several seconds on one CPU core, a few of them importing transformers; no download --
the model is built from a config, the text is the standard library's .py files):

    python scripts/workloads/hf_lm_small.py
    python scripts/workloads/hf_lm_small.py --lr 3e-3 --warmup 30
    autowarm probe scripts/workloads/hf_lm_small.py               # pick warmup + peak LR
    autowarm probe scripts/workloads/hf_lm_small.py --score-on-val  # ... scored on validation

Flags: --steps N --lr X --warmup W --min-lr-ratio R --seed S --metrics-out FILE, and
--score-on-val: the Trainer gets the validation set as its ``eval_dataset`` (``eval_strategy``
stays "no"), and the callback scores probe trials by ``evaluate()``'s ``eval_loss``.

Why this workload: the training loop, the optimizer (AdamW) and the schedule are the Trainer's,
not ours. The script is what an HF user writes -- ``TrainingArguments(learning_rate=...,
warmup_steps=..., lr_scheduler_type="cosine")`` and ``callbacks=[AutowarmCallback()]`` -- and
autowarm has to find the optimizer inside accelerate's wrapper, the loss in the model's
outputs, and the norm in the Trainer's clip (``max_grad_norm=1.0``). The default LR is the
Trainer's own default, 5e-5: tuned for fine-tuning big pretrained models, far too cold for a
tiny model trained from scratch, the mistake a user copying defaults makes.

HF's schedule differs from the plain-loop workloads': its warmup starts at LR 0 (not
lr/(W+1)) and its cosine decays to 0. --min-lr-ratio R > 0 maps to HF's
``lr_scheduler_type="cosine_with_min_lr"`` with ``min_lr_rate=R``.

hf_trainer's script on the first 24,000 characters of the text (21,600 to train on, 675 blocks:
400 steps of 16 see each about 9 times), the last 10 % for validation: an LM that memorises
its text. Added unseen, probed with --score-on-val only (the callback's own validation
scoring), to judge the gap rule (``GAP_RULE``, scripts/bench_quality_variants.md).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the hub
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
warnings.filterwarnings("ignore", module="transformers")
warnings.filterwarnings("ignore", module="accelerate")

import torch  # noqa: E402
from transformers import (  # noqa: E402
    GPT2Config,
    GPT2LMHeadModel,
    PrinterCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)
from transformers.utils import logging as hf_logging  # noqa: E402

from autowarm.integrations.hf import AutowarmCallback  # noqa: E402

# -----------------------------------------------------------------------------------------
# 0) defaults: what a typical user writes. The Trainer's default LR (5e-5), a short warmup.
DEFAULTS = dict(steps=400, lr=5e-5, warmup=20, min_lr_ratio=0.0, seed=0)
BATCH = 16
BLOCK = 32  # characters per training block (the model's context): short, for speed
N_CHARS = 24_000  # the first 24k characters of the concatenated standard library
VAL_FRACTION = 0.1  # the last 10% of the blocks are the validation set (fixed for all seeds)


def build_text() -> str:
    """The standard library's top-level .py files, sorted by name and concatenated: the same
    text for every run (on one Python install)."""
    files = sorted(Path(os.__file__).parent.glob("*.py"))
    parts: list[str] = []
    total = 0
    for f in files:
        parts.append(f.read_text(encoding="utf-8", errors="replace"))
        total += len(parts[-1])
        if total >= N_CHARS:
            break
    return "".join(parts)[:N_CHARS]


class Blocks(torch.utils.data.Dataset):
    """Fixed, non-overlapping blocks of BLOCK character ids; the model shifts the labels."""

    def __init__(self, ids: torch.Tensor) -> None:
        self.blocks = ids[: len(ids) // BLOCK * BLOCK].view(-1, BLOCK)

    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.blocks[i], "labels": self.blocks[i]}


def build_data() -> tuple[Blocks, Blocks, int]:
    text = build_text()
    vocab = sorted(set(text))
    stoi = {c: i for i, c in enumerate(vocab)}
    ids = torch.tensor([stoi[c] for c in text], dtype=torch.long)
    blocks = Blocks(ids)
    n_val = int(len(blocks) * VAL_FRACTION)
    train, val = Blocks(ids), Blocks(ids)
    train.blocks, val.blocks = blocks.blocks[:-n_val], blocks.blocks[-n_val:]
    return train, val, len(vocab)


def build_model(vocab_size: int, seed: int = 0) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    config = GPT2Config(
        n_layer=2,
        n_embd=48,
        n_head=4,
        n_positions=BLOCK,
        vocab_size=vocab_size,
        bos_token_id=0,  # GPT-2's 50256 is outside a character vocabulary
        eos_token_id=0,
    )
    return GPT2LMHeadModel(config)


class LossLog(TrainerCallback):
    """Collects the training losses the Trainer logs (every ``logging_steps`` steps)."""

    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_log(self, args, state, control, logs=None, **_):
        if logs and "loss" in logs:
            self.losses.append(float(logs["loss"]))


@torch.no_grad()
def evaluate(model: GPT2LMHeadModel, val: Blocks) -> float:
    """Mean LM loss over all the validation blocks."""
    model.eval()
    losses = [model(input_ids=b, labels=b).loss.item() for b in val.blocks.split(64) if len(b) > 0]
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
    p.add_argument("--score-on-val", action="store_true", help="probe on the validation loss")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> float:
    args = parse_args(argv)
    # 1) one thread: probes and benchmark grid points run side by side, and a single thread
    #    keeps the step time (and thus every timing we report) repeatable
    torch.set_num_threads(1)
    hf_logging.set_verbosity_error()
    t0 = time.perf_counter()
    train, val, vocab_size = build_data()
    model = build_model(vocab_size, args.seed)

    # 2) the Trainer builds AdamW and the schedule; the callback wraps that optimizer (under
    #    `autowarm probe` the wrapper owns the LR and ends the run at the probe length)
    if args.min_lr_ratio > 0:
        schedule = dict(
            lr_scheduler_type="cosine_with_min_lr",
            lr_scheduler_kwargs={"min_lr_rate": args.min_lr_ratio},
        )
    else:
        schedule = dict(lr_scheduler_type="cosine")
    loss_log = LossLog()
    with tempfile.TemporaryDirectory(prefix="hf_lm_small_") as out:
        training_args = TrainingArguments(
            output_dir=out,
            max_steps=args.steps,
            learning_rate=args.lr,
            warmup_steps=args.warmup,
            **schedule,
            per_device_train_batch_size=BATCH,
            per_device_eval_batch_size=64,
            max_grad_norm=1.0,
            logging_steps=max(1, args.steps // 100),
            logging_first_step=True,
            report_to=[],
            save_strategy="no",
            eval_strategy="no",
            use_cpu=True,
            seed=args.seed,  # data order
            dataloader_num_workers=0,
            disable_tqdm=True,
        )
        trainer = Trainer(
            model=model,
            args=training_args,
            train_dataset=train,
            eval_dataset=val if args.score_on_val else None,  # never evaluated by the run
            callbacks=[AutowarmCallback(), loss_log],
        )
        trainer.remove_callback(PrinterCallback)  # it prints every log line
        trainer.train()

    # 3) evaluate and report; "diverged" = nonfinite or ended above where it started
    final = evaluate(model, val)
    initial = loss_log.losses[0] if loss_log.losses else None
    diverged = not math.isfinite(final) or final > (initial or math.inf)
    metrics = {
        "final_eval_loss": final,
        "diverged": diverged,
        "initial_loss": initial,
        "steps": args.steps,
        "lr": args.lr,
        "warmup": args.warmup,
        "seed": args.seed,
        "train_losses": loss_log.losses,
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
