"""Whether a queued email should still go, asked again at send time: things change while it waits.

Transactional emails (order, shipping, tracking, delivered) go unless the order was cancelled or the address
is dead. Marketing emails (feedback request, coupon) also need consent, no unsubscribe, room under the
customer's frequency cap and the customer's local daytime; a cap or the night defers them, not skips them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from functools import lru_cache
from pathlib import Path
from zoneinfo import TZPATH, ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import func, select
from sqlmodel import Session

from emails.conditions import first_failing
from emails.kinds import EMAIL_KINDS
from tracker.config import Config
from tracker.models import Customer, Email, EmailState, Order, OrderState, Shipment, Suppression, SuppressionScope
from tracker.status import ShipmentStatus

# Relay addresses marketplaces hand out instead of the buyer's own: fine for order news, and the marketplace's
# terms usually forbid marketing to them.
PROXY_DOMAINS = ("marketplace.amazon.com", "marketplace.amazon.de", "marketplace.amazon.co.uk",
                 "marketplace.amazon.fr", "members.ebay.com", "members.ebay.de", "etsy.com")


@dataclass(frozen=True)
class Decision:
    action: str  # "send", "skip" or "defer"
    reason: str = ""
    until: datetime | None = None


SEND = Decision("send")


def skip(reason: str) -> Decision:
    return Decision("skip", reason)


@lru_cache(maxsize=1)
def _country_zones() -> dict[str, str]:
    """Country code → its main time zone, from the system's zone.tab (first listed zone per country)."""
    zones: dict[str, str] = {}
    for folder in TZPATH:
        table = Path(folder) / "zone.tab"
        if table.is_file():
            for line in table.read_text(encoding="utf-8").splitlines():
                parts = line.split("\t")
                if len(parts) >= 3 and not line.startswith("#"):
                    zones.setdefault(parts[0], parts[2])
            break
    return zones


def customer_zone(country: str, fallback: str) -> ZoneInfo:
    try:
        return ZoneInfo(_country_zones().get(country.upper(), fallback) if country else fallback)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def window_opens(now: datetime, zone: ZoneInfo, start: time, end: time) -> datetime | None:
    """None if `now` lies inside the customer's daily window, else when the window next opens (UTC)."""
    local = now.astimezone(zone)
    if start <= local.time() < end:
        return None
    day = local.date() if local.time() < start else local.date() + timedelta(days=1)
    return datetime.combine(day, start, zone).astimezone(now.tzinfo)


def suppressed(session: Session, address: str) -> Suppression | None:
    return session.execute(select(Suppression).where(Suppression.email == address.lower())).scalar_one_or_none()


def _reordered_since(session: Session, customer: Customer, order: Order, since: datetime) -> bool:
    query = select(func.count()).where(Order.customer_id == customer.id, Order.id != order.id,
                                       Order.created_at > since, Order.state == OrderState.OPEN)
    return session.execute(query).scalar_one() > 0


def _cap_frees_at(session: Session, config: Config, customer: Customer, now: datetime) -> datetime | None:
    """When the customer's marketing frequency cap has room again; None if it has room now."""
    window = config.emails.marketing_cap_window
    sent = session.execute(
        select(Email.sent_at).where(Email.customer_id == customer.id, Email.marketing.is_(True),
                                    Email.state == EmailState.SENT, Email.sent_at > now - window)
        .order_by(Email.sent_at)
    ).scalars().all()
    if len(sent) < config.emails.marketing_cap:
        return None
    return sent[len(sent) - config.emails.marketing_cap] + window


def _marketing(session: Session, config: Config, email: Email, order: Order, customer: Customer,
               shipment: Shipment | None, now: datetime) -> Decision:
    consent = customer.marketing_consent
    if consent is None:
        consent = config.emails.consent_when_unknown
    if not consent:
        return skip("the customer has not agreed to marketing emails")
    block = suppressed(session, customer.email)
    if block is not None:
        return skip(f"unsubscribed from marketing ({block.source or block.reason})")
    account = config.marketplaces.get(order.marketplace)
    proxy = customer.email.lower().rpartition("@")[2] in PROXY_DOMAINS
    if proxy and account is not None and not account.marketing_to_proxy:
        return skip("a marketplace relay address; marketing to it is switched off for this feed")
    if (shipment is not None and shipment.status is ShipmentStatus.RETURNED) or order.refunded:
        return skip("the order was returned or refunded")
    if now - email.due_at > config.notification_horizon:
        return skip(f"overdue by more than {config.notification_horizon}: too late to be relevant")
    if email.kind in ("resell_coupon", "coupon_reminder"):
        since = shipment.delivered_at if shipment and shipment.delivered_at else order.created_at
        if _reordered_since(session, customer, order, since):
            return skip("the customer has ordered again since")
    frees = _cap_frees_at(session, config, customer, now)
    if frees is not None:
        return Decision("defer", f"frequency cap: {config.emails.marketing_cap} marketing emails per "
                                 f"{config.emails.marketing_cap_window}", frees)
    zone = customer_zone(order.country, config.shops[email.shop].timezone)
    opens = window_opens(now, zone, *config.emails.marketing_hours)
    if opens is not None:
        return Decision("defer", f"outside the customer's sending hours ({zone.key})", opens)
    return SEND


def decide(session: Session, config: Config, email: Email, order: Order, customer: Customer,
           shipment: Shipment | None, now: datetime) -> Decision:
    if email.kind in EMAIL_KINDS and email.kind not in config.emails.enabled:
        return skip(f"{email.kind} emails are switched off in config")
    if order.state is OrderState.CANCELLED:
        return skip("the order was cancelled")
    if order.problem:  # refused at intake after this email was planned (a later sync read a bad address)
        return skip(f"not sent: {order.problem}")
    if email.shipment_id is not None and shipment is not None and not shipment.notify:
        return skip("the shop no longer lists this parcel")
    if email.kind == "delayed" and shipment is not None and shipment.delayed_at is None:
        return skip("the parcel is moving again")
    block = suppressed(session, customer.email)
    if block is not None and block.scope is SuppressionScope.ALL:
        return skip(f"the address is suppressed: {block.reason or block.source}")
    if email.flow:
        flow = next((f for f in config.flows if f.name == email.flow), None)
        if flow is None or email.step >= len(flow.steps):
            return skip(f"flow {email.flow!r} step {email.step + 1} is no longer in the config")
        reason = first_failing(session, flow.steps[email.step].conditions, email, order, customer, now)
        if reason is not None:
            return skip(reason)
    if email.marketing:
        return _marketing(session, config, email, order, customer, shipment, now)
    return SEND


def retry_delay(attempts: int) -> timedelta:
    """1, 2, 4 … minutes, at most an hour between tries."""
    return min(timedelta(minutes=2 ** max(attempts - 1, 0)), timedelta(hours=1))
