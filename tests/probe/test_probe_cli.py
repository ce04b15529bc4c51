"""``autowarm probe`` / ``autowarm show`` end to end: the real CLI in a subprocess, the real
runner, a tiny real training script (tests/scripts_probe/train_tiny.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPT = str(Path(__file__).parent / "scripts_probe" / "train_tiny.py")
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
        SCRIPT, "--opt", "adam", "--lr", "0.003", "--steps", "100",
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)  # exactly one JSON document, nothing else on stdout
    assert set(doc) == {"recipe", "trials", "cost", "study", "storage"}
    assert len(doc["trials"]) == 4
    ok = {"stable", "spike", "diverged", "stalled", "pruned"}
    assert {t["status"] for t in doc["trials"]} <= ok
    assert doc["cost"]["optimizer_steps"] == sum(t["steps"] for t in doc["trials"])
    assert doc["storage"] == "sqlite:///.autowarm/autowarm.db"
    recipe = doc["recipe"]
    assert recipe["total_steps"] == 1000 and recipe["decay"] == "cosine"
    lo, hi = recipe["evidence"]["lr_range"]
    assert lo == pytest.approx(0.003 / 10) and hi == pytest.approx(0.003 * 50)
    assert json.loads((tmp_path / "autowarm.json").read_text())["peak_lr"] == recipe["peak_lr"]
    assert (tmp_path / ".autowarm" / "autowarm.db").is_file()
    assert (tmp_path / "map.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Stability map" in proc.stderr and "4/4" in proc.stderr

    shown = autowarm("show", "--json", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    again = json.loads(shown.stdout)
    assert again["study"] == doc["study"]
    assert again["recipe"]["peak_lr"] == recipe["peak_lr"]
    human = autowarm("show", cwd=tmp_path)
    assert "Recommended schedule" in human.stdout and "peak LR" in human.stdout
    longer = json.loads(autowarm("show", "--json", "--total-steps", "8000", cwd=tmp_path).stdout)
    assert longer["recipe"]["total_steps"] == 8000
    # a longer run: the same probe evidence, a lower peak LR (the horizon factor)
    assert longer["recipe"]["peak_lr"] < recipe["peak_lr"]


def test_nan_at_high_lr_is_reported_and_avoided(tmp_path: Path) -> None:
    proc = autowarm(
        "probe", "--json", "--lr-range", "0.003", "3", "--steps", "40", "--trials", "6",
        "--seed", "3", "--storage", "journal:///probe.log", SCRIPT, "--steps", "100",
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["storage"] == "journal:///probe.log" and (tmp_path / "probe.log").is_file()
    bad = [t for t in doc["trials"] if t["status"] in ("diverged", "nonfinite", "stalled")]
    assert bad, doc["trials"]
    assert all(t["steps"] < 40 for t in bad)  # stopped early by the monitor
    ev = doc["recipe"]["evidence"]
    assert ev["boundary_lr"] is None or doc["recipe"]["peak_lr"] <= ev["boundary_lr"] / 2
    assert min(t["peak_lr"] for t in bad) >= ev["lowest_unstable"]["peak_lr"]


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
        (["--steps", "10"], "ended before the probe length"),
        (["--bogus"], "the script failed on the first trial"),
    ],
)
def test_a_script_that_cannot_be_probed(tmp_path: Path, script_args: list[str], message: str):
    proc = autowarm("probe", *FAST, "--lr-range", "0.01", "0.1", SCRIPT, *script_args, cwd=tmp_path)
    assert message in one_error_line(proc)


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
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.Popen(
        [sys.executable, "-m", "autowarm", *args],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
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
