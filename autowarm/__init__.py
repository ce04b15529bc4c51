"""autowarm: pick learning-rate warmup and peak LR for PyTorch training.

- :func:`wrap` an optimizer to monitor loss and gradient norm for instabilities;
- ``autowarm probe train.py`` searches warmup length and peak LR with short probe runs;
- a :class:`Recipe` turns the result into a warmup + decay schedule (:class:`RecipeLR`).
"""

from __future__ import annotations

__version__ = "0.1.0"

from autowarm._errors import AutowarmError, InstabilityError
from autowarm._recipe import Recipe
from autowarm._scheduler import RecipeLR
from autowarm.monitor import Event, Monitor, MonitoredOptimizer, StepRecord, Thresholds, wrap

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
