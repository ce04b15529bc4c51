from __future__ import annotations

import math
import shutil
import subprocess
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from autowarm import AutowarmError, Recipe
from autowarm.schedule._schedule import COOLDOWN_SHAPES, DECAY_SHAPES, WARMUP_SHAPES

PEAK = 3e-4

# (recipe options, torch snippet uses torch's own schedulers, transformers snippet is exact)
CASES = [
    ({"warmup_steps": 20, "total_steps": 120}, False, False),  # default: nanoGPT-style warmup
    ({"warmup_steps": 20, "total_steps": 120, "warmup_start_ratio": 0.0}, False, True),
    (
        {"warmup_steps": 20, "total_steps": 120, "warmup_start_ratio": 0.0, "min_lr_ratio": 0.1},
        False,
        True,
    ),
    ({"warmup_steps": 0, "total_steps": 50, "decay": "cosine"}, False, True),
    ({"warmup_steps": 10, "total_steps": 80, "decay": "linear", "min_lr_ratio": 0.1}, True, False),
    ({"warmup_steps": 0, "total_steps": 80, "decay": "linear", "min_lr_ratio": 0.1}, True, True),
    ({"warmup_steps": 0, "total_steps": 80, "decay": "linear"}, True, True),
    (
        {"warmup_steps": 10, "total_steps": 80, "decay": "linear", "warmup_start_ratio": 0.0},
        False,
        True,
    ),
    ({"warmup_steps": 15, "total_steps": 60, "decay": "constant"}, True, False),
    ({"warmup_steps": 0, "total_steps": 60, "decay": "constant"}, True, True),
    ({"warmup_steps": 15, "decay": "constant", "warmup_start_ratio": 0.0}, False, True),
    ({"warmup_steps": 12, "total_steps": 70, "warmup": "cosine"}, False, False),
    (
        {"warmup_steps": 12, "total_steps": 70, "warmup": "exponential", "decay": "linear"},
        False,
        False,
    ),
    ({"warmup_steps": 12, "total_steps": 70, "warmup": "1-sqrt"}, False, False),
    (
        {
            "warmup_steps": 10,
            "total_steps": 90,
            "decay": "polynomial",
            "power": 2.0,
            "min_lr_ratio": 0.05,
            "warmup_start_ratio": 0.0,
        },
        False,
        True,
    ),
    (
        {"warmup_steps": 10, "total_steps": 90, "decay": "inverse_sqrt", "warmup_start_ratio": 0.0},
        False,
        True,
    ),
    (
        {"warmup_steps": 10, "total_steps": 90, "decay": "inverse_sqrt", "min_lr_ratio": 0.3},
        False,
        False,
    ),
    (
        {
            "warmup_steps": 10,
            "total_steps": 90,
            "decay": "cosine_with_restarts",
            "num_cycles": 3,
            "warmup_start_ratio": 0.0,
        },
        False,
        True,
    ),
    (
        {
            "warmup_steps": 10,
            "total_steps": 90,
            "decay": "cosine_with_restarts",
            "min_lr_ratio": 0.1,
        },
        False,
        False,
    ),
    ({"warmup_steps": 10, "total_steps": 100, "decay": "wsd"}, False, False),
    (
        {
            "warmup_steps": 10,
            "total_steps": 100,
            "decay": "wsd",
            "cooldown_steps": 30,
            "cooldown_shape": "cosine",
            "min_lr_ratio": 0.1,
            "warmup_start_ratio": 0.1,
        },
        False,
        True,
    ),
    ({"warmup_steps": 30, "total_steps": 30, "decay": "linear"}, False, False),
]


