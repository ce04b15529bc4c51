from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest

from autowarm import AutowarmError
from autowarm.probe._storage import default_study_name, latest_study_name, mask_url, open_storage


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://bob:hunter2@db:5432/x", "postgresql://bob:***@db:5432/x"),
        ("mysql+pymysql://u:p%40ss@h/d", "mysql+pymysql://u:***@h/d"),
        ("postgresql://bob@db/x", "postgresql://bob@db/x"),
        ("sqlite:///a.db", "sqlite:///a.db"),
        # case 20: a password in the query string, as libpq and the MySQL drivers accept it
        ("postgresql://u@host/db?password=secret", "postgresql://u@host/db?password=***"),
        (
            "postgresql://u@host/db?sslmode=require&PASSWORD=s%26t&sslpassword=k",
            "postgresql://u@host/db?sslmode=require&PASSWORD=***&sslpassword=***",
        ),
        (
            "mysql+pymysql://u@h/d?passwd=secret&charset=utf8",
            "mysql+pymysql://u@h/d?passwd=***&charset=utf8",
        ),
    ],
)
def test_mask_url(url: str, shown: str) -> None:
    assert mask_url(url) == shown


@pytest.mark.parametrize("url", ["journal:probe.log", "probe.jsonl", "sqlite:///probe.db"])
def test_open_storage_kinds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.chdir(tmp_path)
    storage, shown = open_storage(url)
    assert shown == url
    study = optuna.create_study(storage=storage, study_name="s")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    assert len(optuna.load_study(study_name="s", storage=open_storage(url)[0]).trials) == 2
    assert latest_study_name(storage) == "s"


def test_default_storage_is_created_only_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(AutowarmError, match="no probe results"):
        open_storage(None, create=False)
    assert not (tmp_path / ".autowarm").exists()
    _, shown = open_storage(None)
    assert shown == "sqlite:///.autowarm/autowarm.db"
    assert (tmp_path / ".autowarm" / "autowarm.db").is_file()


def test_unreachable_server_is_one_masked_line() -> None:
    with pytest.raises(AutowarmError) as e:
        open_storage("postgresql://bob:hunter2@127.0.0.1:9/db")
    assert "hunter2" not in str(e.value) and "bob:***@" in str(e.value)
    assert "\n" not in str(e.value)


def test_study_name_follows_script_args_and_probe_design() -> None:
    a = default_study_name("train.py", ["--lr", "1"], {"steps": 100})
    assert a.startswith("train-") and a == default_study_name(
        "train.py", ["--lr", "1"], {"steps": 100}
    )
    assert a != default_study_name("train.py", ["--lr", "2"], {"steps": 100})
    assert a != default_study_name("train.py", ["--lr", "1"], {"steps": 200})


# ----------------------------------------------------------------------------- issue 14
SCRIPT = str(Path(__file__).parent / "scripts_probe" / "train_tiny.py")


@pytest.fixture
def no_pg_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    """Neither PostgreSQL driver importable, whatever this machine has installed."""
    for module in ("psycopg2", "psycopg"):
        monkeypatch.setitem(sys.modules, module, None)


def _error(url: str, **kwargs: Any) -> str:
    with pytest.raises(AutowarmError) as e:
        open_storage(url, **kwargs)
    message = str(e.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("url", ["sqlite:///", "sqlite://", "sqlite:///:memory:"])
def test_sqlite_empty_path_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.chdir(tmp_path)
    message = _error(url)
    assert message.startswith(f"storage {url!r} cannot be opened: ")
    assert message.endswith("; pass --storage sqlite:///path/to/file.db.")
    assert list(tmp_path.iterdir()) == []


def test_sqlite_empty_path_is_one_line_exit_2_from_the_cli(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "autowarm", "probe", "--storage", "sqlite:///", SCRIPT],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("autowarm: error:")]
    assert errors == [
        "autowarm: error: storage 'sqlite:///' cannot be opened: the database path is empty; "
        "pass --storage sqlite:///path/to/file.db."
    ]
    assert "StorageInternalError" not in proc.stderr
    assert list(tmp_path.iterdir()) == []


_PSYCOPG2 = "'psycopg2' is not installed; pip install psycopg2-binary."
_PSYCOPG3 = "'psycopg' is not installed; pip install 'autowarm[postgres]'."


@pytest.mark.parametrize(
    ("url", "endings"),
    [
        ("postgresql+psycopg2://u@127.0.0.1:9/db", (_PSYCOPG2,)),
        ("postgresql+psycopg://u@127.0.0.1:9/db", (_PSYCOPG3,)),
        # SQLAlchemy's default driver (psycopg2 in 2.0, psycopg in 2.1): whichever it imports
        ("postgresql://u@127.0.0.1:9/db", (_PSYCOPG2, _PSYCOPG3)),
    ],
)
def test_missing_postgres_driver_names_the_package(
    no_pg_driver: None, url: str, endings: tuple[str, ...]
) -> None:
    message = _error(url)
    assert message.startswith(f"storage {url!r} cannot be opened: its database driver ")
    assert message.endswith(endings), message
    assert "reachable" not in message and message.count("; ") == 1


def test_query_string_password_is_masked_in_errors(no_pg_driver: None) -> None:
    message = _error("postgresql://u@127.0.0.1:9/db?password=secret")
    assert "secret" not in message
    assert message.startswith("storage 'postgresql://u@127.0.0.1:9/db?password=***' ")


