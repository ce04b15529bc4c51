from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from autowarm import Recipe
from autowarm.probe._recommend import recommend
from autowarm.probe._record import TrialRecord
from autowarm.probe._report import LiveReport, print_final, recommendation, stability_map
from autowarm.probe._types import TrialSpec


def console() -> Console:
    return Console(file=io.StringIO(), width=80, color_system=None)


def text(c: Console) -> str:
    return c.file.getvalue()  # type: ignore[attr-defined]


RECORDS = [
    TrialRecord(0, 0.001, 0, "stable", score=2.0, steps=100),
    TrialRecord(1, 0.01, 20, "stable", score=1.5, steps=100),
    TrialRecord(2, 0.1, 0, "diverged", steps=12, reason="loss rose 10x"),
    TrialRecord(3, 0.1, 45, "nonfinite", steps=30, reason="loss is nan"),
    TrialRecord(4, 0.0001, 45, "failed", steps=3, failure="crash", reason="boom"),
]


def test_stability_map_marks_how_each_cell_ended_and_the_choice() -> None:
    c = console()
    c.print(stability_map(RECORDS, lr_range=(1e-4, 1.0), warmup_max=50, chosen=(0.003, 10)))
    out = text(c)
    grid = out.split("└")[0]
    assert grid.count("×") == 1 and grid.count("N") == 1 and grid.count("!") == 1
    assert grid.count("★") == 1
    assert "█" in grid and "░" in grid  # best and worst finished run
    assert "peak LR (log)" in out


def test_final_report_has_recommendation_and_code() -> None:
    recipe = recommend(RECORDS, probe_steps=100, total_steps=1000, decay="cosine")
    c = console()
    print_final(c, RECORDS, recipe, lr_range=(1e-4, 1.0), warmup_max=50, out="r.json", table=True)
    out = text(c)
    assert "Recommended schedule" in out and "recipe written to r.json" in out
    # the probe's warmup (10 of 100) keeps its fraction, and the report says why it is 10 %
    assert recipe.warmup_steps == 100
    assert f"{recipe.peak_lr:.3g}" in out and "100 steps" in out
    assert "the default: the probes' scores rarely tell warmups apart" in " ".join(out.split())
    assert "plain PyTorch" in out and "LambdaLR" in out
    # the other forms on request, one line (the plain form fits any loop that steps one)
    assert "HF transformers" not in out and "get_scheduler" not in out
    assert "Other forms: autowarm schedule r.json --code transformers|lightning|autowarm" in out
    assert "failed: boom" in out and "diverged: loss rose 10x" in out


def test_a_warmup_lengthened_past_spiky_trials_says_so() -> None:
    spiky = [*RECORDS, TrialRecord(5, 0.012, 30, "spike", score=1.8, steps=100)]
    recipe = recommend(spiky, probe_steps=100, total_steps=1000, decay="cosine")
    c = console()
    print_final(c, spiky, recipe, lr_range=(1e-4, 1.0), warmup_max=50, out="r.json", table=False)
    out = " ".join(text(c).split())
    assert recipe.warmup_steps == 300 and recipe.evidence["warmup_lengthened"] is True
    assert "lengthened to the longest warmup a trial at a similar LR spiked with" in out
    assert "the default" not in out


def test_the_report_says_how_the_search_widened_its_lr_range() -> None:
    recipe = recommend(RECORDS, probe_steps=100, total_steps=1000, decay="cosine")
    assert "widened" not in _final(recipe)
    recipe.evidence["lr_range_widened"] = [
        {"end": "top", "to": [1e-4, 0.5], "after_trials": 6},
        {"end": "top", "to": [1e-4, 5.0], "after_trials": 9},
    ]
    out = " ".join(_final(recipe).split())
    assert "LR range widened to [0.0001, 5] (at its top after 6 trials, at its top after 9" in out


@pytest.mark.parametrize(
    ("scored", "label"),
    [({"scored_by": "training loss"}, "(loss 1.5)"),
     ({"scored_by": "score_with"}, "(score_with() 1.5)"),
     ({"scored_by": "score_with", "score_name": "eval_loss"}, "(eval_loss 1.5)")],
)  # fmt: skip
def test_the_best_trials_score_is_labelled_by_what_scored_it(scored: dict, label: str) -> None:
    recipe = recommend(RECORDS, probe_steps=100, total_steps=1000, decay="cosine")
    recipe.evidence.update(scored)
    assert f"best trial #1 {label}" in " ".join(_final(recipe).split())


