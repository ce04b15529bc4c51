"""Logs to tensorboard as most training scripts do: a ``SummaryWriter`` on the project's
``runs/`` folder (the user's earlier runs live there), a scalar every step, flushed."""

from __future__ import annotations

import torch
from torch.utils.tensorboard import SummaryWriter

import autowarm

torch.manual_seed(0)
model = torch.nn.Linear(4, 1)
optimizer = autowarm.wrap(torch.optim.SGD(model.parameters(), lr=0.01))
writer = SummaryWriter(log_dir="runs")
for step in range(40):
    x = torch.randn(16, 4)
    loss = (model(x) - x.sum(1, keepdim=True)).pow(2).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.report(loss)
    writer.add_scalar("loss/train", loss.item(), step)
    writer.flush()
    optimizer.step()
writer.close()
