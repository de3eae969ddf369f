"""The operator dashboard under /admin: figures per email kind, shipments with their whole history, the email
log with a retry button, and email previews with sample data.

Only the login form answers without the signed-in session; every other route redirects there, so no customer
data is shown to anybody who has not logged in. The session is Starlette's signed cookie (SameSite=strict, set
up in app.py); forms that change something also carry a per-session CSRF token. Failed logins are throttled per
client address in this process's memory: a restart forgets them, several daemons count separately, and
behind a reverse proxy every client shares the proxy's address (let the proxy limit too).
"""

from __future__ import annotations

import hmac
import inspect
import math
import secrets
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import and_, case, func, or_, select
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from emails.context import sample_context
from emails.kinds import EMAIL_KINDS
from emails.outbox import RETRYABLE_STATES as RETRYABLE
from emails.outbox import requeue_email
from emails.render import BUILTIN_DIR, Renderer, TemplateError, format_money
from tracker.app import App
from tracker.config import WebSettings, custom_kinds
from tracker.models import (
    Coupon,
    Customer,
    Email,
    EmailEvent,
    EmailState,
    Order,
    OrderLine,
    Shipment,
    Suppression,
    TrackingEvent,
)
from tracker.status import LABELS, ShipmentStatus
from tracker.web.pages import page, small_form
from tracker.web.serve import admin_password
from tracker.web.throttle import Throttle

LOGIN = "/admin/login"
PAGE_SIZE = 50
UNSUBSCRIBE_SOURCE = "unsubscribe link"  # what unsubscribe.py writes into Suppression.source
PROBLEMS = {  # ?problem= on the shipment list, and the problem counts on the overview
    "delayed": Shipment.delayed_at.is_not(None),
    "exception": Shipment.status == ShipmentStatus.EXCEPTION,
    "failed_attempt": Shipment.status == ShipmentStatus.FAILED_ATTEMPT,
    "returned": Shipment.status == ShipmentStatus.RETURNED,
    "expired": Shipment.status == ShipmentStatus.EXPIRED,
}


class BadRequest(Exception):
    """A query parameter outside what the page offers: answered 400 with the allowed values."""


def _app(request: Request) -> App:
    return request.app.state.app


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else ""


# --- session, CSRF and the login throttle ---------------------------------------------------------------

def _signed_in(request: Request) -> bool:
    return request.session.get("admin") is True


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not isinstance(token, str) or not token:
        token = request.session["csrf"] = secrets.token_urlsafe(32)
    return token


def _csrf_ok(request: Request, given: object) -> bool:
    expected = request.session.get("csrf")
    return (isinstance(expected, str) and bool(expected) and isinstance(given, str)
            and hmac.compare_digest(expected.encode(), given.encode()))


def _throttle(request: Request) -> Throttle:
    state = request.app.state
    if not hasattr(state, "admin_throttle"):
        state.admin_throttle = Throttle()
    return state.admin_throttle


def _credentials_ok(app: App, username: str, password: str) -> bool:
    """Both compared in constant time, and both always compared: the answer never tells which was wrong."""
    web = app.config.web or WebSettings()
    user_ok = hmac.compare_digest(username.encode(), web.admin_user.encode())
    password_ok = hmac.compare_digest(password.encode(), admin_password(app).encode())
    return user_ok & password_ok


# --- pages ----------------------------------------------------------------------------------------------

def _page(request: Request, template: str, status_code: int = 200, **context: Any) -> Response:
    signed_in = _signed_in(request)
    return page(template, status_code, shop=None, signed_in=signed_in, when=_when,
                csrf=csrf_token(request) if signed_in else "", flash=request.session.pop("flash", None), **context)


def _message(request: Request, status_code: int, title: str, message: str) -> Response:
    return _page(request, "admin_message.html", status_code, heading=title, message=message)


def _form_expired(request: Request) -> Response:
    return _message(request, 403, "Form expired", "This form is no longer valid. Reload the page and try again.")


def _to_login() -> Response:
    return RedirectResponse(LOGIN, status_code=303)


def admin_only(handler: Callable) -> Callable:
    """Every route but the login form: no session, no data, a redirect to the login page. Plain `def`
    handlers (database work) run in a thread; a BadRequest from any handler is answered with a 400 page."""
    @wraps(handler)
    async def guarded(request: Request) -> Response:
        if not _signed_in(request):
            return _to_login()
        try:
            if inspect.iscoroutinefunction(handler):
                return await handler(request)
            return await run_in_threadpool(handler, request)
        except BadRequest as exc:
            return _message(request, 400, "Bad request", str(exc))
    return guarded


