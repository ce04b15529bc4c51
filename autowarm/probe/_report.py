"""What ``autowarm probe`` / ``autowarm show`` print: live progress, the trial table, the
stability map, the recommendation and the code to paste. All output goes through an injectable
rich ``Console`` (progress on stderr, so ``--json`` keeps stdout to one JSON document)."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from autowarm.probe._record import TrialRecord
from autowarm.probe._search import Reporter
from autowarm.probe._status import FINISHED, STATUSES, look, settled
from autowarm.probe._types import TrialSpec

#: map shades for a finished run: darker = lower loss
SHADES = ("█", "▓", "▒", "░")


def status_text(r: TrialRecord) -> Text:
    label = look(r.status).label
    if r.status in ("failed", "timeout", "diverged", "nonfinite", "stalled", "spike") and r.reason:
        label = f"{label}: {r.reason}"
    if r.status not in FINISHED and r.steps and "step" not in (r.reason or ""):
        label = f"{label} (step {r.steps})"  # where it stopped, unless the reason says so
    return Text(label, style=look(r.status).style)


def fmt_loss(x: float | None) -> str:
    return "—" if x is None or not math.isfinite(x) else f"{x:.4g}"


def fmt_time(s: float) -> str:
    s = max(0, round(s))
    if s >= 3600:
        return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
    return f"{s // 60}:{s % 60:02d}"


def best_of(records: Sequence[TrialRecord]) -> TrialRecord | None:
    ok = [r for r in records if r.status in FINISHED and r.score is not None]
    return min(ok, key=lambda r: r.score) if ok else None  # type: ignore[arg-type,return-value]


def trial_table(records: Sequence[TrialRecord], *, title: str | None = None) -> Table:
    table = Table(title=title, show_edge=False, pad_edge=False, expand=False)
    table.add_column("#", justify="right")
    table.add_column("warmup", justify="right")
    table.add_column("peak LR", justify="right")
    table.add_column("probe loss", justify="right")
    table.add_column("status", overflow="fold")
    best = best_of(records)
    for r in sorted(records, key=lambda r: r.number):
        style = "bold" if best is not None and r.number == best.number else ""
        table.add_row(
            str(r.number),
            str(r.warmup_steps),
            f"{r.peak_lr:.3g}",
            fmt_loss(r.score),
            status_text(r),
            style=style,
        )
    return table


class LiveReport(Reporter):
    """Progress while probing: one line per finished trial, and (on a terminal) a live footer
    with trials done/total, elapsed, ETA, best so far and the running trials' steps."""

    def __init__(self, console: Console, *, probe_steps: int) -> None:
        self.console = console
        self.probe_steps = probe_steps
        self._t0 = time.monotonic()
        self._done0 = 0
        self._done = 0
        self._total = 0
        self._best: TrialRecord | None = None
        self._running: dict[int, tuple[TrialSpec, int]] = {}
        self._lock = threading.Lock()
        self._live: Live | None = None
        self._header = False

    # Reporter API ------------------------------------------------------------------------------
    def started(self, done: int, total: int, lr_range: tuple[float, float]) -> None:
        self._t0 = time.monotonic()
        self._done0 = self._done = done
        self._total = total
        resumed = f", resuming with {done} done" if done else ""
        self.console.print(
            f"probing peak LR in [{lr_range[0]:.3g}, {lr_range[1]:.3g}] × warmup, "
            f"{total} trials of {self.probe_steps} steps{resumed}",
            highlight=False,
        )
        if self.console.is_terminal:
            self._live = Live(
                self._footer(), console=self.console, refresh_per_second=4, transient=True
            )
            self._live.start()

    def trial_started(self, spec: TrialSpec) -> None:
        with self._lock:
            self._running[spec.number] = (spec, 0)

    def trial_step(self, number: int, step: int, loss: float) -> None:
        with self._lock:
            if number in self._running:
                self._running[number] = (self._running[number][0], step)

    def trial_finished(self, rec: TrialRecord, done: int, total: int) -> None:
        with self._lock:
            self._running.pop(rec.number, None)
        self._done, self._total = done, total
        if (
            rec.status in FINISHED
            and rec.score is not None
            and (self._best is None or rec.score < (self._best.score or math.inf))
        ):
            self._best = rec
        if not self._header:
            # "done" counts finished trials; "trial" is Optuna's trial number (0-based, as in
            # optuna-dashboard and `autowarm show`), the two differ after pruned or failed runs
            head = f"{'done':>7} {'trial':>5} {'warmup':>7} {'peak LR':>9} {'loss':>9}  status"
            self.console.print(Text(head, style="bold"), no_wrap=True)
            self._header = True
        row = Text(f"{done:>3}/{total:<3} {rec.number:>5} {rec.warmup_steps:>7} ")
        row.append(f"{rec.peak_lr:>9.3g} {fmt_loss(rec.score):>9}  ")
        row.append_text(status_text(rec))
        # one line per trial: a long failure reason is cut (the full one is in `autowarm show`)
        self.console.print(row, highlight=False, no_wrap=True, overflow="ellipsis")
        self.tick()

    def tick(self) -> None:
        if self._live is not None:
            self._live.update(self._footer())

    def note(self, text: str) -> None:
        self.console.print(text, style="dim", highlight=False)

    def warn(self, text: str) -> None:
        """One line the user should act on (not a progress note)."""
        self.console.print(Text(f"warning: {text}", style="yellow"), highlight=False)

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
        if self._header:
            self.console.print(Text(f"{self._done}/{self._total} trials · {self._progress()}"))

    # helpers -------------------------------------------------------------------------------------
    def _progress(self) -> str:
        elapsed = time.monotonic() - self._t0
        new = self._done - self._done0
        left = self._total - self._done
        eta = f"ETA {fmt_time(elapsed / new * left)}" if new > 0 and left > 0 else ""
        best = (
            f"best {fmt_loss(self._best.score)} (trial {self._best.number})"
            if self._best
            else "no best"
        )
        return " · ".join(x for x in (f"{fmt_time(elapsed)} elapsed", eta, best) if x)

    def _footer(self) -> Text:
        with self._lock:
            running = sorted(self._running.items())
        t = Text(f"{self._done}/{self._total} trials · {self._progress()}", style="bold")
        for n, (spec, step) in running:
            t.append(
                f"\n  trial {n}: warmup {spec.warmup_steps}, peak LR {spec.peak_lr:.3g} — "
                f"step {step}/{spec.probe_steps}",
                style="dim",
            )
        return t


