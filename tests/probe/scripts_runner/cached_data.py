"""Builds a data cache the way HF ``datasets`` does -- an incomplete folder written through
Python's file calls, renamed into place, then read back by C code (numpy's ``fromfile``, as
Arrow memory-maps its files) -- under ``$XDG_CACHE_HOME``, or with ``datasets`` itself under
``$HF_DATASETS_CACHE``; then trains a few steps."""

from __future__ import annotations

import os
import sys

import numpy as np
import torch

import autowarm

if "datasets" in sys.argv:
    from datasets import load_dataset

    rows = load_dataset("text", data_files={"train": "data.txt"})["train"]
    x = torch.tensor([[float(len(r["text"]))] for r in rows])
else:
    entry = os.path.join(os.environ["XDG_CACHE_HOME"], "lib", "entry")
    if not os.path.exists(entry):
        os.makedirs(entry + ".incomplete")
        with open(os.path.join(entry + ".incomplete", "x.bin"), "wb") as f:
            f.write(np.arange(16, dtype=np.float32).tobytes())
        os.rename(entry + ".incomplete", entry)
    x = torch.from_numpy(np.fromfile(os.path.join(entry, "x.bin"), dtype=np.float32))[:, None]
model = torch.nn.Linear(1, 1)
optimizer = autowarm.wrap(torch.optim.SGD(model.parameters(), lr=1e-3))
for _ in range(20):
    loss = (model(x / 16) - x / 8).pow(2).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.report(loss)
    optimizer.step()
