"""WooCommerce order feed: REST API v3 orders, tracking numbers from the Shipment Tracking extension's meta.

API facts relied on (samples README §7; WooCommerce source `WC_REST_CRUD_Controller`,
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
- Orders: integer ids (kept exact as str), money as strings ("29.35") read with Decimal, a line's `price` is a
  JSON number (PHP's total / quantity) read through its shortest repr and rounded to the decimals of the line
  total; `*_gmt` dates are UTC without an offset (the local ones are ignored). Line names carry HTML entities
  (`&ndash;`), which we decode.
- Tracking is no core field: the Shipment Tracking extension (and Advanced Shipment Tracking) keep a list in
  order meta `_wc_shipment_tracking_items` of `{tracking_provider (slug), custom_tracking_provider,
  custom_tracking_link, tracking_number, date_shipped (unix time, int or str), tracking_id}`; the extension's
  own REST answers use `tracking_link` and a `YYYY-MM-DD` date, which we read too.

Decisions:
- ORDER_STATUSES below says what each status means for us. Unpaid orders (pending, failed, checkout drafts)
  are left out: they must not get an order confirmation; once paid, the status change modifies the order and
  the next sync reads it. A status not in the table (plugins add shipped, partial-shipped, delivered, …, all
  after payment) is imported like processing. Trashed orders, should a plugin list them, count as cancelled.
- `cursor` is the newest `date_modified_gmt` the store listed, left-out and unreadable orders included (a
  paid or corrected order is modified again, so it comes back). If orders moved while we paged (an order read
  earlier shows up again, or `X-WP-Total` drops), an order may have slid onto a page already read: the cursor
  then stops at the end of the first page and the next sync reads the rest again.
- Guests (`customer_id` 0) are keyed by their billing email, lower-cased; an order without a billing email
  cannot be written to and is reported instead of imported. Core has no customer locale (so "en") and no
  marketing consent field (so None, "the marketplace does not say": the [emails] consent policy decides).
  The shipping address falls back to the billing one when it has no country or city.
- `date_shipped` missing → the order's `date_modified_gmt`; a bare date is midnight UTC. Several numbers in one
  item (separated by commas, semicolons or new lines) give one shipment each.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from carriers.base import (
    AddressRecord,
    AuthError,
    CarrierError,
    FeedBatch,
    LineRecord,
    OrderRecord,
    ResponseError,
    ShipmentRecord,
)
from carriers.http import TRANSIENT_STATUS, Http, Limits, RetryPolicy, make_client, parse_json

if TYPE_CHECKING:
    from tracker.clock import Clock
    from tracker.config import AccountSettings
    from tracker.settings import Section

log = logging.getLogger("trackmail.woocommerce")

ORDERS_PATH = "/wp-json/wc/v3/orders"
DEFAULT_LIMITS = Limits(concurrency=1, per_second=2.0)
DEFAULT_RETRY = RetryPolicy()
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 100  # WooCommerce's per_page maximum
MAX_PAGES = 1000  # 100,000 orders in one read; the rest waits for the next sync (the cursor allows it)
DEFAULT_TRACKING_META_KEY = "_wc_shipment_tracking_items"
KEYS = frozenset({"consumer_key", "consumer_secret", "base_url", "page_size", "tracking_meta_key",
                  "query_string_auth", "concurrency", "per_second", "per_day"})
# 4xx answers we read ourselves to name WooCommerce's error code; 408/425/429 stay with http.Http's retries.
REFUSALS = frozenset(range(400, 500)) - TRANSIENT_STATUS


class Handling(StrEnum):
    IMPORT = "import"
    SKIP = "skip"
    CANCELLED = "cancelled"
    REFUNDED = "refunded"


# ── WooCommerce's order statuses (docs "Order properties": status), and what trackmail does with each ─────

ORDER_STATUSES: dict[str, Handling] = {
    "pending": Handling.SKIP,  # Pending payment: placed, not paid (no confirmation for an unpaid order)
    "failed": Handling.SKIP,  # Failed: payment failed or was declined
    "checkout-draft": Handling.SKIP,  # Draft: block checkout in progress, not placed yet
    "on-hold": Handling.IMPORT,  # On hold: awaiting a manual payment (bank transfer, cheque); placed
    "processing": Handling.IMPORT,  # Processing: paid, awaiting fulfilment
    "completed": Handling.IMPORT,  # Completed: fulfilled
    "cancelled": Handling.CANCELLED,  # Cancelled by the shop or the customer
    "refunded": Handling.REFUNDED,  # Refunded: fully (WooCommerce sets it when refunds reach the total)
    "trash": Handling.CANCELLED,  # in the bin: `status=any` leaves these out, a plugin might not
}
UNLISTED_STATUS = Handling.IMPORT  # plugins' statuses (shipped, partial-shipped, delivered, …) come after payment


# ── Pure parsing ─────────────────────────────────────────────────────────────────────────────────────────


class Unreadable(ValueError):
    """A value in an order that cannot be read; the message names the field."""


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return ""


def _id(value: Any, what: str) -> str:
    """An integer id, exact however big (JSON ints are exact in Python; never through float)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    if isinstance(value, str) and value.strip().isdigit():
        return value.strip()
    raise Unreadable(f"{what} is missing" if value in (None, "") else f"{what} {value!r} is not an id")


