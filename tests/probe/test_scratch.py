"""A probe never overwrites the user's files: a trial's writes go to its scratch folder."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from autowarm.probe._cli import _scratch_note
from autowarm.probe._runner import ProbeRunner
from autowarm.probe._types import TrialSpec

SCRIPT = Path(__file__).parent / "scripts_runner" / "writes_files.py"


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.relative_to(folder).parts[0] != "tmp"
    }


@pytest.mark.parametrize("project_in_temp", [False, True])
def test_a_probe_trial_leaves_every_pre_existing_file_byte_identical(
    tmp_path: Path, project_in_temp: bool
) -> None:
    # the script writes, saves atomically, removes and renames (see writes_files.py).
    # pytest's tmp_path lives in the system's temp folder, where a script's own temp files are
    # not redirected; a project there (a checkout in /tmp) is the user's all the same. The
    # other case: the temp folder elsewhere (TMPDIR), the project outside it.
    (tmp_path / "tmp").mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "ckpt.pt").write_bytes(b"the user's 10-hour checkpoint")
    (tmp_path / "out" / "last.ckpt").write_bytes(b"the user's last checkpoint")
    (tmp_path / "out" / "best.txt").write_text("best: step 90000")
    (tmp_path / "train.log").write_text("the user's own log\n")
    (tmp_path / "out" / "stale.txt").write_text("from an earlier run")
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "events.1").write_text("the user's events")
    (tmp_path / "notes.txt").write_text("the user's notes")
    (tmp_path / "out" / "latest.pt").symlink_to("ckpt.pt")
    (tmp_path / "data.csv").write_text("1,2\n")
    (tmp_path / "dataset").mkdir()
    (tmp_path / "dataset" / "a.txt").write_text("the user's data")
    flag = tmp_path / "out" / "done.flag"
    flag.write_text("")
    flag.chmod(0o644)
    os.utime(flag, (1e9, 1e9))
    before = _digests(tmp_path)
    env = {} if project_in_temp else {"TMPDIR": str(tmp_path / "tmp")}
    with ProbeRunner(str(SCRIPT), cwd=str(tmp_path), env=env) as runner:
        res = runner.run(TrialSpec(number=0, peak_lr=0.01, warmup_steps=2, probe_steps=20))
        assert res.status in ("stable", "spike"), res.reason  # it read its own files back
        written = {Path(p).relative_to(tmp_path).as_posix() for p in runner.redirected}
        removed = {Path(p).relative_to(tmp_path).as_posix() for p in runner.removed}
    assert _digests(tmp_path) == before  # nothing changed, nothing new, nothing removed
    assert os.readlink(tmp_path / "out" / "latest.pt") == "ckpt.pt"  # nor the user's link
    assert not any(p.is_symlink() for p in tmp_path.rglob("*") if p.name != "latest.pt")
    assert (flag.stat().st_mtime, flag.stat().st_mode & 0o777) == (1e9, 0o644)  # nor its times
    assert removed == {"out/stale.txt", "runs", "notes.txt", "out/latest.pt"}  # as the trial saw it
    assert written >= {
        "out/ckpt.pt", "train.log", "out/metrics.json", "out/last.ckpt", "out/best.txt",
        "runs/events.2", "notes.bak", "out/checkpoint-5.pt", "out/model_best.pt",
        "out/done.flag",
    }  # fmt: skip


def test_tensorboard_event_files_of_a_trial_go_to_its_scratch(tmp_path: Path) -> None:
    # tensorboard's writer opens its event file by a bytes path, from a thread of its own;
    # before, each trial left one event file in the user's runs/ folder
    pytest.importorskip("tensorboard")
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "events.out.tfevents.1.user").write_bytes(b"the user's own run")
    before = _digests(tmp_path)
    script = Path(__file__).parent / "scripts_runner" / "tensorboard_logs.py"
    with ProbeRunner(str(script), cwd=str(tmp_path)) as runner:
        res = runner.run(TrialSpec(number=0, peak_lr=0.01, warmup_steps=2, probe_steps=20))
        assert res.status in ("stable", "spike"), res.reason
        written = [Path(p).relative_to(tmp_path) for p in runner.redirected]
    assert _digests(tmp_path) == before
    assert [p.parent.name for p in written] == ["runs"]
    assert written[0].name.startswith("events.out.tfevents.")


def test_experiment_trackers_are_off_inside_trials_unless_the_user_set_them(
    tmp_path: Path,
) -> None:
    script = tmp_path / "env.py"
    script.write_text("import os, sys\nsys.exit('wandb ' + os.environ.get('WANDB_MODE', '-'))\n")
    reasons = []
    for env in ({}, {"WANDB_MODE": "offline"}):
        with ProbeRunner(str(script), cwd=str(tmp_path), env=env) as runner:
            res = runner.run(TrialSpec(number=0, peak_lr=0.01, warmup_steps=0, probe_steps=5))
        reasons.append(res.reason)
    assert reasons[0].endswith("wandb disabled")  # off by default inside a trial
    assert reasons[1].endswith("wandb offline")  # the user's own setting is kept


VIEW = """
import glob, os, pathlib, shutil
from autowarm.probe import _scratch
_scratch.install()
os.makedirs("a/b/c", exist_ok=True)
pathlib.Path("x/y").mkdir(parents=True)
pathlib.Path("x/y/f.txt").write_text("hi")
shutil.copy("x/y/f.txt", "x/g.txt")
os.remove("x/y/f.txt")
with open(b"x/b.bin", "wb") as f:  # a bytes path, as tensorboard's event writer opens
    f.write(b"123")
