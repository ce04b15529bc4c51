"""autowarm: pick learning-rate warmup and peak LR for PyTorch training.

- :func:`wrap` an optimizer to monitor loss and gradient norm for instabilities;
- ``autowarm probe train.py`` searches warmup length and peak LR with short probe runs;
- a :class:`Recipe` turns the result into a warmup + decay schedule (:class:`RecipeLR`).

Names are imported on first use (PEP 562), so the ``autowarm`` command answers ``--help``,
bad input and ``autowarm schedule`` without paying for ``import torch``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from autowarm._errors import AutowarmError, InstabilityError
    from autowarm._recipe import Recipe
    from autowarm._scheduler import RecipeLR
    from autowarm.monitor import (
        Event,
        Monitor,
        MonitoredOptimizer,
        StepRecord,
        Thresholds,
        wrap,
    )

# public name -> the module that defines it
_LAZY = {
    "AutowarmError": "autowarm._errors",
    "InstabilityError": "autowarm._errors",
    "Recipe": "autowarm._recipe",
    "RecipeLR": "autowarm._scheduler",
    "Event": "autowarm.monitor",
    "Monitor": "autowarm.monitor",
    "MonitoredOptimizer": "autowarm.monitor",
    "StepRecord": "autowarm.monitor",
    "Thresholds": "autowarm.monitor",
    "wrap": "autowarm.monitor",
}

__all__ = [
    "AutowarmError",
    "Event",
    "InstabilityError",
    "Monitor",
    "MonitoredOptimizer",
    "Recipe",
    "RecipeLR",
    "StepRecord",
    "Thresholds",
    "__version__",
    "wrap",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'autowarm' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
