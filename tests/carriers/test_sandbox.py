"""The sandbox shop and courier: a pure function of (seed, clock, arguments), believable enough to demo."""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta

import pytest

from carriers import sandbox_customers, sandbox_journeys, sandbox_orders
from carriers.base import CarrierEvent, Courier, FeedBatch, Marketplace, OrderRecord, TrackingResult
from carriers.sandbox import SandboxCourier, SandboxMarketplace, SandboxSettings
from carriers.sandbox_journeys import STATUS_CODES
from tracker.status import FINAL, ShipmentState, ShipmentStatus, advance

START = datetime(2025, 3, 3, tzinfo=UTC)  # a Monday
SETTINGS = SandboxSettings()
BUSY = SandboxSettings(orders_per_day=100.0)  # ~2,000 orders in 20 days: enough for shares
BUSY_DAYS = 20
LATER = START + timedelta(days=BUSY_DAYS + 30)  # every journey has had time to finish
RESERVED_DOMAINS = {"example.com", "example.org", "example.net"}
EUROPE_UTC_OFFSET = {"GB": 0, "IE": 0, "DE": 1, "AT": 1, "FR": 1, "BE": 1}  # standard time
TARGET_SHARES = {  # scenario → (share, tolerance) over ~2,000 parcels
    "delivered": (0.72, 0.05),
    "failed_attempt": (0.08, 0.03),
    "pickup_point": (0.08, 0.03),
    "exception": (0.06, 0.025),
    "returned": (0.04, 0.02),
    "lost": (0.02, 0.012),
}
S = ShipmentStatus
Orders = tuple[OrderRecord, ...]


def feed(settings: SandboxSettings, since: datetime, now: datetime) -> FeedBatch:
    return asyncio.run(SandboxMarketplace("shop", settings, lambda: now).changes(since))


def track(settings: SandboxSettings, numbers: list[str], now: datetime) -> list[TrackingResult]:
    return asyncio.run(SandboxCourier("sandbox", settings, lambda: now).track(numbers))


def numbers_of(orders: Orders | list[OrderRecord]) -> list[str]:
    return [s.tracking_number for o in orders for s in o.shipments]


def outcome(events: tuple[CarrierEvent, ...]) -> str:
    """Which scenario a finished journey played, read from its canonical statuses alone."""
    statuses = [e.status for e in events]
    if statuses[-1] is S.RETURNED:
        return "returned"
    if statuses[-1] is not S.DELIVERED:
        return "lost"
    if S.AVAILABLE_FOR_PICKUP in statuses:
        return "pickup_point"
    if S.EXCEPTION in statuses:
        return "exception"
    if S.FAILED_ATTEMPT in statuses:
        return "failed_attempt"
    return "delivered"


def local_time(event: CarrierEvent, country: str) -> datetime:
    return event.at + timedelta(hours=EUROPE_UTC_OFFSET[country])


@pytest.fixture(scope="module")
def month() -> Orders:
    """A month of a 12-orders-a-day shop, seen a day after the month ended."""
    return feed(SETTINGS, START, START + timedelta(days=31)).orders


@pytest.fixture(scope="module")
def busy_orders() -> Orders:
    """Twenty busy days, seen when they ended."""
    return feed(BUSY, START, START + timedelta(days=BUSY_DAYS)).orders


@pytest.fixture(scope="module")
def journeys(busy_orders: Orders) -> dict[str, TrackingResult]:
    """About 2,000 parcels, tracked 30 days after the last one shipped."""
    numbers = numbers_of(busy_orders)
    return dict(zip(numbers, track(BUSY, numbers, LATER), strict=True))


# ── Protocols and determinism ─────────────────────────────────────────────────────────────────────────────


def test_the_sandbox_follows_the_adapter_protocols() -> None:
    courier = SandboxCourier("sandbox", SETTINGS, lambda: START)
    assert isinstance(SandboxMarketplace("shop", SETTINGS, lambda: START), Marketplace)
    assert isinstance(courier, Courier)
    assert courier.batch_size == 50
    assert courier.tracking_url("SB123") == "https://track.example.com/sandbox/SB123"


