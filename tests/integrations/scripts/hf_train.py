"""A tiny GPT-2 (built from a config, no download) trained by the stock HF Trainer, with the
one line autowarm needs: ``callbacks=[AutowarmCallback()]``.

    python tests/integrations/scripts/hf_train.py --max-steps 30
    autowarm probe --steps 12 --trials 4 tests/integrations/scripts/hf_train.py
"""

from __future__ import annotations

import argparse

import torch
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments

from autowarm.integrations.hf import AutowarmCallback

parser = argparse.ArgumentParser()
parser.add_argument("--max-steps", type=int, default=30)
parser.add_argument("--lr", type=float, default=1e-3)
parser.add_argument("--out", default="hf-out")
parser.add_argument("--save-steps", type=int, help="save a checkpoint every N steps")
parser.add_argument("--save-total-limit", type=int, help="keep that many (HF's rotation)")
parser.add_argument("--eval", action="store_true", help="an eval_dataset (scores probe trials)")
parser.add_argument("--score", default="auto", help="AutowarmCallback(score=...)")
parser.add_argument("--eval-out", help="append each evaluate()'s eval_loss here")
args = parser.parse_args()

torch.manual_seed(0)
torch.set_num_threads(1)
config = GPT2Config(n_layer=2, n_head=2, n_embd=32, vocab_size=64, n_positions=32)
model = GPT2LMHeadModel(config)
ids = torch.randint(0, 64, (256, 16))
data = [{"input_ids": x, "labels": x} for x in ids]
held_out = [{"input_ids": x, "labels": x} for x in torch.randint(0, 64, (32, 16))]
training = TrainingArguments(
    output_dir=args.out,
    max_steps=args.max_steps,
    per_device_train_batch_size=8,
    learning_rate=args.lr,
    warmup_steps=5,
    max_grad_norm=1.0,
    logging_steps=1,
    report_to=[],
    save_strategy="no" if args.save_steps is None else "steps",
    save_steps=args.save_steps or 500,
    save_total_limit=args.save_total_limit,
    use_cpu=True,
    disable_tqdm=True,
)


class Logged(Trainer):
    def evaluate(self, *a, **kw):  # type: ignore[no-untyped-def]
        metrics = super().evaluate(*a, **kw)
        if args.eval_out:
            with open(args.eval_out, "a") as f:
                f.write(f"{metrics['eval_loss']!r}\n")
        return metrics


trainer = Logged(
    model=model,
    args=training,
    train_dataset=data,
    eval_dataset=held_out if args.eval else None,
    callbacks=[AutowarmCallback(score=args.score)],
)
trainer.train()
