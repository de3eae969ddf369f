"""A simulated shop and courier, so a new user sees trackmail work end to end with no accounts.

Everything is a pure function of (seed, the clock's value, the arguments): no state is kept between calls
(save the call counter of the optional simulated quota, `per_day`), so the daemon can compress time,
`simulate` can jump a virtual clock, and two processes agree on every order and scan. Orders are generated
per UTC day from `random.Random(f"{seed}:{day_ordinal}")`, which makes one big `changes()` window return
exactly what many small windows return together. The courier shares nothing with the shop: a tracking number
carries its label time, destination city and country, and the journey is replayed from
`random.Random(f"{seed}:{number}")`.

Tracking numbers look like ``SB2901369252465DE``: ``SB``, the label time in minutes since the Unix epoch
(8 digits), the destination city's index (1 digit), a parcel serial (3 digits), a mod-11 check digit in the
style of UPU S10 numbers, and the destination country (ISO 3166-1 alpha-2).
"""

from __future__ import annotations

import functools
import math
import random
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from carriers.base import (
    AddressRecord,
    CarrierEvent,
    FeedBatch,
    LineRecord,
    OrderRecord,
    ShipmentRecord,
    TrackingResult,
    TransientError,
)
from carriers.http import Limits
from tracker.clock import Clock
from tracker.status import ShipmentStatus

if TYPE_CHECKING:
    from tracker.config import AccountSettings

COURIER_NAME = "sandbox"  # the courier account the shop's shipments name
SHOP_OPENED = date(2020, 1, 1)  # no orders before this day, so order numbers stay small and positive
FIRST_ORDER_NUMBER = 1001
SHOP_URL = "https://shop.example.com/"
EMAIL_DOMAINS = ("example.com", "example.org", "example.net")  # reserved (RFC 2606): mail never leaves
MAX_SHIP_DELAY = timedelta(hours=30)  # how long after its creation an order can still change


@dataclass(frozen=True, slots=True)
class SandboxSettings:
    seed: int = 7
    orders_per_day: float = 12.0
    currencies: tuple[str, ...] = ("EUR", "USD", "GBP")
    tracking_base_url: str = "https://track.example.com/sandbox/"
    batch_size: int = 50  # numbers per call; 1 plays a courier like DHL or USPS that takes one at a time
    per_day: int | None = None  # a simulated daily quota: over it, calls are refused with 429 until midnight

    def __post_init__(self) -> None:
        # Config may hand us a list; the settings key the generation caches, so they must be hashable.
        object.__setattr__(self, "currencies", tuple(self.currencies))
        if self.orders_per_day < 0:
            raise ValueError(f"orders_per_day must be >= 0, not {self.orders_per_day}")
        if not self.currencies:
            raise ValueError("currencies must name at least one currency")


# ── The courier's own code table, as a reviewer would diff it against a courier's documentation ──────────

STATUS_CODES: dict[str, ShipmentStatus] = {
    "LC": ShipmentStatus.INFO_RECEIVED,  # label created
    "PU": ShipmentStatus.IN_TRANSIT,  # picked up
    "AR": ShipmentStatus.IN_TRANSIT,  # arrived at hub
    "DP": ShipmentStatus.IN_TRANSIT,  # departed hub
    "CU": ShipmentStatus.EXCEPTION,  # held by customs
    "CC": ShipmentStatus.IN_TRANSIT,  # customs cleared
    "EX": ShipmentStatus.EXCEPTION,  # delayed (weather)
    "OD": ShipmentStatus.OUT_FOR_DELIVERY,
    "FA": ShipmentStatus.FAILED_ATTEMPT,
    "PP": ShipmentStatus.AVAILABLE_FOR_PICKUP,  # at pickup point
    "PK": ShipmentStatus.DELIVERED,  # collected from pickup point
    "DL": ShipmentStatus.DELIVERED,
    "RF": ShipmentStatus.EXCEPTION,  # refused by recipient
    "RS": ShipmentStatus.RETURNED,  # returned to sender
}