def forget_everything() -> None:
    """Empty the generation caches, so a second run really generates again."""
    for cached in (sandbox_customers.customers, sandbox_orders.day_orders, sandbox_journeys.journey):
        cached.cache_clear()


def test_the_same_seed_gives_the_same_shop_and_the_same_journeys() -> None:
    now, later = START + timedelta(days=3), START + timedelta(days=13)
    first = feed(SandboxSettings(seed=11), START, now)
    tracked = track(SandboxSettings(seed=11), numbers_of(first.orders), later)
    forget_everything()
    second = feed(SandboxSettings(seed=11), START, now)
    assert first == second and first.orders
    assert track(SandboxSettings(seed=11), numbers_of(second.orders), later) == tracked


def test_a_different_seed_gives_a_different_shop_and_different_journeys() -> None:
    now = START + timedelta(days=3)
    ours, theirs = feed(SandboxSettings(seed=11), START, now), feed(SandboxSettings(seed=12), START, now)
    assert [o.customer_email for o in ours.orders] != [o.customer_email for o in theirs.orders]
    numbers = numbers_of(ours.orders)
    later = now + timedelta(days=10)
    ours_tracked = track(SandboxSettings(seed=11), numbers, later)
    theirs_tracked = track(SandboxSettings(seed=12), numbers, later)
    differing = sum(a.events != b.events for a, b in zip(ours_tracked, theirs_tracked, strict=True))
    assert differing > len(numbers) // 2


def test_one_big_window_returns_what_many_hourly_windows_return_together() -> None:
    end = START + timedelta(days=3)
    big = feed(SETTINGS, START, end)
    latest: dict[str, OrderRecord] = {}
    reported = Counter[str]()
    since = START
    while since < end:
        batch = feed(SETTINGS, since, since + timedelta(hours=1))
        assert batch.cursor == since + timedelta(hours=1)
        for order in batch.orders:
            latest[order.external_id] = order
            reported[order.external_id] += 1
        since = batch.cursor
    assert big.cursor == end
    assert latest == {o.external_id: o for o in big.orders}
    assert max(reported.values()) >= 2  # orders come back when they ship: the test compares content


def test_an_order_shows_only_what_has_happened_by_now(month: Orders) -> None:
    order = next(o for o in month if o.shipments)
    shipped_at = order.shipments[0].shipped_at
    before = feed(SETTINGS, order.created_at - timedelta(seconds=1), shipped_at - timedelta(minutes=1))
    (early,) = [o for o in before.orders if o.external_id == order.external_id]
    assert early.shipments == () and early.updated_at == early.created_at
    after = feed(SETTINGS, shipped_at - timedelta(minutes=1), shipped_at)
    (shipped,) = [o for o in after.orders if o.external_id == order.external_id]
    assert shipped.shipments[0] == order.shipments[0] and shipped.updated_at == shipped_at


# ── The shop ──────────────────────────────────────────────────────────────────────────────────────────────


def test_orders_look_like_a_real_shop(month: Orders) -> None:
    for order in month:
        assert 1 <= len(order.lines) <= 3
        assert all(line.quantity >= 1 and line.unit_price > 0 for line in order.lines)
        assert order.total == sum(line.unit_price * line.quantity for line in order.lines)
        assert order.total.as_tuple().exponent == -2
        assert order.customer_email.split("@")[1] in RESERVED_DOMAINS
        address = order.shipping_address
        assert address.name == order.customer_name and address.city and address.postcode
        expected = {"GB": "GBP", "US": "USD"}.get(address.country, "EUR")
        assert order.currency == expected
        for line in order.lines:
            assert line.image_url.startswith("https://shop.example.com/")
            assert line.product_url.startswith("https://shop.example.com/")
            assert line.sku and line.product_id and line.title
    assert {o.customer_locale for o in month} >= {"en", "de", "fr"}
    assert len({o.shipping_address.country for o in month}) >= 5
    assert 15 <= len({line.sku for o in month for line in o.lines}) <= 25


