"""How one schedule drives several param groups: one rule for the probe and for ``RecipeLR``.

A schedule gives one LR per step: the LR of the *reference* group, the group with the most
parameters (the backbone, not a small head at 10x its LR). Every other group keeps its ratio
to the reference: a head at 10x the backbone's LR stays at 10x. A group's base LR is its
``initial_lr`` (written by any torch LR scheduler: the schedule's base even when the scheduler
already set ``lr`` to 0 for step 0), else its ``lr`` (in a probe: its LR at ``wrap()`` time).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def lr_value(lr: Any) -> float:
    """A group's LR as a float; a tensor LR (capturable / fused optimizers) is read."""
    return float(lr.item()) if hasattr(lr, "item") else float(lr)


def reference_group(param_groups: Sequence[dict[str, Any]]) -> int:
    """The index of the group with the most parameters (the first of equals)."""
    sizes = [sum(p.numel() for p in g["params"]) for g in param_groups]
    return max(range(len(sizes)), key=lambda i: sizes[i])


def base_lrs(param_groups: Sequence[dict[str, Any]], first: Sequence[float] = ()) -> list[float]:
    """Each group's base LR: its ``initial_lr`` where a scheduler set one, else the LR it had
    when first seen (``first[i]``: the probe passes the LRs at ``wrap()`` time, before the
    script's loop changed them), else its ``lr``."""
    bases = []
    for i, g in enumerate(param_groups):
        if "initial_lr" in g:
            bases.append(lr_value(g["initial_lr"]))
        else:
            bases.append(first[i] if i < len(first) else lr_value(g["lr"]))
    return bases


def reference_lr(param_groups: Sequence[dict[str, Any]], bases: Sequence[float]) -> float | None:
    """The reference group's base LR (the largest base LR if that one is 0); None if all are 0."""
    reference = bases[reference_group(param_groups)]
    if not reference > 0:
        reference = max(bases)
    return reference if reference > 0 else None


def ratios(bases: Sequence[float], reference: float | None) -> list[float]:
    """Each group's LR as a multiple of the reference's; all 1 without a reference."""
    if reference is None:
        return [1.0] * len(bases)
    return [b / reference for b in bases]


def group_ratios(param_groups: Sequence[dict[str, Any]]) -> list[float]:
    """:func:`ratios` of the groups' own base LRs to their reference group's."""
    bases = base_lrs(param_groups)
    return ratios(bases, reference_lr(param_groups, bases))


def set_lrs(param_groups: Sequence[dict[str, Any]], lrs: Sequence[float]) -> None:
    """Set each group's LR keeping its type: a tensor LR stays a tensor (filled in place)."""
    for group, lr in zip(param_groups, lrs):
        if hasattr(group["lr"], "fill_"):
            group["lr"].fill_(lr)
        else:
            group["lr"] = lr
