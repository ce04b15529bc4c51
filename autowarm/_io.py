"""File writes that respect what the path is.

- a regular file (or a new one) is replaced atomically: a reader never sees a half-written file,
  and a failed write leaves the old file as it was;
- a symlink is written through: its target is replaced (atomically there), the link stays;
- a device or FIFO (``/dev/null``, ``/dev/stdout``, a pipe) is written in place, never replaced.

A new file gets the mode a plain ``open()`` gives (0666 minus the umask); a replaced file keeps
its mode and, where allowed, its owner. Every failure is one :class:`AutowarmError` line.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from pathlib import Path

from autowarm._errors import AutowarmError

#: The fix to suggest after an OS error, by errno; any other error is named without one.
_FIXES = {
    errno.ENOSPC: "free some space or pass a path on another disk",
    errno.EDQUOT: "free some space or pass a path on another disk",
    errno.EROFS: "pass a path on a writable file system",
    errno.EACCES: "pass a path you can write",
    errno.EPERM: "pass a path you can write",
}
#: Added to every open: no descriptor leaks into trial processes; no newline translation.
_OPEN_FLAGS = getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path``; see :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path``: atomically for a regular file (through a symlink), in place
    for a device or FIFO."""
    real = _real(path)
    problem = write_problem(path)
    if problem is not None:
        raise AutowarmError(f"cannot write {str(path)!r}: {problem}.")
    try:
        if _special(real):
            _write_in_place(real, data)
        else:
            _replace(real, data)
    except OSError as e:
        raise AutowarmError(f"cannot write {str(path)!r}: {os_reason(e)}.") from None


def check_writable(path: str | os.PathLike[str]) -> None:
    """Fail early (before any work) when ``path`` could not be written later."""
    problem = write_problem(path)
    if problem is not None:
        raise AutowarmError(f"cannot write {str(path)!r}: {problem}.")


def write_problem(path: str | os.PathLike[str]) -> str | None:
    """Why :func:`atomic_write_bytes` would fail on ``path`` ("problem; fix"), or ``None``.

    Nothing is opened: a FIFO is not blocked on, a device is not touched.
    """
    real = _real(path)
    if real.is_dir():
        return "it is a directory; pass a file path"
    if _special(real):
        # written in place: only the file's own permission counts, not its folder's
        return None if os.access(real, os.W_OK) else "permission denied; pass a path you can write"
    folder = real.parent
    if not folder.is_dir():
        return f"folder {str(folder)!r} does not exist"
    if read_only_fs(folder):
        return f"folder {str(folder)!r} is on a read-only file system; " + _FIXES[errno.EROFS]
    if not os.access(folder, os.W_OK) or (real.exists() and not os.access(real, os.W_OK)):
        return "permission denied; " + _FIXES[errno.EACCES]
    return None


def read_only_fs(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` lies on a read-only mount (``os.access`` reports that as a plain
    "not writable", which reads like a permission problem)."""
    if not hasattr(os, "statvfs"):  # Windows: no mount flags to read
        return False
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def os_reason(e: OSError) -> str:
    """``OSError(ENOSPC)`` -> ``"no space left on device; free some space or …"``."""
    why = (e.strerror or type(e).__name__).lower()
    fix = _FIXES.get(e.errno or 0)
    return f"{why}; {fix}" if fix else why


def _real(path: str | os.PathLike[str]) -> Path:
    """The file a write lands in: a symlink's final target (so the link is not replaced),
    otherwise the path as given (so messages show the user's own spelling)."""
    target = Path(path)
    return Path(os.path.realpath(target)) if target.is_symlink() else target


def _special(real: Path) -> bool:
    """An existing file that is neither regular nor a directory: a device, FIFO or socket."""
    try:
        mode = os.stat(real).st_mode
    except OSError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def _write_in_place(real: Path, data: bytes) -> None:
    # no O_CREAT (never make a file where the device was) and no O_TRUNC (meaningless here)
    fd = os.open(real, os.O_WRONLY | _OPEN_FLAGS)
    try:
        _write_all(fd, data)
    finally:
        os.close(fd)


def _replace(real: Path, data: bytes) -> None:
    old = _stat(real)
    fd, tmp = _create_temp(real)
    try:
        try:
            if old is not None:
                _keep_owner_and_mode(tmp, old)
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, real)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _create_temp(real: Path) -> tuple[int, Path]:
    """A new temporary file next to ``real``, opened with mode 0666 so the kernel applies the
    umask exactly as ``open()`` would (``tempfile.mkstemp`` forces 0600)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _OPEN_FLAGS
    for _ in range(100):
        tmp = real.with_name(f".{real.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary file name", str(real.parent))


def _keep_owner_and_mode(tmp: Path, old: os.stat_result) -> None:
    if hasattr(os, "chown") and (old.st_uid, old.st_gid) != (os.geteuid(), os.getegid()):
        # only root may give a file away (an owner may set its group); otherwise it becomes ours
        with contextlib.suppress(OSError):
            os.chown(tmp, old.st_uid, old.st_gid)
    os.chmod(tmp, stat.S_IMODE(old.st_mode))  # after chown, which clears set-id bits


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _stat(path: Path) -> os.stat_result | None:
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None
