"""accelerate: ``accelerator.prepare(autowarm.wrap(opt))`` and the function form of report()."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("accelerate")
from accelerate import Accelerator

import autowarm
from autowarm import AutowarmError
from autowarm.probe._runner import ProbeRunner
from autowarm.probe._types import TrialSpec

SCRIPTS = Path(__file__).parent / "scripts"


def test_report_reaches_the_monitor_through_the_accelerated_optimizer() -> None:
    torch.manual_seed(0)
    accelerator = Accelerator(cpu=True)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    model, optimizer = accelerator.prepare(
        model, autowarm.wrap(torch.optim.AdamW(model.parameters(), lr=1e-2))
    )
    assert not hasattr(optimizer, "report")  # accelerate does not forward it...
    monitor = autowarm.monitored(optimizer).monitor  # ...the function form finds it
    norms = []
    for _ in range(5):
        x = torch.randn(32, 8)
        loss = torch.nn.functional.mse_loss(model(x), x.sum(1, keepdim=True))
        accelerator.backward(loss)
        autowarm.report(optimizer, loss)
        norms.append(accelerator.clip_grad_norm_(model.parameters(), 0.01).item())
        optimizer.step()
        optimizer.zero_grad()
        assert monitor.history[-1].loss == pytest.approx(loss.item())
    assert [r.grad_norm for r in monitor.history] == pytest.approx(norms)  # before the clip
    assert all(n > 0.01 for n in norms)


def test_report_on_an_optimizer_nobody_wrapped_names_the_fix() -> None:
    bare = torch.optim.SGD([torch.nn.Parameter(torch.ones(1))], lr=0.1)
    with pytest.raises(AutowarmError, match=r"holds no autowarm-wrapped optimizer; wrap the bare"):
        autowarm.report(bare, 1.0)


def test_a_probe_trial_names_the_scheduler_the_script_prepared(tmp_path: Path) -> None:
    # HF's no_trainer loops: transformers' schedule, prepared by accelerate (which steps it
    # once per process): the report names it for replacing and notes the x N
    pytest.importorskip("transformers")
    script = str(SCRIPTS / "accelerate_train.py")
    with ProbeRunner(script, [], cwd=str(tmp_path)) as runner:
        res = runner.run(TrialSpec(number=0, peak_lr=3e-3, warmup_steps=2, probe_steps=8))
    assert (res.status, res.steps) == ("stable", 8), res.reason
    assert res.scheduler == {
        "text": "LambdaLR, from transformers.optimization",
        "library": "transformers",
        "accelerate": True,
        "calls": 7,  # once an update: the trial ends at its 8th, before the script steps it
        "steps": 8,
    }
