"""``autowarm.Recipe``: peak LR + warmup + decay, the tuner's output and a JSON file format."""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autowarm._errors import AutowarmError
from autowarm._io import atomic_write_text
from autowarm._json import json_safe
from autowarm.schedule._carry import carry, exponent_at, probe_of
from autowarm.schedule._schedule import Schedule, check_positive

if TYPE_CHECKING:
    import torch

    from autowarm.schedule._scheduler import RecipeLR

FORMAT_VERSION = 1


@dataclass(frozen=True)
class Recipe:
    """A learning-rate schedule: ``lr(step) = peak_lr * multiplier(step)``.

    Validated on construction (:class:`~autowarm.AutowarmError` naming the field and value).
    Frozen: derive variants with ``dataclasses.replace(recipe, total_steps=...)``, which
    validates again. The schedule fields are documented on
    :class:`autowarm.schedule._schedule.Schedule`.

    ``total_steps`` may stay ``None`` until the run length is known; the decaying shapes then
    need it when the schedule is used (``multiplier``/``lr_at``/``scheduler`` take a
    ``total_steps`` argument) and raise a clear error without it. ``constant`` and
    ``inverse_sqrt`` work without it.

    Example::

        recipe = autowarm.Recipe(3e-4, 200, 5000, min_lr_ratio=0.1)
        scheduler = recipe.scheduler(optimizer)  # call scheduler.step() after optimizer.step()
        recipe.save("recipe.json")
    """

    peak_lr: float
    warmup_steps: int
    total_steps: int | None = None
    _: KW_ONLY
    # the schedule's fields, with Schedule's defaults (their one home)
    warmup: str = Schedule.warmup
    decay: str = Schedule.decay
    min_lr_ratio: float = Schedule.min_lr_ratio
    warmup_start_ratio: float | None = Schedule.warmup_start_ratio
    power: float = Schedule.power
    num_cycles: int = Schedule.num_cycles
    timescale: int | None = Schedule.timescale
    cooldown_steps: int | float = Schedule.cooldown_steps
    cooldown_shape: str = Schedule.cooldown_shape
    evidence: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "peak_lr", check_positive("peak_lr", self.peak_lr))
        if not isinstance(self.evidence, dict):
            raise AutowarmError(
                f"evidence must be a dict but got {type(self.evidence).__name__} {self.evidence!r}."
            )
        # validates every schedule field and normalises them (e.g. min_lr_ratio 0 -> 0.0)
        schedule = self.schedule()
        for name, value in schedule.to_dict().items():
            object.__setattr__(self, name, value)
        # kept (not a dataclass field): lr_at() runs every step of a probe, 25x faster this way
        object.__setattr__(self, "_schedule", schedule)

    # ------------------------------------------------------------------ the schedule
    def for_run(self, total_steps: int | None) -> Recipe:
        """This recipe for a run of ``total_steps`` optimizer steps (``None``: as it is).

        A recipe made by ``autowarm probe`` is carried from its probe, by the same rule the
        probe used (:mod:`autowarm.schedule._carry`: by default the warmup keeps its fraction
        of the run, and the peak LR scales with the run length), so ``autowarm show
        --total-steps N``, ``autowarm schedule --total-steps N`` and
        ``recipe.scheduler(optimizer, total_steps=N)`` give the same schedule. A recipe with no
        probe in its evidence keeps its peak LR and warmup steps.
        """
        if total_steps is None or total_steps == self.total_steps:
            return self
        probe = probe_of(self.evidence)
        if probe is None:
            return dataclasses.replace(self, total_steps=total_steps)
        # the run's passes over its data grow with its length, and the exponent reads them
        passes = self.evidence.get("data_passes")
        if isinstance(passes, (int, float)) and self.total_steps:
            passes = passes * total_steps / self.total_steps
        else:
            passes = None
        exponent = exponent_at(self.evidence, passes)
        lr, warmup, factor = carry(**{**probe, "exponent": exponent}, total_steps=total_steps)
        evidence = {**self.evidence, "horizon_factor": factor, "horizon_exponent": exponent}
        if passes is not None:
            evidence["data_passes"] = passes
        return dataclasses.replace(
            self, peak_lr=lr, warmup_steps=warmup, total_steps=total_steps, evidence=evidence
        )

    def schedule(self, total_steps: int | None = None) -> Schedule:
        """The :class:`Schedule` of this recipe, for a run of ``total_steps`` if given
        (:meth:`for_run`)."""
        cached = getattr(self, "_schedule", None)
        if cached is not None and total_steps in (None, self.total_steps):
            return cached
        if total_steps is not None:
            return self.for_run(total_steps).schedule()
        return Schedule(**{f.name: getattr(self, f.name) for f in dataclasses.fields(Schedule)})

    def multiplier(self, step: int, total_steps: int | None = None) -> float:
        """The LR multiplier at ``step`` (1.0 at the peak)."""
        return self.schedule(total_steps).multiplier(step)

    def lr_at(self, step: int, total_steps: int | None = None) -> float:
        """The learning rate of the reference param group (most parameters) at ``step``."""
        recipe = self.for_run(total_steps)
        return recipe.peak_lr * recipe.multiplier(step)

    def scheduler(
        self,
        optimizer: torch.optim.Optimizer,
        total_steps: int | None = None,
        *,
        last_epoch: int = -1,
    ) -> RecipeLR:
        """A :class:`~autowarm.RecipeLR` (a ``LambdaLR``) driving ``optimizer``.

        The param group with the most parameters gets ``peak_lr``; the others keep their ratio
        to it. Call ``scheduler.step()`` once after every ``optimizer.step()``.
        """
        from autowarm.schedule._scheduler import RecipeLR

        return RecipeLR(optimizer, self, total_steps=total_steps, last_epoch=last_epoch)

    def training_args(self, total_steps: int | None = None) -> dict[str, Any]:
        """The ``transformers.TrainingArguments`` fields that set this schedule::

            TrainingArguments(output_dir="out", **recipe.training_args(total_steps=20_000))

        ``learning_rate``, ``warmup_steps``, ``lr_scheduler_type``, ``lr_scheduler_kwargs``
        and, with a run length, ``max_steps``. Where transformers has no exact equivalent (its
        warmup starts at LR 0; this recipe's by default at 1/(W+1) of the peak) a
        ``UserWarning`` says how its schedule differs; the exact one is
        ``Trainer(..., optimizers=(optimizer, recipe.scheduler(optimizer)))``.
        """
        from autowarm.schedule._code import hf_equivalent

        recipe = self.for_run(total_steps)
        schedule = recipe.schedule()
        schedule.require_total()
        name, kwargs, reasons = hf_equivalent(schedule, recipe.peak_lr)
        out: dict[str, Any] = {
            "learning_rate": recipe.peak_lr,
            "warmup_steps": schedule.warmup_steps,
            "lr_scheduler_type": name,
        }
        if kwargs:
            out["lr_scheduler_kwargs"] = kwargs
        if schedule.total_steps is not None:
            out["max_steps"] = schedule.total_steps
        if reasons:
            warnings.warn(
                f"transformers has no exact equivalent of this recipe: {'; '.join(reasons)}; "
                "for the exact schedule pass Trainer(..., optimizers=(optimizer, "
                "recipe.scheduler(optimizer))).",
                stacklevel=2,
            )
        return out

    def render(self, target: str, *, path: str | os.PathLike[str] | None = None) -> str:
        """Code to paste: ``"torch"``, ``"transformers"`` or ``"autowarm"``.

        ``path``: for ``"autowarm"``, the recipe file to load (else the recipe is inlined).
        """
        from autowarm.schedule._code import render

        return render(self, target, path=path)

    def describe(self) -> str:
        return f"peak LR {self.peak_lr:.3g}, {self.schedule().describe()}"

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        """The JSON document: ``{"format": 1, <every field>}``.

        ``evidence`` is deep-copied and made JSON-safe: non-finite numbers (JSON has no NaN)
        become ``None``, tuples become lists.
        """
        d: dict[str, Any] = {"format": FORMAT_VERSION}
        for f in dataclasses.fields(self):
            d[f.name] = getattr(self, f.name)
        d["evidence"] = json_safe(self.evidence)
        return d

    @classmethod
    def from_dict(cls, data: Any) -> Recipe:
        """Build from :meth:`to_dict`'s output. ``"format"`` may be absent (in-memory dicts)."""
        if not isinstance(data, dict):
            raise AutowarmError(f"a recipe must be a JSON object but got {type(data).__name__}.")
        data = dict(data)
        version = data.pop("format", FORMAT_VERSION)
        if version != FORMAT_VERSION:
            raise AutowarmError(
                f"unknown recipe format {version!r}; this autowarm reads format "
                f"{FORMAT_VERSION} (upgrade autowarm to read newer recipes)."
            )
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise AutowarmError(
                f"unknown recipe field {unknown[0]!r}; expected some of: {', '.join(names)}."
            )
        for required in ("peak_lr", "warmup_steps"):
            if required not in data:
                raise AutowarmError(f"recipe is missing the field {required!r}.")
        return cls(**data)

    def to_json(self) -> str:
        try:
            return json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"
        except (TypeError, ValueError) as e:
            raise AutowarmError(f"evidence cannot be written as JSON: {e}.") from None

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Recipe:
        """Read a recipe file written by :meth:`save` (or by ``autowarm probe``)."""
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise AutowarmError(f"recipe file {str(p)!r} does not exist.") from None
        except IsADirectoryError:
            raise AutowarmError(f"recipe path {str(p)!r} is a directory; pass a file.") from None
        except (OSError, UnicodeDecodeError) as e:
            raise AutowarmError(f"cannot read recipe {str(p)!r}: {e}.") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise AutowarmError(
                f"recipe {str(p)!r} is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}."
            ) from None
        if isinstance(data, dict) and "format" not in data:
            raise AutowarmError(
                f'recipe {str(p)!r} has no "format" field; add "format": {FORMAT_VERSION}.'
            )
        try:
            return cls.from_dict(data)
        except AutowarmError as e:
            raise AutowarmError(f"recipe {str(p)!r}: {e}") from None

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the recipe as JSON, atomically (a reader never sees a half-written file)."""
        atomic_write_text(path, self.to_json())
