"""A tiny regression MLP trained with SGD or Adam: the probe CLI's end-to-end test script.

    python tests/scripts_probe/train_tiny.py --steps 300
    autowarm probe tests/scripts_probe/train_tiny.py --steps 60 --trials 6

Options make it misbehave on purpose: ``--crash-at N`` raises at step N, ``--hang-above LR``
sleeps forever once the optimizer's LR exceeds LR, ``--no-wrap`` never wraps the optimizer.
SGD on this model diverges to Inf/NaN at a high LR, which the probe must report and avoid.
"""

from __future__ import annotations

import argparse
import math
import time

import torch

import autowarm

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=300)
parser.add_argument("--lr", type=float, default=0.05)
parser.add_argument("--opt", choices=("sgd", "adam"), default="sgd")
parser.add_argument("--crash-at", type=int, default=-1)
parser.add_argument("--hang-above", type=float, default=float("inf"))
parser.add_argument("--no-wrap", action="store_true")
parser.add_argument("--no-report", action="store_true", help="wrap, but never report the loss")
parser.add_argument("--step-sleep", type=float, default=0.0, help="seconds per step (slow it)")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--cosine", action="store_true", help="step a CosineAnnealingLR of its own")
parser.add_argument(
    "--score-at", type=float, help="autowarm.score_with(): 5 + |log(peak LR / this)|, best there"
)
args = parser.parse_args()

torch.set_num_threads(1)
torch.manual_seed(args.seed)
X = torch.randn(2048, 16)
y = torch.tanh(X @ torch.randn(16, 1)) + 0.05 * torch.randn(2048, 1)
model = torch.nn.Sequential(torch.nn.Linear(16, 64), torch.nn.Tanh(), torch.nn.Linear(64, 1))
if args.opt == "sgd":
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)
else:
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
if not args.no_wrap:
    optimizer = autowarm.wrap(optimizer)
scheduler = (
    torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, args.steps) if args.cosine else None
)
peak = 0.0  # the highest LR the steps ran at (the trial's peak LR, inside a probe)
if args.score_at:
    autowarm.score_with(lambda: 5 + abs(math.log(peak / args.score_at)))

for step in range(args.steps):
    idx = torch.randint(0, X.shape[0], (64,))
    loss = torch.nn.functional.mse_loss(model(X[idx]), y[idx]) * 10
    optimizer.zero_grad()
    loss.backward()
    if not (args.no_wrap or args.no_report):
        optimizer.report(loss)
    if step == args.crash_at:
        raise RuntimeError(f"deliberate crash at step {step}")
    if optimizer.param_groups[0]["lr"] > args.hang_above:
        time.sleep(3600)
    time.sleep(args.step_sleep)
    optimizer.step()
    peak = max(peak, optimizer.param_groups[0]["lr"])  # after step(): the LR the probe set
    if scheduler is not None:
        scheduler.step()

with torch.no_grad():
    print(f"final loss {torch.nn.functional.mse_loss(model(X), y).item() * 10:.4f}")
