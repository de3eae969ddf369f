"""Read-only listings for the CLI (and later the dashboard): columns, not ORM objects."""

from __future__ import annotations

from typing import Any

from sqlalchemy import case, func, select
from sqlmodel import Session

from tracker.config import Config
from tracker.db import open_db
from tracker.models import Email, Order, Shipment


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def list_shipments(config: Config, *, status: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    engine = open_db(config.database_url)
    # Counted for the listed rows only, through the shipment_id index, instead of grouping every email first
    # (the state is tested inside the count so that SQLite cannot pick the state index and scan all sent mail).
    sent = (
        select(func.coalesce(func.sum(case((Email.state == "sent", 1), else_=0)), 0))
        .where(Email.shipment_id == Shipment.id).correlate(Shipment).scalar_subquery()
    )
    query = (
        select(Shipment.id, Order.number, Order.external_id, Shipment.courier, Shipment.tracking_number,
               Shipment.status, Shipment.last_event_at, Shipment.estimated_delivery, Shipment.delivered_at,
               Shipment.tracking_url, Shipment.last_error, sent)
        .join(Order, Order.id == Shipment.order_id)
        .order_by(Shipment.id.desc())
        .limit(limit)
    )
    if status:
        query = query.where(Shipment.status == status)
    with Session(engine) as session:
        rows = session.execute(query).all()
    engine.dispose()
    keys = ["id", "order", "order_id", "courier", "tracking_number", "status", "last_event_at",
            "estimated_delivery", "delivered_at", "tracking_url", "error", "emails"]
    return [{k: _iso(v) for k, v in zip(keys, row, strict=True)} for row in rows]


def list_emails(config: Config, *, kind: str | None = None, state: str | None = None,
                limit: int = 50) -> list[dict[str, Any]]:
    engine = open_db(config.database_url)
    query = (
        select(Email.id, Email.kind, Email.state, Email.to_address, Order.number, Shipment.tracking_number,
               Email.due_at, Email.sent_at, Email.attempts, Email.message_id, Email.last_error)
        .join(Order, Order.id == Email.order_id)
        .outerjoin(Shipment, Shipment.id == Email.shipment_id)
        .order_by(Email.id.desc())
        .limit(limit)
    )
    if kind:
        query = query.where(Email.kind == kind)
    if state:
        query = query.where(Email.state == state)
    with Session(engine) as session:
        rows = session.execute(query).all()
    engine.dispose()
    keys = ["id", "kind", "state", "to", "order", "tracking_number", "due_at", "sent_at", "attempts",
            "message_id", "error"]
    return [{k: _iso(v) for k, v in zip(keys, row, strict=True)} for row in rows]


def list_coupons(config: Config, *, limit: int = 50) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Issued coupons newest first, and what they earned: issued, redeemed, revenue per currency."""
    from tracker.models import Coupon, Customer

    engine = open_db(config.database_url)
    redeemed_order = Order.__table__.alias("redeemed")
    query = (
        select(Coupon.id, Coupon.code, Coupon.source, Coupon.discount, Customer.email, Coupon.created_at,
               Coupon.expires_at, redeemed_order.c.number, Coupon.revenue, Coupon.currency)
        .join(Customer, Customer.id == Coupon.customer_id)
        .outerjoin(redeemed_order, redeemed_order.c.id == Coupon.redeemed_order_id)
        .order_by(Coupon.id.desc()).limit(limit)
    )
    with Session(engine) as session:
        rows = session.execute(query).all()
        totals = session.execute(
            select(Coupon.currency, func.count(), func.count(Coupon.redeemed_order_id), func.sum(Coupon.revenue))
            .group_by(Coupon.currency)
        ).all()
    engine.dispose()
    keys = ["id", "code", "source", "discount", "customer", "issued_at", "expires_at", "redeemed_by_order",
            "revenue", "currency"]
    summary = {"issued": sum(t[1] for t in totals), "redeemed": sum(t[2] for t in totals),
               "revenue": {currency or "?": str(total or 0) for currency, _i, _r, total in totals}}
    return [{k: _iso(v) for k, v in zip(keys, row, strict=True)} for row in rows], summary
