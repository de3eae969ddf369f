"""Where a resell coupon's code comes from. Every source answers `issue(request)` with an IssuedCoupon, and
issuing twice for the same email is harmless:

- local, and the shops (tracker/shop_coupons.py asks a marketplace adapter that can create codes): the code
  is `derive_code(secret, request.key)`, the same on every attempt, so a retry after a crash or a timeout asks
  the shop for the *same* code; the shop saying that code already exists means the earlier attempt worked.
  The code is an HMAC of the email's idempotency key: nobody else (another email, the merchant) makes it, so
  "already exists" can only be our own earlier attempt.
- pool: the database reserves the code. `issue` inserts the Coupon row itself (Coupon.code and
  Coupon.email_id are unique), so two senders, in one process or in two daemons, never hand out one code,
  and a second `issue` for the same email returns the code reserved for it.

Errors, for the outbox (network calls happen outside any database transaction)::

    CouponError              no code could be issued: the email is held with the reason until a person acts
    ├── CouponsExhausted       the pool file has no unused code left
    ├── CouponAuthError        the shop refused the account's keys (401/403, a missing scope)
    └── TransientCouponError   timeouts, throttling, 408/429/5xx (retried inline first): try again later

A retried issue after "already exists" reports its own `now + valid_for` as the expiry; the shop keeps the
first attempt's. Store the IssuedCoupon as soon as `issue` returns so the gap stays seconds.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import hashlib
import hmac
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from sqlalchemy import select
from sqlmodel import Session

from emails.discount import Discount, parse_discount
from tracker.db import insert_ignore
from tracker.models import Coupon

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

CHUNK = 500  # codes per `IN (...)` query: under SQLite's oldest bound-parameter limit (999)


# ── What goes in and out ──────────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class CouponRequest:
    key: str  # the email's idempotency key
    customer_email: str
    customer_external_id: str  # the marketplace's customer id ("guest:<email>" for guests)
    discount: str  # "10%" or "5.00" (an amount in the shop's currency)
    valid_for: timedelta
    now: datetime  # aware
    currency: str = ""  # the order's, for the template; shops apply amounts in their own currency
    email_id: int | None = None  # PoolCoupons reserves the code with a Coupon row: it needs both ids
    customer_id: int | None = None

    def __post_init__(self) -> None:
        if self.now.tzinfo is None:
            raise ValueError(f"now must be an aware datetime, got {self.now!r}")
        if self.valid_for <= timedelta(0):
            raise ValueError(f"valid_for must be longer than zero, got {self.valid_for!r}")

    @property
    def expires_at(self) -> datetime:
        return (self.now + self.valid_for).astimezone(UTC)


@dataclass(frozen=True)
class IssuedCoupon:
    code: str
    discount: str
    expires_at: datetime
    source: str  # "local", "pool", or the shop's marketplace type ("shopify", "woocommerce")


class CouponError(Exception):
    """No code could be issued. `source` names the coupon source or shop account, `excerpt` the shop's
    answer (already short and single-line), when there was one."""

    def __init__(self, message: str, *, source: str = "", status_code: int | None = None,
                 excerpt: str = "") -> None:
        self.source = source
        self.status_code = status_code
        self.excerpt = excerpt
        super().__init__(f"{source}: {message}" if source else message)


class CouponsExhausted(CouponError):
    """Every code of the pool file has been given out."""


class CouponAuthError(CouponError):
    """The shop refused the account's credentials or scope: a person must fix the account."""


class TransientCouponError(CouponError):
    """Nothing was wrong with the request: try again later (`retry_after` seconds when the shop said)."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.retry_after = retry_after


@runtime_checkable
class CouponSource(Protocol):
    async def issue(self, request: CouponRequest) -> IssuedCoupon: ...

    async def aclose(self) -> None: ...


def derive_code(secret: bytes, key: str) -> str:
    """Unguessable, and the same on every retry of the same email, so a resend never mints a second code."""
    digest = hmac.new(secret, b"coupon:" + key.encode(), hashlib.sha256).digest()
    letters = base64.b32encode(digest).decode().translate(str.maketrans("01O", "XYZ"))
    return f"THANKS-{letters[:4]}-{letters[4:8]}"


def request_discount(request: CouponRequest, source: str) -> Discount:
    """The request's discount, or a CouponError naming the source (the config checks it at start too)."""
    try:
        return parse_discount(request.discount)
    except ValueError as exc:
        raise CouponError(str(exc), source=source) from None


