"""An LR range test (Smith 2017; torch-lr-finder's rule) on any script that calls autowarm.wrap.

    python scripts/lr_range_test.py --start 1e-6 --end 10 --iters 100 recipes/charlm/train.py
    python scripts/lr_range_test.py --warmup-frac 0.3 --out rt.json scripts/workloads/gru_lm.py

The script runs as ``python SCRIPT ARGS`` would, but every wrapped optimizer's LR is set before
each step to an exponential ramp from --start to --end over --iters steps (times a linear
warmup over the first --warmup-frac of them, for the benchmark's "range test per warmup"
baseline), keeping the ratios between param groups, whatever the script's own schedule does;
the run ends after --iters steps or when the smoothed loss passes 5x its best. The suggestion is
torch-lr-finder's: the LR of the steepest descent of the smoothed loss (beta 0.98, the first 10
and last 5 points skipped). Prints (or writes, --out) one JSON document: suggestion, lrs, smoothed
losses, the optimizer's class and Adam betas (for the untuned warmup rule), wall seconds.

Used by scripts/bench_quality.py for its LR range test baselines; works through the HF Trainer
and Lightning (their autowarm callbacks wrap the optimizer the framework built).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from autowarm._io import atomic_write_text
from autowarm.monitor._optimizer import MonitoredOptimizer
from autowarm.probe._child import _exec_main
from autowarm.schedule._groups import group_ratios, set_lrs

SMOOTH, SKIP_START, SKIP_END, DIVERGE = 0.98, 10, 5, 5.0


class _Done(BaseException):
    """Raised from the step hook to end the script (BaseException: `except Exception` in the
    script, or a framework's, does not swallow it)."""


class RangeTest:
    def __init__(self, start: float, end: float, iters: int, warmup_frac: float) -> None:
        self.start, self.end, self.iters = start, end, iters
        self.warmup = round(warmup_frac * iters)
        self.lrs: list[float] = []
        self.raw: list[float] = []
        self.smooth: list[float] = []
        self.optimizer: dict[str, Any] = {}
        self._avg = 0.0

    def lr_at(self, i: int) -> float:
        ramp = self.start * (self.end / self.start) ** (i / max(1, self.iters - 1))
        return ramp * min(1.0, (i + 1) / (self.warmup + 1))

    def before(self, opt: MonitoredOptimizer, *_: Any) -> None:
        i = len(self.lrs)
        if i == 0:
            self._ratios = group_ratios(opt.param_groups)
            inner = opt.optimizer
            self.optimizer = {
                "class": type(inner).__name__, "betas": inner.defaults.get("betas"),
            }  # fmt: skip
        lr = self.lr_at(i)
        set_lrs(opt.param_groups, [lr * r for r in self._ratios])
        self.lrs.append(lr)

    def after(self, opt: MonitoredOptimizer, *_: Any) -> None:
        rec = opt.monitor.history[-1] if len(opt.monitor.history) else None
        loss = float(getattr(rec, "loss", math.nan)) if rec is not None else math.nan
        self.raw.append(loss)
        i = len(self.raw)
        if math.isfinite(loss):
            self._avg = SMOOTH * self._avg + (1 - SMOOTH) * loss
            smoothed = self._avg / (1 - SMOOTH**i)
        else:
            smoothed = math.inf
        self.smooth.append(smoothed)
        best = min(self.smooth)
        if i >= self.iters or not math.isfinite(smoothed) or smoothed > DIVERGE * best:
            raise _Done

    def suggestion(self) -> float | None:
        """The LR where the smoothed loss falls fastest (torch-lr-finder's suggest_lr)."""
        lrs, ys = self.lrs[SKIP_START:-SKIP_END], self.smooth[SKIP_START:-SKIP_END]
        pts = [(lr, y) for lr, y in zip(lrs, ys) if math.isfinite(y)]
        if len(pts) < 3:
            return None
        # np.gradient over the points, as torch-lr-finder does (unit spacing)
        grads = [pts[1][1] - pts[0][1]]
        grads += [(pts[k + 1][1] - pts[k - 1][1]) / 2 for k in range(1, len(pts) - 1)]
        grads.append(pts[-1][1] - pts[-2][1])
        return pts[min(range(len(grads)), key=grads.__getitem__)][0]


def run(test: RangeTest, script: str, args: list[str]) -> None:
    original = MonitoredOptimizer.__init__

    def init(self: MonitoredOptimizer, *a: Any, **k: Any) -> None:
        original(self, *a, **k)
        self.register_step_pre_hook(test.before)
        self.register_step_post_hook(test.after)

    MonitoredOptimizer.__init__ = init  # type: ignore[method-assign]
    try:
        _exec_main(script, args)
    except _Done:
        pass
    finally:
        MonitoredOptimizer.__init__ = original  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--start", type=float, default=1e-7)
    p.add_argument("--end", type=float, default=10.0)
    p.add_argument("--iters", type=int, default=100)
    p.add_argument("--warmup-frac", type=float, default=0.0)
    p.add_argument("--out", type=Path, help="write the JSON here (default: stdout)")
    p.add_argument("script")
    p.add_argument("args", nargs=argparse.REMAINDER)
    opts = p.parse_args(argv)
    test = RangeTest(opts.start, opts.end, opts.iters, opts.warmup_frac)
    t0 = time.perf_counter()
    stdout = sys.stdout
    sys.stdout = sys.stderr  # the script's prints must not mix with the JSON
    try:
        run(test, opts.script, opts.args)
    finally:
        sys.stdout = stdout
    doc = {
        "suggestion": test.suggestion(), "steps": len(test.lrs), "lrs": test.lrs,
        "smoothed": [y if math.isfinite(y) else None for y in test.smooth],
        "optimizer": test.optimizer, "wall_s": time.perf_counter() - t0,
    }  # fmt: skip
    text = json.dumps(doc)
    if opts.out:
        atomic_write_text(opts.out, text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