def _param(request: Request, name: str, allowed: list[str]) -> str:
    value = request.query_params.get(name, "")
    if value and value not in allowed:
        raise BadRequest(f"{name} must be one of: {', '.join(allowed)}")
    return value


def _page_number(request: Request) -> int:
    raw = request.query_params.get("page", "1") or "1"
    if not raw.isdigit() or int(raw) < 1:
        raise BadRequest("page must be a whole number from 1")
    return int(raw)


def _pages(path: str, filters: dict[str, str], number: int, more: bool) -> dict[str, str | None]:
    def url(n: int) -> str:
        return f"{path}?{urlencode({**{k: v for k, v in filters.items() if v}, 'page': n})}"
    return {"prev_url": url(number - 1) if number > 1 else None, "next_url": url(number + 1) if more else None}


# --- login and logout -----------------------------------------------------------------------------------

async def login(request: Request) -> Response:
    if request.method == "GET":
        return RedirectResponse("/admin", 303) if _signed_in(request) else _page(request, "admin_login.html",
                                                                                 heading="Sign in", error=None)
    form = await small_form(request)  # read before the throttle check: no guess may slip past it mid-read
    if form is None:
        return _page(request, "admin_login.html", 400, heading="Sign in", error="That form could not be read.")
    client = request.client.host if request.client else "unknown"
    throttle, now = _throttle(request), time.monotonic()
    wait = throttle.wait(client, now)
    if wait:
        minutes = math.ceil(wait / 60)
        response = _page(request, "admin_login.html", 429, heading="Sign in", error=(
            f"Too many failed sign-ins from your address. Try again in {minutes} minute{'s' * (minutes > 1)}."))
        response.headers["Retry-After"] = str(math.ceil(wait))
        return response
    username, password = str(form.get("username", "")), str(form.get("password", ""))
    if not _credentials_ok(_app(request), username, password):
        throttle.failed(client, now)
        return _page(request, "admin_login.html", 401, heading="Sign in", error="Wrong user name or password.")
    throttle.forget(client)
    request.session.clear()  # a fresh session (and CSRF token) for the signed-in operator
    request.session["admin"] = True
    csrf_token(request)
    return RedirectResponse("/admin", status_code=303)


async def logout(request: Request) -> Response:
    form = await small_form(request)
    if form is None or not _csrf_ok(request, form.get("csrf")):
        return _form_expired(request)
    request.session.clear()
    return _to_login()


# --- overview -------------------------------------------------------------------------------------------

def _counts(session: Session, query: Any) -> dict[str, int]:
    return {kind: count for kind, count in session.execute(query).all()}


def _engaged(event: str) -> Any:
    """Emails per kind with at least one event of this kind (an email opened five times counts once)."""
    return (select(Email.kind, func.count(func.distinct(EmailEvent.email_id))).select_from(EmailEvent)
            .join(Email, Email.id == EmailEvent.email_id).where(EmailEvent.kind == event).group_by(Email.kind))


def _unsubscribes(session: Session) -> Counter[str]:
    """Unsubscribes per kind of the last marketing email sent to the address: the link names the customer, not
    the email, and only marketing emails carry it. "" counts those with no such email."""
    last_marketing = (select(Email.kind).where(func.lower(Email.to_address) == Suppression.email,
                                               Email.marketing.is_(True), Email.state == EmailState.SENT)
                      .order_by(Email.sent_at.desc(), Email.id.desc()).limit(1).scalar_subquery())
    rows = session.execute(select(last_marketing).where(Suppression.source == UNSUBSCRIBE_SOURCE)).scalars()
    return Counter(kind or "" for kind in rows)


def _revenue(session: Session) -> dict[str, dict[str, Decimal]]:
    redeemed = (select(Email.kind, Coupon.currency, func.sum(Coupon.revenue)).select_from(Coupon)
                .join(Email, Email.id == Coupon.email_id).where(Coupon.redeemed_order_id.is_not(None))
                .group_by(Email.kind, Coupon.currency))
    revenue: dict[str, dict[str, Decimal]] = {}
    for kind, currency, total in session.execute(redeemed).all():
        revenue.setdefault(kind, {})[currency or ""] = Decimal(total or 0)
    return revenue


def _money(amounts: dict[str, Decimal]) -> str:
    return ", ".join(format_money(a, c) if c else str(a) for c, a in sorted(amounts.items())) or "–"