def test_order_numbers_increase_with_time_without_gaps(month: Orders) -> None:
    created_in_window = [o for o in month if o.created_at > START]  # older ones appear only when they ship
    in_time_order = sorted(created_in_window, key=lambda o: (o.created_at, int(o.number[1:])))
    assert all(re.fullmatch(r"#\d+", o.number) for o in in_time_order)
    numbers = [int(o.number[1:]) for o in in_time_order]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
    assert len({o.external_id for o in month}) == len(month)


def test_the_shop_takes_about_orders_per_day() -> None:
    orders = feed(SETTINGS, START, START + timedelta(days=30)).orders
    created = [o for o in orders if o.created_at > START]
    assert 0.85 * 12 * 30 <= len(created) <= 1.15 * 12 * 30
    assert feed(SandboxSettings(orders_per_day=0), START, START + timedelta(days=5)).orders == ()


def test_customers_come_back_and_most_accept_marketing(busy_orders: Orders) -> None:
    per_customer = Counter(o.customer_id for o in busy_orders)
    assert sum(1 for n in per_customer.values() if n > 1) >= len(per_customer) // 5
    consent = {o.customer_id: o.marketing_consent for o in busy_orders}
    assert 0.62 <= sum(consent.values()) / len(consent) <= 0.78
    emails = {o.customer_id: o.customer_email for o in busy_orders}
    assert len(set(emails.values())) == len(emails)  # namesakes never share an address


def test_parcels_ship_2_to_30_hours_after_the_order_with_the_sandbox_courier(
    month: Orders,
) -> None:
    for order in month:
        for shipment in order.shipments:
            assert timedelta(hours=2) <= shipment.shipped_at - order.created_at <= timedelta(hours=30)
            assert shipment.courier_name == "sandbox"
            assert shipment.tracking_url == SETTINGS.tracking_base_url + shipment.tracking_number


def test_a_few_orders_are_cancelled_and_a_few_ship_in_two_parcels(busy_orders: Orders) -> None:
    settled = [o for o in busy_orders if o.created_at < START + timedelta(days=BUSY_DAYS - 2)]
    cancelled = [o for o in settled if o.cancelled]
    split = [o for o in settled if len(o.shipments) == 2]
    assert 0.01 <= len(cancelled) / len(settled) <= 0.06
    assert 0.01 <= len(split) / len(settled) <= 0.07
    assert all(o.shipments == () for o in cancelled)
    assert all(len(o.shipments) in (1, 2) for o in settled if not o.cancelled)


def test_an_order_is_cancelled_only_once_the_cancellation_happened(busy_orders: Orders) -> None:
    order = next(o for o in busy_orders if o.cancelled)
    at_creation = feed(BUSY, order.created_at - timedelta(seconds=1), order.created_at)
    (fresh,) = [o for o in at_creation.orders if o.external_id == order.external_id]
    assert not fresh.cancelled
    assert order.updated_at > order.created_at  # the cancellation is a change the feed reports
    window = feed(BUSY, order.updated_at - timedelta(seconds=1), order.updated_at)
    assert [o.cancelled for o in window.orders if o.external_id == order.external_id] == [True]


def test_settings_are_checked_and_currencies_follow_them() -> None:
    with pytest.raises(ValueError):
        SandboxSettings(orders_per_day=-1)
    with pytest.raises(ValueError):
        SandboxSettings(currencies=())
    euro_only = SandboxSettings(currencies=["EUR"])  # type: ignore[arg-type]
    assert euro_only.currencies == ("EUR",)
    orders = feed(euro_only, START, START + timedelta(days=5)).orders
    assert {o.currency for o in orders} == {"EUR"}
    assert {o.shipping_address.country for o in orders} & {"GB", "US"}


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError):
        feed(SETTINGS, START.replace(tzinfo=None), START)


def test_a_month_of_orders_generates_in_well_under_a_second() -> None:
    fresh = SandboxSettings(seed=424_242)  # not in any cache yet
    began = time.perf_counter()
    orders = feed(fresh, START, START + timedelta(days=30)).orders
    assert time.perf_counter() - began < 0.5
    assert len(orders) > 300


