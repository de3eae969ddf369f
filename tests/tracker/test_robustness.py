"""Bad input costs its own record a retry, never the batch, the other shops or the daemon."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select
from sqlmodel import Session

from carriers.base import CarrierEvent, FeedBatch, LineRecord, OrderRecord, ResponseError, TrackingResult
from tests.factories import T0, add_order, add_shipment
from tracker.followups import plan_followups
from tracker.models import Email, Order, OrderLine, Shipment
from tracker.poll import poll_shipments
from tracker.status import ShipmentStatus
from tracker.sync import sync_orders


class Feed:
    name = "demo-shop"

    def __init__(self, orders):
        self.orders = orders

    async def changes(self, since):
        return FeedBatch(tuple(self.orders), T0)

    async def aclose(self):
        return None


def record(n: int, lines) -> OrderRecord:
    return OrderRecord(external_id=f"o{n}", number=f"#{n}", created_at=T0, updated_at=T0, currency="EUR",
                       total=Decimal("10.00"), customer_id=f"c{n}", customer_email=f"c{n}@example.com",
                       customer_name="C", lines=tuple(lines))


def test_a_record_the_database_refuses_is_reported_and_the_others_are_stored(app):
    good = record(1, [LineRecord("1", "Mug", 1, Decimal("10.00"))])
    also_good = record(2, [LineRecord("1", "Mug", 1, Decimal("10.00"))])
    broken = record(3, [LineRecord("1", None, 1, Decimal("10.00"))])  # a title the database refuses (NULL)
    app.marketplaces = {"demo-shop": Feed([good, broken, also_good])}
    report = asyncio.run(sync_orders(app, T0))
    with Session(app.engine) as session:
        numbers = sorted(session.execute(select(Order.number)).scalars())
    assert numbers == ["#1", "#2"]
    assert len(report.problems) == 1 and "#3" in report.problems[0] and report.errors == []


def test_the_same_line_key_twice_in_one_order_keeps_both_lines(app):
    twice = record(1, [LineRecord("MUG", "Mug", 1, Decimal("5.00")), LineRecord("MUG", "Mug", 1, Decimal("5.00"))])
    app.marketplaces = {"demo-shop": Feed([twice])}
    asyncio.run(sync_orders(app, T0))
    with Session(app.engine) as session:
        assert session.execute(select(func.count()).select_from(OrderLine)).scalar_one() == 2


class Courier:
    name, batch_size, concurrency = "sandbox", 10, 1

    def __init__(self, answer):
        self.answer = answer

    async def track(self, numbers):
        return self.answer(numbers)

    def tracking_url(self, number):
        return ""

    async def aclose(self):
        return None


def two_parcels(app):
    with Session(app.engine) as session:
        order = add_order(session)
        for number in ("N1", "N2"):
            add_shipment(session, order, number, next_poll_at=T0)
        session.commit()


def statuses(app):
    with Session(app.engine) as session:
        return {s.tracking_number: (s.status, s.last_error) for s in session.execute(select(Shipment)).scalars()}


def test_an_adapter_that_crashes_costs_its_batch_a_retry_and_the_poll_goes_on(app):
    two_parcels(app)

    def crash(numbers):
        raise KeyError("surprise")

    app.couriers = {"sandbox": Courier(crash)}
    report = asyncio.run(poll_shipments(app, T0))
    assert report.failed == 2
    assert all("unexpected error" in error for _status, error in statuses(app).values())


def test_one_unusable_answer_does_not_stop_the_parcel_next_to_it(app):
    two_parcels(app)
    naive = datetime(2026, 3, 2, 10, 0)  # no time zone: cannot be compared with the shipment's times

    def answers(numbers):
        return [TrackingResult("N1", (CarrierEvent(naive, ShipmentStatus.IN_TRANSIT, "AR", "Arrived"),)),
                TrackingResult("N2", (CarrierEvent(T0 + timedelta(hours=1), ShipmentStatus.IN_TRANSIT, "AR",
                                                   "Arrived"),))]

    app.couriers = {"sandbox": Courier(answers)}
    asyncio.run(poll_shipments(app, T0 + timedelta(hours=2)))
    result = statuses(app)
    assert result["N2"][0] is ShipmentStatus.IN_TRANSIT
    assert result["N1"][0] is ShipmentStatus.PENDING and "could not apply" in result["N1"][1]


def test_a_number_that_only_ever_errors_expires_instead_of_being_polled_forever(app):
    two_parcels(app)
    app.couriers = {"sandbox": Courier(lambda numbers: [
        TrackingResult(n, found=False, error=ResponseError("number may be incorrect", source="sandbox"))
        for n in numbers])}
    later = T0 + app.config.expire_after + timedelta(days=1)
    with Session(app.engine) as session:
        for shipment in session.execute(select(Shipment)).scalars():
            shipment.next_poll_at = later
        session.commit()
    asyncio.run(poll_shipments(app, later))
    assert {status for status, _e in statuses(app).values()} == {ShipmentStatus.EXPIRED}


def test_a_parcel_nobody_polls_any_more_does_not_hold_back_the_orders_follow_ups(app):
    with Session(app.engine) as session:
        order = add_order(session)
        add_shipment(session, order, "OK1", status=ShipmentStatus.DELIVERED, delivered_at=T0)
        add_shipment(session, order, "TYPO", notify=False, next_poll_at=None)  # dropped by the shop
        session.commit()
    assert plan_followups(app, T0) == 2
    with Session(app.engine) as session:
        assert session.execute(select(func.count()).select_from(Email)).scalar_one() == 2
