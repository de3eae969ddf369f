"""The transactional outbox: emails are planned in the same transaction as the change that causes them,
then claimed, rendered and sent by `send_due`.

Exactly-once, as far as email allows: the idempotency key (kind + order or shipment) is unique, so planning
twice plans once. A crash after the transport accepted a message but before the row was marked sent makes
that one message go again on restart, with the same Message-ID (the outbox folder rewrites the same file;
an SMTP or API provider sees a duplicate Message-ID). The window is one message per worker: each message is
marked sent in its own transaction right after its transport returns.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import parseaddr
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlmodel import Session

from emails.compose import build_context, load_rows
from emails.coupons import CouponError, CouponRequest, CouponSource, LocalCoupons, TransientCouponError
from emails.engagement import instrument
from emails.kinds import EMAIL_KINDS, MARKETING_KINDS
from emails.links import base_url
from emails.policy import Decision, decide, retry_delay
from emails.render import Renderer, TemplateError
from emails.send import Message, PermanentSendError, Sender, TransientSendError
from tracker.clock import as_measured_by, system_clock
from tracker.config import Config
from tracker.db import claim, insert_ignore, insert_ignore_many
from tracker.models import (
    Coupon,
    Customer,
    Email,
    EmailState,
    Order,
    OrderState,
    Shipment,
    Suppression,
    SuppressionScope,
)

log = logging.getLogger("trackmail.outbox")
LEASE = timedelta(minutes=5)
MINTS_COUPON = frozenset({"resell_coupon"})
RETRYABLE_STATES = (EmailState.DEAD, EmailState.HELD, EmailState.SKIPPED)
BATCH = 200


def idempotency_key(kind: str, order: Order, shipment: Shipment | None, flow: str = "", step: int = 0) -> str:
    key = f"{kind}:shipment:{shipment.id}" if shipment is not None else f"{kind}:order:{order.id}"
    return f"{key}:flow:{flow}.{step}" if flow else key


def message_id(key: str, order: Order, sender: str) -> str:
    domain = parseaddr(sender)[1].rpartition("@")[2] or "trackmail.invalid"
    digest = hashlib.sha256(f"{order.marketplace}/{order.external_id}/{key}".encode()).hexdigest()[:32]
    return f"<{digest}@{domain}>"


def email_row(
    session: Session,
    config: Config,
    kind: str,
    order: Order,
    *,
    now: datetime,
    shipment: Shipment | None = None,
    due_at: datetime | None = None,
    notify: bool | None = None,
    flow: str = "",
    step: int = 0,
    marketing: bool | None = None,
) -> dict[str, Any] | None:
    """The row that plans one email, or None when this email is not to be sent at all. History imported when
    a shop was connected emails nobody: `notify` defaults to the shipment's (or the order's) flag."""
    if notify is None:
        notify = shipment.notify if shipment is not None else order.notify
    switched_off = kind in EMAIL_KINDS and kind not in config.emails.enabled
    if switched_off or not notify or order.state is OrderState.CANCELLED or order.problem:
        return None
    if order.shop not in config.shops:
        log.error("order %s belongs to shop %r, which is no longer in the config: no %s email",
                  order.number, order.shop, kind)
        return None
    customer = session.get_one(Customer, order.customer_id)
    key = idempotency_key(kind, order, shipment, flow, step)
    return {
        "idempotency_key": key,
        "message_id": message_id(key, order, config.shops[order.shop].sender),
        "kind": kind,
        "shop": order.shop,
        "order_id": order.id,
        "shipment_id": shipment.id if shipment is not None else None,
        "customer_id": customer.id,
        "to_address": customer.email,
        "state": EmailState.QUEUED,
        "created_at": now,
        "due_at": due_at or now,
        "marketing": kind in MARKETING_KINDS if marketing is None else marketing,
        "flow": flow,
        "step": step,
    }


def enqueue(session: Session, config: Config, kind: str, order: Order, *, now: datetime,
            shipment: Shipment | None = None, due_at: datetime | None = None, notify: bool | None = None,
            flow: str = "", step: int = 0, marketing: bool | None = None) -> bool:
    """Plan one email in the caller's transaction. True if it is new; planning it again does nothing."""
    row = email_row(session, config, kind, order, now=now, shipment=shipment, due_at=due_at, notify=notify,
                    flow=flow, step=step, marketing=marketing)
    return row is not None and insert_ignore(session, Email, **row)


