"""The conditions a flow step names, evaluated when the email falls due. Each answers None (holds) or the
reason the email must not go, which is recorded on the row."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import func, select
from sqlmodel import Session

from emails.engagement import clicked, no_click
from tracker.flows import Condition
from tracker.models import Coupon, Customer, Email, EmailState, Order, OrderState, Shipment
from tracker.status import ShipmentStatus


def trigger_time(session: Session, order: Order) -> datetime:
    """When the flow started: the order's last delivery, else its creation."""
    delivered = session.execute(
        select(func.max(Shipment.delivered_at)).where(Shipment.order_id == order.id)
    ).scalar_one_or_none()
    return delivered or order.created_at


def _all_delivered(session: Session, email: Email, order: Order, customer: Customer, c: Condition,
                   now: datetime) -> str | None:
    statuses = session.execute(select(Shipment.status).where(Shipment.order_id == order.id,
                                                             Shipment.notify.is_(True))).scalars().all()
    if not statuses:
        return "the order has no parcel"
    unresolved = sorted({str(s) for s in statuses if s is not ShipmentStatus.DELIVERED})
    return f"a parcel was not delivered ({', '.join(unresolved)})" if unresolved else None


def _not_refunded(session: Session, email: Email, order: Order, customer: Customer, c: Condition,
                  now: datetime) -> str | None:
    return "the order was refunded" if order.refunded else None


def _no_reorder(session: Session, email: Email, order: Order, customer: Customer, c: Condition,
                now: datetime) -> str | None:
    since = trigger_time(session, order)
    again = session.execute(select(func.count()).where(
        Order.customer_id == customer.id, Order.id != order.id, Order.created_at > since,
        Order.state == OrderState.OPEN)).scalar_one()
    return "the customer has ordered again since" if again else None


def _coupon_unused(session: Session, email: Email, order: Order, customer: Customer, c: Condition,
                   now: datetime) -> str | None:
    coupon = previous_coupon(session, email)
    if coupon is None:
        return "the previous step issued no coupon"
    if coupon.redeemed_order_id is not None:
        return f"the coupon {coupon.code} was already used"
    if coupon.expires_at <= now:
        return f"the coupon {coupon.code} has expired"
    return None


def _no_recent(session: Session, email: Email, order: Order, customer: Customer, c: Condition,
               now: datetime) -> str | None:
    recent = session.execute(select(func.count()).where(
        Email.customer_id == customer.id, Email.kind == c.kind, Email.state == EmailState.SENT,
        Email.id != email.id, Email.sent_at > now - c.within)).scalar_one()
    return f"the customer got a {c.kind} email within {c.within}" if recent else None


CHECKS: dict[str, Callable[..., str | None]] = {
    "no_click": no_click,
    "clicked": clicked,
    "all_delivered": _all_delivered,
    "not_refunded": _not_refunded,
    "no_reorder": _no_reorder,
    "coupon_unused": _coupon_unused,
    "no_recent": _no_recent,
}


def previous_coupon(session: Session, email: Email) -> Coupon | None:
    """The coupon an earlier step of the same flow gave this order (what a reminder reminds of)."""
    return session.execute(
        select(Coupon).join(Email, Email.id == Coupon.email_id)
        .where(Email.order_id == email.order_id, Email.flow == email.flow, Email.step < email.step)
        .order_by(Email.step.desc())
    ).scalars().first()


def first_failing(session: Session, conditions: tuple[Condition, ...], email: Email, order: Order,
                  customer: Customer, now: datetime) -> str | None:
    for condition in conditions:
        reason = CHECKS[condition.name](session, email, order, customer, condition, now)
        if reason is not None:
            return reason
    return None
