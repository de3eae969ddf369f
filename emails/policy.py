"""Whether a queued email should still go, asked again at send time: things change while it waits."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlmodel import Session

from tracker.config import MARKETING_KINDS, Config
from tracker.models import Customer, Email, Order, OrderState, Shipment
from tracker.status import ShipmentStatus


def _reordered_since(session: Session, customer: Customer, order: Order, since: datetime) -> bool:
    query = select(func.count()).where(
        Order.customer_id == customer.id,
        Order.id != order.id,
        Order.created_at > since,
        Order.state == OrderState.OPEN,
    )
    return session.execute(query).scalar_one() > 0


def skip_reason(
    session: Session,
    config: Config,
    email: Email,
    order: Order,
    customer: Customer,
    shipment: Shipment | None,
    now: datetime,
) -> str | None:
    """None if the email may go now, else why it must not (recorded on the row)."""
    if email.kind not in config.emails.enabled:
        return f"{email.kind} emails are switched off in config"
    if order.state is OrderState.CANCELLED:
        return "the order was cancelled"
    if email.shipment_id is not None and shipment is not None and not shipment.notify:
        return "the shop no longer lists this parcel"
    if email.kind not in MARKETING_KINDS:
        return None
    if not customer.marketing_consent:
        return "the customer has not agreed to marketing emails"
    if shipment is not None and shipment.status is ShipmentStatus.RETURNED:
        return "the parcel was returned"
    if now - email.due_at > config.notification_horizon:
        return f"overdue by more than {config.notification_horizon}: too late to be relevant"
    if email.kind == "resell_coupon":
        since = shipment.delivered_at if shipment and shipment.delivered_at else order.created_at
        if _reordered_since(session, customer, order, since):
            return "the customer has ordered again since"
    return None


def retry_delay(attempts: int) -> timedelta:
    """1, 2, 4 … minutes, at most an hour between tries."""
    return min(timedelta(minutes=2 ** max(attempts - 1, 0)), timedelta(hours=1))
