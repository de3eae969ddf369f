"""Gather what one queued email needs from the database: its rows, its coupon, its related products."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from emails import context as ctx
from emails.conditions import previous_coupon
from emails.coupons import derive_code
from emails.links import base_url, tracking_page_url
from emails.policy import customer_zone
from emails.related import related_products
from emails.unsubscribe import unsubscribe_url
from tracker.config import Config, ShopSettings
from tracker.models import Coupon, Customer, Email, Order, OrderLine, Shipment, TrackingEvent


@dataclass
class EmailRows:
    email: Email
    order: Order
    customer: Customer
    shipment: Shipment | None


def load_rows(session: Session, email: Email) -> EmailRows:
    order = session.get_one(Order, email.order_id)
    customer = session.get_one(Customer, email.customer_id)
    shipment = session.get(Shipment, email.shipment_id) if email.shipment_id else None
    if shipment is None and (email.marketing or email.flow):
        # follow-ups belong to the order; show its latest delivered parcel if there is one
        shipment = session.execute(
            select(Shipment).where(Shipment.order_id == order.id)
            .order_by(Shipment.delivered_at.desc().nulls_last(), Shipment.id.desc())
        ).scalars().first()
    return EmailRows(email, order, customer, shipment)


def ensure_coupon(session: Session, config: Config, rows: EmailRows, secret: bytes, now: datetime) -> Coupon:
    existing = session.execute(select(Coupon).where(Coupon.email_id == rows.email.id)).scalar_one_or_none()
    if existing is not None:
        return existing
    coupon = Coupon(
        code=derive_code(secret, rows.email.idempotency_key),
        email_id=rows.email.id,
        customer_id=rows.customer.id,
        discount=config.emails.coupon_discount,
        created_at=now,
        expires_at=now + config.emails.coupon_valid_for,
    )
    session.add(coupon)
    session.flush()
    return coupon


def build_context(
    session: Session, config: Config, shop: ShopSettings, rows: EmailRows, secret: bytes, now: datetime
) -> dict[str, Any]:
    lines = session.execute(
        select(OrderLine).where(OrderLine.order_id == rows.order.id).order_by(OrderLine.id)
    ).scalars().all()
    shipment = None
    if rows.shipment is not None:
        events = session.execute(
            select(TrackingEvent).where(TrackingEvent.shipment_id == rows.shipment.id)
        ).scalars().all()
        shipment = ctx.shipment_context(rows.shipment, rows.shipment.courier_name, events)
        page = tracking_page_url(config, shop, secret, rows.shipment.id)
        if page is not None:  # the shop's branded page; it links on to the courier's own
            shipment["courier_url"], shipment["tracking_url"] = shipment["tracking_url"], page
    context = ctx.assemble(shop, ctx.customer_context(rows.customer), ctx.order_context(rows.order, lines), shipment)
    context["timezone"] = customer_zone(rows.order.country, shop.timezone).key
    kind = rows.email.kind
    if rows.email.marketing:
        context["unsubscribe_url"] = unsubscribe_url(base_url(config, shop) or shop.url, secret, rows.customer.id)
    if kind == "feedback_request":
        context["feedback"] = ctx.feedback_context(shop, rows.order)
    if kind == "resell_coupon":
        context["coupon"] = ctx.coupon_context(shop, ensure_coupon(session, config, rows, secret, now))
        context["related_products"] = related_products(session, shop, rows.order)
    elif rows.email.flow:  # a later step (a reminder) shows the coupon an earlier step gave
        earlier = previous_coupon(session, rows.email)
        if earlier is not None:
            context["coupon"] = ctx.coupon_context(shop, earlier)
            context["related_products"] = related_products(session, shop, rows.order)
    return context
