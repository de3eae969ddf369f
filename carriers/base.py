"""The seam between trackmail and the outside world: what adapters return, the protocols they follow, and
the errors they raise.

Error tree (one per seam; every error carries where it came from and never hides the response)::

    CarrierError (.source, .status_code, .excerpt)
    ├── TransientError   timeouts, connection errors, 408/429/5xx: retried, then polled again next tick
    ├── AuthError        401/403 or a refused token: the account pauses until fixed
    └── ResponseError    unreadable payload or unexpected 4xx: logged with an excerpt, nothing changed
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Protocol, runtime_checkable

from tracker.status import ShipmentStatus

EXCERPT_CHARS = 300
# Keys of every [couriers.<name>] / [marketplaces.<name>] table that tracker/config.py reads, not the adapter.
COMMON_KEYS = frozenset({"type", "shop", "lookback", "marketing_to_proxy"})


def excerpt(body: str | bytes | None, limit: int = EXCERPT_CHARS) -> str:
    """A short, single-line piece of a response body, safe to put in a log line."""
    if body is None:
        return ""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    flat = " ".join(body.split())
    return flat if len(flat) <= limit else flat[:limit] + "…"


class CarrierError(Exception):
    """Anything that went wrong talking to a courier or a marketplace."""

    def __init__(
        self,
        message: str,
        *,
        source: str,
        status_code: int | None = None,
        body: str | bytes | None = None,
        tracking_number: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.source = source
        self.status_code = status_code
        self.excerpt = excerpt(body)
        self.tracking_number = tracking_number
        self.retry_after = retry_after
        parts = [f"{source}: {message}"]
        if tracking_number:
            parts.append(f"tracking number {tracking_number}")
        if status_code is not None:
            parts.append(f"HTTP {status_code}")
        if self.excerpt:
            parts.append(f"response: {self.excerpt!r}")
        super().__init__("; ".join(parts))


class TransientError(CarrierError):
    """Worth trying again later: nothing about the request was wrong."""


class AuthError(CarrierError):
    """Credentials refused: retrying will not help until a person fixes the account."""


class ResponseError(CarrierError):
    """The answer could not be understood, or the request was refused for a reason we cannot fix."""


@dataclass(frozen=True, slots=True)
class CarrierEvent:
    """One scan or status update, normalised. The raw code and text always travel with the status."""

    at: datetime  # aware, UTC
    status: ShipmentStatus
    code: str
    description: str
    location: str = ""

    @property
    def key(self) -> tuple[datetime, str, str]:
        """Two events with the same time, code and location are the same event reported twice."""
        return (self.at, self.code, self.location)


@dataclass(frozen=True, slots=True)
class TrackingResult:
    """What a courier knows about one tracking number right now. `found=False` means not known yet."""

    tracking_number: str
    events: tuple[CarrierEvent, ...] = ()
    found: bool = True
    estimated_delivery: date | None = None
    signed_by: str | None = None
    error: CarrierError | None = None  # a per-number error inside an otherwise good response


@dataclass(frozen=True, slots=True)
class AddressRecord:
    name: str = ""
    city: str = ""
    postcode: str = ""
    country: str = ""  # ISO 3166-1 alpha-2


@dataclass(frozen=True, slots=True)
class LineRecord:
    key: str  # stable id of the line within its order
    title: str
    quantity: int
    unit_price: Decimal
    sku: str = ""
    product_id: str = ""
    image_url: str = ""
    product_url: str = ""


@dataclass(frozen=True, slots=True)
class ShipmentRecord:
    """A fulfillment as the marketplace reports it: a tracking number and who carries it."""

    tracking_number: str
    courier_name: str  # free text from the marketplace ("UPS", "DHL Express", "sandbox")
    shipped_at: datetime
    tracking_url: str = ""


@dataclass(frozen=True, slots=True)
class OrderRecord:
    """An order as a marketplace reports it at one moment; re-reading it must be harmless."""

    external_id: str
    number: str
    created_at: datetime
    updated_at: datetime
    currency: str
    total: Decimal
    customer_id: str
    customer_email: str
    customer_name: str
    customer_locale: str = "en"
    marketing_consent: bool | None = None  # None: the marketplace does not say (policy in [emails])
    lines: tuple[LineRecord, ...] = ()
    shipments: tuple[ShipmentRecord, ...] = ()
    shipping_address: AddressRecord = field(default_factory=AddressRecord)
    cancelled: bool = False
    refunded: bool = False  # fully refunded
    discount_codes: tuple[str, ...] = ()  # codes used on the order (coupon redemptions)


@dataclass(frozen=True, slots=True)
class FeedBatch:
    """Orders changed since a cursor, and the cursor to store once they are safely in the database.

    Real feeds set `cursor` to the newest `updated_at` they returned (or keep `since` when nothing changed), so
    a clock difference between the shop and us never skips an order; the sync job re-reads a small overlap.
    `problems` are records the feed could not read (e.g. a bad row of an order file): reported, kept aside,
    and never stop the good records from being imported."""

    orders: tuple[OrderRecord, ...]
    cursor: datetime
    problems: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CouponSpec:
    """A single-use discount code a shop is asked to create. Plain data: the seam between the outbox, which
    decides the code and its terms, and the shop's adapter, which knows the shop's API."""

    code: str
    reference: str  # why it exists (the email's idempotency key), written into the shop's title/description
    percent: bool  # True: `value` percent off; False: `value` off, in the shop's own currency
    value: Decimal
    starts_at: datetime  # aware
    expires_at: datetime  # aware
    customer_email: str


@dataclass(frozen=True, slots=True)
class IssuedCode:
    code: str
    expires_at: datetime


@runtime_checkable
class CouponIssuer(Protocol):
    """A marketplace that can create discount codes. Creating the same `spec.code` twice must succeed the
    second time (a retry after a lost answer): the shop saying the code exists means our earlier attempt
    worked. Raises CarrierError: TransientError to try again later, anything else needs a person."""

    name: str

    async def create_code(self, spec: CouponSpec) -> IssuedCode: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class Courier(Protocol):
    """A courier account. `track` takes up to `batch_size` numbers and answers for each of them, in order;
    the poller keeps at most `concurrency` calls of one account in flight."""

    name: str
    batch_size: int
    concurrency: int

    async def track(self, numbers: Sequence[str]) -> list[TrackingResult]: ...

    def tracking_url(self, number: str) -> str: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class Marketplace(Protocol):
    """A shop's order feed. `changes` returns orders created or updated after `since`."""

    name: str

    async def changes(self, since: datetime) -> FeedBatch: ...

    async def aclose(self) -> None: ...
