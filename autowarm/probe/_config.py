"""What defines a search: :class:`ProbeConfig`, the home of every default of ``autowarm probe``
(the CLI's flags read theirs from here), its validation, and the settings a study stores.

Nothing heavy is imported here: ``autowarm probe --help`` and bad flags answer at once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import shlex
import sys
from dataclasses import dataclass
from typing import Any

from autowarm._errors import AutowarmError
from autowarm.probe._samplers import SAMPLERS
from autowarm.schedule._carry import WARMUP_TRANSFERS
from autowarm.schedule._schedule import DECAY_SHAPES

# -- how trials become a recipe (defaults of probe/_recommend.py and of the CLI) ----------------
#: recommended peak LR <= lowest unstable LR / MARGIN
MARGIN = 2.0
#: soft-tie temperature as a fraction of the best score: a trial 10% worse weighs 1/e
TEMPERATURE = 0.1
#: the full run's best LR ~ the probe's x (probe_steps / total_steps) ** exponent (the short-
#: horizon shift): HORIZON_EXPONENT, or HORIZON_EXPONENT_AT_EDGE when the pick sits near a
#: stability edge the probes saw (the lowest unstable LR within EDGE_REACH x margin of it);
#: ``--horizon-exponent`` fixes one exponent (probe/_recommend.py has the measurements)
HORIZON_EXPONENT = 0.3
HORIZON_EXPONENT_AT_EDGE = 0.05
EDGE_REACH = 2.0
#: ... and HORIZON_EXPONENT_NOISY (away from an edge) where the near-best trials' training loss
#: is noisy relative to its level (their score noise / |score| above NOISE_SPLIT): a model
#: fitting most of its batches, whose full run overfits at the probes' LR. Such a model learns
#: by LR x steps, so the full run's best LR falls like 1 / T (registered, then adopted on three
#: fresh scripts: scripts/bench_quality_variants.md, "HORIZON_EXPONENT_NOISY"; it was 0.5)
HORIZON_EXPONENT_NOISY = 1.0
NOISE_SPLIT = 0.1
#: passes over its training data from which a full run memorises it: where the noise rule fired
#: on the quality suite, its cut helped on the six scripts making 20-85 passes and hurt or
#: was even on the six making 0-17; below it the rule does not cut (probe/_recommend.py,
#: PASSES_RULE: registered, then adopted on three fresh scripts; scripts/
#: bench_quality_variants.md, "PASSES_RULE")
MEMORISING_PASSES = 20
#: ... and below it, away from an edge, the exponent where the full run's passes are known
#: (FRESH_RULE in probe/_recommend.py: scripts/bench_quality_variants.md, "FRESH_RULE")
HORIZON_EXPONENT_FRESH = 0.1
#: ... and where the probes are scored on held-out data (score_with, a callback's eval set),
#: whose score has no known noise: where the near-best trials' held-out score ends above their
#: training loss by more than GAP_SPLIT of it (a model fitting its training data)
GAP_SPLIT = 0.2
#: ... with the same exponent: the same regime, read from the held-out score (registered, then
#: adopted on three fresh scripts: scripts/bench_quality_variants.md, "HORIZON_EXPONENT_GAP")
HORIZON_EXPONENT_GAP = HORIZON_EXPONENT_NOISY
#: how the probe's warmup carries to the full run: the same "fraction" of it, the same "steps",
#: or "sqrt" (steps x sqrt(total / probe)); see schedule/_carry.py
WARMUP_TRANSFER = "fraction"

#: widening the default LR range during a search (probe/_widen.py): by WIDEN_FACTOR at the end
#: where the best trial sits, once WIDEN_AFTER trials have finished and while WIDEN_LEFT are
#: left to search the new part, at most WIDEN_MOST times
WIDEN_FACTOR = 10.0
WIDEN_AFTER = 6
WIDEN_LEFT = 4
WIDEN_MOST = 2

PRUNERS = ("cohort", "none")

#: What a search learns and stores in its study beside the settings (:meth:`ProbeConfig.to_attrs`)
#: -- the rest of the study's schema: the script's own LR (the calibration run), the resolved
#: peak-LR range, and the first initial loss (the reference of the unstable trials' penalty).
SCRIPT_LR_ATTR = "script_lr"
LR_RANGE_ATTR = "lr_range"
#: how the search widened its LR range, one entry a widening (probe/_widen.py)
LR_WIDENED_ATTR = "lr_range_widened"
INITIAL_LOSS_ATTR = "initial_loss"
#: the script's content when the study was last probed (an edited script is another design)
SCRIPT_DIGEST_ATTR = "script_sha256"
#: the flags every worker of the study must share (:meth:`ProbeConfig.comparable`)
DESIGN_ATTR = "design"
#: the shortest probe the monitor can judge (its detectors need a few steps of history)
MIN_STEPS = 10
#: the largest --margin: beyond it the recommendation is a fraction of a percent of the LR
#: that went unstable, i.e. no longer a statement about that LR
MAX_MARGIN = 100.0


def script_digest(script: str) -> str | None:
    """The first 16 hex digits of the script file's SHA-256 (None if it cannot be read)."""
    try:
        with open(script, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()[:16]
    except OSError:
        return None


def default_steps(total_steps: int | None) -> int:
    """Probe length: 10% of the run, between 30 and 100 steps (100 without a run length):
    20 probes then cost <= 2 full runs of a short run and <= 10% of one of >= 20,000 steps.
    Probes twice as long with half the trials measured no better (README, *Quality*)."""
    return 100 if total_steps is None else min(100, max(30, total_steps // 10))


@dataclass(frozen=True)
class ProbeConfig:
    """Everything that defines a search and its recommendation (the CLI flags)."""

    script: str
    args: tuple[str, ...] = ()
    steps: int = None  # type: ignore[assignment]  # None: default_steps(total_steps)
    trials: int = 20
    total_steps: int | None = None
    decay: str = "cosine"
    min_lr_ratio: float = 0.0
    lr_range: tuple[float, float] | None = None
    max_warmup: int | None = None  # None: half the probe
    jobs: int = 1
    nproc_per_node: int = 1  # > 1: each trial runs under torch.distributed.run with K ranks
    timeout: float | None = None
    trial_timeout: float | None = None
    seed: int | None = None
    sampler: str = "tpe"
    prune: str = "cohort"
    margin: float = MARGIN
    warmup_transfer: str = WARMUP_TRANSFER
    horizon_exponent: float | None = None  # None: by the rule above
    # passes of the full run (of total_steps) over its training data, for a loop autowarm
    # cannot read them from (no DataLoader, no trainer callback); None: read, else unknown
    epochs: float | None = None

    def __post_init__(self) -> None:
        if self.steps is None:
            object.__setattr__(self, "steps", default_steps(self.total_steps))
        object.__setattr__(self, "args", tuple(self.args))

    @property
    def warmup_max(self) -> int:
        return self.steps // 2 if self.max_warmup is None else self.max_warmup

    def for_total_steps(self, total_steps: int) -> ProbeConfig:
        """This config for a full run of ``total_steps`` (``autowarm show --total-steps``): the
        passes stated with ``--epochs`` scale with the run's length."""
        epochs = self.epochs
        if epochs is not None and self.total_steps:
            epochs = epochs * total_steps / self.total_steps
        return dataclasses.replace(self, total_steps=total_steps, epochs=epochs)

    @property
    def command(self) -> str:
        """``python train.py …``: how to run the script by hand."""
        return shlex.join([os.path.basename(sys.executable), self.script, *self.args])

    def design(self) -> dict[str, Any]:
        """What makes two trials comparable (part of the default study name): an edited
        script, another probe length or another seed is another search, not a resume."""
        return {"script": script_digest(self.script), **self.comparable(), "seed": self.seed}

    # -- the settings a study stores (its user attributes), one schema for both sides --------
    def to_attrs(self) -> dict[str, Any]:
        """What ``autowarm show`` needs to recommend again from the stored trials alone."""
        return {
            "script": self.script,
            "args": list(self.args),
            "command": self.command,
            "steps": self.steps,
            "warmup_max": self.warmup_max,
            "decay": self.decay,
            "min_lr_ratio": self.min_lr_ratio,
            "total_steps": self.total_steps,
            "margin": self.margin,
            "warmup_transfer": self.warmup_transfer,
            "horizon_exponent": self.horizon_exponent,
            "epochs": self.epochs,
            SCRIPT_DIGEST_ATTR: script_digest(self.script),
            DESIGN_ATTR: self.comparable(),
        }

    def comparable(self) -> dict[str, Any]:
        """The flags every worker of one study must share: trials of another probe length,
        decay, LR range or warmup range are not comparable with the study's."""
        return {
            "--steps": self.steps,
            "--decay": self.decay,
            "--min-lr-ratio": self.min_lr_ratio,
            "--lr-range": list(self.lr_range) if self.lr_range else None,
            "--max-warmup": self.warmup_max,
        }

    @classmethod
    def from_attrs(cls, attrs: dict[str, Any]) -> ProbeConfig:
        """The config a study was probed with (fields it does not store keep their default)."""
        names = {f.name for f in dataclasses.fields(cls)}
        known = {k: v for k, v in attrs.items() if k in names}
        if "warmup_max" in attrs:
            known["max_warmup"] = int(attrs["warmup_max"])
        known.pop("lr_range", None)  # the stored one is the search's resolved range
        return cls(**{"script": "", **known})


def validate(config: ProbeConfig) -> None:
    """Bad flags -> one AutowarmError line, before anything runs or is written."""
    _check_search(config)
    _check_output(config)


def _check_search(config: ProbeConfig) -> None:
    if config.steps < MIN_STEPS:
        raise AutowarmError(f"--steps must be >= {MIN_STEPS} but got {config.steps}.")
    if config.trials < 1:
        raise AutowarmError(f"--trials must be >= 1 but got {config.trials}.")
    if config.jobs < 1:
        raise AutowarmError(f"--jobs must be >= 1 but got {config.jobs}.")
    if config.nproc_per_node < 1:
        raise AutowarmError(
            f"--nproc-per-node must be >= 1 but got {config.nproc_per_node}; "
            "pass the number of ranks your script runs on (1: a plain `python train.py`)."
        )
    if config.lr_range is not None:
        lo, hi = config.lr_range
        if not (0 < lo < math.inf and 0 < hi < math.inf):
            raise AutowarmError(
                f"--lr-range must be positive finite numbers but got {lo:g} {hi:g}."
            )
        if lo >= hi:
            raise AutowarmError(f"--lr-range MIN must be < MAX but got {lo:g} >= {hi:g}.")
    if config.max_warmup is not None and config.max_warmup < 0:
        raise AutowarmError(f"--max-warmup cannot be negative but got {config.max_warmup}.")
    if config.warmup_max >= config.steps:
        raise AutowarmError(
            f"--max-warmup must be < --steps but got {config.warmup_max} >= {config.steps}; "
            "a probe must run past its longest warmup (raise --steps or lower --max-warmup)."
        )
    for flag, seconds in (("--timeout", config.timeout), ("--trial-timeout", config.trial_timeout)):
        if seconds is not None and not seconds > 0:
            raise AutowarmError(f"{flag} must be > 0 but got {seconds:g}.")
    if config.sampler not in SAMPLERS:
        raise AutowarmError(
            f"--sampler must be one of {', '.join(SAMPLERS)} but got {config.sampler!r}."
        )
    if config.prune not in PRUNERS:
        raise AutowarmError(f"--prune must be none or cohort but got {config.prune!r}.")


def _check_output(config: ProbeConfig) -> None:
    if config.total_steps is not None and config.total_steps < 1:
        raise AutowarmError(f"--total-steps must be >= 1 but got {config.total_steps}.")
    if config.total_steps is not None and config.steps > config.total_steps:
        raise AutowarmError(
            f"--steps must be <= --total-steps but got {config.steps} > {config.total_steps}; "
            "a probe is a short piece of the run (lower --steps, or leave it to its default)."
        )
    if config.decay not in DECAY_SHAPES:
        raise AutowarmError(
            f"--decay must be one of {', '.join(DECAY_SHAPES)} but got {config.decay!r}."
        )
    if not 0.0 <= config.min_lr_ratio <= 1.0:
        raise AutowarmError(f"--min-lr-ratio must be in [0, 1] but got {config.min_lr_ratio:g}.")
    if not 1.0 <= config.margin <= MAX_MARGIN:
        raise AutowarmError(f"--margin must be in [1, {MAX_MARGIN:g}] but got {config.margin:g}.")
    if config.horizon_exponent is not None and not 0.0 <= config.horizon_exponent <= 1.0:
        raise AutowarmError(
            f"--horizon-exponent must be in [0, 1] but got {config.horizon_exponent:g}."
        )
    if config.epochs is not None and not 0 < config.epochs < math.inf:
        raise AutowarmError(
            f"--epochs must be a positive number but got {config.epochs:g}; it is how many "
            "times the full run sees each training example (1 for data generated fresh "
            "every batch)."
        )
    if config.warmup_transfer not in WARMUP_TRANSFERS:
        raise AutowarmError(
            f"--warmup-transfer must be one of {', '.join(WARMUP_TRANSFERS)} but got "
            f"{config.warmup_transfer!r}."
        )