# ── Tracking numbers ──────────────────────────────────────────────────────────────────────────────────────


def test_a_tracking_number_carries_its_label_time_and_destination(month: Orders) -> None:
    numbers = numbers_of(month)
    assert len(set(numbers)) == len(numbers)
    for order in month:
        for shipment in order.shipments:
            number = shipment.tracking_number
            assert re.fullmatch(r"SB\d{13}[A-Z]{2}", number)
            assert int(number[2:10]) * 60 == shipment.shipped_at.timestamp()
            assert number[-2:] == order.shipping_address.country


def test_a_number_is_not_found_before_its_label_and_found_from_then_on(month: Orders) -> None:
    shipment = next(o for o in month if o.shipments).shipments[0]
    number, label_at = shipment.tracking_number, shipment.shipped_at
    (before,) = track(SETTINGS, [number], label_at - timedelta(minutes=1))
    assert before == TrackingResult(number, found=False)
    (at_label,) = track(SETTINGS, [number], label_at)
    assert at_label.found and [(e.at, e.code, e.status) for e in at_label.events] == [
        (label_at, "LC", S.INFO_RECEIVED)
    ]
    assert at_label.estimated_delivery is None


def test_numbers_that_are_not_sandbox_numbers_are_simply_not_found(month: Orders) -> None:
    real = numbers_of(month)[0]
    wrong_check = real[:14] + str((int(real[14]) + 1) % 10) + real[15:]
    strangers = ["1Z999AA10123456784", "", "SB", real.lower(), wrong_check, real[:-2] + "XX", real + "0"]
    results = track(SETTINGS, [*strangers, real, strangers[0]], LATER)
    assert [r.tracking_number for r in results] == [*strangers, real, strangers[0]]
    assert [r.found for r in results] == [False] * len(strangers) + [True, False]
    assert all(r.events == () and r.error is None for r in results if not r.found)


# ── Journeys ──────────────────────────────────────────────────────────────────────────────────────────────


def test_events_never_lie_in_the_future_and_come_in_time_order(busy_orders: Orders) -> None:
    numbers = numbers_of(busy_orders)[:300]
    for hours in range(0, 24 * 12, 7):
        now = START + timedelta(hours=hours)
        for result in track(BUSY, numbers, now):
            times = [e.at for e in result.events]
            assert all(t <= now and t.utcoffset() == timedelta(0) for t in times)
            assert times == sorted(set(times))


def test_the_code_table_is_complete_and_every_code_is_used(journeys: dict[str, TrackingResult]) -> None:
    assert all(isinstance(status, ShipmentStatus) for status in STATUS_CODES.values())
    assert not {S.PENDING, S.UNKNOWN, S.EXPIRED} & set(STATUS_CODES.values())  # ours, not a courier's
    emitted = Counter[str]()
    for result in journeys.values():
        for event in result.events:
            assert event.status is STATUS_CODES[event.code]
            assert event.description and re.fullmatch(r".+, [A-Z]{2}", event.location)
            emitted[event.code] += 1
    assert set(emitted) == set(STATUS_CODES)


def test_scenario_shares_are_near_their_targets(journeys: dict[str, TrackingResult]) -> None:
    assert len(journeys) >= 1800
    shares = Counter(outcome(r.events) for r in journeys.values())
    for scenario, (target, tolerance) in TARGET_SHARES.items():
        share = shares[scenario] / len(journeys)
        assert abs(share - target) <= tolerance, f"{scenario}: {share:.3f}, expected {target} ± {tolerance}"


def test_every_journey_ends_delivered_or_returned_or_goes_quiet_for_good(
    journeys: dict[str, TrackingResult],
) -> None:
    lost = [n for n, r in journeys.items() if r.events[-1].status not in FINAL]
    assert lost
    for result in journeys.values():
        statuses = [e.status for e in result.events]
        assert statuses[0] is S.INFO_RECEIVED
        assert all(s not in FINAL for s in statuses[:-1])  # nothing happens after the end
        if statuses[-1] not in FINAL:
            assert statuses[-1] is S.IN_TRANSIT
    much_later = track(BUSY, lost, LATER + timedelta(days=60))
    assert [r.events for r in much_later] == [journeys[n].events for n in lost]