def enqueue_rows(session: Session, rows: list[dict[str, Any]]) -> int:
    """Plan many emails (rows from `email_row`) in one statement; how many were new."""
    return insert_ignore_many(session, Email, rows, "idempotency_key") if rows else 0


def cancel_for_order(session: Session, order: Order, now: datetime) -> None:
    """A cancelled order takes its still-waiting emails with it."""
    session.execute(
        update(Email)
        .where(Email.order_id == order.id, Email.state.in_([EmailState.QUEUED, EmailState.HELD]))
        .values(state=EmailState.CANCELLED, last_error="the order was cancelled", claimed_until=None)
    )


@dataclass
class SendReport:
    sent: int = 0
    skipped: int = 0
    deferred: int = 0
    retried: int = 0
    dead: int = 0
    held: int = 0
    errors: list[str] = field(default_factory=list)


class Outbox:
    def __init__(self, config: Config, sender: Sender, secret: bytes,
                 shop_senders: dict[str, Sender] | None = None, coupons: CouponSource | None = None) -> None:
        self.config = config
        self.sender = sender  # the [emails] transport
        self.shop_senders = shop_senders or {}  # shops that chose their own
        self.secret = secret
        self.coupons = coupons or LocalCoupons(secret)
        self.clock = system_clock  # for leases: real time, whatever the jobs' `now` says (App sets its clock)
        self.renderers = {key: Renderer(shop.templates_dir) for key, shop in config.shops.items()}

    def lease(self) -> timedelta:
        """`[schedule] lease` or LEASE, real time, in the units of this outbox's clock."""
        return as_measured_by(self.clock, self.config.schedule.lease or LEASE)

    def _decide(self, engine: Engine, email_id: int, now: datetime) -> Decision:
        with Session(engine) as session:
            email = session.get_one(Email, email_id)
            rows = load_rows(session, email)
            return decide(session, self.config, email, rows.order, rows.customer, rows.shipment, now)

    async def _ensure_coupon(self, engine: Engine, email_id: int, now: datetime) -> None:
        """Mint the email's coupon before rendering: the shop's API is called with no transaction open, and
        the code is stored at once, so a later failure never loses it or mints a second one."""
        with Session(engine) as session:
            email = session.get_one(Email, email_id)
            if email.kind not in MINTS_COUPON or session.execute(
                    select(Coupon.id).where(Coupon.email_id == email_id)).first():
                return
            rows = load_rows(session, email)
            request = CouponRequest(key=email.idempotency_key, customer_email=rows.customer.email,
                                    customer_external_id=rows.customer.external_id,
                                    discount=self.config.emails.coupon_discount,
                                    valid_for=self.config.emails.coupon_valid_for, now=now,
                                    currency=rows.order.currency, email_id=email_id, customer_id=rows.customer.id)
        issued = await self.coupons.issue(request)
        with Session(engine) as session:
            insert_ignore(session, Coupon, code=issued.code, email_id=email_id, customer_id=request.customer_id,
                          discount=issued.discount, created_at=now, expires_at=issued.expires_at,
                          source=issued.source, currency=request.currency)
            session.commit()

    def _prepare(self, session: Session, email_id: int, now: datetime) -> Message:
        """The message, rendered from the rows as they are now. Runs inside a transaction, no network."""
        email = session.get_one(Email, email_id)
        rows = load_rows(session, email)
        shop = self.config.shops[email.shop]
        context = build_context(session, self.config, shop, rows, self.secret, now)
        rendered = self.renderers[email.shop].render(email.kind, context, locale=rows.customer.locale)
        html = rendered.html
        web = self.config.web
        if web is not None and (web.track_engagement == "all" or (web.track_engagement == "marketing"
                                                                  and email.marketing)):
            html = instrument(html, base_url=base_url(self.config, shop), secret=self.secret, email_id=email.id)
        headers = {"X-Trackmail-Ref": email.idempotency_key}
        if email.marketing and context.get("unsubscribe_url"):
            headers["List-Unsubscribe"] = f"<{context['unsubscribe_url']}>"
            headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        return Message(
            message_id=email.message_id, sender=shop.sender, to=email.to_address, subject=rendered.subject,
            html=html, text=rendered.text, date=now, kind=email.kind, reply_to=shop.reply_to,
            headers=headers, shop=email.shop,
        )

    def _finish(self, engine: Engine, email_id: int, **values: object) -> None:
        with Session(engine) as session:
            session.execute(update(Email).where(Email.id == email_id).values(claimed_until=None, **values))
            session.commit()

    def _hold(self, engine: Engine, email_id: int, error: Exception, report: SendReport) -> None:
        """Not sent broken, not lost: held until a person fixes the cause (see release_held)."""
        log.error("email %s held: %s", email_id, error)
        report.held += 1
        report.errors.append(str(error))
        self._finish(engine, email_id, state=EmailState.HELD, last_error=str(error))

    def _keep_lease(self, engine: Engine, email_id: int, claimed_until: datetime) -> datetime | None:
        """This worker's lease on the email, renewed; None when it ran out and another worker has since claimed
        the email: a slow batch must neither send it nor decide its fate (skip, defer, coupon, retry)."""
        renewed = self.clock() + self.lease()
        with Session(engine) as session:
            result = session.execute(
                update(Email).where(Email.id == email_id, Email.state == EmailState.QUEUED,
                                    Email.claimed_until == claimed_until)
                .values(claimed_until=renewed))
            session.commit()
        return renewed if result.rowcount == 1 else None

    async def send_one(self, engine: Engine, email_id: int, now: datetime, report: SendReport,
                       claimed_until: datetime | None = None) -> None:
        """`claimed_until`: this worker's lease, checked before deciding anything and again before the
        transport (None: the caller holds no lease, e.g. a retry by hand)."""
        if claimed_until is not None and (claimed_until := self._keep_lease(engine, email_id, claimed_until)) is None:
            return self._taken_over(email_id)
        decision = self._decide(engine, email_id, now)
        if decision.action == "defer":
            report.deferred += 1
            return self._finish(engine, email_id, due_at=decision.until, last_error=decision.reason)
        if decision.action == "skip":
            report.skipped += 1
            return self._finish(engine, email_id, state=EmailState.SKIPPED, last_error=decision.reason)
        try:
            await self._ensure_coupon(engine, email_id, now)
        except TransientCouponError as exc:
            return self._retry(engine, email_id, now, str(exc), report)
        except CouponError as exc:  # no code to give (pool empty, shop refused): never send without
            return self._hold(engine, email_id, exc, report)
        try:
            with Session(engine) as session:
                prepared = self._prepare(session, email_id, now)
                session.commit()
        except TemplateError as exc:
            return self._hold(engine, email_id, exc, report)
        if claimed_until is not None and self._keep_lease(engine, email_id, claimed_until) is None:
            return self._taken_over(email_id)
        name = f"{email_id:07d}-{prepared.kind}"
        try:
            sender = self.shop_senders.get(prepared.shop, self.sender)
            provider_id = await sender.send(prepared, name)
        except TransientSendError as exc:
            self._retry(engine, email_id, now, str(exc), report)
            if exc.server_down:
                raise
            return None
        except PermanentSendError as exc:
            log.error("email %s dead: %s", email_id, exc)
            report.dead += 1
            if exc.suppress:
                suppress(engine, prepared.to, SuppressionScope.ALL, str(exc), "delivery failure", now)
            return self._finish(engine, email_id, state=EmailState.DEAD, last_error=str(exc))
        report.sent += 1
        self._finish(engine, email_id, state=EmailState.SENT, sent_at=now, provider_id=provider_id, last_error="")

    @staticmethod
    def _taken_over(email_id: int) -> None:
        log.warning("email %s was taken over by another worker (its lease ran out); not sending it here", email_id)

    def _retry(self, engine: Engine, email_id: int, now: datetime, error: str, report: SendReport) -> None:
        with Session(engine) as session:
            email = session.get_one(Email, email_id)
            attempts = email.attempts + 1
            first_failed = email.first_failed_at or now  # planned days ahead is not failing for days
        report.errors.append(error)
        if now - first_failed >= self.config.emails.retry_for:
            log.error("email %s dead after %d attempts: %s", email_id, attempts, error)
            report.dead += 1
            return self._finish(engine, email_id, state=EmailState.DEAD, attempts=attempts,
                                last_error=f"gave up after {attempts} attempts: {error}")
        log.warning("email %s will be retried (attempt %d): %s", email_id, attempts, error)
        report.retried += 1
        self._finish(engine, email_id, attempts=attempts, due_at=now + retry_delay(attempts), last_error=error,
                     first_failed_at=first_failed)

    async def send_due(self, engine: Engine, now: datetime) -> SendReport:
        """Send every email due by `now`, a batch at a time, until none is left."""
        report = SendReport()
        while True:
            with Session(engine) as session:
                ids = claim(session, Email, due=Email.due_at, now=now, lease=self.lease(), limit=BATCH,
                            where=[Email.state == EmailState.QUEUED], order_by=Email.id)
                session.commit()
            lease = now + self.lease()
            for index, email_id in enumerate(ids):
                try:
                    await self.send_one(engine, email_id, now, report, claimed_until=lease)
                except TransientSendError:
                    # The server itself is unreachable: the rest of the batch waits for the next run instead
                    # of each timing out in turn while every other job waits on this one.
                    self._release(engine, ids[index + 1:])
                    return report
                except Exception as exc:  # a bug or a database hiccup must not stop the other emails
                    log.exception("email %s failed unexpectedly", email_id)
                    self._retry(engine, email_id, now, f"unexpected error: {exc!r}", report)
            if len(ids) < BATCH:
                return report

    def _release(self, engine: Engine, ids: list[int]) -> None:
        if ids:
            with Session(engine) as session:
                session.execute(update(Email).where(Email.id.in_(ids)).values(claimed_until=None))
                session.commit()


