"""``autowarm probe``: short probe runs of the user's script, searched with Optuna.

- :class:`ProbeRunner` runs one probe trial of a script (its own process) -> :class:`TrialResult`;
- :class:`ProbeSearch` searches peak LR × warmup over an Optuna study (:class:`ProbeConfig`);
- :func:`recommend` turns the trials into an :class:`autowarm.Recipe` with its evidence.

Names load lazily: ``autowarm --help`` must not pay for importing optuna.
"""

from __future__ import annotations

from autowarm._lazy import lazy_names

_LAZY = {
    "ProbeRunner": "autowarm.probe._runner",
    "TrialSpec": "autowarm.probe._types",
    "TrialResult": "autowarm.probe._types",
    "ProbeConfig": "autowarm.probe._config",
    "ProbeSearch": "autowarm.probe._search",
    "TrialRecord": "autowarm.probe._record",
    "recommend": "autowarm.probe._recommend",
}

__all__ = sorted(_LAZY)

__getattr__, __dir__ = lazy_names(__name__, _LAZY, globals())