def test_the_state_machine_follows_every_journey_to_its_end(journeys: dict[str, TrackingResult]) -> None:
    for result in journeys.values():
        start = ShipmentState(S.PENDING, None)
        transition = advance(start, result.events, set(), LATER, timedelta(days=2))
        assert transition.after.status is result.events[-1].status
        assert not transition.ignored


def test_a_plain_delivery_takes_one_to_five_days_and_comes_in_the_morning(
    journeys: dict[str, TrackingResult],
) -> None:
    plain = [(n, r.events) for n, r in journeys.items() if outcome(r.events) == "delivered"]
    for number, events in plain:
        codes = [e.code for e in events]
        assert codes[:2] == ["LC", "PU"] and codes[-2:] == ["OD", "DL"]
        assert 2 <= sum(c in ("AR", "DP") for c in codes) <= 5
        assert timedelta(hours=2) <= events[1].at - events[0].at <= timedelta(hours=12)
        assert events[-1].at - events[0].at <= timedelta(days=5)
        country = number[-2:]
        if country in EUROPE_UTC_OFFSET:
            out, delivered = local_time(events[-2], country), local_time(events[-1], country)
            assert 7 <= out.hour < 11 and delivered.date() == out.date()
            assert delivered.date() > local_time(events[0], country).date()
            assert delivered.weekday() != 6


def test_detours_take_the_time_a_courier_would(journeys: dict[str, TrackingResult]) -> None:
    for result in journeys.values():
        events, kind = result.events, outcome(result.events)
        if kind == "failed_attempt":
            failed = next(e for e in events if e.status is S.FAILED_ATTEMPT)
            assert events[-1].at.date() > failed.at.date()  # tried again the next working day
        elif kind == "pickup_point":
            ready = next(e for e in events if e.status is S.AVAILABLE_FOR_PICKUP)
            assert timedelta(hours=12) <= events[-1].at - ready.at <= timedelta(days=4, hours=12)
        elif kind == "exception":
            held = next(e for e in events if e.status is S.EXCEPTION)
            assert events[events.index(held) + 1].at - held.at >= timedelta(hours=24)
        elif kind == "returned":
            assert S.FAILED_ATTEMPT in [e.status for e in events] or "RF" in [e.code for e in events]


def test_the_estimate_appears_once_picked_up_and_names_the_delivery_day(
    busy_orders: Orders, journeys: dict[str, TrackingResult]
) -> None:
    checked = 0
    for number, final in journeys.items():
        country = number[-2:]
        if outcome(final.events) != "delivered" or country not in EUROPE_UTC_OFFSET:
            continue
        label, picked_up = final.events[0].at, final.events[1].at
        at_label, in_transit = track(BUSY, [number], label)[0], track(BUSY, [number], picked_up)[0]
        delivered_on: date = local_time(final.events[-1], country).date()
        assert at_label.estimated_delivery is None
        assert in_transit.estimated_delivery == delivered_on
        checked += 1
        if checked == 200:
            break
    assert checked == 200


def test_an_exception_moves_the_estimate(journeys: dict[str, TrackingResult]) -> None:
    delayed = [(n, r) for n, r in journeys.items() if outcome(r.events) == "exception"]
    moved = 0
    for number, final in delayed:
        held = next(e for e in final.events if e.status is S.EXCEPTION)
        (before,) = track(BUSY, [number], held.at - timedelta(minutes=1))
        (after,) = track(BUSY, [number], held.at)
        assert after.estimated_delivery is not None and before.estimated_delivery is not None
        assert after.estimated_delivery >= before.estimated_delivery
        moved += after.estimated_delivery > before.estimated_delivery
    assert moved >= len(delayed) * 0.8
