"""database_url for PostgreSQL: the spellings users write, and a clear one-line error (never the password) when
the server cannot be used at start."""

from __future__ import annotations

import socket

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from tests import postgres
from tests.factories import REPO
from tests.postgres import with_database
from tracker.cli import main
from tracker.db import DatabaseUnavailable, InvalidDatabaseUrl, UnsupportedDatabase, make_engine

SECRET = "s3cret-Pa55word"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_server_names_host_port_and_database_but_not_the_password():
    port = free_port()
    with pytest.raises(DatabaseUnavailable) as caught:
        make_engine(f"postgresql://shop:{SECRET}@127.0.0.1:{port}/trackmail")
    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message and "'trackmail'" in message
    assert SECRET not in message and "\n" not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__  # the driver's error, URL and all


def test_another_database_is_refused_by_name():
    with pytest.raises(UnsupportedDatabase, match="'mysql'"):
        make_engine(f"mysql://shop:{SECRET}@db.example/trackmail")


@pytest.mark.parametrize("url", ["postgresql://shop:s3cret-pw@db.example:fivefour/trackmail",
                                 "postgresql:/shop:s3cret-pw@"])
def test_a_url_that_cannot_be_read_is_a_typed_error_without_the_password(url):
    with pytest.raises(InvalidDatabaseUrl, match="database_url") as caught:
        make_engine(url)
    assert "s3cret-pw" not in str(caught.value)


def test_the_daemon_stops_with_exit_code_2_and_one_line_when_the_database_is_unreachable(tmp_path, capsys,
                                                                                           monkeypatch):
    monkeypatch.setenv("PGPASSWORD", SECRET)
    url = f"postgresql://shop:${{PGPASSWORD}}@127.0.0.1:{free_port()}/trackmail"
    (tmp_path / "config.toml").write_text(with_database((REPO / "config.toml").read_text(), url))
    assert main(["--config", str(tmp_path / "config.toml"), "run", "--once"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    [line] = captured.err.splitlines()
    assert line.startswith("trackmail: database error: cannot connect to PostgreSQL at 127.0.0.1:")
    assert SECRET not in line


@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "postgresql+psycopg"])
def test_every_usual_spelling_of_the_url_reaches_the_server_through_psycopg_3(scheme):
    postgres.skip_unless_available()
    url = make_url(postgres.server_url()).render_as_string(hide_password=False)
    engine = make_engine(scheme + url[url.index("://"):])
    try:
        assert engine.url.drivername == "postgresql+psycopg"
        with engine.connect() as connection:
            assert connection.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        engine.dispose()


def test_a_refused_password_is_reported_without_it():
    postgres.skip_unless_available()
    url = make_url(postgres.server_url()).set(password=SECRET)
    try:
        make_engine(url.render_as_string(hide_password=False)).dispose()
    except DatabaseUnavailable as exc:
        assert SECRET not in str(exc)
        assert f"{url.host}:{url.port or 5432}" in str(exc) and "password" in str(exc)
    else:
        pytest.skip("the test server accepts any password (trust authentication)")
