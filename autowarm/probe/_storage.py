"""Where probe results live: an Optuna storage, named by URL.

- no URL: an embedded SQLite file ``.autowarm/autowarm.db`` in the working directory, which
  opens in optuna-dashboard (``optuna-dashboard sqlite:///.autowarm/autowarm.db``);
- ``sqlite:///…``, ``postgresql://…``, ``mysql://…``: any SQLAlchemy URL (Optuna ``RDBStorage``);
- ``journal:///path/to/file.log`` or a path ending in ``.log``/``.journal``/``.jsonl``: an
  Optuna ``JournalStorage`` file (several processes may share it without a database server).

A password in a URL is never printed: every message goes through :func:`mask_url`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

from autowarm._errors import AutowarmError
from autowarm._io import write_problem

if TYPE_CHECKING:
    import optuna

#: The default store, relative to the working directory.
DEFAULT_DIR = ".autowarm"
DEFAULT_DB = "autowarm.db"
_JOURNAL_SUFFIXES = (".log", ".journal", ".jsonl")
#: The password after ``user:`` in the netloc ...
_NETLOC_PASSWORD = re.compile(
    r"(?P<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]*:)(?P<pw>[^@\s]*)(?P<at>@)"
)
#: ... and in the query string (libpq's ``password``/``sslpassword``, MySQL drivers' ``passwd``);
#: its empty ``at`` lets one substitution serve both.
_QUERY_PASSWORD = re.compile(
    r"(?P<head>[?&](?:ssl)?(?:password|passwd|pwd)=)(?P<pw>[^&#\s'\"]*)(?P<at>)", re.IGNORECASE
)
_PASSWORDS = (_NETLOC_PASSWORD, _QUERY_PASSWORD)
#: ``fail(why, fix)``: the one-line error for a storage URL (see :func:`_failure`).
_Fail = Callable[..., AutowarmError]
_REACHABLE = "pass a reachable Optuna storage URL with --storage (e.g. sqlite:///autowarm.db)"
_SQLITE_FILE = "pass --storage sqlite:///path/to/file.db"
#: ``pip install`` names of the database drivers SQLAlchemy imports, by module.
#: seconds after which a journal file's lock counts as left behind by a killed worker
JOURNAL_LOCK_GRACE_S = 3
#: how often a worker retries opening a storage that another worker is creating right now
_CREATE_ATTEMPTS = 5
#: what losing that race looks like (PostgreSQL, SQLite)
_RACING = ("already exists", "duplicate key", "UniqueViolation", "UNIQUE constraint", "locked")
_DRIVERS = {
    "psycopg2": "psycopg2-binary",
    "psycopg": "'autowarm[postgres]'",  # psycopg 3, what postgresql:// uses
    "MySQLdb": "mysqlclient",
    "pymysql": "PyMySQL",
    "mysql": "mysql-connector-python",
}


def mask_url(url: str) -> str:
    """``postgresql://bob:secret@db/x`` -> ``postgresql://bob:***@db/x``; the same for
    ``…/x?password=secret``."""
    for pattern in _PASSWORDS:
        url = pattern.sub(lambda m: f"{m['head']}***{m['at']}", url)
    return url


def _secrets(url: str) -> list[str]:
    """Every password in ``url``, as written and percent-decoded (a driver may echo either)."""
    found = [m["pw"] for pattern in _PASSWORDS for m in pattern.finditer(url) if m["pw"]]
    return sorted({*found, *map(unquote_plus, found)}, key=len, reverse=True)


def default_url(cwd: str | os.PathLike[str] | None = None) -> str:
    return f"sqlite:///{Path(cwd or '.') / DEFAULT_DIR / DEFAULT_DB}"


def _journal_path(url: str) -> str | None:
    """The file of a journal storage: ``journal:///tmp/x.log`` is ``/tmp/x.log`` (a file URL,
    as users write them), ``journal:x.log`` and a bare ``x.log`` / ``runs/x.jsonl`` are relative
    to the working directory."""
    if url.startswith("journal://"):
        return "/" + url[len("journal://") :].lstrip("/")
    if url.startswith("journal:"):
        return url[len("journal:") :]
    if "://" not in url and url.endswith(_JOURNAL_SUFFIXES):
        return url
    return None


def open_storage(url: str | None, *, create: bool = True) -> tuple[Any, str]:
    """Open (and with ``create`` make) the storage; return ``(storage, masked_url)``.

    Any failure is one :class:`AutowarmError` line naming the masked URL, the problem and its
    fix; nothing is created when the URL is wrong (a bad scheme, a missing folder, an empty
    SQLite path, an unreachable server).
    """
    url = url if url is not None else _default_store(create)
    fail = _failure(url)
    journal = _journal_path(url)
    if journal is not None:
        return _open_journal(Path(journal), create=create, fail=fail), mask_url(url)
    if "://" not in url:
        raise fail(
            "not a storage URL",
            "pass sqlite:///file.db, postgresql://…, or journal:///file.log with --storage",
        )
    if url.startswith("sqlite"):
        _check_sqlite_path(url, create=create, fail=fail)
    return _open_rdb(url, fail=fail), mask_url(url)


def _check_sqlite_path(url: str, *, create: bool, fail: _Fail) -> None:
    """SQLite would create a database file, or silently use memory for an empty path; refuse
    an empty path, memory, a missing folder or (for show) a missing file so a typo writes
    nothing and no probe runs into a database that forgets its trials."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError as e:
        raise fail(e) from None
    if parsed.get_backend_name() != "sqlite":
        return
    database = parsed.database
    if not database:
        raise fail("the database path is empty", _SQLITE_FILE)
    if database == ":memory:":
        raise fail("an in-memory database keeps no trials", _SQLITE_FILE)
    path = Path(database)
    if not path.parent.is_dir():
        raise fail(f"folder {str(path.parent)!r} does not exist")
    if not create and not path.exists():
        raise fail("no such database file")
    problem = write_problem(path) if create else None
    if problem is not None:
        raise fail(problem, None)


