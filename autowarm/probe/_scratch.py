"""Inside a trial: what the script writes goes to the trial's scratch folder, never over the
user's files.

A probe runs the user's whole script many times; left alone, nanoGPT's trials each wrote
``out_dir/ckpt.pt`` over the user's checkpoint. So in the trial process every open *for
writing* by path, str or bytes -- ``open()`` (which ``torch.save`` through fsspec,
Lightning's checkpoints, loggers and tensorboard use) and ``torch.save(obj, path)`` (whose
zip writer opens the path in C++) -- is redirected to the same path under
``AUTOWARM_SCRATCH``, the trial's own folder that the runner deletes after the trial. A
later read of such a path reads the trial's copy (a script may load the checkpoint it just
saved); appending to, or updating, a file of the user's first copies it. ``os.replace`` and
``os.rename`` (``shutil.move``, ``Path.replace``) onto such a path land on the trial's copy
too: the atomic save of Lightning's checkpoints (fsspec) and of many scripts writes a temp
file, then moves it over the checkpoint. And ``os.stat`` (``exists``, ``getsize``),
``os.access``, the xattr calls and ``os.remove`` of a path the trial wrote reach its copy; what
changes a file's metadata (``os.chmod``, ``os.utime``: ``shutil.copy2``, ``Path.touch``) changes
the trial's copy, made first where the file is the user's; ``os.link`` links in the scratch
(timm's checkpoint saver), or copies where the source is the user's file; ``os.symlink`` (a
"latest" checkpoint removed and linked again) links in the scratch, to the trial's copy, a
copy of a file of the user's, or a folder of the user's, whose writes go to the scratch; and a
listing (``os.listdir``, ``os.scandir``: ``glob``, ``os.walk``) shows a folder with what the trial
wrote there and without what it removed, so the script sees what it wrote where it wrote it;
the folders it makes (``os.makedirs``) are made in its scratch too, and
``safetensors.torch.save_file`` (HF's ``save_pretrained``, written from Rust) is redirected
where it calls its writer.

Not redirected: the system's temp folder (scratch space already, where a script's temp files
belong) and the libraries' caches (``~/.cache`` or ``XDG_CACHE_HOME``, and ``HF_HOME``,
``HF_DATASETS_CACHE``, ``TORCH_HOME``, ... where set) -- except the part of either under the
working directory, when the user's project itself lives there (a checkout in ``/tmp``: its
files are the user's) -- ``/dev``, ``/proc``, ``/sys`` and anything that is not a regular file
(the trial's report FIFO, devices). A cache is the library's, shared by every run and filled
by a trial as by the script's own run; and it must be: HF ``datasets`` builds a cache entry
with Python's file calls and then reads it with Arrow's own C++, which would not find a
redirected copy (the first trial of a script whose data was not cached yet failed with
``FileNotFoundError`` on ``~/.cache/huggingface/datasets/...``).

A trial's own temp files (``tempfile``, DataLoader workers' ``pymp-*`` folders, torchrun's
``torchelastic_*``) go to a temp folder of its own (``TMPDIR``, in the system's): a trial ends
by ``os._exit`` or is killed when pruned, so no atexit hook of the script removes them; the
runner removes that folder after the trial. torch.compile's cache stays where it would have
been (``TORCHINDUCTOR_CACHE_DIR``), so the trials still share it.

``os.open`` by path is redirected as ``open()`` is (``tempfile.mkstemp(dir=...)`` in the
project). Removing one of the user's files or folders (``os.remove``, ``os.rmdir``,
``shutil.rmtree``: a script clearing its output folder, HF's ``save_total_limit`` rotating old
checkpoints) is noted and not done: the trial sees it gone, the user keeps it; a rename of the
user's file copies it to its new name the same way.

Files written through other calls (another library's own C code) are not seen.
"""

from __future__ import annotations

import builtins
import errno
import io
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable
from typing import Any

