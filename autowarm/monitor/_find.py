"""The monitored optimizer inside a framework's wrapper, and ``autowarm.report(opt, loss)``.

accelerate's ``AcceleratedOptimizer`` holds yours as ``.optimizer``, Lightning's
``LightningOptimizer`` as ``._optimizer``; neither forwards unknown attributes, so after
``optimizer = accelerator.prepare(autowarm.wrap(optimizer))`` the method ``optimizer.report``
is gone. The function form finds the wrapper wherever it sits::

    autowarm.report(optimizer, loss)     # any wrapper around autowarm.wrap(...)

Lightning's ``LightningOptimizer`` and Fabric's ``_FabricOptimizer`` are *shells*: each makes
itself an instance of a new subclass of the class it wraps (``FabricMonitoredOptimizer``), so
``isinstance(shell, MonitoredOptimizer)`` holds and ``shell.report`` exists, but the shell holds
none of the wrapper's state and what ``report`` sets on it never reaches the wrapped optimizer's
``step``. The shell keeps the optimizer it wraps as ``_optimizer``, which a real
:class:`MonitoredOptimizer` never has; both forms look through it.
"""

from __future__ import annotations

from typing import Any

import torch

from autowarm._errors import AutowarmError
from autowarm.monitor._optimizer import MonitoredOptimizer, is_shell

#: where framework wrappers keep the optimizer they wrap (accelerate, Lightning)
_INNER = ("optimizer", "_optimizer")
_DEPTH = 8


def _inner_key(obj: Any) -> str | None:
    attrs = getattr(obj, "__dict__", {})
    return next((k for k in _INNER if isinstance(attrs.get(k), torch.optim.Optimizer)), None)


def monitored(optimizer: Any) -> MonitoredOptimizer:
    """The :class:`MonitoredOptimizer` that is ``optimizer`` or sits inside its wrappers."""
    current = optimizer
    for _ in range(_DEPTH):
        if isinstance(current, MonitoredOptimizer) and not is_shell(current):
            return current
        key = _inner_key(current)
        if key is None:
            break
        current = current.__dict__[key]
    raise AutowarmError(
        f"{type(optimizer).__name__} holds no autowarm-wrapped optimizer; wrap the bare one "
        "first: optimizer = autowarm.wrap(optimizer), then hand that to the framework."
    )


def report(optimizer: Any, loss: torch.Tensor | float) -> None:
    """``optimizer.report(loss)`` through any framework wrapper (see the module docstring)."""
    monitored(optimizer).report(loss)


def wrap_inside(wrapper: Any, **wrap_kwargs: Any) -> MonitoredOptimizer:
    """Wrap, in place, the bare optimizer that a framework's ``wrapper`` holds (the HF
    callback: the Trainer built and wrapped the optimizer); an already monitored one stays."""
    from autowarm.monitor._optimizer import wrap

    holder = wrapper
    for _ in range(_DEPTH):
        key = _inner_key(holder)
        if key is None:
            break
        inner = holder.__dict__[key]
        if isinstance(inner, MonitoredOptimizer) and not is_shell(inner):
            return inner
        if _inner_key(inner) is None:  # the bare optimizer: put the wrapper in its place
            wrapped = wrap(inner, **wrap_kwargs)
            setattr(holder, key, wrapped)
            return wrapped
        holder = inner
    raise AutowarmError(
        f"cannot find a bare optimizer inside {type(wrapper).__name__}; wrap it yourself with "
        "autowarm.wrap(optimizer) before handing it to the framework."
    )