DESCRIPTIONS: dict[str, str] = {
    "LC": "Shipment information received, label created",
    "PU": "Picked up by the courier",
    "AR": "Arrived at the sorting facility",
    "DP": "Departed the sorting facility",
    "CU": "Held by customs, awaiting clearance",
    "CC": "Released by customs",
    "EX": "Delayed by adverse weather conditions",
    "OD": "Out for delivery",
    "FA": "Delivery attempted, recipient not at home; we will try again on the next working day",
    "PP": "Available for collection at the pickup point",
    "PK": "Collected from the pickup point",
    "DL": "Delivered",
    "RF": "Refused by the recipient, returning to sender",
    "RS": "Returned to sender",
}
DELIVERED_NOTES = ("Delivered, handed to the recipient", "Delivered, left with a neighbour",
                   "Delivered, left at the front door")
LAST_ATTEMPT = "Second delivery attempt failed, recipient not at home; returning to sender"

# Scenario → share of parcels. Over many numbers the journeys come out near these shares.
SCENARIOS: tuple[tuple[str, float], ...] = (
    ("delivered", 0.72),
    ("failed_attempt", 0.08),
    ("pickup_point", 0.08),
    ("exception", 0.06),
    ("returned", 0.04),
    ("lost", 0.02),
)

# ── Geography: shared literal data, so the courier can rebuild a destination from two characters ─────────


@dataclass(frozen=True, slots=True)
class City:
    name: str
    postcode: str  # pattern: '#' a digit, '@' a letter
    utc_offset: int  # hours; fixed, so local mornings need no tz database


@dataclass(frozen=True, slots=True)
class Country:
    code: str
    currency: str
    locale: str
    hub: str
    weight: int  # share of customers
    customs: bool  # outside the EU customs union, seen from the warehouse
    cities: tuple[City, ...]


WAREHOUSE = "Venlo, NL"
ORIGIN_HUB = "Eindhoven, NL"

COUNTRIES: dict[str, Country] = {c.code: c for c in (
    Country("DE", "EUR", "de", "Duisburg", 24, False, (
        City("Berlin", "10###", 1), City("Hamburg", "20###", 1), City("München", "80###", 1),
        City("Köln", "50###", 1), City("Leipzig", "04###", 1), City("Freiburg im Breisgau", "79###", 1),
        City("Dresden", "01###", 1), City("Stuttgart", "70###", 1))),
    Country("AT", "EUR", "de", "Linz", 8, False, (
        City("Wien", "1##0", 1), City("Graz", "80##", 1), City("Salzburg", "50##", 1),
        City("Innsbruck", "60##", 1))),
    Country("FR", "EUR", "fr", "Paris", 18, False, (
        City("Paris", "750##", 1), City("Lyon", "6900#", 1), City("Marseille", "130##", 1),
        City("Toulouse", "310##", 1), City("Nantes", "440##", 1), City("Bordeaux", "330##", 1),
        City("Lille", "590##", 1), City("Strasbourg", "670##", 1))),
    Country("BE", "EUR", "fr", "Bruxelles", 8, False, (
        City("Bruxelles", "10#0", 1), City("Liège", "40##", 1), City("Namur", "50##", 1),
        City("Charleroi", "60##", 1))),
    Country("GB", "GBP", "en", "Coventry", 14, True, (
        City("London", "SW# #@@", 0), City("Manchester", "M# #@@", 0), City("Bristol", "BS# #@@", 0),
        City("Leeds", "LS# #@@", 0), City("Edinburgh", "EH# #@@", 0), City("Cardiff", "CF1# #@@", 0))),
    Country("IE", "EUR", "en", "Dublin", 6, False, (
        City("Dublin", "D0# @#@#", 0), City("Cork", "T12 @#@#", 0), City("Galway", "H91 @#@#", 0),
        City("Limerick", "V94 @#@#", 0))),
    Country("US", "USD", "en", "Louisville", 14, True, (
        City("New York", "100##", -5), City("Chicago", "606##", -6), City("Austin", "787##", -6),
        City("Seattle", "981##", -8), City("Denver", "802##", -7), City("Boston", "021##", -5),
        City("Portland", "972##", -8), City("Atlanta", "303##", -5))),
)}

