"""sync_orders: idempotent upserts, a cursor with overlap, silent history, and changes that arrive later."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from carriers.base import FeedBatch, LineRecord, OrderRecord, ShipmentRecord, TransientError
from tests.factories import T0
from tracker.models import Customer, Email, EmailState, FeedCursor, Order, OrderLine, OrderState, Shipment
from tracker.settings import Section
from tracker.sync import OVERLAP, sync_orders


class FakeFeed:
    """A shop whose orders the test edits; `changes` answers like a real feed, and records what it was asked."""

    def __init__(self, name: str = "demo-shop") -> None:
        self.name = name
        self.orders: dict[str, OrderRecord] = {}
        self.asked: list[datetime] = []
        self.fail_with: Exception | None = None
        self.problems: tuple[str, ...] = ()

    def put(self, record: OrderRecord) -> None:
        self.orders[record.external_id] = record

    async def changes(self, since: datetime) -> FeedBatch:
        self.asked.append(since)
        if self.fail_with:
            raise self.fail_with
        changed = tuple(o for o in self.orders.values() if o.updated_at > since)
        cursor = max((o.updated_at for o in changed), default=since)
        return FeedBatch(changed, cursor, self.problems)

    async def aclose(self) -> None:
        return None


def order(n: int, at: datetime, *, shipments=(), **fields) -> OrderRecord:
    return OrderRecord(
        external_id=f"o{n}", number=f"#{n}", created_at=at, updated_at=fields.pop("updated_at", at), currency="EUR",
        total=Decimal("10.00"), customer_id=f"c{n % 40}", customer_email=f"c{n % 40}@example.com",
        customer_name=f"Customer {n % 40}", lines=(LineRecord("1", "Mug", 1, Decimal("10.00"), sku="MUG"),),
        shipments=tuple(shipments), **fields)


def parcel(number: str, at: datetime, courier: str = "sandbox") -> ShipmentRecord:
    return ShipmentRecord(tracking_number=number, courier_name=courier, shipped_at=at)


def sync(app, feed, now):
    app.marketplaces = {feed.name: feed}
    return asyncio.run(sync_orders(app, now))


def count(app, model, *where) -> int:
    with Session(app.engine) as session:
        return session.execute(select(func.count()).select_from(model).where(*where)).scalar_one()


def emails(app) -> list[tuple[str, str]]:
    with Session(app.engine) as session:
        return sorted(session.execute(select(Email.kind, Email.idempotency_key)).all())


@pytest.fixture
def config(config):
    """The bundled config, with the shop's default 60-day look-back instead of the demo's none."""
    account = config.marketplaces["demo-shop"]
    data = {k: v for k, v in account.section.data.items() if k != "lookback"}
    section = Section(account.section.file, account.section.path, data)
    return replace(config, marketplaces={"demo-shop": replace(account, section=section)})


def test_connecting_a_shop_with_hundreds_of_past_orders_emails_nobody(app):
    feed = FakeFeed()
    for n in range(400):
        placed = T0 - timedelta(days=59, hours=-n * 3)
        feed.put(order(n, placed, shipments=[parcel(f"SB{n:04d}", placed + timedelta(hours=20))]))
    report = sync(app, feed, T0)
    assert report.orders_new == 400 and report.shipments_new == 400
    assert report.emails_planned == 0 and emails(app) == []
    assert count(app, Customer) == 40  # repeat customers are one customer
    assert count(app, Order, Order.notify.is_(False)) == 400
    new = order(1000, T0 + timedelta(minutes=5))
    feed.put(new)
    assert sync(app, feed, T0 + timedelta(minutes=10)).emails_planned == 1
    assert emails(app) == [("order_confirmation", "order_confirmation:order:401")]


def test_the_first_sync_looks_back_and_later_syncs_start_from_the_cursor_minus_an_overlap(app):
    feed = FakeFeed()
    feed.put(order(1, T0 - timedelta(days=1)))
    sync(app, feed, T0)
    assert feed.asked[0] == T0 - app.lookback("demo-shop") - OVERLAP
    with Session(app.engine) as session:
        stored = session.get_one(FeedCursor, "demo-shop")
        assert stored.cursor == T0 - timedelta(days=1) and stored.connected_at == T0
    sync(app, feed, T0 + timedelta(hours=1))
    assert feed.asked[1] == T0 - timedelta(days=1) - OVERLAP


def test_reading_the_same_page_again_duplicates_nothing(app):
    feed = FakeFeed()
    sync(app, feed, T0)  # connected before the order arrives, so it emails
    later = T0 + timedelta(minutes=1)
    feed.put(order(1, later, shipments=[parcel("SB1", later), parcel("SB2", later)]))
    for _ in range(3):
        sync(app, feed, T0 + timedelta(hours=1))
        with Session(app.engine) as session:  # pretend the cursor never moved: the same page comes back
            session.get_one(FeedCursor, "demo-shop").cursor = T0
            session.commit()
    assert (count(app, Order), count(app, OrderLine), count(app, Shipment), count(app, Customer)) == (1, 1, 2, 1)
    assert [kind for kind, _ in emails(app)] == ["order_confirmation", "shipment_confirmation",
                                                 "shipment_confirmation"]


def test_an_order_with_no_shipment_yet_gets_one_later(app):
    feed = FakeFeed()
    placed = T0 + timedelta(minutes=1)
    feed.put(order(1, placed))
    sync(app, feed, T0 + timedelta(minutes=2))
    assert count(app, Shipment) == 0
    feed.put(order(1, placed, updated_at=placed + timedelta(hours=5), shipments=[parcel("SB1", placed)]))
    report = sync(app, feed, T0 + timedelta(hours=6))
    assert report.orders_updated == 1 and report.shipments_new == 1
    with Session(app.engine) as session:
        shipment = session.execute(select(Shipment)).scalar_one()
        assert shipment.courier == "sandbox" and shipment.next_poll_at == T0 + timedelta(hours=6)
        assert shipment.tracking_url.endswith("/SB1")


def test_a_corrected_tracking_number_replaces_the_old_one(app):
    feed = FakeFeed()
    placed = T0 + timedelta(minutes=1)
    feed.put(order(1, placed, shipments=[parcel("SB-TYPO", placed)]))
    sync(app, feed, T0 + timedelta(hours=1))
    feed.put(order(1, placed, updated_at=placed + timedelta(hours=2), shipments=[parcel("SB-RIGHT", placed)]))
    sync(app, feed, T0 + timedelta(hours=3))
    with Session(app.engine) as session:
        rows = {s.tracking_number: s for s in session.execute(select(Shipment)).scalars()}
    assert rows["SB-TYPO"].next_poll_at is None and "no longer lists" in rows["SB-TYPO"].last_error
    assert rows["SB-RIGHT"].next_poll_at is not None


def test_a_cancelled_order_cancels_its_waiting_emails_and_stops_polling(app):
    feed = FakeFeed()
    sync(app, feed, T0)
    placed = T0 + timedelta(minutes=1)
    feed.put(order(1, placed, shipments=[parcel("SB1", placed)]))
    sync(app, feed, T0 + timedelta(hours=1))
    feed.put(order(1, placed, updated_at=placed + timedelta(hours=2), cancelled=True,
                   shipments=[parcel("SB1", placed)]))
    report = sync(app, feed, T0 + timedelta(hours=3))
    assert report.cancelled == 1
    assert count(app, Email, Email.state == EmailState.CANCELLED) == 2
    assert count(app, Order, Order.state == OrderState.CANCELLED) == 1
    assert count(app, Shipment, Shipment.next_poll_at.is_not(None)) == 0


def test_a_parcel_with_an_unknown_courier_is_kept_and_explained_not_polled(app):
    feed = FakeFeed()
    placed = T0 + timedelta(minutes=1)
    feed.put(order(1, placed, shipments=[parcel("XYZ123", placed, courier="Pigeon Post")]))
    sync(app, feed, T0 + timedelta(hours=1))
    with Session(app.engine) as session:
        shipment = session.execute(select(Shipment)).scalar_one()
    assert shipment.next_poll_at is None and "Pigeon Post" in shipment.last_error


def test_a_feed_that_fails_keeps_its_cursor_and_loses_nothing(app):
    feed = FakeFeed()
    placed = T0 + timedelta(minutes=1)
    feed.put(order(1, placed))
    sync(app, feed, T0 + timedelta(hours=1))
    feed.put(order(2, placed + timedelta(hours=1)))
    feed.fail_with = TransientError("the service is busy", source="demo-shop", status_code=503)
    report = sync(app, feed, T0 + timedelta(hours=2))
    assert report.errors and "HTTP 503" in report.errors[0]
    feed.fail_with = None
    sync(app, feed, T0 + timedelta(hours=3))
    assert count(app, Order) == 2


def test_records_a_feed_could_not_read_are_reported_and_the_rest_imported(app):
    feed = FakeFeed()
    feed.put(order(1, T0 + timedelta(minutes=1)))
    feed.problems = ("demo-shop: orders.csv:7: quantity 'x' must be a whole number",)
    report = sync(app, feed, T0 + timedelta(hours=1))
    assert report.problems == list(feed.problems)
    assert count(app, Order) == 1


def test_a_refund_is_recorded(app):
    feed = FakeFeed()
    placed = T0 + timedelta(minutes=1)
    feed.put(order(1, placed))
    sync(app, feed, T0 + timedelta(hours=1))
    feed.put(replace(order(1, placed, updated_at=placed + timedelta(hours=3)), refunded=True))
    sync(app, feed, T0 + timedelta(hours=4))
    assert count(app, Order, Order.refunded.is_(True)) == 1