# ---------------------------------------------------------------------------------------------
# the stability map


def stability_map(
    records: Sequence[TrialRecord],
    *,
    lr_range: tuple[float, float],
    warmup_max: int,
    chosen: tuple[float, int] | None = None,
    cols: int = 16,
    rows: int = 8,
) -> Group:
    """warmup (rows, top = 0) × peak LR (columns, log scale): each cell shows the trial(s) in it
    -- a shade for a finished run (█ lowest loss … ░ highest quartile) or a glyph for how it
    ended early; ★ marks the recommendation."""
    lo, hi = math.log(lr_range[0]), math.log(lr_range[1])
    rows = max(1, min(rows, warmup_max + 1))

    def col(lr: float) -> int:
        x = (math.log(lr) - lo) / max(hi - lo, 1e-12)
        return min(cols - 1, max(0, int(x * cols)))

    def row(w: int) -> int:
        return min(rows - 1, max(0, int(w / max(warmup_max, 1) * rows)))

    done = settled(records)
    shade = _shader(done)
    cells: dict[tuple[int, int], list[TrialRecord]] = {}
    for r in done:
        cells.setdefault((row(r.warmup_steps), col(r.peak_lr)), []).append(r)
    star = (row(chosen[1]), col(chosen[0])) if chosen else None

    grid = Text()
    label_w = len(str(warmup_max)) * 2 + 2
    for i in range(rows):
        grid.append(_row_label(i, rows, warmup_max).rjust(label_w) + " │", style="dim")
        for j in range(cols):
            grid.append(" ")
            if star == (i, j):
                grid.append("★", style="bold cyan")
            else:
                grid.append(*_cell(cells.get((i, j), []), shade))
        grid.append("\n")
    grid.append(" " * label_w + " └" + "──" * cols + "\n", style="dim")
    grid.append(
        " " * (label_w + 2) + _lr_axis(lr_range, 2 * cols) + "   peak LR (log)\n", style="dim"
    )
    return Group(Text("Stability map", style="bold"), grid, _legend())


def _row_label(i: int, rows: int, warmup_max: int) -> str:
    """The warmups row ``i`` holds, ``"a-b"`` (or ``"a"``): exactly those ``row()`` puts there
    (``int(w / warmup_max * rows) == i``; the last row also holds ``warmup_max``)."""
    top = max(warmup_max, 1)
    first = math.ceil(i * top / rows)
    last = warmup_max if i == rows - 1 else math.ceil((i + 1) * top / rows) - 1
    return str(first) if last <= first else f"{first}-{last}"