def kind_figures(session: Session) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Per email kind: sent, opened, clicked, unsubscribed, coupons redeemed and their orders' revenue."""
    columns = {
        "sent": _counts(session, select(Email.kind, func.count()).where(Email.state == EmailState.SENT)
                        .group_by(Email.kind)),
        "opened": _counts(session, _engaged("open")),
        "clicked": _counts(session, _engaged("click")),
        "unsubscribed": _unsubscribes(session),
        "redeemed": _counts(session, select(Email.kind, func.count()).select_from(Coupon)
                            .join(Email, Email.id == Coupon.email_id).where(Coupon.redeemed_order_id.is_not(None))
                            .group_by(Email.kind)),
    }
    revenue = _revenue(session)
    seen = {kind for figures in columns.values() for kind in figures if kind} | set(revenue)
    kinds = [*EMAIL_KINDS, *sorted(seen - set(EMAIL_KINDS))]
    rows = [{"kind": kind, **{name: figures.get(kind, 0) for name, figures in columns.items()},
             "revenue": _money(revenue.get(kind, {}))} for kind in kinds]
    everything: dict[str, Decimal] = {}
    for amounts in revenue.values():
        for currency, amount in amounts.items():
            everything[currency] = everything.get(currency, Decimal(0)) + amount
    totals = {name: sum(figures.values()) for name, figures in columns.items()}
    return rows, {**totals, "revenue": _money(everything)}


def shipment_counts(session: Session) -> tuple[list[tuple[str, int]], dict[str, int]]:
    by_status = _counts(session, select(Shipment.status, func.count()).group_by(Shipment.status))
    statuses = [(str(s), by_status[s]) for s in ShipmentStatus if s in by_status]
    row = session.execute(select(*(func.count(case((condition, 1))) for condition in PROBLEMS.values()))).one()
    return statuses, dict(zip(PROBLEMS, row, strict=True))


def overview(request: Request) -> Response:
    with Session(_app(request).engine) as session:
        rows, totals = kind_figures(session)
        statuses, problems = shipment_counts(session)
    return _page(request, "admin_overview.html", heading="Overview", rows=rows, totals=totals,
                 statuses=statuses, problems=problems, labels=LABELS)


# --- shipments ------------------------------------------------------------------------------------------

def shipments(request: Request) -> Response:
    status = _param(request, "status", [str(s) for s in ShipmentStatus])
    problem = _param(request, "problem", list(PROBLEMS))
    number = _page_number(request)
    query = (select(Shipment.id, Order.number, Order.shop, Shipment.courier, Shipment.tracking_number,
                    Shipment.status, Shipment.shipped_at, Shipment.last_event_at, Shipment.delayed_at,
                    Shipment.last_error)
             .join(Order, Order.id == Shipment.order_id).order_by(Shipment.id.desc()))
    if status:
        query = query.where(Shipment.status == status)
    if problem:
        query = query.where(PROBLEMS[problem])
    with Session(_app(request).engine) as session:
        rows = session.execute(query.offset((number - 1) * PAGE_SIZE).limit(PAGE_SIZE + 1)).mappings().all()
    filters = {"status": status, "problem": problem}
    return _page(request, "admin_shipments.html", heading="Shipments", rows=rows[:PAGE_SIZE], filters=filters,
                 statuses=[str(s) for s in ShipmentStatus], problems=list(PROBLEMS), labels=LABELS, page=number,
                 **_pages("/admin/shipments", filters, number, len(rows) > PAGE_SIZE))


def shipment_detail(request: Request) -> Response:
    shipment_id = request.path_params["id"]
    with Session(_app(request).engine) as session:
        shipment = session.get(Shipment, shipment_id)
        if shipment is None:
            return _message(request, 404, "Not found", f"There is no shipment {shipment_id}.")
        order = session.get_one(Order, shipment.order_id)
        events = session.execute(select(TrackingEvent).where(TrackingEvent.shipment_id == shipment_id)
                                 .order_by(TrackingEvent.at.desc(), TrackingEvent.id.desc())).scalars().all()
        emails = session.execute(select(Email).where(or_(
            Email.shipment_id == shipment_id, and_(Email.order_id == order.id, Email.shipment_id.is_(None))))
            .order_by(Email.id)).scalars().all()
        return _page(request, "admin_shipment.html", heading=f"Shipment {shipment.tracking_number}",
                     shipment=shipment, order=order, customer=session.get_one(Customer, order.customer_id),
                     lines=session.execute(select(OrderLine).where(OrderLine.order_id == order.id)
                                           .order_by(OrderLine.id)).scalars().all(),
                     events=events, emails=emails, labels=LABELS, retryable=[str(s) for s in RETRYABLE])


# --- the email log and retry ----------------------------------------------------------------------------

