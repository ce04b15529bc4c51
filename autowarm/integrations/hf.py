"""HF transformers: ``Trainer(..., callbacks=[AutowarmCallback()])`` alone monitors the run.

    from autowarm.integrations.hf import AutowarmCallback
    trainer = Trainer(model=model, args=args, train_dataset=ds, callbacks=[AutowarmCallback()])

1) at ``on_train_begin`` the optimizer the Trainer built is wrapped in place, inside the
   ``AcceleratedOptimizer`` that holds it (schedulers, checkpoints and GradScaler see the same
   optimizer as before); under ``autowarm probe`` the wrapper owns the LR and ends the run at
   the probe length, whatever ``lr_scheduler_type`` says;
2) the loss: a forward hook on the model reports ``outputs.loss`` of every training forward
   (each micro-batch under gradient accumulation: the step records their mean). When the
   Trainer hands the model ``num_items_in_batch`` (transformers >= 4.46), a micro-batch's loss
   is already divided by the whole step's token count, so it is reported times
   ``gradient_accumulation_steps``: the recorded loss is the step's mean loss either way. A custom
   ``compute_loss`` whose model returns no ``loss`` is not seen: report it yourself with
   ``autowarm.report(self.optimizer, loss)``;
3) the norm before clipping: the Trainer clips with ``max_grad_norm`` through
   ``torch.nn.utils.clip_grad_norm_``, which hands the monitor the norm it measured first.

``recipe.training_args()`` turns a recipe into the ``TrainingArguments`` that reproduce it.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import TrainerCallback

from autowarm.monitor._find import wrap_inside
from autowarm.monitor._optimizer import MonitoredOptimizer


def _loss_of(output: Any) -> torch.Tensor | None:
    """``outputs.loss`` of a transformers ``ModelOutput`` (or a dict), when labels were given."""
    loss = output.get("loss") if isinstance(output, dict) else getattr(output, "loss", None)
    return loss if isinstance(loss, torch.Tensor) and loss.numel() == 1 else None


class AutowarmCallback(TrainerCallback):
    """Monitor a ``transformers.Trainer`` run (and let ``autowarm probe`` drive it).

    Args:
        **wrap_kwargs: passed to :func:`autowarm.wrap` (``actions``, thresholds, ...).

    ``callback.optimizer`` is the :class:`~autowarm.MonitoredOptimizer` once training began:
    ``callback.optimizer.monitor.summary()`` after ``trainer.train()``.
    """

    def __init__(self, **wrap_kwargs: Any) -> None:
        self.wrap_kwargs = wrap_kwargs
        self.optimizer: MonitoredOptimizer | None = None
        self._hook: Any = None
        self._accumulation = 1

    def on_train_begin(
        self,
        args: Any,
        state: Any,
        control: Any,
        model: Any = None,
        optimizer: Any = None,
        **_: Any,
    ) -> None:
        self.optimizer = wrap_inside(optimizer, **self.wrap_kwargs)
        from autowarm.probe._child import note_trainer

        note_trainer("hf")  # inside a probe trial: the report speaks TrainingArguments
        self._accumulation = int(getattr(args, "gradient_accumulation_steps", 1) or 1)
        if self._hook is not None:  # a second train() on the same callback
            self._hook.remove()
        self._hook = model.register_forward_hook(self._on_forward, with_kwargs=True)

    def _on_forward(
        self, module: torch.nn.Module, _args: Any, kwargs: dict[str, Any], output: Any
    ) -> None:
        # training forwards only: evaluation runs under no_grad or in eval mode
        if self.optimizer is None or not (module.training and torch.is_grad_enabled()):
            return
        loss = _loss_of(output)
        if loss is None:
            return
        if kwargs.get("num_items_in_batch") is not None:  # normalised over the whole step
            loss = loss.detach() * self._accumulation
        self.optimizer.report(loss)

    def on_train_end(self, args: Any, state: Any, control: Any, **_: Any) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
