from __future__ import annotations

import subprocess
import sys

import pytest

import autowarm


def test_version_and_exports() -> None:
    import autowarm.probe
    import autowarm.schedule

    assert autowarm.__version__
    for package in (autowarm, autowarm.probe, autowarm.schedule):
        for name in package.__all__:
            assert hasattr(package, name), f"{package.__name__}.{name}"


def test_python_dash_m_help() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "autowarm", "--help"], capture_output=True, text=True, check=True
    )
    assert "usage: autowarm" in out.stdout


def test_no_command_is_usage_error() -> None:
    out = subprocess.run([sys.executable, "-m", "autowarm"], capture_output=True, text=True)
    assert out.returncode == 2


def test_probing_is_true_inside_a_trial_only(monkeypatch) -> None:
    monkeypatch.delenv("AUTOWARM_TRIAL", raising=False)
    assert autowarm.probing() is False
    monkeypatch.setenv("AUTOWARM_TRIAL", '{"peak_lr": 0.01, "probe_steps": 10}')
    assert autowarm.probing() is True


def test_score_with_outside_a_probe_does_nothing_and_rejects_a_non_function(monkeypatch) -> None:
    from autowarm.probe import _child

    monkeypatch.delenv("AUTOWARM_TRIAL", raising=False)
    calls: list[int] = []
    autowarm.score_with(lambda: calls.append(1) or 0.0)
    assert _child.scorer is None and calls == []  # a normal run: registered nowhere, not called
    with pytest.raises(autowarm.AutowarmError, match="takes a function returning a float"):
        autowarm.score_with(0.5)  # type: ignore[arg-type]