def _utc(value: Any, what: str) -> datetime:
    if not isinstance(value, str) or not value.strip():
        raise Unreadable(f"{what} is missing")
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise Unreadable(f"{what} {value!r} is not an ISO 8601 time") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _money(value: Any, what: str) -> Decimal:
    if value is None or value == "":
        raise Unreadable(f"{what} is missing")
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise Unreadable(f"{what} {value!r} is not an amount")
    text = repr(value) if isinstance(value, float) else str(value).strip()  # repr: the digits the JSON had
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise Unreadable(f"{what} {value!r} is not an amount") from None
    if not amount.is_finite():
        raise Unreadable(f"{what} {value!r} is not an amount")
    return amount


def _object(value: Any, what: str) -> Mapping[str, Any]:
    if value is None or value == []:  # PHP writes an empty array as []
        return {}
    if not isinstance(value, Mapping):
        raise Unreadable(f"{what} is not an object")
    return value


def _name(part: Mapping[str, Any]) -> str:
    return " ".join(p for p in (_text(part.get("first_name")), _text(part.get("last_name"))) if p)


def updated_at(raw: Mapping[str, Any]) -> datetime:
    """When the order last changed, UTC: `date_modified_gmt`, or its creation if it never changed."""
    if raw.get("date_modified_gmt") in (None, ""):
        return _utc(raw.get("date_created_gmt"), "date_created_gmt")
    return _utc(raw.get("date_modified_gmt"), "date_modified_gmt")


def _shipped_at(value: Any, fallback: datetime) -> tuple[datetime, str]:
    """`date_shipped` as a UTC time, and a note when it could not be read and `fallback` was used."""
    text = _text(value)
    if text in ("", "0"):
        return fallback, ""
    try:
        if text.isdigit():
            return datetime.fromtimestamp(int(text), UTC), ""
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC), ""
        return _utc(text, "date_shipped"), ""
    except (ValueError, OverflowError, OSError):
        return fallback, f"date_shipped {value!r} is unreadable; the order's last change time was used"


_SEPARATORS = re.compile(r"[,;\r\n]+")


def parse_tracking_item(item: Any, fallback_at: datetime) -> tuple[tuple[ShipmentRecord, ...], str]:
    """One Shipment Tracking item → one ShipmentRecord per tracking number in it, and a note ("" if none)
    about a value that was replaced. Raises Unreadable when the item has no tracking number."""
    if not isinstance(item, Mapping):
        raise Unreadable(f"a tracking item is {type(item).__name__}, not an object")
    numbers = [n.strip() for n in _SEPARATORS.split(_text(item.get("tracking_number"))) if n.strip()]
    if not numbers:
        raise Unreadable("a tracking item has no tracking_number")
    courier = _text(item.get("tracking_provider")) or _text(item.get("custom_tracking_provider"))
    url = _text(item.get("custom_tracking_link")) or _text(item.get("tracking_link"))
    shipped_at, note = _shipped_at(item.get("date_shipped"), fallback_at)
    return tuple(ShipmentRecord(number, courier, shipped_at, url if len(numbers) == 1 or number in url else "")
                 for number in numbers), note


def _tracking_items(value: Any, key: str) -> list[Any]:
    if isinstance(value, list):
        return value
    if isinstance(value, Mapping) and value and all(str(k).isdigit() for k in value):
        return [value[k] for k in sorted(value, key=int)]  # a PHP array with gaps arrives as {"0": …, "2": …}
    raise Unreadable(f"meta {key} is {type(value).__name__}, not a list of tracking items")