SCRATCH_ENV = "AUTOWARM_SCRATCH"
#: the temp folder the trial would have had without its own (``TMPDIR`` is its own): writes
#: there stay where they are
SYSTEM_TEMP_ENV = "AUTOWARM_SYSTEM_TEMP"
#: in the scratch folder: the user's paths the trial removed (kept), one a line, for the report
REMOVED_LOG = ".autowarm-removed"
#: in the scratch folder: a process the script started itself wrapped an optimizer (its pid)
SUBPROCESS_MARK = ".autowarm-subprocess"
_WRITE = set("wax+")
_SYSTEM = ("/dev/", "/proc/", "/sys/")
#: the variables that move a library's cache away from ``~/.cache`` (XDG_CACHE_HOME's default)
CACHE_ENVS = (
    "XDG_CACHE_HOME",
    "HF_HOME",
    "HF_DATASETS_CACHE",
    "HF_HUB_CACHE",
    "TRANSFORMERS_CACHE",
    "TORCH_HOME",
    "TORCHINDUCTOR_CACHE_DIR",
    "TRITON_CACHE_DIR",
)


def shared_folders() -> tuple[str, ...]:
    """The folders whose writes stay where they are, each ending in a separator: the system's
    temp folder (the one the trial would have had: ``TMPDIR`` is its own) and the caches."""
    temp = os.environ.get(SYSTEM_TEMP_ENV) or tempfile.gettempdir()
    caches = [os.environ[name] for name in CACHE_ENVS if os.environ.get(name)]
    caches.append(os.path.join(os.path.expanduser("~"), ".cache"))
    return tuple(dict.fromkeys(os.path.realpath(f) + os.sep for f in (temp, *caches)))


class _Redirect:
    def __init__(self, scratch: str) -> None:
        self.scratch = os.path.realpath(scratch)
        self.shared = shared_folders()
        self.keep = (self.scratch + os.sep, *_SYSTEM)
        cwd = os.path.realpath(os.getcwd()) + os.sep
        # a project checked out under the temp folder: its files are the user's all the same
        self.project = cwd if cwd.startswith(self.shared) else None
        self.written: set[str] = set()  # the user's paths this trial wrote (in its scratch)
        self.deleted: set[str] = set()  # the user's files and folders it removed (kept)
        self.links: set[str] = set()  # the symlinks it made (in its scratch), by the user's path

    def kept(self, real: str) -> bool:
        """Whether a write to the resolved path ``real`` stays where it is."""
        inside = real + os.sep  # a folder counts as inside itself (makedirs of a cache root)
        if inside.startswith(self.keep):
            return True
        return inside.startswith(self.shared) and not (
            self.project is not None and inside.startswith(self.project)
        )

    def gone(self, absolute: str) -> bool:
        """Whether the trial removed ``absolute`` (or a folder above it) and has not written
        it since: the trial sees nothing there, the user's copy stays."""
        return bool(self.deleted) and any(
            absolute == d or absolute.startswith(d + os.sep) for d in self.deleted
        )

    def target(self, path: str) -> str:
        return os.path.join(self.scratch, os.path.abspath(_text(path)).lstrip(os.sep))

    def path_for(self, file: Any, mode: str) -> Any:
        """Where an open of ``file`` with ``mode`` really goes (a bytes path as bytes)."""
        if not isinstance(file, (str, bytes, os.PathLike)):
            return file  # a file descriptor
        path = os.fspath(file)
        if isinstance(path, bytes):  # tensorboard's event writer opens bytes paths
            where = self.path_for(os.fsdecode(path), mode)
            return file if where == os.fsdecode(path) else os.fsencode(where)
        if self.links:
            through = self._through_link(path, mode)
            if through is not None:
                return through
        if not _WRITE & set(mode):  # a read: the trial's copy of what it wrote, if any
            if not self.written and not self.deleted:
                return file  # the common case, every data file a script reads
            absolute = os.path.abspath(path)
            # removed by the trial: its scratch path, where nothing is (or what it made since)
            return self.target(path) if absolute in self.written or self.gone(absolute) else file
        real = os.path.realpath(path)
        absolute = os.path.abspath(path)
        regular = None if self.gone(absolute) else _regular(real)
        if self.kept(real) or regular is False:
            return file
        copy = self.target(path)
        if absolute not in self.written:
            os.makedirs(os.path.dirname(copy), exist_ok=True)
            if regular and ("a" in mode or "+" in mode):
                shutil.copy2(real, copy)  # appending to / updating the user's file: a copy
            self.written.add(absolute)
        return copy

    def _through_link(self, path: str, mode: str) -> str | None:
        """Where a path under a symlink the trial made goes (None if under none): into its
        scratch, or, where the link leads out of it (to a folder of the user's), as a path
        there would (a write lands in the scratch all the same)."""
        absolute = os.path.abspath(path)
        if not any(absolute.startswith(link + os.sep) for link in self.links):
            return None
        inside = self.target(path)
        beyond = os.path.realpath(inside)
        return inside if beyond.startswith(self.scratch + os.sep) else self.path_for(beyond, mode)

    def remove(self, path: Any) -> None:
        """Mark one of the user's paths removed in the trial's view, and log it."""
        absolute = os.path.abspath(_text(path))
        self.deleted.add(absolute)
        with open(os.path.join(self.scratch, REMOVED_LOG), "a") as log:  # kept: scratch
            log.write(absolute + "\n")

    def users(self, path: Any, *, folder: bool) -> bool:
        """Whether ``path`` is one of the user's files (a folder with ``folder``) as the trial
        sees it: there, not kept, not written or removed by the trial."""
        if not isinstance(path, (str, bytes, os.PathLike)):
            return False
        path = _text(path)
        real, absolute = os.path.realpath(path), os.path.abspath(path)
        if self.kept(real) or absolute in self.written or self.gone(absolute):
            return False
        return _regular(real) is (not folder)


