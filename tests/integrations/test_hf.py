"""The HF adapter through the real transformers Trainer (tiny GPT-2 from a config)."""

from __future__ import annotations

import math
import shlex
import warnings
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainerCallback, TrainingArguments

from autowarm import Recipe
from autowarm._errors import AutowarmError
from autowarm.integrations.hf import AutowarmCallback
from autowarm.probe._runner import ProbeRunner
from autowarm.probe._types import TrialSpec

SCRIPTS = Path(__file__).parent / "scripts"


def _trainer(tmp_path: Path, callbacks: list, **overrides) -> Trainer:
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_head=2, n_embd=32, vocab_size=64))
    ids = torch.randint(0, 64, (128, 16))
    args = {
        "output_dir": str(tmp_path / "out"),
        "max_steps": 12,
        "per_device_train_batch_size": 8,
        "learning_rate": 1e-3,
        "warmup_steps": 3,
        "logging_steps": 1,
        "report_to": [],
        "save_strategy": "no",
        "use_cpu": True,
        "disable_tqdm": True,
        **overrides,
    }
    data = [{"input_ids": x, "labels": x} for x in ids]
    return Trainer(
        model=model, args=TrainingArguments(**args), train_dataset=data, callbacks=callbacks
    )


@pytest.mark.parametrize("accumulation", [1, 2])
def test_the_callback_alone_monitors_loss_and_pre_clip_norm(tmp_path, accumulation) -> None:
    cb = AutowarmCallback()
    trainer = _trainer(tmp_path, [cb], max_grad_norm=0.1, gradient_accumulation_steps=accumulation)
    trainer.train()
    history = cb.optimizer.monitor.history
    logged = [e for e in trainer.state.log_history if "grad_norm" in e]
    assert len(history) == len(logged) == 12
    # the norm before the Trainer's clip at 0.1 (what it logs), not the clipped 0.1
    for rec, log in zip(history, logged):
        assert rec.grad_norm == pytest.approx(float(log["grad_norm"]), rel=1e-4)
        assert rec.grad_norm > 0.1
        # the step's mean loss, as the Trainer logs it, with or without accumulation
        assert rec.loss == pytest.approx(float(log["loss"]), rel=1e-3)
    assert math.log(64) * 0.8 < history[0].loss < math.log(64) * 1.2


def test_a_x100_grad_spike_behind_max_grad_norm_is_caught_at_its_step(tmp_path) -> None:
    class Spike(TrainerCallback):  # multiplies every gradient by 100 during step 8's backward
        def on_train_begin(self, args, state, control, model=None, **kwargs):
            for p in model.parameters():
                p.register_hook(lambda g: g * 100 if state.global_step == 8 else g)

    cb = AutowarmCallback(actions="record", min_history=4)
    _trainer(tmp_path, [Spike(), cb], max_grad_norm=1.0).train()
    spikes = [e.step for e in cb.optimizer.monitor.events if e.signal == "grad_norm"]
    assert spikes == [8]


