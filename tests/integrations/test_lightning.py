"""The Lightning adapter through the real lightning.Trainer."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

import autowarm

pytest.importorskip("lightning")
import lightning.pytorch as pl

from autowarm.integrations.lightning import AutowarmCallback
from autowarm.probe._runner import ProbeRunner
from autowarm.probe._types import TrialSpec

SCRIPTS = Path(__file__).parent / "scripts"


class Regression(pl.LightningModule):
    def __init__(self, spike_at: int = -1) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(
            torch.nn.Linear(8, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1)
        )
        self.spike_at = spike_at
        self.params_at: dict[int, list[torch.Tensor]] = {}
        self.losses: list[float] = []

    def training_step(self, batch, _):
        self.params_at[self.global_step] = [p.detach().clone() for p in self.parameters()]
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.losses.append(loss.item())
        return loss * 1000 if self.global_step == self.spike_at else loss

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=1e-2)


def _fit(module: pl.LightningModule, cb: AutowarmCallback | None, steps: int = 30, **kw) -> None:
    torch.manual_seed(0)
    x = torch.randn(1024, 8)
    data = torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True))
    trainer = pl.Trainer(
        max_steps=steps,
        callbacks=[] if cb is None else [cb],
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **kw,
    )
    trainer.fit(module, torch.utils.data.DataLoader(data, batch_size=32))


@pytest.mark.parametrize("accumulate", [1, 2])
def test_the_callback_alone_sees_the_loss_and_the_norm_before_gradient_clip_val(
    accumulate: int,
) -> None:
    cb, module = AutowarmCallback(), Regression()
    _fit(module, cb, 10, gradient_clip_val=0.05, accumulate_grad_batches=accumulate)
    history = cb.optimizers[0].monitor.history
    assert len(history) == 10
    assert all(r.grad_norm > 0.05 for r in history)  # not the clipped norm
    per_step = [
        sum(module.losses[i : i + accumulate]) / accumulate for i in range(0, 20, accumulate)
    ]
    assert [r.loss for r in history] == pytest.approx(per_step[:10], rel=1e-5)


def test_skip_really_skips_the_update_in_lightnings_closure_step() -> None:
    cb, module = AutowarmCallback(actions={"spike": "skip"}, min_history=4), Regression(spike_at=12)
    _fit(module, cb, 16, gradient_clip_val=1.0)
    skipped = [e.step for e in cb.optimizers[0].monitor.events if e.action == "skip"]
    assert set(skipped) == {12}  # the loss and the grad norm spiked at step 12
    for before, after in zip(module.params_at[12], module.params_at[13]):
        torch.testing.assert_close(before, after)  # the spiky update was not applied
    assert any(not torch.equal(a, b) for a, b in zip(module.params_at[11], module.params_at[12]))


def test_the_stock_lightning_script_runs_as_a_probe_trial(tmp_path: Path) -> None:
    with ProbeRunner(str(SCRIPTS / "lightning_train.py"), cwd=str(tmp_path)) as runner:
        res = runner.run(TrialSpec(number=0, peak_lr=3e-3, warmup_steps=4, probe_steps=10))
    assert res.status in ("stable", "spike"), res.reason
    assert res.steps == 10
    assert all(math.isfinite(v) for v in res.losses)
    assert res.script_lr == pytest.approx(1e-2)
    assert res.trainer == "lightning"  # the callback said so: the report's code fits it
    assert res.data == {"train_examples": 1024, "examples_per_step": 32}  # its DataLoader's
    assert res.optimizer == "torch.optim.AdamW"  # its configure_optimizers', under Lightning's
    assert res.script_score is None  # it does not validate: the training loss scores it


@pytest.mark.parametrize(
    ("flags", "scored"),
    [(["--val"], True), (["--val", "--monitor", ""], False)],
)
def test_a_trial_is_scored_by_one_validation_run_at_its_end_when_the_fit_validates(
    tmp_path: Path, flags: list[str], scored: bool
) -> None:
    out = tmp_path.parent / f"{tmp_path.name}-vals.txt"  # outside the trial's project
    argv = ["--val-out", str(out), *flags]
    with ProbeRunner(str(SCRIPTS / "lightning_train.py"), argv, cwd=str(tmp_path)) as runner:
        res = runner.run(TrialSpec(number=0, peak_lr=1e-2, warmup_steps=3, probe_steps=10))
    assert (res.status, res.steps) == ("stable", 10), res.reason
    vals = [float(line) for line in out.read_text().split()] if out.exists() else []
    if scored:  # the probe is shorter than an epoch: one validation, the trial's end, its loss
        assert vals == [pytest.approx(res.script_score, rel=1e-6)]
        assert res.score_name == "val_loss"  # the report's label: the monitored metric
    else:
        assert res.script_score is None and vals == []


def test_a_monitor_that_validation_does_not_log_fails_the_trial_with_the_fix(
    tmp_path: Path,
) -> None:
    argv = ["--val", "--monitor", "val_acc"]
    with ProbeRunner(str(SCRIPTS / "lightning_train.py"), argv, cwd=str(tmp_path)) as runner:
        res = runner.run(TrialSpec(number=0, peak_lr=1e-2, warmup_steps=3, probe_steps=10))
    assert res.failure == "crash"
    assert "validation logged no 'val_acc' (logged: " in (res.reason or "")
    assert "monitor=None" in (res.reason or "")


def test_a_trial_with_lightnings_checkpoints_and_logger_leaves_the_project_as_it_was(
    tmp_path: Path,
) -> None:
    # Lightning saves atomically (a temp file moved over the checkpoint, then chmod-ed), drops
    # old top-k files and makes a logger folder per run: all of it lands in the trial's scratch
    (tmp_path / "ckpts").mkdir()
    (tmp_path / "ckpts" / "last.ckpt").write_bytes(b"the user's last checkpoint")
    (tmp_path / "ckpts" / "epoch=0-step=5.ckpt").write_bytes(b"the user's step-5 checkpoint")
    (tmp_path / "lightning_logs" / "version_0").mkdir(parents=True)
    (tmp_path / "lightning_logs" / "version_0" / "metrics.csv").write_text("step,loss\n")
    before = {p: p.read_bytes() if p.is_file() else None for p in tmp_path.rglob("*")}
    script = str(SCRIPTS / "lightning_train.py")
    with ProbeRunner(script, ["--checkpoints", "ckpts"], cwd=str(tmp_path)) as runner:
        res = runner.run(TrialSpec(number=0, peak_lr=3e-3, warmup_steps=4, probe_steps=12))
        written = {Path(p).relative_to(tmp_path).as_posix() for p in runner.redirected}
    assert res.status in ("stable", "spike"), res.reason
    after = {p: p.read_bytes() if p.is_file() else None for p in tmp_path.rglob("*")}
    assert after == before  # no file changed, no file or folder added
    assert "lightning_logs/version_1/metrics.csv" in written
    assert any(w.startswith("ckpts/") and w.endswith(".ckpt") for w in written)


class ManualRegression(Regression):
    """Manual optimization with the optimizer wrapped in configure_optimizers: the loop's
    ``self.optimizers()`` is Lightning's shell of the monitored optimizer."""

    def __init__(self, function_form: bool) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.function_form = function_form

    def training_step(self, batch, _):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.losses.append(loss.item())
        opt = self.optimizers()
        opt.zero_grad()
        self.manual_backward(loss)
        if self.function_form:
            autowarm.report(opt, loss)
        else:
            opt.report(loss)  # the shell is a MonitoredOptimizer to isinstance
        opt.step()

    def configure_optimizers(self):
        self.monitored = autowarm.wrap(torch.optim.AdamW(self.parameters(), lr=1e-2))
        return self.monitored


