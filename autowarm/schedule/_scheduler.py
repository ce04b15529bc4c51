"""``autowarm.RecipeLR``: a ``LambdaLR`` driven by a :class:`~autowarm.Recipe`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch.optim.lr_scheduler import LambdaLR

from autowarm._errors import AutowarmError
from autowarm.schedule._groups import group_ratios, set_lrs

if TYPE_CHECKING:
    from autowarm.schedule._recipe import Recipe

# key under which the recipe's hyperparameters travel in the scheduler's state_dict
_STATE_KEY = "autowarm_recipe"


class RecipeLR(LambdaLR):
    """A ``torch.optim.lr_scheduler.LambdaLR`` whose multiplier is a recipe's schedule.

    - The param group with the most parameters gets ``recipe.peak_lr``; every other group keeps
      its ratio to it (a head at 10x the backbone's LR stays at 10x), exactly as ``autowarm
      probe`` applied the trial LRs (:mod:`autowarm.schedule._groups`). The ratios come from
      the groups' ``initial_lr`` (set by an earlier scheduler) or else their ``lr``.
    - The schedule is a closed-form function of ``last_epoch`` (the number of ``step()`` calls),
      so the usual ``scheduler.load_state_dict(ckpt["scheduler"])`` resumes exactly.
    - ``state_dict()`` also carries the recipe's hyperparameters (peak LR, warmup, total steps,
      shapes, ...). Loading a checkpoint saved by a scheduler built from a different recipe
      raises :class:`~autowarm.AutowarmError` naming the fields that differ, instead of
      silently continuing on another schedule (HF's schedulers cannot tell: nothing of their
      ``partial`` lambdas is saved).

    ``total_steps`` overrides ``recipe.total_steps`` (through :meth:`Recipe.for_run`: a probe's
    recipe is carried to that length as ``autowarm show --total-steps`` would); decaying shapes
    need one of them and raise here, at construction, when both are ``None``.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        recipe: Recipe,
        *,
        total_steps: int | None = None,
        last_epoch: int = -1,
    ) -> None:
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not a torch.optim.Optimizer")
        recipe = recipe.for_run(total_steps)  # a probe's recipe is carried to that length
        schedule = recipe.schedule()
        schedule.require_total()  # fail now, not at the first step()
        self.recipe = recipe
        self.schedule = schedule

        # 1) the reference group (most parameters) gets peak_lr, the others keep their ratio
        #    to it (the same rule the probe applied). We set initial_lr ourselves:
        #    LRScheduler only setdefault()s it, which would keep a stale value.
        for group, ratio in zip(optimizer.param_groups, group_ratios(optimizer.param_groups)):
            group["initial_lr"] = recipe.peak_lr * ratio
        if last_epoch == -1:
            set_lrs(optimizer.param_groups, [g["initial_lr"] for g in optimizer.param_groups])
        super().__init__(optimizer, schedule.multiplier, last_epoch=last_epoch)

    def hyperparameters(self) -> dict[str, Any]:
        """What defines this scheduler's LR curve: ``peak_lr`` and the resolved schedule."""
        return {"peak_lr": self.recipe.peak_lr, **self.schedule.to_dict()}

    def state_dict(self) -> dict[str, Any]:
        state = {
            k: v
            for k, v in self.__dict__.items()
            if k not in ("optimizer", "lr_lambdas", "recipe", "schedule")
        }
        # the multiplier is rebuilt from the recipe: nothing of it needs saving
        state["lr_lambdas"] = [None] * len(self.lr_lambdas)
        state[_STATE_KEY] = self.hyperparameters()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        saved = state_dict.get(_STATE_KEY)
        if saved is None:
            raise AutowarmError(
                "scheduler state_dict has no autowarm recipe; it was not saved by "
                "autowarm.RecipeLR, load it into the scheduler type that saved it."
            )
        mine = self.hyperparameters()
        diffs = [
            f"{k} {saved.get(k)!r} (checkpoint) != {mine.get(k)!r} (this scheduler)"
            for k in sorted(set(saved) | set(mine))
            if saved.get(k) != mine.get(k)
        ]
        if diffs:
            raise AutowarmError(
                f"checkpoint scheduler was built from a different recipe: {'; '.join(diffs)}; "
                f"build the scheduler from the recipe the run started with."
            )
        groups = len(self.optimizer.param_groups)
        if len(state_dict.get("base_lrs", ())) != groups:
            raise AutowarmError(
                f"checkpoint scheduler has {len(state_dict.get('base_lrs', ()))} param groups "
                f"but this optimizer has {groups}; build the optimizer with the same groups."
            )
        state = {k: v for k, v in state_dict.items() if k != _STATE_KEY}
        super().load_state_dict(state)
        # 2) the LR is a pure function of the step: set it now, so the resumed step is right
        #    whichever order the optimizer and scheduler states were loaded in
        lrs = [base * self.schedule.multiplier(self.last_epoch) for base in self.base_lrs]
        set_lrs(self.optimizer.param_groups, lrs)
        self._last_lr = lrs
