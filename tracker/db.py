"""Engine and session set-up, and the claim-with-lease step every job uses to take its share of work."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event, or_, select, update
from sqlalchemy.engine import Engine, make_url
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


def make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(url, pool_pre_ping=True)
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


def insert_ignore(session: Session, model: type[SQLModel], **values: Any) -> bool:
    """Insert a row unless one with the same unique key exists; True if inserted. Safe under concurrency:
    two daemons planning the same email at once end with one row."""
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    elif dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        raise RuntimeError(f"unsupported database {dialect}")
    # the values go as parameters, not into the statement: one cached statement instead of building and
    # caching a new one per row, the largest cost of applying a courier answer (bench/pipeline.py)
    result = session.execute(insert(model.__table__).on_conflict_do_nothing(), values)  # type: ignore[attr-defined]
    return result.rowcount == 1


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