# ── Local: a derived code the shop imports itself ─────────────────────────────────────────────────────────


class LocalCoupons:
    """The code is derived from the email's key; the merchant loads such codes into the shop another way."""

    def __init__(self, secret: bytes) -> None:
        self.secret = secret

    async def issue(self, request: CouponRequest) -> IssuedCoupon:
        request_discount(request, "local")
        return IssuedCoupon(derive_code(self.secret, request.key), request.discount, request.expires_at, "local")

    async def aclose(self) -> None:
        return None


# ── Pool: codes the merchant uploaded, reserved in the database ──────────────────────────────────────────


def parse_pool(text: str) -> tuple[str, ...]:
    """The codes of a pool file in order: the first column of each line; blank lines, `#` comment lines, a
    header whose first column is `code`, and repeats (compared case-insensitively, as shops compare codes)
    are left out."""
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    seen: set[str] = set()
    codes: list[str] = []
    for index, row in enumerate(csv.reader(lines)):
        code = row[0].strip() if row else ""
        if not code or (index == 0 and code.casefold() == "code") or code.casefold() in seen:
            continue
        seen.add(code.casefold())
        codes.append(code)
    return tuple(codes)


def _chunks(codes: Sequence[str]) -> list[Sequence[str]]:
    return [codes[i:i + CHUNK] for i in range(0, len(codes), CHUNK)]


class PoolCoupons:
    """Codes from a merchant's file, each given to one email only. The file is read again when it changes,
    so codes can be appended while the daemon runs. Database work runs in a worker thread."""

    def __init__(self, path: Path, engine: Engine) -> None:
        self.path = Path(path)
        self.engine = engine
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._codes: tuple[str, ...] = ()

    def codes(self) -> tuple[str, ...]:
        try:
            stat = self.path.stat()
            with self._lock:
                if (stat.st_mtime_ns, stat.st_size) != self._stamp:
                    self._codes = parse_pool(self.path.read_text(encoding="utf-8-sig"))
                    self._stamp = (stat.st_mtime_ns, stat.st_size)
                return self._codes
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise CouponError(f"cannot read the coupon pool {self.path}: {reason}", source="pool") from None
        except UnicodeDecodeError:
            raise CouponError(f"the coupon pool {self.path} is not UTF-8 text", source="pool") from None

    def remaining(self) -> int:
        """Codes of the file not given to anybody yet (a database query per CHUNK codes: call it off the loop
        when the pool is large)."""
        codes = self.codes()
        with Session(self.engine) as session:
            return sum(len(self._unused(session, chunk)) for chunk in _chunks(codes))

    async def issue(self, request: CouponRequest) -> IssuedCoupon:
        if request.email_id is None or request.customer_id is None:
            raise ValueError("PoolCoupons.issue needs the request's email_id and customer_id")
        request_discount(request, "pool")
        return await asyncio.to_thread(self._reserve, request)

    def _reserve(self, request: CouponRequest) -> IssuedCoupon:
        with Session(self.engine) as session:
            held = self._held(session, request)
            if held is not None:
                return held
            codes = self.codes()
            for chunk in _chunks(codes):
                for code in self._unused(session, chunk):
                    row = {"code": code, "email_id": request.email_id, "customer_id": request.customer_id,
                           "discount": request.discount, "created_at": request.now, "expires_at": request.expires_at,
                           "source": "pool", "currency": request.currency}
                    if insert_ignore(session, Coupon, **row):
                        session.commit()
                        return IssuedCoupon(code, request.discount, request.expires_at, "pool")
                    session.rollback()  # someone took this code, or this email got one meanwhile
                    held = self._held(session, request)
                    if held is not None:
                        return held
        raise CouponsExhausted(f"the coupon pool {self.path} is used up: all {len(codes)} codes it holds have "
                               "been given out; add new codes to the file", source="pool")

    @staticmethod
    def _held(session: Session, request: CouponRequest) -> IssuedCoupon | None:
        row = session.execute(select(Coupon).where(Coupon.email_id == request.email_id)).scalar_one_or_none()
        return None if row is None else IssuedCoupon(row.code, row.discount, row.expires_at, row.source)

    @staticmethod
    def _unused(session: Session, chunk: Sequence[str]) -> list[str]:
        used = set(session.execute(select(Coupon.code).where(Coupon.code.in_(chunk))).scalars())
        return [code for code in chunk if code not in used]

    async def aclose(self) -> None:
        return None