def parse_shipments(meta_data: Any, key: str, fallback_at: datetime) -> tuple[tuple[ShipmentRecord, ...],
                                                                              tuple[str, ...]]:
    """The shipments in an order's `meta_data`, and what could not be read (each left out, the rest kept)."""
    if meta_data is None:
        return (), ()
    if not isinstance(meta_data, list):
        return (), ("meta_data is not a list; no shipments were read",)
    shipments: dict[str, ShipmentRecord] = {}  # one per tracking number, first mention wins
    problems: list[str] = []
    for entry in meta_data:
        if not isinstance(entry, Mapping) or entry.get("key") != key:
            continue
        try:
            items = _tracking_items(entry.get("value"), key)
        except Unreadable as exc:
            problems.append(f"{exc}; its shipments were left out")
            continue
        for index, item in enumerate(items, 1):
            try:
                records, note = parse_tracking_item(item, fallback_at)
            except Unreadable as exc:
                problems.append(f"{key} item {index}: {exc}; that shipment was left out")
                continue
            if note:
                problems.append(f"{key} item {index}: {note}")
            for record in records:
                shipments.setdefault(record.tracking_number, record)
    return tuple(shipments.values()), tuple(problems)


def _quantity(value: Any, where: str) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise Unreadable(f"{where} quantity {value!r} is not a whole number")
    return value


def _unit_price(item: Mapping[str, Any], quantity: int, where: str) -> Decimal:
    """`price` (or total / quantity), to the decimals of the line total when it has one."""
    total = None if item.get("total") in (None, "") else _money(item.get("total"), f"{where} total")
    if item.get("price") not in (None, ""):
        value = _money(item.get("price"), f"{where} price")
    elif total is not None and quantity:
        value = total / quantity
    else:
        raise Unreadable(f"{where} has no price")
    if total is None:
        return value
    try:
        return value.quantize(Decimal(1).scaleb(total.as_tuple().exponent), ROUND_HALF_UP)
    except InvalidOperation:
        raise Unreadable(f"{where} price {item.get('price')!r} is not an amount") from None


