"""Where a resell coupon's code comes from: derived locally, taken from a merchant's pool file, or created in
the shop (Shopify GraphQL `discountCodeBasicCreate`, WooCommerce REST `POST /wc/v3/coupons`).

Every source answers `issue(request)` with an IssuedCoupon, and issuing twice for the same email is harmless:

- local, Shopify, WooCommerce: the code is `derive_code(secret, request.key)`, the same on every attempt, so
  a retry after a crash or a timeout asks the shop for the *same* code; the shop saying that code already
  exists means the earlier attempt worked. The code is an HMAC of the email's idempotency key: nobody else
  (another email, the merchant) makes it, so "already exists" can only be our own earlier attempt.
- pool: the database reserves the code. `issue` inserts the Coupon row itself (Coupon.code and
  Coupon.email_id are unique), so two senders, in one process or in two daemons, never hand out one code,
  and a second `issue` for the same email returns the code reserved for it.

Errors, for the outbox (network calls happen outside any database transaction)::

    CouponError          permanent: the email is held with the reason, a person must act
    └── CouponsExhausted   the pool file has no unused code left
    carriers.base.AuthError       401/403 or a missing scope: the account's keys must be fixed
    carriers.base.TransientError  timeouts, throttling, 408/429/5xx (retried inline first): try again later

Shop-created codes (facts from carrier-samples README §8 and §10, shopify.dev 2026-07):

- Shopify: `usageLimit: 1`, `appliesOncePerCustomer: true`, `startsAt: now`, `endsAt: now + valid_for`,
  items all; "10%" becomes `percentage: 0.1`, "5.00" `discountAmount {amount: "5.00"}` (a Decimal sent as
  a string, in the *shop's* currency: Shopify has no per-code currency). The app's token needs the
  `write_discounts` scope (ACCESS_DENIED otherwise → AuthError).
  `customerSelection: {all: true}`, not the customer: usageLimit 1 already makes the unguessable code
  single-use, and a per-customer code fails exactly where it hurts: guests (trackmail keys them
  `guest:<email>`, there is no customer gid to name), customers who check out under another address or are
  not recognised at checkout, and customers deleted or merged since the order (the mutation then refuses the
  gid and the email would be held). `customerSelection` is marked deprecated in favour of
  `context` (2026-01, 2026-07) but still accepted; the published example uses it.
  A duplicate code is a `userErrors` entry (code TAKEN, field [..., "code"]); its exact message is not in
  the published samples, so TAKEN/DUPLICATE or a message saying "unique"/"already taken"/"already exists" on
  the code field all count.
- WooCommerce: `discount_type` percent | fixed_cart, `amount` a string, `usage_limit: 1`,
  `usage_limit_per_user: 1`, `individual_use: true`, `date_expires_gmt` (UTC, no offset, as the order feed
  sends times), `email_restrictions: [customer_email]`. The key needs Read/Write permission. WooCommerce
  stores codes lower-cased and compares them case-insensitively, so the upper-case code in the email works.
  400 `woocommerce_rest_coupon_code_already_exists` is success.
- A retried issue after "already exists" reports its own `now + valid_for` as the expiry; the shop keeps
  the first attempt's. Store the IssuedCoupon as soon as `issue` returns so the gap stays seconds.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import hashlib
import hmac
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

import httpx
from sqlalchemy import select
from sqlmodel import Session

from carriers.base import AuthError, CarrierError, ResponseError, TransientError, excerpt
from carriers.http import Http, Limits, RetryPolicy, make_client, parse_json
from carriers.shopify import DEFAULT_API_VERSION, throttle_wait
from carriers.woocommerce import REFUSALS, store_http
from tracker.db import insert_ignore
from tracker.models import Coupon

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from tracker.config import AccountSettings
    from tracker.settings import Section

SOURCES = ("local", "pool", "shopify", "woocommerce")
DEFAULT_LIMITS = Limits(concurrency=2, per_second=2.0)
DEFAULT_RETRY = RetryPolicy()
CHUNK = 500  # codes per `IN (...)` query: under SQLite's oldest bound-parameter limit (999)
WOO_COUPONS_PATH = "/wp-json/wc/v3/coupons"
WOO_DUPLICATE = "woocommerce_rest_coupon_code_already_exists"
SHOPIFY_TAKEN_CODES = frozenset({"TAKEN", "DUPLICATE"})
_TAKEN_MESSAGE = re.compile(r"unique|already (been )?taken|already exists", re.IGNORECASE)
_DISCOUNT = re.compile(r"^(\d+(?:\.\d+)?)\s*(%?)$")

SHOPIFY_MUTATION = """
mutation TrackmailCoupon($input: DiscountCodeBasicInput!) {
  discountCodeBasicCreate(basicCodeDiscount: $input) {
    codeDiscountNode { id codeDiscount { ... on DiscountCodeBasic { codes(first: 1) { nodes { code } } endsAt } } }
    userErrors { field code message }
  }
}"""


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
    source: str  # "local", "pool", "shopify", "woocommerce"


@dataclass(frozen=True)
class Discount:
    percent: bool  # True: `value` percent off; False: `value` off in the shop's currency
    value: Decimal

    @property
    def text(self) -> str:
        return f"{self.value:f}"


class CouponError(Exception):
    """No code could be issued and retrying will not help: the email is held until a person acts."""

    def __init__(self, message: str, *, source: str = "", status_code: int | None = None,
                 body: str | bytes | None = None) -> None:
        self.source = source
        self.status_code = status_code
        self.excerpt = excerpt(body)
        parts = [f"{source}: {message}" if source else message]
        if status_code is not None:
            parts.append(f"HTTP {status_code}")
        if self.excerpt:
            parts.append(f"response: {self.excerpt!r}")
        super().__init__("; ".join(parts))

    @classmethod
    def wrapping(cls, error: CarrierError) -> CouponError:
        """A refusal or an unreadable answer from the shop, as the permanent coupon failure it is."""
        made = cls(str(error))
        made.source, made.status_code, made.excerpt = error.source, error.status_code, error.excerpt
        return made


class CouponsExhausted(CouponError):
    """Every code of the pool file has been given out."""


@runtime_checkable
class CouponSource(Protocol):
    async def issue(self, request: CouponRequest) -> IssuedCoupon: ...

    async def aclose(self) -> None: ...


def derive_code(secret: bytes, key: str) -> str:
    """Unguessable, and the same on every retry of the same email, so a resend never mints a second code."""
    digest = hmac.new(secret, b"coupon:" + key.encode(), hashlib.sha256).digest()
    letters = base64.b32encode(digest).decode().translate(str.maketrans("01O", "XYZ"))
    return f"THANKS-{letters[:4]}-{letters[4:8]}"


def parse_discount(text: str) -> Discount:
    """'10%' (more than 0, at most 100) or '5.00' (more than 0); ValueError saying what is wrong."""
    match = _DISCOUNT.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"discount {text!r} is neither a percentage like '10%' nor an amount like '5.00'")
    value, percent = Decimal(match.group(1)), bool(match.group(2))
    if value <= 0 or (percent and value > 100):
        raise ValueError(f"discount {text!r} must be more than 0" + (" and at most 100%" if percent else ""))
    return Discount(percent, value)


def _discount(request: CouponRequest, source: str) -> Discount:
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
        _discount(request, "local")
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
        _discount(request, "pool")
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


# ── Shopify ───────────────────────────────────────────────────────────────────────────────────────────────


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def shopify_input(code: str, request: CouponRequest, discount: Discount) -> dict[str, Any]:
    """The DiscountCodeBasicInput for one single-use code."""
    if discount.percent:
        value: dict[str, Any] = {"percentage": float(discount.value / 100)}
    else:
        value = {"discountAmount": {"amount": discount.text, "appliesOnEachItem": False}}
    return {
        "title": f"Thank-you coupon {code} (trackmail {request.key})",
        "code": code,
        "startsAt": _iso(request.now),
        "endsAt": _iso(request.expires_at),
        "customerSelection": {"all": True},
        "customerGets": {"value": value, "items": {"all": True}},
        "appliesOncePerCustomer": True,
        "usageLimit": 1,
    }


def code_taken(error: Mapping[str, Any]) -> bool:
    """A userErrors entry saying the code exists already."""
    field = error.get("field")
    last = field[-1] if isinstance(field, list) and field else field
    if last not in (None, "code"):
        return False
    return error.get("code") in SHOPIFY_TAKEN_CODES or bool(_TAKEN_MESSAGE.search(str(error.get("message", ""))))


class ShopifyCoupons:
    """Creates each code in a Shopify store with the GraphQL Admin API (scope write_discounts)."""

    source = "shopify"

    def __init__(self, base_url: str, access_token: str, api_version: str = DEFAULT_API_VERSION, *,
                 secret: bytes, name: str = "shopify", transport: httpx.AsyncBaseTransport | None = None,
                 retry: RetryPolicy = DEFAULT_RETRY, limits: Limits = DEFAULT_LIMITS) -> None:
        self.name = name
        self.secret = secret
        self.retry = retry
        self.endpoint = f"/admin/api/{api_version}/graphql.json"
        client = make_client(base_url.rstrip("/"), transport=transport,
                             headers={"X-Shopify-Access-Token": access_token, "Content-Type": "application/json"})
        self.http = Http(name, client, limits, retry)

    async def issue(self, request: CouponRequest) -> IssuedCoupon:
        code = derive_code(self.secret, request.key)
        variables = {"input": shopify_input(code, request, _discount(request, self.name))}
        data, response = await self._mutate(variables)
        payload = data.get("discountCodeBasicCreate")
        if not isinstance(payload, Mapping):
            raise CouponError("the answer has no discountCodeBasicCreate", source=self.name,
                              status_code=response.status_code, body=response.text)
        errors = [e for e in payload.get("userErrors") or [] if isinstance(e, Mapping)]
        if not any(code_taken(e) for e in errors):
            if errors:
                raise CouponError("Shopify refused the discount code: " + "; ".join(
                    f"{'.'.join(map(str, e.get('field') or []))}: {e.get('message')}" for e in errors),
                    source=self.name, status_code=response.status_code, body=response.text)
            created = _created_codes(payload)
            if code.casefold() not in {c.casefold() for c in created}:
                raise CouponError(f"Shopify answered without the code {code} (codes: {created})",
                                  source=self.name, status_code=response.status_code, body=response.text)
        return IssuedCoupon(code, request.discount, request.expires_at, self.source)

    async def _mutate(self, variables: Mapping[str, Any]) -> tuple[dict[str, Any], httpx.Response]:
        """The `data` of the mutation; THROTTLED is waited out a bounded number of times (nothing was done)."""
        for attempt in range(1, self.retry.attempts + 1):
            try:
                response = await self.http.request("POST", self.endpoint,
                                                   json={"query": SHOPIFY_MUTATION, "variables": variables})
                body = parse_json(response, self.name)
            except ResponseError as exc:
                raise CouponError.wrapping(exc) from exc
            kwargs: dict[str, Any] = {"source": self.name, "status_code": response.status_code, "body": response.text}
            if not isinstance(body, dict):
                raise CouponError("expected a JSON object", **kwargs)
            errors = body.get("errors")
            if not errors:
                if not isinstance(body.get("data"), dict):
                    raise CouponError("the answer has no data", **kwargs)
                return body["data"], response
            entries = [e for e in (errors if isinstance(errors, list) else [errors]) if isinstance(e, Mapping)]
            codes = {e["extensions"].get("code") for e in entries if isinstance(e.get("extensions"), Mapping)}
            message = "; ".join(str(e.get("message", e)) for e in entries) or str(errors)
            if "ACCESS_DENIED" in codes:
                raise AuthError(f"access denied (the app needs the write_discounts scope): {message}", **kwargs)
            if "INTERNAL_SERVER_ERROR" in codes:
                raise TransientError(f"Shopify failed: {message}", **kwargs)
            if "THROTTLED" not in codes:
                raise CouponError(f"GraphQL error: {message}", **kwargs)
            wait = throttle_wait(body)
            if attempt == self.retry.attempts or wait > self.retry.max_inline_wait:
                raise TransientError("throttled: the query cost budget is used up", retry_after=wait, **kwargs)
            await self.retry.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    async def aclose(self) -> None:
        await self.http.aclose()


def _created_codes(payload: Mapping[str, Any]) -> list[str]:
    node = payload.get("codeDiscountNode")
    discount = node.get("codeDiscount") if isinstance(node, Mapping) else None
    codes = discount.get("codes") if isinstance(discount, Mapping) else None
    nodes = codes.get("nodes") if isinstance(codes, Mapping) else None
    return [n["code"] for n in nodes or [] if isinstance(n, Mapping) and isinstance(n.get("code"), str)]


# ── WooCommerce ───────────────────────────────────────────────────────────────────────────────────────────


def woocommerce_body(code: str, request: CouponRequest, discount: Discount) -> dict[str, Any]:
    """The body of `POST /wp-json/wc/v3/coupons` for one single-use code locked to the customer's address."""
    return {
        "code": code,
        "discount_type": "percent" if discount.percent else "fixed_cart",
        "amount": discount.text,
        "individual_use": True,
        "usage_limit": 1,
        "usage_limit_per_user": 1,
        "date_expires_gmt": request.expires_at.replace(microsecond=0, tzinfo=None).isoformat(),
        "email_restrictions": [request.customer_email.strip().lower()],
        "description": f"trackmail {request.key}",
    }


