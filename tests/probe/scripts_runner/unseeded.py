"""Seeds nothing: its init, data and noise come from whatever random state it starts with
(Python's ``random``, numpy's and torch's global ones)."""

from __future__ import annotations

import random

import numpy as np
import torch

import autowarm

model = torch.nn.Linear(4, 1)
optimizer = autowarm.wrap(torch.optim.SGD(model.parameters(), lr=0.01))
scale = random.random() + float(np.random.rand())
for _ in range(5):
    loss = (model(torch.randn(8, 4)) - scale).pow(2).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.report(loss)
    optimizer.step()
