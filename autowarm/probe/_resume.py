"""Inside a trial: a script that resumed a run from a checkpoint before the probe's first step.

Many training scripts pick up where an earlier run stopped when they find its checkpoint
(nanoGPT's ``init_from='resume'``, HF's ``resume_from_checkpoint``, Lightning's
``ckpt_path="last"``, the "load it if it exists" of torchrun's elastic examples). A probe trial
of such a script, next to the user's checkpoint, does the same: it warms up a model that has
already trained, and every trial of the search measures that instead of the run the recipe is
for -- the losses are low and flat across LRs, and nothing says why. (The user's checkpoint
itself is safe: the trial's writes go to its scratch folder, see :mod:`._scratch`.)

The sign: at the first step the probe controls, the optimizer's state shows steps taken before
it (Adam's and most optimizers' ``state["step"] > 0``, SGD's momentum buffers), *and* the trial
loaded a file with ``torch.load`` before that step. Either alone is not enough: a script that
trains a phase with the bare optimizer and then wraps it has state with no load (the probe
then controls the phase after it, as it should), and loading pretrained weights to fine-tune
from leaves the optimizer fresh. A resume that loads only the weights and a counter, with no
optimizer state (the snapshot of PyTorch's DDP tutorial, ``multigpu_torchrun.py``), is not seen.
"""

from __future__ import annotations

import os
from typing import Any

#: the user's files the trial loaded with torch.load, in order (relative to the working dir)
loaded: list[str] = []


def install() -> None:
    """Note the files ``torch.load`` reads in this process (a no-op without torch)."""
    try:
        import torch
    except ImportError:
        return
    load = torch.load
    if getattr(load, "__autowarm_resume__", False):
        return

    def load_(f: Any, *args: Any, **kwargs: Any) -> Any:
        _note(f)
        return load(f, *args, **kwargs)

    load_.__autowarm_resume__ = True  # type: ignore[attr-defined]
    torch.load = load_  # type: ignore[assignment]


def _note(f: Any) -> None:
    name = f if isinstance(f, (str, os.PathLike)) else getattr(f, "name", None)
    if isinstance(name, (str, os.PathLike)) and len(loaded) < 16:
        path = os.path.relpath(os.path.abspath(os.fspath(name)))
        if path not in loaded:
            loaded.append(path)


def prior_steps(optimizer: Any) -> str | None:
    """What in the optimizer's state shows steps taken before (None: a fresh optimizer). Read
    once, at the trial's first step: a ``step`` on the device costs one sync then."""
    taken, buffers = 0, False
    for state in optimizer.state.values():
        if not isinstance(state, dict):
            continue
        step = state.get("step")
        if step is not None:
            taken = max(taken, int(float(step)))
        buffers = buffers or state.get("momentum_buffer") is not None
    if taken:
        return f"{taken} step{'s' if taken != 1 else ''} taken"
    return "momentum buffers" if buffers else None  # SGD keeps no step count


def resumed(optimizer: Any) -> str | None:
    """Why the trial is a resumed run (one line naming the fix), or None."""
    shown = prior_steps(optimizer)
    if shown is None or not loaded:
        return None
    return (
        f"the script resumed a run before the probe's first step: its optimizer's state has "
        f"{shown}, after torch.load of {', '.join(loaded[-3:])}; a probe must start from "
        "scratch: move the checkpoint away, or resume only `if not autowarm.probing()`."
    )