def _woo_error(response: httpx.Response) -> tuple[str, str]:
    try:
        payload = response.json()
    except (ValueError, UnicodeDecodeError):
        return "", ""
    if isinstance(payload, Mapping) and isinstance(payload.get("code"), str):
        return payload["code"], str(payload.get("message") or "")
    return "", ""


class WooCommerceCoupons:
    """Creates each code in a WooCommerce store (REST API v3; the key needs Read/Write permission)."""

    source = "woocommerce"

    def __init__(self, base_url: str, consumer_key: str, consumer_secret: str, *, secret: bytes,
                 name: str = "woocommerce", query_string_auth: bool = False,
                 transport: httpx.AsyncBaseTransport | None = None, retry: RetryPolicy = DEFAULT_RETRY,
                 limits: Limits = DEFAULT_LIMITS) -> None:
        self.name = name
        self.secret = secret
        self._secrets = (consumer_secret, consumer_key)
        self.http, self._auth = store_http(name, base_url, consumer_key, consumer_secret, query_string_auth,
                                           transport, limits, retry)

    async def issue(self, request: CouponRequest) -> IssuedCoupon:
        code = derive_code(self.secret, request.key)
        body = woocommerce_body(code, request, _discount(request, self.name))
        try:
            self._check(await self.http.request("POST", WOO_COUPONS_PATH, json=body, auth=self._auth, ok=REFUSALS),
                        code)
        except CouponError as exc:
            raise self._scrubbed(exc) from None
        except ResponseError as exc:
            raise self._scrubbed(CouponError.wrapping(exc)) from exc
        except CarrierError as exc:
            raise self._scrubbed(exc) from None
        return IssuedCoupon(code, request.discount, request.expires_at, self.source)

    def _check(self, response: httpx.Response, code: str) -> None:
        kwargs: dict[str, Any] = {"source": self.name, "status_code": response.status_code, "body": response.text}
        if response.is_redirect:
            where = urlsplit(response.headers.get("Location", ""))
            raise CouponError(f"redirected to {where.scheme}://{where.netloc}{where.path}: set base_url to the "
                              "store's final https address", **kwargs)
        if response.status_code >= 400:
            error, message = _woo_error(response)
            if response.status_code == 400 and error == WOO_DUPLICATE:
                return  # our earlier attempt created it
            detail = f"{error}: {message}" if error else "not a WooCommerce answer"
            if response.status_code in (401, 403):
                raise AuthError(f"coupon creation refused ({detail}); the REST key needs Read/Write permission",
                                **kwargs)
            raise CouponError(f"coupon creation refused ({detail})", **kwargs)
        created = parse_json(response, self.name)
        if not isinstance(created, Mapping) or str(created.get("code", "")).casefold() != code.casefold():
            raise CouponError(f"the answer does not show the coupon {code}", **kwargs)

    def _scrubbed(self, error: Exception) -> Exception:
        """The same error with the keys blanked out, should a page have echoed the request URL."""
        text = str(error)
        if not any(secret and secret in text for secret in self._secrets):
            return error
        for secret in self._secrets:
            text = text.replace(secret, "***")
            if hasattr(error, "excerpt"):
                error.excerpt = error.excerpt.replace(secret, "***")
        error.args = (text,)
        return error

    async def aclose(self) -> None:
        await self.http.aclose()


