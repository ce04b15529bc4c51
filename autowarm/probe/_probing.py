"""The script's side of a probe trial: ``autowarm.probing()`` (is this process a trial?) and
``autowarm.score_with(fn)`` (what the trial is worth).

Inside ``autowarm probe`` every trial runs the whole script, so work a probe does not need --
the step-0 evaluation, sample generation, checkpoints, an experiment tracker -- is paid by
every trial (0.35-0.6 s per nanoGPT trial, ~30% of the probe's wall time)::

    if not autowarm.probing():
        evaluate(model)          # skipped inside probe trials

``autowarm.score_with(fn)``: by default a trial is scored by its training
loss over the end of the probe; a script whose training loss does not track what it is trained
for -- a fine-tune on a few hundred examples overfits, and its training loss then ranks the LRs
the wrong way round -- scores trials by its own validation loss instead::

    autowarm.score_with(lambda: evaluate(model))   # lower is better; called once per trial
"""

from __future__ import annotations

import os
from collections.abc import Callable

from autowarm._errors import AutowarmError
from autowarm.probe import _child
from autowarm.probe._child import TRIAL_ENV


def probing() -> bool:
    """True inside an ``autowarm probe`` trial (any rank), False in a normal run."""
    return TRIAL_ENV in os.environ


def score_with(fn: Callable[[], float], *, name: str | None = None) -> None:
    """Score this script's probe trials by ``fn()`` (e.g. a validation loss; lower is better)
    instead of their training loss.

    Inside a trial, ``fn`` is called once, when the probe's last step is done (on every rank of
    a distributed trial, under ``torch.no_grad()``), with the model as that step left it; a
    trial that went unstable is not scored. A NaN or infinite value marks the trial diverged.
    Outside ``autowarm probe`` this does nothing, so the line can stay in the script.
    ``name`` labels the score in the report (the HF callback's is ``"eval_loss"``; without one,
    ``score_with()``).
    """
    if not callable(fn):
        raise AutowarmError(
            f"score_with() takes a function returning a float but got {type(fn).__name__}; "
            "pass e.g. lambda: evaluate(model)."
        )
    if probing():
        _child.scorer, _child.scorer_name = fn, None if name is None else str(name)
