"""Alembic's entry point, run by `tracker.schema` with an open connection (there is no alembic.ini).

Batch mode lets later revisions ALTER tables on SQLite (which rebuilds them); revisions render the
project's own column types as the plain SQLAlchemy types they store, so old scripts never import
`tracker.models` as it will be in some later version.
"""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy.types import TypeDecorator
from sqlmodel import SQLModel

from tracker import models  # noqa: F401 - registers the tables on SQLModel.metadata


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    """`UTCDateTime` and sqlmodel's `AutoString` are written as the DateTime / String they store."""
    if type_ == "type" and isinstance(obj, TypeDecorator):
        return f"sa.{obj.impl_instance!r}"
    return False


def run() -> None:
    if context.is_offline_mode():
        raise RuntimeError("trackmail migrations run against a database; SQL-script (offline) mode is not supported")
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations through `trackmail migrate` (tracker.schema), which passes a connection")
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        render_as_batch=True,
        render_item=render_item,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run()
