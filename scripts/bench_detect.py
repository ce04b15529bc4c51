"""Detection benchmark for the monitor: real small training runs with faults injected at known
steps, and the same runs without faults.

    python scripts/bench_detect.py                 # 3 tasks x 5 seeds, about 2-3 minutes
    python scripts/bench_detect.py --seeds 2 --healthy-steps 400   # quicker look

Tasks (CPU, one thread, no download):
- charlm: a pre-LN character Transformer on the Python stdlib's source text, AdamW 3e-3,
  30 warmup steps then cosine;
- digits: an MLP on scikit-learn's bundled 8x8 digits, SGD with momentum 0.9, LR 0.05;
- regress: an MLP regression (MSE, losses fall by orders of magnitude), Adam 3e-3.

Faults, injected at step F (after warmup, the detector fully warmed up). Each faulty run
branches from a deep copy of the healthy run at F, so it shares its history exactly:
- nan_grad / inf_grad: one element of one gradient set to NaN / Inf;
- inf_loss: the loss multiplied by Inf before backward (loss and gradients non-finite);
- loss_x3 / x10 / x100: for one step the loss (hence also its gradients) is scaled to k times
  the median of the last 64 losses -- k times its typical level, which is what "a k-fold
  spike" means; multiplying one batch's loss by k would make a k-fold spike out of an easy
  batch at a tenth of the median, which is no spike at all;
- grad_x10 / x100: all gradients scaled so their norm is k times the median recent grad norm,
  the loss untouched;
- lr_x10 / lr_x100: the LR multiplied from F on (a real divergence, or NaN);
- amp_overflow: training under torch.amp.GradScaler("cpu") with bf16 autocast; at F the scaled
  loss is multiplied by 1e38 so the scaled gradients overflow float32, exactly the Inf/NaN
  gradients an fp16 overflow produces; GradScaler skips the step and halves its scale. The AMP
  runs also overflow that way at steps 0-2, as GradScaler does at the start of fp16 training
  while it searches its scale: those skips must not be instabilities either.

Printed: per fault, the fraction of runs caught, by which event kind, and the steps from the
fault to the detection (0 = the faulty step itself); then false alarms (instability events) per
10,000 healthy steps: the healthy runs of every task and seed, the fault-free AMP runs, and the
shared prefixes of faulty runs are the same steps, so counted once.
"""

from __future__ import annotations

import argparse
import copy
import math
import statistics
import sys
import sysconfig
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from bench_overhead import TinyLM  # scripts/ is on sys.path when run as a script
from rich.console import Console
from rich.table import Table

import autowarm
from autowarm.monitor import MonitoredOptimizer

FAULT_STEP = 150
DIGITS_BATCH = 64
AFTER_FAULT = 30  # steps run after the fault: LR jumps must be caught within 20
SPIKE_FAULTS = {"loss_x3": 3.0, "loss_x10": 10.0, "loss_x100": 100.0}
GRAD_FAULTS = {"grad_x10": 10.0, "grad_x100": 100.0}
LR_FAULTS = {"lr_x10": 10.0, "lr_x100": 100.0}
FAULTS = [
    "nan_grad",
    "inf_grad",
    "inf_loss",
    *SPIKE_FAULTS,
    *GRAD_FAULTS,
    *LR_FAULTS,
    "amp_overflow",
]
# what each fault must be caught as, and within how many steps (the targets)
EXPECTED: dict[str, tuple[set[str], int | None]] = {
    "nan_grad": ({"nonfinite"}, 0),
    "inf_grad": ({"nonfinite"}, 0),
    "inf_loss": ({"nonfinite"}, 0),
    "loss_x3": ({"spike"}, None),  # reported, no target
    "loss_x10": ({"spike"}, 0),
    "loss_x100": ({"spike"}, 0),
    "grad_x10": ({"spike"}, 0),
    "grad_x100": ({"spike"}, 0),
    "lr_x10": ({"divergence", "nonfinite"}, 20),
    "lr_x100": ({"divergence", "nonfinite"}, 20),
    "amp_overflow": ({"amp_skip"}, 0),
}