@pytest.mark.parametrize("function_form", [False, True])
def test_report_through_lightnings_optimizer_in_manual_optimization(function_form: bool) -> None:
    module = ManualRegression(function_form)
    _fit(module, None, 6)
    history = module.monitored.monitor.history
    assert [r.loss for r in history] == pytest.approx(module.losses, rel=1e-6)


def test_bf16_mixed_with_gradient_clip_val_runs_and_the_norm_is_seen_before_the_clip() -> None:
    # the wrapper declares _step_supports_amp_scaling for GradScaler, which Lightning's mixed
    # precision read as "a fused optimizer" and refused gradient_clip_val: a RuntimeError
    cb, module = AutowarmCallback(), Regression()
    _fit(module, cb, 10, precision="bf16-mixed", gradient_clip_val=0.05)
    history = cb.optimizers[0].monitor.history
    assert len(history) == 10
    assert all(r.grad_norm > 0.05 for r in history)
    assert [r.loss for r in history] == pytest.approx(module.losses, rel=1e-6)


def test_16_mixed_with_a_grad_scaler_records_unscaled_losses_and_the_skipped_steps() -> None:
    from lightning.pytorch.plugins.precision import MixedPrecision

    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16)  # overflows at first, then halves
    cb, module = AutowarmCallback(), Regression()
    plugin = MixedPrecision("16-mixed", "cpu", scaler=scaler)
    _fit(module, cb, 12, plugins=[plugin], gradient_clip_val=0.05)
    monitor = cb.optimizers[0].monitor
    history = monitor.history
    # every step is counted, as Lightning counts it; the losses are not times the scale
    assert len(history) == 12
    assert [r.loss for r in history] == pytest.approx(module.losses, rel=1e-6)
    skipped = [r.step for r in history if r.amp_overflow]
    assert skipped and monitor.counts["amp_skip"] == len(skipped) < 12
    assert "nonfinite" not in monitor.counts and "spike" not in monitor.counts
    updated = [r.grad_norm for r in history if not r.amp_overflow]
    assert all(0.05 < n < 1e3 for n in updated)  # unscaled, and measured before the clip


