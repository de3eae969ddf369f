"""The sandbox shop's orders: every order of a UTC day from `random.Random(f"{seed}:{day_ordinal}")`.

Nothing is kept between calls: an order's whole life is planned when its day is generated (`PlannedOrder`) and
`snapshot(now)` shows what the shop would show at `now`, so one big feed window returns exactly what many
small windows return together, and a clock can jump.
"""

from __future__ import annotations

import functools
import math
import random
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from carriers.base import LineRecord, OrderRecord, ShipmentRecord
from carriers.sandbox_customers import Customer, customers
from carriers.sandbox_numbers import COUNTRIES, make_tracking_number
from carriers.sandbox_settings import SandboxSettings

COURIER_NAME = "sandbox"  # the courier account the shop's shipments name
SHOP_OPENED = date(2020, 1, 1)  # no orders before this day, so order numbers stay small and positive
FIRST_ORDER_NUMBER = 1001
SHOP_URL = "https://shop.example.com/"
MAX_SHIP_DELAY = timedelta(hours=30)  # how long after its creation an order can still change

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