def _shader(done: Sequence[TrialRecord]) -> Callable[[float], str]:
    """A finished run's shade: its loss quartile among the finished runs (█ best)."""
    scores = sorted(r.score for r in done if r.status in FINISHED and r.score is not None)

    def shade(s: float) -> str:
        if len(scores) < 2:
            return SHADES[0]
        q = sum(x < s for x in scores) / (len(scores) - 1)  # 0 best .. 1 worst
        return SHADES[min(len(SHADES) - 1, int(q * len(SHADES)))]

    return shade


def _cell(trials: Sequence[TrialRecord], shade: Callable[[float], str]) -> tuple[str, str]:
    """(glyph, style) of one map cell: its best finished run's shade, else how a run ended."""
    if not trials:
        return "·", "dim"
    ok = [t for t in trials if t.status in FINISHED and t.score is not None]
    if ok:
        t = min(ok, key=lambda t: t.score)  # type: ignore[arg-type,return-value]
        return shade(t.score), "yellow" if t.status == "spike" else "green"  # type: ignore[arg-type]
    how = look(trials[0].status)
    return how.glyph or "?", how.glyph_style


def _lr_axis(lr_range: tuple[float, float], width: int) -> str:
    left, right = f"{lr_range[0]:.2g}", f"{lr_range[1]:.2g}"
    mid = f"{math.exp((math.log(lr_range[0]) + math.log(lr_range[1])) / 2):.2g}"
    return left + mid.center(width - len(left) - len(right)) + right


def _legend() -> Text:
    glyphs = "  ".join(f"{how.glyph} {how.label}" for how in STATUSES.values() if how.glyph)
    return Text(
        f"warmup steps ↓  {''.join(SHADES)} finished run, by loss quartile (█ best; yellow: "
        f"spiky)  {glyphs}  ★ chosen (probe scale)",
        style="dim",
    )


# ---------------------------------------------------------------------------------------------
# the recommendation


def _why_warmup(ev: dict[str, Any]) -> str:
    """Why the warmup is what it is, for the recommendation's warmup row ("" if not known)."""
    if ev.get("warmup_lengthened"):
        return (
            "; lengthened to the longest warmup a trial at a similar LR spiked with (a spike "
            "says that LR wants more warmup)"
        )
    if ev.get("warmup_rule") == "fixed":
        return "; the default: the probes' scores rarely tell warmups apart"
    return ""


def recommendation(recipe: Any) -> Table:
    ev = recipe.evidence or {}
    t = Table.grid(padding=(0, 2))
    t.add_column(style="bold")
    t.add_column()
    total = recipe.total_steps
    factor = ev.get("horizon_factor", 1.0)
    probe_lr, probe_w = ev.get("probe_peak_lr"), ev.get("probe_warmup_steps")
    lr_note = (
        f"  (probe's {probe_lr:.3g} × {factor:.2f} for the longer run)"
        if probe_lr is not None and factor < 1.0
        else ""
    )
    t.add_row("peak LR", f"{recipe.peak_lr:.3g}{lr_note}")
    w_note = ""
    if probe_w is not None and total and probe_w != recipe.warmup_steps:
        w_note = f"  ({recipe.warmup_steps / total:.0%} of the run, as {probe_w} of the probe's "
        w_note += f"{ev.get('probe_steps', '?')})"
    t.add_row("warmup", f"{recipe.warmup_steps} steps ({recipe.warmup}){w_note}{_why_warmup(ev)}")
    t.add_row(
        "decay",
        f"{recipe.decay} to a floor of {recipe.min_lr_ratio:g} × peak "
        f"({recipe.peak_lr * recipe.min_lr_ratio:.3g})",
    )
    t.add_row("total steps", str(total) if total else "not given (pass --total-steps)")
    if ev:
        bound = ev.get("boundary_lr")
        scored = "loss"
        if ev.get("scored_by") == "score_with":  # named by score_with(name=...), if it was
            scored = ev.get("score_name") or "score_with()"
        why = [
            f"{ev.get('trials', '?')} trials of {ev.get('probe_steps', '?')} steps",
            f"best trial #{ev.get('best_trial')} ({scored} {fmt_loss(ev.get('best_score'))})",
            f"near-best (within {ev.get('temperature', 0):.3g}): "
            f"{_numbers(ev.get('near_best_trials', []))}",
            (
                f"instability from {bound:.3g} at this warmup; margin ×{ev.get('margin'):g}"
                if bound
                else "no instability seen at this warmup or longer"
            ),
        ]
        t.add_row("evidence", "; ".join(why))
    data = _data_row(ev)
    if data:
        t.add_row("data", data)
    widened = ev.get("lr_range_widened") or []
    if widened:  # the search widened its LR range where its best trials sat (probe/_widen.py)
        lo, hi = widened[-1]["to"]
        how = ", ".join(f"at its {w['end']} after {w['after_trials']} trials" for w in widened)
        t.add_row("LR range", f"widened to [{lo:.3g}, {hi:.3g}] ({how})")
    for k, doubt in enumerate(ev.get("doubts") or []):
        t.add_row("unsure" if k == 0 else "", f"{doubt['text']} (try {doubt['fix']})")
    return t