NAMES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "en": (("Olivia", "James", "Amelia", "Noah", "Emily", "Jack", "Sophie", "Harry", "Grace", "Oliver",
            "Charlotte", "Liam", "Ava", "Ethan", "Mia", "Lucas"),
           ("Smith", "Johnson", "Brown", "Taylor", "Wilson", "Davies", "Evans", "Walker", "Clarke", "Hughes",
            "Murphy", "Kelly", "Miller", "Garcia", "Anderson", "O'Brien")),
    "de": (("Anna", "Lukas", "Lea", "Leon", "Hannah", "Felix", "Mia", "Paul", "Emma", "Jonas", "Sophie",
            "Maximilian", "Lena", "Elias", "Marie", "Jürgen"),
           ("Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Hoffmann",
            "Schäfer", "Koch", "Bauer", "Richter", "Klein", "Wolf", "Groß")),
    "fr": (("Camille", "Louis", "Léa", "Gabriel", "Chloé", "Hugo", "Manon", "Jules", "Inès", "Arthur",
            "Zoé", "Raphaël", "Élodie", "Théo", "Margaux", "François"),
           ("Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy",
            "Moreau", "Simon", "Laurent", "Lefèvre", "Michel", "Garnier", "Faure")),
}

# ── Catalogue: (slug, title, price in EUR) ────────────────────────────────────────────────────────────────

PRODUCTS: tuple[tuple[str, str, int], ...] = (
    ("ceramic-mug", "Ceramic Mug, Speckled Sand", 18), ("pour-over-kettle", "Gooseneck Pour-Over Kettle", 64),
    ("coffee-beans-1kg", "Single-Origin Coffee Beans, 1 kg", 32), ("linen-tea-towel", "Linen Tea Towel", 14),
    ("merino-throw", "Merino Wool Throw", 119), ("oak-cutting-board", "Oak Cutting Board", 45),
    ("cast-iron-skillet", "Cast Iron Skillet, 26 cm", 58), ("beeswax-candle", "Beeswax Pillar Candle", 22),
    ("stoneware-bowls", "Stoneware Bowls, Set of 4", 49), ("glass-carafe", "Glass Carafe, 1 L", 27),
    ("chef-knife", "Chef's Knife, 20 cm", 89), ("canvas-apron", "Canvas Work Apron", 38),
    ("green-tea-100g", "Loose-Leaf Green Tea, 100 g", 12), ("tea-infuser", "Stainless Tea Infuser", 9),
    ("olive-wood-spoons", "Olive Wood Spoon Set", 24), ("enamel-kettle", "Enamel Stovetop Kettle", 72),
    ("cotton-napkins", "Cotton Napkins, Set of 6", 29), ("salt-pepper-mills", "Salt & Pepper Mill Set", 54),
    ("recipe-journal", "Recipe Journal", 19), ("french-press", "French Press, 8 Cup", 39),
)
PRICE_RATES = {"EUR": Decimal(1), "USD": Decimal("1.10"), "GBP": Decimal("0.86")}
HOUR_WEIGHTS = (1, 1, 1, 1, 1, 2, 3, 4, 5, 6, 6, 6, 7, 7, 7, 7, 8, 9, 10, 10, 9, 7, 4, 2)  # by UTC hour
CENT = Decimal("0.01")


# ── Tracking numbers ──────────────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class Parcel:
    """What a tracking number tells the courier."""

    number: str
    label_at: datetime
    country: Country
    city: City


def _check_digit(digits: str) -> str:
    """UPU S10 style mod 11, so a mistyped number is rejected instead of tracked as someone else's."""
    weights = (8, 6, 4, 2, 3, 5, 9, 7)
    total = sum(int(d) * weights[i % len(weights)] for i, d in enumerate(digits))
    check = 11 - total % 11
    return "0" if check == 10 else "5" if check == 11 else str(check)


