"""Overhead of the monitor: training-step time wrapped vs raw, in one process.

    python scripts/bench_overhead.py              # about a minute
    python scripts/bench_overhead.py --steps 400 --batch 32
    python scripts/bench_overhead.py --model mlp  # 6x256 MLP, batch 128: a ~5-7 ms CPU step

A small pre-LN Transformer LM (CPU, one thread). Two copies of the same model and optimizer,
one wrapped with ``autowarm.wrap`` (plus the ``optimizer.report(loss)`` line), one bare; the
timed steps alternate between them, and which goes first alternates too, so that load from other
processes on the machine hits both alike. Reported: the median full step (zero_grad, forward,
backward, [report], step) of each, the ratio of total times (the headline: it counts the
monitor's batched reads every ``read_every`` steps, which a median step would not), the ratio
of medians, the median of the paired per-iteration ratios, and the same for
``optimizer.step()`` alone, where the monitor's own work (one fused norm pass over the
gradients, a few scalar ops, the host-side detector) is all there is.
"""

from __future__ import annotations

import argparse
import itertools
import math
import random
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table

import autowarm


class TinyLM(nn.Module):
    """A small pre-LN causal Transformer LM (also the LM task of scripts/bench_detect.py)."""

    def __init__(self, vocab: int, d: int, layers: int, context: int, ff_mult: int = 4) -> None:
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(torch.zeros(context, d))
        layer = nn.TransformerEncoderLayer(
            d, 4, ff_mult * d, dropout=0.0, batch_first=True, norm_first=True
        )
        self.blocks = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(d, vocab)
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(context))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.tok(idx) + self.pos[: idx.shape[1]]
        return self.head(self.blocks(x, mask=self.mask, is_causal=True))