def _own_temp_folder() -> None:
    """Forget a temp folder chosen before the trial's ``TMPDIR`` was set (a forked trial
    inherits the fork server's choice), so its temp files go to its own."""
    tempfile.tempdir = None
    mp = sys.modules.get("multiprocessing")
    if mp is not None:  # its pymp-* folder, cached per process once made
        mp.current_process()._config.pop("tempdir", None)  # type: ignore[attr-defined]


_STAT = os.stat  # the real ones: the redirect's own work must not go through itself
_RMTREE = shutil.rmtree


def _text(path: Any) -> str:
    """A path as ``str`` (bytes paths decoded as the file system does)."""
    return os.fsdecode(os.fspath(path))


def _regular(real: str) -> bool | None:
    """True for a regular file, False for anything else there, None where nothing is."""
    try:
        return stat.S_ISREG(_STAT(real).st_mode)
    except OSError:
        return None


def install() -> None:
    """Redirect this process's writes (a no-op outside trials that have a scratch folder)."""
    scratch = os.environ.get(SCRATCH_ENV)
    if not scratch or getattr(builtins.open, "__autowarm_scratch__", False):
        return
    redirect = _Redirect(scratch)
    _own_temp_folder()
    original = builtins.open

    def open_(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        return original(redirect.path_for(file, mode), mode, *args, **kwargs)

    open_.__autowarm_scratch__ = True  # type: ignore[attr-defined]
    builtins.open = io.open = open_  # type: ignore[assignment]
    os.replace = _redirect_move(redirect, os.replace)  # type: ignore[assignment]
    os.rename = _redirect_move(redirect, os.rename)  # type: ignore[assignment]
    # what a script does to a file it just wrote (fsspec chmods the checkpoint it moved;
    # exists / getsize / Path.stat go through os.stat; Lightning removes old top-k files;
    # LightningCLI's config saver asks os.access whether the log folder it made is writable)
    # reaches the trial's copy
    for name in ("stat", "lstat", "readlink", "access", "listxattr", "getxattr"):
        if hasattr(os, name):  # the xattr calls are Linux's
            setattr(os, name, _redirect_path(redirect, getattr(os, name)))
    # what changes a file's metadata (shutil.copy2's copystat: utime, xattrs, chmod; a touch)
    # changes the trial's copy, made first where the file is the user's
    for name in ("chmod", "utime", "truncate", "chown", "setxattr", "removexattr"):
        if hasattr(os, name):
            setattr(os, name, _redirect_path(redirect, getattr(os, name), how="r+"))
    # a hard link (timm's checkpoint saver links last.pth.tar to checkpoint-N.pth.tar)
    os.link = _redirect_link(redirect, os.link)  # type: ignore[assignment]
    # a symlink (a "latest" checkpoint rotated by removing and linking it again)
    os.symlink = _redirect_symlink(redirect, os.symlink)  # type: ignore[assignment]
    # a listing shows the folder as the trial sees it: what it wrote there, less what it
    # removed (a script finding its latest checkpoint by glob, os.walk over its outputs)
    os.listdir = _redirect_listing(redirect, os.listdir, entries=False)  # type: ignore
    os.scandir = _redirect_listing(redirect, os.scandir, entries=True)  # type: ignore
    os.open = _redirect_os_open(redirect, os.open)  # type: ignore[assignment]
    # removing one of the user's files or folders is noted, not done: the trial sees it gone
    os.remove = _redirect_remove(redirect, os.remove, folder=False)  # type: ignore[assignment]
    os.unlink = _redirect_remove(redirect, os.unlink, folder=False)  # type: ignore[assignment]
    os.rmdir = _redirect_remove(redirect, os.rmdir, folder=True)  # type: ignore[assignment]
    shutil.rmtree = _redirect_remove(redirect, shutil.rmtree, folder=True)  # type: ignore
    # a folder the trial makes in the project is its own too (a logger's version_N per trial
    # would pile up empty in the user's lightning_logs): os.makedirs calls os.mkdir
    os.mkdir = _redirect_mkdir(redirect, os.mkdir)  # type: ignore[assignment]
    _redirect_torch_save(redirect)
    _redirect_safetensors(redirect)


def _redirect_path(
    redirect: _Redirect, call: Callable[..., Any], *, how: str = "r"
) -> Callable[..., Any]:
    """``call(path, ...)`` on where ``path`` is for the trial: opened as ``how`` would be."""

    def call_(path: Any = None, *args: Any, **kwargs: Any) -> Any:
        if path is None or kwargs.get("dir_fd") is not None:  # ".", or relative to a folder
            return call(*(() if path is None else (path,)), *args, **kwargs)
        return call(redirect.path_for(path, how), *args, **kwargs)

    return call_


def _redirect_link(redirect: _Redirect, link: Callable[..., None]) -> Callable[..., None]:
    """``os.link(src, dst)``: a link in the trial's scratch to what it wrote; to one of the
    user's files, a copy (a link would let the trial write through it into the user's file)."""

    def link_(src: Any, dst: Any, **kwargs: Any) -> None:
        if any(kwargs.get(k) is not None for k in ("src_dir_fd", "dst_dir_fd")):
            return link(src, dst, **kwargs)  # paths relative to folders: left alone
        if redirect.users(dst, folder=False) or redirect.users(dst, folder=True):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), os.fspath(dst))
        users_file = redirect.users(src, folder=False)
        src, target = redirect.path_for(src, "r"), redirect.path_for(dst, "wb")
        if users_file and target is not dst:
            shutil.copy2(src, target)
            return None
        return link(src, target, **kwargs)

    return link_


