"""Shared fixtures: the bundled config pointed at a temporary database and outbox (rows: tests/factories.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import respx.mocks

from tests.factories import REPO, T0
from tracker.app import App
from tracker.clock import ManualClock
from tracker.config import Config, load
from tracker.db import open_db

# The adapters' clients run on the aiohttp transport (carriers/http.py), below which respx's default patching
# (httpcore's pool) never sees a request; respx's "httpx" mocker patches the client itself, whatever its
# transport, so every @respx.mock keeps intercepting (tests/carriers/test_http.py checks it does).
respx.mocks.DEFAULT_MOCKER = respx.mocks.HTTPXMocker.name


@pytest.fixture
def config(tmp_path: Path) -> Config:
    bundled = load(REPO / "config.toml")
    emails = dataclasses.replace(bundled.emails, outbox_dir=tmp_path / "outbox")
    return dataclasses.replace(bundled, database_url=f"sqlite:///{tmp_path / 'test.db'}", emails=emails)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def app(config: Config, clock: ManualClock):
    engine = open_db(config.database_url)
    application = App.create(config, clock, engine=engine)
    yield application
    engine.dispose()