def make_tracking_number(label_at: datetime, country: str, city_index: int, serial: int) -> str:
    minutes = int(label_at.timestamp()) // 60
    digits = f"{minutes:08d}{city_index % 10}{serial % 1000:03d}"
    return f"SB{digits}{_check_digit(digits)}{country}"


def parse_tracking_number(number: str) -> Parcel | None:
    """The parcel a number describes, or None if it is not a sandbox number."""
    if len(number) != 17 or not number.startswith("SB"):
        return None
    digits, check, code = number[2:14], number[14], number[15:]
    if not (digits + check).isdigit() or _check_digit(digits) != check or code not in COUNTRIES:
        return None
    country = COUNTRIES[code]
    city_index = int(digits[8])
    if city_index >= len(country.cities):
        return None
    label_at = datetime.fromtimestamp(int(digits[:8]) * 60, UTC)
    return Parcel(number, label_at, country, country.cities[city_index])


# ── Customers and orders ──────────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class Customer:
    id: str
    name: str
    email: str
    locale: str
    marketing_consent: bool
    address: AddressRecord
    city_index: int


@dataclass(frozen=True, slots=True)
class PlannedOrder:
    """An order's whole life; `snapshot(now)` is what the shop would show at `now`."""

    record: OrderRecord  # as created: no shipments, not cancelled
    shipments: tuple[ShipmentRecord, ...]
    cancelled_at: datetime | None

    @property
    def change_times(self) -> tuple[datetime, ...]:
        cancelled = (self.cancelled_at,) if self.cancelled_at else ()
        return (self.record.created_at, *cancelled, *(s.shipped_at for s in self.shipments))

    def snapshot(self, now: datetime) -> OrderRecord:
        shipments = tuple(s for s in self.shipments if s.shipped_at <= now)
        cancelled = self.cancelled_at is not None and self.cancelled_at <= now
        updated_at = max(t for t in self.change_times if t <= now)
        return replace(self.record, shipments=shipments, cancelled=cancelled, updated_at=updated_at)


def _ascii(text: str) -> str:
    flat = unicodedata.normalize("NFKD", text.replace("ß", "ss"))
    return "".join(c for c in flat if c.isascii() and c.isalnum()).lower()


def _fill(rng: random.Random, pattern: str) -> str:
    letters = "ABDEFGHJLNPQRSTUWXYZ"  # the letters postcodes use, without look-alikes
    return "".join(str(rng.randrange(10)) if c == "#" else rng.choice(letters) if c == "@" else c
                   for c in pattern)


def _customer(seed: int, index: int, taken: set[str]) -> Customer:
    rng = random.Random(f"{seed}:customer:{index}")
    country = rng.choices(list(COUNTRIES.values()), weights=[c.weight for c in COUNTRIES.values()])[0]
    firsts, lasts = NAMES[country.locale]
    first, last = rng.choice(firsts), rng.choice(lasts)
    given, family = _ascii(first), _ascii(last)
    local = rng.choice((f"{given}.{family}", f"{given}{family}", f"{given[0]}{family}",
                        f"{given}.{family}{rng.randrange(60, 100)}", f"{family}.{given}"))
    email = f"{local}@{rng.choice(EMAIL_DOMAINS)}"
    if email in taken:  # shops key customers by email: two namesakes must not merge
        email = f"{local}.{index}@{email.split('@')[1]}"
    taken.add(email)
    city_index = rng.randrange(len(country.cities))
    city = country.cities[city_index]
    address = AddressRecord(f"{first} {last}", city.name, _fill(rng, city.postcode), country.code)
    return Customer(f"sb-customer-{index + 1}", f"{first} {last}", email, country.locale,
                    rng.random() < 0.7, address, city_index)


@functools.lru_cache(maxsize=64)
def customers(seed: int, size: int) -> tuple[Customer, ...]:
    """A fixed pool, about 20 days of orders deep, so customers come back."""
    taken: set[str] = set()
    return tuple(_customer(seed, i, taken) for i in range(size))


