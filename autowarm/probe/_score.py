"""What a trial's losses are worth to the search: its score, the score's noise, the penalty."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

#: The last fraction of the probe whose mean loss is a trial's score.
SCORE_WINDOW = 0.15


def _window(losses: Sequence[float], steps: int) -> np.ndarray:
    arr = np.asarray(losses[:steps], dtype=float)
    tail = arr[-max(1, math.ceil(SCORE_WINDOW * steps)) :]
    return tail[np.isfinite(tail)]


def score(losses: Sequence[float], steps: int) -> float:
    """Robust end-of-probe loss: the mean of the finite losses over the last 15% of the probe
    (a single last loss is one noisy mini-batch)."""
    tail = _window(losses, steps)
    return float(tail.mean()) if tail.size else math.nan


def trial_score(losses: Sequence[float], steps: int, script_score: float | None) -> float:
    """A finished trial's score: the script's own (``autowarm.score_with``) when it gave one,
    else :func:`score` of its losses."""
    return script_score if script_score is not None else score(losses, steps)


def noise(losses: Sequence[float], steps: int) -> float:
    """Standard error of :func:`score`: spread of the window's losses around a linear trend,
    over sqrt(window)."""
    tail = _window(losses, steps)
    if tail.size < 3:
        return 0.0
    x = np.arange(tail.size)
    resid = tail - np.polyval(np.polyfit(x, tail, 1), x)
    return float(resid.std(ddof=2) / math.sqrt(tail.size))


def initial_loss(losses: Sequence[float]) -> float:
    head = np.asarray(losses[:5], dtype=float)
    head = head[np.isfinite(head)]
    return float(np.median(head)) if head.size else math.nan


def penalty(reference: float) -> float:
    """The value of an unstable trial: 10% worse than the initial loss, i.e. worse than any
    run that learned anything (a constant, so GP/TPE see a plateau, not wild outliers)."""
    if not math.isfinite(reference):
        return 1e6
    return reference + 0.1 * abs(reference) + 1e-3
