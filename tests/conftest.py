"""Shared fixtures: the bundled config pointed at a temporary database and outbox (rows: tests/factories.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tests.factories import REPO, T0
from tracker.app import App
from tracker.clock import ManualClock
from tracker.config import Config, load
from tracker.db import open_db


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
