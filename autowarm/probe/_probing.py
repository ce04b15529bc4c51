"""``autowarm.probing()``: is this process a probe trial?

Inside ``autowarm probe`` every trial runs the whole script, so work a probe does not need --
the step-0 evaluation, sample generation, checkpoints, an experiment tracker -- is paid by
every trial (0.35-0.6 s per nanoGPT trial, ~30% of the probe's wall time)::

    if not autowarm.probing():
        evaluate(model)          # skipped inside probe trials
"""

from __future__ import annotations

import os

from autowarm.probe._child import TRIAL_ENV


def probing() -> bool:
    """True inside an ``autowarm probe`` trial (any rank), False in a normal run."""
    return TRIAL_ENV in os.environ