def _redirect_symlink(redirect: _Redirect, symlink: Callable[..., None]) -> Callable[..., None]:
    """``os.symlink(src, dst)``: the link is made in the trial's scratch. It points at the
    trial's copy of what it wrote at ``src``, or at where that copy will be if nothing is there
    yet; at a copy of ``src`` where that is one of the user's files (a write through the link
    would reach it), as ``os.link``; else at ``src`` itself (a folder of the user's, a
    dataset), and writes through it land in the scratch all the same."""

    def symlink_(
        src: Any, dst: Any, target_is_directory: bool = False, *, dir_fd: int | None = None
    ) -> None:
        if dir_fd is not None or not isinstance(dst, (str, bytes, os.PathLike)):
            return symlink(src, dst, target_is_directory, dir_fd=dir_fd)
        if redirect.users(dst, folder=False) or redirect.users(dst, folder=True):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), os.fspath(dst))
        link = redirect.path_for(_text(dst), "wb")
        if link == _text(dst):  # the temp folder, a cache: left alone
            return symlink(src, dst, target_is_directory)
        # where src is as the link sees it: relative to the link's folder
        pointed = os.path.join(os.path.dirname(os.path.abspath(_text(dst))), _text(src))
        pointed = os.path.normpath(pointed)
        if redirect.users(pointed, folder=False):
            shutil.copy2(pointed, link)
            return None
        real = os.path.realpath(pointed)
        theirs = redirect.path_for(pointed, "r") == pointed  # not written or removed by the trial
        if theirs and (redirect.kept(real) or _regular(real) is not None):
            symlink(pointed, link, target_is_directory)  # a folder of the user's, a dataset
        else:  # the trial's own, now or later
            symlink(os.path.relpath(redirect.target(pointed), os.path.dirname(link)), link)
        redirect.links.add(os.path.abspath(_text(dst)))
        return None

    return symlink_