def _pool_size(settings: SandboxSettings) -> int:
    return max(10, round(settings.orders_per_day * 20))


def _volume_jitter(settings: SandboxSettings, days: int) -> float:
    if days <= 0:
        return 0.0
    return random.Random(f"{settings.seed}:{days}:volume").random() * settings.orders_per_day / 2


def _orders_before(settings: SandboxSettings, days: int) -> int:
    """Orders taken in the first `days` days, in O(1): day counts vary, yet numbers stay consecutive."""
    return math.floor(settings.orders_per_day * days + _volume_jitter(settings, days))


def _price(eur: int, currency: str) -> Decimal:
    """Shop prices end in .99 in every currency."""
    rate = PRICE_RATES.get(currency, Decimal(1))
    return (Decimal(eur) * rate).quantize(Decimal(1)) - CENT


def _lines(rng: random.Random, order_number: int, currency: str) -> tuple[LineRecord, ...]:
    picks = rng.sample(range(len(PRODUCTS)), rng.choices((1, 2, 3), weights=(55, 30, 15))[0])
    lines = []
    for k, index in enumerate(picks):
        slug, title, eur = PRODUCTS[index]
        lines.append(LineRecord(
            key=f"sb-line-{order_number}-{k + 1}", title=title,
            quantity=rng.choices((1, 2, 3), weights=(80, 15, 5))[0], unit_price=_price(eur, currency),
            sku=f"SB-{index + 1:04d}", product_id=str(8_100_001 + index),
            image_url=f"{SHOP_URL}images/{slug}.jpg", product_url=f"{SHOP_URL}products/{slug}"))
    return tuple(lines)


def _shipments(rng: random.Random, settings: SandboxSettings, order_number: int, created: datetime,
               customer: Customer, split: bool) -> tuple[ShipmentRecord, ...]:
    """One parcel, or two a little apart; all 2–30 hours after the order, on whole minutes."""
    start = created.replace(second=0) + timedelta(minutes=1)
    delays = [rng.randint(120, 1739)]
    if split:
        delays.append(rng.randint(delays[0] + 60, 1799))
    shipments = []
    for parcel, delay in enumerate(delays):
        shipped_at = start + timedelta(minutes=delay)
        number = make_tracking_number(shipped_at, customer.address.country, customer.city_index,
                                      order_number * 2 + parcel)
        url = settings.tracking_base_url + number
        shipments.append(ShipmentRecord(number, COURIER_NAME, shipped_at, url))
    return tuple(shipments)


def _order(rng: random.Random, settings: SandboxSettings, number: int, created: datetime) -> PlannedOrder:
    pool = customers(settings.seed, _pool_size(settings))
    customer = pool[rng.randrange(len(pool))]
    country = COUNTRIES[customer.address.country]
    currency = country.currency if country.currency in settings.currencies else settings.currencies[0]
    lines = _lines(rng, number, currency)
    fate = rng.random()
    cancelled_at = None
    shipments: tuple[ShipmentRecord, ...] = ()
    if fate < 0.03:  # cancelled before it ever ships
        cancelled_at = created + timedelta(seconds=rng.randint(600, 6 * 3600))
    else:
        split = fate < 0.10 and sum(line.quantity for line in lines) > 1
        shipments = _shipments(rng, settings, number, created, customer, split)
    record = OrderRecord(
        external_id=f"sb-order-{number}", number=f"#{number}", created_at=created, updated_at=created,
        currency=currency, total=sum((line.unit_price * line.quantity for line in lines), Decimal("0.00")),
        customer_id=customer.id, customer_email=customer.email, customer_name=customer.name,
        customer_locale=customer.locale, marketing_consent=customer.marketing_consent, lines=lines,
        shipping_address=customer.address)
    return PlannedOrder(record, shipments, cancelled_at)