class MLP(nn.Module):
    """6 hidden layers of 256 (issue 12's small-step case: the monitor's fixed cost per step
    weighs most where a step is cheapest)."""

    def __init__(self, d_in: int, width: int = 256, depth: int = 6, classes: int = 10) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Linear(d_in, width), nn.ReLU()]
        for _ in range(depth - 1):
            layers += [nn.Linear(width, width), nn.ReLU()]
        self.net = nn.Sequential(*layers, nn.Linear(width, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _setup(args: argparse.Namespace, wrapped: bool) -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model: nn.Module
    if args.model == "mlp":
        model = MLP(args.d_model)
    else:
        model = TinyLM(args.vocab, args.d_model, args.layers, args.context)
    opt: torch.optim.Optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    if wrapped and args.norm_only:
        opt = _NormOnly(opt)
    elif wrapped:
        opt = autowarm.wrap(opt, actions="record")
    return model, opt


class _NormOnly:
    """The floor of any monitor that sees every step's exact gradient norm: the raw optimizer
    plus the monitor's own norm pass (``_total_norm``) and nothing else, no report, no reads."""

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        from autowarm.monitor._optimizer import _total_norm

        grads = [p.grad for g in self.optimizer.param_groups for p in g["params"]]
        _total_norm([g for g in grads if g is not None], torch.device("cpu"))
        self.optimizer.step()


def _loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    out = model(x)
    return F.cross_entropy(out.flatten(0, -2) if out.dim() > 2 else out, y.flatten())


def _timers(
    model: nn.Module,
    opt: torch.optim.Optimizer,
    batches: list[tuple[torch.Tensor, torch.Tensor]],
    clock: Callable[[], float],
) -> tuple[Callable[[int], float], Callable[[int], float]]:
    report = getattr(opt, "report", None)

    def full_step(i: int) -> float:
        x, y = batches[i % len(batches)]
        t0 = clock()
        opt.zero_grad(set_to_none=True)
        loss = _loss(model, x, y)
        loss.backward()
        if report is not None:
            report(loss)
        opt.step()
        return clock() - t0

    def step_only(i: int) -> float:
        # gradients from the last full step are still there: time the update alone
        t0 = clock()
        opt.step()
        return clock() - t0

    return full_step, step_only


def _breakdown(
    opt: Any, backward: Callable[[], None], console: Console, clock: Callable[[], float]
) -> None:
    """What the monitor's pieces cost on this model's gradients (the wrapped optimizer's, left
    by its last step): the exact norm, its parts, and the floor of one flat norm, all with the
    gradients in cache; and the exact norm as a step pays it, right after a ``backward()``."""
    from autowarm.monitor import _optimizer
    from autowarm.monitor._detect import Detector

    n = 2000

    grads = opt._grads()
    flat = torch.cat([g.reshape(-1) for g in grads])
    # the host-side detector on a healthy-looking stream: a falling noisy loss, a noisy norm
    rng = random.Random(0)
    stream = [
        (2.0 * math.exp(-i / n + rng.gauss(0, 0.05)), math.exp(rng.gauss(0, 0.3))) for i in range(n)
    ]
    detector, at = Detector(), itertools.count()

    def detect() -> None:
        i = next(at)
        detector.update(i, *stream[i % n])

    pieces = {
        "monitor's exact grad norm (_total_norm)": lambda: _optimizer._total_norm(
            grads, grads[0].device
        ),
        "of which torch._foreach_norm": lambda: torch._foreach_norm(grads, 2),
        "floor: one vector_norm of the grads pre-flattened": lambda: torch.linalg.vector_norm(flat),
        "report(loss), and step() taking it back": lambda: (opt.report(flat[0]), opt._take_loss()),
        "collecting the grads (_grads)": opt._grads,
        "the detector's update (loss and norm, host side)": detect,
    }
    table = Table(title=f"pieces, {len(grads)} grad tensors, {flat.numel():,} elements")
    table.add_column("piece")
    table.add_column("us per call", justify="right")
    for name, fn in pieces.items():
        t0 = clock()
        for _ in range(n):
            fn()
        table.add_row(name, f"{1e6 * (clock() - t0) / n:.1f}")
    after = []
    for _ in range(n // 4):
        backward()  # fresh gradients, written by the backward, as step() finds them
        fresh = opt._grads()
        t0 = clock()
        _optimizer._total_norm(fresh, fresh[0].device)
        after.append(clock() - t0)
    table.add_row(
        "the exact norm right after a backward (median)", f"{1e6 * statistics.median(after):.1f}"
    )
    console.print(table)


def _measure(
    raw: tuple[Callable[[int], float], Callable[[int], float]],
    wrapped: tuple[Callable[[int], float], Callable[[int], float]],
    args: argparse.Namespace,
) -> tuple[list[tuple[str, float, float, float, float, float]], float]:
    """One interleaved measurement: a row per timed piece (label, raw and wrapped median, ratio
    of totals, of medians, median paired), and the monitor's own ms per optimizer.step()."""
    rows = []
    own_ms = 0.0
    for label, which in (("full step", 0), ("optimizer.step() only", 1)):
        t_raw: list[float] = []
        t_wrapped: list[float] = []
        for i in range(args.warmup + args.steps):
            # both variants see the same batch; alternate who goes first
            first, second = (raw, wrapped) if i % 2 == 0 else (wrapped, raw)
            if which == 1:
                raw[0](i), wrapped[0](i)  # fresh gradients, untimed
            a = first[which](i)
            b = second[which](i)
            if i >= args.warmup:
                (t_raw if first is raw else t_wrapped).append(a)
                (t_wrapped if first is raw else t_raw).append(b)
        med_raw, med_wrapped = statistics.median(t_raw), statistics.median(t_wrapped)
        paired = statistics.median(w / r for w, r in zip(t_wrapped, t_raw))
        # total time: the monitor reads and judges its steps in batches (every read_every
        # steps), a cost the median step would not see
        totals = sum(t_wrapped) / sum(t_raw)
        rows.append((label, med_raw, med_wrapped, totals, med_wrapped / med_raw, paired))
        own_ms = 1e3 * (sum(t_wrapped) - sum(t_raw)) / len(t_raw)  # the last row's: step()
    return rows, own_ms


def _print_rows(
    console: Console, title: str, rows: list[tuple[str, float, float, float, float, float]]
) -> None:
    table = Table(title=title)
    cols = ("timed", "raw ms", "wrapped ms", "ratio of totals", "of medians", "median paired")
    for col in cols:
        table.add_column(col, justify="right" if col != "timed" else "left")
    for label, r, w, total, ratio, paired in rows:
        ms = [f"{1e3 * r:.3f}", f"{1e3 * w:.3f}"]
        table.add_row(label, *ms, f"{total:.4f}", f"{ratio:.4f}", f"{paired:.4f}")
    console.print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300, help="timed steps per variant")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--context", type=int, default=64)
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--vocab", type=int, default=96)
    parser.add_argument("--model", choices=("lm", "mlp"), default="lm")
    parser.add_argument(
        "--clock",
        choices=("cpu", "wall"),
        default="cpu",
        help="cpu: this thread's CPU time (load from other processes does not count; the "
        "default) or wall: perf_counter",
    )
    parser.add_argument(
        "--without-norm-pass",
        action="store_true",
        help="diagnostic: the wrapped optimizer's gradient-norm pass replaced by a constant "
        "(what the rest of the monitor costs; its detection is then meaningless)",
    )
    parser.add_argument(
        "--without-detector",
        action="store_true",
        help="diagnostic: the host-side detector replaced by one that finds nothing (what the "
        "rest costs); with --without-norm-pass, what the wrapper alone costs",
    )
    parser.add_argument(
        "--norm-only",
        action="store_true",
        help="diagnostic: 'wrapped' is the raw optimizer plus the monitor's gradient-norm pass "
        "alone, no monitor (the floor of any monitor that sees every step's exact norm)",
    )
    parser.add_argument(
        "--breakdown", action="store_true", help="also time the monitor's pieces one by one"
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="repeat the interleaved measurement and report the mean ratio with its standard "
        "error (this machine's step times drift by a few percent between runs)",
    )
    args = parser.parse_args(argv)
    if args.without_norm_pass:
        from autowarm.monitor import _optimizer

        _optimizer._total_norm = lambda grads, device: torch.ones((), device=device)
    if args.without_detector:
        from autowarm.monitor import _detect

        _detect.Detector.update = lambda self, *a, **k: []  # type: ignore[method-assign]
    if args.model == "mlp" and "--batch" not in (argv or sys.argv):
        args.batch, args.d_model = 128, 64
    torch.set_num_threads(1)
    console = Console(width=100)

    g = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(16):
        if args.model == "mlp":
            x = torch.randn(args.batch, args.d_model, generator=g)
            batches.append((x, torch.randint(0, 10, (args.batch,), generator=g)))
            continue
        seq = torch.randint(0, args.vocab, (args.batch, args.context + 1), generator=g)
        batches.append((seq[:, :-1], seq[:, 1:]))
    clock = time.thread_time if args.clock == "cpu" else time.perf_counter
    raw = _timers(*_setup(args, wrapped=False), batches, clock)
    wrapped_model, wrapped_opt = _setup(args, wrapped=True)
    wrapped = _timers(wrapped_model, wrapped_opt, batches, clock)
    n_params = sum(p.numel() for p in _setup(args, wrapped=False)[0].parameters())

    what = "MLP 6x256" if args.model == "mlp" else f"TinyLM, batch {args.batch}x{args.context}"
    title = (
        f"{what}, {n_params / 1e6:.2f}M params, batch {args.batch}, AdamW, 1 thread, "
        f"{args.steps} interleaved steps each, {args.clock} time"
        + ("; 'wrapped' = the norm pass alone" if args.norm_only else "")
    )
    full, own = [], []  # per repeat: the headline ratio, the monitor's own ms per step
    for repeat in range(args.repeats):
        rows, own_ms = _measure(raw, wrapped, args)
        full.append(rows[0][3])
        own.append(own_ms)
        if repeat == 0:  # the first repeat's table; the summary line has them all
            _print_rows(console, title, rows)
    # the headline: ratio of the total step times, batched reads included (the medians and
    # the paired ratio are shown as checks; on a loaded machine the paired one is the noisiest)
    mean = statistics.fmean(full)
    se = statistics.stdev(full) / len(full) ** 0.5 if len(full) > 1 else float("nan")
    console.print(
        f"wrapped / raw, full step: {mean:.4f} +- {se:.4f} (mean +- s.e. over {len(full)} "
        f"repeats: {', '.join(f'{r:.4f}' for r in full)}; target <= 1.02); the monitor's own "
        f"cost: {statistics.fmean(own):.3f} ms per step"
    )
    if args.breakdown and not args.norm_only:
        x, y = batches[0]

        def backward() -> None:
            wrapped_opt.zero_grad(set_to_none=True)
            _loss(wrapped_model, x, y).backward()

        _breakdown(wrapped_opt, backward, console, clock)
    return 0 if mean <= 1.02 else 1


if __name__ == "__main__":
    sys.exit(main())