# ── From config: [emails.coupons] ─────────────────────────────────────────────────────────────────────────

KEYS = frozenset({"source", "pool_file", "marketplace"})
_READS = {"local": set(), "pool": {"pool_file"}, "shopify": {"marketplace"}, "woocommerce": {"marketplace"}}
_API_VERSION = re.compile(r"^(\d{4}-\d{2}|unstable)$")


def coupon_source_from_settings(section: Section, secret: bytes, engine: Engine,
                                marketplaces: Mapping[str, AccountSettings]) -> CouponSource:
    """`[emails.coupons]`: source = "local" (default) | "pool" | "shopify" | "woocommerce"; pool_file (relative
    to the config file) for a pool; marketplace (a [marketplaces.<name>] account of the source's type, whose
    credentials are used; optional when there is exactly one such account) for a shop."""
    section.check_keys(KEYS)
    source = section.str("source", "local")
    if source not in SOURCES:
        raise section.error("source", f"unknown coupon source {source!r}; known: {', '.join(SOURCES)}")
    for key in sorted(KEYS - {"source"} - _READS[source]):
        if key in section.data:
            raise section.error(key, f"is not read when source = {source!r}; remove it")
    if source == "local":
        return LocalCoupons(secret)
    if source == "pool":
        return _pool(section, engine)
    account = _account(section, source, marketplaces)
    if source == "shopify":
        return _shopify(account, secret)
    return _woocommerce(account, secret)


