"""The sync_orders job: read each marketplace feed since its cursor and upsert what it says.

Reading a page twice is harmless (upserts keyed on the marketplace's ids), the network call happens with no
transaction open, and the cursor only advances in the transaction that stored the orders.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, true, update
from sqlmodel import Session

from carriers import explain_courier
from carriers.base import CarrierError, FeedBatch, Marketplace, OrderRecord, ShipmentRecord
from emails.outbox import cancel_for_order, enqueue
from tracker.app import App
from tracker.clock import as_measured_by
from tracker.db import insert_ignore
from tracker.followups import flows_for, start_flow
from tracker.models import Coupon, Customer, FeedCursor, Order, OrderLine, OrderState, Shipment

log = logging.getLogger("trackmail.sync")
OVERLAP = timedelta(minutes=10)  # re-read a little of the past: feeds are not always read-your-writes
LEASE = timedelta(minutes=10)  # one worker reads an account at a time; renewed while a long read runs


@dataclass
class SyncReport:
    accounts: int = 0  # feeds read and stored by this worker
    orders_new: int = 0
    orders_updated: int = 0
    shipments_new: int = 0
    cancelled: int = 0
    emails_planned: int = 0
    redemptions: int = 0
    errors: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # records a feed could not read, kept aside


def _customer(session: Session, marketplace: str, record: OrderRecord) -> Customer:
    customer = session.execute(
        select(Customer).where(Customer.marketplace == marketplace, Customer.external_id == record.customer_id)
    ).scalar_one_or_none()
    if customer is None:
        customer = Customer(marketplace=marketplace, external_id=record.customer_id, email=record.customer_email,
                            name=record.customer_name)
        session.add(customer)
    customer.email = record.customer_email
    customer.name = record.customer_name
    customer.locale = record.customer_locale
    customer.marketing_consent = record.marketing_consent
    session.flush()
    return customer


def _lines(session: Session, order: Order, record: OrderRecord) -> None:
    existing = {
        line.line_key: line
        for line in session.execute(select(OrderLine).where(OrderLine.order_id == order.id)).scalars()
    }
    keys: dict[str, int] = {}
    for item in record.lines:
        keys[item.key] = keys.get(item.key, 0) + 1
        if keys[item.key] > 1:  # the same key twice in one order (a SKU on two rows): keep both lines
            item = replace(item, key=f"{item.key}#{keys[item.key]}")
        line = existing.get(item.key) or OrderLine(order_id=order.id, line_key=item.key, title=item.title,
                                                   quantity=item.quantity, unit_price=item.unit_price)
        line.title, line.quantity, line.unit_price = item.title, item.quantity, item.unit_price
        line.sku, line.product_id = item.sku, item.product_id
        line.image_url, line.product_url = item.image_url, item.product_url
        session.add(line)


def _shipment(app: App, session: Session, order: Order, item: ShipmentRecord, connected_at: datetime,
              now: datetime) -> Shipment | None:
    """Store a new fulfillment; None if we already had it."""
    found = session.execute(
        select(Shipment).where(Shipment.order_id == order.id, Shipment.tracking_number == item.tracking_number)
    ).scalar_one_or_none()
    if found is not None:
        return None
    courier, why = explain_courier(item.courier_name, item.tracking_number, app.config.couriers)
    shipment = Shipment(order_id=order.id, courier=courier or "", courier_name=item.courier_name,
                        tracking_number=item.tracking_number, shipped_at=item.shipped_at, first_seen_at=now,
                        tracking_url=item.tracking_url, next_poll_at=now if courier else None,
                        notify=item.shipped_at >= connected_at)
    if courier is None:
        shipment.last_error = why
        log.warning("order %s, parcel %s: %s", order.number, item.tracking_number, why)
    elif not shipment.tracking_url and courier in app.couriers:
        shipment.tracking_url = app.couriers[courier].tracking_url(item.tracking_number)
    session.add(shipment)
    session.flush()
    return shipment


def record_redemptions(session: Session, order: Order, codes: tuple[str, ...], now: datetime) -> int:
    """An order that used one of our coupons: remember which, and what it earned."""
    found = 0
    wanted = {code.strip().upper() for code in codes if code.strip()}
    for coupon in session.execute(select(Coupon).where(func.upper(Coupon.code).in_(wanted))).scalars():
        if coupon.redeemed_order_id is None:
            coupon.redeemed_order_id, coupon.redeemed_at = order.id, now
            coupon.revenue, coupon.currency = order.total, order.currency
            session.add(coupon)
            found += 1
    return found


def _stop_polling(session: Session, order: Order, keep: list[str], reason: str) -> None:
    """Shipments the shop dropped (a corrected tracking number, a cancelled order) keep their history but are
    no longer polled and cause no more emails."""
    session.execute(
        update(Shipment)
        .where(Shipment.order_id == order.id, Shipment.tracking_number.not_in(keep), Shipment.next_poll_at.is_not(None))
        .values(next_poll_at=None, notify=False, last_error=reason)
    )


def upsert_order(app: App, session: Session, account: str, record: OrderRecord, connected_at: datetime,
                 now: datetime, report: SyncReport) -> None:
    shop = app.config.marketplaces[account].shop
    customer = _customer(session, account, record)
    order = session.execute(
        select(Order).where(Order.marketplace == account, Order.external_id == record.external_id)
    ).scalar_one_or_none()
    is_new = order is None
    if order is None:
        order = Order(marketplace=account, shop=shop, external_id=record.external_id, number=record.number,
                      customer_id=customer.id, created_at=record.created_at, updated_at=record.updated_at,
                      currency=record.currency, total=record.total, notify=record.created_at >= connected_at)
    order.number, order.currency, order.total = record.number, record.currency, record.total
    order.updated_at, order.country = record.updated_at, record.shipping_address.country
    order.refunded = record.refunded
    order.postcode = record.shipping_address.postcode
    session.add(order)
    session.flush()
    _lines(session, order, record)
    fresh = now - app.config.notification_horizon
    if is_new:
        report.orders_new += 1
        if record.created_at >= fresh and not (record.cancelled or record.refunded):
            report.emails_planned += enqueue(session, app.config, "order_confirmation", order, now=now)
            for flow in flows_for(app, "order_created"):
                report.emails_planned += start_flow(app, session, flow, order, record.created_at, now)
    else:
        report.orders_updated += 1
    if record.cancelled and order.state is not OrderState.CANCELLED:
        order.state = OrderState.CANCELLED
        cancel_for_order(session, order, now)
        _stop_polling(session, order, [], "the order was cancelled")
        report.cancelled += 1
    if record.shipments:
        listed = [s.tracking_number for s in record.shipments]
        _stop_polling(session, order, listed, "the shop no longer lists this tracking number")
    if record.discount_codes:
        report.redemptions += record_redemptions(session, order, record.discount_codes, now)
    for item in record.shipments:
        shipment = _shipment(app, session, order, item, connected_at, now)
        if shipment is None:
            continue
        report.shipments_new += 1
        if item.shipped_at >= fresh:
            report.emails_planned += enqueue(session, app.config, "shipment_confirmation", order, now=now,
                                             shipment=shipment)


def _claim(app: App, account: str, now: datetime, min_gap: timedelta) -> FeedCursor | None:
    """Lease the account's feed to this worker; None while another worker holds it, or if it was read less
    than `min_gap` ago. The first claim creates the cursor (connecting the account)."""
    with Session(app.engine) as session:
        lookback = app.lookback(account)
        created = insert_ignore(session, FeedCursor, marketplace=account, connected_at=now, cursor=now - lookback,
                                updated_at=now)
        free = or_(FeedCursor.claimed_until.is_(None), FeedCursor.claimed_until < now)
        due = true() if created else FeedCursor.updated_at <= now - min_gap
        cursor = session.execute(
            select(FeedCursor).where(FeedCursor.marketplace == account, free, due).with_for_update(skip_locked=True)
        ).scalar_one_or_none()
        if cursor is None:
            session.commit()
            return None
        cursor.claimed_until, cursor.claimed_by = now + app.lease(LEASE), app.worker
        session.commit()
        if created:
            log.info("%s: connected; importing %d days of history without emailing anybody", account, lookback.days)
        session.refresh(cursor)
        session.expunge(cursor)
        return cursor


def _release(app: App, account: str) -> None:
    with Session(app.engine) as session:
        session.execute(update(FeedCursor).where(FeedCursor.marketplace == account, FeedCursor.claimed_by == app.worker)
                        .values(claimed_until=None, claimed_by=""))
        session.commit()


async def _keep_lease(app: App, account: str) -> None:
    """Renew the lease while a long read is under way (a first sync may page through months of orders)."""
    lease = app.lease(LEASE)
    every = (lease / as_measured_by(app.clock, timedelta(seconds=1))) / 3  # in real seconds
    while True:
        await asyncio.sleep(every)
        try:
            with Session(app.engine) as session:
                session.execute(update(FeedCursor)
                                .where(FeedCursor.marketplace == account, FeedCursor.claimed_by == app.worker)
                                .values(claimed_until=app.clock() + lease))
                session.commit()
        except Exception:  # a database blip: try again next time round; the store checks the lease anyway
            log.warning("%s: could not renew the feed lease; trying again", account, exc_info=True)


async def _read(app: App, account: str, feed: Marketplace, since: datetime) -> FeedBatch:
    keeper = asyncio.create_task(_keep_lease(app, account))
    try:
        return await feed.changes(since)
    finally:
        keeper.cancel()


async def sync_account(app: App, account: str, feed: Marketplace, now: datetime, report: SyncReport,
                       min_gap: timedelta = timedelta(0)) -> bool:
    """Read one account's feed if this worker gets its lease; False if another worker has it (or read it
    less than `min_gap` ago)."""
    cursor = _claim(app, account, now, min_gap)
    if cursor is None:
        return False
    try:
        batch = await _read(app, account, feed, cursor.cursor - OVERLAP)
        for problem in batch.problems:
            log.warning("%s", problem)
        report.problems += batch.problems
        with Session(app.engine) as session:
            # Locked and still ours, or nothing is stored: two workers upserting one page at once could lose an
            # order to a unique-key race and still move the cursor past it.
            stored = session.execute(
                select(FeedCursor).where(FeedCursor.marketplace == account, FeedCursor.claimed_by == app.worker)
                .with_for_update()
            ).scalar_one_or_none()
            if stored is None:
                log.warning("%s: another worker took this feed over (the lease ran out); its page is left to them",
                            account)
                return False
            for record in batch.orders:
                try:
                    with session.begin_nested():  # one record the database refuses must not sink the batch
                        upsert_order(app, session, account, record, cursor.connected_at, now, report)
                except Exception as exc:
                    problem = f"{account}: order {record.number or record.external_id} not stored: {exc!r}"
                    log.error("%s", problem)
                    report.problems.append(problem)
            stored.cursor = max(stored.cursor, batch.cursor)
            stored.updated_at = now
            stored.claimed_until, stored.claimed_by = None, ""
            session.commit()
        report.accounts += 1
        return True
    finally:
        _release(app, account)


async def sync_orders(app: App, now: datetime, min_gap: timedelta = timedelta(0)) -> SyncReport:
    """Every account this worker can lease. The daemon passes `min_gap` (half its sync interval), so an
    account another daemon has just read is not read again."""
    report = SyncReport()
    for account, feed in app.marketplaces.items():
        try:
            await sync_account(app, account, feed, now, report, min_gap)
        except CarrierError as exc:
            log.error("sync %s failed, will retry next run: %s", account, exc)
            report.errors.append(str(exc))
        except Exception as exc:  # one account's bug must not stop the other accounts' sync
            log.exception("sync %s failed unexpectedly, will retry next run", account)
            report.errors.append(f"{account}: unexpected error: {exc!r}")
    return report
