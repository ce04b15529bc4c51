"""Shared fixtures: real services the tests use when present (CI starts them)."""

from __future__ import annotations

import os
import signal

import pytest

#: set by .ci/run, which starts a PostgreSQL server on 127.0.0.1 (see .ci/postgres)
POSTGRES_ENV = "AUTOWARM_TEST_POSTGRES"


@pytest.fixture
def postgres_url() -> str:
    """A PostgreSQL URL on a real server, with an empty database for this test. Without one
    the test is skipped -- except under CI, where a missing server is a failure."""
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {POSTGRES_ENV} is not: .ci/run must start PostgreSQL.")
        pytest.skip(f"no PostgreSQL server ({POSTGRES_ENV} unset)")
    import sqlalchemy

    engine = sqlalchemy.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:  # a clean slate: drop Optuna's tables of earlier tests
            conn.execute(sqlalchemy.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public;"))
            conn.commit()
    except sqlalchemy.exc.OperationalError as e:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but PostgreSQL at {url} is unreachable: {e}")
        pytest.skip(f"PostgreSQL at {url} is unreachable")
    finally:
        engine.dispose()
    return url


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # every test on the PostgreSQL server starts by dropping its schema: under pytest-xdist
    # (`-n 2 --dist loadgroup`) they share one worker and run one at a time
    for item in items:
        if "postgres_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("postgres"))


def pytest_configure(config: pytest.Config) -> None:
    # a run started in the background by a script (`cmd &`) inherits SIGINT ignored, and so
    # would every process the Ctrl-C tests start: give Python its KeyboardInterrupt back
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
