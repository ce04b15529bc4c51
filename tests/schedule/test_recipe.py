from __future__ import annotations

import dataclasses
import json
import math
import warnings

import pytest
import torch

from autowarm import AutowarmError, Recipe, RecipeLR

PEAK = 3e-4


def _optimizer(*group_lrs: float) -> torch.optim.Optimizer:
    params = [torch.nn.Parameter(torch.zeros(2)) for _ in group_lrs]
    return torch.optim.AdamW([{"params": [p], "lr": lr} for p, lr in zip(params, group_lrs)])


def _train(scheduler: RecipeLR, steps: int) -> list[float]:
    """LR of group 0 used at each of ``steps`` optimizer steps."""
    lrs = []
    for _ in range(steps):
        lrs.append(scheduler.optimizer.param_groups[0]["lr"])
        scheduler.optimizer.step()
        scheduler.step()
    return lrs


# ----------------------------------------------------------------------------- construction
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"peak_lr": 0.0}, "peak_lr must be a finite number > 0 but got 0.0."),
        ({"peak_lr": -1e-3}, "peak_lr must be a finite number > 0 but got -0.001."),
        ({"peak_lr": math.nan}, "peak_lr must be a finite number > 0 but got nan."),
        ({"peak_lr": math.inf}, "peak_lr must be a finite number > 0 but got inf."),
        ({"peak_lr": "3e-4"}, "peak_lr must be a finite number > 0 but got '3e-4'."),
        ({"warmup_steps": -5}, "warmup_steps must be a non-negative integer but got -5."),
        ({"warmup_steps": 500, "total_steps": 200}, "must be <= total_steps but got 500 > 200."),
        ({"decay": "cosin"}, "unknown decay 'cosin'; choose one of: cosine, linear,"),
        ({"min_lr_ratio": 1.5}, "min_lr_ratio must be in [0, 1] but got 1.5."),
        ({"evidence": [1, 2]}, "evidence must be a dict but got list [1, 2]."),
    ],
)
def test_construction_is_validated(kwargs: dict, message: str) -> None:
    full = {"peak_lr": PEAK, "warmup_steps": 10, "total_steps": 100, **kwargs}
    with pytest.raises(AutowarmError) as info:
        Recipe(**full)
    assert message in str(info.value)


def test_frozen_and_replace_revalidates() -> None:
    recipe = Recipe(PEAK, 100)
    with pytest.raises(dataclasses.FrozenInstanceError):
        recipe.peak_lr = 1.0  # type: ignore[misc]
    assert dataclasses.replace(recipe, total_steps=1000).total_steps == 1000
    with pytest.raises(AutowarmError, match="but got 100 > 50"):
        dataclasses.replace(recipe, total_steps=50)


def test_lr_at_and_total_steps_override() -> None:
    recipe = Recipe(PEAK, 10, min_lr_ratio=0.1)  # total_steps unknown yet
    assert recipe.lr_at(10, total_steps=100) == pytest.approx(PEAK)
    assert recipe.lr_at(100, total_steps=100) == pytest.approx(0.1 * PEAK)
    assert recipe.multiplier(55, total_steps=100) == pytest.approx(0.55)  # cosine midpoint
    with pytest.raises(AutowarmError, match="total_steps is required for decay 'cosine'"):
        recipe.lr_at(10)
    with pytest.raises(AutowarmError, match="warmup_steps must be <= total_steps but got 10 > 5"):
        recipe.lr_at(0, total_steps=5)