def _run_snippet(
    code: str, steps: int, group_lrs: tuple[float, ...] = (PEAK,)
) -> list[list[float]]:
    """Execute a snippet with an ``optimizer`` in scope; the LRs of every group at each step."""
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in group_lrs]
    optimizer = torch.optim.SGD(
        [{"params": [p], "lr": lr} for p, lr in zip(params, group_lrs)], lr=max(group_lrs)
    )
    if "from transformers import" in code:
        pytest.importorskip("transformers")
    namespace: dict = {"optimizer": optimizer}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's SequentialLR / step-order warnings
        exec(compile(code, "<snippet>", "exec"), namespace)
        scheduler = namespace["scheduler"]
        lrs = []
        for _ in range(steps):
            lrs.append([g["lr"] for g in optimizer.param_groups])
            optimizer.step()
            scheduler.step()
    return lrs


def _expected(recipe: Recipe, steps: int) -> list[float]:
    return [recipe.lr_at(s, 100 if recipe.total_steps is None else None) for s in range(steps)]


def _assert_close(got: list[float], expected: list[float]) -> None:
    for step, (a, b) in enumerate(zip(got, expected)):
        assert math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-15), (step, a, b)


@pytest.mark.parametrize("target", ["torch", "transformers", "autowarm"])
@pytest.mark.parametrize(("options", "native", "hf_exact"), CASES)
def test_snippet_reproduces_recipe_at_every_step(
    options: dict, native: bool, hf_exact: bool, target: str
) -> None:
    recipe = Recipe(PEAK, **options)
    steps = (recipe.total_steps or 100) + 1  # steps 0 .. total_steps
    code = recipe.render(target)
    got = [lrs[0] for lrs in _run_snippet(code, steps)]
    _assert_close(got, _expected(recipe, steps))

    if target == "torch":
        assert "import autowarm" not in code  # self-contained
        assert ("LambdaLR" not in code) == native, code
    if target == "transformers":
        assert ("no exact equivalent" not in code) == hf_exact, code
        assert ("\nscheduler = get_scheduler(" in code) == hf_exact, code
        assert "lr_scheduler_type=" in code  # always shows the Trainer's closest fields


@pytest.mark.parametrize("target", ["torch", "transformers"])
def test_a_snippet_pasted_into_the_scripts_main_leaves_its_names_alone(target: str) -> None:
    # run_clm_no_trainer builds its scheduler inside main(), after a math.ceil: the snippet's
    # `import math` there made math local to all of main() (UnboundLocalError)
    recipe = Recipe(PEAK, 10, 60, warmup_start_ratio=0.1)
    body = "\n".join("    " + line for line in recipe.render(target).splitlines())
    source = (
        "import math\nimport torch\n\n\ndef main():\n"
        "    steps = math.ceil(59.5)\n"
        "    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)\n"
        f"{body}\n"
        "    return steps, [scheduler.get_last_lr()[0] for _ in range(3) if not scheduler.step()]\n"
    )
    namespace: dict = {}
    exec(compile(source, "train.py", "exec"), namespace)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scheduler.step() before optimizer.step()
        steps, lrs = namespace["main"]()
    assert steps == 60
    _assert_close(lrs, [recipe.lr_at(s) / PEAK for s in (1, 2, 3)])  # the optimizer had lr=1


@pytest.mark.parametrize("target", ["torch", "transformers", "autowarm"])
def test_snippets_keep_param_group_ratios(target: str) -> None:
    recipe = Recipe(PEAK, 10, 60, decay="linear", min_lr_ratio=0.2)
    lrs = _run_snippet(recipe.render(target), 61, group_lrs=(PEAK, PEAK / 10))
    for step, (big, small) in enumerate(lrs):
        assert math.isclose(big, recipe.lr_at(step), rel_tol=1e-6)
        assert math.isclose(small, recipe.lr_at(step) / 10, rel_tol=1e-6)


LIGHTNING_CASES = [
    Recipe(PEAK, 10, 60),  # cosine
    Recipe(PEAK, 10, 60, decay="linear", warmup_start_ratio=0.1, min_lr_ratio=0.2),  # a floor
    Recipe(PEAK, 0, 30, decay="constant"),
    # probed on a script whose optimizer is SGD: the snippet builds SGD, not AdamW
    Recipe(PEAK, 10, 60, evidence={"script_optimizer": "torch.optim.SGD"}),
]


