"""WooCommerce, through its REST API v3: the order feed (read in carriers/woocommerce_orders.py) and the
store's own coupons for resell emails.

API facts relied on (samples README §7 and §10; WooCommerce source `WC_REST_CRUD_Controller`,
`WC_REST_Orders_V2_Controller`, `OrdersTableQuery`; woocommerce.github.io/woocommerce-rest-api-docs):

- `GET {base_url}/wp-json/wc/v3/orders?modified_after=<UTC>&dates_are_gmt=true&orderby=modified&order=asc
  &per_page=<page_size>&page=N&status=any`. `modified_after` (strictly after) and `orderby=modified` need
  **WooCommerce 5.8 or newer** (woocommerce#30585). An older store refuses `orderby=modified` with 400
  `rest_invalid_param`, reported as such. `status=any` leaves out trashed orders.
- The time goes out as `YYYY-MM-DDTHH:MM:SS` in UTC, whole seconds (floored: a little overlap, never a gap)
  and with NO offset: with `dates_are_gmt=true` WordPress compares such a value verbatim with the GMT column,
  but converts a value carrying `Z` or an offset into the site's time zone first (WP_Date_Query), which would
  shift the window by the site's UTC offset. Same on posts and on HPOS order tables.
- Auth (HTTPS only): REST API keys `ck_…`/`cs_…` as HTTP Basic, or with `query_string_auth` as
  `consumer_key`/`consumer_secret` query parameters for hosts that drop the Authorization header. Those are
  added by a transport below the client, so no URL httpx logs and no error we raise carries them; excerpts in
  errors are scrubbed of both keys as well.
- Pages: `per_page` ≤ 100, `page` from 1, headers `X-WP-Total` / `X-WP-TotalPages`. We stop at the last page,
  on an empty page, on a short page when the header is missing, and on a page identical to the one before (a
  cache or proxy that ignores `page`), reported as a problem. Orders listed with a last change at or before
  `since` mean the store did not filter: they are dropped and reported.
- Limits: WooCommerce core has none for this API (the host's WAF may); 429/5xx and Retry-After are handled by
  http.Http. So DEFAULT_LIMITS is gentle: one request in flight, two per second.
- Errors: `{"code", "message", "data": {"status"}}`; 401/403 → AuthError, other 4xx → ResponseError, both
  carrying the code and a hint (e.g. `woocommerce_rest_cannot_view` on 401 usually means the host dropped the
  Authorization header).
- `cursor` is the newest `date_modified_gmt` the store listed, left-out and unreadable orders included (a
  paid or corrected order is modified again, so it comes back). If orders moved while we paged (an order read
  earlier shows up again, or `X-WP-Total` drops), an order may have slid onto a page already read: the cursor
  then stops at the end of the first page and the next sync reads the rest again.
- Coupons: `POST /wp-json/wc/v3/coupons` with `discount_type` percent | fixed_cart, `amount` a string,
  `usage_limit: 1`, `usage_limit_per_user: 1`, `individual_use: true`, `date_expires_gmt` (UTC, no offset, as
  the order feed sends times), `email_restrictions: [customer_email]`; the key needs Read/Write permission.
  WooCommerce stores codes lower-cased and compares them case-insensitively, so the upper-case code in the
  email works. 400 `woocommerce_rest_coupon_code_already_exists` is our earlier attempt: success.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

import carriers.read as read
from carriers.base import (
    COMMON_KEYS,
    AuthError,
    CarrierError,
    CouponSpec,
    FeedBatch,
    IssuedCode,
    OrderRecord,
    ResponseError,
)
from carriers.http import TRANSIENT_STATUS, Http, Limits, RetryPolicy, make_client, parse_json
from carriers.woocommerce_orders import DEFAULT_TRACKING_META_KEY, Page, parse_page
from tracker.clock import Clock
from tracker.settings import Section

log = logging.getLogger("trackmail.woocommerce")

ORDERS_PATH = "/wp-json/wc/v3/orders"
COUPONS_PATH = "/wp-json/wc/v3/coupons"
COUPON_EXISTS = "woocommerce_rest_coupon_code_already_exists"
DEFAULT_LIMITS = Limits(concurrency=1, per_second=2.0)
DEFAULT_RETRY = RetryPolicy()
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 100  # WooCommerce's per_page maximum
MAX_PAGES = 1000  # 100,000 orders in one read; the rest waits for the next sync (the cursor allows it)
KEYS = frozenset({"consumer_key", "consumer_secret", "base_url", "page_size", "tracking_meta_key",
                  "query_string_auth", "concurrency", "per_second", "per_day"})
# 4xx answers we read ourselves to name WooCommerce's error code; 408/425/429 stay with http.Http's retries.
REFUSALS = frozenset(range(400, 500)) - TRANSIENT_STATUS


def _error_code(response: httpx.Response) -> tuple[str, str]:
    """WooCommerce's `code` and `message` from an error answer, or ("", "") if it is not one."""
    try:
        payload = response.json()
    except (ValueError, UnicodeDecodeError):
        return "", ""
    if isinstance(payload, Mapping) and isinstance(payload.get("code"), str):
        return payload["code"], read.text(payload.get("message"), strict=False)
    return "", ""


