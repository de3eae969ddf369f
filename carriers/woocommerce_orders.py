"""WooCommerce orders as REST API v3 lists them, read into OrderRecords (carriers/woocommerce.py asks).

API facts relied on (samples README §7; woocommerce.github.io/woocommerce-rest-api-docs "Order properties"):

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
- Guests (`customer_id` 0) are keyed by their billing email, lower-cased; an order without a billing email
  cannot be written to and is reported instead of imported. Core has no customer locale (so "en") and no
  marketing consent field (so None, "the marketplace does not say": the [emails] consent policy decides).
  The shipping address falls back to the billing one when it has no country or city.
- `date_shipped` missing → the order's `date_modified_gmt`; a bare date is midnight UTC. Several numbers in one
  item (separated by commas, semicolons or new lines) give one shipment each.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

import carriers.read as read
from carriers.base import AddressRecord, LineRecord, OrderRecord, ShipmentRecord

DEFAULT_TRACKING_META_KEY = "_wc_shipment_tracking_items"


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


class Unreadable(read.Malformed):
    """A value in an order that cannot be read; the message names the field."""


def _text(value: Any) -> str:
    return read.text(value, strict=False, numbers=(int, float))


def _id(value: Any, what: str) -> str:
    """An integer id, exact however big (JSON ints are exact in Python; never through float)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    if isinstance(value, str) and value.strip().isdigit():
        return value.strip()
    raise Unreadable(f"{what} is missing" if value in (None, "") else f"{what} {value!r} is not an id")


def _utc(value: Any, what: str) -> datetime:
    if not isinstance(value, str):
        raise Unreadable(f"{what} is missing")
    return read.aware_utc(value, what)


_money = read.money


def _object(value: Any, what: str) -> Mapping[str, Any]:
    return read.obj(value, what, optional=True)  # PHP writes an empty array as []


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
        except read.Malformed as exc:
            problems.append(f"{exc}; its shipments were left out")
            continue
        for index, item in enumerate(items, 1):
            try:
                records, note = parse_tracking_item(item, fallback_at)
            except read.Malformed as exc:
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
        except read.Malformed as exc:
            problems.append(f"{source}: {label}: {exc}; the order was not imported")
            continue
        orders.append(record)
        problems += [f"{source}: {label}: {note}; the order was imported without it" for note in notes]
    return Page(tuple(orders), tuple(problems), tuple(ids), max(times, default=None), skipped, stale)