def _default_store(create: bool) -> str:
    """``sqlite:///.autowarm/autowarm.db``, its folder made (probe) or required (show)."""
    folder = Path(DEFAULT_DIR)
    if not create and not (folder / DEFAULT_DB).exists():
        raise AutowarmError(
            f"no probe results in {folder / DEFAULT_DB}; run `autowarm probe train.py` "
            "first, or pass --storage URL."
        )
    if create:
        try:
            folder.mkdir(exist_ok=True)
        except OSError as e:
            raise AutowarmError(
                f"cannot create {str(folder)!r}: {(e.strerror or 'failed').lower()}; "
                "pass --storage URL."
            ) from None
    return f"sqlite:///{folder / DEFAULT_DB}"


def _failure(url: str) -> _Fail:
    """The one-line error for ``url``: its passwords masked in the URL and in the cause, the
    problem, then one fix (by default: pass a reachable URL; ``None`` when ``why`` names it)."""
    shown, hidden = mask_url(url), _secrets(url)

    def fail(why: object, fix: str | None = _REACHABLE) -> AutowarmError:
        text = str(why).strip().splitlines()[0] if str(why).strip() else type(why).__name__
        text = text.replace(url, shown)
        for secret in hidden:
            # whole words only: a short password ("p") must not mangle "import"
            text = re.sub(rf"(?<![\w%]){re.escape(secret)}(?![\w%])", "***", text)
        text = text.rstrip(".") + (f"; {fix}" if fix else "")
        return AutowarmError(f"storage {shown!r} cannot be opened: {text}.")

    return fail


def _open_journal(path: Path, *, create: bool, fail: _Fail) -> Any:
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    if not path.parent.is_dir():
        raise fail(f"folder {str(path.parent)!r} does not exist")
    if not create and not path.exists():
        raise fail("no such journal file")
    problem = write_problem(path)  # even to read, Optuna writes a lock file next to it
    if problem is not None:
        raise fail(problem, None)
    try:
        # a lock is held for one append (milliseconds): one older than JOURNAL_LOCK_GRACE_S
        # was left by a killed worker, so break it then, not after Optuna's default 30 s
        lock = JournalFileOpenLock(str(path), grace_period=JOURNAL_LOCK_GRACE_S)
        return optuna.storages.JournalStorage(JournalFileBackend(str(path), lock_obj=lock))
    except Exception as e:
        raise fail(e) from None