def _final(recipe: Recipe) -> str:
    c = console()
    print_final(c, RECORDS, recipe, lr_range=(1e-4, 5.0), warmup_max=50)
    return text(c)


def test_live_report_prints_one_row_per_trial_with_progress() -> None:
    c = console()
    rep = LiveReport(c, probe_steps=100)
    rep.started(0, 2, (1e-4, 1.0))
    rep.trial_started(TrialSpec(number=0, peak_lr=0.01, warmup_steps=20, probe_steps=100))
    rep.trial_finished(RECORDS[1], 1, 2)
    rep.trial_finished(RECORDS[2], 2, 2)
    rep.close()
    lines = text(c).splitlines()
    assert any(ln.split()[:4] == ["1/2", "1", "20", "0.01"] for ln in lines)
    assert any("diverged: loss rose 10x" in ln for ln in lines)
    assert "best 1.5 (trial 1)" in lines[-1] and lines[-1].startswith("2/2 trials")


def test_code_to_paste_is_never_cut_at_the_terminal_width() -> None:
    from autowarm import Recipe

    for trainer, target in ((None, "torch"), ("hf", "transformers"), ("lightning", "lightning")):
        recipe = Recipe(3.27e-3, 130, 1000, evidence={"script_trainer": trainer})
        c = Console(file=io.StringIO(), width=60, color_system=None)
        print_final(c, RECORDS, recipe, lr_range=(1e-4, 1e-1), warmup_max=50, out="a.json")
        out = text(c)
        for line in recipe.render(target).splitlines():
            assert line.rstrip() in out, line
        if target == "torch":  # the pointer to the other forms is a command: one line too
            assert "Other forms: autowarm schedule a.json --code transformers|lightning|" in out


def test_case21_legend_names_every_glyph_the_map_draws() -> None:
    c = console()
    c.print(stability_map(RECORDS, lr_range=(1e-4, 1.0), warmup_max=50))
    legend = " ".join(text(c).split("peak LR (log)")[1].split())  # unwrapped
    for glyph in ("× diverged", "N NaN/Inf", "= stalled", "p pruned", "! failed", "T timeout"):
        assert glyph in legend
    assert "? interrupted" in legend


def test_case21_row_labels_say_exactly_which_warmups_a_row_holds() -> None:
    c = console()
    c.print(stability_map(RECORDS, lr_range=(1e-4, 1.0), warmup_max=8))
    labels = [ln.split("│")[0].strip() for ln in text(c).splitlines() if "│" in ln]
    # 8 rows for warmups 0..8: the last row holds 7 and 8 (no "8-8", no 8 left out)
    assert labels == ["0", "1", "2", "3", "4", "5", "6", "7-8"]


def test_case21_live_rows_name_the_trial_number_as_such() -> None:
    c = console()
    rep = LiveReport(c, probe_steps=100)
    rep.started(0, 2, (1e-4, 1.0))
    rep.trial_finished(RECORDS[1], 1, 2)
    header = next(ln for ln in text(c).splitlines() if "warmup" in ln and "status" in ln)
    assert header.split()[:2] == ["done", "trial"]


def test_case13_status_says_the_step_once() -> None:
    from autowarm.probe._report import status_text

    reason = "killed after 5 s at step 12"
    timeout = TrialRecord(7, 0.01, 5, "timeout", steps=12, reason=reason)
    assert status_text(timeout).plain == f"timeout: {reason}"
    stalled = TrialRecord(8, 0.01, 5, "stalled", steps=40, reason="no progress")
    assert status_text(stalled).plain == "stalled: no progress (step 40)"


