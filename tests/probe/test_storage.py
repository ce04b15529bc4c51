from __future__ import annotations

from pathlib import Path

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
    ],
)
def test_mask_url(url: str, shown: str) -> None:
    assert mask_url(url) == shown


@pytest.mark.parametrize("url", ["journal:///probe.log", "probe.jsonl", "sqlite:///probe.db"])
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
