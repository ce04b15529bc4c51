"""A fake ProbeRunner for in-process tests of the search: a synthetic loss landscape.

The "script" trains a quadratic bowl: the end-of-probe loss is lowest at peak LR ``best_lr``
(log-parabola), an LR above ``edge_lr * (1 + warmup / 50)`` diverges (warmup tolerates a higher
LR, as in Kalra & Barkeshli 2024), and each step adds seeded noise.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable

import numpy as np

from autowarm.probe._record import TrialRecord
from autowarm.probe._search import Reporter
from autowarm.probe._types import TrialResult, TrialSpec


class FakeRunner:
    def __init__(
        self,
        *,
        script_lr: float = 1e-2,
        best_lr: float = 3e-2,
        edge_lr: float = 0.1,
        noise: float = 0.01,
        fail: str | None = None,
        score_with: Callable[[TrialSpec], float] | None = None,
    ) -> None:
        self.script_lr = script_lr
        self.best_lr = best_lr
        self.edge_lr = edge_lr
        self.noise = noise
        self.fail = fail
        self.score_with = score_with  # the script's autowarm.score_with(), per trial
        self.specs: list[TrialSpec] = []
        self.interrupted = threading.Event()
        self._lock = threading.Lock()

    def edge(self, warmup: int) -> float:
        return self.edge_lr * (1 + warmup / 50)

    def run(self, spec: TrialSpec, *, on_step=None) -> TrialResult:
        with self._lock:
            self.specs.append(spec)
        if self.fail:
            steps = 2 if self.fail == "too_short" else 0  # it ran, but not to the probe length
            return TrialResult(status="failed", steps=steps, failure=self.fail, reason="boom")
        rng = np.random.default_rng(abs(hash((spec.peak_lr, spec.warmup_steps))) % 2**32)
        final = min(2.9, 1.0 + 0.5 * math.log(spec.peak_lr / self.best_lr) ** 2)
        unstable = spec.peak_lr > self.edge(spec.warmup_steps)
        losses: list[float] = []
        for s in range(spec.probe_steps):
            if self.interrupted.is_set():
                return TrialResult(status="interrupted", steps=s, losses=losses)
            progress = min(1.0, (s + 1) / (0.5 * spec.probe_steps))
            loss = 3.0 + (final - 3.0) * progress + self.noise * float(rng.standard_normal())
            if unstable and s >= spec.warmup_steps // 2 + 5:
                losses.append(math.nan)
                return TrialResult(
                    status="nonfinite",
                    steps=s + 1,
                    losses=losses,
                    reason="loss is nan",
                    script_lr=self.script_lr,
                )
            losses.append(loss)
            if on_step is not None and on_step(s, loss, 1.0):
                return TrialResult(status="pruned", steps=s + 1, losses=losses)
        return TrialResult(
            status="stable",
            steps=spec.probe_steps,
            losses=losses,
            script_lr=self.script_lr,
            train_s=0.001 * spec.probe_steps,
            wall_s=0.002 * spec.probe_steps,
            script_score=None if self.score_with is None else self.score_with(spec),
        )

    def interrupt(self) -> None:
        self.interrupted.set()

    def close(self) -> None:
        pass


class InterruptAfter(Reporter):
    """Ctrl-C (a KeyboardInterrupt from the reporter) once ``n`` trials are done."""

    def __init__(self, n: int) -> None:
        self.n = n

    def trial_finished(self, rec: TrialRecord, done: int, total: int) -> None:
        if done >= self.n:
            raise KeyboardInterrupt