def test_an_hf_trainer_script_gets_its_own_flags_and_training_args() -> None:
    pytest.importorskip("transformers")
    recipe = recommend(RECORDS, probe_steps=100, total_steps=1000, decay="cosine")
    hf = Recipe(recipe.peak_lr, recipe.warmup_steps, 1000, evidence={"script_trainer": "hf"})
    example = ["python", "run_clm.py", "--output_dir", "out", "--do_train", "--max_steps", "1000"]
    for command, flags in ((example, True), (["python", "train.py", "--out", "o"], False)):
        c = console()
        print_final(c, RECORDS, hf, lr_range=(1e-4, 1.0), warmup_max=50, command=command)
        out = text(c)
        assert ("python run_clm.py --output_dir out --do_train --learning_rate" in out) is flags
        # one line past the terminal's width, uncut: it is for pasting
        assert ("--lr_scheduler_type cosine --max_steps 1000\n" in out) is flags
        assert "TrainingArguments(" in out and "plain PyTorch" not in out


def test_a_lightning_script_gets_a_configure_optimizers_stepping_every_step() -> None:
    # a pasted scheduler.step() has no place in a LightningModule, and a scheduler returned
    # without "interval": "step" steps once per epoch
    lit = Recipe(3e-3, 100, 1000, evidence={"script_trainer": "lightning"})
    c = console()
    print_final(c, RECORDS, lit, lr_range=(1e-4, 1.0), warmup_max=50, out="r.json")
    out = text(c)
    assert "Paste into your script (Lightning):" in out and "def configure_optimizers" in out
    assert '"interval": "step"' in out
    assert "plain PyTorch" not in out and "Other forms" not in out


@pytest.mark.parametrize("accelerate", [True, False])
def test_a_loop_with_transformers_schedule_is_told_what_to_replace(accelerate: bool) -> None:
    sched = {"text": "LambdaLR, from transformers.optimization", "library": "transformers"}
    recipe = Recipe(
        3e-3, 100, 1000, evidence={"script_scheduler": {**sched, "accelerate": accelerate}}
    )
    c = console()
    print_final(c, RECORDS, recipe, lr_range=(1e-4, 1.0), warmup_max=50, out="r.json")
    out = " ".join(text(c).split())  # the lines wrap at the console's width
    assert "steps its own LR scheduler (LambdaLR, from transformers.optimization): replace" in out
    assert "Paste into your script (HF transformers):" in out and "get_scheduler(" in out
    assert "plain PyTorch" not in out
    assert ("multiply its step counts by N" in out) is accelerate


def test_a_loop_with_its_own_lambda_gets_plain_code_and_the_scheduler_named() -> None:
    sched = {"text": "LambdaLR, with the script's own function", "library": "script"}
    recipe = Recipe(3e-3, 100, 1000, evidence={"script_scheduler": {**sched, "accelerate": False}})
    c = console()
    print_final(c, RECORDS, recipe, lr_range=(1e-4, 1.0), warmup_max=50, out="r.json")
    out = " ".join(text(c).split())
    assert "steps its own LR scheduler (LambdaLR, with the script's own function)" in out
    assert "Paste into your script (plain PyTorch):" in out and "Other forms" in out


@pytest.mark.parametrize(
    ("calls", "said"),
    [
        (2, "stepped it 2 times in a trial's 44 optimizer steps (once an epoch?)"),
        (1, "stepped it once in a trial's 44 optimizer steps (once an epoch?)"),
        (0, "did not step it in a trial's 44 optimizer steps"),  # an epoch longer than a trial
        (43, None),  # once a step (the trial ends before the script steps it after the last)
        (176, "(every micro-batch of an accumulation?); the one below must be stepped once"),
    ],
)
def test_a_scheduler_stepped_other_than_once_a_step_is_told_where_to_step(
    calls: int, said: str | None
) -> None:
    sched = {"text": "StepLR, from torch.optim.lr_scheduler", "library": "torch"}
    sched = {**sched, "accelerate": False, "calls": calls, "steps": 44}
    recipe = Recipe(3e-3, 10, 440, evidence={"script_scheduler": sched})
    c = console()
    print_final(c, RECORDS, recipe, lr_range=(1e-4, 1.0), warmup_max=50)
    out = " ".join(text(c).split())
    assert "steps its own LR scheduler (StepLR, from torch.optim.lr_scheduler)" in out
    if said is None:
        assert "The script stepped it" not in out
    else:
        assert said in out


