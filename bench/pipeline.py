"""Shipments per second through trackmail's real poll job, beside the raw aiohttp request ceiling.

    python -m bench.pipeline [--shipments 4000] [--concurrency 64] [--latency-ms 50] [--postgres URL]

Not a test: it prints figures. It seeds N pending DHL shipments (one order and customer each), points a DHL
account (carriers/dhl.py, `base_url`) at the local courier server (bench/courier_server.py, its own
process), and runs `tracker.poll.poll_shipments` until nothing is due: fetch, parse, state machine, events
stored, status changed and emails enqueued, committed. Every answer moves its parcel on (the server's
events are recent), so each shipment gets events and an email.

The reference is raw aiohttp against the same server at the same concurrency and latency: one shipment is
one request on DHL's one-number API, so shipments/s over requests/s is the share of the ceiling the
pipeline keeps. It runs on SQLite, and on PostgreSQL when TRACKMAIL_TEST_POSTGRES (or --postgres) names a
server (a database `http_bench_pipeline_<pid>` is created there and dropped afterwards).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import create_engine, func, insert, select, text
from sqlalchemy.engine import make_url
from sqlmodel import Session

from bench.courier_server import running
from bench.http import raw_aiohttp
from bench.report import Figure, table
from tracker.app import App
from tracker.clock import ManualClock
from tracker.config import AccountSettings, Config, load
from tracker.db import open_db
from tracker.models import Customer, Email, Order, Shipment, TrackingEvent
from tracker.poll import poll_shipments
from tracker.settings import Section

REPO = Path(__file__).resolve().parents[1]
PG_DATABASE = f"http_bench_pipeline_{os.getpid()}"  # two runs at once never share one


def bench_config(database_url: str, courier_url: str, concurrency: int, folder: Path) -> Config:
    """The bundled config with one DHL account at the local server, limits out of the way, no shop feed."""
    bundled = load(REPO / "config.toml")
    dhl = Section(folder / "bench.toml", "couriers.dhl", {
        "type": "dhl", "shop": "demo", "api_key": "bench-key", "base_url": courier_url,
        "concurrency": concurrency, "per_second": 1e9, "per_day": 10**9,
    })
    emails = dataclasses.replace(bundled.emails, outbox_dir=folder / "outbox")
    return dataclasses.replace(bundled, database_url=database_url, clock_speed=1, marketplaces={},
                               couriers={"dhl": AccountSettings("dhl", "dhl", "demo", dhl)}, emails=emails)


def seed(app: App, count: int, now: datetime) -> None:
    """`count` pending DHL shipments due now, with their orders and customers (bulk inserts: not measured)."""
    shipped = now - timedelta(days=2)
    ids = range(1, count + 1)
    with Session(app.engine) as session:
        session.execute(insert(Customer), [
            {"id": i, "marketplace": "bench", "external_id": f"c{i}", "email": f"c{i}@example.com", "name": "Ada"}
            for i in ids])
        session.execute(insert(Order), [
            {"id": i, "marketplace": "bench", "shop": "demo", "external_id": f"o{i}", "number": f"#{i}",
             "customer_id": i, "created_at": shipped, "updated_at": shipped, "currency": "EUR",
             "total": Decimal("19.90")} for i in ids])
        session.execute(insert(Shipment), [
            {"order_id": i, "courier": "dhl", "courier_name": "DHL", "tracking_number": f"JJD{i:012d}",
             "shipped_at": shipped, "first_seen_at": shipped, "next_poll_at": now - timedelta(minutes=1)}
            for i in ids])
        session.commit()


@dataclasses.dataclass
class Outcome:
    seconds: float
    cpu_seconds: float  # this process's: the courier server and the database server are not counted
    polled: int
    events: int
    emails: int
    errors: list[str]


async def _poll_all(app: App, now: datetime) -> tuple[int, list[str]]:
    polled, errors = 0, []
    try:
        while True:
            report = await poll_shipments(app, now)
            polled += report.polled
            errors += report.errors
            if report.polled == 0:
                return polled, errors
    finally:
        await app.aclose()


def run_pipeline(database_url: str, courier_url: str, count: int, concurrency: int, folder: Path) -> Outcome:
    now = datetime.now(UTC)
    config = bench_config(database_url, courier_url, concurrency, folder)
    engine = open_db(database_url)
    try:
        app = App.create(config, ManualClock(now), engine=engine)
        seed(app, count, now)
        start, cpu = time.perf_counter(), time.process_time()
        polled, errors = asyncio.run(_poll_all(app, now))
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        with Session(engine) as session:
            events = session.execute(select(func.count()).select_from(TrackingEvent)).scalar_one()
            emails = session.execute(select(func.count()).select_from(Email)).scalar_one()
        return Outcome(seconds, cpu, polled, events, emails, errors)
    finally:
        engine.dispose()


def postgres_database(server: str) -> tuple[str, callable]:
    """A fresh database on the server; returns its URL and a function that drops it."""
    url = make_url(server).set(drivername="postgresql+psycopg")
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)"))
        connection.execute(text(f"CREATE DATABASE {PG_DATABASE}"))

    def drop() -> None:
        with admin.connect() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)"))
        admin.dispose()

    return url.set(database=PG_DATABASE).render_as_string(hide_password=False), drop


def _figure(name: str, outcome: Outcome, ceiling: float, at: str) -> list[Figure]:
    rate = outcome.polled / outcome.seconds
    problems = f"; {len(outcome.errors)} errors, first: {outcome.errors[0]}" if outcome.errors else ""
    print(f"{name}: {outcome.polled} shipments in {outcome.seconds:.2f} s "
          f"({outcome.cpu_seconds / outcome.polled * 1000:.2f} ms CPU each), {outcome.events} events stored, "
          f"{outcome.emails} emails enqueued{problems}")
    return [Figure("pipeline", f"poll job on {name}, {at}", rate, "shipments/s", "raw aiohttp, 1 request a shipment",
                   ceiling, "≥ 50% of raw aiohttp", rate / ceiling >= 0.5)]


def measure(args: argparse.Namespace) -> list[Figure]:
    count = getattr(args, "shipments", 4000)
    concurrency = getattr(args, "concurrency", 64)
    latency = float(str(getattr(args, "latency_ms", 50)).split(",")[-1])
    postgres = getattr(args, "postgres", None) or os.environ.get("TRACKMAIL_TEST_POSTGRES")
    at = f"{concurrency} in flight, {latency:g} ms latency, {count} shipments"
    figures = []
    with running() as url, tempfile.TemporaryDirectory(prefix="http_bench_") as tmp:
        base = f"{url}/delay/{latency:g}" if latency > 0 else url
        ceiling = asyncio.run(raw_aiohttp(base, concurrency, getattr(args, "seconds", 3.0), url)).rate
        figures.append(Figure("pipeline", f"raw aiohttp ceiling, {concurrency} in flight, {latency:g} ms", ceiling,
                              "req/s", "ideal", concurrency / (latency / 1000) if latency > 0 else None))
        sqlite = run_pipeline(f"sqlite:///{tmp}/bench.db", base, count, concurrency, Path(tmp))
        figures += _figure("SQLite", sqlite, ceiling, at)
        if postgres:
            database_url, drop = postgres_database(postgres)
            try:
                figures += _figure("PostgreSQL", run_pipeline(database_url, base, count, concurrency, Path(tmp)),
                                   ceiling, at)
            finally:
                drop()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shipments", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=3.0, help="for the raw aiohttp ceiling")
    parser.add_argument("--postgres", help="a PostgreSQL server URL (default: $TRACKMAIL_TEST_POSTGRES)")
    print(table(measure(parser.parse_args())))


if __name__ == "__main__":
    main()
