"""PostgreSQL databases for the tests: one shared, emptied between tests, and fresh ones for tests that need
their own. The server comes from TRACKMAIL_TEST_POSTGRES (a URL of a role that may create databases).

Measured on the development machine: CREATE DATABASE from a template that already has the schema, then DROP,
costs ~270 ms a test; emptying a shared database with DELETE and a sequence restart costs ~2 ms (TRUNCATE,
which must take every table's exclusive lock, ~70 ms). So function-scoped tests share one database per
session, created with open_db (the schema, and whatever open_db records beside it, like a migration stamp),
and only the model tables are emptied; anything else open_db keeps there (alembic_version) is left alone.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url
from sqlmodel import SQLModel

from tracker import models  # noqa: F401 - registers the tables on SQLModel.metadata
from tracker.db import open_db

BACKENDS = ("sqlite", "postgresql")
ENV = "TRACKMAIL_TEST_POSTGRES"
PREFIX = "pgtest_"


def server_url() -> str | None:
    return os.environ.get(ENV) or None


def _libpq(url: str, database: str | None = None) -> str:
    """A plain libpq URL (psycopg does not read SQLAlchemy's postgresql+psycopg:// spelling)."""
    parsed = make_url(url.replace("postgres://", "postgresql://", 1)).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


def where(url: str) -> str:
    parsed = make_url(url.replace("postgres://", "postgresql://", 1))
    return f"{parsed.host or 'localhost'}:{parsed.port or 5432}"


@cache
def unavailable() -> str | None:
    """Why PostgreSQL tests cannot run (a skip reason), or None; asked once per session."""
    url = server_url()
    hint = f"(set {ENV} to a server URL where the tests may create databases)"
    if url is None:
        return f"PostgreSQL tests need a server: {ENV} is not set {hint}"
    try:
        with psycopg.connect(_libpq(url), connect_timeout=3, autocommit=True):
            pass
    except psycopg.Error:
        return f"PostgreSQL not reachable at {where(url)} {hint}"
    return None


def _admin() -> psycopg.Connection:
    return psycopg.connect(_libpq(server_url()), autocommit=True)


def create_database(label: str = "") -> str:
    """A new empty database; returns its URL (in the postgresql:// spelling users write)."""
    name = f"{PREFIX}{label}{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with _admin() as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return _libpq(server_url(), name)


def drop_database(url: str) -> None:
    """Drop a test database even if something still holds a connection to it (a killed daemon's socket the
    server has not noticed yet); WITH (FORCE) ends those sessions first."""
    name = make_url(url).database
    assert name and name.startswith(PREFIX), f"refusing to drop {name!r}: not a test database"
    with _admin() as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@contextmanager
def fresh_database(label: str = "") -> Iterator[str]:
    """An empty database for the duration of the block, dropped afterwards."""
    url = create_database(label)
    try:
        yield url
    finally:
        drop_database(url)


class SharedDatabase:
    """One database with the schema, emptied before each test that uses it."""

    def __init__(self) -> None:
        self.url = create_database("shared_")
        open_db(self.url).dispose()
        self._conn = psycopg.connect(_libpq(self.url), autocommit=True)
        self._conn.execute("SET lock_timeout = '10s'")  # a leaked transaction's lock fails loudly, never hangs
        self._empty = self._emptying_statement()

    def _emptying_statement(self) -> sql.Composed:
        tables = [table.name for table in reversed(SQLModel.metadata.sorted_tables)]
        sequences = [row[0] for row in self._conn.execute(
            "SELECT sequence_schema || '.' || sequence_name FROM information_schema.sequences")]
        parts = [sql.SQL("DELETE FROM {}").format(sql.Identifier(name)) for name in tables]
        parts += [sql.SQL("ALTER SEQUENCE {} RESTART").format(sql.Identifier(*seq.split("."))) for seq in sequences]
        return sql.SQL("; ").join(parts)

    def others(self, grace: float = 2.0) -> list[str]:
        """Connections to the database besides our own: what a test left open. A connection the test closed
        a moment ago may still be listed while its server process exits, hence the short grace."""
        deadline = time.monotonic() + grace
        while True:
            rows = self._conn.execute(
                "SELECT application_name || ' (' || coalesce(state, '?') || ')' FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()").fetchall()
            if not rows or time.monotonic() > deadline:
                return [row[0] for row in rows]
            time.sleep(0.01)

    def end_others(self) -> None:
        self._conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                           " WHERE datname = current_database() AND pid <> pg_backend_pid()")

    def empty(self) -> None:
        self._conn.execute(self._empty)

    def close(self) -> None:
        self._conn.close()
        drop_database(self.url)


def skip_unless_available() -> None:
    reason = unavailable()
    if reason:
        pytest.skip(reason)


@contextmanager
def database_for(backend: str, folder: Path, label: str = "") -> Iterator[str]:
    """A database of its own for a module-scoped fixture (a long simulation shared by several tests): a SQLite
    file in `folder`, or a fresh PostgreSQL database dropped afterwards. The shared database cannot serve: the
    tests in between empty it."""
    if backend == "sqlite":
        yield f"sqlite:///{folder / 'sim.db'}"
        return
    skip_unless_available()
    with fresh_database(label) as url:
        yield url


def with_database(config_text: str, url: str) -> str:
    """A config file's text pointed at `url`: the bundled [trackmail] `database = ...` line becomes
    `database_url = "..."`, for tests that hand a config file to a subprocess or the CLI."""
    text, count = re.subn(r'^database = .*$', f'database_url = "{url}"', config_text, count=1, flags=re.M)
    assert count == 1, "the config has no `database = ...` line to replace"
    return text