def _open_rdb(url: str, *, fail: _Fail) -> Any:

    engine_kwargs: dict[str, Any] = {}
    if url.startswith(("postgresql", "mysql")):
        engine_kwargs = {"connect_args": {"connect_timeout": 10}}
    url = _with_installed_driver(url)
    try:
        storage = _create_rdb(url, engine_kwargs)
    except Exception as e:
        missing = _missing_module(e)
        if missing is not None:
            package = _DRIVERS.get(missing, missing)
            raise fail(
                f"its database driver {missing!r} is not installed", f"pip install {package}"
            ) from None
        raise fail(e) from None
    if url.startswith("sqlite:"):
        _fast_sqlite(storage)
    return storage


def _with_installed_driver(url: str) -> str:
    """``postgresql://`` names no driver and SQLAlchemy picks one (psycopg 3 in 2.1,
    psycopg2 before): use whichever of them is installed, so either works."""
    if not url.startswith("postgresql://"):
        return url
    import importlib.util

    for module, dialect in (("psycopg", "psycopg"), ("psycopg2", "psycopg2")):
        if importlib.util.find_spec(module) is not None:
            return f"postgresql+{dialect}://" + url[len("postgresql://") :]
    return url  # SQLAlchemy's own error names the missing module; _DRIVERS the package


def _create_rdb(url: str, engine_kwargs: dict[str, Any]) -> Any:
    """``RDBStorage(url)``, retried while another worker creates the same fresh database:
    creating the tables is not atomic (PostgreSQL: duplicate key in pg_type; SQLite: table
    studies already exists), and the second try finds them made."""
    import optuna
    from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

    for attempt in range(_CREATE_ATTEMPTS):
        try:
            return optuna.storages.RDBStorage(
                url, engine_kwargs=engine_kwargs, skip_compatibility_check=False
            )
        except (IntegrityError, OperationalError, ProgrammingError) as e:
            racing = any(s in str(e) for s in _RACING)
            if not racing or attempt == _CREATE_ATTEMPTS - 1:
                raise
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


def _missing_module(e: BaseException) -> str | None:
    """The top-level module whose import failed somewhere in ``e``'s chain (Optuna wraps
    SQLAlchemy's ``ModuleNotFoundError: No module named 'psycopg2'`` in a vaguer ImportError)."""
    seen: set[int] = set()
    cause: BaseException | None = e
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, ModuleNotFoundError) and cause.name:
            return cause.name.split(".")[0]
        cause = cause.__cause__ or cause.__context__
    return None


def _fast_sqlite(storage: Any) -> None:
    """WAL journal + synchronous=NORMAL: a trial's ~30 small writes cost ~0.1 s instead of
    ~1.3 s of fsyncs (measured with scripts/bench_probe.py); still crash-consistent, and
    optuna-dashboard reads a WAL database as usual."""
    from sqlalchemy import event

    @event.listens_for(storage.engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    storage.engine.dispose()  # connections opened from now on get the pragmas


def default_study_name(script: str, args: Sequence[str], config: dict[str, Any]) -> str:
    """``train-1a2b3c4d``: the script's stem and a hash of what makes trials comparable (the
    script's file name, its args and the probe design, which holds the script's content), so
    the same command resumes, a changed probe starts a new study, and two checkouts at other
    paths -- another machine -- share one study."""
    key = json.dumps([Path(script).name, list(args), config], sort_keys=True, separators=(",", ":"))
    return f"{Path(script).stem}-{hashlib.sha1(key.encode()).hexdigest()[:8]}"


def latest_study_name(storage: Any) -> str:
    """The study with the most recent trial (for ``autowarm show`` without ``--study``)."""
    import optuna

    summaries = optuna.get_all_study_summaries(storage, include_best_trial=False)
    if not summaries:
        raise AutowarmError("the storage holds no study; run `autowarm probe train.py` first.")

    def last(s: optuna.study.StudySummary) -> float:
        return s.datetime_start.timestamp() if s.datetime_start else 0.0

    return max(summaries, key=last).study_name
