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
   ``torch.nn.utils.clip_grad_norm_``, which hands the monitor the norm it measured first;
4) the score of a probe trial: with an ``eval_dataset``, ``trainer.evaluate()``'s ``eval_loss``
   at the probe's end (``autowarm.score_with``), as ``Trainer.hyperparameter_search`` scores its
   trials. A fine-tune on a few thousand examples overfits within its run, and its training
   loss then ranks the LRs the wrong way round (README, *Quality*: the small-data scripts'
   regret +48.8 -> +34.9 % scored on validation). Without one, the training loss;
   ``AutowarmCallback(score="loss")`` keeps it, and a script's own ``score_with`` stands.

``recipe.training_args()`` turns a recipe into the ``TrainingArguments`` that reproduce it.
"""

from __future__ import annotations

import sys
from typing import Any, Literal

import torch
from transformers import Trainer, TrainerCallback

from autowarm._errors import AutowarmError
from autowarm.monitor._find import wrap_inside
from autowarm.monitor._optimizer import MonitoredOptimizer
from autowarm.probe import _child, _loaders
from autowarm.probe._probing import probing, score_with

#: how far up the stack ``on_train_begin`` looks for the Trainer that calls it (3 frames in
#: transformers 5.25, the version tested: CallbackHandler.call_event, .on_train_begin, the loop)
_FRAMES = 8


def _loss_of(output: Any) -> torch.Tensor | None:
    """``outputs.loss`` of a transformers ``ModelOutput`` (or a dict), when labels were given."""
    loss = output.get("loss") if isinstance(output, dict) else getattr(output, "loss", None)
    return loss if isinstance(loss, torch.Tensor) and loss.numel() == 1 else None


class AutowarmCallback(TrainerCallback):
    """Monitor a ``transformers.Trainer`` run (and let ``autowarm probe`` drive it).

    Args:
        score: what an ``autowarm probe`` trial is scored by: ``"auto"`` the Trainer's
            ``eval_loss`` when it has an ``eval_dataset``, else the training loss;
            ``"eval_loss"`` (an error without an ``eval_dataset``); ``"loss"`` the training
            loss. Outside a probe it changes nothing.
        **wrap_kwargs: passed to :func:`autowarm.wrap` (``actions``, thresholds, ...).

    ``callback.optimizer`` is the :class:`~autowarm.MonitoredOptimizer` once training began:
    ``callback.optimizer.monitor.summary()`` after ``trainer.train()``.
    """

    def __init__(
        self, *, score: Literal["auto", "eval_loss", "loss"] = "auto", **wrap_kwargs: Any
    ) -> None:
        if score not in ("auto", "eval_loss", "loss"):
            raise AutowarmError(f"score must be 'auto', 'eval_loss' or 'loss' but got {score!r}.")
        self.score = score
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
        **kwargs: Any,
    ) -> None:
        self.optimizer = wrap_inside(optimizer, **self.wrap_kwargs)
        from autowarm.probe._child import note_trainer

        note_trainer("hf")  # inside a probe trial: the report speaks TrainingArguments
        self._accumulation = int(getattr(args, "gradient_accumulation_steps", 1) or 1)
        loader = kwargs.get("train_dataloader")
        per_step = args.per_device_train_batch_size * self._accumulation * args.world_size
        _child.note_data(_loaders.sized(getattr(loader, "dataset", None)), per_step)
        if self._hook is not None:  # a second train() on the same callback
            self._hook.remove()
        self._hook = model.register_forward_hook(self._on_forward, with_kwargs=True)
        if probing() and self.score != "loss" and _child.scorer is None:
            self._score_on_eval(_calling_trainer())

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

    def _score_on_eval(self, trainer: Trainer | None) -> None:
        """Inside a trial: score it by ``trainer.evaluate()``'s ``eval_loss``, where there is
        an eval set (the script's own ``score_with`` stands: it was checked before)."""
        has_eval = trainer is not None and trainer.eval_dataset is not None
        if self.score == "eval_loss" and not has_eval:
            raise AutowarmError(
                "AutowarmCallback(score='eval_loss') needs a Trainer with an eval_dataset; "
                "pass Trainer(..., eval_dataset=...) or score='loss'."
            )
        if has_eval:
            score_with(lambda: _eval_loss(trainer), name="eval_loss")

    def on_train_end(self, args: Any, state: Any, control: Any, **_: Any) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None


def _calling_trainer() -> Trainer | None:
    """The Trainer whose ``train()`` runs this callback: HF hands callbacks the model, the
    optimizer and the dataloaders, not the Trainer, and only its ``evaluate()`` evaluates the
    way the script set up (collator, metrics, ``prediction_loss_only``, devices)."""
    frame = sys._getframe(2)
    for _ in range(_FRAMES):
        if frame is None:
            return None
        owner = frame.f_locals.get("self")
        if isinstance(owner, Trainer):
            return owner
        frame = frame.f_back
    return None


def _eval_loss(trainer: Trainer) -> float:
    metrics = trainer.evaluate()
    if "eval_loss" not in metrics:
        raise AutowarmError(
            "the Trainer's evaluate() gave no eval_loss (the model returns no loss on the eval "
            "set); give it labels, or pass AutowarmCallback(score='loss')."
        )
    return float(metrics["eval_loss"])
