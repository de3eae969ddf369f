"""Engine and session set-up, and the claim-with-lease step every job uses to take its share of work."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event, literal_column, or_, select, update
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, InterfaceError, OperationalError
from sqlmodel import Session, SQLModel, create_engine

from tracker import models  # noqa: F401 - registers the tables on SQLModel.metadata
from tracker.schema import ensure_schema


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers (the CLI) never block the daemon
    cursor.execute("PRAGMA synchronous=NORMAL")  # durable across a process crash, which is what we fear
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


class DatabaseError(Exception):
    """A database that cannot be used as configured; the CLI prints it on one line and exits with 2."""

    exit_code = 2


class UnsupportedDatabase(DatabaseError, ValueError):
    """database_url names a database or driver trackmail does not run on."""


class InvalidDatabaseUrl(DatabaseError, ValueError):
    """database_url cannot be read as a URL (e.g. a port that is not a number)."""


class DatabaseUnavailable(DatabaseError):
    """The database server cannot be reached or refuses us at start. Names host, port and database; never the
    password, which the driver's own message may echo back in a connection string."""

    def __init__(self, host: str, port: int, database: str, reason: str) -> None:
        self.host, self.port, self.database, self.reason = host, port, database, reason
        super().__init__(f"cannot connect to PostgreSQL at {host}:{port}, database {database!r}: {reason}")


# Scheme spellings users write, mapped to the psycopg 3 dialect; SQLAlchemy's bare "postgresql" means psycopg2.
_POSTGRES_SCHEMES = {"postgresql", "postgresql+psycopg"}  # postgres:// is rewritten to postgresql:// first


def _parse(url: str) -> URL:
    """`make_url`, with its errors typed; they never quote the URL, which may hold a password."""
    try:
        return make_url(url)
    except (ArgumentError, ValueError) as exc:
        kind = "a port that is not a number" if isinstance(exc, ValueError) else "not a database URL"
        raise InvalidDatabaseUrl(f"database_url: {kind}; expected sqlite:///path.db or "
                                 "postgresql://user:password@host:5432/database") from None


def _postgres_url(url: str) -> URL:
    parsed = _parse(url.replace("postgres://", "postgresql://", 1) if url.startswith("postgres://") else url)
    if parsed.drivername not in _POSTGRES_SCHEMES:
        raise UnsupportedDatabase(f"database_url: unsupported database {parsed.drivername!r}; "
                                  "use sqlite:///path.db or postgresql://user:password@host/database")
    return parsed.set(drivername="postgresql+psycopg")


def _explain(exc: Exception, password: str | None) -> str:
    """The driver's reason on one line, without the password even if the server or driver quoted it."""
    reason = " ".join(str(getattr(exc, "orig", None) or exc).split())
    return reason.replace(password, "***") if password else reason


def make_engine(url: str) -> Engine:
    """An engine for `url`: SQLite (WAL, foreign keys) or PostgreSQL through psycopg 3.

    For PostgreSQL one connection is tried at once, so a wrong host or password stops the daemon at start with
    DatabaseUnavailable instead of a traceback at the first job. The pool is sized for a daemon: four jobs,
    the web side and the CLI rarely need more than a handful of connections; pre-ping replaces connections
    the server closed while idle (restart, failover, idle timeout).
    """
    if url.startswith("sqlite"):
        parsed = _parse(url)
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    parsed = _postgres_url(url)
    engine = create_engine(
        parsed,
        pool_size=5,
        max_overflow=10,
        pool_pre_ping=True,
        pool_recycle=1800,
        pool_timeout=30,
        connect_args={"connect_timeout": 10, "application_name": "trackmail"},
    )
    try:
        with engine.connect():
            pass
    except (OperationalError, InterfaceError) as exc:
        engine.dispose()
        raise DatabaseUnavailable(parsed.host or "localhost", parsed.port or 5432, parsed.database or "",
                                  _explain(exc, parsed.password)) from None
    return engine


def open_db(url: str) -> Engine:
    """An engine on a database whose schema is the one this code needs. A new, empty database is created
    at the newest revision; an older or newer one raises `tracker.schema.SchemaError` (SchemaOutdated says
    to run `trackmail migrate`), so nothing ever writes into tables of the wrong shape."""
    engine = make_engine(url)
    try:
        ensure_schema(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine


def _dialect_insert(session: Session) -> Any:
    """The `insert` construct with ON CONFLICT for this session's database."""
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    elif dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        raise RuntimeError(f"unsupported database {dialect}")
    return insert


def insert_ignore(session: Session, model: type[SQLModel], **values: Any) -> bool:
    """Insert a row unless one with the same unique key exists; True if inserted. Safe under concurrency:
    two daemons planning the same email at once end with one row."""
    insert = _dialect_insert(session)
    # RETURNING, not rowcount: SQLAlchemy with psycopg 3 may report an INSERT's rowcount as -1, so on PostgreSQL
    # every insert looked ignored; a row comes back only when it was inserted (SQLite has RETURNING since 3.35).
    # The values go as parameters, not into the statement: one cached statement instead of building and caching
    # a new one per row, the largest cost of applying a courier answer (bench/pipeline.py).
    table = model.__table__  # type: ignore[attr-defined]
    statement = insert(table).on_conflict_do_nothing().returning(literal_column("1"))
    return session.execute(statement, values).first() is not None


def insert_ignore_many(session: Session, model: type[SQLModel], rows: list[dict[str, Any]], key: str) -> int:
    """`insert_ignore` for many rows in one statement (batched by SQLAlchemy); how many were new. One round
    trip per batch instead of one per row: on PostgreSQL the round trips were half of applying courier answers."""
    table = model.__table__  # type: ignore[attr-defined]
    statement = _dialect_insert(session)(table).on_conflict_do_nothing().returning(table.c[key])
    return len(session.execute(statement, rows).all())

def claim(
    session: Session,
    model: type[SQLModel],
    *,
    due: Any,
    now: datetime,
    lease: timedelta,
    limit: int,
    where: Sequence[Any] = (),
    order_by: Any = None,
) -> list[int]:
    """Lease up to `limit` due rows to this worker and return their ids; the caller commits.

    On PostgreSQL, `FOR UPDATE SKIP LOCKED` lets several daemons claim side by side without waiting on
    each other; SQLite ignores it and serialises writers instead. A lease that runs out (a crashed worker)
    makes the row claimable again.
    """
    claimed_until = model.claimed_until  # type: ignore[attr-defined]
    query = (
        select(model.id)  # type: ignore[attr-defined]
        .where(due <= now, or_(claimed_until.is_(None), claimed_until < now), *where)
        .order_by(order_by if order_by is not None else due)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    ids = list(session.execute(query).scalars())
    if ids:
        session.execute(
            update(model).where(model.id.in_(ids)).values(claimed_until=now + lease)  # type: ignore[attr-defined]
        )
    return ids