def _data_row(ev: dict[str, Any]) -> str:
    """The training data as the trials read it (a DataLoader, a trainer's callback) or as
    ``--epochs`` stated it, and the full run's passes over it ("" where none is known)."""
    data, passes = ev.get("script_data"), ev.get("data_passes")
    if passes is None:
        return ""
    makes = f"the full run makes {passes:.3g} pass{'' if f'{passes:.3g}' == '1' else 'es'} over"
    if not data:  # --epochs, or sizes without a --total-steps
        return f"{makes} its training data (--epochs)"
    return (
        f"{data['train_examples']:,} training examples, {data['examples_per_step']:,} a step: "
        f"{makes} them"
    )


def probe_point(recipe: Any) -> tuple[float, int]:
    """The recipe's (peak LR, warmup) in the probe's coordinates, where the maps are drawn."""
    ev = recipe.evidence or {}
    return (
        float(ev.get("probe_peak_lr", recipe.peak_lr)),
        int(ev.get("probe_warmup_steps", recipe.warmup_steps)),
    )


#: the code target for a loop of the user's own that steps a scheduler
PLAIN = ("torch", "plain PyTorch")


def _targets(console: Console, recipe: Any, command: Sequence[str]) -> list[tuple[str, str]]:
    """The code targets that fit the script's loop, saying why where it is not a plain one."""
    evidence = recipe.evidence or {}
    if evidence.get("script_sets_lr"):
        # a scheduler pasted into such a loop is overwritten every iteration (nanoGPT)
        console.print()
        console.print(
            "The script sets param_group['lr'] itself (its loop, or a scheduler that is not "
            "torch's, such as timm's), so a pasted scheduler would be overwritten: set the LR "
            "from the recipe there.",
            highlight=False,
        )
        _timm_command(console, recipe, command)
        return [("loop", "where your loop sets the LR")]
    trainer = evidence.get("script_trainer")
    if trainer == "lightning":  # a pasted scheduler.step() has no place there
        return [("lightning", "Lightning")]
    if trainer != "hf":
        return _own_scheduler(console, evidence.get("script_scheduler"), recipe, command)
    from autowarm.schedule._code import hf_command, reads_training_args

    if reads_training_args(command[1:]):  # an HF example script: its own flags
        console.print()
        console.print(
            Text("Run it with (the HF Trainer, TrainingArguments from its flags):", style="bold")
        )
        _print_code(console, hf_command(recipe, command), "bash")
    return [("transformers", "HF transformers")]


def _timm_command(console: Console, recipe: Any, command: Sequence[str]) -> None:
    """timm's train.py (or a fork): the command with its own schedule flags, before the loop
    code (schedule/_timm.py)."""
    from autowarm.schedule._timm import takes_timm_flags, timm_command

    script = next((a for a in command if a.endswith(".py")), None)
    if script is None or not takes_timm_flags(script):
        return
    _print_flags(
        console,
        timm_command(recipe, command),
        "Run it with timm's own schedule flags:",
        "Or set the LR from the recipe in its loop:",
    )


def _print_flags(console: Console, line: str | None, title: str, then: str) -> None:
    """The user's command with the script's own schedule flags (none: nothing), then what
    introduces the code that follows."""
    if line is None:
        return
    console.print()
    console.print(Text(title, style="bold"))
    _print_code(console, line, "bash")
    console.print()
    console.print(then, highlight=False)


def _own_scheduler(
    console: Console, scheduler: dict[str, Any] | None, recipe: Any, command: Sequence[str]
) -> list[tuple[str, str]]:
    """A loop of the user's own: the scheduler it steps (probe/_scheduler.py) is named for
    replacing, and one built with transformers' functions gets code in those terms, after the
    command with its own flags where it is one of HF's no_trainer examples."""
    if not scheduler:
        return [PLAIN]
    console.print()
    console.print(
        f"The script steps its own LR scheduler ({scheduler['text']}): replace it with the "
        "one below.",
        highlight=False,
    )
    cadence = _cadence(scheduler)
    if cadence:
        console.print(cadence, highlight=False)
    if scheduler.get("accelerate"):
        console.print(
            "Under accelerate, a scheduler passed to accelerator.prepare() steps once per "
            "process at each optimizer step: on N processes, multiply its step counts by N "
            "(num_warmup_steps * accelerator.num_processes, as HF's no_trainer examples do).",
            highlight=False,
        )
    if scheduler.get("library") == "transformers":
        _no_trainer_command(console, recipe, command)
        return [("transformers", "HF transformers")]
    return [PLAIN]