class TwoOptimizers(pl.LightningModule):
    """Manual optimization with two optimizers (a GAN's shape), each stepped once a batch."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.automatic_optimization = False
        self.a, self.b = torch.nn.Linear(8, 1), torch.nn.Linear(8, 1)

    def training_step(self, batch, _):
        x, y = batch
        for opt, net in zip(self.optimizers(), (self.a, self.b)):
            loss = torch.nn.functional.mse_loss(net(x), y)
            opt.zero_grad()
            self.manual_backward(loss)
            autowarm.report(opt, loss)
            opt.step()

    def configure_optimizers(self):
        return torch.optim.SGD(self.a.parameters(), lr=0.01), torch.optim.SGD(
            self.b.parameters(), lr=0.01
        )


def test_two_manual_optimizers_are_each_counted_once_a_batch_with_no_false_amp_skip() -> None:
    cb = AutowarmCallback()
    _fit(TwoOptimizers(), cb, 10)  # Lightning counts both optimizers' steps: 5 batches
    for optimizer in cb.optimizers:
        history = optimizer.monitor.history
        assert len(history) == 5 and all(r.loss is not None for r in history)
        assert not any(r.amp_overflow for r in history)


def test_lightning_cli_with_the_callback_on_its_command_line_runs_as_a_probe_trial(
    tmp_path: Path,
) -> None:
    # LightningCLI saves its config.yaml into the log folder it made, after asking os.access
    # whether that folder is writable: the folder was the trial's (in its scratch), and the
    # first trial failed with jsonargparse's "parent directory not writable"
    pytest.importorskip("jsonargparse")
    (tmp_path / "lightning_logs" / "version_0").mkdir(parents=True)  # the user's earlier run
    (tmp_path / "lightning_logs" / "version_0" / "config.yaml").write_text("the user's config")
    argv = [
        "fit", "--trainer.max_steps", "30", "--trainer.enable_progress_bar", "false",
        "--trainer.callbacks+=autowarm.integrations.lightning.AutowarmCallback",
    ]  # fmt: skip
    with ProbeRunner(str(SCRIPTS / "lightning_cli.py"), argv, cwd=str(tmp_path)) as runner:
        res = runner.run(TrialSpec(number=0, peak_lr=0.05, warmup_steps=2, probe_steps=10))
        written = [Path(p).relative_to(tmp_path).as_posix() for p in runner.redirected]
    assert (res.status, res.steps, res.trainer) == ("stable", 10, "lightning"), res.reason
    assert "lightning_logs/version_1/config.yaml" in written  # saved in the trial's scratch
    assert sorted(p.name for p in (tmp_path / "lightning_logs").iterdir()) == ["version_0"]
