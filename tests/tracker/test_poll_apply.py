"""Applying courier answers: one transaction and a fixed number of reads per poll, whatever the parcel count;
a failure still costs only its own parcel a retry (tests/tracker/test_robustness.py)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import event, func, select
from sqlmodel import Session

from carriers.base import CarrierEvent, TrackingResult
from tests.factories import T0, add_order, add_shipment
from tests.postgres import database_for
from tracker.models import Email, Shipment, TrackingEvent
from tracker.poll import poll_shipments
from tracker.status import ShipmentStatus

LATER = T0 + timedelta(hours=2)


class OneNumberCourier:
    """Like DHL: one number per request."""

    name, batch_size, concurrency = "sandbox", 1, 4

    async def track(self, numbers):
        return [TrackingResult(n, (CarrierEvent(T0 + timedelta(hours=1), ShipmentStatus.IN_TRANSIT, "AR",
                                                "Arrived", "Leipzig, DE"),)) for n in numbers]

    def tracking_url(self, number):
        return ""

    async def aclose(self):
        return None


def parcels(app, count: int) -> None:
    with Session(app.engine) as session:
        for n in range(count):
            add_shipment(session, add_order(session, number=f"#{n}", email=f"c{n}@example.com"), f"N{n}",
                         next_poll_at=T0)
        session.commit()


def polled(app, count: int) -> dict[str, int]:
    """Poll `count` parcels once; how many commits and SELECTs that took."""
    parcels(app, count)
    app.couriers = {"sandbox": OneNumberCourier()}
    seen = {"commits": 0, "selects": 0}

    def on_commit(_connection):
        seen["commits"] += 1

    def on_statement(_conn, _cursor, statement, *_args):
        seen["selects"] += statement.lstrip().upper().startswith("SELECT")

    event.listen(app.engine, "commit", on_commit)
    event.listen(app.engine, "before_cursor_execute", on_statement)
    try:
        report = asyncio.run(poll_shipments(app, LATER))
    finally:
        event.remove(app.engine, "commit", on_commit)
        event.remove(app.engine, "before_cursor_execute", on_statement)
    assert report.polled == count and report.changed == count and report.emails_planned == count
    with Session(app.engine) as session:
        assert set(session.execute(select(Shipment.status)).scalars()) == {ShipmentStatus.IN_TRANSIT}
        assert session.execute(select(func.count()).select_from(TrackingEvent)).scalar_one() == count
        assert session.execute(select(func.count()).select_from(Email)).scalar_one() == count
    return seen


def test_a_poll_of_many_one_number_answers_commits_once_and_reads_in_bulk(app):
    seen = polled(app, 12)
    assert seen["commits"] == 2  # the claim, then every answer together
    assert seen["selects"] <= 7  # pause check, claim, claimed rows, shipments, their events, orders, customers


def test_the_reads_do_not_grow_with_the_number_of_parcels(app, config, clock, backend, tmp_path):
    few = polled(app, 3)
    from tracker.app import App
    from tracker.db import open_db

    with database_for(backend, tmp_path, "more") as url:  # a second, empty database
        other = App.create(config, clock, engine=open_db(url))
        try:
            many = polled(other, 30)
        finally:
            other.engine.dispose()
    assert many == few
