"""The monitor: ``autowarm.wrap(optimizer)`` watches loss and gradient norm for NaN/Inf,
spikes, divergence and stalls, cheaply (no host sync per step on CUDA).

    optimizer = autowarm.wrap(torch.optim.AdamW(model.parameters(), lr=3e-4))
    for batch in loader:
        loss = model(batch)
        loss.backward()
        optimizer.report(loss)          # the one extra line
        optimizer.step()
        optimizer.zero_grad()
    optimizer.monitor.summary()         # a rich table of what happened

Modules: ``_event`` (Event, StepRecord), ``_detect`` (the rules and their defaults),
``_monitor`` (history, events, actions, summary), ``_optimizer`` (the wrapper and its costs),
``_clip`` (the norm before the user's own gradient clipping), ``_find`` (the wrapper inside a
framework's wrapper: ``autowarm.report(optimizer, loss)``), ``_ranks`` (one skip/raise decision
for all DDP ranks).
"""

from __future__ import annotations

from autowarm.monitor._detect import Thresholds
from autowarm.monitor._event import EVENT_KINDS, Event, StepRecord
from autowarm.monitor._find import monitored, report
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
    "monitored",
    "report",
    "wrap",
]
