"""The branded tracking page a customer opens from an email, and the order lookup for those without one."""

from __future__ import annotations

import time

from sqlalchemy import func, select
from sqlmodel import Session
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from emails.context import shipment_context
from emails.links import TRACK
from emails.policy import customer_zone
from emails.tokens import make_token, read_id
from tracker.models import Customer, Order, OrderLine, Shipment, TrackingEvent
from tracker.web.pages import page, refusal, safe_url, small_form, words
from tracker.web.throttle import Throttle

# Guessing postcodes for a known order number must not be a game: 10 misses per address, and per order
# number, in 15 minutes, then a pause. In memory, per process (documented in the README's web section).
LOOKUP_THROTTLE = Throttle(limit=10, window=900.0)


def _app(request: Request):
    return request.app.state.app


def tracking_page(request: Request) -> Response:
    app = _app(request)
    shipment_id = read_id(app.outbox.secret, TRACK, request.path_params["token"])
    if shipment_id is None:
        return refusal(request, "Link not valid", "This tracking link is not valid. Please use the link from "
                                                  "your email, or look your order up by its number.", 404)
    with Session(app.engine) as session:
        shipment = session.get(Shipment, shipment_id)
        if shipment is None:
            return refusal(request, "Not found", "We could not find this parcel.", 404)
        order = session.get_one(Order, shipment.order_id)
        customer = session.get_one(Customer, order.customer_id)
        events = session.execute(select(TrackingEvent).where(TrackingEvent.shipment_id == shipment.id,
                                                             TrackingEvent.applied.is_(True))).scalars().all()
        lines = session.execute(select(OrderLine).where(OrderLine.order_id == order.id)
                                .order_by(OrderLine.id)).scalars().all()
        details = shipment_context(shipment, shipment.courier_name, events)
    shop = app.config.shops[order.shop]
    zone = customer_zone(order.country, shop.timezone).key
    return page("tracking.html", shop=shop, order=order, lines=lines, shipment=details,
                courier_url=safe_url(shipment.tracking_url), words=words(customer.locale), lang=customer.locale or "en",
                locale=(customer.locale or "en").replace("-", "_"), zone=zone)


def _matches(order: Order, customer: Customer, proof: str) -> bool:
    """The order's email address or its delivery postcode, as a person would type them."""
    proof = proof.strip().lower()
    postcode = order.postcode.replace(" ", "").lower()
    return bool(proof) and (proof == customer.email.lower() or (bool(postcode) and proof.replace(" ", "") == postcode))


async def lookup(request: Request) -> Response:
    app = _app(request)
    shop = next(iter(app.config.shops.values()))
    if request.method == "GET":
        return page("lookup.html", shop=shop, words=words("en"), lang="en", error=None, number="")
    form = await small_form(request)
    if form is None:
        return refusal(request, "Bad request", "That form could not be read.", 400)
    client = request.client.host if request.client else "unknown"
    number, proof = str(form.get("number", "")).strip(), str(form.get("proof", ""))
    throttle = LOOKUP_THROTTLE
    if throttle.wait(client, time.monotonic()) or throttle.wait(f"order:{number.lower()}", time.monotonic()):
        return page("lookup.html", 429, shop=shop, words=words("en"), lang="en", error="not_found", number=number)
    with Session(app.engine) as session:
        candidates = session.execute(
            select(Order, Customer).join(Customer, Customer.id == Order.customer_id)
            .where(func.lower(Order.number).in_([number.lower(), f"#{number.lstrip('#')}".lower()]))
        ).all()
        found = [(o, c) for o, c in candidates if _matches(o, c, proof)]
        shipments = session.execute(select(Shipment.id).where(
            Shipment.order_id.in_([o.id for o, _c in found])).order_by(Shipment.id)).scalars().all() if found else []
    if not found:  # one answer for every mismatch: it must not tell which half was wrong
        throttle.failed(client, time.monotonic())
        throttle.failed(f"order:{number.lower()}", time.monotonic())
        return page("lookup.html", 404, shop=shop, words=words("en"), lang="en", error="not_found", number=number)
    if not shipments:
        return page("message.html", shop=shop, title=found[0][0].number,
                    message="Your order has not shipped yet. We will email you as soon as it does.")
    token = make_token(app.outbox.secret, TRACK, str(shipments[0]))
    return RedirectResponse(f"/t/{token}", status_code=303)


def routes() -> list[Route]:
    return [Route("/t/{token}", tracking_page), Route("/lookup", lookup, methods=["GET", "POST"])]