def _redirect_listing(
    redirect: _Redirect, call: Callable[..., Any], *, entries: bool
) -> Callable[..., Any]:
    """``os.listdir`` (names) or ``os.scandir`` (``entries``): a folder the trial made or
    removed lists its scratch copy; one of the user's folders lists its own entries less those
    the trial removed, plus what the trial wrote there."""

    def list_(path: Any = None, *args: Any, **kwargs: Any) -> Any:
        given = () if path is None else (path,)
        if isinstance(path, int) or args or kwargs or not (redirect.written or redirect.deleted):
            return call(*given, *args, **kwargs)  # a folder descriptor, or nothing to merge
        where = "." if path is None else path
        seen = redirect.path_for(where, "r")
        if seen is not where:  # the trial's own folder, or one it removed
            return call(seen)
        own = redirect.target(where)
        if _regular(own) is not False:  # no folder of the trial's there
            return call(*given)

        def name(e: Any) -> Any:
            return e.name if entries else e

        folder = os.path.abspath(_text(where))
        try:
            mine = [
                e for e in call(*given) if not redirect.gone(f"{folder}{os.sep}{_text(name(e))}")
            ]
        except FileNotFoundError:
            mine = []
        names = set(map(name, mine))
        as_given = os.fsencode(own) if isinstance(os.fspath(where), bytes) else own
        theirs = [e for e in call(as_given) if name(e) not in names]
        return _Entries(mine + theirs) if entries else mine + theirs

    return list_


class _Entries:
    """``os.scandir``'s result: an iterator of ``DirEntry`` that is its own context manager."""

    def __init__(self, entries: list[Any]) -> None:
        self._it = iter(entries)

    def __iter__(self) -> _Entries:
        return self

    def __next__(self) -> Any:
        return next(self._it)

    def __enter__(self) -> _Entries:
        return self

    def __exit__(self, *_: Any) -> None:
        return None

    def close(self) -> None:
        return None


def _redirect_os_open(redirect: _Redirect, os_open: Callable[..., int]) -> Callable[..., int]:
    """``os.open`` by path, with its flags read as open()'s mode (``tempfile.mkstemp(dir=...)``
    in the project, then a rename over a checkpoint: the atomic save of many scripts)."""

    def os_open_(path: Any, flags: int, mode: int = 0o777, *, dir_fd: int | None = None) -> int:
        if dir_fd is not None:
            return os_open(path, flags, mode, dir_fd=dir_fd)
        if flags & os.O_APPEND:
            how = "a"
        elif flags & os.O_TRUNC:
            how = "w"
        else:  # writing into what is there (a copy of the user's file), or reading
            how = "r+" if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) else "r"
        return os_open(redirect.path_for(path, how), flags, mode)

    return os_open_


