"""Code snippets that reproduce a recipe's schedule in plain torch, HF transformers, Lightning or
autowarm.

Every snippet expects an ``optimizer`` built with ``lr=peak_lr`` (other param groups keep their
ratio to it) and defines ``scheduler``; step it once after every ``optimizer.step()``. Two
differ: ``loop`` sets the LR where a loop sets its own, and ``lightning`` is a
``configure_optimizers`` that returns the scheduler with ``"interval": "step"`` (Lightning
steps a scheduler once per epoch unless told otherwise). The tests execute each snippet (the
Lightning one in a real ``lightning.Trainer``) and compare its LR with :meth:`Recipe.lr_at` at
every step up to ``total_steps``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autowarm._errors import AutowarmError
from autowarm.schedule._schedule import Schedule

if TYPE_CHECKING:
    from autowarm.schedule._recipe import Recipe

TARGETS = ("torch", "transformers", "lightning", "autowarm", "loop")


def _comment(text: str, width: int = 88) -> list[str]:
    """``text`` as ``#`` comment lines that fit a formatter's line length."""
    return textwrap.wrap(text, width, initial_indent="# ", subsequent_indent="# ")


def _py(value: Any) -> str:
    """A Python literal as ruff/black would write it (double quotes)."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_py(k)}: {_py(v)}" for k, v in value.items()) + "}"
    return repr(value)


def render(recipe: Recipe, target: str, *, path: str | os.PathLike[str] | None = None) -> str:
    """The snippet for ``target``; see the module docstring."""
    if target not in TARGETS:
        raise AutowarmError(
            f"unknown render target {target!r}; choose one of: {', '.join(TARGETS)}."
        )
    schedule = recipe.schedule()
    schedule.require_total()  # every snippet is a complete schedule
    header = [*_comment(f"autowarm recipe: {recipe.describe()}.")]
    if target == "loop":  # no scheduler to step: the loop sets the LR itself
        return "\n".join(header) + "\n" + _loop(recipe, path)
    built = (recipe.evidence or {}).get("script_optimizer")  # the probed script's, if known
    if target == "lightning":  # no scheduler.step() to call: Lightning steps it
        return "\n".join(header) + "\n" + _lightning(schedule, recipe.peak_lr, built)
    header += [
        "# Build the optimizer with the peak LR and your other arguments (momentum, ...), e.g.",
        f"# {_call(built).rpartition('.')[2]}(model.parameters(), lr={recipe.peak_lr!r}, ...),",
        "# and call scheduler.step() once after every optimizer.step().",
    ]
    if target == "torch":
        body = _torch(schedule)
    elif target == "transformers":
        body = _transformers(schedule, recipe.peak_lr)
    else:
        body = _autowarm(recipe, path)
    return "\n".join(header) + "\n" + body


# ----------------------------------------------------------------------------- Lightning
def _lightning(schedule: Schedule, peak_lr: float, optimizer: str | None) -> str:
    """The LambdaLR, built in ``configure_optimizers`` and returned with ``"interval":
    "step"``: without it Lightning steps the scheduler once per epoch. (Not torch's own
    schedulers: nested two levels deeper, their lines outgrow a formatter's width.)"""
    module, expr = _lambda_block(schedule).rstrip("\n").split("\nscheduler = ", 1)
    imports, _, defs = module.partition("\n\n\n")  # the lr_lambda, if any, after them
    scheduler = [line for line in imports.splitlines() if line.startswith("from torch")]
    return "\n".join(
        [
            "# Lightning: in your LightningModule, build the optimizer with the peak LR and return",
            '# the scheduler with "interval": "step" (else Lightning steps it once per epoch).',
            "import lightning.pytorch as pl",
            *(["import torch"] if _call(optimizer).startswith("torch.") else []),
            *scheduler,
            *(["", "", defs.rstrip("\n")] if defs else []),
            "",
            "",
            "class LitModel(pl.LightningModule):  # yours: its configure_optimizers",
            "    def configure_optimizers(self):",
            *_yours(optimizer),
            f"        optimizer = {_call(optimizer)}(self.parameters(), lr={peak_lr!r})",
            f"        scheduler = {expr}",
            "        return {",
            '            "optimizer": optimizer,',
            '            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},',
            "        }",
            "",
        ]
    )


def _call(optimizer: str | None) -> str:
    """How a snippet names the optimizer class: the probed script's (``optimizer``, from
    ``evidence["script_optimizer"]``), ``torch.optim.SGD`` in full (the snippet imports torch)
    and any other by its name, as the script imports it; AdamW, as an example, if unknown."""
    if optimizer is None:
        return "torch.optim.AdamW"
    return optimizer if optimizer.startswith("torch.optim.") else optimizer.rpartition(".")[2]


def _yours(optimizer: str | None) -> list[str]:
    """The comment above the script's own optimizer: its other arguments stay."""
    if optimizer is None:
        return []
    module = optimizer.rpartition(".")[0]
    where = "" if module in ("torch.optim", "__main__") else f" (from {module})"
    return [f"        # your optimizer{where}: keep its other arguments"]


# ----------------------------------------------------------------------------- plain torch
def _torch(schedule: Schedule) -> str:
    native = _torch_native(schedule)
    if native is not None:
        return native
    return _lambda_block(schedule)


def _lambda_block(schedule: Schedule) -> str:
    """Imports, ``lr_lambda`` and ``scheduler = LambdaLR(...)``, formatted as ruff would."""
    function = lambda_source(schedule)
    return "\n".join(
        [
            "from torch.optim.lr_scheduler import LambdaLR",
            "",
            "",
            function,
            "",
            "",
            "scheduler = LambdaLR(optimizer, lr_lambda)",
            "",
        ]
    )


def _torch_native(schedule: Schedule) -> str | None:
    """torch's own schedulers, only where they are exact at every step.

    LinearLR is exact for a linear warmup from a *non-zero* start (``start_factor=0`` divides
    by zero, torch#86454) and for a linear decay to the floor (it then holds the floor, as we
    do). SequentialLR's milestone hands over at step W exactly as our phases do. Cosine stays a
    LambdaLR: CosineAnnealingLR's ``eta_min`` is absolute (wrong for param groups with other
    LRs) and it rises again after ``T_max``.
    """
    w, total, f = schedule.warmup_steps, schedule.total_steps, schedule.min_lr_ratio
    # LinearLR is recursive: lr *= 1 + (end - start) / (...start...), which divides by zero
    # for start 0 and loses every digit for a subnormal start; such starts use the LambdaLR
    if schedule.warmup != "linear" or (w > 0 and schedule.start_ratio < 1e-12):
        return None
    warm = (
        f"LinearLR(optimizer, start_factor={schedule.start_ratio!r}, end_factor=1.0, "
        f"total_iters={w})"
    )
    if schedule.decay == "constant":
        sched = warm if w > 0 else "ConstantLR(optimizer, factor=1.0, total_iters=0)"
        names = "LinearLR" if w > 0 else "ConstantLR"
    elif schedule.decay == "linear" and total is not None and w < total:
        decay = f"LinearLR(optimizer, start_factor=1.0, end_factor={f!r}, total_iters={total - w})"
        if w == 0:
            sched, names = decay, "LinearLR"
        else:
            sched = (
                "SequentialLR(\n"
                "    optimizer,\n"
                f"    [\n        {warm},\n        {decay},\n    ],\n"
                f"    milestones=[{w}],\n"
                ")"
            )
            names = "LinearLR, SequentialLR"
    else:
        return None
    return f"from torch.optim.lr_scheduler import {names}\n\nscheduler = {sched}\n"


def _warmup_lines(schedule: Schedule) -> list[str]:
    """The ``if step < W: return ...`` branch of :func:`lambda_source` (none without warmup)."""
    w, r0 = schedule.warmup_steps, schedule.start_ratio
    if w == 0:
        return []
    ramp = {
        "linear": f"step / {w}",
        "cosine": f"0.5 * (1.0 - math.cos(math.pi * step / {w}))",
        "1-sqrt": f"1.0 - math.sqrt(1.0 - step / {w})",
    }
    lines = [
        f"    # 1) {schedule.warmup} warmup from {r0:.4g} of the peak to it at step {w}",
        f"    if step < {w}:",
    ]
    if schedule.warmup == "exponential":  # the same factor every step
        lines.append(f"        return {r0!r} ** (1.0 - step / {w})")
    elif r0 == 0.0:
        lines.append(f"        return {ramp[schedule.warmup]}")
    else:
        lines.append(f"        start = {r0!r}")
        lines.append(f"        return start + (1.0 - start) * ({ramp[schedule.warmup]})")
    return lines


def lambda_source(schedule: Schedule) -> str:
    """A self-contained ``def lr_lambda(step)`` equal to the schedule (it imports math itself)."""
    w, total, f = schedule.warmup_steps, schedule.total_steps, schedule.min_lr_ratio
    lines = ["def lr_lambda(step: int) -> float:", *_warmup_lines(schedule)]
    if schedule.decay == "constant":
        lines.append("    # 2) constant at the peak")
        lines.append("    return 1.0")
        return _with_math("\n".join(lines))
    if schedule.decay == "inverse_sqrt":
        tau = schedule.resolved_timescale
        lines.append(f"    # 2) inverse square root decay (timescale {tau}), floor {f!r}")
        lines.append(f"    return max({f!r}, 1.0 / math.sqrt((step - {w} + {tau}) / {tau}))")
        return _with_math("\n".join(lines))
    lines.append("    # 2) past the end of the run: stay on the floor")
    lines.append(f"    if step >= {total}:")
    lines.append(f"        return {f!r}")
    assert total is not None
    scale = "" if f == 0.0 else "floor + (1.0 - floor) * "
    if schedule.decay == "wsd":
        cooldown = schedule.resolved_cooldown_steps(total)
        start = total - cooldown
        lines.append("    # 3) stable at the peak until the cooldown")
        lines.append(f"    if step < {start}:")
        lines.append("        return 1.0")
        lines.append(f"    # 4) {schedule.cooldown_shape} cooldown over the last {cooldown} steps")
        lines.append(f"    progress = (step - {start}) / {cooldown}")
        shape = schedule.cooldown_shape
    else:
        lines.append(f"    # 3) {schedule.decay} decay from the peak to the floor at step {total}")
        lines.append(f"    progress = (step - {w}) / {total - w}")
        shape = schedule.decay
    fall = {
        "linear": "1.0 - progress",
        "cosine": "0.5 * (1.0 + math.cos(math.pi * progress))",
        "1-sqrt": "1.0 - math.sqrt(progress)",
        "polynomial": f"(1.0 - progress) ** {schedule.power!r}",
        "cosine_with_restarts": (
            f"0.5 * (1.0 + math.cos(math.pi * (({schedule.num_cycles} * progress) % 1.0)))"
        ),
    }[shape]
    if scale:
        lines.append(f"    floor = {f!r}")
        if shape in ("linear", "1-sqrt"):
            fall = f"({fall})"
    lines.append(f"    return {scale}{fall}")
    return _with_math("\n".join(lines))


def _with_math(function: str) -> str:
    """``import math`` inside the function, where it uses math: a snippet pasted into the
    script's ``main()`` with the import at its top would make ``math`` local to all of
    ``main()`` (run_clm_no_trainer's earlier ``math.ceil``: ``UnboundLocalError``)."""
    if "math." not in function:
        return function
    head, _, body = function.partition("\n")
    return f"{head}\n    import math  # here: pasted into a function, it shadows no other\n\n{body}"


# ----------------------------------------------------------------------------- transformers
def hf_equivalent(schedule: Schedule, peak_lr: float) -> tuple[str, dict[str, Any], list[str]]:
    """``(lr_scheduler_type, lr_scheduler_kwargs, reasons)``: transformers' closest scheduler
    and why it is not exact (no reasons = exact for steps 0..total_steps)."""
    w, total, f = schedule.warmup_steps, schedule.total_steps, schedule.min_lr_ratio
    decay, reasons = schedule.decay, []
    if decay == "wsd":
        assert total is not None
        kwargs: dict[str, Any] = {
            "num_decay_steps": schedule.resolved_cooldown_steps(total),
            "warmup_type": "linear" if schedule.warmup == "exponential" else schedule.warmup,
            "decay_type": schedule.cooldown_shape,
            "min_lr_ratio": f,
        }
        if w > 0 and schedule.warmup == "exponential":
            reasons.append("its WSD warmup is linear, cosine or 1-sqrt, not exponential")
        if w > 0 and schedule.start_ratio != f:
            reasons.append(
                f"its WSD warmup starts at min_lr_ratio ({f:.4g} of the peak), this recipe's "
                f"at {schedule.start_ratio:.4g}"
            )
        return "warmup_stable_decay", kwargs, reasons

    # 1) every other transformers scheduler warms up linearly from exactly 0 (s / W)
    if w > 0 and schedule.warmup != "linear":
        reasons.append(f"its warmup is linear, this recipe's is {schedule.warmup}")
    elif w > 0 and schedule.start_ratio != 0.0:
        reasons.append(
            f"its warmup starts at LR 0 (step / warmup_steps), this recipe's at "
            f"{schedule.start_ratio:.4g} of the peak"
        )
    if total is not None and w == total and decay != "constant":
        reasons.append("with warmup_steps == total_steps its last step is not the floor")

    # 2) the decay
    kwargs = {}
    if decay == "constant":
        name = "constant_with_warmup" if w > 0 else "constant"
    elif decay == "linear" and f == 0.0:
        name = "linear"
    elif decay in ("linear", "polynomial"):  # polynomial with power 1 = linear to a floor
        name = "polynomial"
        kwargs = {"lr_end": f * peak_lr, "power": schedule.power if decay == "polynomial" else 1.0}
        if f >= 1.0:  # transformers refuses lr_end >= lr
            name, kwargs = ("constant_with_warmup" if w > 0 else "constant"), {}
    elif decay == "cosine" and f == 0.0:
        name = "cosine"
    elif decay == "cosine":
        name, kwargs = "cosine_with_min_lr", {"min_lr_rate": f}
    elif decay == "cosine_with_restarts":
        name, kwargs = "cosine_with_restarts", {"num_cycles": schedule.num_cycles}
        if f > 0.0:
            reasons.append(f"its cosine_with_restarts has no floor (this recipe: {f:g}x)")
    else:  # inverse_sqrt
        name, kwargs = "inverse_sqrt", {"timescale": schedule.resolved_timescale}
        if f > 0.0:
            reasons.append(f"its inverse_sqrt has no floor (this recipe: {f:g}x)")
    return name, kwargs, reasons


#: the ``TrainingArguments`` flags that set the LR schedule (a user's own are replaced)
HF_SCHEDULE_FLAGS = frozenset(
    ("learning_rate", "warmup_steps", "warmup_ratio", "lr_scheduler_type",
     "lr_scheduler_kwargs", "max_steps")
)  # fmt: skip


def hf_command(recipe: Recipe, argv: Sequence[str]) -> str:
    """``argv`` -- a script that reads ``TrainingArguments`` from its command line
    (``HfArgumentParser``, as every HF example does) -- with the flags that set this recipe's
    schedule in place of its own: the fields of :meth:`Recipe.training_args`."""
    schedule = recipe.schedule()
    schedule.require_total()
    name, kwargs, reasons = hf_equivalent(schedule, recipe.peak_lr)
    flags = ["--learning_rate", repr(recipe.peak_lr), "--warmup_steps", str(schedule.warmup_steps)]
    flags += ["--lr_scheduler_type", name]
    if kwargs:
        flags += ["--lr_scheduler_kwargs", json.dumps(kwargs)]
    flags += ["--max_steps", str(schedule.total_steps)]
    return _with_flags(recipe, reasons, _without(argv, HF_SCHEDULE_FLAGS), flags)


def _with_flags(recipe: Recipe, reasons: list[str], kept: list[str], flags: list[str]) -> str:
    """The user's command (``kept``: less its own schedule flags) with ``flags``, under a
    comment naming the recipe and where transformers' schedule differs (``reasons``)."""
    header = _comment(f"autowarm recipe: {recipe.describe()}.")
    if reasons:
        header += _comment(f"transformers' closest schedule: {'; '.join(reasons)}.")
    return "\n".join([*header, shlex.join([*kept, *flags])])


#: the schedule flags of HF's ``*_no_trainer.py`` examples (argparse, accelerate, a loop of
#: their own stepping ``get_scheduler``): a script that defines them all takes the recipe so
NO_TRAINER_FLAGS = ("learning_rate", "num_warmup_steps", "lr_scheduler_type", "max_train_steps")


def takes_no_trainer_flags(script: str) -> bool:
    """Whether ``script`` defines the schedule flags of HF's no_trainer examples."""
    return all(defines_flag(script, f"--{name}") for name in NO_TRAINER_FLAGS)


def defines_flag(script: str, flag: str) -> bool:
    """Whether the source of ``script`` (a path) names ``flag`` as a quoted string, as an
    argparse definition does (False where it cannot be read)."""
    try:
        text = Path(script).read_text(encoding="utf8", errors="replace")
    except OSError:
        return False
    return f"'{flag}'" in text or f'"{flag}"' in text


def no_trainer_command(recipe: Recipe, argv: Sequence[str]) -> str | None:
    """``argv`` with the no_trainer flags for ``recipe`` in place of the user's; None where
    they cannot say it (no run length, or a schedule transformers needs keyword arguments
    for, which these scripts take no flag for)."""
    schedule = recipe.schedule()
    if schedule.total_steps is None:
        return None
    name, kwargs, reasons = hf_equivalent(schedule, recipe.peak_lr)
    if kwargs:
        return None
    flags = ["--learning_rate", repr(recipe.peak_lr), "--num_warmup_steps"]
    flags += [str(schedule.warmup_steps), "--lr_scheduler_type", name]
    flags += ["--max_train_steps", str(schedule.total_steps)]
    return _with_flags(recipe, reasons, _without(argv, frozenset(NO_TRAINER_FLAGS)), flags)


#: at least this many ``TrainingArguments`` flags among a script's arguments: it parses them
#: (``HfArgumentParser``, as every HF example does), not an argparse of its own
TRAINING_FLAGS = 2


def reads_training_args(args: Sequence[str]) -> bool:
    """Whether a script run under the HF Trainer takes its ``TrainingArguments`` as flags."""
    try:
        from transformers import TrainingArguments
    except ImportError:
        return False
    fields = {f.name for f in dataclasses.fields(TrainingArguments)}
    return len({_flag(a) for a in args} & fields) >= TRAINING_FLAGS


def _flag(arg: str) -> str | None:
    """The field a ``--name`` / ``--name=value`` argument sets (``-`` or ``_`` in a name
    alike, as ``HfArgumentParser`` takes both); None for anything else."""
    return arg[2:].split("=", 1)[0].replace("-", "_") if arg.startswith("--") else None


def _without(argv: Sequence[str], names: frozenset[str]) -> list[str]:
    """``argv`` less the flags of ``names``, with their values."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        name = _flag(arg)
        if name in names:
            skip = "=" not in arg
            continue
        out.append(arg)
    return out


def _transformers(schedule: Schedule, peak_lr: float) -> str:
    name, kwargs, reasons = hf_equivalent(schedule, peak_lr)
    w, total = schedule.warmup_steps, schedule.total_steps
    args = ["...", f"learning_rate={peak_lr!r}"]
    if total is not None:
        args.append(f"max_steps={total}")
    args += [f"warmup_steps={w}", f"lr_scheduler_type={_py(name)}"]
    if kwargs:
        args.append(f"lr_scheduler_kwargs={_py(kwargs)}")
    if kwargs and len(args[-1]) > 60:  # one kwarg per line, as ruff would format it
        items = [f"#           {_py(k)}: {_py(v)}," for k, v in kwargs.items()]
        trainer_kwargs = ["#       lr_scheduler_kwargs={", *items, "#       },"]
        args = args[:-1]
    else:
        trainer_kwargs = []
    trainer = ["#   TrainingArguments(", *[f"#       {a}," for a in args], *trainer_kwargs, "#   )"]
    call = [f"    {_py(name)},", "    optimizer,", f"    num_warmup_steps={w},"]
    if total is not None and name not in ("constant", "constant_with_warmup", "inverse_sqrt"):
        call.append(f"    num_training_steps={total},")
    if kwargs and len(_py(kwargs)) > 60:
        items = [f"        {_py(k)}: {_py(v)}," for k, v in kwargs.items()]
        call += ["    scheduler_specific_kwargs={", *items, "    },"]
    elif kwargs:
        call.append(f"    scheduler_specific_kwargs={_py(kwargs)},")
    get_scheduler = "scheduler = get_scheduler(\n" + "\n".join(call) + "\n)"
    if not reasons:
        note = []
        if schedule.decay == "cosine":
            note = ["# (after total_steps transformers' cosine rises again; autowarm's stays)"]
        return "\n".join(
            [
                "# With the Trainer:",
                *trainer,
                "# or in your own loop:",
                *note,
                "from transformers import get_scheduler",
                "",
                get_scheduler,
                "",
            ]
        )
    commented = "\n".join("# " + line for line in get_scheduler.splitlines())
    return "\n".join(
        [
            *_comment(f"transformers has no exact equivalent: {'; '.join(reasons)}."),
            "# Closest built-in, with the Trainer:",
            *trainer,
            "# or in your own loop:",
            commented,
            "# Exact: this LambdaLR; with the Trainer pass optimizers=(optimizer, scheduler).",
            _lambda_block(schedule),
        ]
    )


# ----------------------------------------------------------------------------- autowarm
def _autowarm(recipe: Recipe, path: str | os.PathLike[str] | None) -> str:
    build = _recipe_expr(recipe, path)
    if path is not None and recipe.total_steps is not None:
        # total_steps spelled out: the run length is the user's, and a --total-steps override
        # of the file's value must survive the paste
        return (
            f"import autowarm\n\nrecipe = {build}\n"
            f"scheduler = recipe.scheduler(optimizer, total_steps={recipe.total_steps})\n"
        )
    return f"import autowarm\n\nscheduler = {build}.scheduler(optimizer)\n"


def _recipe_expr(recipe: Recipe, path: str | os.PathLike[str] | None) -> str:
    """``autowarm.Recipe.load(path)``, or the recipe written out (non-default fields only)."""
    if path is not None:
        return f"autowarm.Recipe.load({_py(os.fspath(path))})"
    args = [repr(recipe.peak_lr), str(recipe.warmup_steps)]
    if recipe.total_steps is not None:
        args.append(str(recipe.total_steps))
    for f in dataclasses.fields(recipe):
        if f.name in ("peak_lr", "warmup_steps", "total_steps", "evidence"):
            continue
        value = getattr(recipe, f.name)
        if value != f.default:
            args.append(f"{f.name}={_py(value)}")
    build = f"autowarm.Recipe({', '.join(args)})"
    if len(build) > 67:  # one argument per line, as ruff would format it
        build = "autowarm.Recipe(\n" + "".join(f"    {a},\n" for a in args) + ")"
    return build


# ----------------------------------------------------------------------------- manual-LR loops
def _loop(recipe: Recipe, path: str | os.PathLike[str] | None) -> str:
    """For a loop that sets ``param_group["lr"]`` itself every iteration (nanoGPT's
    ``lr = get_lr(iter_num)``): a pasted scheduler would be overwritten there."""
    total = f", total_steps={recipe.total_steps}" if path is not None and recipe.total_steps else ""
    return (
        "# Your loop sets the LR itself: set it from the recipe each iteration, in place of\n"
        "# your own LR function (nanoGPT: lr = get_lr(iter_num)), or after your scheduler's\n"
        "# update (timm's train.py: after lr_scheduler.step_update(), iter_num = num_updates).\n"
        f"import autowarm\n\nrecipe = {_recipe_expr(recipe, path)}\n\n"
        f"lr = recipe.lr_at(iter_num{total})  # iter_num: the optimizer steps done so far\n"
        "for param_group in optimizer.param_groups:\n"
        '    param_group["lr"] = lr  # a group kept at another ratio: lr * its ratio\n'
    )
