"""Data-parallel training: one decision for all ranks.

Under DDP every rank runs its own monitor on its own loss (each rank's batch differs; the
gradients are the same after the all-reduce). If one rank skipped an update that the others
applied, the replicas' parameters would drift apart for good. So when ``"skip"`` or
``"raise"`` is configured (the host decides every step anyway), the ranks agree with one small
all-reduce (MAX) of ``[skip, raise]``: an update any rank skips is skipped on all of them, and an
instability any rank raises for is raised on all of them. With ``record`` / ``warn`` only,
nothing is exchanged. Warnings are printed by rank 0 alone.
"""

from __future__ import annotations

import torch

from autowarm.monitor._event import EVENT_KINDS, Event


def _distributed() -> bool:
    dist = torch.distributed
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def is_rank_zero() -> bool:
    """True in a plain run and on rank 0 of a distributed one."""
    return not _distributed() or torch.distributed.get_rank() == 0


def agree(
    step: int, skip: bool, raised: Event | None, device: torch.device
) -> tuple[bool, Event | None]:
    """``(skip, event to raise)`` agreed by every rank (unchanged outside distributed runs)."""
    if not _distributed():
        return skip, raised
    dist = torch.distributed
    # NCCL reduces CUDA tensors only; gloo (and the rest) CPU ones
    on = device if dist.get_backend() == "nccl" else torch.device("cpu")
    kind = 0 if raised is None else 1 + EVENT_KINDS.index(raised.kind)
    flags = torch.tensor([float(skip), float(kind)], device=on)
    dist.all_reduce(flags, op=dist.ReduceOp.MAX)
    any_skip, any_kind = bool(flags[0].item()), int(flags[1].item())
    if raised is None and any_kind:
        raised = Event(
            step, EVENT_KINDS[any_kind - 1], "loss", float("nan"), None, "raise", "on another rank"
        )
    return any_skip, raised