@functools.lru_cache(maxsize=4096)
def day_orders(settings: SandboxSettings, day: int) -> tuple[PlannedOrder, ...]:
    """Every order created on one UTC day (a date ordinal), in creation order."""
    days = day - SHOP_OPENED.toordinal()
    if days < 0:
        return ()
    first = FIRST_ORDER_NUMBER + _orders_before(settings, days)
    count = FIRST_ORDER_NUMBER + _orders_before(settings, days + 1) - first
    rng = random.Random(f"{settings.seed}:{day}")
    midnight = datetime.combine(date.fromordinal(day), time(), UTC)
    hours = rng.choices(range(24), weights=HOUR_WEIGHTS, k=count)
    moments = sorted(midnight + timedelta(seconds=h * 3600 + rng.randrange(3600)) for h in hours)
    return tuple(_order(rng, settings, first + i, at) for i, at in enumerate(moments))


def _utc(moment: datetime, what: str) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"{what} must be an aware datetime, got {moment!r}")
    return moment.astimezone(UTC)


class SandboxMarketplace:
    """A shop's order feed, simulated."""

    def __init__(self, name: str, settings: SandboxSettings, clock: Clock) -> None:
        self.name = name
        self.settings = settings
        self.clock = clock

    async def changes(self, since: datetime) -> FeedBatch:
        now = _utc(self.clock(), "the clock")
        since = _utc(since, "since")
        first_day = max(since.date().toordinal() - MAX_SHIP_DELAY.days - 1, SHOP_OPENED.toordinal())
        orders = [
            planned.snapshot(now)
            for day in range(first_day, now.date().toordinal() + 1)
            for planned in day_orders(self.settings, day)
            if any(since < t <= now for t in planned.change_times)
        ]
        return FeedBatch(tuple(orders), now)

    async def aclose(self) -> None:
        pass


# ── Journeys ──────────────────────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class Journey:
    """Everything that will ever happen to a parcel, and when the courier's estimate changed."""

    scenario: str
    events: tuple[CarrierEvent, ...]
    estimates: tuple[tuple[datetime, date | None], ...]

    def result(self, number: str, now: datetime) -> TrackingResult:
        """What the courier would answer at `now`: nothing is known before the label exists."""
        events = tuple(e for e in self.events if e.at <= now)
        if not events:
            return TrackingResult(number, found=False)
        estimate = None
        for since, day in self.estimates:
            if since <= now:
                estimate = day
        return TrackingResult(number, events, estimated_delivery=estimate)


@dataclass(slots=True)
class _Trail:
    """A journey being written, one scan after another."""

    parcel: Parcel
    at: datetime
    events: list[CarrierEvent] = field(default_factory=list)
    estimates: list[tuple[datetime, date | None]] = field(default_factory=list)

    def scan(self, code: str, location: str, *, after: timedelta = timedelta(), at: datetime | None = None,
             description: str | None = None) -> None:
        self.at = at if at is not None else self.at + after
        text = description or DESCRIPTIONS[code]
        self.events.append(CarrierEvent(self.at, STATUS_CODES[code], code, text, location))

    def estimate(self, day: date | None) -> None:
        self.estimates.append((self.at, day))

    def local_date(self, moment: datetime) -> date:
        return (moment + timedelta(hours=self.parcel.city.utc_offset)).date()

    def local_time(self, day: date, earliest: int, latest: int, rng: random.Random) -> datetime:
        """A moment on `day` between two local times given in minutes after midnight, in UTC."""
        minutes = rng.randint(earliest, latest) - self.parcel.city.utc_offset * 60
        return datetime.combine(day, time(), UTC) + timedelta(minutes=minutes)


def _working_day(day: date) -> date:
    return day + timedelta(days=1) if day.weekday() == 6 else day  # no rounds on Sundays


def _delivery_day(trail: _Trail, arrival: datetime) -> date:
    """The first round after the parcel reaches the depot, never the day it was labelled."""
    local = arrival + timedelta(hours=trail.parcel.city.utc_offset)
    day = local.date() if local.hour < 6 else local.date() + timedelta(days=1)
    return _working_day(max(day, trail.local_date(trail.parcel.label_at) + timedelta(days=1)))