def _redirect_remove(
    redirect: _Redirect, remove: Callable[..., None], *, folder: bool
) -> Callable[..., None]:
    """``os.remove``/``unlink`` (files), ``os.rmdir``/``shutil.rmtree`` (folders): the user's
    are only marked gone; what the trial wrote (its scratch copy) is removed for real."""

    def remove_(path: Any, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("dir_fd") is not None:  # relative to a folder: left alone
            return remove(path, *args, **kwargs)
        if redirect.users(path, folder=folder):
            if folder:  # the trial's own files under it go too
                _RMTREE(redirect.target(path), ignore_errors=True)
            redirect.remove(path)
            return None
        return remove(redirect.path_for(path, "r"), *args, **kwargs)

    return remove_


def _redirect_mkdir(redirect: _Redirect, mkdir: Callable[..., None]) -> Callable[..., None]:
    def mkdir_(path: Any, mode: int = 0o777, *, dir_fd: int | None = None) -> None:
        if dir_fd is not None or not isinstance(path, (str, bytes, os.PathLike)):
            return mkdir(path, mode, dir_fd=dir_fd)
        path = _text(path)
        real, absolute = os.path.realpath(path), os.path.abspath(path)
        if redirect.kept(real) or (not redirect.gone(absolute) and _regular(real) is not None):
            return mkdir(path, mode)  # there already: mkdir's own error
        # mkdir's own errors, as the script would see them without the redirect
        if absolute in redirect.written:
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), os.fspath(path))
        parent = os.path.dirname(absolute)
        if parent not in redirect.written and (
            redirect.gone(parent) or _regular(os.path.realpath(parent)) is None
        ):
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), os.fspath(path))
        mkdir(redirect.path_for(path, "w"), mode)  # noted as the trial's, like a file it wrote
        return None

    return mkdir_


def _redirect_move(redirect: _Redirect, move: Callable[..., None]) -> Callable[..., None]:
    """``move(src, dst)`` with ``dst`` redirected as a write, ``src`` as a read (a file the
    trial wrote is in its scratch); across file systems (scratch and project on two), a copy
    and an unlink, as ``shutil.move`` does."""

    def move_(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        if any(v is not None for v in (*args, *kwargs.values())):
            return move(src, dst, *args, **kwargs)  # paths relative to folders: left alone
        users_file = redirect.users(src, folder=False)
        users_folder = not users_file and redirect.users(src, folder=True)
        src, target = redirect.path_for(src, "r"), redirect.path_for(dst, "wb")
        if users_file or users_folder:  # the user's: copied to its new name, marked gone here
            (shutil.copy2 if users_file else shutil.copytree)(src, target)
            redirect.remove(src)
            return None
        try:
            return move(src, target)
        except OSError as e:
            if e.errno != errno.EXDEV or target is dst or not _regular(src):
                raise
        shutil.copy2(src, target)
        os.unlink(src)
        return None

    return move_


def _redirect_torch_save(redirect: _Redirect) -> None:
    try:
        import torch
    except ImportError:
        return

    save = torch.save

    def save_(obj: Any, f: Any, *args: Any, **kwargs: Any) -> Any:
        return save(obj, redirect.path_for(f, "wb"), *args, **kwargs)

    torch.save = save_  # type: ignore[assignment]


def _redirect_safetensors(redirect: _Redirect) -> None:
    """``safetensors.torch.save_file`` (HF's ``save_pretrained``) writes from Rust: its path is
    redirected where it calls the Rust writer, a module global looked up at each call."""
    try:
        import safetensors.torch as st
    except ImportError:
        return
    serialize_file = st.serialize_file

    def serialize_file_(tensors: Any, filename: Any, *args: Any, **kwargs: Any) -> Any:
        return serialize_file(tensors, redirect.path_for(filename, "wb"), *args, **kwargs)

    st.serialize_file = serialize_file_