def test_query_string_password_is_masked_in_the_cause(monkeypatch: pytest.MonkeyPatch) -> None:
    def echo(url: str, **kwargs: Any) -> None:  # a driver that repeats the URL in its error
        raise RuntimeError(f"could not connect to {url} (password s&t rejected)")

    monkeypatch.setattr(optuna.storages, "RDBStorage", echo)
    message = _error("postgresql://u@h/db?password=s%26t")
    assert "s%26t" not in message and "s&t" not in message
    # (the URL as the driver saw it: postgresql+<installed driver>://)
    assert "u@h/db?password=*** (password *** rejected)" in message


def test_short_password_is_masked_without_mangling_the_error() -> None:
    message = _error("mysql://u:p@127.0.0.1/db")
    assert "mysql://u:***@127.0.0.1/db" in message and "***ort" not in message


@pytest.mark.parametrize("url", ["nonsense", "mongodb://x", "mysql://u:p@127.0.0.1/db"])
def test_storage_errors_state_the_fix_once(url: str) -> None:
    message = _error(url)
    assert message.count("; ") == 1 and "expected" not in message and "Please" not in message


@pytest.mark.parametrize("url", ["sqlite:///ro/a.db", "journal:ro/a.log"])
def test_read_only_mount_says_read_only_file_system(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ro").mkdir()
    real = os.statvfs

    class ReadOnly:
        def __init__(self, path: Any) -> None:
            self.f_flag = real(path).f_flag | os.ST_RDONLY

    monkeypatch.setattr(os, "statvfs", ReadOnly)
    message = _error(url)
    assert message.endswith(
        ": folder 'ro' is on a read-only file system; pass a path on a writable file system."
    )
    assert "permission denied" not in message
    assert list((tmp_path / "ro").iterdir()) == []


# -- issue 13: several workers, several machines ------------------------------------------------
def test_a_journal_url_is_read_the_way_users_write_paths(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    absolute = tmp_path / "abs.log"
    for url, file in (
        (f"journal://{absolute}", absolute),
        ("journal:rel.log", tmp_path / "rel.log"),
    ):
        storage, _ = open_storage(url)
        optuna.create_study(storage=storage, study_name="s")
        assert file.is_file(), url


def test_a_stale_journal_lock_is_broken_in_seconds(tmp_path: Path) -> None:
    import time

    from autowarm.probe._storage import JOURNAL_LOCK_GRACE_S

    path = tmp_path / "j.log"
    storage, _ = open_storage(str(path))
    optuna.create_study(storage=storage, study_name="s")
    (tmp_path / "j.log.lock").write_text("")  # left behind by a worker killed mid-write
    t0 = time.monotonic()
    optuna.create_study(storage=open_storage(str(path))[0], study_name="t")
    assert time.monotonic() - t0 < JOURNAL_LOCK_GRACE_S + 3  # not Optuna's default 30 s


def test_the_default_study_name_does_not_depend_on_where_the_checkout_is(tmp_path: Path) -> None:
    from autowarm.probe._config import ProbeConfig

    names = []
    for checkout in ("a", "b/c"):
        script = tmp_path / checkout / "train.py"
        script.parent.mkdir(parents=True)
        script.write_text("print('same script')\n")
        config = ProbeConfig(str(script), ("--lr", "3e-4"))
        names.append(default_study_name(config.script, config.args, config.design()))
    assert names[0] == names[1] and names[0].startswith("train-")


_OPEN_AT_ONCE = """
import sys, time
from autowarm.probe._storage import open_storage
import optuna
optuna.logging.set_verbosity(optuna.logging.ERROR)
start = float(sys.argv[2])
time.sleep(max(0.0, start - time.time()))  # every worker starts at the same instant
storage, _ = open_storage(sys.argv[1])
optuna.create_study(storage=storage, study_name="s", load_if_exists=True)
"""


def _start_together(url: str, cwd: Path, workers: int = 4) -> list[subprocess.CompletedProcess]:
    import subprocess as sp
    import time

    start = str(time.time() + 3.0)  # after every interpreter has imported optuna
    procs = [
        sp.Popen(
            [sys.executable, "-c", _OPEN_AT_ONCE, url, start], cwd=cwd, stderr=sp.PIPE, text=True
        )
        for _ in range(workers)
    ]
    return [sp.CompletedProcess(p.args, p.wait(timeout=60), "", p.stderr.read()) for p in procs]


@pytest.mark.parametrize("kind", ["sqlite", "journal", "postgresql"])
def test_any_number_of_workers_may_start_at_once_on_a_fresh_storage(
    tmp_path: Path, request: pytest.FixtureRequest, kind: str
) -> None:
    url = {
        "sqlite": f"sqlite:///{tmp_path}/fresh.db",
        "journal": f"journal://{tmp_path}/fresh.log",
        "postgresql": "",
    }[kind]
    if kind == "postgresql":
        url = request.getfixturevalue("postgres_url")
    for proc in _start_together(url, tmp_path):
        assert proc.returncode == 0, proc.stderr[-2000:]
    assert [s.study_name for s in optuna.get_all_study_summaries(open_storage(url)[0])] == ["s"]
