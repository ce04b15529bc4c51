"""Lightning: ``lightning.Trainer(callbacks=[AutowarmCallback()])`` alone monitors the run.

    from autowarm.integrations.lightning import AutowarmCallback
    trainer = lightning.Trainer(gradient_clip_val=1.0, callbacks=[AutowarmCallback()])

1) at ``on_fit_start`` the optimizers ``configure_optimizers`` returned are wrapped in place
   (the strategy's list; Lightning's ``LightningOptimizer`` and the LR schedulers see the same
   optimizer as before); under ``autowarm probe`` the wrapper owns the LR and ends the run at
   the probe length;
2) the loss: ``on_before_backward`` reports it (times ``accumulate_grad_batches``: Lightning
   hands over the loss already divided by it), so the step records the mean micro-batch loss;
3) the norm before clipping: ``gradient_clip_val`` clips through
   ``torch.nn.utils.clip_grad_norm_`` inside Lightning's closure, and the wrapper runs that
   closure itself before the update (built-in torch optimizers), so the monitor sees the norm
   the clip measured -- and ``"skip"`` really skips the update; under mixed precision
   Lightning's scaler unscales before the clip and skips overflowed steps without calling the
   wrapper, which records them as ``amp_skip`` at the batch's end (the loss is unscaled);
4) the score of a probe trial: where the fit validates (a ``validation_step`` and val data),
   the ``monitor`` metric (default ``"val_loss"``, as ``EarlyStopping`` and ``ModelCheckpoint``
   name it) after one validation run at the probe's end (``autowarm.score_with``); a trial is
   far shorter than ``val_check_interval``, and a small-data fit's training loss ranks the LRs
   the wrong way round (README, *Quality*). Without validation, the training loss;
   ``AutowarmCallback(monitor=None)`` keeps it, and a script's own ``score_with`` stands.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities.model_helpers import is_overridden

from autowarm._errors import AutowarmError
from autowarm.monitor._optimizer import MonitoredOptimizer, wrap
from autowarm.probe import _child, _loaders
from autowarm.probe._probing import probing, score_with


class AutowarmCallback(pl.Callback):
    """Monitor a ``lightning.Trainer`` fit (and let ``autowarm probe`` drive it).

    Args:
        monitor: the validation metric an ``autowarm probe`` trial is scored by (a loss: lower
            is better), where the fit validates; None: the training loss. Outside a probe it
            changes nothing.
        **wrap_kwargs: passed to :func:`autowarm.wrap` (``actions``, thresholds, ...).

    ``callback.optimizers`` are the :class:`~autowarm.MonitoredOptimizer` objects once the fit
    started: ``callback.optimizers[0].monitor.summary()`` after ``trainer.fit(...)``.
    """

    def __init__(self, *, monitor: str | None = "val_loss", **wrap_kwargs: Any) -> None:
        self.monitor = monitor
        self.wrap_kwargs = wrap_kwargs
        self.optimizers: list[MonitoredOptimizer] = []
        # each optimizer's step count before its update in this batch (a skipped one stays)
        self._counts: dict[int, tuple[MonitoredOptimizer, int]] = {}

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.optimizers = [
            o if isinstance(o, MonitoredOptimizer) else wrap(o, **self.wrap_kwargs)
            for o in trainer.strategy.optimizers
        ]
        for optimizer in self.optimizers:
            # the wrapper tells GradScaler it unscales in step() (monitor/_optimizer.py); to
            # Lightning's mixed precision that means "a fused optimizer": gradient_clip_val
            # raises under "bf16-mixed" and "16-mixed", and "16-mixed" leaves the gradients
            # scaled for on_before_optimizer_step. Lightning owns the scaler: it unscales, clips
            # and steps the wrapper only when the gradients are finite, as any optimizer
            optimizer._step_supports_amp_scaling = False
        trainer.strategy.optimizers = self.optimizers  # LightningOptimizers are rebuilt
        from autowarm.probe._child import note_trainer

        note_trainer("lightning")  # inside a probe trial: the report prints configure_optimizers
        monitor = self.monitor
        if monitor is None or not probing() or _child.scorer is not None:
            return  # the training loss scores the trials, or the script's own score_with
        if _validates(trainer, pl_module):
            score_with(lambda: _validation_score(trainer, monitor), name=monitor)

    def on_before_backward(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: torch.Tensor
    ) -> None:
        if len(self.optimizers) != 1:
            return  # several optimizers (manual optimization): the script reports per optimizer
        loss = loss.detach() * trainer.accumulate_grad_batches
        scaler = getattr(trainer.precision_plugin, "scaler", None)
        if scaler is not None and scaler.is_enabled():
            # "16-mixed" hands the hook the loss times the scale; the scale stays on the device
            loss = loss / scaler._get_scale_async().to(loss.device)
        self.optimizers[0].report(loss)

    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        for monitored in self.optimizers:
            if optimizer is monitored or getattr(optimizer, "_optimizer", None) is monitored:
                self._counts[id(monitored)] = (monitored, monitored.monitor.step_count)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # the train data is loaded by now (not yet at on_fit_start); a plain DataLoader only
        loader = trainer.train_dataloader
        if isinstance(loader, torch.utils.data.DataLoader) and loader.batch_size:
            per_step = loader.batch_size * trainer.accumulate_grad_batches * trainer.world_size
            _child.note_data(_loaders.sized(loader.dataset), per_step)

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        counts, self._counts = self._counts, {}
        for monitored, count in counts.values():
            if monitored.monitor.step_count == count:  # the scaler skipped it (an overflow)
                monitored._count_amp_skip()


def _validates(trainer: pl.Trainer, module: pl.LightningModule) -> bool:
    """The fit has a validation loop: a ``validation_step``, val data and batches to run."""
    if not is_overridden("validation_step", module) or trainer.limit_val_batches == 0:
        return False
    source = getattr(trainer.fit_loop.epoch_loop.val_loop, "_data_source", None)
    return source is None or bool(source.is_defined())


def _validation_score(trainer: pl.Trainer, monitor: str) -> float:
    """One validation run now, inside the fit (the loop the fit itself runs at
    ``val_check_interval``), and the ``monitor`` metric it logged."""
    trainer.fit_loop.epoch_loop.val_loop.run()
    value = trainer.callback_metrics.get(monitor)
    if value is None:
        logged = ", ".join(sorted(trainer.callback_metrics)) or "nothing"
        raise AutowarmError(
            f"validation logged no {monitor!r} (logged: {logged}); pass "
            "AutowarmCallback(monitor=<a loss it logs>), or monitor=None to score the probes "
            "by the training loss."
        )
    return float(value)