# -- tasks ----------------------------------------------------------------------------------------
ALPHABET = "\n" + "".join(chr(c) for c in range(32, 127))


def _stdlib_text(n_chars: int = 100_000) -> torch.Tensor:
    parts, size = [], 0
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py")):
        if not path.name.startswith("_"):
            parts.append(path.read_text(encoding="utf-8", errors="replace"))
            size += len(parts[-1])
            if size >= n_chars:
                break
    index = {c: i for i, c in enumerate(ALPHABET)}
    text = "".join(parts)[:n_chars]
    return torch.tensor([index.get(c, index["?"]) for c in text], dtype=torch.long)


@dataclass
class Task:
    name: str
    make_model: Callable[[], nn.Module]
    make_opt: Callable[[list[nn.Parameter]], torch.optim.Optimizer]
    batch: Callable[[torch.Generator], tuple[torch.Tensor, torch.Tensor]]
    loss: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]
    lr: Callable[[int], float]  # LR multiplier per step (warmup, decay)


def _tasks() -> dict[str, Task]:
    text = _stdlib_text()

    def lm_batch(g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        starts = torch.randint(0, len(text) - 33, (16,), generator=g)
        chunk = torch.stack([text[s : s + 33] for s in starts.tolist()])
        return chunk[:, :-1], chunk[:, 1:]

    def lm_loss(m: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(m(x).reshape(-1, len(ALPHABET)), y.reshape(-1))

    from sklearn.datasets import load_digits

    digits = load_digits()
    dx = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    dy = torch.tensor(digits.target, dtype=torch.long)

    def digits_batch(g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        i = torch.randint(0, len(dx), (DIGITS_BATCH,), generator=g)
        return dx[i], dy[i]

    w_true = 0.3 * torch.randn(16, 1, generator=torch.Generator().manual_seed(0))

    def reg_batch(g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.randn(64, 16, generator=g)
        return x, torch.sin(x @ w_true) + 0.01 * torch.randn(64, 1, generator=g)

    def ce(m: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(m(x), y)

    def mse(m: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(m(x), y)

    def warmup_cosine(warmup: int, total: int = 2000) -> Callable[[int], float]:
        def f(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            return 0.55 + 0.45 * math.cos(math.pi * min(1.0, (step - warmup) / total))

        return f

    return {
        "charlm": Task(
            "charlm",
            lambda: TinyLM(len(ALPHABET), d=64, layers=2, context=32, ff_mult=2),
            lambda p: torch.optim.AdamW(p, lr=3e-3, weight_decay=0.01),
            lm_batch,
            lm_loss,
            warmup_cosine(30),
        ),
        "digits": Task(
            "digits",
            lambda: nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10)),
            lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
            digits_batch,
            ce,
            warmup_cosine(10),
        ),
        "regress": Task(
            "regress",
            lambda: nn.Sequential(nn.Linear(16, 64), nn.Tanh(), nn.Linear(64, 1)),
            lambda p: torch.optim.Adam(p, lr=1e-2),
            reg_batch,
            mse,
            warmup_cosine(20),
        ),
    }


# -- one training run ------------------------------------------------------------------------------
@dataclass
class Run:
    task: Task
    seed: int
    amp: bool = False
    model: nn.Module = field(init=False)
    opt: MonitoredOptimizer = field(init=False)
    scaler: torch.amp.GradScaler | None = field(init=False, default=None)
    base_lrs: list[float] = field(init=False)
    lr_factor: float = 1.0
    step: int = 0

    def __post_init__(self) -> None:
        torch.manual_seed(self.seed)
        self.model = self.task.make_model()
        self.opt = autowarm.wrap(
            self.task.make_opt(list(self.model.parameters())), actions="record"
        )
        self.base_lrs = [g["lr"] for g in self.opt.param_groups]
        if self.amp:
            self.scaler = torch.amp.GradScaler("cpu")

    def branch(self) -> Run:
        # deepcopy all together so the optimizer still points at the copied model's parameters
        return copy.deepcopy(self)

    def train_step(self, fault: str | None = None) -> None:
        task, opt, step = self.task, self.opt, self.step
        if fault in LR_FAULTS:
            self.lr_factor = LR_FAULTS[fault]
        for group, base in zip(opt.param_groups, self.base_lrs):
            group["lr"] = base * task.lr(step) * self.lr_factor
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        x, y = task.batch(g)
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.amp):
            loss = task.loss(self.model, x, y)
        loss = loss.float()
        history = self.opt.monitor.history
        if fault in SPIKE_FAULTS:
            # k times the typical (median) recent loss -- the gradients scale with it
            typical = float(np.median(history.column("loss")[-64:]))
            loss = loss * (SPIKE_FAULTS[fault] * typical / loss.item())
        if fault == "inf_loss":
            loss = loss * math.inf
        if self.scaler is not None:
            scaled = self.scaler.scale(loss)
            if fault == "amp_overflow" or self.step < 3:
                scaled = scaled * 1e38
            scaled.backward()
        else:
            loss.backward()
        params = [p for p in self.model.parameters() if p.grad is not None]
        if fault == "nan_grad":
            params[len(params) // 2].grad.view(-1)[0] = math.nan
        if fault == "inf_grad":
            params[-1].grad.view(-1)[-1] = math.inf
        if fault in GRAD_FAULTS:
            # k times the typical (median) recent gradient norm, the loss untouched
            typical = float(np.median(history.column("grad_norm")[-64:]))
            norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params]))
            for p in params:
                p.grad.mul_(GRAD_FAULTS[fault] * typical / norm)
        opt.report(loss)
        if self.scaler is not None:
            self.scaler.step(opt)
            self.scaler.update()
        else:
            opt.step()
        self.step += 1


# -- the benchmark --------------------------------------------------------------------------------
def _instabilities(run: Run, since: int = 0) -> list[autowarm.Event]:
    return [e for e in run.opt.monitor.events if e.is_instability and e.step >= since]


def _log_spread(values: np.ndarray) -> float:
    """1.4826 * MAD of log(values): the multiplicative noise the spike test sees."""
    logs = np.log(values[values > 0])
    return float(1.4826 * np.median(np.abs(logs - np.median(logs))))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--healthy-steps", type=int, default=700)
    parser.add_argument("--tasks", default="charlm,digits,regress")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    console = Console(width=120)
    tasks = _tasks()
    names = [t for t in args.tasks.split(",") if t]
    t0 = time.perf_counter()

    # fault -> [(task, kind caught as or None, steps to detection or None)]
    caught: dict[str, list[tuple[str, str | None, int | None]]] = defaultdict(list)
    healthy_steps = 0
    false_alarms: list[tuple[str, int, autowarm.Event]] = []
    noise: dict[str, list[tuple[float, float]]] = defaultdict(list)
    hot: dict[str, list[str]] = defaultdict(list)
    for name in names:
        for seed in range(args.seeds):
            for amp in (False, True):
                # 1) the healthy run; at FAULT_STEP, remember a copy to branch the faults from
                run = Run(tasks[name], seed, amp=amp)
                snapshot = None
                n_steps = args.healthy_steps if not amp else FAULT_STEP + AFTER_FAULT
                for _ in range(n_steps):
                    if run.step == FAULT_STEP:
                        snapshot = run.branch()
                    run.train_step()
                healthy_steps += n_steps
                false_alarms += [(name, seed, e) for e in _instabilities(run)]
                if not amp:
                    h = run.opt.monitor.history
                    window = slice(FAULT_STEP - 64, FAULT_STEP)
                    noise[name].append(
                        (
                            _log_spread(h.column("loss")[window]),
                            _log_spread(h.column("grad_norm")[window]),
                        )
                    )
                # 2) the faults, each from a copy of the healthy state at FAULT_STEP
                assert snapshot is not None
                for fault in FAULTS:
                    if (fault == "amp_overflow") != amp:
                        continue
                    branch = snapshot.branch()
                    branch.train_step(fault)
                    for _ in range(AFTER_FAULT - 1):
                        branch.train_step()
                    kinds, _ = EXPECTED[fault]
                    events = [e for e in branch.opt.monitor.events if e.step >= FAULT_STEP]
                    hit = next((e for e in events if e.kind in kinds), None)
                    caught[fault].append(
                        (name, hit.kind, hit.step - FAULT_STEP) if hit else (name, None, None)
                    )
                    if fault == "amp_overflow":
                        # AMP skips must never be reported as instabilities
                        false_alarms += [(name + "+amp", seed, e) for e in _instabilities(branch)]
                        healthy_steps += AFTER_FAULT
            # 3) informational: 10x the LR from the first step (too hot, warmup kept)
            run = Run(tasks[name], seed)
            run.lr_factor = 10.0
            for _ in range(FAULT_STEP):
                run.train_step()
            first = _instabilities(run)
            hot[name].append(f"{first[0].kind}@{first[0].step}" if first else "none")
            console.print(f"[dim]{name} seed {seed} done ({time.perf_counter() - t0:.0f} s)[/]")

    # 4) the tables
    table = Table(
        title=f"faults injected at step {FAULT_STEP} ({len(names)} tasks x {args.seeds} seeds)"
    )
    for col in ("fault", "caught", "per task", "as", "steps to detection", "target", "met"):
        table.add_column(col)
    all_met = True
    for fault in FAULTS:
        results = caught[fault]
        kinds, within = EXPECTED[fault]
        limit = within if within is not None else AFTER_FAULT
        ok_runs = [
            (t, k, d) for t, k, d in results if k is not None and d is not None and d <= limit
        ]
        delays = [d for _, _, d in ok_runs]
        if within is None:
            met, target = "-", "report"
        else:
            met = "yes" if len(ok_runs) == len(results) else "NO"
            all_met &= met == "yes"
            target = f"100% within {within}" if within else "100% same step"
        per_task = ", ".join(
            f"{t} {sum(1 for r in ok_runs if r[0] == t)}/{sum(1 for r in results if r[0] == t)}"
            for t in names
        )
        by_kind = Counter(k for _, k, _ in ok_runs)
        table.add_row(
            fault,
            f"{len(ok_runs)}/{len(results)}",
            per_task,
            ", ".join(f"{k} {n}" for k, n in by_kind.most_common()) or "-",
            f"median {statistics.median(delays):g}, max {max(delays)}" if delays else "-",
            target,
            met,
        )
    console.print(table)
    rate = 1e4 * len(false_alarms) / max(1, healthy_steps)
    console.print(
        f"false alarms: {len(false_alarms)} instability events in {healthy_steps} healthy steps "
        f"= {rate:.2f} per 10,000 steps (target 0)"
    )
    for name, seed, e in false_alarms[:10]:
        console.print(f"  {name} seed {seed}: {e}")
    all_met &= not false_alarms
    for name in names:
        loss_noise = statistics.median(n[0] for n in noise[name])
        grad_noise = statistics.median(n[1] for n in noise[name])
        console.print(
            f"{name}: log spread (1.4826 MAD of log) before the fault: loss {loss_noise:.2f}, "
            f"grad norm {grad_noise:.2f}, so a 10x spike is "
            f"{math.log(10) / max(loss_noise, 1e-9):.1f} / "
            f"{math.log(10) / max(grad_noise, 1e-9):.1f} spreads high (threshold 6); "
            f"LR x10 from step 0: {', '.join(hot[name])}"
        )
    console.print(f"[dim]{time.perf_counter() - t0:.0f} s[/]")
    return 0 if all_met else 1


if __name__ == "__main__":
    sys.exit(main())
