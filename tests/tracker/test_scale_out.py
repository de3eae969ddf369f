"""Three `trackmail run` processes on one PostgreSQL database share the work; one SIGKILLed while it holds a
lease costs nothing but the lease's length: every shipment still moves, and every email goes exactly once.

Needs TRACKMAIL_TEST_POSTGRES, a URL to a server where tests may create (and drop) databases.

"Exactly once" is the outbox's documented guarantee (emails/outbox.py): a process killed between the
transport and the commit leaves that one message to be sent again, with the same Message-ID. Each daemon
here writes to its own outbox folder (as daemons on separate machines would), so a message sent twice shows
up in two folders: allowed only for the killed daemon's one message in flight, never for the others.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from carriers.sandbox import SandboxSettings, day_orders
from tests.factories import REPO, T0
from tests.outbox_check import read_outbox
from tests.tracker.test_sync import FakeFeed, order, sync
from tracker.daemon import ANCHOR_KEY, CLOCK_KEY
from tracker.db import open_db
from tracker.models import Customer, Email, EmailState, FeedCursor, Order, Setting, Shipment
from tracker.sync import sync_orders

SPEED = 120  # one real second is two sandbox minutes: each parcel is polled about once in the run
LEASE = 3  # real seconds, [schedule] lease: short, so the test can wait past a dead daemon's leases
ACCOUNTS = ("shop-a", "shop-b", "shop-c")  # three feeds to share out
ORDERS_PER_DAY = 600  # per account
HISTORY = timedelta(days=2)  # orders already stored when the daemons start: most of the shipments
WAIT = 90  # seconds; an upper bound for anything the test waits on


@pytest.fixture
def database_url():
    """A fresh database on the TRACKMAIL_TEST_POSTGRES server, dropped afterwards."""
    server = os.environ.get("TRACKMAIL_TEST_POSTGRES")
    if not server:
        pytest.skip("set TRACKMAIL_TEST_POSTGRES to a PostgreSQL URL where tests may create databases")
    url = make_url(server).set(drivername="postgresql+psycopg")
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text("select 1"))
    except OperationalError as exc:
        admin.dispose()
        pytest.skip(f"TRACKMAIL_TEST_POSTGRES ({url.render_as_string()}) is unreachable: {exc.orig}")
    name = f"scale_{secrets.token_hex(4)}"
    with admin.connect() as connection:
        connection.execute(text(f'create database "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'drop database if exists "{name}" with (force)'))
        admin.dispose()


def seed_history(engine, start: datetime) -> int:
    """Each shop's last HISTORY of sandbox orders already stored, as if connected that long ago, inserted in
    bulk (the daemons' own import would spend the test's minute on it). Their parcels are due for a poll now
    and email nobody; the feeds go on from `start`, and what they bring emails as usual. Returns how many
    shipments were stored."""
    with Session(engine) as session:
        for seed, account in enumerate(ACCOUNTS, start=11):
            settings = SandboxSettings(seed=seed, orders_per_day=ORDERS_PER_DAY)
            first = (start - HISTORY).date().toordinal()
            records = [planned.snapshot(start) for day in range(first, start.date().toordinal() + 1)
                       for planned in day_orders(settings, day) if start - HISTORY < planned.record.created_at <= start]
            records = [r for r in records if not r.cancelled]
            customers = {r.customer_id: Customer(marketplace=account, external_id=r.customer_id, email=r.customer_email,
                                                 name=r.customer_name, locale=r.customer_locale) for r in records}
            session.add_all(customers.values())
            session.flush()
            orders = [Order(marketplace=account, shop="demo", external_id=r.external_id, number=r.number,
                            customer_id=customers[r.customer_id].id, created_at=r.created_at, updated_at=r.updated_at,
                            currency=r.currency, total=r.total, notify=False, country=r.shipping_address.country)
                      for r in records]
            session.add_all(orders)
            session.flush()
            session.add_all(Shipment(order_id=order.id, courier="sandbox", courier_name=parcel.courier_name,
                                     tracking_number=parcel.tracking_number, tracking_url=parcel.tracking_url,
                                     shipped_at=parcel.shipped_at, first_seen_at=start, next_poll_at=start,
                                     notify=False)
                            for order, record in zip(orders, records, strict=True) for parcel in record.shipments)
            session.add(FeedCursor(marketplace=account, connected_at=start - HISTORY, cursor=start, updated_at=start))
        session.add(Setting(key=CLOCK_KEY, value=start.isoformat(timespec="microseconds")))
        session.commit()
        return session.execute(select(func.count()).select_from(Shipment)).scalar_one()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_config(folder: Path, name: str, database_url: str, port: int) -> Path:
    """The bundled config on PostgreSQL, three busy sandbox shops, short leases, this daemon's own outbox."""
    text_ = (REPO / "config.toml").read_text()
    shops = "".join(f'[marketplaces.{account}]\ntype = "sandbox"\nshop = "demo"\nseed = {seed}\n'
                    f'orders_per_day = {ORDERS_PER_DAY}\n\n'
                    for seed, account in enumerate(ACCOUNTS, start=11))
    text_ = re.sub(r"\[marketplaces\.demo-shop\].*?\n\n", shops, text_, flags=re.DOTALL)
    for old, new in (('database = "trackmail.db"', f'database_url = "{database_url}"'),
                     ("clock_speed = 28800", f"clock_speed = {SPEED}"),
                     ('watch_shipments = "15m"', f'watch_shipments = "15m"\nlease = "{LEASE}s"'),
                     ('outbox_dir = "outbox"', f'outbox_dir = "outbox-{name}"'),
                     ('listen = "127.0.0.1:8080"', f'listen = "127.0.0.1:{port}"')):
        assert text_.count(old) == 1, old
        text_ = text_.replace(old, new)
    path = folder / f"config-{name}.toml"
    path.write_text(text_)
    return path