# ----------------------------------------------------------------------------- JSON
def test_json_round_trip_and_exact_fields(tmp_path) -> None:
    recipe = Recipe(
        PEAK,
        200,
        5000,
        decay="wsd",
        cooldown_steps=0.1,
        min_lr_ratio=0.1,
        evidence={"trials": 12, "scores": [1.5, math.nan]},
    )
    path = tmp_path / "r.json"
    recipe.save(path)
    data = json.loads(path.read_text())
    field_names = {f.name for f in dataclasses.fields(Recipe)}
    assert set(data) == field_names | {"format"}
    assert data["format"] == 1
    assert data["evidence"] == {"trials": 12, "scores": [1.5, None]}  # JSON has no NaN
    loaded = Recipe.load(path)
    assert dataclasses.replace(loaded, evidence={}) == dataclasses.replace(recipe, evidence={})
    assert recipe.to_dict()["evidence"]["scores"] == [1.5, None]  # also for --json documents
    plain = Recipe(PEAK, 5, 50, decay="linear", evidence={"trials": [1, 2]})
    assert Recipe.from_dict(plain.to_dict()) == plain
    assert json.loads(json.dumps(recipe.to_dict(), allow_nan=False)) == data
    assert [loaded.lr_at(s) for s in range(0, 5001, 250)] == [
        recipe.lr_at(s) for s in range(0, 5001, 250)
    ]
    assert not [p.name for p in tmp_path.iterdir() if p.name != "r.json"]  # no temp files left


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "is not valid JSON: Expecting property name enclosed in double quotes"),
        ("[1, 2]", "a recipe must be a JSON object but got list."),
        ('{"peak_lr": 0.001, "warmup_steps": 10}', 'has no "format" field; add "format": 1.'),
        (
            '{"format": 2, "peak_lr": 0.001, "warmup_steps": 10}',
            "unknown recipe format 2; this autowarm reads format 1",
        ),
        ('{"format": 1, "warmup_steps": 10}', "recipe is missing the field 'peak_lr'."),
        (
            '{"format": 1, "peak_lr": 0.001, "warmup_steps": 10, "warmpu": "linear"}',
            "unknown recipe field 'warmpu'; expected some of: peak_lr, warmup_steps,",
        ),
        (
            '{"format": 1, "peak_lr": 0.001, "warmup_steps": 10, "total_steps": 5}',
            "warmup_steps must be <= total_steps but got 10 > 5.",
        ),
        ('{"format": 1, "peak_lr": NaN, "warmup_steps": 10}', "peak_lr must be a finite number"),
    ],
)
def test_load_errors_are_one_line(tmp_path, text: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(AutowarmError) as info:
        Recipe.load(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_load_missing_path_and_directory(tmp_path) -> None:
    with pytest.raises(AutowarmError, match="does not exist"):
        Recipe.load(tmp_path / "nope.json")
    with pytest.raises(AutowarmError, match="is a directory"):
        Recipe.load(tmp_path)


def test_save_into_missing_folder_writes_nothing(tmp_path) -> None:
    with pytest.raises(AutowarmError, match="does not exist"):
        Recipe(PEAK, 10).save(tmp_path / "missing" / "r.json")
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- scheduler
def test_scheduler_follows_recipe_and_scales_param_groups() -> None:
    recipe = Recipe(PEAK, 20, 200, min_lr_ratio=0.1)
    optimizer = _optimizer(1.0, 0.1, 0.0)  # ratios 1 : 0.1 : 0 to the largest group
    scheduler = recipe.scheduler(optimizer)
    assert isinstance(scheduler, torch.optim.lr_scheduler.LambdaLR)
    assert scheduler.base_lrs == pytest.approx([PEAK, PEAK / 10, 0.0])
    for step in range(201):
        lrs = [g["lr"] for g in optimizer.param_groups]
        assert lrs == pytest.approx([recipe.lr_at(step), recipe.lr_at(step) / 10, 0.0])
        optimizer.step()
        scheduler.step()


def test_scheduler_needs_total_steps_at_construction() -> None:
    recipe = Recipe(PEAK, 20)
    with pytest.raises(AutowarmError, match="total_steps is required for decay 'cosine'"):
        recipe.scheduler(_optimizer(1.0))
    scheduler = recipe.scheduler(_optimizer(1.0), total_steps=100)  # the override works
    assert scheduler.schedule.total_steps == 100
    constant = Recipe(PEAK, 20, decay="constant").scheduler(_optimizer(1.0))  # no end needed
    assert _train(constant, 30)[-1] == pytest.approx(PEAK)


def test_scheduler_rejects_non_optimizer() -> None:
    with pytest.raises(TypeError, match=r"is not a torch\.optim\.Optimizer"):
        Recipe(PEAK, 1, 10).scheduler(object())  # type: ignore[arg-type]


@pytest.mark.parametrize("optimizer_state_first", [True, False])
def test_resume_from_checkpoint_equals_uninterrupted_run(
    tmp_path, optimizer_state_first: bool
) -> None:
    recipe = Recipe(PEAK, 30, 120, decay="wsd", cooldown_steps=40)
    uninterrupted = _train(recipe.scheduler(_optimizer(1.0, 0.5)), 120)

    first = recipe.scheduler(_optimizer(1.0, 0.5))
    before = _train(first, 50)
    torch.save(
        {"optimizer": first.optimizer.state_dict(), "scheduler": first.state_dict()},
        tmp_path / "ckpt.pt",
    )
    ckpt = torch.load(tmp_path / "ckpt.pt", weights_only=True)  # plain types only
    optimizer = _optimizer(1.0, 0.5)
    if optimizer_state_first:  # the scheduler's constructor sets the LR of step 0 ...
        optimizer.load_state_dict(ckpt["optimizer"])
    resumed = recipe.scheduler(optimizer)
    if not optimizer_state_first:  # ... the usual order: build both, then load both
        optimizer.load_state_dict(ckpt["optimizer"])
    resumed.load_state_dict(ckpt["scheduler"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        after = _train(resumed, 70)
    assert before + after == pytest.approx(uninterrupted, rel=1e-12)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"warmup_steps": 10}, "warmup_steps 30 (checkpoint) != 10 (this scheduler)"),
        ({"peak_lr": 1e-3}, "peak_lr 0.0003 (checkpoint) != 0.001 (this scheduler)"),
        ({"decay": "linear"}, "decay 'cosine' (checkpoint) != 'linear' (this scheduler)"),
    ],
)
def test_loading_a_different_recipes_checkpoint_is_an_error(change: dict, field: str) -> None:
    recipe = Recipe(PEAK, 30, 120)
    state = recipe.scheduler(_optimizer(1.0)).state_dict()
    other = dataclasses.replace(recipe, **change).scheduler(_optimizer(1.0))
    with pytest.raises(AutowarmError, match="built from a different recipe") as info:
        other.load_state_dict(state)
    assert field in str(info.value)


