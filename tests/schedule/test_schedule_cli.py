from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from autowarm import Recipe
from autowarm._cli import main
from autowarm.schedule._chart import render_chart, render_curve, resample
from autowarm.schedule._view import landmarks, show_schedule

EXAMPLE = Path(__file__).resolve().parents[2] / "recipes" / "example.json"
GOOD = {"format": 1, "peak_lr": 1e-3, "warmup_steps": 10, "total_steps": 100}


def _write(tmp_path: Path, data: dict | str) -> Path:
    path = tmp_path / "recipe.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def _console() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, width=80, color_system=None), buffer


# ----------------------------------------------------------------------------- happy paths
def test_example_recipe_prints_numbers_table_and_plot(capsys) -> None:
    assert main(["schedule", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    recipe = Recipe.load(EXAMPLE)
    assert "peak LR   0.0003" in out
    assert "  1) linear warmup over 200 steps from 0.498% of the peak\n" in out
    assert "  2) cosine decay to 10% of the peak at step 5000\n" in out
    # landmark rows: step, LR, multiplier
    for step, what in [(0, "first step"), (200, "peak (end of warmup)"), (2500, "50% of the run")]:
        row = next(line for line in out.splitlines() if line.strip().startswith(f"{step} "))
        assert f"{recipe.lr_at(step):.4g}" in row and what in row
    assert "5000" in out and "end (floor)" in out
    assert "█" in out and "┤" in out  # the terminal chart
    assert all(len(line) <= 80 for line in out.splitlines())


def test_total_steps_override_and_code(capsys) -> None:
    assert main(["schedule", str(EXAMPLE), "--total-steps", "1000", "--code", "torch"]) == 0
    out = capsys.readouterr().out
    assert "at step 1000" in out and "5000" not in out
    assert "scheduler = LambdaLR(optimizer, lr_lambda)" in out
    # code is printed unwrapped, so it can be pasted: it runs
    code = out[out.index("# autowarm recipe:") :]
    import torch

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=3e-4)
    namespace = {"optimizer": optimizer}
    exec(code, namespace)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(Recipe.load(EXAMPLE).lr_at(0))


def test_autowarm_code_keeps_the_total_steps_override(capsys) -> None:
    assert main(["schedule", str(EXAMPLE), "--total-steps", "800", "--code", "autowarm"]) == 0
    out = capsys.readouterr().out
    assert f'recipe = autowarm.Recipe.load("{EXAMPLE}")' in out
    assert "scheduler = recipe.scheduler(optimizer, total_steps=800)" in out


def test_show_schedule_with_injected_console() -> None:
    console, buffer = _console()
    show_schedule(Recipe(1e-3, 0, decay="inverse_sqrt"), console=console)
    out = buffer.getvalue()
    assert "total     not set" in out
    assert "end of the plot" in out  # open-ended shape: drawn over a default horizon


def test_evidence_summary_shows_short_scalars_only() -> None:
    console, buffer = _console()
    evidence = {"method": "autowarm probe", "trials": 24, "boundary_lr": 0.0123456, "x": [1]}
    show_schedule(Recipe(1e-3, 10, 100, evidence={**evidence, "rule": "r" * 100}), console=console)
    line = next(s for s in buffer.getvalue().splitlines() if s.strip().startswith("evidence"))
    assert line.split(None, 1)[1] == "method=autowarm probe, trials=24, boundary_lr=0.01235"


def test_png_is_written_atomically(tmp_path, capsys) -> None:
    png = tmp_path / "lr.png"
    assert main(["schedule", str(EXAMPLE), "--png", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lr.png"]
    assert f"saved plot to {png}" in capsys.readouterr().out


def test_python_dash_m_schedule_example() -> None:
    # the README's first command
    out = subprocess.run(
        [sys.executable, "-m", "autowarm", "schedule", str(EXAMPLE)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert "LR schedule" in out.stdout


def test_help_lists_options(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["schedule", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "--total-steps" in out and "--png" in out and "--code" in out


# ----------------------------------------------------------------------------- bad input
BAD = [
    ({**GOOD, "warmup_steps": -5}, "warmup_steps must be a non-negative integer but got -5."),
    ({**GOOD, "warmup_steps": 2.5}, "warmup_steps must be a non-negative integer but got 2.5."),
    ({**GOOD, "warmup_steps": 500}, "warmup_steps must be <= total_steps but got 500 > 100."),
    ({**GOOD, "decay": "cosin"}, "unknown decay 'cosin'; choose one of: cosine, linear,"),
    ({**GOOD, "warmup": "step"}, "unknown warmup 'step'; choose one of: linear,"),
    ({**GOOD, "min_lr_ratio": 1.5}, "min_lr_ratio must be in [0, 1] but got 1.5."),
    ({**GOOD, "min_lr_ratio": -0.5}, "min_lr_ratio must be in [0, 1] but got -0.5."),
    ({**GOOD, "peak_lr": 0}, "peak_lr must be a finite number > 0 but got 0."),
    ({**GOOD, "peak_lr": -0.1}, "peak_lr must be a finite number > 0 but got -0.1."),
    (json.dumps(GOOD).replace("0.001", "NaN"), "peak_lr must be a finite number > 0 but got nan."),
    (
        json.dumps(GOOD).replace("0.001", "Infinity"),
        "peak_lr must be a finite number > 0 but got inf.",
    ),
    ('{"format": 1, "peak_lr": 0.001,', "is not valid JSON"),
    ({**GOOD, "format": 7}, "unknown recipe format 7; this autowarm reads format 1"),
    ({k: v for k, v in GOOD.items() if k != "format"}, 'has no "format" field'),
    (
        {k: v for k, v in GOOD.items() if k != "total_steps"},
        "total_steps is required for decay 'cosine'",
    ),
]


@pytest.mark.parametrize(("data", "message"), BAD)
def test_bad_recipe_is_one_line_exit_2_nothing_written(
    tmp_path, capsys, data: dict | str, message: str
) -> None:
    path = _write(tmp_path, data)
    png = tmp_path / "lr.png"
    assert main(["schedule", str(path), "--png", str(png)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("autowarm: error: ")
    assert message in captured.err
    assert captured.err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["recipe.json"]


def test_missing_recipe_path(tmp_path, capsys) -> None:
    assert main(["schedule", str(tmp_path / "nope.json")]) == 2
    err = capsys.readouterr().err
    assert "nope.json' does not exist." in err and err.count("\n") == 1


def test_missing_total_steps_suggests_the_flag(tmp_path, capsys) -> None:
    path = _write(tmp_path, {k: v for k, v in GOOD.items() if k != "total_steps"})
    assert main(["schedule", str(path)]) == 2
    assert "pass --total-steps N" in capsys.readouterr().err
    assert main(["schedule", str(path), "--total-steps", "400"]) == 0


@pytest.mark.parametrize("value", ["0", "-3", "1.5", "many"])
def test_bad_total_steps_flag(capsys, value: str) -> None:
    # a usage error: main() returns argparse's exit code 2 (it raises nothing)
    assert main(["schedule", str(EXAMPLE), "--total-steps", value]) == 2
    assert "--total-steps: must be a positive integer" in capsys.readouterr().err


def test_total_steps_flag_below_warmup(capsys) -> None:
    assert main(["schedule", str(EXAMPLE), "--total-steps", "100"]) == 2
    err = capsys.readouterr().err
    assert "--total-steps must be >= the recipe's warmup_steps but got 100 < 200." in err


def test_png_into_missing_folder_fails_before_printing(tmp_path, capsys) -> None:
    assert main(["schedule", str(EXAMPLE), "--png", str(tmp_path / "no" / "lr.png")]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "does not exist" in captured.err


def test_png_without_matplotlib(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)
    png = tmp_path / "lr.png"
    assert main(["schedule", str(EXAMPLE), "--png", str(png)]) == 2
    captured = capsys.readouterr()
    assert "--png needs matplotlib" in captured.err and "autowarm[plot]" in captured.err
    assert captured.out == "" and not png.exists()


# ----------------------------------------------------------------------------- landmarks, plot
def test_landmarks_include_phase_boundaries() -> None:
    schedule = Recipe(1e-3, 10, 100, decay="wsd", cooldown_steps=30).schedule()
    marks = dict(landmarks(schedule, 100))
    assert marks[0] == "first step"
    assert marks[9] == "last warmup step"
    assert marks[10] == "peak (end of warmup)"
    assert marks[70] == "cooldown starts"
    assert marks[50] == "50% of the run"
    assert marks[100] == "end (floor)"


def test_render_curve_heights_follow_values() -> None:
    lines = render_curve([0.0, 0.25, 0.5, 1.0], width=10, height=2).split("\n")
    assert lines == ["   █", " ▄██"]  # 2 rows x 8 eighths: 0, 4, 8, 16 eighths


def test_render_curve_small_values_stay_visible_and_nan_is_marked() -> None:
    lines = render_curve([1e-9, 1.0, float("nan")], width=3, height=1).split("\n")
    assert lines == ["▁█×"]


def test_render_curve_resamples_to_width() -> None:
    values = list(range(1000))
    assert resample(values, 5) == [0.0, 250.0, 500.0, 749.0, 999.0]
    lines = render_curve(values, width=40, height=4).split("\n")
    assert len(lines) == 4 and all(len(line) == 40 for line in lines)
    with pytest.raises(ValueError, match="width and height must be >= 1"):
        render_curve(values, width=0)


def test_render_chart_labels() -> None:
    text = render_chart([0.0, 1e-3, 5e-4], width=3, height=2)
    lines = text.split("\n")
    assert lines[0].startswith("1.00e-03 ┤")
    assert lines[1].startswith("0.00e+00 ┤")
    assert lines[-1].split() == ["0", "2"]


def test_case21_schedule_json_is_one_document_for_the_run_length(capsys) -> None:
    assert (
        main(["schedule", str(EXAMPLE), "--json", "--total-steps", "8000", "--code", "torch"]) == 0
    )
    out = capsys.readouterr().out
    doc = json.loads(out)  # nothing else on stdout
    assert doc["recipe"]["total_steps"] == 8000 and doc["png"] is None
    assert "LambdaLR" in doc["code"]
    marks = {m["what"]: m for m in doc["landmarks"]}
    peak = marks["peak (end of warmup)"]
    assert peak["step"] == doc["recipe"]["warmup_steps"]
    assert peak["lr"] == pytest.approx(doc["recipe"]["peak_lr"])
