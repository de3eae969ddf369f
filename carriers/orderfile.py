"""Order files: CSV or JSON exports dropped into a folder, for any marketplace without an adapter.

Files are never moved or deleted: a file whose modification time is newer than the cursor is read (again),
and the sync's idempotent upserts make re-reading harmless, so a crash between reading and storing loses
nothing. A bad row is reported with its file and line, its whole order is held back (importing part of an
order would email a wrong total), and the row is copied to `rejected/<file>.rejected.csv` with the reason.

CSV layout: one row per order line; the order's columns repeat on each of its rows.

    required  order_id, created_at, currency, customer_email, title, quantity, unit_price
    optional  order_number, updated_at, customer_id, customer_name, customer_locale, marketing_consent,
              sku, product_id, line_id, image_url, product_url, order_total, status (cancelled | refunded),
              tracking_number, courier, shipped_at, tracking_url, country, city, postcode, discount_codes

Dates are ISO 8601 (`2026-03-02T09:15:00+01:00`; no offset means UTC); amounts use a dot as decimal mark;
`marketing_consent` is yes/no/true/false/1/0. JSON files hold a list of orders with the same order fields,
`lines` (title, quantity, unit_price, sku, ...) and `shipments` (tracking_number, courier, shipped_at,
tracking_url).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from carriers.base import COMMON_KEYS, AddressRecord, FeedBatch, LineRecord, OrderRecord, ShipmentRecord
from carriers.read import Malformed, aware_utc
from tracker.clock import Clock
from tracker.settings import Section

REQUIRED_ORDER = ("order_id", "created_at", "currency", "customer_email")
REQUIRED_LINE = ("title", "quantity", "unit_price")
TRUE_WORDS = {"yes", "true", "1", "y"}
FALSE_WORDS = {"no", "false", "0", "n"}


class RowError(Malformed):
    """A value in an order file that cannot be read; the message says which column and why."""


@dataclass(frozen=True)
class Row:
    """One source record with where it came from, so a problem can point at it."""

    file: Path
    line: int
    data: dict[str, Any]

    @property
    def where(self) -> str:
        return f"{self.file.name}:{self.line}"


def _text(data: dict[str, Any], key: str, required: bool = False) -> str:
    value = data.get(key)
    text = "" if value is None else str(value).strip()
    if required and not text:
        raise RowError(f"{key} is missing")
    return text


def _time(data: dict[str, Any], key: str, required: bool = False) -> datetime | None:
    text = _text(data, key, required)
    if not text:
        return None
    try:
        return aware_utc(text.replace("Z", "+00:00"), key)
    except Malformed:
        raise RowError(f"{key} {text!r} is not an ISO 8601 date and time") from None


def _money(data: dict[str, Any], key: str, required: bool = False) -> Decimal | None:
    """An amount in cents. Not read.money: a NaN or Infinity here is "must be a positive amount"."""
    text = _text(data, key, required)
    if not text:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise RowError(f"{key} {text!r} is not an amount (use a dot: 12.50)") from None
    if not value.is_finite() or value < 0:
        raise RowError(f"{key} {text!r} must be a positive amount")
    return value.quantize(Decimal("0.01"))


def _quantity(data: dict[str, Any]) -> int:
    text = _text(data, "quantity", True)
    if not text.isdigit() or int(text) < 1:
        raise RowError(f"quantity {text!r} must be a whole number of at least 1")
    return int(text)


def _consent(data: dict[str, Any]) -> bool | None:
    text = _text(data, "marketing_consent").lower()
    if not text:
        return None  # the export does not say: the [emails] consent policy decides
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    raise RowError(f"marketing_consent {text!r} must be yes or no")


def _line(data: dict[str, Any], index: int) -> LineRecord:
    for key in REQUIRED_LINE:
        _text(data, key, True)
    return LineRecord(key=_text(data, "line_id") or _text(data, "sku") or str(index), title=_text(data, "title"),
                      quantity=_quantity(data), unit_price=_money(data, "unit_price", True), sku=_text(data, "sku"),
                      product_id=_text(data, "product_id") or _text(data, "sku"), image_url=_text(data, "image_url"),
                      product_url=_text(data, "product_url"))


def _shipment(data: dict[str, Any], fallback: datetime) -> ShipmentRecord | None:
    number = _text(data, "tracking_number")
    if not number:
        return None
    return ShipmentRecord(tracking_number=number, courier_name=_text(data, "courier"),
                          shipped_at=_time(data, "shipped_at") or fallback, tracking_url=_text(data, "tracking_url"))


def build_order(head: dict[str, Any], lines: list[LineRecord], shipments: Iterable[ShipmentRecord]) -> OrderRecord:
    for key in REQUIRED_ORDER:
        _text(head, key, True)
    created = _time(head, "created_at", True)
    email = _text(head, "customer_email").lower()
    if "@" not in email:
        raise RowError(f"customer_email {email!r} is not an email address")
    status = _text(head, "status").lower()
    if status not in {"", "open", "cancelled", "canceled", "refunded"}:
        raise RowError(f"status {status!r} must be empty, cancelled or refunded")
    unique = {s.tracking_number: s for s in shipments}
    total = _money(head, "order_total")
    return OrderRecord(
        external_id=_text(head, "order_id"), number=_text(head, "order_number") or _text(head, "order_id"),
        created_at=created, updated_at=_time(head, "updated_at") or created, currency=_text(head, "currency").upper(),
        total=total if total is not None else sum((li.unit_price * li.quantity for li in lines), Decimal("0.00")),
        customer_id=_text(head, "customer_id") or email, customer_email=email,
        customer_name=_text(head, "customer_name"), customer_locale=_text(head, "customer_locale") or "en",
        marketing_consent=_consent(head), lines=tuple(lines), shipments=tuple(unique.values()),
        shipping_address=AddressRecord(name=_text(head, "customer_name"), city=_text(head, "city"),
                                       postcode=_text(head, "postcode"), country=_text(head, "country").upper()),
        cancelled=status in {"cancelled", "canceled"}, refunded=status == "refunded",
        discount_codes=tuple(c.strip() for c in _text(head, "discount_codes").split(",") if c.strip()),
    )


def csv_rows(path: Path) -> list[Row]:
    text = path.read_text(encoding="utf-8-sig")  # spreadsheet exports often start with a BOM
    reader = csv.DictReader(io.StringIO(text))
    return [Row(path, reader.line_num, {k.strip().lower(): v for k, v in row.items() if k}) for row in reader]


def csv_orders(rows: list[Row]) -> tuple[list[OrderRecord], list[tuple[Row, str]]]:
    """Group rows by order; an order with any bad row is held back whole, each bad row reported."""
    groups: dict[str, list[Row]] = {}
    for row in rows:
        groups.setdefault(_text(row.data, "order_id"), []).append(row)
    orders, bad = [], []
    for order_id, group in groups.items():
        lines, shipments, errors = [], [], []
        for index, row in enumerate(group, start=1):
            try:
                if not order_id:
                    raise RowError("order_id is missing")
                lines.append(_line(row.data, index))
                shipment = _shipment(row.data, _time(row.data, "created_at") or datetime.now(UTC))
                shipments += [shipment] if shipment else []
            except RowError as exc:
                errors.append((row, str(exc)))
        if not errors:
            try:
                orders.append(build_order(group[0].data, lines, shipments))
            except RowError as exc:
                errors.append((group[0], str(exc)))
        if errors and len(group) > len(errors):
            held = {r.line for r, _ in errors}
            errors += [(r, f"held back with order {order_id}, which has a bad row") for r in group
                       if r.line not in held]
        bad += errors
    return orders, bad


def json_orders(path: Path) -> tuple[list[OrderRecord], list[tuple[Row, str]]]:
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return [], [(Row(path, getattr(exc, "lineno", 1), {}), f"not valid JSON: {exc}")]
    if not isinstance(items, list):
        return [], [(Row(path, 1, {}), "must hold a list of orders")]
    orders, bad = [], []
    for index, item in enumerate(items, start=1):
        row = Row(path, index, item if isinstance(item, dict) else {})
        try:
            if not isinstance(item, dict):
                raise RowError("each order must be an object")
            lines = [_line(li, i) for i, li in enumerate(item.get("lines") or [], start=1)]
            if not lines:
                raise RowError("lines is missing or empty")
            created = _time(item, "created_at", True)
            shipments = [s for s in (_shipment(s, created) for s in item.get("shipments") or []) if s]
            orders.append(build_order(item, lines, shipments))
        except (RowError, AttributeError, TypeError) as exc:
            bad.append((row, str(exc)))
    return orders, bad


def write_rejected(folder: Path, source: Path, bad: list[tuple[Row, str]]) -> None:
    """The bad rows of one file beside the reason, rewritten on every read so it always shows the latest."""
    out = folder / "rejected" / f"{source.stem}.rejected.csv"
    if not bad:
        out.unlink(missing_ok=True)
        return
    out.parent.mkdir(exist_ok=True)
    columns = sorted({k for row, _ in bad for k in row.data}) + ["problem", "source"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row, problem in bad:
        writer.writerow({**{k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in row.data.items()},
                         "problem": problem, "source": row.where})
    out.write_text(buffer.getvalue(), encoding="utf-8")


class OrderFileMarketplace:
    """Reads every order file changed since the cursor; cursor = newest file modification time."""

    def __init__(self, name: str, folder: Path) -> None:
        self.name = name
        self.folder = folder

    def _files(self, since: datetime) -> list[tuple[datetime, Path]]:
        if not self.folder.is_dir():
            return []
        found = []
        for path in self.folder.iterdir():
            if path.suffix.lower() in {".csv", ".json"} and path.is_file():
                modified = datetime.fromtimestamp(path.stat().st_mtime, UTC)
                if modified > since:
                    found.append((modified, path))
        return sorted(found)

    async def changes(self, since: datetime) -> FeedBatch:
        orders: dict[str, OrderRecord] = {}
        problems: list[str] = []
        cursor = since
        for modified, path in self._files(since):
            try:
                read, bad = json_orders(path) if path.suffix.lower() == ".json" else csv_orders(csv_rows(path))
            except (OSError, UnicodeDecodeError, csv.Error) as exc:
                read, bad = [], [(Row(path, 1, {}), f"cannot be read: {exc}")]
            for order in read:
                orders[order.external_id] = order  # a later file wins for the same order
            problems += [f"{self.name}: {row.where}: {problem}" for row, problem in bad]
            write_rejected(self.folder, path, bad)
            cursor = max(cursor, modified)
        return FeedBatch(tuple(orders.values()), cursor, tuple(problems))

    async def aclose(self) -> None:
        return None


def marketplace_from_settings(name: str, section: Section, clock: Clock) -> OrderFileMarketplace:
    """`[marketplaces.<name>]` with `type = "orderfile"`: `folder`, relative to the config file."""
    section.check_keys(COMMON_KEYS | {"folder"})
    folder = Path(section.str("folder")).expanduser()
    if not folder.is_absolute():
        folder = Path(section.file).parent / folder
    if not folder.is_dir():
        raise section.error("folder", f"folder {folder} does not exist; create it and drop order files into it")
    return OrderFileMarketplace(name, folder)