def test_total_steps_override_is_part_of_the_identity() -> None:
    recipe = Recipe(PEAK, 30)
    state = recipe.scheduler(_optimizer(1.0), total_steps=100).state_dict()
    other = recipe.scheduler(_optimizer(1.0), total_steps=200)
    with pytest.raises(AutowarmError, match=r"total_steps 100 \(checkpoint\) != 200"):
        other.load_state_dict(state)


def test_loading_a_plain_lambdalr_state_is_an_error() -> None:
    optimizer = _optimizer(1.0)
    plain = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0).state_dict()
    with pytest.raises(AutowarmError, match=r"was not saved by autowarm\.RecipeLR"):
        Recipe(PEAK, 3, 10).scheduler(_optimizer(1.0)).load_state_dict(plain)


def test_loading_with_other_param_groups_is_an_error() -> None:
    recipe = Recipe(PEAK, 3, 10)
    state = recipe.scheduler(_optimizer(1.0, 0.1)).state_dict()
    with pytest.raises(AutowarmError, match="has 2 param groups but this optimizer has 1"):
        recipe.scheduler(_optimizer(1.0)).load_state_dict(state)


def test_tensor_learning_rates_stay_tensors() -> None:
    param = torch.nn.Parameter(torch.zeros(2))
    optimizer = torch.optim.Adam([param], lr=torch.tensor(1.0))
    recipe = Recipe(PEAK, 4, 20, decay="linear")
    scheduler = recipe.scheduler(optimizer)
    for step in range(21):
        lr = optimizer.param_groups[0]["lr"]
        assert isinstance(lr, torch.Tensor)
        assert lr.item() == pytest.approx(recipe.lr_at(step), rel=1e-6)
        optimizer.step()
        scheduler.step()


def test_a_second_scheduler_replaces_stale_initial_lr() -> None:
    # an earlier scheduler left initial_lr = 1.0 in the groups; the recipe's peak wins and the
    # ratio between groups is kept
    optimizer = _optimizer(1.0, 0.25)
    torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    scheduler = Recipe(PEAK, 0, 10, decay="constant").scheduler(optimizer)
    assert scheduler.base_lrs == pytest.approx([PEAK, PEAK / 4])
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([PEAK, PEAK / 4])