os.remove(b"mine.txt")
pathlib.Path("ckpts/step-20.pt").write_text("the trial's")  # into the user's own folder
os.remove("ckpts/step-5.pt")
walked = sorted(f for _, _, files in os.walk("ckpts") for f in files)
assert walked == sorted(os.listdir("ckpts")) == ["step-10.pt", "step-20.pt"], walked
assert sorted(glob.glob("ckpts/*.pt"))[-1] == "ckpts/step-20.pt"  # its latest checkpoint
assert sorted(os.listdir(b"ckpts")) == [b"step-10.pt", b"step-20.pt"]
for bad, error in (("x/y", FileExistsError), ("q/r", FileNotFoundError)):
    try:
        os.mkdir(bad)
    except error:
        pass
    else:
        raise SystemExit(f"mkdir {bad} did not raise {error.__name__}")
print(os.path.isdir("a/b/c"), pathlib.Path("x").is_dir(), sorted(os.listdir("x")),
      os.path.exists("x/y/f.txt"), os.path.getsize("x/g.txt"), sorted(os.listdir(".")),
      os.path.getsize(b"x/b.bin"), os.path.exists("mine.txt"))
"""


def test_what_a_trial_makes_it_sees_where_it_made_it_and_nowhere_else(tmp_path: Path) -> None:
    # the script's view stays consistent (folders, listings, sizes, removal) while the
    # project gets nothing: tmp_path is under the system temp folder, the project case
    scratch = tmp_path / "scratch"
    project = tmp_path / "project"
    scratch.mkdir()
    project.mkdir()
    (project / "mine.txt").write_text("the user's")
    (project / "ckpts").mkdir()
    for step in (5, 10):
        (project / "ckpts" / f"step-{step}.pt").write_text("the user's")
    before = _digests(project)
    env = {**os.environ, "AUTOWARM_SCRATCH": str(scratch)}
    out = subprocess.run(
        [sys.executable, "-c", VIEW], cwd=project, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    # "." lists as the trial sees it: its own folders in, the file it removed out
    listing = "['a', 'ckpts', 'x']"
    assert out.stdout.strip() == f"True True ['b.bin', 'g.txt', 'y'] False 2 {listing} 3 False"
    assert _digests(project) == before  # and for real nothing changed
    assert (scratch / str(project).lstrip(os.sep) / "x" / "g.txt").read_text() == "hi"


def test_the_report_says_what_trials_wrote_and_removed() -> None:
    note = _scratch_note({"/p/out/ckpt.pt"}, {"/p/runs", "/p/old.txt"})
    assert note is not None
    assert "wrote 1 file (" in note and "removed 2 of your paths" in note
    assert note.endswith("your files are untouched.")
    assert _scratch_note(set(), set()) is None
    # a library's cache outside the project (HF datasets' lock files) after the project's own
    cache = os.path.expanduser("~/.cache/huggingface/datasets/text.lock")
    note = _scratch_note({cache, os.path.abspath("out/ckpt.pt")}, set())
    assert note is not None and "(out/ckpt.pt, ~/.cache/huggingface/datasets/text.lock)" in note


@pytest.fixture
def short_temp() -> Iterator[Path]:
    """A folder with a short path in the system's temp folder: multiprocessing binds sockets
    under the temp folder, and a socket path has at most 104-108 characters."""
    folder = Path(tempfile.mkdtemp(prefix="aw-test-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("hang", [False, True])
def test_a_trial_leaves_nothing_in_the_temp_folders(
    tmp_path: Path, short_temp: Path, monkeypatch: pytest.MonkeyPatch, hang: bool
) -> None:
    # a trial ends by os._exit (no atexit hook removes a DataLoader's pymp-* folder) or is
    # killed; before, each left its temp files behind, and its whole scratch folder when
    # it did not end normally
    ours = tmp_path / "runner-temp"
    ours.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(ours))  # where the runner makes scratch
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    script = Path(__file__).parent / "scripts_runner" / "temp_files.py"
    args = ["hang"] if hang else []
    env = {"TMPDIR": str(short_temp)}  # the temp folder the user's script would have had
    timeout = 10 if hang else 120  # the hang: 60 s at step 10
    with ProbeRunner(
        str(script), args, cwd=str(tmp_path), env=env, trial_timeout=timeout
    ) as runner:
        # longer than the script's 20 steps: it ends itself, saying where its temp was
        res = runner.run(TrialSpec(number=0, peak_lr=0.01, warmup_steps=2, probe_steps=40))
        assert runner.redirected == set()  # temp files are not the user's paths
    assert res.status == ("timeout" if hang else "failed"), res.reason
    # what is left: torch.compile's cache, kept where torch puts it, shared by the trials
    left = [p.name for p in short_temp.iterdir() if not p.name.startswith("torchinductor_")]
    assert list(ours.iterdir()) == [] and left == []
    if not hang:  # a temp folder of its own, in the user's; torch.compile's cache kept
        temp, inductor = res.reason.split("temp ")[1].split(" inductor ")
        assert Path(temp).parent == short_temp and Path(temp).name.startswith("aw-trial-")
        assert Path(inductor).parent == short_temp and Path(inductor).name.startswith("torchind")


@pytest.mark.parametrize("how", ["c-read", "datasets"])
def test_a_librarys_cache_is_filled_for_real_and_read_back_by_its_c_code(
    tmp_path: Path, how: str
) -> None:
    # HF datasets builds a cache entry with Python's file calls and reads it with Arrow's
    # C++: redirected to the trial's scratch, the entry was not found and the first trial of
    # a script with uncached data failed. A cache is the library's, shared by every run.
    if how == "datasets":
        pytest.importorskip("datasets")
    project, cache = tmp_path / "project", tmp_path / "cache"
    project.mkdir()
    (project / "data.txt").write_text("a line\nanother line\n" * 8)
    env = {
        "TMPDIR": str(tmp_path / "tmp"),  # the project outside the temp folder
        "XDG_CACHE_HOME": str(cache),
        "HF_DATASETS_CACHE": str(cache / "datasets"),
        "HF_DATASETS_OFFLINE": "1",
    }
    (tmp_path / "tmp").mkdir()
    script = str(Path(__file__).parent / "scripts_runner" / "cached_data.py")
    with ProbeRunner(script, [how], cwd=str(project), env=env) as runner:
        for number in range(2):  # the first fills the cache, the second reads it
            res = runner.run(TrialSpec(number=number, peak_lr=1e-3, warmup_steps=2, probe_steps=10))
            assert (res.status, res.steps) == ("stable", 10), res.reason
        assert not any(p.startswith(str(cache)) for p in runner.redirected)
    built = [p for p in cache.rglob("*") if p.is_file()]
    assert built  # the cache entry is where the library put it, for the next run too
    assert sorted(p.name for p in project.iterdir()) == ["data.txt"]  # the project untouched