def _pool(section: Section, engine: Engine) -> PoolCoupons:
    value = section.str("pool_file").strip()
    if not value:
        raise section.error("pool_file", "must name the file of codes, one per line")
    path = Path(value).expanduser()
    path = path if path.is_absolute() else Path(section.file).parent / path
    if not path.is_file():
        raise section.error("pool_file", f"file {path} does not exist")
    pool = PoolCoupons(path, engine)
    try:
        count = len(pool.codes())
    except CouponError as exc:
        raise section.error("pool_file", str(exc)) from None
    if count == 0:
        raise section.error("pool_file", f"file {path} holds no codes (one per line; '#' starts a comment)")
    return pool


def _account(section: Section, source: str, marketplaces: Mapping[str, AccountSettings]) -> AccountSettings:
    same = sorted(name for name, account in marketplaces.items() if account.type == source)
    if "marketplace" not in section.data:
        if len(same) == 1:
            return marketplaces[same[0]]
        found = f"there are {len(same)} ({', '.join(same)})" if same else "there is none"
        raise section.error("marketplace", f"is required: name the [marketplaces.<name>] {source} account whose "
                                           f"credentials create the codes ({found})")
    name = section.str("marketplace")
    account = marketplaces.get(name)
    if account is None:
        known = ", ".join(sorted(marketplaces)) or "none"
        raise section.error("marketplace", f"names no [marketplaces.{name}] account (known: {known})")
    if account.type != source:
        raise section.error("marketplace", f"{name!r} is a {account.type} account; source = {source!r} needs a "
                                           f"{source} account")
    return account


def _shopify(account: AccountSettings, secret: bytes) -> ShopifyCoupons:
    section = account.section
    base_url = section.credential("base_url")
    if not base_url.startswith(("https://", "http://")):
        raise section.error("base_url", "must be the shop's address, like https://my-shop.myshopify.com")
    api_version = section.str("api_version", DEFAULT_API_VERSION)
    if not _API_VERSION.match(api_version):
        raise section.error("api_version", f"must look like {DEFAULT_API_VERSION!r}, not {api_version!r}")
    return ShopifyCoupons(base_url, section.credential("access_token"), api_version, secret=secret, name=account.name)


def _woocommerce(account: AccountSettings, secret: bytes) -> WooCommerceCoupons:
    section = account.section
    base_url = section.credential("base_url")
    parts = urlsplit(base_url)
    if parts.scheme != "https" or not parts.netloc or "/wp-json" in parts.path:
        raise section.error("base_url", "must be the store's https:// address, like 'https://shop.example.com'")
    return WooCommerceCoupons(base_url, section.credential("consumer_key"), section.credential("consumer_secret"),
                              secret=secret, name=account.name,
                              query_string_auth=section.bool("query_string_auth", False))
