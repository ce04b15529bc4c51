"""Inside a trial: the LR scheduler the script builds on its wrapped optimizer, if any.

Most loops step a scheduler of their own: ``LambdaLR`` from transformers' ``get_scheduler``
(every HF ``no_trainer`` example, accelerate's), torch's ``OneCycleLR``, a lambda of the
script's. The recipe replaces it, so the report names it ("replace LambdaLR, from
transformers.optimization") and prints the code in that library's terms. The probe itself owns
the LR inside a trial (it sets every step's LR before the update), so the script's scheduler
changes nothing there; this only notes its kind.

Also noted: whether the script runs under an ``accelerate.Accelerator``. A scheduler handed to
``accelerator.prepare`` is stepped once per process at each optimizer step (accelerate scales
it to the larger global batch), so a pasted schedule runs N times faster on N processes unless
its step counts are multiplied by N, as HF's ``no_trainer`` examples do.
"""

from __future__ import annotations

import contextlib
import sys
import weakref
from typing import Any

#: every LR scheduler built in this process: (its optimizer, weakly; what it is; its library;
#: the scheduler, weakly)
_built: list[tuple[Any, str, str, Any]] = []


def install() -> None:
    """Note every LR scheduler built in this process (a no-op without torch)."""
    try:
        from torch.optim.lr_scheduler import LRScheduler
    except ImportError:
        return
    init = LRScheduler.__init__
    if getattr(init, "__autowarm_scheduler__", False):
        return

    def init_(self: Any, optimizer: Any, *args: Any, **kwargs: Any) -> None:
        init(self, optimizer, *args, **kwargs)
        if len(_built) < 64:
            with contextlib.suppress(TypeError):  # an optimizer without weakref support
                _built.append((weakref.ref(optimizer), *describe(self), weakref.ref(self)))

    init_.__autowarm_scheduler__ = True  # type: ignore[attr-defined]
    LRScheduler.__init__ = init_  # type: ignore[method-assign]


def describe(scheduler: Any) -> tuple[str, str]:
    """``("LambdaLR, from transformers.optimization", "transformers")``: the scheduler's class
    and where its schedule is defined (a ``LambdaLR``'s function, else the class)."""
    name = type(scheduler).__name__
    fns = getattr(scheduler, "lr_lambdas", None) or [None]
    fn = getattr(fns[0], "func", fns[0])  # functools.partial, as transformers builds them
    module = getattr(fn, "__module__", None) or type(scheduler).__module__
    if module == "__main__":
        return f"{name}, with the script's own function", "script"
    return f"{name}, from {module}", module.split(".")[0]


def under_accelerate() -> bool:
    """An ``accelerate`` Accelerator (or its PartialState) was set up in this process."""
    state = sys.modules.get("accelerate.state")
    shared = getattr(getattr(state, "PartialState", None), "_shared_state", None)
    return bool(shared)


def summary(driven: list[Any], *, steps: int = 0) -> dict[str, Any] | None:
    """The schedulers built on the optimizers the probe drives (``driven``: the wrapped ones;
    a scheduler built on the bare optimizer before it was wrapped counts too), for the trial's
    end message; None if there are none. ``calls``: how often the script stepped them in the
    trial's ``steps`` optimizer steps (a scheduler stepped once an epoch makes few)."""
    mine = {id(o) for o in driven} | {id(getattr(o, "optimizer", None)) for o in driven}
    texts, libraries, calls = [], [], 0
    for ref, text, library, scheduler in _built:
        optimizer = ref()
        if optimizer is None or (id(optimizer) not in mine and not _wraps_driven(optimizer)):
            continue
        # torch counts its step() calls in last_epoch (0 after the one its __init__ makes)
        calls = max(calls, int(getattr(scheduler(), "last_epoch", 0) or 0))
        if text not in texts:
            texts.append(text)
            libraries.append(library)
    if not texts:
        return None
    return {
        "text": " + ".join(texts),
        "library": libraries[0],
        "accelerate": under_accelerate(),
        "calls": calls,
        "steps": steps,
    }


def _wraps_driven(optimizer: Any) -> bool:
    from autowarm.monitor._find import monitored

    try:
        monitored(optimizer)
    except Exception:  # no wrapped optimizer inside: one the probe does not drive
        return False
    return True
