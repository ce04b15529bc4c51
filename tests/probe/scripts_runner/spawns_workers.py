"""Trains in a process it starts itself (``torch.multiprocessing.spawn``, as pytorch/examples'
imagenet ``--multiprocessing-distributed`` does); the worker first writes over a file of the
user's (a log, a checkpoint), then wraps its optimizer."""

from __future__ import annotations

import torch
import torch.multiprocessing as mp

import autowarm


def worker(rank: int) -> None:
    with open("user.txt", "w") as f:
        f.write(f"written by worker {rank}\n")
    model = torch.nn.Linear(4, 1)
    optimizer = autowarm.wrap(torch.optim.SGD(model.parameters(), lr=0.1))
    for _ in range(200):
        loss = model(torch.randn(8, 4)).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.report(loss)
        optimizer.step()


if __name__ == "__main__":
    mp.spawn(worker, nprocs=1)
