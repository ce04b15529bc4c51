"""Two DDP ranks on gloo; rank 1 alone reports a x1000 loss at step 25. Each rank writes its
parameters' checksum and what its monitor did to OUT/rank-R.json.

    python -m torch.distributed.run --standalone --nproc-per-node 2 ddp_spike.py OUT ACTION
"""

from __future__ import annotations

import json
import os
import sys

import torch
import torch.distributed as dist

import autowarm

out, action = sys.argv[1], sys.argv[2]
dist.init_process_group("gloo")
rank = dist.get_rank()
torch.manual_seed(0)
torch.set_num_threads(1)
model = torch.nn.parallel.DistributedDataParallel(
    torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
)
opt = autowarm.wrap(torch.optim.SGD(model.parameters(), lr=0.05), actions={"spike": action})
g = torch.Generator().manual_seed(100 + rank)  # each rank its own batches
raised = None
try:
    for step in range(35):
        x = torch.randn(16, 8, generator=g)
        loss = torch.nn.functional.mse_loss(model(x), x.sum(1, keepdim=True))
        opt.zero_grad()
        loss.backward()
        opt.report(loss * 1000 if (rank == 1 and step == 25) else loss)
        opt.step()
except autowarm.InstabilityError as e:
    raised = e.event.step
checksum = float(sum(p.detach().double().sum() for p in model.parameters()))
skipped = [r.step for r in opt.monitor.history if r.skipped]
with open(f"{out}/rank-{rank}.json", "w") as f:
    json.dump({"checksum": checksum, "skipped": skipped, "raised": raised}, f)
# Every rank is done talking (barrier), then leaves without tearing gloo down: its teardown
# aborted once in CI (rank 0: SIGABRT, "terminate called without an active exception"), and
# with a barrier before destroy_process_group the "raise" test still failed once in a full
# local run under load (its output was not kept). Teardown is gloo's, not what this test is
# about; the results are on disk.
dist.barrier()
sys.stdout.flush()
sys.stderr.flush()
os._exit(0)
