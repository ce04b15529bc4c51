"""The monitor: ``autowarm.wrap(optimizer)`` watches loss and gradient norm for NaN/Inf,
spikes, divergence and stalls, cheaply (no host sync per step on CUDA)."""

from __future__ import annotations

from autowarm.monitor._detect import Thresholds
from autowarm.monitor._event import EVENT_KINDS, Event, StepRecord
from autowarm.monitor._monitor import DEFAULT_ACTIONS, History, Monitor
from autowarm.monitor._optimizer import MonitoredOptimizer, wrap

__all__ = [
    "DEFAULT_ACTIONS",
    "EVENT_KINDS",
    "Event",
    "History",
    "Monitor",
    "MonitoredOptimizer",
    "StepRecord",
    "Thresholds",
    "wrap",
]
