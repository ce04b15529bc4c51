"""timm's ``train.py`` takes its LR schedule as flags: the recipe as those flags.

timm's own scheduler (not torch's) writes ``param_group["lr"]`` itself, so a pasted torch
scheduler would be overwritten there; its flags can say the recipe's schedule instead.
``--sched-on-updates`` steps it every update rather than every epoch; ``--warmup-lr`` is the
warmup's first LR, from which it rises linearly to ``--lr`` over ``--warmup-epochs``, as the
recipe's ``(s + 1) / (W + 1)`` does from ``1 / (W + 1)``; ``--warmup-prefix`` starts the decay
after the warmup, over ``--epochs`` more (so ``--epochs`` is the run less its warmup), down to
``--min-lr``. timm counts the warmup in whole epochs: the recipe's is rounded to one, and the
command says so where that changes it.
"""

from __future__ import annotations

import contextlib
import shlex
from collections.abc import Sequence
from typing import TYPE_CHECKING

from autowarm.schedule._code import _flag, defines_flag

if TYPE_CHECKING:
    from autowarm.schedule._recipe import Recipe

#: the flags of timm's train.py that set its LR schedule and take one value (replaced)
VALUE_FLAGS = frozenset(
    ("sched", "lr", "lr_base", "lr_base_size", "lr_base_scale", "lr_noise_pct", "lr_noise_std",
     "lr_cycle_mul", "lr_cycle_decay", "lr_cycle_limit", "lr_k_decay", "warmup_lr", "min_lr",
     "epochs", "decay_epochs", "warmup_epochs", "cooldown_epochs", "decay_rate", "dr")
)  # fmt: skip
#: ... that take none (store_true) or several (nargs='+')
SWITCHES = frozenset(("sched_on_updates", "warmup_prefix"))
LISTS = frozenset(("lr_noise", "decay_milestones"))
#: timm's default run length (``--epochs``)
DEFAULT_EPOCHS = 300
#: a flag no script but timm's train.py (or a copy of it) defines
_MARKER = "--sched-on-updates"


def takes_timm_flags(script: str) -> bool:
    """Whether ``script`` defines timm's ``train.py`` schedule flags (it, or a fork of it)."""
    return defines_flag(script, _MARKER)


def timm_command(recipe: Recipe, argv: Sequence[str]) -> str | None:
    """``argv`` (``python train.py args``) with timm's schedule flags for ``recipe`` in place
    of the user's, a comment above it; None where timm's flags cannot say this schedule (a
    warmup that is not linear, a decay timm lacks, no run length): the loop code then stands
    alone."""
    schedule = recipe.schedule()
    total = schedule.total_steps
    shape = {"cosine": "cosine", "linear": "poly", "polynomial": "poly"}.get(schedule.decay)
    if total is None or shape is None or schedule.warmup != "linear":
        return None
    epochs = _epochs(argv)
    per_epoch = total / epochs
    warmup_epochs = round(schedule.warmup_steps / per_epoch)
    if schedule.warmup_steps and not warmup_epochs:
        warmup_epochs = 1  # a warmup of under half an epoch: one, rather than none
    if warmup_epochs >= epochs:  # no decay left after it
        return None
    warmup = round(warmup_epochs * per_epoch)  # what timm will do: whole epochs of updates
    flags = ["--lr", f"{recipe.peak_lr:.6g}", "--sched", shape, "--sched-on-updates"]
    if shape == "poly":
        power = schedule.power if schedule.decay == "polynomial" else 1.0
        flags += ["--decay-rate", f"{power:g}"]
    flags += ["--epochs", str(epochs - warmup_epochs), "--warmup-epochs", str(warmup_epochs)]
    start = recipe.peak_lr * (1.0 / (warmup + 1) if warmup else 1.0)
    flags += ["--warmup-prefix", "--warmup-lr", f"{start:.6g}"]
    flags += ["--min-lr", f"{schedule.min_lr_ratio * recipe.peak_lr:.6g}"]
    notes = [f"autowarm recipe: {recipe.describe()}."]
    notes.append(
        f"timm's own scheduler by update ({per_epoch:g} an epoch: {total} updates over "
        f"{epochs} epochs); --epochs is the decay after the warmup."
    )
    if warmup != schedule.warmup_steps:
        notes.append(
            f"timm warms up in whole epochs: {warmup_epochs} = {warmup} updates, the recipe "
            f"{schedule.warmup_steps}."
        )
    if per_epoch != int(per_epoch):
        notes.append(f"{total} updates are not a whole number of epochs: check --epochs.")
    command = shlex.join([*_without(argv), *flags])
    return "\n".join([*(f"# {note}" for note in notes), command])


def _epochs(argv: Sequence[str]) -> int:
    """The run's ``--epochs`` (its last, as argparse takes it; timm's default without)."""
    epochs = DEFAULT_EPOCHS
    for i, arg in enumerate(argv):
        if _flag(arg) == "epochs":
            value = arg.split("=", 1)[1] if "=" in arg else "".join(argv[i + 1 : i + 2])
            with contextlib.suppress(ValueError):  # timm's own parser will say what is wrong
                epochs = int(value)
    return epochs


def _without(argv: Sequence[str]) -> list[str]:
    """``argv`` less timm's schedule flags and their values."""
    out: list[str] = []
    skip: str | None = None  # "one": the next argument, "list": every next non-flag
    for arg in argv:
        if skip == "one":
            skip = None
            continue
        if skip == "list" and not arg.startswith("-"):
            continue
        skip = None
        name = _flag(arg)
        if name in SWITCHES:
            continue
        if name in VALUE_FLAGS or name in LISTS:
            skip = None if "=" in arg else ("one" if name in VALUE_FLAGS else "list")
            continue
        out.append(arg)
    return out
