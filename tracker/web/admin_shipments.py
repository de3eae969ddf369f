"""The dashboard's shipments: the list, filtered by status or by problem and paged, and one shipment with its
order, customer, lines, whole tracking history and emails."""

from __future__ import annotations

from sqlalchemy import and_, or_, select
from sqlmodel import Session
from starlette.requests import Request
from starlette.responses import Response

from emails.outbox import RETRYABLE_STATES as RETRYABLE
from tracker.models import Customer, Email, Order, OrderLine, Shipment, TrackingEvent
from tracker.status import LABELS, ShipmentStatus
from tracker.web.admin_pages import PAGE_SIZE, admin_page, app_of, message_page, page_links, page_number, param

PROBLEMS = {  # ?problem= on the shipment list, and the problem counts on the overview
    "delayed": Shipment.delayed_at.is_not(None),
    "exception": Shipment.status == ShipmentStatus.EXCEPTION,
    "failed_attempt": Shipment.status == ShipmentStatus.FAILED_ATTEMPT,
    "returned": Shipment.status == ShipmentStatus.RETURNED,
    "expired": Shipment.status == ShipmentStatus.EXPIRED,
}


def shipments(request: Request) -> Response:
    status = param(request, "status", [str(s) for s in ShipmentStatus])
    problem = param(request, "problem", list(PROBLEMS))
    number = page_number(request)
    query = (select(Shipment.id, Order.number, Order.shop, Shipment.courier, Shipment.tracking_number,
                    Shipment.status, Shipment.shipped_at, Shipment.last_event_at, Shipment.delayed_at,
                    Shipment.last_error)
             .join(Order, Order.id == Shipment.order_id).order_by(Shipment.id.desc()))
    if status:
        query = query.where(Shipment.status == status)
    if problem:
        query = query.where(PROBLEMS[problem])
    with Session(app_of(request).engine) as session:
        rows = session.execute(query.offset((number - 1) * PAGE_SIZE).limit(PAGE_SIZE + 1)).mappings().all()
    filters = {"status": status, "problem": problem}
    return admin_page(request, "admin_shipments.html", heading="Shipments", rows=rows[:PAGE_SIZE], filters=filters,
                      statuses=[str(s) for s in ShipmentStatus], problems=list(PROBLEMS), labels=LABELS,
                      page=number, **page_links("/admin/shipments", filters, number, len(rows) > PAGE_SIZE))


def shipment_detail(request: Request) -> Response:
    shipment_id = request.path_params["id"]
    with Session(app_of(request).engine) as session:
        shipment = session.get(Shipment, shipment_id)
        if shipment is None:
            return message_page(request, 404, "Not found", f"There is no shipment {shipment_id}.")
        order = session.get_one(Order, shipment.order_id)
        events = session.execute(select(TrackingEvent).where(TrackingEvent.shipment_id == shipment_id)
                                 .order_by(TrackingEvent.at.desc(), TrackingEvent.id.desc())).scalars().all()
        emails = session.execute(select(Email).where(or_(
            Email.shipment_id == shipment_id, and_(Email.order_id == order.id, Email.shipment_id.is_(None))))
            .order_by(Email.id)).scalars().all()
        return admin_page(request, "admin_shipment.html", heading=f"Shipment {shipment.tracking_number}",
                          shipment=shipment, order=order, customer=session.get_one(Customer, order.customer_id),
                          lines=session.execute(select(OrderLine).where(OrderLine.order_id == order.id)
                                                .order_by(OrderLine.id)).scalars().all(),
                          events=events, emails=emails, labels=LABELS, retryable=[str(s) for s in RETRYABLE])
