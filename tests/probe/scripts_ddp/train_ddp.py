"""Two-rank DDP training on gloo (CPU) for the distributed probe tests; run it as

    python -m torch.distributed.run --standalone --nproc-per-node 2 train_ddp.py --steps 50

Each rank appends ``{"rank", "step", "loss"}`` to ``--log`` after each optimizer step it
finished. ``--nan-on-rank1-at N``: rank 1 alone reports a NaN loss from step N (its monitor
alone sees it).
"""

from __future__ import annotations

import argparse
import json

import torch
import torch.distributed as dist

import autowarm

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=100)
parser.add_argument("--lr", type=float, default=0.01)
parser.add_argument("--log")
parser.add_argument("--nan-on-rank1-at", type=int, default=-1)
args = parser.parse_args()

dist.init_process_group("gloo")
rank = dist.get_rank()
torch.manual_seed(0)
torch.set_num_threads(1)
model = torch.nn.parallel.DistributedDataParallel(
    torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
)
opt = autowarm.wrap(torch.optim.SGD(model.parameters(), lr=args.lr))
g = torch.Generator().manual_seed(100 + rank)  # each rank its own batches
for step in range(args.steps):
    x = torch.randn(16, 8, generator=g)
    loss = torch.nn.functional.mse_loss(model(x), x.sum(1, keepdim=True))
    opt.zero_grad()
    loss.backward()
    bad = rank == 1 and 0 <= args.nan_on_rank1_at <= step
    opt.report(loss * float("nan") if bad else loss)
    opt.step()
    if args.log:
        with open(args.log, "a") as f:
            record = {"rank": rank, "step": step, "loss": loss.item()}
            f.write(json.dumps(record) + "\n")
dist.barrier()  # every rank done talking before gloo's pairs close (see ddp_spike.py)
dist.destroy_process_group()
