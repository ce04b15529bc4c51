"""A loop in the style of HF's ``no_trainer`` examples: accelerate, transformers' cosine
schedule prepared with the optimizer, ``accelerator.clip_grad_norm_``; plus the two autowarm
lines. ``python accelerate_train.py --steps 30``."""

from __future__ import annotations

import argparse

import torch
from accelerate import Accelerator
from transformers import get_cosine_schedule_with_warmup

import autowarm

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=30)
args = parser.parse_args()

torch.manual_seed(0)
torch.set_num_threads(1)
accelerator = Accelerator(cpu=True)
model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
optimizer = autowarm.wrap(torch.optim.AdamW(model.parameters(), lr=1e-3))  # autowarm
scheduler = get_cosine_schedule_with_warmup(optimizer, 3, args.steps)
model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
for _ in range(args.steps):
    x = torch.randn(32, 8)
    loss = torch.nn.functional.mse_loss(model(x), x.sum(1, keepdim=True))
    accelerator.backward(loss)
    autowarm.report(optimizer, loss)  # autowarm
    accelerator.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad()