def _route(rng: random.Random, parcel: Parcel) -> list[tuple[str, str]]:
    """2–5 hub scans, in route order (real tracking skips scans too)."""
    hub = f"{parcel.country.hub}, {parcel.country.code}"
    full = [("AR", ORIGIN_HUB), ("DP", ORIGIN_HUB), ("AR", hub), ("DP", hub),
            ("AR", f"{parcel.city.name}, {parcel.country.code}")]
    return [full[i] for i in sorted(rng.sample(range(len(full)), rng.randint(2, 5)))]


def _hold(rng: random.Random, parcel: Parcel, scans: list[tuple[str, str]]) -> tuple[int, str, str]:
    """Where a delay strikes: customs on entering a non-EU country, else weather at some hub."""
    if parcel.country.customs:
        index = sum(1 for _, location in scans if location == ORIGIN_HUB)
        return index, "CU", f"{parcel.country.hub}, {parcel.country.code}"
    index = rng.randint(1, len(scans))
    return index, "EX", scans[index - 1][1]


def _line_haul(rng: random.Random, trail: _Trail, scenario: str) -> bool:
    """Pickup and hub scans; False if the parcel is lost on the way."""
    trail.scan("PU", WAREHOUSE, after=timedelta(minutes=rng.randint(120, 720)))
    scans = _route(rng, trail.parcel)
    gaps = [timedelta(minutes=rng.randint(120, 600)) for _ in scans]
    trail.estimate(_delivery_day(trail, trail.at + sum(gaps, timedelta())))
    stop = rng.randint(1, len(scans) - 1) if scenario == "lost" else len(scans)
    hold = _hold(rng, trail.parcel, scans) if scenario == "exception" else None
    for i in range(len(scans) + 1):
        if hold is not None and hold[0] == i:
            _, code, location = hold
            trail.scan(code, location, after=timedelta(minutes=rng.randint(60, 240)))
            delay = timedelta(minutes=rng.randint(24 * 60, 48 * 60))
            trail.estimate(_delivery_day(trail, trail.at + delay + sum(gaps[i:], timedelta())))
            if code == "CU":
                trail.scan("CC", location, after=delay)
            else:
                trail.at += delay
        if i == stop:
            return i == len(scans)
        trail.scan(*scans[i], after=gaps[i])
    return True


def _last_mile(rng: random.Random, trail: _Trail, scenario: str) -> None:
    here = f"{trail.parcel.city.name}, {trail.parcel.country.code}"
    day = _delivery_day(trail, trail.at)
    if scenario == "pickup_point":
        trail.scan("PP", here, at=trail.local_time(day, 8 * 60, 12 * 60, rng))
        collected = _working_day(day + timedelta(days=rng.randint(1, 3)))
        trail.scan("PK", here, at=trail.local_time(collected, 13 * 60, 19 * 60, rng))
        return
    trail.scan("OD", here, at=trail.local_time(day, 7 * 60 + 30, 10 * 60, rng))
    if scenario == "returned" and rng.random() < 0.5:
        trail.scan("RF", here, after=timedelta(minutes=rng.randint(20, 240)))
        return _return_to_sender(rng, trail)
    failures = {"failed_attempt": 1, "returned": 2}.get(scenario, 0)
    for attempt in range(failures):
        last = scenario == "returned" and attempt == failures - 1
        trail.scan("FA", here, after=timedelta(minutes=rng.randint(60, 360)),
                   description=LAST_ATTEMPT if last else None)
        if last:
            return _return_to_sender(rng, trail)
        day = _working_day(day + timedelta(days=1))
        trail.estimate(day)
        trail.scan("OD", here, at=trail.local_time(day, 7 * 60 + 30, 10 * 60, rng))
    minutes = rng.randint(60, 420)
    trail.scan("DL", here, after=timedelta(minutes=minutes), description=rng.choice(DELIVERED_NOTES))


