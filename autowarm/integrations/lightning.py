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
   the clip measured -- and ``"skip"`` really skips the update.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch

from autowarm.monitor._optimizer import MonitoredOptimizer, wrap


class AutowarmCallback(pl.Callback):
    """Monitor a ``lightning.Trainer`` fit (and let ``autowarm probe`` drive it).

    Args:
        **wrap_kwargs: passed to :func:`autowarm.wrap` (``actions``, thresholds, ...).

    ``callback.optimizers`` are the :class:`~autowarm.MonitoredOptimizer` objects once the fit
    started: ``callback.optimizers[0].monitor.summary()`` after ``trainer.fit(...)``.
    """

    def __init__(self, **wrap_kwargs: Any) -> None:
        self.wrap_kwargs = wrap_kwargs
        self.optimizers: list[MonitoredOptimizer] = []

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.optimizers = [
            o if isinstance(o, MonitoredOptimizer) else wrap(o, **self.wrap_kwargs)
            for o in trainer.strategy.optimizers
        ]
        trainer.strategy.optimizers = self.optimizers  # LightningOptimizers are rebuilt
        from autowarm.probe._child import note_trainer

        note_trainer("lightning")  # inside a probe trial: the report prints configure_optimizers

    def on_before_backward(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: torch.Tensor
    ) -> None:
        if len(self.optimizers) != 1:
            return  # several optimizers (manual optimization): the script reports per optimizer
        self.optimizers[0].report(loss.detach() * trainer.accumulate_grad_batches)