def _lines(value: Any) -> tuple[LineRecord, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise Unreadable("line_items is not a list")
    lines = []
    for index, item in enumerate(value, 1):
        where = f"line item {index}"
        if not isinstance(item, Mapping):
            raise Unreadable(f"{where} is not an object")
        quantity = _quantity(item.get("quantity"), where)
        image = item.get("image")
        product_id = _text(item.get("product_id"))
        lines.append(LineRecord(
            key=_id(item.get("id"), f"{where} id"), title=html.unescape(_text(item.get("name"))),
            quantity=quantity, unit_price=_unit_price(item, quantity, where), sku=_text(item.get("sku")),
            product_id="" if product_id == "0" else product_id,  # 0: the product was deleted
            image_url=_text(image.get("src")) if isinstance(image, Mapping) else ""))
    return tuple(lines)


def _address(shipping: Mapping[str, Any], billing: Mapping[str, Any]) -> AddressRecord:
    place = shipping if _text(shipping.get("country")) or _text(shipping.get("city")) else billing
    return AddressRecord(name=_name(place) or _name(billing), city=_text(place.get("city")),
                         postcode=_text(place.get("postcode")), country=_text(place.get("country")).upper())


def _coupons(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(code for line in value if isinstance(line, Mapping) and (code := _text(line.get("code"))))


def _customer_id(value: Any, email: str) -> str:
    if value in (None, 0, "0", ""):
        return email.lower()  # a guest: the billing email is all that ties their orders together
    return _id(value, "customer_id")


def parse_order(raw: Mapping[str, Any], tracking_meta_key: str = DEFAULT_TRACKING_META_KEY,
                ) -> tuple[OrderRecord, tuple[str, ...]]:
    """One order of the list (leaving out unpaid ones is `parse_page`'s job). Raises Unreadable when it cannot
    be imported; the notes returned concern its tracking items only (the order is imported without those)."""
    external_id = _id(raw.get("id"), "id")
    changed = updated_at(raw)
    billing = _object(raw.get("billing"), "billing")
    email = _text(billing.get("email"))
    if "@" not in email:
        raise Unreadable(f"billing email {email!r} is not an address" if email else "billing email is missing")
    currency = _text(raw.get("currency")).upper()
    if not currency:
        raise Unreadable("currency is missing")
    handling = ORDER_STATUSES.get(_text(raw.get("status")), UNLISTED_STATUS)
    shipments, notes = parse_shipments(raw.get("meta_data"), tracking_meta_key, changed)
    shipping = _object(raw.get("shipping"), "shipping")
    record = OrderRecord(
        external_id=external_id, number=_text(raw.get("number")) or external_id,
        created_at=_utc(raw.get("date_created_gmt"), "date_created_gmt"), updated_at=changed,
        currency=currency, total=_money(raw.get("total"), "total"),
        customer_id=_customer_id(raw.get("customer_id"), email), customer_email=email,
        customer_name=_name(billing) or _name(shipping), lines=_lines(raw.get("line_items")),
        shipments=shipments, shipping_address=_address(shipping, billing),
        cancelled=handling is Handling.CANCELLED, refunded=handling is Handling.REFUNDED,
        discount_codes=_coupons(raw.get("coupon_lines")))
    return record, notes


def _label(raw: Mapping[str, Any]) -> str:
    """How a problem line names an order: its number and id, as far as they can be read."""
    number, oid = _text(raw.get("number")), _text(raw.get("id"))
    if number and oid:
        return f"order #{number} (id {oid})"
    return f"order #{number}" if number else f"order id {oid}" if oid else "an order with no id"


@dataclass(frozen=True, slots=True)
class Page:
    """One page of the list, read."""

    orders: tuple[OrderRecord, ...]
    problems: tuple[str, ...]
    ids: tuple[str, ...]  # every readable order id listed, in order, imported or not
    newest: datetime | None  # newest last change listed, left-out and unreadable orders included
    skipped: int = 0  # unpaid orders left out on purpose
    stale: int = 0  # orders changed at or before `since`: the store did not filter


def parse_page(payload: list[Any], source: str, tracking_meta_key: str = DEFAULT_TRACKING_META_KEY,
               since: datetime | None = None) -> Page:
    """A page of `GET /orders`. An order that cannot be read becomes a problem line; the others are kept."""
    orders, problems, ids, times = [], [], [], []
    skipped = stale = 0
    for index, raw in enumerate(payload, 1):
        if not isinstance(raw, Mapping):
            problems.append(f"{source}: entry {index} of the page is {type(raw).__name__}, not an order; skipped")
            continue
        label = _label(raw)
        if isinstance(raw.get("id"), int | str) and _text(raw.get("id")).isdigit():
            ids.append(_text(raw.get("id")))
        try:
            changed = updated_at(raw)
            times.append(changed)
            if since is not None and changed <= since:
                stale += 1
                continue
            if ORDER_STATUSES.get(_text(raw.get("status")), UNLISTED_STATUS) is Handling.SKIP:
                skipped += 1
                continue
            record, notes = parse_order(raw, tracking_meta_key)
        except Unreadable as exc:
            problems.append(f"{source}: {label}: {exc}; the order was not imported")
            continue
        orders.append(record)
        problems += [f"{source}: {label}: {note}; the order was imported without it" for note in notes]
    return Page(tuple(orders), tuple(problems), tuple(ids), max(times, default=None), skipped, stale)


def _error_code(response: httpx.Response) -> tuple[str, str]:
    """WooCommerce's `code` and `message` from an error answer, or ("", "") if it is not one."""
    try:
        payload = response.json()
    except (ValueError, UnicodeDecodeError):
        return "", ""
    if isinstance(payload, Mapping) and isinstance(payload.get("code"), str):
        return payload["code"], _text(payload.get("message"))
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
                where = urlsplit(response.headers.get("Location", ""))
                raise ResponseError(f"redirected to {where.scheme}://{where.netloc}{where.path}: set base_url to the "
                                    "store's final https address", source=self.name, status_code=response.status_code)
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


def marketplace_from_settings(account: AccountSettings, clock: Clock) -> WooCommerceMarketplace:
    """`[marketplaces.<name>]` with `type = "woocommerce"`: base_url, consumer_key, consumer_secret (required),
    page_size, tracking_meta_key, query_string_auth, and limit overrides concurrency / per_second / per_day."""
    from carriers import COMMON_KEYS  # the registry imports this module first

    section = account.section
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
        account.name,
        consumer_key=_required(section, "consumer_key", "the ck_… key from WooCommerce › Settings › Advanced › "
                                                        "REST API"),
        consumer_secret=_required(section, "consumer_secret", "the cs_… secret shown with the key"),
        base_url=base_url,
        page_size=page_size,
        tracking_meta_key=meta_key,
        query_string_auth=section.bool("query_string_auth", False),
        limits=Limits.from_section(section, DEFAULT_LIMITS),
    )
