"""Which revision a database's schema is at, and bringing it to the one this code needs (Alembic).

Revision ids are the version scripts' file names, numbered in order (0001_initial, 0002_...). Reading the
folder tells the newest without importing Alembic, so opening a database that is up to date costs two
small queries; Alembic is imported only to create, stamp or upgrade.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlmodel import SQLModel

from tracker import models  # noqa: F401 - registers the tables on SQLModel.metadata

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version"
_REVISION_FILE = re.compile(r"^\d{4}_[a-z0-9_]+$")
_PG_LOCK = 7_372_616_3  # any constant: the advisory lock that makes schema changes one at a time


class SchemaError(Exception):
    """The database's schema is not one this code can use; the message says what to do. Exit code 2."""

    exit_code = 2


class SchemaOutdated(SchemaError):
    """An older schema: `trackmail migrate` upgrades it. `explain` names the exact command to run."""

    def __init__(self, current: str | None, required: str) -> None:
        self.current = current
        self.required = required
        super().__init__(self.explain("trackmail migrate"))

    def describe(self) -> str:
        where = f"at revision {self.current}" if self.current else "from before trackmail had migrations"
        return f"the database schema is {where}; this version of trackmail needs revision {self.required}"

    def explain(self, command: str) -> str:
        return f"{self.describe()}. Back up the database, then run `{command}` to upgrade it"


class SchemaTooNew(SchemaError):
    """A revision this code has never heard of: a newer trackmail upgraded the database."""

    def __init__(self, current: str, newest: str) -> None:
        self.current = current
        self.newest = newest
        super().__init__(f"the database schema is at revision {current}, which this version of trackmail does not "
                         f"know (its newest is {newest}): a newer trackmail has upgraded it. Run that newer version, "
                         f"or restore a backup taken before the upgrade")


class SchemaMismatch(SchemaError):
    """trackmail's tables without a revision, in a shape unlike the first revision: nothing safe to stamp."""

    def __init__(self, first: str, differences: list[str]) -> None:
        self.differences = differences
        super().__init__(f"the database has trackmail tables but no schema revision, and they differ from revision "
                         f"{first}: {'; '.join(differences)}. trackmail will not guess which version made them: "
                         f"start a new database, or bring these tables to revision {first} by hand and run "
                         f"`trackmail migrate` again")


def migrate_command(config_path: str | Path) -> str:
    """The command line that upgrades the database of the config at `config_path`."""
    return f"trackmail migrate --config {shlex.quote(str(config_path))}"


@dataclass(frozen=True)
class Migrations:
    """The revision scripts: the bundled folder, plus any extra ones (tests use one to play a later version)."""

    extra_folders: tuple[Path, ...] = ()

    @property
    def folders(self) -> tuple[Path, ...]:
        return (MIGRATIONS / "versions", *self.extra_folders)

    @cached_property
    def revisions(self) -> tuple[str, ...]:
        names = sorted(p.stem for folder in self.folders for p in folder.glob("*.py") if _REVISION_FILE.match(p.stem))
        if not names:
            raise RuntimeError(f"no revision scripts in {', '.join(map(str, self.folders))}: a broken installation")
        return tuple(names)

    @property
    def head(self) -> str:
        return self.revisions[-1]

    def alembic_config(self, connection: Connection | None = None) -> Any:
        """Alembic's settings, made here instead of read from an alembic.ini; env.py uses `connection`."""
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.set_main_option("path_separator", "os")
        config.set_main_option("version_locations", os.pathsep.join(map(str, self.folders)))
        config.attributes["connection"] = connection
        return config

    @cached_property
    def scripts(self) -> Any:
        """Alembic's view of the revision scripts, loaded once per process (stamping a new database
        through env.py would re-read every script each time)."""
        from alembic.script import ScriptDirectory

        return ScriptDirectory.from_config(self.alembic_config())

    def stamp(self, connection: Connection, revision: str) -> None:
        """Record `revision` as the schema's, changing nothing else."""
        from alembic.runtime.migration import MigrationContext

        MigrationContext.configure(connection).stamp(self.scripts, revision)


BUNDLED = Migrations()


@dataclass(frozen=True)
class DatabaseState:
    revision: str | None  # None: no alembic_version row
    tables: frozenset[str]  # trackmail's own tables present (other applications' tables are ignored)

    @property
    def empty(self) -> bool:
        return self.revision is None and not self.tables

    @property
    def legacy(self) -> bool:
        """Made by create_all before migrations existed."""
        return self.revision is None and bool(self.tables)


def read_state(connection: Connection) -> DatabaseState:
    present = set(inspect(connection).get_table_names())
    revision = None
    if VERSION_TABLE in present:
        rows = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
        if len(rows) > 1:
            raise SchemaError(f"the database records several schema revisions ({', '.join(rows)}); trackmail's "
                              f"history is linear, so it was changed by something else: restore a backup")
        revision = rows[0] if rows else None
    return DatabaseState(revision, frozenset(present & set(SQLModel.metadata.tables)))