def suppress(engine: Engine, address: str, scope: SuppressionScope, reason: str, source: str,
             now: datetime) -> bool:
    """Add an address to the suppression list (a wider scope replaces a narrower one); True if it changed."""
    address = parseaddr(address)[1].lower() or address.lower()
    with Session(engine) as session:
        row = session.execute(select(Suppression).where(Suppression.email == address)).scalar_one_or_none()
        if row is not None and (row.scope is SuppressionScope.ALL or row.scope is scope):
            return False
        row = row or Suppression(email=address, created_at=now)
        row.scope, row.reason, row.source = scope, reason, source
        session.add(row)
        session.commit()
        return True


@dataclass(frozen=True)
class Requeued:
    email_id: int
    kind: str
    to_address: str
    previous: EmailState


def requeue_email(engine: Engine, email_id: int, now: datetime) -> Requeued:
    """Put one dead, held or skipped email back in the queue, due now, with a fresh retry budget.

    The update is guarded by the state read, so two operators clicking at once re-queue it once. Raises
    LookupError (no such email) or ValueError (not in a state that is retried), each with a sentence to show.
    """
    with Session(engine) as session:
        row = session.execute(select(Email.kind, Email.to_address, Email.state).where(Email.id == email_id)).first()
        if row is None:
            raise LookupError(f"There is no email {email_id}.")
        kind, address, previous = row
        if previous not in RETRYABLE_STATES:
            raise ValueError(f"Email {email_id} is {previous}; only dead, held or skipped emails are retried.")
        result = session.execute(update(Email).where(Email.id == email_id, Email.state == previous).values(
            state=EmailState.QUEUED, due_at=now, claimed_until=None, attempts=0, first_failed_at=None,
            followed_up=False, last_error=f"re-queued by hand (was {previous})"))
        session.commit()
    if result.rowcount != 1:
        raise ValueError(f"Email {email_id} changed while it was being re-queued; look at it again.")
    return Requeued(email_id, kind, address, EmailState(previous))


def release_held(engine: Engine) -> int:
    """Held emails (a template could not render) get another chance, e.g. after the file was fixed."""
    with Session(engine) as session:
        result = session.execute(
            update(Email).where(Email.state == EmailState.HELD).values(state=EmailState.QUEUED, claimed_until=None)
        )
        session.commit()
        return result.rowcount


def next_due(engine: Engine) -> datetime | None:
    with Session(engine) as session:
        return session.execute(
            select(Email.due_at).where(Email.state == EmailState.QUEUED).order_by(Email.due_at).limit(1)
        ).scalar_one_or_none()
