from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from autowarm import Recipe
from autowarm._cli import main
from autowarm.probe._recommend import recommend
from autowarm.probe._record import TrialRecord
from autowarm.schedule._carry import probe_of

RECORDS = [
    TrialRecord(number=i, peak_lr=lr, warmup_steps=w, status="stable", score=s)
    for i, (lr, w, s) in enumerate([(2e-3, 10, 1.02), (3e-3, 47, 1.0), (4e-3, 20, 1.01)])
] + [TrialRecord(number=9, peak_lr=3e-2, warmup_steps=50, status="diverged")]


def probed(total: int | None) -> Recipe:
    return recommend(RECORDS, probe_steps=100, total_steps=total, decay="cosine")


@pytest.mark.parametrize("probe_total", [1000, None])
def test_for_run_is_what_the_probe_would_have_said_for_that_length(probe_total) -> None:
    # `autowarm show --total-steps N` recommends again for N; for_run carries the file to N
    for total in (1000, 5000, 20_000):
        stretched, again = probed(probe_total).for_run(total), probed(total)
        assert (stretched.peak_lr, stretched.warmup_steps) == (again.peak_lr, again.warmup_steps)
        assert stretched.total_steps == total
        assert stretched.evidence["horizon_factor"] == again.evidence["horizon_factor"]


def test_for_run_reads_the_passes_of_a_run_of_that_length() -> None:
    # 3 passes at 1,000 steps: under 20 the exponent is FRESH_RULE's; at 8,000 steps the run
    # makes 24 and the default applies, as `autowarm show --total-steps 8000` recommends
    def at(total: int) -> Recipe:
        told = {"data_passes": 3.0 * total / 1000}
        return recommend(
            RECORDS, probe_steps=100, total_steps=total, decay="cosine", extra_evidence=told
        )

    for total in (2000, 6000, 8000, 20_000):
        stretched, again = at(1000).for_run(total), at(total)
        assert stretched.evidence["horizon_exponent"] == again.evidence["horizon_exponent"]
        assert (stretched.peak_lr, stretched.warmup_steps) == (again.peak_lr, again.warmup_steps)
        assert stretched.evidence["data_passes"] == pytest.approx(again.evidence["data_passes"])
    assert at(1000).for_run(2000).evidence["horizon_exponent"] == 0.1
    assert at(1000).for_run(8000).evidence["horizon_exponent"] == 0.3


def test_the_scheduler_lr_at_and_training_args_all_carry_the_same_way() -> None:
    recipe, expected = probed(1000), probed(20_000)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.ones(2))], lr=1.0)
    sched = recipe.scheduler(opt, total_steps=20_000)
    for step in range(0, 20_000, 997):
        assert opt.param_groups[0]["lr"] == pytest.approx(expected.lr_at(step))
        assert recipe.lr_at(step, 20_000) == pytest.approx(expected.lr_at(step))
        assert recipe.multiplier(step, 20_000) == pytest.approx(expected.multiplier(step))
        for _ in range(997):
            opt.step()
            sched.step()
    with pytest.warns(UserWarning):  # HF's warmup starts at 0: said, not hidden
        args = recipe.training_args(20_000)
    assert (args["learning_rate"], args["warmup_steps"]) == (
        expected.peak_lr,
        expected.warmup_steps,
    )


def test_autowarm_schedule_total_steps_carries_and_says_so(tmp_path: Path, capsys) -> None:
    path = tmp_path / "autowarm.json"
    probed(1000).save(path)
    assert main(["schedule", str(path), "--total-steps", "20000"]) == 0
    out = capsys.readouterr().out
    expected = probed(20_000)
    assert "carried to 20000 steps from the probe" in out
    assert f"warmup {expected.warmup_steps} steps" in out
    assert main(["schedule", str(path), "--json", "--total-steps", "20000"]) == 0
    doc = json.loads(capsys.readouterr().out)["recipe"]
    assert (doc["peak_lr"], doc["warmup_steps"]) == (expected.peak_lr, expected.warmup_steps)


def test_a_hand_written_recipe_keeps_its_lr_and_warmup() -> None:
    recipe = Recipe(3e-4, 200, 5000)
    assert probe_of(recipe.evidence) is None
    longer = recipe.for_run(20_000)
    assert (longer.peak_lr, longer.warmup_steps, longer.total_steps) == (3e-4, 200, 20_000)
    assert recipe.for_run(None) is recipe and recipe.for_run(5000) is recipe


@pytest.mark.parametrize(
    "how, expected",
    [("fraction", [40, 400, 20_000]), ("steps", [40, 40, 40]), ("sqrt", [40, 126, 894])],
)
def test_warmup_transfers(how: str, expected: list[int]) -> None:
    from autowarm.schedule._carry import carry_warmup

    got = [carry_warmup(40, probe_steps=100, total_steps=t, how=how) for t in (100, 1000, 50_000)]
    assert got == expected
    # never more than half the run
    assert carry_warmup(80, probe_steps=100, total_steps=120, how=how) <= 60
