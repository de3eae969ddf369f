"""The database tables. Every timestamp is an aware UTC datetime in Python, whatever the database keeps."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import Column, DateTime, Index, Numeric, UniqueConstraint
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

from tracker.status import ShipmentStatus


class UTCDateTime(TypeDecorator):
    """Stores naive UTC (SQLite keeps no zone) and hands back aware UTC, so no naive time leaks out."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given where an aware UTC time is required")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def Time(**kwargs: object):
    return Field(sa_type=UTCDateTime, **kwargs)


def money_column() -> Column:
    return Column(Numeric(12, 2, asdecimal=True), nullable=False)


class Customer(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("marketplace", "external_id"),)
    id: int | None = Field(default=None, primary_key=True)
    marketplace: str
    external_id: str
    email: str
    name: str
    locale: str = "en"
    marketing_consent: bool | None = None  # None: the marketplace does not say


class OrderState(StrEnum):
    OPEN = "open"
    CANCELLED = "cancelled"


class Order(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("marketplace", "external_id"),)
    id: int | None = Field(default=None, primary_key=True)
    marketplace: str
    shop: str
    external_id: str
    number: str
    customer_id: int = Field(foreign_key="customer.id", index=True)
    created_at: datetime = Time()
    updated_at: datetime = Time()
    currency: str
    total: Decimal = Field(sa_column=money_column())
    state: OrderState = OrderState.OPEN
    refunded: bool = False
    # False for history imported when an account is first connected: such orders never email anybody.
    notify: bool = True
    country: str = ""
    postcode: str = ""  # lets a customer find their order on the lookup page
    # Why the intake refused to email this order's customer (e.g. an address that is not one mailbox); "" when
    # nothing was refused. Such an order is kept and tracked, and no email is planned or sent for it.
    problem: str = ""


class OrderLine(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("order_id", "line_key"),)
    id: int | None = Field(default=None, primary_key=True)
    order_id: int = Field(foreign_key="order.id", index=True)
    line_key: str
    title: str
    quantity: int
    unit_price: Decimal = Field(sa_column=money_column())
    sku: str = ""
    product_id: str = ""
    image_url: str = ""
    product_url: str = ""


class Shipment(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("order_id", "tracking_number"),
        Index("ix_shipment_due", "next_poll_at"),
        Index("ix_shipment_followups", "status", "followups_planned"),
    )
    id: int | None = Field(default=None, primary_key=True)
    order_id: int = Field(foreign_key="order.id", index=True)
    courier: str  # the courier account name from config
    courier_name: str  # as the marketplace wrote it
    tracking_number: str = Field(index=True)
    tracking_url: str = ""
    shipped_at: datetime = Time()
    first_seen_at: datetime = Time()
    status: ShipmentStatus = ShipmentStatus.PENDING
    status_code: str = ""
    status_description: str = ""
    last_event_at: datetime | None = Time(default=None)
    delivered_at: datetime | None = Time(default=None)
    estimated_delivery: date | None = None
    signed_by: str = ""
    next_poll_at: datetime | None = Time(default=None)  # None: no more polling (final)
    claimed_until: datetime | None = Time(default=None)
    poll_failures: int = 0
    last_error: str = ""
    followups_planned: bool = False
    # False for a parcel that shipped before its shop was connected: history, it emails nobody.
    notify: bool = True
    delayed_at: datetime | None = Time(default=None)  # flagged quiet for longer than normal; cleared by news
    delay_reason: str = ""
    final_at: datetime | None = Time(default=None)  # when it became delivered, returned or expired
    last_polled_at: datetime | None = Time(default=None)  # when the courier was last asked (claim time)


class TrackingEvent(SQLModel, table=True):
    """Every courier event we ever saw for a shipment, including those that moved nothing."""

    __table_args__ = (UniqueConstraint("shipment_id", "at", "code", "location"),)
    id: int | None = Field(default=None, primary_key=True)
    shipment_id: int = Field(foreign_key="shipment.id", index=True)
    at: datetime = Time()
    status: ShipmentStatus
    code: str
    description: str
    location: str = ""
    recorded_at: datetime = Time()
    applied: bool = True  # False: stored for the history only (late, duplicate status, unknown code...)
    note: str = ""


class EmailState(StrEnum):
    QUEUED = "queued"  # waiting for due_at
    SENT = "sent"
    SKIPPED = "skipped"  # a condition no longer held at send time (reason in last_error)
    CANCELLED = "cancelled"  # the order was cancelled
    HELD = "held"  # could not be rendered; released when the template is fixed
    DEAD = "dead"  # permanent failure or retries exhausted


