"""Inside a trial: what the script writes goes to the trial's scratch folder, never over the
user's files.

A probe runs the user's whole script many times; left alone, nanoGPT's trials each wrote
``out_dir/ckpt.pt`` over the user's checkpoint. So in the trial process every open *for
writing* by path -- ``open()`` (which ``torch.save`` through fsspec, Lightning's checkpoints,
loggers and tensorboard use) and ``torch.save(obj, path)`` (whose zip writer opens the path
in C++) -- is redirected to the same path under ``AUTOWARM_SCRATCH``, the trial's own folder
that the runner deletes after the trial. A later read of such a path reads the trial's copy
(a script may load the checkpoint it just saved); appending to, or updating, a file of the
user's first copies it. Not redirected: the system's temp folder (scratch space already,
where a script's temp files belong), ``/dev``, ``/proc``, ``/sys`` and anything that is not
a regular file (the trial's report FIFO, devices).

Files written through other calls (``os.open``, a library's own C code) are not seen.
"""

from __future__ import annotations

import builtins
import io
import os
import shutil
import tempfile
from typing import Any

SCRATCH_ENV = "AUTOWARM_SCRATCH"
_WRITE = set("wax+")
_SYSTEM = ("/dev/", "/proc/", "/sys/")


class _Redirect:
    def __init__(self, scratch: str) -> None:
        self.scratch = os.path.realpath(scratch)
        temp = os.path.realpath(tempfile.gettempdir())
        self.keep = (self.scratch + os.sep, temp + os.sep, *_SYSTEM)
        self.written: set[str] = set()  # the user's paths this trial wrote (in its scratch)

    def target(self, path: str) -> str:
        return os.path.join(self.scratch, os.path.abspath(path).lstrip(os.sep))

    def path_for(self, file: Any, mode: str) -> Any:
        """Where an open of ``file`` with ``mode`` really goes."""
        if not isinstance(file, (str, bytes, os.PathLike)) or isinstance(file, bytes):
            return file  # a file descriptor or bytes path: left alone
        path = os.fspath(file)
        reading = not _WRITE & set(mode)
        if reading and not self.written:
            return file  # the common case, every data file a script reads: nothing to look up
        real = os.path.realpath(path)
        if real.startswith(self.keep) or (os.path.exists(real) and not os.path.isfile(real)):
            return file
        copy = self.target(path)
        if reading:
            return copy if os.path.abspath(path) in self.written else file
        if os.path.abspath(path) not in self.written:
            os.makedirs(os.path.dirname(copy), exist_ok=True)
            if os.path.isfile(real) and ("a" in mode or "+" in mode):
                shutil.copy2(real, copy)  # appending to / updating the user's file: a copy
            self.written.add(os.path.abspath(path))
        return copy


def install() -> None:
    """Redirect this process's writes (a no-op outside trials that have a scratch folder)."""
    scratch = os.environ.get(SCRATCH_ENV)
    if not scratch or getattr(builtins.open, "__autowarm_scratch__", False):
        return
    redirect = _Redirect(scratch)
    original = builtins.open

    def open_(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        return original(redirect.path_for(file, mode), mode, *args, **kwargs)

    open_.__autowarm_scratch__ = True  # type: ignore[attr-defined]
    builtins.open = io.open = open_  # type: ignore[assignment]
    _redirect_torch_save(redirect)


def _redirect_torch_save(redirect: _Redirect) -> None:
    try:
        import torch
    except ImportError:
        return

    save = torch.save

    def save_(obj: Any, f: Any, *args: Any, **kwargs: Any) -> Any:
        return save(obj, redirect.path_for(f, "wb"), *args, **kwargs)

    torch.save = save_  # type: ignore[assignment]
