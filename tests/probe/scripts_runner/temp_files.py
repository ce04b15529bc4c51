"""Makes temp files the ways real scripts do -- ``tempfile.mkdtemp``, a kept
``NamedTemporaryFile``, a DataLoader with worker processes (multiprocessing's pymp-* folder) --
then trains a few steps and exits saying where its temp folder and torch.compile's cache are;
with ``hang`` it hangs at step 10, to be killed."""

from __future__ import annotations

import os
import sys
import tempfile
import time

import torch

import autowarm

tempfile.mkdtemp(prefix="script-")  # never removed by the script
tempfile.NamedTemporaryFile(prefix="script-", delete=False).close()
data = torch.utils.data.TensorDataset(torch.randn(64, 4))
batches = list(torch.utils.data.DataLoader(data, batch_size=16, num_workers=2))
model = torch.nn.Linear(4, 1)
optimizer = autowarm.wrap(torch.optim.SGD(model.parameters(), lr=0.01))
for step in range(20):
    (x,) = batches[step % len(batches)]
    loss = (model(x) - x.sum(1, keepdim=True)).pow(2).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.report(loss)
    optimizer.step()
    if step == 10 and "hang" in sys.argv:
        time.sleep(60)
sys.exit(f"temp {tempfile.gettempdir()} inductor {os.environ.get('TORCHINDUCTOR_CACHE_DIR')}")