def test_training_args_reproduce_the_recipe_exactly_or_say_how_not(tmp_path) -> None:
    exact = Recipe(2e-3, 3, 12, decay="linear", warmup_start_ratio=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fields = exact.training_args()
    assert fields == {
        "learning_rate": 2e-3,
        "warmup_steps": 3,
        "lr_scheduler_type": "linear",
        "max_steps": 12,
    }
    trainer = _trainer(tmp_path, [], **fields)
    trainer.create_optimizer_and_scheduler(num_training_steps=12)
    lrs = []
    for _ in range(12):
        lrs.append(trainer.optimizer.param_groups[0]["lr"])
        trainer.optimizer.step()
        trainer.lr_scheduler.step()
    assert lrs == pytest.approx([exact.lr_at(s) for s in range(12)])
    with pytest.warns(UserWarning, match="warmup starts at LR 0"):
        Recipe(2e-3, 3, 12).training_args()  # autowarm's warmup starts at 1/(W+1)


def test_the_stock_trainer_script_runs_as_a_probe_trial(tmp_path) -> None:
    script = str(SCRIPTS / "hf_train.py")
    with ProbeRunner(script, ["--out", str(tmp_path / "o")], cwd=str(tmp_path)) as runner:
        res = runner.run(TrialSpec(number=0, peak_lr=3e-3, warmup_steps=4, probe_steps=10))
    assert res.status in ("stable", "spike"), res.reason
    assert res.steps == 10  # the probe ended the 30-step run at its own length
    assert all(math.isfinite(v) for v in res.losses)  # every step's loss was reported
    assert res.script_lr == pytest.approx(1e-3)
    assert res.trainer == "hf"  # the callback said so: the report speaks TrainingArguments
    assert res.optimizer == "torch.optim.AdamW"  # the Trainer's own, inside accelerate's wrapper
    # and how much data: 256 sequences, 8 a step (the report counts the full run's passes)
    assert res.data == {"train_examples": 256, "examples_per_step": 8}
    assert res.script_score is None  # no eval_dataset: the training loss scores it


@pytest.mark.parametrize(
    ("flags", "scored"),
    [(["--eval"], True), (["--eval", "--score", "loss"], False)],
)
def test_a_trial_is_scored_by_the_trainers_eval_loss_when_it_has_an_eval_set(
    tmp_path, flags, scored
) -> None:
    # as Trainer.hyperparameter_search scores its trials: a fine-tune overfits, and its
    # training loss ranks the LRs the wrong way round
    out = tmp_path.parent / f"{tmp_path.name}-evals.txt"  # outside the trial's project
    script = str(SCRIPTS / "hf_train.py")
    argv = ["--out", str(tmp_path / "o"), "--eval-out", str(out), *flags]
    with ProbeRunner(script, argv, cwd=str(tmp_path)) as runner:
        res = runner.run(TrialSpec(number=0, peak_lr=3e-3, warmup_steps=4, probe_steps=10))
    assert (res.status, res.steps) == ("stable", 10), res.reason
    evals = [float(line) for line in out.read_text().split()] if out.exists() else []
    if scored:  # one evaluate(), after the probe's last step, and its eval_loss is the score
        assert evals == [res.script_score]
        assert res.score_name == "eval_loss"  # the report's label for it
    else:
        assert res.script_score is None and evals == []


def test_score_eval_loss_without_an_eval_set_fails_the_trial_with_the_fix(tmp_path) -> None:
    script = str(SCRIPTS / "hf_train.py")
    with ProbeRunner(script, ["--score", "eval_loss"], cwd=str(tmp_path)) as runner:
        res = runner.run(TrialSpec(number=0, peak_lr=3e-3, warmup_steps=4, probe_steps=10))
    assert res.failure == "crash"
    assert "needs a Trainer with an eval_dataset" in (res.reason or "")
    with pytest.raises(AutowarmError, match="score must be 'auto', 'eval_loss' or 'loss'"):
        AutowarmCallback(score="eval")  # type: ignore[arg-type]


def test_the_command_form_parses_to_the_recipes_training_args() -> None:
    # an HF example script reads TrainingArguments from its flags (HfArgumentParser): the
    # report prints the user's command with the schedule's flags in place of theirs
    from transformers import HfArgumentParser

    from autowarm.schedule._code import hf_command

    recipe = Recipe(3e-3, 60, 2000, min_lr_ratio=0.1)
    mine = ["--output_dir", "out", "--learning-rate=5e-5", "--warmup_ratio", "0.1",
            "--max_steps", "300", "--do_train", "--lr_scheduler_type", "linear"]  # fmt: skip
    with pytest.warns(UserWarning):  # the warmup's start: the recipe's 1/(W+1), HF's 0
        expected = recipe.training_args()
    line = hf_command(recipe, ["python", "run_clm.py", *mine]).splitlines()[-1]
    argv = shlex.split(line)
    assert argv[:3] == ["python", "run_clm.py", "--output_dir"]
    (parsed,) = HfArgumentParser(TrainingArguments).parse_args_into_dataclasses(args=argv[2:])
    for name, value in expected.items():
        assert getattr(parsed, name) == value, name
    assert getattr(parsed, "warmup_ratio", None) in (0.0, None)  # theirs dropped (gone in v5)
    assert parsed.do_train and parsed.output_dir == "out"  # the rest of theirs kept


def test_a_trial_saving_checkpoints_leaves_the_project_as_it_was(tmp_path: Path) -> None:
    # save_pretrained makes checkpoint-N folders and writes model.safetensors from Rust:
    # both land in the trial's scratch, the user's own checkpoint-5 stays as it was
    mine = tmp_path / "hf-out" / "checkpoint-5"
    mine.mkdir(parents=True)
    (mine / "model.safetensors").write_bytes(b"the user's own weights")
    script = str(Path(__file__).parent / "scripts" / "hf_train.py")
    with ProbeRunner(script, ["--save-steps", "5"], cwd=str(tmp_path)) as runner:
        res = runner.run(TrialSpec(number=0, peak_lr=1e-3, warmup_steps=2, probe_steps=12))
        written = {Path(p).relative_to(tmp_path).as_posix() for p in runner.redirected}
    assert res.status in ("stable", "spike"), res.reason
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == [
        "hf-out", "hf-out/checkpoint-5", "hf-out/checkpoint-5/model.safetensors"
    ]  # fmt: skip
    assert (mine / "model.safetensors").read_bytes() == b"the user's own weights"
    assert written >= {
        "hf-out/checkpoint-5/model.safetensors", "hf-out/checkpoint-10/model.safetensors"
    }  # fmt: skip


def test_hf_rotating_old_checkpoints_inside_a_trial_removes_none_of_the_users(
    tmp_path: Path,
) -> None:
    # save_total_limit=1: after each save the Trainer rmtree-s the oldest checkpoint-N it
    # lists, here the user's own from an earlier run; the trial sees it gone, the user keeps it
    for step in (1, 2):
        mine = tmp_path / "hf-out" / f"checkpoint-{step}"
        mine.mkdir(parents=True)
        (mine / "model.safetensors").write_bytes(f"the user's step-{step} weights".encode())
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    script = str(Path(__file__).parent / "scripts" / "hf_train.py")
    args = ["--save-steps", "5", "--save-total-limit", "1"]
    with ProbeRunner(script, args, cwd=str(tmp_path)) as runner:
        res = runner.run(TrialSpec(number=0, peak_lr=1e-3, warmup_steps=2, probe_steps=12))
        removed = {Path(p).relative_to(tmp_path).as_posix() for p in runner.removed}
    assert res.status in ("stable", "spike"), res.reason
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
    assert "hf-out/checkpoint-1" in removed  # what the rotation removed, in the trial's view
