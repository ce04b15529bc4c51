"""Trains a few steps and writes like real scripts do: a checkpoint with torch.save (read back
at once), a log appended to with open(), a metrics file through pathlib."""

from __future__ import annotations

import os
import pathlib

import torch

import autowarm

torch.manual_seed(0)
model = torch.nn.Linear(4, 1)
optimizer = autowarm.wrap(torch.optim.SGD(model.parameters(), lr=0.01))
os.makedirs("out", exist_ok=True)
for step in range(40):
    x = torch.randn(16, 4)
    loss = (model(x) - x.sum(1, keepdim=True)).pow(2).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.report(loss)
    if step == 5:
        torch.save({"model": model.state_dict(), "step": step}, "out/ckpt.pt")
        assert torch.load("out/ckpt.pt")["step"] == 5  # the trial reads its own checkpoint
        with open("train.log", "a") as log:
            log.write(f"step {step} loss {loss.item():.4f}\n")
        pathlib.Path("out/metrics.json").write_text(f'{{"loss": {loss.item():f}}}')
    optimizer.step()
