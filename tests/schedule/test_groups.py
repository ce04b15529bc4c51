"""One rule for which param group carries the peak LR: the probe's trials and RecipeLR agree."""

from __future__ import annotations

import json

import pytest
import torch

import autowarm
import autowarm.probe._child as child
from autowarm import Recipe
from autowarm.schedule._groups import group_ratios, reference_group, set_lrs


def _two_groups(backbone_lr: float = 1e-4, head_lr: float = 1e-3) -> torch.optim.Optimizer:
    """A backbone with 10k parameters and a small head at 10x its LR (the head comes second)."""
    torch.manual_seed(0)
    backbone = torch.nn.Linear(100, 100)  # 10,100 parameters
    head = torch.nn.Linear(100, 2)  # 202 parameters
    return torch.optim.AdamW(
        [
            {"params": backbone.parameters(), "lr": backbone_lr},
            {"params": head.parameters(), "lr": head_lr},
        ]
    )


def _lrs(opt: torch.optim.Optimizer) -> list[float]:
    return [float(g["lr"]) for g in opt.param_groups]


def test_the_group_with_the_most_parameters_is_the_reference() -> None:
    opt = _two_groups()
    assert reference_group(opt.param_groups) == 0
    assert group_ratios(opt.param_groups) == pytest.approx([1.0, 10.0])


def test_recipe_scheduler_gives_the_peak_to_the_largest_group_not_the_highest_lr() -> None:
    # the reported bug: [0.001, 0.01] (peak on the head) while the probe tested [0.01, 0.1]
    opt = _two_groups()
    Recipe(1e-2, 0, 10, decay="constant").scheduler(opt)
    assert _lrs(opt) == pytest.approx([1e-2, 1e-1])


def test_probe_trial_lrs_equal_the_recipe_scheduler_per_group_at_every_step(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = {"peak_lr": 1e-2, "warmup_steps": 4, "probe_steps": 12, "decay": "cosine"}
    monkeypatch.setenv(child.TRIAL_ENV, json.dumps(spec))
    monkeypatch.delenv(child.FD_ENV, raising=False)
    monkeypatch.setattr(child, "_session", None)
    # 1) the probe: the wrapped optimizer's controller forces the trial's LR before each update
    probed = autowarm.wrap(_two_groups())
    seen: list[list[float]] = []
    probed.optimizer.register_step_pre_hook(lambda opt, *_: seen.append(_lrs(opt)))
    with pytest.raises(child.TrialEnd):
        for _ in range(spec["probe_steps"]):
            for group in probed.param_groups:  # the script's own loop sets the LR too
                group["lr"] = 123.0
            probed.step()
    assert len(seen) == spec["probe_steps"]
    # 2) the recipe with the same numbers, as a user would apply it
    opt = _two_groups()
    recipe = Recipe(1e-2, 4, 12, decay="cosine")
    scheduler = recipe.scheduler(opt)
    applied = []
    for _ in range(spec["probe_steps"]):
        applied.append(_lrs(opt))
        opt.step()
        scheduler.step()
    for step, (p, r) in enumerate(zip(seen, applied)):
        assert p == pytest.approx(r, rel=1e-9), f"step {step}: probe {p} != recipe {r}"
    assert seen[4] == pytest.approx([1e-2, 1e-1])  # the peak on the backbone, the head at 10x


def test_set_lrs_keeps_a_tensor_lr_a_tensor() -> None:
    p = torch.nn.Parameter(torch.ones(1))
    opt = torch.optim.Adam([p], lr=torch.tensor(0.1))
    lr = opt.param_groups[0]["lr"]
    set_lrs(opt.param_groups, [0.5])
    assert opt.param_groups[0]["lr"] is lr and float(lr) == 0.5
