"""timm's train.py gets the recipe as its own schedule flags (schedule/_timm.py)."""

from __future__ import annotations

import math
import shlex
from pathlib import Path

import pytest

from autowarm import Recipe
from autowarm.schedule._timm import takes_timm_flags, timm_command

ARGV = ["python", "train.py", "--data-dir", "data", "--model", "resnet18", "-b", "64"]


def _flags(line: str) -> dict[str, str | None]:
    """``--name value`` / ``--switch`` of a command line, the last of each."""
    words, out = shlex.split(line), {}
    for i, word in enumerate(words):
        if word.startswith("--"):
            nxt = words[i + 1] if i + 1 < len(words) else "--"
            out[word] = None if nxt.startswith("--") else nxt
    return out


def _timm_lrs(flags: dict[str, str | None], per_epoch: int) -> list[float]:
    """The LR of each update under timm's CosineLRScheduler / PolyLRScheduler as built from
    these flags with ``--sched-on-updates`` and ``--warmup-prefix`` (timm 1.0's formulas:
    timm/scheduler/cosine_lr.py, poly_lr.py; scripts/try_timm.py --check-flags runs timm's own
    scheduler on the same flags)."""
    lr, start, floor = (float(flags[k] or 0) for k in ("--lr", "--warmup-lr", "--min-lr"))
    warmup = int(flags["--warmup-epochs"] or 0) * per_epoch
    decay = int(flags["--epochs"] or 0) * per_epoch
    out = []
    for t in range(warmup + decay):
        if t < warmup:
            out.append(start + t * (lr - start) / warmup)
            continue
        x = (t - warmup) / decay
        if flags["--sched"] == "cosine":
            out.append(floor + 0.5 * (lr - floor) * (1 + math.cos(math.pi * x)))
        else:
            out.append(floor + (lr - floor) * (1 - x) ** float(flags["--decay-rate"] or 1))
    return out


@pytest.mark.parametrize(
    "recipe",
    [
        Recipe(0.05, 44, 440),
        Recipe(0.05, 22, 440, decay="linear", min_lr_ratio=0.1),
        Recipe(0.05, 0, 440, decay="polynomial", power=2.0),
    ],
)
def test_timms_flags_give_the_recipes_lr_at_every_update(recipe: Recipe) -> None:
    line = timm_command(recipe, [*ARGV, "--epochs", "20"])
    assert line is not None
    lrs = _timm_lrs(_flags(line.splitlines()[-1]), per_epoch=22)
    assert len(lrs) == 440  # the run keeps its length: --epochs is the decay after the warmup
    for step, lr in enumerate(lrs):
        assert lr == pytest.approx(recipe.lr_at(step), rel=1e-5, abs=1e-9), step


def test_the_users_schedule_flags_are_replaced_and_the_rest_kept() -> None:
    mine = ["--lr", "0.3", "--sched", "step", "--sched-on-updates", "--warmup-epochs", "3"]
    mine += ["--lr-noise", "0.4", "0.9", "--epochs=20", "--min-lr", "1e-6", "--dr", "0.5"]
    line = timm_command(Recipe(0.05, 40, 440), [*ARGV, *mine]).splitlines()
    words = shlex.split(line[-1])
    assert words[: len(ARGV)] == ARGV  # the user's other arguments, as they were
    for old in ("0.3", "step", "3", "0.4", "0.9", "--epochs=20", "1e-6", "--dr", "0.5"):
        assert old not in words
    flags = _flags(line[-1])
    assert flags["--lr"] == "0.05" and flags["--epochs"] == "18"
    assert "--sched-on-updates" in flags and "--warmup-prefix" in flags
    # timm counts its warmup in whole epochs: 40 updates become 2 epochs, 44, and it says so
    assert flags["--warmup-epochs"] == "2"
    assert "timm warms up in whole epochs: 2 = 44 updates, the recipe 40." in line[-2]


def test_without_epochs_timms_default_300_is_the_run() -> None:
    line = timm_command(Recipe(0.05, 300, 3000), ARGV)
    assert "(10 an epoch: 3000 updates over 300 epochs)" in line
    assert _flags(line.splitlines()[-1])["--epochs"] == "270"


@pytest.mark.parametrize(
    "recipe",
    [
        Recipe(0.05, 40, 440, decay="wsd"),
        Recipe(0.05, 40, 440, warmup="exponential"),
        Recipe(0.05, 40, None, decay="constant"),
    ],
)
def test_no_timm_command_where_timm_has_no_such_schedule(recipe: Recipe) -> None:
    assert timm_command(recipe, [*ARGV, "--epochs", "20"]) is None


def test_timms_train_py_is_told_by_its_schedule_flag(tmp_path: Path) -> None:
    timm = tmp_path / "train.py"
    timm.write_text("group.add_argument('--sched-on-updates', action='store_true')\n")
    other = tmp_path / "mine.py"
    other.write_text("parser.add_argument('--lr', type=float)\n")
    assert takes_timm_flags(str(timm))
    assert not takes_timm_flags(str(other)) and not takes_timm_flags(str(tmp_path / "none.py"))
