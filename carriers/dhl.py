"""DHL Shipment Tracking – Unified API (pull): one courier account, one module.

API facts relied on (shared/carrier-samples/README.md section 1, DHL developer portal):

- ``GET {base_url}/track/shipments?trackingNumber=<n>`` (production host ``https://api-eu.dhl.com``), optional
  ``service`` (e.g. ``express``, ``parcel-de``), ``requesterCountryCode`` and ``language`` (default ``en``; we
  always send it, so texts come in a known language).
- Auth: header ``DHL-API-Key: <consumer key>``.
- Batch: ONE tracking number per request; several numbers run concurrently through ``Http``, which keeps the
  account's limits. Published limits ("Starter"): 250 calls a day, 1 call a second; over-limit → HTTP 429,
  the daily quota resets at 00:00 GMT. Defaults: 1 in flight, 1/s, 250/day (``DEFAULT_LIMITS``).
- Errors are RFC 7807 problem JSON: 404 = no shipment found (→ ``found=False``, no error: the number may be
  too new), 401 = bad key (→ AuthError), 429 = quota (→ TransientError with Retry-After).
- ``shipments[]`` may hold the same number in several DHL divisions. We keep the shipments whose ``id``
  equals the number (ignoring case and spaces; ids may be JSON numbers) or, when none does (DHL also matches
  piece ids and references, e.g. an id with leading zeros), every shipment returned; of those, the one with
  the most recent ``status.timestamp`` (else its newest event), the first on a tie. ``possibleAdditionalShipmentsUrl``
  is not followed: set ``service`` in the account to pin a division.
- Status codes are high level (``STATUS_CODES``). ``transit`` and ``failure`` events are refined by their text
  (``description`` and ``status``) through ``TEXT_REFINEMENTS`` only where the text is unambiguous; the raw
  code and description always stay on the event. These tables live in carriers/dhl_codes.py.
- Timestamps are local, sometimes without an offset. An offset, when given, is used. An offset-less time is
  read in the time zone of the event's ``location.address.countryCode``, else of the shipment's country when
  origin and destination are the same country (a domestic parcel), but only for countries with a single
  time zone (``COUNTRY_ZONES``); otherwise (no country, an international parcel, a country with several
  zones such as US/ES/PT, or no tz database on the machine) it is taken as UTC.
- ``estimatedTimeOfDelivery`` (else ``estimatedDeliveryTimeFrame.estimatedThrough``, else ``estimatedFrom``)
  gives ``estimated_delivery``: the calendar date as DHL wrote it (local), not converted to UTC.
- ``details.proofOfDelivery.signed`` (a Person: ``name``, else ``givenName familyName``, or a plain string;
  ``signee`` likewise) gives ``signed_by``.
- Public tracking page: ``https://www.dhl.com/global-en/home/tracking/tracking-parcel.html?submit=1&tracking-id=<n>``.
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx

from carriers.base import COMMON_KEYS, AuthError, CarrierError, CarrierEvent, ResponseError, TrackingResult
from carriers.dhl_codes import COUNTRY_ZONES, REFINED_CODES, STATUS_CODES, TEXT_REFINEMENTS
from carriers.http import Http, Limits, RetryPolicy, make_client, parse_json
from carriers.read import Malformed, dump, field
from tracker.clock import Clock
from tracker.settings import Section
from tracker.status import ShipmentStatus

S = ShipmentStatus
# Most texts hold none of the phrases: one search in C says so before the loop that picks which one (in order).
ANY_REFINEMENT = re.compile("|".join(re.escape(phrase) for phrase in TEXT_REFINEMENTS)).search

NAIVE_EPOCH, UTC_EPOCH, ZERO = datetime(1970, 1, 1), datetime(1970, 1, 1, tzinfo=UTC), timedelta(0)

DEFAULT_BASE_URL = "https://api-eu.dhl.com"
# Published default rate limit (calls per day and per second):
# https://developer.dhl.com/getting-started/get-a-higher-rate-limit
DEFAULT_LIMITS = Limits(concurrency=1, per_second=1.0, per_day=250)
DEFAULT_RETRY = RetryPolicy()
TRACKING_PAGE = "https://www.dhl.com/global-en/home/tracking/tracking-parcel.html?submit=1&tracking-id="
KEYS = frozenset({"api_key", "base_url", "service", "language", "requester_country_code",
                  "concurrency", "per_second", "per_day"})

# ── Pure parsing ─────────────────────────────────────────────────────────────────────────────────────────────


@functools.cache  # a handful of countries, looked up for every offset-less event
def _zone(country: str) -> ZoneInfo | None:
    name = COUNTRY_ZONES.get(country)
    if name is None:
        return None
    try:
        return ZoneInfo(name)
    except ZoneInfoNotFoundError:  # no tz database on this machine: fall back to UTC, as documented
        return None


def to_utc(text: str, country: str | None) -> datetime:
    """A DHL timestamp as an aware UTC datetime (see the module docstring for offset-less times)."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=(country and _zone(country)) or UTC)
    return moment.astimezone(UTC)


