"""``autowarm probe`` / ``autowarm show`` end to end: the real CLI in a subprocess, the real
runner, a tiny real training script (tests/scripts_probe/train_tiny.py)."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from probe_cli import SCRIPT, start_probe

from autowarm import Recipe

FAST = ["--steps", "30", "--trials", "4", "--seed", "0"]


def autowarm(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "100"}
    return subprocess.run(
        [sys.executable, "-m", "autowarm", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("autowarm: error:")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_stable_script_with_two_jobs_json_and_show(tmp_path: Path) -> None:
    proc = autowarm(
        "probe", "--json", "--jobs", "2", "--total-steps", "1000", "--png", "map.png", *FAST,
        "--epochs", "3", SCRIPT, "--opt", "adam", "--lr", "0.003", "--steps", "100", "--cosine",
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)  # exactly one JSON document, nothing else on stdout
    assert set(doc) == {"recipe", "trials", "cost", "study", "storage", "error"}
    assert doc["error"] is None
    assert len(doc["trials"]) == 4
    ok = {"stable", "spike", "diverged", "stalled", "pruned"}
    assert {t["status"] for t in doc["trials"]} <= ok
    assert doc["cost"]["optimizer_steps"] == sum(t["steps"] for t in doc["trials"])
    assert doc["storage"] == "sqlite:///.autowarm/autowarm.db"
    recipe = doc["recipe"]
    assert recipe["total_steps"] == 1000 and recipe["decay"] == "cosine"
    assert recipe["evidence"]["data_passes"] == 3  # --epochs: a loop that draws no DataLoader
    # the script's own scheduler, named for the report: the recipe replaces it
    scheduler = recipe["evidence"]["script_scheduler"]
    assert scheduler["text"] == "CosineAnnealingLR, from torch.optim.lr_scheduler"
    assert recipe["evidence"]["script_optimizer"] == "torch.optim.Adam"  # for the code to paste
    lo, hi = recipe["evidence"]["lr_range"]
    assert lo == pytest.approx(0.003 / 10) and hi == pytest.approx(0.003 * 50)
    assert json.loads((tmp_path / "autowarm.json").read_text())["peak_lr"] == recipe["peak_lr"]
    assert (tmp_path / ".autowarm" / "autowarm.db").is_file()
    assert (tmp_path / "map.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Stability map" in proc.stderr and "4/4" in proc.stderr

    shown = autowarm("show", "--json", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert shown.stderr == ""  # case 15: --json is the document alone, no report on stderr
    again = json.loads(shown.stdout)
    assert again["study"] == doc["study"]
    assert again["recipe"]["peak_lr"] == recipe["peak_lr"]
    human = autowarm("show", cwd=tmp_path)
    assert "Recommended schedule" in human.stdout and "peak LR" in human.stdout
    longer = json.loads(autowarm("show", "--json", "--total-steps", "8000", cwd=tmp_path).stdout)
    assert longer["recipe"]["total_steps"] == 8000
    assert longer["recipe"]["evidence"]["data_passes"] == 24  # 8x the run, 8x the passes
    # a longer run: the same probe evidence, a lower peak LR (the horizon factor)
    assert longer["recipe"]["peak_lr"] < recipe["peak_lr"]
    # every path that stretches the recipe file to 8000 steps gives show's schedule
    sched = autowarm("schedule", "autowarm.json", "--json", "--total-steps", "8000", cwd=tmp_path)
    stretched = json.loads(sched.stdout)["recipe"]
    for key in ("peak_lr", "warmup_steps", "total_steps"):
        assert stretched[key] == longer["recipe"][key]
    from_file = Recipe.load(tmp_path / "autowarm.json")
    shown_8000 = Recipe.from_dict(longer["recipe"])
    for step in (0, 1, shown_8000.warmup_steps, 5000, 7999):
        assert from_file.lr_at(step, 8000) == pytest.approx(shown_8000.lr_at(step))


def test_nan_at_high_lr_is_reported_and_avoided(tmp_path: Path) -> None:
    proc = autowarm(
        "probe", "--json", "--lr-range", "0.003", "3", "--steps", "40", "--trials", "6",
        "--seed", "3", "--storage", "journal:probe.log", SCRIPT, "--steps", "100",
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["storage"] == "journal:probe.log" and (tmp_path / "probe.log").is_file()
    bad = [t for t in doc["trials"] if t["status"] in ("diverged", "nonfinite", "stalled")]
    assert bad, doc["trials"]
    assert all(t["steps"] < 40 for t in bad)  # stopped early by the monitor
    ev = doc["recipe"]["evidence"]
    assert ev["boundary_lr"] is None or doc["recipe"]["peak_lr"] <= ev["boundary_lr"] / 2
    assert min(t["peak_lr"] for t in bad) >= ev["lowest_unstable"]["peak_lr"]


def test_a_script_scored_by_score_with_is_recommended_by_its_score(tmp_path: Path) -> None:
    proc = autowarm(
        "probe", "--json", "--steps", "30", "--trials", "6", "--seed", "1",
        SCRIPT, "--opt", "adam", "--lr", "0.003", "--score-at", "0.01",
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    finished = [t for t in doc["trials"] if t["status"] in ("stable", "spike")]
    assert finished
    for t in finished:  # the script's own value, not the training loss
        assert t["score"] == pytest.approx(5 + abs(math.log(t["peak_lr"] / 0.01)), rel=1e-6)
    assert doc["recipe"]["evidence"]["scored_by"] == "score_with"
    assert "score_with()" in proc.stderr  # the report says what the scores are


def test_a_script_whose_best_lr_lies_above_the_default_range_gets_it_widened(
    tmp_path: Path,
) -> None:
    # the script's own LR 1e-4 puts the default range at [1e-5, 5e-3]; its score is best at
    # 0.05, so the best trials sit at the top of that range and the search widens it
    proc = autowarm(
        "probe", "--json", "--steps", "30", "--trials", "12", "--seed", "0",
        SCRIPT, "--opt", "adam", "--lr", "1e-4", "--score-at", "0.05",
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    ev = doc["recipe"]["evidence"]
    assert ev["lr_range_widened"] and ev["lr_range_widened"][0]["end"] == "top"
    assert ev["lr_range"][1] == pytest.approx(ev["lr_range_widened"][-1]["to"][1])
    assert ev["lr_range"][1] >= 5e-2
    assert len(doc["trials"]) == 12  # within the budget
    assert max(t["peak_lr"] for t in doc["trials"]) > 5e-3  # probed past the old range
    assert ev["best_peak_lr"] > 5e-3
    # the report says so as it happens
    assert "widened the LR range to [1e-05, 0.05]" in " ".join(proc.stderr.split())
    shown = json.loads(autowarm("show", "--json", cwd=tmp_path).stdout)
    assert shown["recipe"]["evidence"]["lr_range"] == ev["lr_range"]


def test_a_crashing_script_stops_after_the_first_trial(tmp_path: Path) -> None:
    proc = autowarm("probe", *FAST, SCRIPT, "--crash-at", "3", cwd=tmp_path)
    line = one_error_line(proc)
    assert "the script failed on the first trial" in line
    assert "deliberate crash at step 3" in line
    assert "run it by hand:" in line and "train_tiny.py --crash-at 3" in line
    assert not (tmp_path / "autowarm.json").exists()


@pytest.mark.parametrize(
    ("script_args", "message"),
    [
        (["--no-wrap"], "never wrapped an optimizer"),
        # issue 12: wrapped but report() never called: one line after the first trial
        (["--no-report"], "never reports its loss; add `optimizer.report(loss)`"),
        (["--steps", "10"], "ended before the probe length"),
        # imagenet's --evaluate: a shorter probe cannot help a script that never trains
        (["--steps", "0"], "ended before its first step; check that these arguments train"),
        (["--bogus"], "the script failed on the first trial"),
    ],
)
def test_a_script_that_cannot_be_probed(tmp_path: Path, script_args: list[str], message: str):
    proc = autowarm("probe", *FAST, "--lr-range", "0.01", "0.1", SCRIPT, *script_args, cwd=tmp_path)
    line = one_error_line(proc)
    assert message in line
    # issue 14 case 13: the fix is stated once, not by the runner's reason and the search too
    assert line.count("autowarm.wrap(optimizer)") <= 1 and line.count("lower --steps") <= 1


def test_a_script_that_trains_in_a_process_it_spawns_stops_with_the_fix_and_writes_nothing(
    tmp_path: Path,
) -> None:
    # pytorch/examples' imagenet --multiprocessing-distributed: its spawned worker wrote over
    # the user's checkpoints, and the search blamed the script for not wrapping an optimizer
    spawns = str(Path(__file__).parent / "scripts_runner" / "spawns_workers.py")
    (tmp_path / "user.txt").write_text("the user's")
    proc = autowarm("probe", *FAST, "--lr-range", "0.01", "0.1", spawns, cwd=tmp_path)
    line = one_error_line(proc)
    assert "the script trains in a process it starts itself" in line
    assert "autowarm probe --nproc-per-node N" in line and "never wrapped" not in line
    assert (tmp_path / "user.txt").read_text() == "the user's"


def test_a_script_that_resumes_from_a_checkpoint_stops_with_one_line_naming_it(
    tmp_path: Path,
) -> None:
    train = str(Path(__file__).parent / "scripts_runner" / "train.py")
    resume = ["--adam", "--resume", "ckpt.pt", "--save", "ckpt.pt"]
    subprocess.run([sys.executable, train, *resume], cwd=tmp_path, check=True, capture_output=True)
    saved = (tmp_path / "ckpt.pt").read_bytes()
    line = one_error_line(autowarm("probe", *FAST, train, *resume, cwd=tmp_path))
    assert "the script resumed a run before the probe's first step" in line
    assert "100 steps taken, after torch.load of ckpt.pt" in line
    assert (tmp_path / "ckpt.pt").read_bytes() == saved
    assert not (tmp_path / "autowarm.json").exists()


def test_a_hanging_trial_times_out_and_the_search_goes_on(tmp_path: Path) -> None:
    proc = autowarm(
        "probe", "--json", "--trial-timeout", "4", "--steps", "30", "--trials", "5",
        "--seed", "0", SCRIPT, "--steps", "100", "--lr", "0.002", "--hang-above", "0.004",
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode in (0, 1), proc.stderr
    doc = json.loads(proc.stdout)
    statuses = [t["status"] for t in doc["trials"]]
    assert "timeout" in statuses, statuses
    assert statuses[0] == "stable"  # the first trial (the script's own LR) does not hang
    assert len(statuses) == 5  # the search went on after the timeout


def test_ctrl_c_keeps_finished_trials_and_the_same_command_resumes(tmp_path: Path) -> None:
    args = [
        "probe", "--steps", "40", "--trials", "5", "--seed", "0", "--lr-range", "0.003", "0.03",
        SCRIPT, "--steps", "100", "--step-sleep", "0.02",
    ]  # fmt: skip
    p = start_probe(args, cwd=tmp_path)
    # wait until two trials have finished, then Ctrl-C in the middle of the third
    assert p.stderr is not None
    seen = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        line = p.stderr.readline()
        seen.append(line)
        if line.lstrip().startswith("2/5"):
            break
    time.sleep(0.3)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, "".join(seen) + err
    assert "interrupted" in out + err and "resume" in out + err
    shown = autowarm("show", "--json", cwd=tmp_path)
    before = {t["number"]: t for t in json.loads(shown.stdout)["trials"]}
    finished = {n: t for n, t in before.items() if t["status"] != "interrupted"}
    assert len(finished) >= 2

    again = autowarm("probe", "--json", *args[1:], cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    after = json.loads(again.stdout)["trials"]
    complete = [t for t in after if t["status"] != "interrupted"]
    assert len(complete) == 5
    for n, t in finished.items():  # finished trials were kept as they were, not redone
        assert next(a for a in after if a["number"] == n) == t
    # the interrupted trial ran again with the same parameters
    for t in before.values():
        if t["status"] == "interrupted":
            assert any(
                (a["peak_lr"], a["warmup_steps"]) == (t["peak_lr"], t["warmup_steps"])
                for a in complete
            )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.py"], "script 'missing.py' does not exist"),
        (["--lr-range", "0.1", "0.01", SCRIPT], "--lr-range MIN must be < MAX"),
        (["--lr-range", "-1", "0.01", SCRIPT], "--lr-range must be positive"),
        (["--steps", "50", "--max-warmup", "60", SCRIPT], "--max-warmup must be < --steps"),
        (["--decay", "cosinus", SCRIPT], "--decay must be one of cosine, linear"),
        (["--out", "nowhere/r.json", SCRIPT], "folder 'nowhere' does not exist"),
        (["--storage", "sqlite:///nowhere/a.db", SCRIPT], "folder 'nowhere' does not exist"),
        (["--storage", "mongodb://x", SCRIPT], "cannot be opened"),
        (
            ["--storage", "postgresql://bob:hunter2@127.0.0.1:9/db", SCRIPT],
            "postgresql://bob:***@127.0.0.1:9/db",
        ),
        (["bad.py"], "has a syntax error at line 1"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(
    tmp_path: Path, args: list[str], message: str
) -> None:
    (tmp_path / "bad.py").write_text("def broken(:\n    pass\n")
    proc = autowarm("probe", *args, cwd=tmp_path, timeout=60)
    line = one_error_line(proc)
    assert message in line
    assert "hunter2" not in proc.stderr + proc.stdout
    assert proc.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.py"]


def test_show_without_results_is_a_clear_error(tmp_path: Path) -> None:
    assert "no probe results" in one_error_line(autowarm("show", cwd=tmp_path))


# -- issue 14: bad input and misleading messages (in-process where nothing runs) ------------------
def _main(argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    from autowarm._cli import main

    monkeypatch.chdir(tmp_path)
    return main(argv)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        # case 16: an infinite or negative LR bound (argparse took "-1e-3" for an option)
        (["--lr-range", "1e-4", "inf"], "--lr-range must be positive finite numbers"),
        (["--lr-range", "-1e-3", "1e-1"], "--lr-range must be positive finite numbers"),
        # case 17: margins that only fail after the search, or recommend LR 1e-309
        (["--margin", "inf"], "--margin must be in [1, 100] but got inf."),
        (["--margin", "1e308"], "--margin must be in [1, 100] but got 1e+308."),
        # case 19: a probe longer than the run
        (["--total-steps", "20", "--steps", "30"], "--steps must be <= --total-steps"),
    ],
)
def test_case16_17_19_bad_numbers_are_one_line_before_anything_is_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, argv: list[str], message: str
) -> None:
    assert _main(["probe", *argv, SCRIPT], tmp_path, monkeypatch) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert list(tmp_path.iterdir()) == []  # no .autowarm, no recipe


def test_case19_show_total_steps_zero_is_a_usage_error(tmp_path, monkeypatch, capsys) -> None:
    assert _main(["show", "--total-steps", "0"], tmp_path, monkeypatch) == 2
    assert "--total-steps: must be a positive integer but got 0" in capsys.readouterr().err


def test_case13_a_directory_as_the_script_is_not_a_file(tmp_path, monkeypatch, capsys) -> None:
    (tmp_path / "train").mkdir()
    assert _main(["probe", "train"], tmp_path, monkeypatch) == 2
    assert "script 'train' is not a file" in capsys.readouterr().err


def test_case14_png_without_matplotlib_fails_before_the_search(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    assert _main(["probe", "--png", "map.png", SCRIPT], tmp_path, monkeypatch) == 2
    err = capsys.readouterr().err
    assert "--png needs matplotlib" in err and "pip install 'autowarm[plot]'" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "argv",
    [["probe", "--json", "missing.py"], ["probe", "--json", "--trials", "x", SCRIPT]],
)
def test_case15_probe_json_failure_is_one_json_document(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, argv: list[str]
) -> None:
    assert _main(argv, tmp_path, monkeypatch) == 2
    doc = json.loads(capsys.readouterr().out)  # exactly one document
    assert doc["exit_code"] == 2 and ("missing.py" in doc["error"] or "--trials" in doc["error"])


def test_case12_the_scripts_help_is_not_a_probe(tmp_path, monkeypatch, capsys) -> None:
    assert _main(["probe", SCRIPT, "--help"], tmp_path, monkeypatch) == 2
    assert "for autowarm's options run `autowarm probe --help`" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_case21_show_study_help_does_not_mention_a_script(capsys) -> None:
    from autowarm._cli import main

    with pytest.raises(SystemExit):
        main(["show", "--help"])
    assert "the study with the most recent trial" in " ".join(capsys.readouterr().out.split())


# -- issue 14: cases that need real trials ---------------------------------------------------------
def test_case12_autowarm_options_after_the_script_are_named(tmp_path: Path) -> None:
    # train_tiny.py has no --trials: its argparse fails the first trial
    proc = autowarm("probe", "--steps", "30", SCRIPT, "--trials", "2", cwd=tmp_path)
    line = one_error_line(proc)
    assert "(--trials after" in line and "autowarm's options go before it" in line
    assert line.count("autowarm probe --trials") == 1


def test_arguments_after_a_double_dash_are_the_scripts_own(tmp_path: Path) -> None:
    # argparse drops the `--`; the probe must still take `--trials 2` for the script's
    proc = autowarm("probe", "--steps", "30", SCRIPT, "--", "--trials", "2", cwd=tmp_path)
    line = one_error_line(proc)
    assert "unrecognized arguments: --trials 2" in line
    assert "went to the script" not in line


def test_case6_ctrl_c_while_reading_the_scripts_lr_exits_130(tmp_path: Path) -> None:
    p = start_probe(["probe", "--steps", "30", SCRIPT, "--step-sleep", "5"], cwd=tmp_path)
    assert p.stderr is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "learning rate" not in p.stderr.readline():
        pass
    time.sleep(1.0)  # inside the 2-step calibration run (each step sleeps 5 s)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert "Traceback" not in err and "math domain error" not in err
    assert "interrupted before the first trial" in out + err
    assert not (tmp_path / "autowarm.json").exists()


def test_case8_an_edited_script_is_another_study_or_said_so(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text(Path(SCRIPT).read_text())
    probe = ["probe", "--json", "--steps", "30", "--trials", "2", "--seed", "0", "train.py"]
    first = json.loads(autowarm(*probe, cwd=tmp_path).stdout)
    script.write_text(script.read_text() + "\n# edited after the search\n")
    second = autowarm(*probe, cwd=tmp_path)
    assert json.loads(second.stdout)["study"] != first["study"]  # default name: a new study
    third = autowarm(*probe[:-1], "--study", first["study"], "train.py", cwd=tmp_path)
    assert third.returncode == 0, third.stderr
    note = " ".join(third.stderr.split())
    assert f"train.py changed since the 2 trials of study '{first['study']}'" in note
    assert "pass another --study NAME" in note


def test_case19_a_timeout_says_the_evidence_is_thin(tmp_path: Path) -> None:
    proc = autowarm(
        "probe", "--steps", "30", "--trials", "20", "--timeout", "5", "--seed", "0",
        SCRIPT, "--step-sleep", "0.03", cwd=tmp_path,
    )  # fmt: skip
    said = " ".join((proc.stdout + proc.stderr).split())
    assert "--timeout reached" in said and "of 20 trials: a thin base" in said


# -- issue 13: workers of one study ----------------------------------------------------------------
def test_a_worker_with_another_design_gets_one_line(tmp_path: Path) -> None:
    common = ["probe", "--study", "shared", "--trials", "1", "--seed", "0"]
    first = autowarm(*common, "--steps", "30", SCRIPT, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    line = one_error_line(autowarm(*common, "--steps", "40", SCRIPT, cwd=tmp_path))
    assert "study 'shared' was probed with other settings: --steps 30 (study) vs 40" in line
    assert "another --study NAME" in line


def test_nproc_per_node_reaches_the_config_and_its_check() -> None:
    from autowarm._cli import build_parser
    from autowarm.probe._cli import _config

    args = build_parser().parse_args(["probe", "--nproc-per-node", "2", "train.py", "--lr", "3"])
    config = _config(args)
    assert (config.nproc_per_node, config.args) == (2, ("--lr", "3"))


def test_the_fixed_cost_every_trial_pays_is_measured_and_said_when_large() -> None:
    from autowarm.probe._cli import _cost, _fixed_cost_note
    from autowarm.probe._record import TrialRecord

    slow = [TrialRecord(i, 0.01, 5, "stable", steps=30, wall_s=2.0, train_s=0.5) for i in range(4)]
    cost = _cost(slow, wall_s=8.5)
    assert cost["fixed_s_per_trial"] == 1.5 and cost["fixed_share"] == 0.75
    assert "1.50 s (median) outside its training steps -- 75%" in (_fixed_cost_note(cost) or "")
    quick = [
        TrialRecord(i, 0.01, 5, "stable", steps=30, wall_s=1.0, train_s=0.95) for i in range(4)
    ]
    assert _fixed_cost_note(_cost(quick, wall_s=4.0)) is None
    # most of it torch.compile's: the note says so, and how a probe skips it
    compiled = [
        TrialRecord(i, 0.01, 5, "stable", steps=30, wall_s=8.0, train_s=0.5, compile_s=6.0)
        for i in range(4)
    ]
    note = _fixed_cost_note(_cost(compiled, wall_s=32.0)) or ""
    assert "6.00 s of it in torch.compile: compile only `if not autowarm.probing():`" in note
    assert "evaluation, sampling" not in note
    assert "torch.compile" not in (_fixed_cost_note(cost) or "")
    # a distributed trial: most of it is the launcher's and the ranks' start (imagenet's)
    assert "the launcher and each rank's interpreter" in (_fixed_cost_note(cost, ranks=2) or "")
    assert "launcher" not in (_fixed_cost_note(cost) or "")


def test_the_command_the_report_gives_back_is_how_the_user_runs_the_script() -> None:
    from autowarm.probe._cli import _command
    from autowarm.probe._config import ProbeConfig

    one = _command(ProbeConfig(script="run_clm.py", args=("--output_dir", "out")))
    assert one[1:] == ["run_clm.py", "--output_dir", "out"] and one[0].startswith("python")
    ddp = _command(ProbeConfig(script="train.py", args=("--x",), nproc_per_node=2))
    assert ddp == ["torchrun", "--nproc-per-node=2", "train.py", "--x"]


def test_the_full_runs_passes_over_its_data_come_from_a_callbacks_sizes() -> None:
    from autowarm.probe._cli import passes

    data = {"train_examples": 3000, "examples_per_step": 16}
    assert passes(data, 500) == pytest.approx(500 * 16 / 3000)  # teacher_relu_sgd's 2.7
    assert passes(None, 500) is None  # no callback said (a plain loop)
    assert passes(data, None) is None  # no --total-steps