def emails(request: Request) -> Response:
    with Session(_app(request).engine) as session:
        kinds = sorted(set(EMAIL_KINDS) | set(session.execute(select(Email.kind).distinct()).scalars()))
        state = _param(request, "state", [str(s) for s in EmailState])
        kind = _param(request, "kind", kinds)
        number = _page_number(request)
        query = (select(Email.id, Email.kind, Email.state, Email.shop, Email.to_address, Order.number.label("order"),
                        Email.shipment_id, Email.created_at, Email.due_at, Email.sent_at, Email.attempts,
                        Email.last_error)
                 .join(Order, Order.id == Email.order_id).order_by(Email.id.desc()))
        if state:
            query = query.where(Email.state == state)
        if kind:
            query = query.where(Email.kind == kind)
        rows = session.execute(query.offset((number - 1) * PAGE_SIZE).limit(PAGE_SIZE + 1)).mappings().all()
    filters = {"state": state, "kind": kind}
    return _page(request, "admin_emails.html", heading="Emails", rows=rows[:PAGE_SIZE], filters=filters,
                 states=[str(s) for s in EmailState], kinds=kinds, retryable=[str(s) for s in RETRYABLE],
                 page=number, **_pages("/admin/emails", filters, number, len(rows) > PAGE_SIZE))


async def retry(request: Request) -> Response:
    form = await small_form(request)
    if form is None or not _csrf_ok(request, form.get("csrf")):
        return _form_expired(request)
    app, email_id = _app(request), request.path_params["id"]
    try:
        await run_in_threadpool(requeue_email, app.engine, email_id, app.now())
    except LookupError as exc:
        return _message(request, 404, "Not found", str(exc))
    except ValueError as exc:
        return _message(request, 409, "Not re-queued", str(exc))
    request.session["flash"] = f"Email {email_id} re-queued"
    return RedirectResponse("/admin/emails?state=dead", status_code=303)


# --- previews -------------------------------------------------------------------------------------------

def preview_locales(app: App) -> list[str]:
    """en, de, fr and every locale that has a template (`kind.<locale>.mjml`) in any templates folder."""
    folders = [BUILTIN_DIR, *(s.templates_dir for s in app.config.shops.values() if s.templates_dir)]
    found = {p.name.split(".")[1] for folder in folders for p in folder.glob("*.*.mjml") if p.name.count(".") == 2}
    return ["en", *sorted((found | {"de", "fr"}) - {"en"})]


def _renderer(app: App, shop: str) -> Renderer:
    """The outbox's own renderer, so the preview is what customers get; shops it lacks get a cached one."""
    if shop in app.outbox.renderers:
        return app.outbox.renderers[shop]
    renderers = app.cache.setdefault("preview_renderers", {})
    if shop not in renderers:
        renderers[shop] = Renderer(app.config.shops[shop].templates_dir)
    return renderers[shop]


def preview(request: Request) -> Response:
    app = _app(request)
    kinds = [*EMAIL_KINDS, *sorted(custom_kinds(app.config.shops) - set(EMAIL_KINDS))]
    locales, shops = preview_locales(app), list(app.config.shops)
    kind = _param(request, "kind", kinds) or kinds[0]
    locale = _param(request, "locale", locales) or "en"
    shop = _param(request, "shop", shops) or shops[0]
    choices = {"kinds": kinds, "locales": locales, "shops": shops, "kind": kind, "locale": locale, "shop_key": shop}
    renderer = _renderer(app, shop)
    try:
        rendered = renderer.render(kind, sample_context(kind, app.config.shops[shop]), locale=locale)
        used = renderer.locale_used(kind, locale)
    except TemplateError as exc:
        return _page(request, "admin_preview.html", 500, heading="Preview", rendered=None, used=None,
                     error=str(exc), **choices)
    return _page(request, "admin_preview.html", heading="Preview", rendered=rendered, used=used, error=None,
                 **choices)


def routes() -> list[Route]:
    signed_in_routes = [
        ("/admin", overview, ["GET"]),
        ("/admin/shipments", shipments, ["GET"]),
        ("/admin/shipments/{id:int}", shipment_detail, ["GET"]),
        ("/admin/emails", emails, ["GET"]),
        ("/admin/emails/{id:int}/retry", retry, ["POST"]),
        ("/admin/preview", preview, ["GET"]),
        ("/admin/logout", logout, ["POST"]),
    ]
    return [Route(LOGIN, login, methods=["GET", "POST"]),
            *(Route(path, admin_only(handler), methods=methods) for path, handler, methods in signed_in_routes)]