@pytest.mark.parametrize(
    "recipe", LIGHTNING_CASES, ids=["cosine", "linear-floor", "constant", "script-sgd"]
)
def test_lightning_snippet_gives_the_recipes_lr_at_every_step_of_a_real_trainer(
    recipe: Recipe, tmp_path
) -> None:
    # the schedule runs across epochs (10 batches each): Lightning steps a scheduler once
    # per epoch unless configure_optimizers says "interval": "step"
    pl = pytest.importorskip("lightning.pytorch")
    namespace: dict = {}
    exec(compile(recipe.render("lightning"), "<snippet>", "exec"), namespace)
    seen: list[float] = []

    class Module(namespace["LitModel"]):  # the user's module around the pasted method
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(2, 1)

        def training_step(self, batch, _):
            seen.append(self.trainer.optimizers[0].param_groups[0]["lr"])
            return self.layer(batch[0]).pow(2).mean()

    data = torch.utils.data.TensorDataset(torch.randn(20, 2))
    trainer = pl.Trainer(
        max_steps=recipe.total_steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(Module(), torch.utils.data.DataLoader(data, batch_size=2))
    built = (recipe.evidence or {}).get("script_optimizer", "torch.optim.AdamW")
    assert type(trainer.optimizers[0]).__name__ == built.rpartition(".")[2]
    assert recipe.total_steps is not None and len(seen) == recipe.total_steps
    _assert_close(seen, _expected(recipe, recipe.total_steps))


def test_autowarm_snippet_loads_the_file(tmp_path) -> None:
    recipe = Recipe(PEAK, 5, 40, decay="wsd", min_lr_ratio=0.1)
    path = tmp_path / "recipe.json"
    recipe.save(path)
    code = recipe.render("autowarm", path=path)
    assert f'recipe = autowarm.Recipe.load("{path}")' in code
    assert "recipe.scheduler(optimizer, total_steps=40)" in code
    got = [lrs[0] for lrs in _run_snippet(code, 41)]
    _assert_close(got, _expected(recipe, 41))


def test_transformers_exact_snippet_names_the_trainer_fields() -> None:
    code = Recipe(PEAK, 20, 100, warmup_start_ratio=0.0, min_lr_ratio=0.1).render("transformers")
    assert 'lr_scheduler_type="cosine_with_min_lr"' in code
    assert 'lr_scheduler_kwargs={"min_lr_rate": 0.1}' in code
    assert "warmup_steps=20" in code and "max_steps=100" in code


def test_transformers_inexact_snippet_says_why() -> None:
    code = Recipe(PEAK, 20, 100).render("transformers")
    assert "transformers has no exact equivalent: its warmup starts at LR 0" in code
    assert "# scheduler = get_scheduler(" in code  # closest, commented out


@pytest.mark.parametrize(
    ("built", "line", "comment"),
    [
        ("torch.optim.SGD", "optimizer = torch.optim.SGD(self.parameters(), lr=",
         "# your optimizer:"),
        ("__main__.Lion", "optimizer = Lion(self.parameters(), lr=", "# your optimizer:"),
        ("bitsandbytes.optim.adamw.AdamW8bit", "optimizer = AdamW8bit(self.parameters(), lr=",
         "# your optimizer (from bitsandbytes.optim.adamw): keep its other arguments"),
    ],
)  # fmt: skip
def test_snippets_build_the_optimizer_the_probed_script_built(
    built: str, line: str, comment: str
) -> None:
    # an SGD script handed "AdamW(..., lr=<an SGD's peak LR>)" would train nothing like its probes
    recipe = Recipe(PEAK, 10, 60, evidence={"script_optimizer": built})
    lightning = recipe.render("lightning")
    assert (
        line in lightning
        and comment in lightning
        and "AdamW(" not in lightning.replace("AdamW8bit(", "")
    )
    name = built.rpartition(".")[2]
    assert f"# {name}(model.parameters()" in (recipe.render("torch"))


def test_render_errors() -> None:
    with pytest.raises(AutowarmError, match="unknown render target 'jax'; choose one of: torch"):
        Recipe(PEAK, 10, 100).render("jax")
    with pytest.raises(AutowarmError, match="total_steps is required for decay 'cosine'"):
        Recipe(PEAK, 10).render("torch")


def test_snippets_are_ruff_clean(tmp_path) -> None:
    # pasted code should not fail the user's linter: ruff check (pyflakes, pycodestyle,
    # isort) and ruff format, at the common line length 100
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed")
    for i, (options, _, _) in enumerate(CASES):
        for target in ("torch", "transformers", "lightning", "autowarm"):
            code = Recipe(PEAK, **options).render(target)
            (tmp_path / f"case{i}_{target}.py").write_text(code)
    for i, built in enumerate(("torch.optim.SGD", "bitsandbytes.optim.adamw.AdamW8bit")):
        code = Recipe(PEAK, 10, 60, evidence={"script_optimizer": built}).render("lightning")
        (tmp_path / f"built{i}_lightning.py").write_text(code)
    config = ["--config", "line-length=100", "--no-cache"]
    check = [ruff, "check", *config, "--select", "E,F,W,I", "--ignore", "F821", str(tmp_path)]
    out = subprocess.run(check, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout
    out = subprocess.run(
        [ruff, "format", "--check", *config, str(tmp_path)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout


@st.composite
def recipes(draw: st.DrawFn) -> Recipe:
    total = draw(st.integers(1, 150))
    warmup = draw(st.integers(0, total))
    warmup_shape = draw(st.sampled_from(WARMUP_SHAPES))
    # HF's conventions (start 0, or the floor for WSD) are drawn often: they take the exact paths
    floor = draw(st.sampled_from([0.0, 0.1, draw(st.floats(0.0, 1.0))]))
    start = draw(st.sampled_from([None, 0.0, floor, draw(st.floats(0.0, 1.0))]))
    if warmup_shape == "exponential" and start == 0.0:
        start = None
    return Recipe(
        draw(st.sampled_from([1e-4, 3e-4, 1.0])),
        warmup,
        total,
        warmup=warmup_shape,
        decay=draw(st.sampled_from(DECAY_SHAPES)),
        min_lr_ratio=floor,
        warmup_start_ratio=start,
        power=draw(st.sampled_from([1.0, 0.5, 2.0])),
        num_cycles=draw(st.integers(1, 4)),
        timescale=draw(st.one_of(st.none(), st.integers(1, 50))),
        cooldown_steps=draw(st.one_of(st.floats(0.05, 1.0), st.integers(0, total - warmup))),
        cooldown_shape=draw(st.sampled_from(COOLDOWN_SHAPES)),
    )


@settings(max_examples=150, deadline=None)
@given(recipes(), st.sampled_from(["torch", "transformers"]))
def test_property_any_recipe_renders_exactly(recipe: Recipe, target: str) -> None:
    # whatever the options, the pasted code (torch's own schedulers, transformers'
    # get_scheduler where it claims to be exact, else the inlined LambdaLR) gives the
    # recipe's LR at every step of the run
    assert recipe.total_steps is not None
    steps = recipe.total_steps + 1
    got = [lrs[0] for lrs in _run_snippet(recipe.render(target), steps, (recipe.peak_lr,))]
    _assert_close(got, _expected(recipe, steps))


def test_loop_code_sets_the_recipes_lr_where_a_manual_loop_sets_its_own() -> None:
    import torch

    recipe = Recipe(3e-3, 10, 100, min_lr_ratio=0.1)
    code = recipe.render("loop")
    statements = [line for line in code.splitlines() if not line.startswith("#")]
    assert not any("scheduler" in line for line in statements)  # nothing to step: the loop does
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.ones(1))], lr=1.0)
    for iter_num in (0, 5, 10, 60, 99):
        exec(code, {"optimizer": opt, "iter_num": iter_num})
        assert opt.param_groups[0]["lr"] == pytest.approx(recipe.lr_at(iter_num))