def status_of(code: str, text: str) -> ShipmentStatus:
    """The canonical status of one event: its code, refined by its text for `transit` and `failure`."""
    status = STATUS_CODES.get(code, S.UNKNOWN)
    if code in REFINED_CODES:
        folded = text.casefold()
        for phrase, refined in TEXT_REFINEMENTS.items():
            if phrase in folded:
                return refined
    return status


def _refined(code: str, description: str, short: str) -> ShipmentStatus:
    """`status_of(code, f"{description}\\n{short}")`, folding and searching a text only once when both are
    the same (DHL often repeats it). No phrase holds a line break, so none can match across the two."""
    folded = description.casefold()
    other = short.casefold() if short != description else ""
    if not ANY_REFINEMENT(folded) and not (other and ANY_REFINEMENT(other)):
        return STATUS_CODES.get(code, S.UNKNOWN)
    for phrase, refined in TEXT_REFINEMENTS.items():
        if phrase in folded or (other and phrase in other):
            return refined
    return STATUS_CODES.get(code, S.UNKNOWN)


def _address(place: dict[str, Any], what: str) -> dict[str, Any]:
    """`place.address` ({} when absent); `place` is an event's `location`, or a shipment's `origin`."""
    return field(place, "address", dict, what) or {}


def _country(address: dict[str, Any], what: str) -> str | None:
    code = field(address, "countryCode", str, what)
    return (code.strip().upper() or None) if code else None


def _event(raw: Any, home_country: str | None, what: str = "event") -> CarrierEvent:
    """One entry of `events[]` (or the `status` object). `home_country` applies when the event names none.
    Well-formed events take the quick path; anything unusual goes through `_checked_event`, which says what
    is wrong, so both paths give the same result for the same input."""
    return _quick_event(raw, home_country) or _checked_event(raw, home_country, what)


def _quick_event(raw: Any, home_country: str | None) -> CarrierEvent | None:
    """`_checked_event` for the usual shapes (strings where strings belong), without naming each field;
    None for anything else."""
    if type(raw) is not dict:
        return None
    get = raw.get
    stamp, code, description, short, place = (get("timestamp"), get("statusCode"), get("description"),
                                              get("status"), get("location"))
    code = "" if code is None else code
    description = "" if description is None else description
    short = "" if short is None else short
    if place is None:
        locality, country = "", None
    elif type(place) is dict:
        address = place.get("address")
        address = {} if address is None else address
        if type(address) is not dict:
            return None
        locality, country = address.get("addressLocality"), address.get("countryCode")
        locality = "" if locality is None else locality
        if type(locality) is not str or (country is not None and type(country) is not str):
            return None
        country = (country.strip().upper() or None) if country else None
        locality = locality.strip()
    else:
        return None
    if type(stamp) is not str or type(code) is not str or type(description) is not str or type(short) is not str:
        return None
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    if moment.tzinfo is None:  # what to_utc does, minus attaching the zone only to convert it away
        zone = _zone(country or home_country) if country or home_country else None
        # arithmetic from an aware epoch, not datetime.replace(tzinfo=...), which costs several times as much
        at = UTC_EPOCH + (moment - NAIVE_EPOCH - (zone.utcoffset(moment) if zone else ZERO))
    else:
        at = moment.astimezone(UTC)
    if code in REFINED_CODES:
        status = _refined(code, description, short)
    else:
        status = STATUS_CODES.get(code, S.UNKNOWN)
    # positional: the five fields in their declared order (at, status, code, description, location)
    return CarrierEvent(at, status, code, (description or short).strip(),
                        f"{locality}, {country}" if locality and country else locality or country or "")


