"""Atomic file writes: a reader never sees a half-written file."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from autowarm._errors import AutowarmError


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same folder and ``os.replace``."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise AutowarmError(f"cannot write {str(target)!r}: folder {str(folder)!r} does not exist.")
    if target.is_dir():
        raise AutowarmError(f"cannot write {str(target)!r}: it is a directory.")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    except OSError as e:
        raise AutowarmError(f"cannot write {str(target)!r}: {e.strerror}.") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def check_writable(path: str | os.PathLike[str]) -> None:
    """Fail early (before any work) when ``path`` could not be written later."""
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise AutowarmError(f"cannot write {str(target)!r}: it is a directory; pass a file path.")
    if not folder.is_dir():
        raise AutowarmError(f"cannot write {str(target)!r}: folder {str(folder)!r} does not exist.")
    if not os.access(folder, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise AutowarmError(f"cannot write {str(target)!r}: permission denied.")
