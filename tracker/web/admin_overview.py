"""The dashboard's overview: figures per email kind (sent, opened, clicked, unsubscribed, coupons redeemed and
their revenue) and shipments by status and by problem."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Any

from sqlalchemy import case, func, select
from sqlmodel import Session
from starlette.requests import Request
from starlette.responses import Response

from emails.kinds import EMAIL_KINDS
from emails.render import format_money
from tracker.models import Coupon, Email, EmailEvent, EmailState, Shipment, Suppression
from tracker.status import LABELS, ShipmentStatus
from tracker.web.admin_pages import admin_page, app_of
from tracker.web.admin_shipments import PROBLEMS

UNSUBSCRIBE_SOURCE = "unsubscribe link"  # what unsubscribe.py writes into Suppression.source


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
    with Session(app_of(request).engine) as session:
        rows, totals = kind_figures(session)
        statuses, problems = shipment_counts(session)
    return admin_page(request, "admin_overview.html", heading="Overview", rows=rows, totals=totals,
                      statuses=statuses, problems=problems, labels=LABELS)