def _checked_event(raw: Any, home_country: str | None, what: str = "event") -> CarrierEvent:
    if not isinstance(raw, dict):
        raise Malformed(f"{what} is not an object", raw)
    stamp = field(raw, "timestamp", str, what, required=True)
    code = field(raw, "statusCode", str, what) or ""
    description = field(raw, "description", str, what) or ""
    short = field(raw, "status", str, what) or ""
    address = _address(field(raw, "location", dict, what) or {}, f"{what}.location")
    locality = field(address, "addressLocality", str, f"{what}.location.address") or ""
    country = _country(address, f"{what}.location.address")
    try:
        at = to_utc(stamp, country or home_country)
    except ValueError:
        raise Malformed(f"{what}.timestamp {stamp!r} is not an ISO 8601 time", raw) from None
    return CarrierEvent(
        at=at,
        status=status_of(code, f"{description}\n{short}"),
        code=code,
        description=(description or short).strip(),
        location=", ".join(part for part in (locality.strip(), country or "") if part),
    )


def _home_country(shipment: dict[str, Any]) -> str | None:
    """The shipment's country when origin and destination agree (a domestic parcel), else None."""
    countries = set()
    for side in ("origin", "destination"):
        place = field(shipment, side, dict, "shipment") or {}
        countries.add(_country(_address(place, side), f"{side}.address"))
    return countries.pop() if len(countries) == 1 else None


def _events(shipment: dict[str, Any]) -> tuple[CarrierEvent, ...]:
    home = _home_country(shipment)
    raw_events = field(shipment, "events", list, "shipment") or []
    events = tuple(_quick_event(raw, home) or _checked_event(raw, home, f"events[{i}]")
                   for i, raw in enumerate(raw_events))
    status = field(shipment, "status", dict, "shipment")
    if not events and status:  # no history given: the current status is the one event we know
        events = (_event(status, home, "status"),)
    return events


def _latest(shipment: dict[str, Any]) -> datetime:
    status = field(shipment, "status", dict, "shipment")
    home = _home_country(shipment)
    if status and status.get("timestamp") is not None:
        return _event(status, home, "status").at
    return max((event.at for event in _events(shipment)), default=datetime.min.replace(tzinfo=UTC))


def _select(shipments: list[Any], number: str) -> dict[str, Any] | None:
    """The shipment this number means (rule in the module docstring); None if the list is empty."""
    for i, shipment in enumerate(shipments):
        if not isinstance(shipment, dict):
            raise Malformed(f"shipments[{i}] is not an object", shipment)
    wanted = "".join(number.split()).upper()
    same_id = [s for s in shipments if "".join(str(s.get("id") or "").split()).upper() == wanted]
    candidates = same_id or shipments
    if len(candidates) <= 1:
        return candidates[0] if candidates else None
    latest = [_latest(s) for s in candidates]
    return candidates[latest.index(max(latest))]


def _day(text: Any, what: str, fragment: Any) -> date | None:
    if text is None:
        return None
    if not isinstance(text, str):
        raise Malformed(f"{what} is not a string", fragment)
    try:
        return datetime.fromisoformat(text).date()  # the local date DHL promises, not converted to UTC
    except ValueError:
        raise Malformed(f"{what} {text!r} is not an ISO 8601 time", fragment) from None


def _estimate(shipment: dict[str, Any]) -> date | None:
    exact = _day(shipment.get("estimatedTimeOfDelivery"), "estimatedTimeOfDelivery", shipment)
    if exact is not None:
        return exact
    frame = field(shipment, "estimatedDeliveryTimeFrame", dict, "shipment") or {}
    return (_day(frame.get("estimatedThrough"), "estimatedDeliveryTimeFrame.estimatedThrough", frame)
            or _day(frame.get("estimatedFrom"), "estimatedDeliveryTimeFrame.estimatedFrom", frame))


