"""Schedules: warmup + decay as pure functions of the step, the recipe file and its uses.

- ``_schedule``: :class:`Schedule`, the shapes and their validation;
- ``_recipe``: :class:`Recipe` (peak LR + schedule + evidence), the JSON file format;
- ``_groups``: which param group carries the peak LR and how the others follow it;
- ``_scheduler``: :class:`RecipeLR`, the torch ``LambdaLR`` driven by a recipe;
- ``_code``: code to paste (plain torch, HF transformers, autowarm);
- ``_chart`` / ``_png``: a schedule drawn in the terminal / as a PNG;
- ``_view`` / ``_cli``: ``autowarm schedule RECIPE.json``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from autowarm._lazy import lazy_names

if TYPE_CHECKING:
    from autowarm.schedule._recipe import Recipe
    from autowarm.schedule._schedule import Schedule
    from autowarm.schedule._scheduler import RecipeLR

_LAZY = {
    "Recipe": "autowarm.schedule._recipe",
    "RecipeLR": "autowarm.schedule._scheduler",
    "Schedule": "autowarm.schedule._schedule",
}
__all__ = ["Recipe", "RecipeLR", "Schedule"]
__getattr__, __dir__ = lazy_names(__name__, _LAZY, globals())