def refusal(response: httpx.Response, source: str, *, query_string_auth: bool = False) -> CarrierError:
    """The error for a 4xx answer: AuthError for 401/403, else ResponseError; both name WooCommerce's code."""
    code, message = _error_code(response)
    status = response.status_code
    if code:
        detail = f"{code}: {message}" if message else code
    elif status in (401, 403):
        detail = "not a WooCommerce answer: a firewall, security plugin or the host refused the request"
    else:
        detail = "not a WooCommerce answer"
    hint = ""
    if code in ("", "rest_no_route") and status == 404:
        hint = "no WooCommerce REST API v3 at base_url: check the store address and that WooCommerce is active"
    elif code == "woocommerce_rest_cannot_view" and status == 401:
        hint = ("the keys were not seen: if they are right, the host drops the Authorization header; set "
                "query_string_auth = true" if not query_string_auth else "check consumer_key and consumer_secret")
    elif code == "woocommerce_rest_cannot_view":
        hint = "the key's user may not read orders: give the key Read access for a shop manager or administrator"
    elif code == "woocommerce_rest_authentication_error":
        hint = "the consumer key or secret is wrong or was revoked"
    elif code == "rest_invalid_param":
        hint = "WooCommerce 5.8 or newer is needed (modified_after, orderby=modified)"
    text = f"{detail}; {hint}" if hint else detail
    kind = AuthError if status in (401, 403) else ResponseError
    return kind(f"orders request refused ({text})", source=source, status_code=status, body=response.text)


def _redirected(response: httpx.Response) -> str:
    """A redirect is never followed: a POST would come back as a GET, the keys sent on to another host."""
    where = urlsplit(response.headers.get("Location", ""))
    return f"redirected to {where.scheme}://{where.netloc}{where.path}: set base_url to the store's final https address"


def coupon_body(spec: CouponSpec) -> dict[str, Any]:
    """The body of `POST /wp-json/wc/v3/coupons` for one single-use code locked to the customer's address."""
    return {
        "code": spec.code,
        "discount_type": "percent" if spec.percent else "fixed_cart",
        "amount": f"{spec.value:f}",
        "individual_use": True,
        "usage_limit": 1,
        "usage_limit_per_user": 1,
        "date_expires_gmt": spec.expires_at.astimezone(UTC).replace(microsecond=0, tzinfo=None).isoformat(),
        "email_restrictions": [spec.customer_email.strip().lower()],
        "description": f"trackmail {spec.reference}",
    }


# ── The adapter ──────────────────────────────────────────────────────────────────────────────────────────


class _QueryKeys(httpx.AsyncBaseTransport):
    """Adds the REST keys as query parameters to a copy of each request, below the client: httpx logs (and
    responses point back to) the client's request, which never carries them."""

    def __init__(self, inner: httpx.AsyncBaseTransport, keys: Mapping[str, str]) -> None:
        self._inner = inner
        self._keys = dict(keys)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        signed = httpx.Request(request.method, request.url.copy_merge_params(self._keys), headers=request.headers,
                               stream=request.stream, extensions=request.extensions)
        return await self._inner.handle_async_request(signed)

    async def aclose(self) -> None:
        await self._inner.aclose()


@dataclass
class _Reading:
    """What the pages of one `changes` call add up to."""

    since: datetime
    orders: dict[str, OrderRecord] = field(default_factory=dict)  # by id: a later listing replaces an earlier
    problems: list[str] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    last_ids: tuple[str, ...] = ()
    newest: datetime | None = None
    first_page_newest: datetime | None = None
    moved: bool = False  # orders slid between pages while we read them
    total: int | None = None
    stale: int = 0

    def add(self, page: Page, number: int, total: int | None) -> bool:
        """Take a page in; False if it only repeats the page before (the server ignores `page`)."""
        if number > 1 and page.ids and page.ids == self.last_ids:
            return False
        if self.seen.intersection(page.ids) or (None not in (total, self.total) and total < self.total):
            self.moved = True
        self.seen.update(page.ids)
        self.last_ids, self.total = page.ids, total
        self.orders.update((o.external_id, o) for o in page.orders)
        self.problems += page.problems
        self.stale += page.stale
        if page.newest is not None:
            self.newest = max(self.newest or page.newest, page.newest)
        if number == 1:
            self.first_page_newest = page.newest
        return True

    def cursor(self) -> datetime:
        newest = self.newest
        if newest is not None and self.moved and self.first_page_newest is not None:
            newest = min(newest, self.first_page_newest)
        return self.since if newest is None else max(self.since, newest)


