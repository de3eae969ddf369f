"""Quota-aware polling: the day budget holds (also for two daemons on one database), calls go where news is,
batches are filled, a 429 pauses the whole account, nobody starves, and the budget comes back at midnight.

The sandbox courier plays the quota (`per_day`): it counts every call it gets and refuses those over it with
429, so "never exceeded" is checked by the courier itself, not by the code under test.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlmodel import Session

from tests.factories import add_order, add_shipment
from tracker.app import App
from tracker.budget import calls_spent, window_start
from tracker.clock import ManualClock
from tracker.config import Config
from tracker.db import open_db
from tracker.models import CourierCalls, CourierPause, Shipment
from tracker.poll import next_poll, poll_shipments
from tracker.priority import MAX_QUIET
from tracker.settings import Section
from tracker.status import ShipmentStatus as S

MIDNIGHT = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
TICK = timedelta(minutes=5)


def budgeted(config: Config, clock: ManualClock, *, per_day: int, batch_size: int = 1, url: str | None = None) -> App:
    """An app whose sandbox courier has a daily quota of `per_day` calls and takes `batch_size` numbers."""
    account = config.couriers["sandbox"]
    data = {**account.section.data, "per_day": per_day, "batch_size": batch_size}
    section = Section(account.section.file, account.section.path, data)
    config = dataclasses.replace(config, couriers={"sandbox": dataclasses.replace(account, section=section)},
                                 database_url=url or config.database_url)
    return App.create(config, clock, engine=open_db(config.database_url))


def add_shipments(app: App, count: int, at: datetime, **fields) -> list[int]:
    """`count` due shipments; the sandbox does not know their numbers, so their status stays as given."""
    ids = []
    with Session(app.engine) as session:
        for _ in range(count):
            tag = uuid.uuid4().hex[:10]
            order = add_order(session, number=f"#{tag}", email=f"{tag}@example.com", created=at - timedelta(days=2))
            shipment = add_shipment(session, order, f"XX{tag}", next_poll_at=at, **fields)
            ids.append(shipment.id)
        session.commit()
    return ids


def run_day(apps: list[App], clock: ManualClock, until: datetime) -> None:
    """Tick every TICK until `until`, each app polling in turn, as daemons sharing a database would."""
    while clock() < until:
        for app in apps:
            asyncio.run(poll_shipments(app, clock()))
        clock.set(clock() + TICK)


def made_calls(app: App, day: datetime) -> int:
    return app.couriers["sandbox"].calls.get(day.date(), 0)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(MIDNIGHT)


def test_a_day_of_polling_never_exceeds_the_budget_and_spreads_it_over_the_day(config, clock) -> None:
    app = budgeted(config, clock, per_day=24)
    add_shipments(app, 40, MIDNIGHT, status=S.IN_TRANSIT, last_event_at=MIDNIGHT - timedelta(hours=3))
    run_day([app], clock, MIDNIGHT + timedelta(hours=12))
    assert 10 <= made_calls(app, MIDNIGHT) <= 13  # half the day, about half the budget (one hour ahead)
    run_day([app], clock, MIDNIGHT + timedelta(hours=23, minutes=59))
    assert made_calls(app, MIDNIGHT) == 24  # all of it, never a call more: the courier refused nothing
    with Session(app.engine) as session:
        assert calls_spent(session, "sandbox", MIDNIGHT) == 24
        assert session.execute(select(CourierPause)).first() is None


def test_two_daemons_on_one_database_share_one_budget(config, clock, database_url) -> None:
    first = budgeted(config, clock, per_day=30, url=database_url)
    second = budgeted(config, ManualClock(MIDNIGHT), per_day=30, url=database_url)
    add_shipments(first, 50, MIDNIGHT, status=S.IN_TRANSIT)

    tick = threading.Barrier(2)  # both start each tick together, so neither runs through the day alone

    def daemon(app: App) -> None:  # each ticks through the day on its own thread, as a separate process would
        clock = app.clock
        while clock() < MIDNIGHT + timedelta(hours=23, minutes=59):
            tick.wait(timeout=30)
            asyncio.run(poll_shipments(app, clock()))
            clock.set(clock() + TICK)

    threads = [threading.Thread(target=daemon, args=(app,)) for app in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    both = made_calls(first, MIDNIGHT) + made_calls(second, MIDNIGHT)
    assert both == 30  # the whole budget between them, not a call more
    assert made_calls(first, MIDNIGHT) and made_calls(second, MIDNIGHT)  # and both did their share
    with Session(first.engine) as session:
        assert calls_spent(session, "sandbox", MIDNIGHT) == 30
    for app in (first, second):
        app.engine.dispose()


def test_the_call_goes_to_the_shipment_most_likely_to_have_news(config, clock) -> None:
    clock.set(MIDNIGHT + timedelta(hours=23))  # the day's budget is all earned: only ranking decides
    app = budgeted(config, clock, per_day=1)
    asked = clock() - timedelta(hours=1)
    in_transit = add_shipments(app, 3, clock(), status=S.IN_TRANSIT, last_polled_at=asked,
                               last_event_at=clock() - timedelta(days=1))
    (at_the_door,) = add_shipments(app, 1, clock(), status=S.OUT_FOR_DELIVERY, last_polled_at=asked,
                                   last_event_at=clock() - timedelta(hours=2))
    asyncio.run(poll_shipments(app, clock()))
    with Session(app.engine) as session:
        polled = set(session.execute(select(Shipment.id).where(Shipment.last_polled_at == clock())).scalars())
    assert polled == {at_the_door}
    assert not polled & set(in_transit)


def test_each_call_carries_as_many_numbers_as_the_courier_takes(config, clock) -> None:
    clock.set(MIDNIGHT + timedelta(hours=23))
    app = budgeted(config, clock, per_day=2, batch_size=10)
    courier = app.couriers["sandbox"]
    sizes: list[int] = []
    track = courier.track

    async def counting(numbers):
        sizes.append(len(numbers))
        return await track(numbers)

    courier.track = counting
    add_shipments(app, 25, clock(), status=S.IN_TRANSIT)
    report = asyncio.run(poll_shipments(app, clock()))
    assert sizes == [10, 10]  # the budget's two calls, each full
    assert report.polled == 20 and report.failed == 0


def test_a_429_pauses_the_whole_account_for_every_daemon(config, clock) -> None:
    clock.set(MIDNIGHT + timedelta(hours=20))
    app = budgeted(config, clock, per_day=10)
    other = budgeted(config, clock, per_day=10)  # a second daemon on the same database
    app.couriers["sandbox"].calls[clock().date()] = 10  # someone else spent the key's quota today
    ids = add_shipments(app, 5, clock(), status=S.IN_TRANSIT)
    report = asyncio.run(poll_shipments(app, clock()))
    assert report.failed >= 1
    tomorrow = MIDNIGHT + timedelta(days=1)
    with Session(app.engine) as session:
        pause = session.get_one(CourierPause, "sandbox")
        assert pause.until == tomorrow and "429" in pause.reason
        waiting = session.execute(select(Shipment.next_poll_at).where(Shipment.id.in_(ids))).scalars().all()
    refused = made_calls(app, clock())
    clock.set(clock() + timedelta(hours=1))
    for daemon in (app, other):
        assert asyncio.run(poll_shipments(daemon, clock())).polled == 0
    assert made_calls(app, clock()) == refused and made_calls(other, clock()) == 0  # nobody called again
    assert next_poll(app) == tomorrow
    assert all(due is not None for due in waiting)
    clock.set(tomorrow + timedelta(minutes=5))
    assert asyncio.run(poll_shipments(app, clock())).polled >= 1  # back at the courier's midnight


def test_no_shipment_waits_longer_than_max_quiet_while_the_budget_allows(config, clock) -> None:
    app = budgeted(config, clock, per_day=150)
    seen = clock() - timedelta(hours=1)
    hot = add_shipments(app, 5, clock(), status=S.OUT_FOR_DELIVERY, last_event_at=seen, last_polled_at=seen)
    cold = add_shipments(app, 5, clock(), status=S.IN_TRANSIT, last_event_at=clock() - timedelta(days=5),
                         estimated_delivery=(clock() + timedelta(days=4)).date(), last_polled_at=seen)
    polls: dict[int, list[datetime]] = {i: [] for i in hot + cold}
    while clock() < MIDNIGHT + timedelta(days=2):
        asyncio.run(poll_shipments(app, clock()))
        with Session(app.engine) as session:
            for shipment_id in session.execute(select(Shipment.id).where(Shipment.last_polled_at == clock())).scalars():
                polls[shipment_id].append(clock())
        clock.set(clock() + TICK)
    for shipment_id in cold:
        times = [seen, *polls[shipment_id], clock()]
        assert max(b - a for a, b in zip(times, times[1:], strict=False)) <= MAX_QUIET + TICK
    assert min(len(polls[i]) for i in hot) > 3 * max(len(polls[i]) for i in cold)  # the budget went to news


def test_the_budget_comes_back_at_the_window_boundary(config, clock) -> None:
    clock.set(MIDNIGHT + timedelta(hours=22))
    app = budgeted(config, clock, per_day=5)
    add_shipments(app, 10, clock(), status=S.IN_TRANSIT)
    run_day([app], clock, MIDNIGHT + timedelta(days=1))
    assert made_calls(app, MIDNIGHT) == 5
    run_day([app], clock, MIDNIGHT + timedelta(days=1, hours=1))
    assert made_calls(app, MIDNIGHT + timedelta(days=1)) >= 1
    with Session(app.engine) as session:
        windows = dict(session.execute(select(CourierCalls.window, CourierCalls.calls)).all())
    assert windows[window_start(MIDNIGHT)] == 5 and windows[MIDNIGHT + timedelta(days=1)] >= 1