def refusal(state: DatabaseState, migrations: Migrations) -> SchemaError | None:
    """Why this code cannot use a database in `state` (None: it can, or it is empty and can be created)."""
    if state.revision == migrations.head or state.empty:
        return None
    if state.revision is not None and state.revision not in migrations.revisions:
        return SchemaTooNew(state.revision, migrations.head)
    return SchemaOutdated(state.revision, migrations.head)


def ensure_schema(engine: Engine, migrations: Migrations | None = None) -> None:
    """Let a database at the newest revision through, create an empty one at it, refuse anything else."""
    migrations = migrations or BUNDLED
    with engine.connect() as connection:
        state = read_state(connection)
    if not state.empty:
        problem = refusal(state, migrations)
        if problem:
            raise problem
        return
    with _schema_transaction(engine) as connection:
        state = read_state(connection)  # another process may have created it meanwhile
        if state.empty:
            SQLModel.metadata.create_all(connection, checkfirst=False)  # known empty, under the lock
            migrations.stamp(connection, migrations.head)
            return
    problem = refusal(state, migrations)
    if problem:
        raise problem


@dataclass(frozen=True)
class Upgrade:
    """What `trackmail migrate` did."""

    before: str | None  # None: the database was empty, or made before migrations (then `legacy`)
    after: str
    legacy: bool = False

    def describe(self) -> str:
        if self.legacy:
            then = "nothing else to do" if self.before == self.after else f"upgraded {self.before} → {self.after}"
            return f"tables from before migrations match revision {self.before}: stamped it; {then}"
        if self.before == self.after:
            return f"already at revision {self.after}, the newest; nothing to do"
        if self.before is None:
            return f"empty database created at revision {self.after}"
        return f"upgraded {self.before} → {self.after}"


def upgrade(engine: Engine, migrations: Migrations | None = None, target: str | None = None) -> Upgrade:
    """Bring the database to the newest revision (or `target`); a create_all database from before
    migrations is first checked against the first revision and stamped with it."""
    migrations = migrations or BUNDLED
    target = target or migrations.head
    with _schema_transaction(engine) as connection:
        state = read_state(connection)
        if state.revision is not None and state.revision not in migrations.revisions:
            raise SchemaTooNew(state.revision, migrations.head)
        before = state.revision
        if state.legacy:
            before = migrations.revisions[0]
            differences = legacy_differences(connection, migrations)
            if differences:
                raise SchemaMismatch(before, differences)
            migrations.stamp(connection, before)
        if before != target:
            _alembic(connection, migrations, "upgrade", target)
    return Upgrade(before, target, legacy=state.legacy)


def legacy_differences(connection: Connection, migrations: Migrations) -> list[str]:
    """How the tables differ from the first revision's, column by column (names and NULL-ability)."""
    first = _first_revision_columns(migrations)
    found = _columns(connection, set(first) | set(SQLModel.metadata.tables))
    problems = [f"unexpected table {name}" for name in sorted(set(found) - set(first))]
    for table, expected in first.items():
        actual = found.get(table)
        if actual is None:
            problems.append(f"missing table {table}")
            continue
        problems += [f"{table}: missing column {c}" for c in sorted(set(expected) - set(actual))]
        problems += [f"{table}: unexpected column {c}" for c in sorted(set(actual) - set(expected))]
        problems += [f"{table}.{c}: {'allows' if actual[c] else 'forbids'} NULL, revision {migrations.revisions[0]} "
                     f"{'allows' if expected[c] else 'forbids'} it"
                     for c in sorted(set(expected) & set(actual)) if expected[c] != actual[c]]
    return problems


def _first_revision_columns(migrations: Migrations) -> dict[str, dict[str, bool]]:
    """The first revision's tables, built in a throw-away in-memory SQLite database and read back."""
    scratch = create_engine("sqlite://")
    try:
        with scratch.begin() as connection:
            _alembic(connection, migrations, "upgrade", migrations.revisions[0])
            names = set(inspect(connection).get_table_names()) - {VERSION_TABLE}
            return _columns(connection, names)
    finally:
        scratch.dispose()


def _columns(connection: Connection, tables: set[str]) -> dict[str, dict[str, bool]]:
    inspector = inspect(connection)
    present = set(inspector.get_table_names())
    return {t: {c["name"]: bool(c["nullable"]) for c in inspector.get_columns(t)} for t in sorted(tables & present)}


def _alembic(connection: Connection, migrations: Migrations, action: str, revision: str) -> None:
    from alembic import command

    getattr(command, action)(migrations.alembic_config(connection), revision)


@contextmanager
def _schema_transaction(engine: Engine) -> Iterator[Connection]:
    """One transaction, one schema changer at a time: a PostgreSQL advisory lock, or SQLite's write lock.

    SQLite rebuilds a table to ALTER it (batch mode); foreign keys are off meanwhile so dropping the old
    copy does not trip them, and are checked before commit instead.
    """
    with engine.connect() as connection:
        if connection.dialect.name != "sqlite":
            with connection.begin():
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK})
                yield connection
            return
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")  # a no-op inside a transaction: first
        connection.commit()
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
            yield connection
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise SchemaError(f"the schema change left rows whose foreign keys point nowhere: {broken[:5]}")
            connection.commit()
        except BaseException:
            connection.rollback()
            raise
        finally:
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
            connection.commit()
