"""Schema migrations: the revisions build exactly the models, old databases upgrade with their rows intact,
and a database of the wrong revision is refused with a message that says what to run.

Every test runs on SQLite, and on PostgreSQL when TRACKMAIL_TEST_POSTGRES names a server (a URL) where the
tests may create databases.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Boolean, Date, DateTime, Integer, MetaData, Numeric, String, create_engine, select, text
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session, SQLModel

from tests.factories import REPO
from tracker.cli import main
from tracker.db import make_engine, open_db
from tracker.migrations.__main__ import next_revision_id, write_revision
from tracker.models import Customer, Email, EmailState, Order, OrderState, Shipment
from tracker.schema import (
    BUNDLED,
    VERSION_TABLE,
    Migrations,
    SchemaMismatch,
    SchemaOutdated,
    SchemaTooNew,
    read_state,
    upgrade,
)
from tracker.status import ShipmentStatus

POSTGRES = os.environ.get("TRACKMAIL_TEST_POSTGRES")
T0 = datetime(2026, 3, 2, 9, 30)  # stored naive UTC, as the models store it


def _postgres_url(database: str) -> str:
    url = make_url(POSTGRES).set(database=database)
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    return url.render_as_string(hide_password=False)


@pytest.fixture(params=[
    "sqlite",
    pytest.param("postgresql", marks=pytest.mark.skipif(
        not POSTGRES, reason="set TRACKMAIL_TEST_POSTGRES to a PostgreSQL URL where tests may create databases")),
])
def database_url(request, tmp_path: Path) -> Iterator[str]:
    """The URL of a new, empty database (dropped afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'trackmail.db'}"
        return
    name = f"migrate_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(_postgres_url("postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        yield _postgres_url(name)
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def revision_of(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return read_state(connection).revision


def make_legacy(engine: Engine) -> None:
    """What create_all made before migrations existed: the first revision's tables, no alembic_version."""
    upgrade(engine, target=BUNDLED.revisions[0])
    with engine.begin() as connection:
        connection.execute(text(f"DROP TABLE {VERSION_TABLE}"))


def write_config(folder: Path, database_url: str) -> Path:
    text_ = (REPO / "config.toml").read_text()
    assert 'database = "trackmail.db"' in text_
    path = folder / "config.toml"
    path.write_text(text_.replace('database = "trackmail.db"', f'database_url = "{database_url}"'))
    return path


def assert_no_password(database_url: str, output: str) -> None:
    password = make_url(database_url).password
    assert not password or f":{password}@" not in output


# A customer, an order, a shipment and an email as the first revision stores them (enums by member name).
ROWS: dict[str, dict[str, Any]] = {
    "customer": {"id": 7, "marketplace": "demo-shop", "external_id": "c-7", "email": "ada@example.com",
                 "name": "Ada Lovelace", "locale": "de", "marketing_consent": True},
    "order": {"id": 11, "marketplace": "demo-shop", "shop": "demo", "external_id": "o-11", "number": "#1011",
              "customer_id": 7, "created_at": T0, "updated_at": T0, "currency": "EUR", "total": Decimal("49.80"),
              "state": "CANCELLED", "refunded": True, "notify": True, "country": "DE", "postcode": "10115"},
    "shipment": {"id": 13, "order_id": 11, "courier": "sandbox", "courier_name": "Sandbox Express",
                 "tracking_number": "SB0013", "tracking_url": "https://track.example.com/SB0013", "shipped_at": T0,
                 "first_seen_at": T0, "status": "IN_TRANSIT", "status_code": "IT", "status_description": "On its way",
                 "last_event_at": T0, "delivered_at": None, "estimated_delivery": date(2026, 3, 5),
                 "signed_by": "", "next_poll_at": T0, "claimed_until": None, "poll_failures": 2,
                 "last_error": "timeout", "followups_planned": False, "notify": True, "delayed_at": None,
                 "delay_reason": "", "final_at": None},
    "email": {"id": 17, "idempotency_key": "in_transit:shipment:13", "message_id": "<17@trackmail.test>",
              "kind": "in_transit", "shop": "demo", "order_id": 11, "shipment_id": 13, "customer_id": 7,
              "to_address": "ada@example.com", "state": "SENT", "created_at": T0, "due_at": T0,
              "claimed_until": None, "attempts": 1, "first_failed_at": None, "sent_at": T0,
              "provider_id": "pm-123", "last_error": "", "marketing": False, "flow": "", "step": 0,
              "followed_up": False},
}
FILLERS = [(Boolean, False), (Integer, 0), (Numeric, Decimal("0")), (DateTime, T0), (Date, T0.date()), (String, "")]


def row_for(table: Any) -> dict[str, Any]:
    """ROWS' values for the columns this revision has, and a plain value for any required one they lack."""
    known = ROWS[table.name]
    row = {c.name: known[c.name] for c in table.columns if c.name in known}
    for column in table.columns:
        if column.name not in row and not column.nullable and column.server_default is None:
            row[column.name] = next(v for kind, v in FILLERS if isinstance(column.type, kind))
    return row


def insert_rows(engine: Engine) -> dict[str, dict[str, Any]]:
    tables = MetaData()
    tables.reflect(engine, only=list(ROWS))
    inserted = {}
    with engine.begin() as connection:
        for name in ROWS:
            inserted[name] = row_for(tables.tables[name])
            connection.execute(tables.tables[name].insert().values(inserted[name]))
    return inserted


def assert_rows_intact(engine: Engine, inserted: dict[str, dict[str, Any]]) -> None:
    tables = MetaData()
    tables.reflect(engine, only=list(ROWS))
    with engine.connect() as connection:
        for name, row in inserted.items():
            table = tables.tables[name]
            stored = connection.execute(select(table).where(table.c.id == row["id"])).mappings().one()
            assert {k: stored[k] for k in row if k in stored} == row, name
    with Session(engine) as session:  # and the current models read them as what they were
        assert session.get(Customer, 7).marketing_consent is True
        order = session.get(Order, 11)
        assert (order.state, order.total, order.created_at) == (OrderState.CANCELLED, Decimal("49.80"),
                                                                T0.replace(tzinfo=UTC))
        shipment = session.get(Shipment, 13)
        assert (shipment.status, shipment.estimated_delivery) == (ShipmentStatus.IN_TRANSIT, date(2026, 3, 5))
        assert session.get(Email, 17).state is EmailState.SENT


def later_version(folder: Path) -> Migrations:
    """The bundled revisions plus one more, as a later trackmail would ship: it adds a column to `order` and
    relaxes another, which SQLite can only do by rebuilding the table that four others point at."""
    revision = f"{int(BUNDLED.head[:4]) + 1:04d}_later_version"
    (folder / f"{revision}.py").write_text(f'''"""A later version's revision, for the tests."""
import sqlalchemy as sa
from alembic import op

revision = "{revision}"
down_revision = "{BUNDLED.head}"


def upgrade() -> None:
    with op.batch_alter_table("order") as batch:
        batch.add_column(sa.Column("gift_note", sa.String(), nullable=False, server_default=""))
        batch.alter_column("postcode", existing_type=sa.String(), nullable=True)
''')
    return Migrations((folder,))


# --- the revisions build what the models say -------------------------------------------------------------


@pytest.mark.parametrize("how", ["migrations", "open_db"])
def test_a_new_database_matches_the_models_exactly(how, database_url, engine):
    """The guard that makes every model change bring its migration: no difference may remain."""
    if how == "migrations":
        assert upgrade(engine).describe() == f"empty database created at revision {BUNDLED.head}"
    else:
        open_db(database_url).dispose()
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
        assert read_state(connection).revision == BUNDLED.head
    assert differences == []


def test_the_revisions_are_one_chain_named_after_their_files():
    scripts = BUNDLED.scripts
    chain = [script.revision for script in reversed(list(scripts.walk_revisions()))]
    assert chain == list(BUNDLED.revisions)
    for script in scripts.walk_revisions():
        assert Path(script.path).stem == script.revision
        assert len(script.revision) <= 32, "alembic_version.version_num holds 32 characters"


def test_a_new_revision_is_numbered_after_the_newest():
    assert next_revision_id(("0001_initial",), "Add coupon notes!") == "0002_add_coupon_notes"
    assert next_revision_id(("0001_initial", "0002_x"), "a" * 50) == "0003_" + "a" * 27
    assert next_revision_id((), "initial") == "0001_initial"
    with pytest.raises(ValueError, match="no letters or digits"):
        next_revision_id(("0001_initial",), "!!!")


def test_autogenerate_finds_nothing_to_do_while_the_models_match_the_newest_revision(tmp_path):
    path = write_revision("no change", Migrations((tmp_path,)), into=tmp_path)
    assert path.name == f"{int(BUNDLED.head[:4]) + 1:04d}_no_change.py"
    script = path.read_text()
    assert f"down_revision = {BUNDLED.head!r}" in script
    upgrade_function = next(node for node in ast.parse(script).body if getattr(node, "name", "") == "upgrade")
    assert [type(statement) for statement in upgrade_function.body] == [ast.Pass]


# --- old databases upgrade with their data intact ---------------------------------------------------------


@pytest.mark.parametrize("revision", BUNDLED.revisions)
def test_rows_written_at_each_revision_survive_the_upgrade_to_the_newest(revision, engine):
    upgrade(engine, target=revision)
    inserted = insert_rows(engine)
    upgrade(engine)
    assert revision_of(engine) == BUNDLED.head
    assert_rows_intact(engine, inserted)


def test_a_later_revision_rebuilds_tables_on_sqlite_without_losing_rows(engine, tmp_path):
    later = later_version(tmp_path)
    upgrade(engine)
    inserted = insert_rows(engine)
    assert upgrade(engine, later).describe() == f"upgraded {BUNDLED.head} → {later.head}"
    assert revision_of(engine) == later.head
    assert_rows_intact(engine, inserted)
    with engine.connect() as connection:
        assert connection.execute(text('SELECT gift_note FROM "order" WHERE id = 11')).scalar_one() == ""


def test_a_database_from_before_migrations_is_checked_stamped_and_upgraded(database_url, engine, tmp_path, capsys):
    make_legacy(engine)
    inserted = insert_rows(engine)
    config = write_config(tmp_path, database_url)
    assert main(["--config", str(config), "migrate"]) == 0
    out = capsys.readouterr().out
    assert f"tables from before migrations match revision {BUNDLED.revisions[0]}: stamped it" in out
    assert revision_of(engine) == BUNDLED.head
    assert_rows_intact(engine, inserted)


def test_a_database_from_before_migrations_that_differs_is_refused_and_left_alone(engine):
    make_legacy(engine)
    with engine.begin() as connection:
        connection.execute(text("ALTER TABLE shipment DROP COLUMN final_at"))
        connection.execute(text("ALTER TABLE email ADD COLUMN colour VARCHAR(10)"))
    with pytest.raises(SchemaMismatch) as refused:
        upgrade(engine)
    message = str(refused.value)
    assert "shipment: missing column final_at" in message and "email: unexpected column colour" in message
    assert f"differ from revision {BUNDLED.revisions[0]}" in message
    with engine.connect() as connection:
        assert read_state(connection).legacy


# --- the wrong revision is refused, saying what to do ------------------------------------------------------


def test_open_db_creates_a_new_database_at_the_newest_revision_and_opens_it_again(database_url):
    open_db(database_url).dispose()
    engine = open_db(database_url)
    assert revision_of(engine) == BUNDLED.head
    engine.dispose()


def test_open_db_refuses_an_outdated_database_naming_both_revisions(engine, database_url, tmp_path, monkeypatch):
    upgrade(engine)
    later = later_version(tmp_path)
    monkeypatch.setattr("tracker.schema.BUNDLED", later)
    with pytest.raises(SchemaOutdated) as refused:
        open_db(database_url)
    assert (refused.value.current, refused.value.required) == (BUNDLED.head, later.head)
    assert f"at revision {BUNDLED.head}" in str(refused.value) and "run `trackmail migrate`" in str(refused.value)


def test_run_refuses_a_database_from_before_migrations_with_exit_2_and_no_traceback(database_url, engine, tmp_path):
    make_legacy(engine)
    config = write_config(tmp_path, database_url)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "tracker.cli", "--config", str(config), "run", "--once"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert (f"the database schema is from before trackmail had migrations; this version of trackmail needs "
            f"revision {BUNDLED.head}") in done.stderr
    assert f"run `trackmail migrate --config {config}` to upgrade it" in done.stderr
    assert_no_password(database_url, done.stderr + done.stdout)


def test_commands_refuse_an_older_revision_and_migrate_upgrades_it(database_url, engine, tmp_path, monkeypatch,
                                                                   capsys):
    upgrade(engine)
    inserted = insert_rows(engine)
    later = later_version(tmp_path)
    monkeypatch.setattr("tracker.schema.BUNDLED", later)
    config = write_config(tmp_path, database_url)
    for command in (["run", "--once"], ["shipments"]):
        assert main(["--config", str(config), *command]) == 2
        err = capsys.readouterr().err
        assert (f"trackmail: database error: the database schema is at revision {BUNDLED.head}; this version of "
                f"trackmail needs revision {later.head}. Back up the database, then run "
                f"`trackmail migrate --config {config}` to upgrade it") in err
    assert main(["--config", str(config), "migrate"]) == 0
    assert f"upgraded {BUNDLED.head} → {later.head}" in capsys.readouterr().out
    assert main(["--config", str(config), "shipments", "--json"]) == 0
    assert '"tracking_number": "SB0013"' in capsys.readouterr().out
    assert_rows_intact(engine, inserted)


def test_migrate_twice_does_nothing_the_second_time(database_url, engine, tmp_path, capsys):
    config = write_config(tmp_path, database_url)
    assert main(["--config", str(config), "migrate"]) == 0
    out = capsys.readouterr().out
    shown = make_url(database_url).render_as_string(hide_password=True)
    assert f"{shown}: empty database created at revision {BUNDLED.head}" in out
    assert_no_password(database_url, out)
    inserted = insert_rows(engine)
    assert main(["--config", str(config), "migrate"]) == 0
    assert f"already at revision {BUNDLED.head}, the newest; nothing to do" in capsys.readouterr().out
    assert revision_of(engine) == BUNDLED.head
    assert_rows_intact(engine, inserted)


def test_a_database_from_a_newer_version_is_refused_by_open_db_and_migrate(database_url, engine, tmp_path, capsys):
    open_db(database_url).dispose()
    with engine.begin() as connection:
        connection.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = '9999_from_the_future'"))
    with pytest.raises(SchemaTooNew, match=f"at revision 9999_from_the_future, which this version of trackmail "
                                           f"does not know \\(its newest is {BUNDLED.head}\\)"):
        open_db(database_url)
    config = write_config(tmp_path, database_url)
    assert main(["--config", str(config), "migrate"]) == 2
    assert "a newer trackmail has upgraded it" in capsys.readouterr().err
    assert revision_of(engine) == "9999_from_the_future"


def test_two_processes_opening_a_new_database_at_once_both_succeed(database_url):
    """Daemons sharing one PostgreSQL database may start together: one creates, the other waits and opens."""
    errors: list[BaseException] = []

    def opener() -> None:
        try:
            open_db(database_url).dispose()
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=opener) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    engine = make_engine(database_url)
    assert revision_of(engine) == BUNDLED.head
    engine.dispose()


def test_simulate_on_an_old_simulation_database_says_to_delete_it(tmp_path, capsys):
    """`migrate` upgrades the configured database; the simulation's own is disposable."""
    database = tmp_path / "simulate.db"
    engine = make_engine(f"sqlite:///{database}")
    make_legacy(engine)
    engine.dispose()
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'trackmail.db'}")
    assert main(["--config", str(config), "simulate", "--days", "1", "--database", str(database)]) == 2
    err = capsys.readouterr().err
    assert "the database schema is from before trackmail had migrations" in err
    assert "The simulation database holds only simulated data: delete it" in err and "migrate" not in err
