"""The plan_followups job: once an order's parcels have all arrived, plan its feedback request and coupon.

They are planned for a later time and checked again when they fall due (emails/policy.py): a customer who
returns the parcel or orders again in between gets nothing.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import aliased
from sqlmodel import Session

from emails.outbox import enqueue
from tracker.app import App
from tracker.models import Order, OrderState, Shipment
from tracker.status import FINAL, ShipmentStatus

BATCH = 500


def plan_followups(app: App, now: datetime) -> int:
    """Returns how many emails were planned."""
    planned = 0
    emails = app.config.emails
    steps = [("feedback_request", emails.feedback_after), ("resell_coupon", emails.coupon_after)]
    other = aliased(Shipment)
    parcel_underway = (
        select(other.id).where(other.order_id == Shipment.order_id, other.status.not_in(list(FINAL))).exists()
    )
    with Session(app.engine) as session:
        order_ids = session.execute(
            select(Shipment.order_id).distinct()
            .where(Shipment.status == ShipmentStatus.DELIVERED, Shipment.followups_planned.is_(False),
                   ~parcel_underway)  # wait for an order's last parcel
            .order_by(Shipment.order_id)
            .limit(BATCH)
        ).scalars().all()
        for order_id in order_ids:
            shipments = session.execute(select(Shipment).where(Shipment.order_id == order_id)).scalars().all()
            order = session.get_one(Order, order_id)
            delivered = [s.delivered_at for s in shipments if s.status is ShipmentStatus.DELIVERED and s.delivered_at]
            returned = any(s.status is ShipmentStatus.RETURNED for s in shipments)
            live = order.notify or any(s.notify for s in shipments)  # not only history from before connecting
            if delivered and live and not returned and order.state is OrderState.OPEN:
                last = max(delivered)
                for kind, delay in steps:
                    due = last + delay
                    if now - due <= app.config.notification_horizon:  # not already stale
                        planned += enqueue(session, app.config, kind, order, now=now, due_at=due, notify=live)
            session.execute(update(Shipment).where(Shipment.order_id == order_id).values(followups_planned=True))
        session.commit()
    return planned
