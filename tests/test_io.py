"""autowarm._io: what a write does to the path it is given (issue 14, cases 1, 2, 3 and 13)."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from autowarm import AutowarmError, Recipe
from autowarm._io import atomic_write_bytes, atomic_write_text, check_writable

_REAL_REPLACE = os.replace


@pytest.fixture
def no_replace(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, str]]]:
    """``os.replace`` refuses any destination outside the test's folders: a buggy write can
    then never turn /dev/null into a regular file (tests run as root). Records each call."""
    calls: list[tuple[str, str]] = []

    def guarded(src: Any, dst: Any, **kwargs: Any) -> None:
        calls.append((str(src), str(dst)))
        if str(dst).startswith("/dev/"):
            raise AssertionError(f"os.replace({src!r}, {dst!r}) would replace a device")
        _REAL_REPLACE(src, dst, **kwargs)

    monkeypatch.setattr(os, "replace", guarded)
    yield calls


@pytest.fixture
def umask() -> Iterator[Any]:
    """Set the umask for one test (``umask(0o027)``), restoring the old one after."""
    old = os.umask(0o022)
    try:
        yield os.umask
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


# ----------------------------------------------------------------------------- case 1
@pytest.mark.parametrize("write", ["bytes", "recipe"])
def test_out_dev_null_is_written_in_place_not_replaced(
    no_replace: list[tuple[str, str]], write: str
) -> None:
    if write == "bytes":  # `autowarm schedule --png /dev/null`, `probe --png`
        atomic_write_bytes("/dev/null", b"\x89PNG")
    else:  # `autowarm probe --out /dev/null`
        Recipe(3e-4, 10).save("/dev/null")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    assert no_replace == []
    check_writable("/dev/null")


def test_out_dev_full_is_one_line_not_replaced(no_replace: list[tuple[str, str]]) -> None:
    with pytest.raises(AutowarmError) as e:
        atomic_write_text("/dev/full", "{}")
    assert str(e.value).startswith("cannot write '/dev/full': no space left on device; ")
    assert "\n" not in str(e.value)
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode) and no_replace == []


def test_out_fifo_is_written_in_place_not_replaced(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    # a reader opened first (non-blocking) lets the write open at once; the data waits in the
    # pipe's buffer, so no thread is needed
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        check_writable(fifo)
        atomic_write_text(fifo, '{"peak_lr": 0.001}')
        got = os.read(reader, 1 << 16)
    finally:
        os.close(reader)
    assert got == b'{"peak_lr": 0.001}'
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]


def test_symlinked_out_is_written_through_to_its_target_atomically(
    tmp_path: Path, no_replace: list[tuple[str, str]]
) -> None:
    (tmp_path / "runs").mkdir()
    target = tmp_path / "runs" / "autowarm.json"
    target.write_text("old")
    link = tmp_path / "autowarm.json"
    link.symlink_to(Path("runs") / "autowarm.json")  # relative, as `ln -s` makes it
    atomic_write_text(link, "new")
    assert link.is_symlink() and os.readlink(link) == str(Path("runs") / "autowarm.json")
    assert target.read_text() == "new"
    # atomically there: a temporary file next to the target, renamed over it
    [(src, dst)] = no_replace
    assert Path(dst) == target and Path(src).parent == target.parent


def test_dangling_symlink_creates_its_target(tmp_path: Path) -> None:
    link = tmp_path / "plot.png"
    link.symlink_to(tmp_path / "made.png")
    check_writable(link)
    atomic_write_bytes(link, b"png")
    assert link.is_symlink() and (tmp_path / "made.png").read_bytes() == b"png"


def test_symlink_into_missing_folder_names_that_folder(tmp_path: Path) -> None:
    link = tmp_path / "r.json"
    link.symlink_to(tmp_path / "gone" / "r.json")
    with pytest.raises(AutowarmError, match=r"folder '.*gone' does not exist\.$"):
        check_writable(link)
    assert link.is_symlink()


def test_regular_file_is_still_replaced_atomically(
    tmp_path: Path, no_replace: list[tuple[str, str]]
) -> None:
    path = tmp_path / "autowarm.json"
    path.write_text("old")
    atomic_write_text(path, "new")
    assert path.read_text() == "new" and not path.is_symlink()
    assert [Path(dst) for _, dst in no_replace] == [path]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["autowarm.json"]


# ----------------------------------------------------------------------------- case 2
@pytest.mark.parametrize(
    ("mask", "expected"),
    [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)],
    ids=["umask-022", "umask-002", "umask-077"],
)
def test_new_output_file_gets_open_mode_not_0600(
    tmp_path: Path, umask: Any, mask: int, expected: int
) -> None:
    umask(mask)
    Recipe(3e-4, 10).save(tmp_path / "autowarm.json")
    atomic_write_bytes(tmp_path / "map.png", b"png")
    assert _mode(tmp_path / "autowarm.json") == expected
    assert _mode(tmp_path / "map.png") == expected


def test_replaced_output_file_keeps_its_mode(tmp_path: Path, umask: Any) -> None:
    umask(0o077)
    path = tmp_path / "autowarm.json"
    path.write_text("old")
    path.chmod(0o640)
    atomic_write_text(path, "new")
    assert path.read_text() == "new" and _mode(path) == 0o640


# ----------------------------------------------------------------------------- case 3
@pytest.mark.parametrize("failing", ["write", "fsync"])
def test_disk_full_is_one_line_old_recipe_intact_temp_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    path = tmp_path / "autowarm.json"
    Recipe(3e-4, 10).save(path)
    old = path.read_bytes()
    real = getattr(os, failing)

    def full(fd: int, *args: Any) -> Any:
        if fd > 2:  # leave the test's own stdout/stderr alone
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd, *args)

    monkeypatch.setattr(os, failing, full)
    with pytest.raises(AutowarmError) as e:
        Recipe(1e-3, 20).save(path)
    message = str(e.value)
    assert message.startswith(f"cannot write {str(path)!r}: no space left on device; ")
    assert "\n" not in message
    assert path.read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["autowarm.json"]


# ----------------------------------------------------------------------------- case 13
def test_read_only_mount_says_read_only_file_system(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = os.statvfs

    class ReadOnly:
        def __init__(self, path: Any) -> None:
            self.f_flag = real(path).f_flag | os.ST_RDONLY

    monkeypatch.setattr(os, "statvfs", ReadOnly)
    for call in (check_writable, lambda p: atomic_write_text(p, "{}")):
        with pytest.raises(AutowarmError) as e:
            call(tmp_path / "autowarm.json")
        message = str(e.value)
        assert "is on a read-only file system; pass a path on a writable file system." in message
        assert "permission denied" not in message and message.count("; ") == 1
    assert list(tmp_path.iterdir()) == []


def test_os_errors_are_named_with_one_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> int:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(AutowarmError) as e:
        atomic_write_text(tmp_path / "autowarm.json", "{}")
    assert str(e.value) == (
        f"cannot write {str(tmp_path / 'autowarm.json')!r}: read-only file system; "
        "pass a path on a writable file system."
    )


def test_directory_is_refused_with_one_fix(tmp_path: Path) -> None:
    for call in (check_writable, lambda p: atomic_write_text(p, "{}")):
        with pytest.raises(AutowarmError) as e:
            call(tmp_path)
        assert (
            str(e.value) == f"cannot write {str(tmp_path)!r}: it is a directory; pass a file path."
        )
