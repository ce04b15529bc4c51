"""Lightning Fabric: ``fabric.setup(model, autowarm.wrap(opt))`` with the user's own loop."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("lightning")
from lightning.fabric import Fabric

import autowarm
from autowarm import MonitoredOptimizer


def _loop(*, function_form: bool, spike_at: int = -1, steps: int = 40):
    """A Fabric loop that clips with ``fabric.clip_gradients`` at 0.5 and reports each loss."""
    torch.manual_seed(0)
    fabric = Fabric(accelerator="cpu", devices=1)
    model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
    wrapped = autowarm.wrap(torch.optim.AdamW(model.parameters(), lr=1e-2))
    model, optimizer = fabric.setup(model, wrapped)
    x = torch.randn(512, 8)
    losses, norms = [], []
    for step in range(steps):
        idx = torch.randint(0, 512, (32,))
        loss = torch.nn.functional.mse_loss(model(x[idx]), x[idx].sum(1, keepdim=True))
        optimizer.zero_grad()
        fabric.backward(loss * (100.0 if step == spike_at else 1.0))
        norms.append(fabric.clip_gradients(model, optimizer, max_norm=0.5).item())
        if function_form:
            autowarm.report(optimizer, loss)
        else:
            optimizer.report(loss)
        optimizer.step()
        losses.append(loss.item())
    return wrapped, optimizer, losses, norms


@pytest.mark.parametrize("function_form", [False, True])
def test_the_loss_and_the_norm_before_fabrics_clipping_reach_the_monitor(
    function_form: bool,
) -> None:
    wrapped, optimizer, losses, norms = _loop(function_form=function_form, steps=8)
    # Fabric's optimizer is an instance of a subclass of the class it wraps, holding none of
    # its state: before the fix optimizer.report set the loss on that shell, and every step
    # recorded none
    assert isinstance(optimizer, MonitoredOptimizer) and optimizer is not wrapped
    assert autowarm.monitored(optimizer) is wrapped
    history = wrapped.monitor.history
    assert [r.loss for r in history] == pytest.approx(losses, rel=1e-6)
    assert [r.grad_norm for r in history] == pytest.approx(norms)
    assert max(norms) > 0.5  # these are the norms before the clip


def test_a_gradient_spike_under_fabrics_clipping_fires_at_its_step() -> None:
    wrapped, *_ = _loop(function_form=False, spike_at=30)
    spikes = [e for e in wrapped.monitor.events if e.kind == "spike"]
    assert [(e.step, e.signal) for e in spikes] == [(30, "grad_norm")]


def test_clip_grad_norm_on_fabrics_optimizer_hands_the_monitor_its_norm() -> None:
    torch.manual_seed(0)
    fabric = Fabric(accelerator="cpu", devices=1)
    model = torch.nn.Linear(4, 1)
    wrapped = autowarm.wrap(torch.optim.SGD(model.parameters(), lr=0.1))
    model, optimizer = fabric.setup(model, wrapped)
    loss = model(torch.full((8, 4), 10.0)).pow(2).mean()
    fabric.backward(loss)
    norm = optimizer.clip_grad_norm_(0.01).item()
    optimizer.report(loss)
    optimizer.step()
    assert norm > 0.01
    assert wrapped.monitor.history[0].grad_norm == pytest.approx(norm)
    assert torch.linalg.vector_norm(model.weight.grad).item() < 0.0101  # it did clip
