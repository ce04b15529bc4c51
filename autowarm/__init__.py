"""autowarm: pick learning-rate warmup and peak LR for PyTorch training.

- :func:`wrap` an optimizer to monitor loss and gradient norm for instabilities;
- ``autowarm probe train.py`` searches warmup length and peak LR with short probe runs;
- a :class:`Recipe` turns the result into a warmup + decay schedule (:class:`RecipeLR`).

Names are imported on first use (PEP 562), so the ``autowarm`` command answers ``--help``,
bad input and ``autowarm schedule`` without paying for ``import torch``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from autowarm._lazy import lazy_names
from autowarm.probe import _scratch

# in a process that a probe trial's script started itself (mp.spawn, a DataLoader worker under
# "spawn"), its writes go to the trial's scratch folder as the trial's own do; a no-op elsewhere
_scratch.install()

__version__ = "0.1.0"

if TYPE_CHECKING:
    from autowarm._errors import AutowarmError, InstabilityError
    from autowarm.monitor import (
        Event,
        Monitor,
        MonitoredOptimizer,
        StepRecord,
        Thresholds,
        monitored,
        report,
        wrap,
    )
    from autowarm.probe._probing import probing, score_with
    from autowarm.schedule._recipe import Recipe
    from autowarm.schedule._scheduler import RecipeLR

# public name -> the module that defines it
_LAZY = {
    "AutowarmError": "autowarm._errors",
    "InstabilityError": "autowarm._errors",
    "Recipe": "autowarm.schedule._recipe",
    "RecipeLR": "autowarm.schedule._scheduler",
    "Event": "autowarm.monitor",
    "Monitor": "autowarm.monitor",
    "MonitoredOptimizer": "autowarm.monitor",
    "StepRecord": "autowarm.monitor",
    "Thresholds": "autowarm.monitor",
    "wrap": "autowarm.monitor",
    "report": "autowarm.monitor",
    "monitored": "autowarm.monitor",
    "probing": "autowarm.probe._probing",
    "score_with": "autowarm.probe._probing",
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
    "monitored",
    "probing",
    "report",
    "score_with",
    "wrap",
]

__getattr__, __dir__ = lazy_names(__name__, _LAZY, globals())