def _person(value: Any, what: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip() or None
    if not isinstance(value, dict):
        raise Malformed(f"{what} is neither a name nor a person", value)
    name = field(value, "name", str, what)
    if name and name.strip():
        return name.strip()
    parts = (field(value, "givenName", str, what), field(value, "familyName", str, what))
    return " ".join(p.strip() for p in parts if p and p.strip()) or None


def _signed_by(shipment: dict[str, Any]) -> str | None:
    details = field(shipment, "details", dict, "shipment") or {}
    proof = field(details, "proofOfDelivery", dict, "details") or {}
    return (_person(proof.get("signed"), "proofOfDelivery.signed")
            or _person(proof.get("signee"), "proofOfDelivery.signee"))


def parse_tracking(payload: Any, number: str, source: str) -> TrackingResult:
    """A 200 answer for one number. Raises ResponseError (naming account and number) if it is malformed."""
    try:
        if not isinstance(payload, dict):
            raise Malformed("the answer is not a JSON object", payload)
        shipments = field(payload, "shipments", list, "answer", required=True)
        shipment = _select(shipments, number)
        if shipment is None:
            return TrackingResult(number, found=False)
        return TrackingResult(number, events=_events(shipment), estimated_delivery=_estimate(shipment),
                              signed_by=_signed_by(shipment))
    except Malformed as bad:
        raise ResponseError(f"unexpected answer: {bad.problem}", source=source, tracking_number=number,
                            body=dump(bad.fragment)) from None


def parse_not_found(payload: Any, number: str, source: str) -> TrackingResult:
    """A 404 answer: DHL's problem JSON means "no shipment yet"; anything else is not DHL talking."""
    if not isinstance(payload, dict):
        raise ResponseError("unexpected 404 answer (not a problem JSON object)", source=source, status_code=404,
                            tracking_number=number, body=dump(payload))
    return TrackingResult(number, found=False)


# ── The adapter ──────────────────────────────────────────────────────────────────────────────────────────────


class DhlCourier:
    """A DHL Unified Tracking account. One request per number; `track` runs them concurrently within limits."""

    batch_size = 1

    def __init__(self, name: str = "dhl", *, api_key: str, base_url: str = DEFAULT_BASE_URL,
                 service: str | None = None, language: str = "en", requester_country_code: str | None = None,
                 limits: Limits = DEFAULT_LIMITS, retry: RetryPolicy = DEFAULT_RETRY,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        if not api_key:
            raise ValueError("api_key must not be empty")
        self.name = name
        self.concurrency = limits.concurrency
        self._params = {"language": language}
        if service:
            self._params["service"] = service
        if requester_country_code:
            self._params["requesterCountryCode"] = requester_country_code
        client = make_client(base_url, transport=transport, headers={"DHL-API-Key": api_key})
        self.http = Http(name, client, limits, retry)

    async def track(self, numbers: Sequence[str]) -> list[TrackingResult]:
        results: list[TrackingResult | None] = [None] * len(numbers)

        async def one(index: int, number: str) -> None:
            try:
                results[index] = await self._track_one(number)
            except AuthError:
                raise  # the whole account is refused: stop the others and tell the poller
            except CarrierError as exc:  # transient or refused for this number only
                results[index] = TrackingResult(number, found=False, error=exc)

        try:
            async with asyncio.TaskGroup() as group:
                for index, number in enumerate(numbers):
                    group.create_task(one(index, number))
        except* AuthError as refused:
            raise refused.exceptions[0] from None
        return [r for r in results if r is not None]

    async def _track_one(self, number: str) -> TrackingResult:
        response = await self.http.request("GET", "/track/shipments", tracking_number=number,
                                           ok=frozenset({404}), params={"trackingNumber": number, **self._params})
        payload = parse_json(response, self.name, number)
        if response.status_code == 404:
            return parse_not_found(payload, number, self.name)
        return parse_tracking(payload, number, self.name)

    def tracking_url(self, number: str) -> str:
        return TRACKING_PAGE + quote(number.strip(), safe="")

    async def aclose(self) -> None:
        await self.http.aclose()


def courier_from_settings(name: str, section: Section, clock: Clock) -> DhlCourier:
    """`[couriers.<name>]` with `type = "dhl"`: api_key (required), base_url, service, language,
    requester_country_code, and limit overrides concurrency / per_second / per_day."""
    section.check_keys(COMMON_KEYS | KEYS)

    def optional(key: str) -> str | None:
        if key not in section.data:
            return None
        value = section.str(key).strip()
        if not value:
            raise section.error(key, "must not be empty; leave the key out instead")
        return value

    api_key = section.str("api_key").strip()
    if not api_key:
        raise section.error("api_key", "must not be empty: the DHL developer portal's consumer key")
    country = optional("requester_country_code")
    if country is not None and not (len(country) == 2 and country.isalpha()):
        raise section.error("requester_country_code",
                            f"must be a two-letter country code like 'DE', not {country!r}")
    return DhlCourier(
        name,
        api_key=api_key,
        base_url=optional("base_url") or DEFAULT_BASE_URL,
        service=optional("service"),
        language=optional("language") or "en",
        requester_country_code=country.upper() if country else None,
        limits=Limits.from_section(section, DEFAULT_LIMITS),
    )
