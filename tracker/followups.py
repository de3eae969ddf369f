"""The plan_followups job: start each flow when its trigger happens, and plan each next step once the one
before it was sent.

Planned emails wait in the outbox with a due time; their conditions are checked when they fall due
(emails/policy.py), so planning early never sends something that stopped making sense.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import aliased
from sqlmodel import Session

from emails.outbox import enqueue
from emails.policy import customer_zone
from tracker.app import App
from tracker.calendar import after, at_local_time
from tracker.flows import Flow, Step
from tracker.models import Email, EmailState, Order, OrderState, Shipment
from tracker.status import FINAL, ShipmentStatus

BATCH = 500


def due_time(app: App, order: Order, step: Step, start: datetime) -> datetime:
    """`start` + the step's delay in the shop's calendar, moved to the customer's chosen local time."""
    shop = app.config.shops[order.shop]
    zone = customer_zone(order.country, shop.timezone)
    due = after(start, step.delay, shop.calendar, zone)
    if step.send_at is None:
        return due
    if step.delay.business_days:  # the morning of the Nth business day, not the one after it
        local_day = due.astimezone(zone).date()
        on_the_day = datetime.combine(local_day, step.send_at, zone).astimezone(start.tzinfo)
        if on_the_day >= start:
            return on_the_day
    return at_local_time(due, step.send_at, zone, shop.calendar if step.delay.business_days else None)


def start_flow(app: App, session: Session, flow: Flow, order: Order, start: datetime, now: datetime,
               notify: bool | None = None) -> int:
    step = flow.steps[0]
    due = due_time(app, order, step, start)
    if now - due > app.config.notification_horizon:
        return 0  # the moment has passed (e.g. history imported late): better nothing than a stale email
    return int(enqueue(session, app.config, step.kind, order, now=now, due_at=due, notify=notify, flow=flow.name,
                       step=0, marketing=flow.marketing))


def flows_for(app: App, trigger: str) -> list[Flow]:
    return [flow for flow in app.config.flows if flow.trigger == trigger]


def _plan_delivered(app: App, session: Session, now: datetime) -> int:
    other = aliased(Shipment)
    parcel_underway = (
        select(other.id).where(other.order_id == Shipment.order_id, other.status.not_in(list(FINAL)),
                               other.notify.is_(True), other.next_poll_at.is_not(None)).exists()
    )
    order_ids = session.execute(
        select(Shipment.order_id).distinct()
        .where(Shipment.status == ShipmentStatus.DELIVERED, Shipment.followups_planned.is_(False),
               ~parcel_underway)  # wait for an order's last parcel
        .order_by(Shipment.order_id)
        .limit(BATCH)
    ).scalars().all()
    planned = 0
    for order_id in order_ids:
        shipments = session.execute(select(Shipment).where(Shipment.order_id == order_id)).scalars().all()
        order = session.get_one(Order, order_id)
        delivered = [s.delivered_at for s in shipments if s.status is ShipmentStatus.DELIVERED and s.delivered_at]
        live = order.notify or any(s.notify for s in shipments)  # not only history from before connecting
        if delivered and live and order.state is OrderState.OPEN and order.shop in app.config.shops:
            for flow in flows_for(app, "delivered"):
                planned += start_flow(app, session, flow, order, max(delivered), now, notify=live)
        session.execute(update(Shipment).where(Shipment.order_id == order_id).values(followups_planned=True))
    return planned


def _plan_next_steps(app: App, session: Session, now: datetime) -> int:
    """Each sent flow email plans the step after it; a skipped or failed one ends its chain."""
    flows = {flow.name: flow for flow in app.config.flows}
    done = session.execute(
        select(Email).where(Email.flow != "", Email.followed_up.is_(False),
                            Email.state.in_([EmailState.SENT, EmailState.SKIPPED, EmailState.DEAD,
                                             EmailState.CANCELLED]))
        .order_by(Email.id).limit(BATCH)
    ).scalars().all()
    planned = 0
    for email in done:
        flow = flows.get(email.flow)
        nxt = email.step + 1
        order = session.get_one(Order, email.order_id)
        if (email.state is EmailState.SENT and flow is not None and nxt < len(flow.steps)
                and order.shop in app.config.shops):
            due = due_time(app, order, flow.steps[nxt], email.sent_at)
            planned += enqueue(session, app.config, flow.steps[nxt].kind, order, now=now, due_at=due, notify=True,
                               flow=flow.name, step=nxt, marketing=flow.marketing)
        email.followed_up = True
        session.add(email)
    return planned


def plan_followups(app: App, now: datetime) -> int:
    """Returns how many emails were planned."""
    with Session(app.engine) as session:
        planned = _plan_delivered(app, session, now) + _plan_next_steps(app, session, now)
        session.commit()
    return planned