def _header_int(response: httpx.Response, name: str) -> int | None:
    value = response.headers.get(name, "").strip()
    return int(value) if value.isdigit() else None


def _aware_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"since must be an aware datetime, got {moment!r}")
    return moment.astimezone(UTC)


def store_http(name: str, base_url: str, consumer_key: str, consumer_secret: str, query_string_auth: bool,
               transport: httpx.AsyncBaseTransport | None, limits: Limits,
               retry: RetryPolicy) -> tuple[Http, httpx.Auth | None]:
    """The way to a store with its REST keys: HTTP Basic, or query parameters for hosts that drop the
    Authorization header (added below the client, so no log line or error message ever shows them)."""
    if query_string_auth:
        keys = {"consumer_key": consumer_key, "consumer_secret": consumer_secret}
        transport = _QueryKeys(transport or httpx.AsyncHTTPTransport(), keys)
        auth = None
    else:
        auth = httpx.BasicAuth(consumer_key, consumer_secret)
    return Http(name, make_client(base_url.rstrip("/"), transport=transport), limits, retry), auth


class WooCommerceMarketplace:
    """A WooCommerce store's order feed (REST API v3, WooCommerce 5.8+)."""

    def __init__(self, name: str = "woocommerce", *, consumer_key: str, consumer_secret: str, base_url: str,
                 page_size: int = DEFAULT_PAGE_SIZE, tracking_meta_key: str = DEFAULT_TRACKING_META_KEY,
                 query_string_auth: bool = False, limits: Limits = DEFAULT_LIMITS, retry: RetryPolicy = DEFAULT_RETRY,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        if not consumer_key or not consumer_secret:
            raise ValueError("consumer_key and consumer_secret must not be empty")
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be 1 to {MAX_PAGE_SIZE}, not {page_size}")
        self.name = name
        self.page_size = page_size
        self.tracking_meta_key = tracking_meta_key
        self.query_string_auth = query_string_auth
        self._secrets = (consumer_secret, consumer_key)
        self.http, self._auth = store_http(name, base_url, consumer_key, consumer_secret, query_string_auth,
                                           transport, limits, retry)

    async def changes(self, since: datetime) -> FeedBatch:
        since = _aware_utc(since)
        params = {"modified_after": since.strftime("%Y-%m-%dT%H:%M:%S"), "dates_are_gmt": "true",
                  "orderby": "modified", "order": "asc", "per_page": str(self.page_size), "status": "any"}
        reading = _Reading(since)
        for number in range(1, MAX_PAGES + 1):
            response = await self._get({**params, "page": str(number)})
            payload = self._list(response)
            page = parse_page(payload, self.name, self.tracking_meta_key, since)
            if not reading.add(page, number, _header_int(response, "X-WP-Total")):
                reading.problems.append(f"{self.name}: page {number} repeated page {number - 1}: the store (or a "
                                        "cache in front of it) ignores `page`; the rest waits for the next sync")
                break
            pages = _header_int(response, "X-WP-TotalPages")
            if not payload or (number >= pages if pages is not None else len(payload) < self.page_size):
                break
        else:
            reading.problems.append(f"{self.name}: stopped after {MAX_PAGES} pages; the rest waits for the next sync")
        if reading.stale:
            reading.problems.append(f"{self.name}: {reading.stale} orders last changed before {since.isoformat()} "
                                    "came back and were ignored: the store does not filter by modified_after "
                                    "(WooCommerce older than 5.8, or a plugin rewriting the query)")
        if reading.moved:
            log.info("%s: orders changed while being paged; the next sync reads from the first page's end", self.name)
        return FeedBatch(tuple(reading.orders.values()), reading.cursor(), tuple(reading.problems))

    async def _get(self, params: Mapping[str, str]) -> httpx.Response:
        try:
            response = await self.http.request("GET", ORDERS_PATH, params=params, auth=self._auth, ok=REFUSALS)
            if response.is_redirect:
                raise ResponseError(_redirected(response), source=self.name, status_code=response.status_code)
            if response.status_code >= 400:
                raise refusal(response, self.name, query_string_auth=self.query_string_auth)
            return response
        except CarrierError as exc:
            raise self._scrubbed(exc) from None

    def _list(self, response: httpx.Response) -> list[Any]:
        try:
            payload = parse_json(response, self.name)
        except CarrierError as exc:
            raise self._scrubbed(exc) from None
        if not isinstance(payload, list):
            error = ResponseError(f"expected a JSON list of orders, got {type(payload).__name__}", source=self.name,
                                  status_code=response.status_code, body=response.text)
            raise self._scrubbed(error)
        return payload

    async def create_code(self, spec: CouponSpec) -> IssuedCode:
        """A single-use coupon locked to the customer's address; the code existing already is success."""
        try:
            response = await self.http.request("POST", COUPONS_PATH, json=coupon_body(spec), auth=self._auth,
                                               ok=REFUSALS)
            self._check_created(response, spec.code)
        except CarrierError as exc:
            raise self._scrubbed(exc) from None
        return IssuedCode(spec.code, spec.expires_at)

    def _check_created(self, response: httpx.Response, code: str) -> None:
        kwargs: dict[str, Any] = {"source": self.name, "status_code": response.status_code, "body": response.text}
        if response.is_redirect:
            raise ResponseError(_redirected(response), **kwargs)
        if response.status_code >= 400:
            error, message = _error_code(response)
            if response.status_code == 400 and error == COUPON_EXISTS:
                return  # our earlier attempt created it
            detail = f"{error}: {message}" if error else "not a WooCommerce answer"
            if response.status_code in (401, 403):
                raise AuthError(f"coupon creation refused ({detail}); the REST key needs Read/Write permission",
                                **kwargs)
            raise ResponseError(f"coupon creation refused ({detail})", **kwargs)
        created = parse_json(response, self.name)
        if not isinstance(created, Mapping) or str(created.get("code", "")).casefold() != code.casefold():
            raise ResponseError(f"the answer does not show the coupon {code}", **kwargs)

    def _scrubbed(self, error: CarrierError) -> CarrierError:
        """The same error with the keys blanked out, should a page have echoed the request URL."""
        if not any(secret in str(error) for secret in self._secrets):
            return error
        clean = type(error).__new__(type(error))
        clean.__dict__.update(error.__dict__)
        clean.excerpt, message = error.excerpt, str(error)
        for secret in self._secrets:
            clean.excerpt, message = clean.excerpt.replace(secret, "***"), message.replace(secret, "***")
        clean.args = (message,)
        return clean

    async def aclose(self) -> None:
        await self.http.aclose()


# ── Registry factory (carriers/__init__.py) ──────────────────────────────────────────────────────────────


def _required(section: Section, key: str, what: str) -> str:
    value = section.str(key).strip()
    if not value:
        raise section.error(key, f"must not be empty: {what}")
    return value


def marketplace_from_settings(name: str, section: Section, clock: Clock) -> WooCommerceMarketplace:
    """`[marketplaces.<name>]` with `type = "woocommerce"`: base_url, consumer_key, consumer_secret (required),
    page_size, tracking_meta_key, query_string_auth, and limit overrides concurrency / per_second / per_day."""
    section.check_keys(COMMON_KEYS | KEYS)
    base_url = section.str("base_url").strip()
    parts = urlsplit(base_url)
    if parts.scheme != "https" or not parts.netloc or parts.query or parts.fragment:
        raise section.error("base_url", "must be the store's https:// address, like 'https://shop.example.com' "
                                        "(WooCommerce accepts API keys over HTTPS only)")
    if "/wp-json" in parts.path:
        raise section.error("base_url", "is the store's address, without /wp-json/…")
    page_size = section.int("page_size", DEFAULT_PAGE_SIZE, minimum=1)
    if page_size > MAX_PAGE_SIZE:
        raise section.error("page_size", f"must be at most {MAX_PAGE_SIZE} (WooCommerce's per_page maximum)")
    meta_key = section.str("tracking_meta_key", DEFAULT_TRACKING_META_KEY).strip()
    if not meta_key:
        raise section.error("tracking_meta_key", "must not be empty; leave the key out for the default")
    return WooCommerceMarketplace(
        name,
        consumer_key=_required(section, "consumer_key", "the ck_… key from WooCommerce › Settings › Advanced › "
                                                        "REST API"),
        consumer_secret=_required(section, "consumer_secret", "the cs_… secret shown with the key"),
        base_url=base_url,
        page_size=page_size,
        tracking_meta_key=meta_key,
        query_string_auth=section.bool("query_string_auth", False),
        limits=Limits.from_section(section, DEFAULT_LIMITS),
    )
