"""Shared fixtures: the bundled config pointed at a temporary database and outbox (rows: tests/factories.py).

Every test that uses a database runs on both backends, test_x[sqlite] and test_x[postgresql]: those that use
`app`, and those that (directly or through one of their fixtures) ask for `database_url`. A test that only
reads `config` (rendering, say) runs once, on SQLite's settings. PostgreSQL tests skip, with the reason, when
TRACKMAIL_TEST_POSTGRES is unset or its server unreachable (tests/postgres.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
import respx.mocks
from sqlalchemy.engine import Engine

from tests import postgres
from tests.factories import REPO, T0
from tracker.app import App
from tracker.clock import ManualClock
from tracker.config import Config, load
from tracker.db import open_db

# The adapters' clients run on the aiohttp transport (carriers/http.py), below which respx's default patching
# (httpcore's pool) never sees a request; respx's "httpx" mocker patches the client itself, whatever its
# transport, so every @respx.mock keeps intercepting (tests/carriers/test_http.py checks it does).
respx.mocks.DEFAULT_MOCKER = respx.mocks.HTTPXMocker.name


def _uses_database(metafunc: pytest.Metafunc) -> bool:
    """`app`, or `database_url` asked for by the test or one of its fixtures other than `config` (which asks
    only to fill in its URL: rendering tests read `config` and never open it)."""
    if "app" in metafunc.fixturenames or "database_url" in metafunc.definition._fixtureinfo.argnames:
        return True
    defs = metafunc.definition._fixtureinfo.name2fixturedefs
    return any("database_url" in d[-1].argnames for name, d in defs.items() if name != "config")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames and _uses_database(metafunc):
        metafunc.parametrize("backend", postgres.BACKENDS, indirect=True)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> pytest.TestReport:
    """Fold the PostgreSQL skips into one summary line instead of one per test."""
    report = yield
    if report.skipped and isinstance(report.longrepr, tuple) and postgres.ENV in report.longrepr[2]:
        report.longrepr = (postgres.__file__, postgres.skip_unless_available.__code__.co_firstlineno + 3,
                           report.longrepr[2])
    return report


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    return getattr(request, "param", "sqlite")


_shared: postgres.SharedDatabase | None = None


def shared_postgres() -> postgres.SharedDatabase:
    global _shared
    if _shared is None:
        _shared = postgres.SharedDatabase()
    return _shared


def pytest_sessionfinish(session: pytest.Session) -> None:
    if _shared is not None:
        _shared.close()


@pytest.fixture
def database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """An empty database for this test: a SQLite file, or the session's PostgreSQL database emptied.

    After the test, any connection it left open to PostgreSQL fails the test: a daemon that leaks connections
    exhausts the server's limit, and the next test could not empty the tables under its locks."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    postgres.skip_unless_available()
    shared = shared_postgres()
    shared.empty()
    yield shared.url
    leftover = shared.others()
    if leftover:
        shared.end_others()
        pytest.fail(f"the test left {len(leftover)} PostgreSQL connection(s) open: {', '.join(leftover)}")


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on this test's empty database, schema made."""
    made = open_db(database_url)
    yield made
    made.dispose()


@pytest.fixture
def config(tmp_path: Path, database_url: str) -> Config:
    bundled = load(REPO / "config.toml")
    emails = dataclasses.replace(bundled.emails, outbox_dir=tmp_path / "outbox")
    return dataclasses.replace(bundled, database_url=database_url, emails=emails)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def app(config: Config, clock: ManualClock):
    engine = open_db(config.database_url)
    application = App.create(config, clock, engine=engine)
    yield application
    engine.dispose()