@dataclass
class Daemon:
    name: str
    proc: subprocess.Popen
    log: Path
    outbox: Path

    def output(self) -> str:
        return self.log.read_text()

    def work(self) -> dict[str, int]:
        """What its log says it did: feeds read, shipments polled, emails sent (its own outbox folder)."""
        logged = self.output()
        return {"feeds read": sum(int(n) for n in re.findall(r"sync_orders: accounts (\d+)", logged)),
                "polled": sum(int(n) for n in re.findall(r"poll_shipments: polled (\d+)", logged)),
                "emails sent": len(list(self.outbox.glob("*.eml")))}


def start(folder: Path, name: str, database_url: str, port: int, *args: str) -> Daemon:
    config = write_config(folder, name, database_url, port)
    log = folder / f"{name}.log"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with log.open("w") as out:  # a file, not a pipe: a full pipe would stall a chatty daemon
        proc = subprocess.Popen([sys.executable, "-m", "tracker.cli", "--config", str(config), "run", *args],
                                cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT)
    return Daemon(name, proc, log, folder / f"outbox-{name}")


def sandbox_now(engine) -> datetime:
    """The daemons' shared sped-up clock, read from its anchor as they read it."""
    with Session(engine) as session:
        real_at, sandbox_at = (datetime.fromisoformat(p) for p in session.get_one(Setting, ANCHOR_KEY).value.split())
    return sandbox_at + (datetime.now(real_at.tzinfo) - real_at) * SPEED


def feeds_held_by(engine, daemon: Daemon) -> list[str]:
    with Session(engine) as session:
        return list(session.execute(select(FeedCursor.marketplace).where(
            FeedCursor.claimed_by.like(f"%:{daemon.proc.pid}:%"))).scalars())


