"""Unsubscribe: the RFC 8058 one-click POST that mail clients send, and a page for people.

Unsubscribing stops marketing (feedback requests, coupons) and never the emails about an order on its way.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlmodel import Session
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from emails.outbox import suppress
from emails.unsubscribe import verify_token
from tracker.models import Customer, Order, SuppressionScope
from tracker.web.pages import page, refusal


def _customer(request: Request) -> tuple[Customer | None, object]:
    app = request.app.state.app
    customer_id = verify_token(app.outbox.secret, request.path_params["token"])
    if customer_id is None:
        return None, app
    with Session(app.engine) as session:
        customer = session.get(Customer, customer_id)
        if customer is not None:
            session.expunge(customer)
    return customer, app


def _shop(app, customer: Customer):
    """The brand the customer knows: the shop of their latest order."""
    with Session(app.engine) as session:
        shop = session.execute(select(Order.shop).where(Order.customer_id == customer.id)
                               .order_by(Order.id.desc()).limit(1)).scalar_one_or_none()
    return app.config.shops.get(shop) or next(iter(app.config.shops.values()))


async def unsubscribe(request: Request) -> Response:
    customer, app = _customer(request)
    if customer is None:
        return refusal(request, "Link not valid", "This unsubscribe link is not valid or has been altered. "
                                                  "Use the link in the email you received.", 400)
    shop = _shop(app, customer)
    if request.method == "POST":
        suppress(app.engine, customer.email, SuppressionScope.MARKETING, "unsubscribed", "unsubscribe link",
                 datetime.now(UTC))
        return page("unsubscribed.html", shop=shop, email=customer.email)
    return page("unsubscribe.html", shop=shop, email=customer.email, token=request.path_params["token"])


def routes() -> list[Route]:
    return [Route("/unsubscribe/{token}", unsubscribe, methods=["GET", "POST"])]