def _no_trainer_command(console: Console, recipe: Any, command: Sequence[str]) -> None:
    """HF's no_trainer examples (run_clm_no_trainer.py, ...) take their schedule as flags."""
    from autowarm.schedule._code import no_trainer_command, takes_no_trainer_flags

    script = next((a for a in command if a.endswith(".py")), None)
    if script is None or not takes_no_trainer_flags(script):
        return
    line = no_trainer_command(recipe, command)
    _print_flags(
        console,
        line,
        "Run it with its own schedule flags:",
        "Or replace its scheduler in the code:",
    )


#: a trial this short says little of how often the script steps its scheduler
CADENCE_MIN_STEPS = 8


def _cadence(scheduler: dict[str, Any]) -> str | None:
    """What to move where the script stepped its scheduler other than once an optimizer step:
    the one below must be (a per-epoch ``scheduler.step()`` would stretch it by the steps of
    an epoch: a 40-step warmup over 40 epochs)."""
    calls, steps = scheduler.get("calls"), int(scheduler.get("steps") or 0)
    if calls is None or steps < CADENCE_MIN_STEPS:
        return None
    did = {0: "did not step it", 1: "stepped it once"}.get(calls, f"stepped it {calls} times")
    said = f"The script {did} in a trial's {steps} optimizer steps"
    if 2 * calls <= steps:
        return (
            f"{said} (once an epoch?); the one below must be stepped after every "
            "optimizer.step(): move its scheduler.step() into the batch loop."
        )
    if calls >= 1.5 * steps and not scheduler.get("accelerate"):
        return (
            f"{said} (every micro-batch of an accumulation?); the one below must be stepped "
            "once per optimizer.step()."
        )
    return None


def _numbers(ns: Sequence[int]) -> str:
    return ", ".join(f"#{n}" for n in ns[:8]) + (" …" if len(ns) > 8 else "")


def print_final(
    console: Console,
    records: Sequence[TrialRecord],
    recipe: Any | None,
    *,
    lr_range: tuple[float, float],
    warmup_max: int,
    out: str | None = None,
    table: bool = False,
    command: Sequence[str] = (),
) -> None:
    """The end of a probe's report: the map, the recommendation and the code to paste
    (``command``: how the script was run, ``python train.py args``)."""
    if table:
        console.print(trial_table(records))
    console.print()
    chosen = None if recipe is None else probe_point(recipe)
    console.print(stability_map(records, lr_range=lr_range, warmup_max=warmup_max, chosen=chosen))
    if recipe is None:
        return
    console.print()
    console.print(Text("Recommended schedule", style="bold"))
    console.print(recommendation(recipe))
    if out:
        console.print(f"recipe written to {out}", highlight=False)
    if recipe.total_steps is None and recipe.decay not in ("constant", "inverse_sqrt"):
        console.print()
        hint = f", or `autowarm schedule {out} --total-steps N --code torch`" if out else ""
        console.print(
            f"Code to paste: rerun with --total-steps N (your run's optimizer steps){hint}.",
            highlight=False,
        )
        return
    targets = _targets(console, recipe, command)
    for target, title in targets:
        try:
            code = recipe.render(target)
        except Exception as e:  # rendering is a convenience: never lose the result over it
            console.print(f"(no {title} code: {e})", style="dim")
            continue
        console.print()
        console.print(Text(f"Paste into your script ({title}):", style="bold"))
        _print_code(console, code, "python")
    if out and targets == [PLAIN]:  # the plain form fits any loop that steps a scheduler
        console.print()
        console.print(
            f"Other forms: autowarm schedule {out} --code transformers|lightning|autowarm",
            highlight=False,
            soft_wrap=True,  # a command to copy: one line, however narrow the terminal
        )


def _print_code(console: Console, code: str, lexer: str) -> None:
    # code_width + crop=False: a line of code is never cut at the terminal's width (it is for
    # pasting); it runs past the edge instead
    width = max(len(line) for line in code.splitlines())
    syntax = Syntax(code, lexer, theme="ansi_dark", background_color="default", code_width=width)
    console.print(syntax, crop=False)