class Email(SQLModel, table=True):
    __table_args__ = (Index("ix_email_due", "state", "due_at"),)
    id: int | None = Field(default=None, primary_key=True)
    # "<kind>:order:<id>" or "<kind>:shipment:<id>": each milestone emails once, whatever happens.
    idempotency_key: str = Field(unique=True)
    message_id: str = Field(unique=True)
    kind: str = Field(index=True)
    shop: str
    order_id: int = Field(foreign_key="order.id", index=True)
    shipment_id: int | None = Field(default=None, foreign_key="shipment.id", index=True)
    customer_id: int = Field(foreign_key="customer.id", index=True)
    to_address: str
    state: EmailState = EmailState.QUEUED
    created_at: datetime = Time()
    due_at: datetime = Time()
    claimed_until: datetime | None = Time(default=None)
    attempts: int = 0
    first_failed_at: datetime | None = Time(default=None)  # the retry budget counts from here
    sent_at: datetime | None = Time(default=None)
    provider_id: str = ""
    last_error: str = ""
    marketing: bool = False  # needs consent, honours unsubscribes, caps and the customer's daytime
    flow: str = ""  # the [[flows]] entry that planned it, if any
    step: int = 0
    followed_up: bool = False  # the flow's next step has been planned (or the chain ended here)


class SuppressionScope(StrEnum):
    MARKETING = "marketing"  # unsubscribed: tracking emails still go
    ALL = "all"  # hard bounce, complaint, inactive at the provider: nothing goes


class Suppression(SQLModel, table=True):
    """Addresses we must not email (or not market to). Stored lower-case."""

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(unique=True)
    scope: SuppressionScope = SuppressionScope.MARKETING
    reason: str = ""
    source: str = ""  # "unsubscribe link", "manual", "postmark 406", ...
    created_at: datetime = Time()


class Coupon(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(unique=True)
    email_id: int = Field(foreign_key="email.id", unique=True)
    customer_id: int = Field(foreign_key="customer.id", index=True)
    discount: str
    created_at: datetime = Time()
    expires_at: datetime = Time()
    source: str = "local"
    redeemed_order_id: int | None = Field(default=None, foreign_key="order.id")
    redeemed_at: datetime | None = Time(default=None)
    revenue: Decimal | None = Field(default=None, sa_column=Column(Numeric(12, 2, asdecimal=True), nullable=True))
    currency: str = ""


class EmailEvent(SQLModel, table=True):
    """An open (the tracking pixel loaded) or a click (a signed redirect followed) on one email."""

    id: int | None = Field(default=None, primary_key=True)
    email_id: int = Field(foreign_key="email.id", index=True)
    kind: str  # "open" or "click"
    url: str = ""  # for clicks: where the customer went
    at: datetime = Time()


class WebhookDelivery(SQLModel, table=True):
    """Every webhook call received: processed once per delivery id, refused ones kept with the reason."""

    __table_args__ = (UniqueConstraint("source", "delivery_id"),
                      Index("ix_webhookdelivery_status_received_at", "status", "received_at"))
    id: int | None = Field(default=None, primary_key=True)
    source: str  # "shopify", "aftership", "postmark"
    delivery_id: str  # the provider's id for this delivery (refused calls get a generated one)
    topic: str = ""
    status: str  # "processed", "refused", "failed"
    detail: str = ""
    received_at: datetime = Time()


class FeedCursor(SQLModel, table=True):
    """Where each marketplace account's incremental sync stands, and which daemon is reading it now: one
    reader per account at a time, so several daemons never spend the marketplace's quota twice."""

    marketplace: str = Field(primary_key=True)
    connected_at: datetime = Time()
    cursor: datetime = Time()
    updated_at: datetime = Time()  # when the feed was last read and stored (or the account connected)
    claimed_until: datetime | None = Time(default=None)  # the reader's lease; an expired one is taken over
    claimed_by: str = ""  # the reader's worker id: only the holder stores a page or releases the lease


class LoginFailure(SQLModel, table=True):
    """A failed dashboard login, by client address, in real time: daemons sharing a database share the
    throttle, and a restart does not reset it."""

    __table_args__ = (Index("ix_loginfailure_client_at", "client", "at"),)
    id: int | None = Field(default=None, primary_key=True)
    client: str
    at: datetime = Time()


class Setting(SQLModel, table=True):
    """Small facts the daemon must remember across restarts (e.g. how far a sped-up clock had run)."""

    key: str = Field(primary_key=True)
    value: str


class CourierCalls(SQLModel, table=True):
    """Courier calls spent per account and budget window: daemons sharing a database share one budget.

    `window` is the start of the window (a UTC day: DHL and FedEx reset their daily quotas at 00:00 GMT)."""

    account: str = Field(primary_key=True)
    window: datetime = Time(primary_key=True)
    calls: int = 0


class CourierPause(SQLModel, table=True):
    """A courier account told to wait (429 or Retry-After): no daemon calls it again before `until`."""

    account: str = Field(primary_key=True)
    until: datetime = Time()
    reason: str = ""