def _return_to_sender(rng: random.Random, trail: _Trail) -> None:
    trail.estimate(None)
    trail.scan("RS", WAREHOUSE, after=timedelta(minutes=rng.randint(2 * 1440, 5 * 1440)))


def _pick_scenario(rng: random.Random) -> str:
    names, shares = zip(*SCENARIOS, strict=True)
    return rng.choices(names, weights=shares)[0]


@functools.lru_cache(maxsize=16384)
def journey(seed: int, number: str) -> Journey | None:
    """The whole life of a parcel, or None if the number is not a sandbox number."""
    parcel = parse_tracking_number(number)
    if parcel is None:
        return None
    rng = random.Random(f"{seed}:{number}")
    scenario = _pick_scenario(rng)
    trail = _Trail(parcel, parcel.label_at)
    trail.scan("LC", WAREHOUSE)
    if _line_haul(rng, trail, scenario):
        _last_mile(rng, trail, scenario)
    return Journey(scenario, tuple(trail.events), tuple(trail.estimates))


class SandboxCourier:
    """A courier account, simulated: answers for any sandbox number from the number alone.

    With `per_day` set it also plays the courier's quota, the one piece of state it keeps: calls are
    counted per UTC day of its clock (`calls`), and a call over the quota is refused as a real courier
    would, HTTP 429 with Retry-After until midnight."""

    concurrency = 4

    def __init__(self, name: str, settings: SandboxSettings, clock: Clock) -> None:
        self.name = name
        self.settings = settings
        self.clock = clock
        self.batch_size = settings.batch_size
        self.limits = Limits(concurrency=self.concurrency, per_day=settings.per_day)
        self.calls: dict[date, int] = {}  # UTC day → calls made that day (refused ones included)

    async def track(self, numbers: Sequence[str]) -> list[TrackingResult]:
        now = _utc(self.clock(), "the clock")
        used = self.calls[now.date()] = self.calls.get(now.date(), 0) + 1
        if self.settings.per_day is not None and used > self.settings.per_day:
            midnight = datetime.combine(now.date() + timedelta(days=1), time(), UTC)
            raise TransientError("daily quota exceeded", source=self.name, status_code=429,
                                 retry_after=(midnight - now).total_seconds())
        return [self._result(number, now) for number in numbers]

    def _result(self, number: str, now: datetime) -> TrackingResult:
        planned = journey(self.settings.seed, number)
        return planned.result(number, now) if planned else TrackingResult(number, found=False)

    def tracking_url(self, number: str) -> str:
        return self.settings.tracking_base_url + number

    async def aclose(self) -> None:
        pass


# ── Registry factories (carriers/__init__.py) ────────────────────────────────────────────────────────────


def settings_from_account(account: AccountSettings) -> SandboxSettings:
    """The account's own keys, refusing unknown ones so a typo never silently falls back to a default."""
    from carriers import COMMON_KEYS  # the registry imports this module first

    section = account.section
    section.check_keys(COMMON_KEYS | {"seed", "orders_per_day", "currencies", "tracking_base_url", "batch_size",
                                      "per_day"})
    defaults = SandboxSettings()
    currencies = section.strings("currencies", list(defaults.currencies))
    if not currencies:
        raise section.error("currencies", "must name at least one currency")
    return SandboxSettings(
        seed=section.int("seed", defaults.seed),
        orders_per_day=float(section.number("orders_per_day", defaults.orders_per_day, minimum=0)),
        currencies=tuple(currencies),
        tracking_base_url=section.str("tracking_base_url", defaults.tracking_base_url),
        batch_size=section.int("batch_size", defaults.batch_size, minimum=1),
        per_day=section.int("per_day", minimum=1) if "per_day" in section.data else None,
    )


def courier_from_settings(account: AccountSettings, clock: Clock) -> SandboxCourier:
    return SandboxCourier(account.name, settings_from_account(account), clock)


def marketplace_from_settings(account: AccountSettings, clock: Clock) -> SandboxMarketplace:
    return SandboxMarketplace(account.name, settings_from_account(account), clock)