def kill_one_holding_a_feed_lease(engine, daemons: list[Daemon]) -> tuple[Daemon, list[str]]:
    """SIGKILL the first daemon seen holding a feed lease (most likely mid-store) once it has read, polled
    and sent something: the split below must show its work too."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        for daemon in daemons:
            assert daemon.proc.poll() is None, daemon.output()
            held = feeds_held_by(engine, daemon)
            if held and all(daemon.work().values()):
                daemon.proc.kill()
                daemon.proc.wait()
                return daemon, held
        time.sleep(0.005)
    raise AssertionError(f"no daemon held a feed lease after doing some of each job within {WAIT}s")


def shipments(engine) -> dict[int, tuple]:
    with Session(engine) as session:
        return {row.id: (row.status, row.next_poll_at) for row in session.execute(
            select(Shipment.id, Shipment.status, Shipment.next_poll_at)).all()}


@dataclass
class Pending:
    """What the survivors still owe, as seen now; all empty once they have caught up with the kill."""

    feeds: list[str]  # the victim's feeds not yet taken over past its lease
    shipments: list[int]  # due when the victim died and not polled since
    emails: list[int]  # planned up to the victim's lease expiry, due, and still queued
    idle: list[str]  # survivors that have not yet done some of each job (one may be busy polling for a while)

    def __bool__(self) -> bool:
        return bool(self.feeds or self.shipments or self.emails or self.idle)


def pending(engine, victim: Daemon, survivors: list[Daemon], held: list[str], at_kill: dict[int, tuple],
            killed_at: datetime) -> Pending:
    expired = killed_at + timedelta(seconds=LEASE * SPEED)
    now = sandbox_now(engine)
    current = shipments(engine)
    with Session(engine) as session:
        feeds = [c.marketplace for c in session.execute(select(FeedCursor).where(FeedCursor.marketplace.in_(held)))
                 .scalars() if c.updated_at <= expired or f":{victim.proc.pid}:" in c.claimed_by]
        emails = list(session.execute(select(Email.id).where(
            Email.state == EmailState.QUEUED, Email.created_at <= expired, Email.due_at <= now)).scalars())
    due = [sid for sid, (_status, next_poll) in at_kill.items() if next_poll is not None and next_poll <= killed_at]
    idle = [daemon.name for daemon in survivors if not all(daemon.work().values())]
    return Pending(feeds, [sid for sid in due if current[sid] == at_kill[sid]], emails, idle)


def test_three_daemons_share_the_work_and_a_killed_one_loses_and_doubles_nothing(tmp_path, database_url):
    engine = open_db(database_url)  # the tables exist before three daemons race to create them
    stored = seed_history(engine, datetime.now(UTC))
    assert stored >= 2000, f"only {stored} shipments: the test is meant to run on thousands"
    port = free_port()  # the same for all three: one serves the pages, the others log it and carry on
    daemons = [start(tmp_path, name, database_url, port) for name in ("one", "two", "three")]
    try:
        victim, held = kill_one_holding_a_feed_lease(engine, daemons)
        survivors = [daemon for daemon in daemons if daemon is not victim]
        killed_at = sandbox_now(engine)
        at_kill = shipments(engine)
        with Session(engine) as session:
            leased = session.execute(select(Email.id).where(
                Email.state == EmailState.QUEUED, Email.claimed_until > killed_at)).scalars().all()
        time.sleep(LEASE)
        deadline = time.monotonic() + WAIT
        while (owed := pending(engine, victim, survivors, held, at_kill, killed_at)) and time.monotonic() < deadline:
            assert all(daemon.proc.poll() is None for daemon in survivors)
            time.sleep(0.5)
        for daemon in survivors:
            daemon.proc.send_signal(signal.SIGTERM)
        for daemon in survivors:
            assert daemon.proc.wait(timeout=WAIT) == 0, daemon.output()
            assert "stopped cleanly" in daemon.output()
    finally:
        for daemon in daemons:
            if daemon.proc.poll() is None:
                daemon.proc.kill()
                daemon.proc.wait()

    split = {daemon.name: daemon.work() for daemon in daemons}
    print(f"\n{stored} shipments; killed {victim.name} holding the feed lease of {held}, "
          f"{len(leased)} emails leased (by any daemon) at that moment")
    for name, work in split.items():
        print(f"  {name:6} {work}")

    # Within WAIT the survivors took the victim's feeds over once its lease ran out, polled every shipment
    # that was due when it died (its own claims among them), sent every email planned until then, and each
    # did some of every job.
    assert not owed, owed

    # Every email went exactly once; the one exception is the outbox's documented crash window: the
    # victim's single message in flight may be in its folder and, sent again, in a survivor's.
    everywhere = [mail for daemon in daemons for mail in read_outbox(daemon.outbox)]
    folders: dict[str, list[str]] = defaultdict(list)
    for mail in everywhere:
        folders[mail.message_id].append(mail.file.parent.name)
    twice = {mid: where for mid, where in folders.items() if len(where) > 1}
    assert len(twice) <= 1 and all(len(where) == 2 and f"outbox-{victim.name}" in where
                                   for where in twice.values()), twice
    with Session(engine) as session:
        rows = list(session.execute(select(Email)).scalars())
    sent = {row.message_id: row.idempotency_key for row in rows if row.state is EmailState.SENT}
    print(f"  emails: {len(rows)} planned, {len(sent)} sent, {len(everywhere)} files, {len(twice)} sent again "
          f"after the kill (the crash window), states {dict(Counter(str(row.state) for row in rows))}")
    assert set(sent) == set(folders), "every sent row has its message and every message its row"
    stopped_at = sandbox_now(engine)
    assert all(row.claimed_until is None or row.claimed_until <= stopped_at
               for row in rows if row.state is EmailState.QUEUED), "what is still queued is free for the next daemon"
    assert all(sent[mail.message_id] == mail.ref for mail in everywhere)

    # The victim too had done some of each job before it died; and one port was enough for three daemons.
    assert all(split[victim.name].values())
    served = [d.name for d in daemons if "web pages at" in d.output()]
    assert len(served) == 1 and all("web pages not served" in d.output() for d in daemons if d.name not in served)
    engine.dispose()


def test_a_second_daemon_on_one_sqlite_file_refuses_to_start_and_the_first_runs_on(tmp_path):
    """SQLite has no SKIP LOCKED, and its daemon clears the leases a killed predecessor left: it must be alone."""
    text_ = (REPO / "config.toml").read_text().replace('listen = "127.0.0.1:8080"', 'listen = "127.0.0.1:0"')
    (tmp_path / "config.toml").write_text(text_)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "tracker.cli", "--config", str(tmp_path / "config.toml"), "run"]
    log = tmp_path / "first.log"
    with log.open("w") as out:
        first = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + WAIT
        while "trackmail running" not in log.read_text() and time.monotonic() < deadline:
            assert first.poll() is None, log.read_text()
            time.sleep(0.1)
        second = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=WAIT)
        assert second.returncode == 1
        assert "another trackmail daemon is running" in second.stdout + second.stderr
        assert first.poll() is None
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=WAIT) == 0
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()


# ── The feed lease, one worker at a time (SQLite is enough to show the rules; the test above races them) ────


def hold(app, account: str, worker: str, until: datetime) -> None:
    with Session(app.engine) as session:
        session.execute(update(FeedCursor).where(FeedCursor.marketplace == account)
                        .values(claimed_by=worker, claimed_until=until))
        session.commit()


def test_a_feed_another_worker_holds_is_left_alone_until_its_lease_runs_out(app):
    feed = FakeFeed()
    sync(app, feed, T0)
    hold(app, "demo-shop", "other-host:123:abc", T0 + timedelta(minutes=10))
    sync(app, feed, T0 + timedelta(minutes=5))
    assert len(feed.asked) == 1  # not read while the other worker holds it
    feed.put(order(1, T0 + timedelta(minutes=6)))
    report = sync(app, feed, T0 + timedelta(minutes=11))  # its lease ran out: taken over
    assert len(feed.asked) == 2 and report.orders_new == 1
    with Session(app.engine) as session:
        cursor = session.get_one(FeedCursor, "demo-shop")
        assert (cursor.claimed_by, cursor.claimed_until) == ("", None)  # released after the read


def test_a_feed_read_moments_ago_by_any_worker_is_not_read_again_by_the_daemon(app):
    feed = FakeFeed()
    app.marketplaces = {feed.name: feed}
    asyncio.run(sync_orders(app, T0))
    asyncio.run(sync_orders(app, T0 + timedelta(minutes=2), min_gap=timedelta(minutes=2, seconds=30)))
    assert len(feed.asked) == 1
    asyncio.run(sync_orders(app, T0 + timedelta(minutes=3), min_gap=timedelta(minutes=2, seconds=30)))
    assert len(feed.asked) == 2


def test_a_worker_whose_lease_was_taken_over_mid_read_stores_nothing(app):
    feed = FakeFeed()
    sync(app, feed, T0)
    feed.put(order(1, T0 + timedelta(minutes=1)))
    slow = feed.changes

    async def taken_over_meanwhile(since):
        hold(app, "demo-shop", "other-host:123:abc", T0 + timedelta(hours=2))
        return await slow(since)

    feed.changes = taken_over_meanwhile
    report = sync(app, feed, T0 + timedelta(hours=1))
    with Session(app.engine) as session:
        cursor = session.get_one(FeedCursor, "demo-shop")
        orders = session.execute(select(func.count()).select_from(Order)).scalar_one()
    assert (report.orders_new, orders) == (0, 0)
    assert cursor.claimed_by == "other-host:123:abc" and cursor.updated_at == T0  # the other worker's, untouched