def test_a_loop_that_sets_its_own_lr_gets_code_for_that_loop() -> None:
    recipe = recommend(RECORDS, probe_steps=100, total_steps=1000, decay="cosine")
    manual = Recipe(
        recipe.peak_lr,
        recipe.warmup_steps,
        1000,
        evidence={**recipe.evidence, "script_sets_lr": True},
    )
    c = console()
    print_final(c, RECORDS, manual, lr_range=(1e-4, 1.0), warmup_max=50)
    out = text(c)
    assert "sets param_group['lr'] itself" in out and "recipe.lr_at(iter_num)" in out
    assert "LambdaLR" not in out  # no scheduler to be overwritten
    assert "timm's own schedule flags" not in out  # not timm's train.py


def test_timms_train_py_gets_its_own_schedule_flags_then_the_loop_code(tmp_path: Path) -> None:
    script = tmp_path / "train.py"  # timm's scheduler sets the LR: the probe saw it set
    script.write_text("group.add_argument('--sched-on-updates', action='store_true')\n")
    recipe = Recipe(0.05, 44, 440, evidence={"script_sets_lr": True})
    c = console()
    command = ["python", str(script), "--model", "resnet18", "--epochs", "20", "--lr", "0.4"]
    print_final(c, RECORDS, recipe, lr_range=(1e-4, 1.0), warmup_max=50, command=command)
    out = " ".join(text(c).split())
    assert "Run it with timm's own schedule flags:" in out
    assert "--model resnet18 --lr 0.05 --sched cosine --sched-on-updates --epochs 18" in out
    assert "0.4" not in out and "recipe.lr_at(iter_num)" in out  # and the loop's code


def test_an_hf_no_trainer_script_gets_its_own_schedule_flags_then_the_code(tmp_path: Path):
    # run_clm_no_trainer.py: argparse flags, accelerate, its own loop stepping get_scheduler
    script = tmp_path / "run_clm_no_trainer.py"
    script.write_text(
        "".join(
            f'parser.add_argument("--{name}")\n'
            for name in (
                "learning_rate",
                "num_warmup_steps",
                "lr_scheduler_type",
                "max_train_steps",
            )
        )
    )
    used = {"text": "LambdaLR, from transformers.optimization", "library": "transformers"}
    recipe = Recipe(0.004, 72, 717, evidence={"script_scheduler": used})
    c = console()
    command = ["python", str(script), "--block_size", "64", "--learning_rate", "5e-4"]
    print_final(c, RECORDS, recipe, lr_range=(1e-4, 1.0), warmup_max=50, command=command)
    out = " ".join(text(c).split())
    assert "Run it with its own schedule flags:" in out
    flags = "--learning_rate 0.004 --num_warmup_steps 72 --lr_scheduler_type cosine"
    assert f"--block_size 64 {flags} --max_train_steps 717" in out and "5e-4" not in out
    assert "Or replace its scheduler in the code:" in out and "get_scheduler" in out
    script.write_text('parser.add_argument("--lr")\n')  # another script: the code alone
    c = console()
    print_final(c, RECORDS, recipe, lr_range=(1e-4, 1.0), warmup_max=50, command=command)
    assert "schedule flags" not in text(c) and "get_scheduler" in text(c)


@pytest.mark.parametrize(
    ("told", "line"),
    [
        (
            {"script_data": {"train_examples": 1300, "examples_per_step": 32}, "data_passes": 9.85},
            "data 1,300 training examples, 32 a step: the full run makes 9.85 passes over them",
        ),
        (
            {"data_passes": 3.0},
            "data the full run makes 3 passes over its training data (--epochs)",
        ),
        ({}, None),
    ],
)
def test_the_report_says_the_training_data_the_passes_come_from(told: dict, line: str | None):
    recipe = recommend(RECORDS, probe_steps=100, total_steps=1000, decay="cosine")
    c = console()
    c.print(
        recommendation(
            Recipe(recipe.peak_lr, recipe.warmup_steps, 1000, evidence={**recipe.evidence, **told})
        )
    )
    out = " ".join(text(c).split())
    if line is None:
        assert " data " not in out
    else:
        assert line in out
