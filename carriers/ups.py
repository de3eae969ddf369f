"""UPS Track API (REST, OAuth 2 client credentials).

API facts relied on (UPS-API/api-documentation Tracking.yaml; /work/shared/carrier-samples/README.md §2):

- Token: ``POST {base_url}/security/v1/oauth/token``, HTTP Basic ``client_id:client_secret``, form body
  ``grant_type=client_credentials``. The answer carries ``access_token`` and ``expires_in`` (seconds, sent as a
  *string* by UPS: "14399", about 4 h); it is parsed leniently and cached per account (http.OAuthToken),
  refreshed a minute before expiry and once on a 401.
- Tracking: ``GET {base_url}/api/track/v1/details/{inquiryNumber}?locale=en_US&returnSignature=false
  &returnMilestones=false&returnPOD=false`` with ``Authorization: Bearer <token>``, ``transId`` (unique per
  HTTP attempt, uuid4 hex = 32 chars, the documented maximum) and ``transactionSrc: trackmail``.
- Hosts: production ``https://onlinetools.ups.com`` (default); Customer Integration Environment (test)
  ``https://wwwcie.ups.com`` (set ``base_url``).
- Batch: one inquiry number per request (``batch_size = 1``); several numbers given to ``track`` run
  concurrently through the account's Http (its semaphore and rate limiter bound them).
- Limits: not published (429 = UPS error 10429, without rate-limit headers). Defaults: 2 in flight,
  5 requests/s, no daily cap; override with ``concurrency`` / ``per_second`` / ``per_day``.
- Answers: ``trackResponse.shipment[].package[].activity[]`` newest first. Per-number problems come as
  warnings inside a 200: ``TW0001`` "Tracking Information Not Found" → not known yet (found=False, no error);
  ``TV1002`` "Invalid inquiry number" → ResponseError for that number. Error envelopes
  ``{"response":{"errors":[{"code","message"}]}}`` come with 400/401/403/404/5xx: ``TW0001`` there is also
  "not found"; ``250002``/``250003`` (bad credentials) → AuthError; any other code → ResponseError naming it.

Status: each activity's ``status`` has ``type`` (D, I, M, MV, X, P, ...), ``code`` (2-char scan code) and,
in current answers, ``statusCode`` (3-digit "status/description code"). The most specific layer that is
known decides: ``STATUS_CODES`` (statusCode) → ``SCAN_CODES`` (code) → ``ACTIVITY_TYPES`` (type); nothing
known → ShipmentStatus.UNKNOWN (the tables are in carriers/ups_codes.py). ``CarrierEvent.code`` keeps all
three raw codes as ``type/code[/statusCode]`` (e.g. ``D/F4/011``) and the description is UPS's text.
Decisions: a voided label (type MV, statusCode 007) is an *exception* (the parcel will not travel under this
number; the shop should look); clearance in progress is an *exception* (held by customs); returning-to-sender
is an *exception* until "returned".

Times: ``date`` YYYYMMDD + ``time`` HHMMSS are local to the scan. When the activity carries ``gmtDate`` +
``gmtTime`` (UTC; ``gmtTime`` may lack its leading zero or have colons) those are used; else ``gmtOffset``
("-05:00") applied to the local time; else **the local time is treated as UTC** (UPS gives no zone), which
can shift an event by a few hours but keeps every event of one answer on the same footing.
``estimated_delivery`` comes from ``deliveryDate[]`` (RDD rescheduled wins over SDD scheduled); a ``DEL``
date (+ ``deliveryTime`` ``DEL`` end time) adds a synthetic ``DEL`` "Delivered" event only when no activity
already says delivered or returned. ``signed_by`` is ``deliveryInformation.receivedBy``. Odd values in these
three optional fields are ignored; an unexpected shape anywhere else is a ResponseError for that number.
When one inquiry returns several packages, the one whose ``trackingNumber`` equals the number is used,
else the first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote
from uuid import uuid4

import httpx

from carriers.base import COMMON_KEYS, AuthError, CarrierEvent, ResponseError, TrackingResult
from carriers.http import (
    Http,
    Limits,
    OAuthToken,
    RetryPolicy,
    client_credentials,
    make_client,
    parse_json,
    read_token,
    with_token,
)
from carriers.read import Malformed, dump, items, obj, text
from carriers.ups_codes import ACTIVITY_TYPES, SCAN_CODES, STATUS_CODES
from tracker.clock import Clock
from tracker.settings import Section
from tracker.status import ShipmentStatus

S = ShipmentStatus

NOT_FOUND_CODES = frozenset({"TW0001"})  # Tracking Information Not Found
AUTH_CODES = frozenset({"250002", "250003"})  # Invalid Authentication Information / Access License number
FINAL = frozenset({S.DELIVERED, S.RETURNED})

DEFAULT_BASE_URL = "https://onlinetools.ups.com"
TEST_BASE_URL = "https://wwwcie.ups.com"  # Customer Integration Environment
TOKEN_PATH = "/security/v1/oauth/token"
TRACK_PATH = "/api/track/v1/details/"
TRACK_QUERY = {"locale": "en_US", "returnSignature": "false", "returnMilestones": "false", "returnPOD": "false"}
TRANSACTION_SRC = "trackmail"
# UPS publishes no tracking quota (429 = error 10429): no day budget unless config sets per_day
DEFAULT_LIMITS = Limits(concurrency=2, per_second=5.0, per_day=None)
DEFAULT_RETRY = RetryPolicy()
DEFAULT_TOKEN_LIFETIME = 3600.0  # seconds, when an answer's expires_in is missing or unreadable
PUBLIC_TRACKING_URL = "https://www.ups.com/track?loc=en_US&tracknum="
_INT = (int,)  # UPS text fields may come as JSON integers: they are read as their digits


# ── Pure parsing ─────────────────────────────────────────────────────────────────────────────────────────
# Values go through carriers.read. On the per-activity path an object is checked inline (`type(x) is dict`)
# and only handed to read.obj when it is not one: obj's Mapping check would cost 0.15 µs per call there.


def map_status(activity_type: str, scan_code: str, status_code: str) -> ShipmentStatus:
    """The canonical status of one UPS status object: the most specific known layer decides."""
    if status_code:
        found = STATUS_CODES.get(status_code.zfill(3) if status_code.isdigit() else status_code)
        if found is not None:
            return found
    return SCAN_CODES.get(scan_code) or ACTIVITY_TYPES.get(activity_type, S.UNKNOWN)


def parse_token(payload: Any, source: str) -> tuple[str, float]:
    """(access token, lifetime in seconds) from a token answer; `expires_in` may be a string or a number."""
    return read_token(payload, source, DEFAULT_TOKEN_LIFETIME)


def error_codes(payload: Any) -> list[tuple[str, str]]:
    """(code, message) pairs of a UPS error envelope ``{"response":{"errors":[...]}}``; [] if none."""
    response = obj(payload, strict=False).get("response")
    errors = items(obj(response, strict=False).get("errors"), strict=False)
    return [(str(e.get("code", "")), str(e.get("message", ""))) for e in errors if isinstance(e, dict)]


def parse_tracking(payload: Any, number: str, source: str, *, status_code: int = 200,
                   body: str | None = None) -> TrackingResult:
    """One inquiry's answer (a trackResponse or an error envelope) → TrackingResult. Raises ResponseError for
    an unexpected shape or a per-number error code, AuthError for a credentials code."""
    try:
        if isinstance(payload, dict) and "response" in payload and "trackResponse" not in payload:
            return _from_codes(error_codes(payload), number, source, status_code, body or dump(payload))
        return _parse_track_response(payload, number, source, status_code, body)
    except (Malformed, KeyError, TypeError, AttributeError, IndexError, ValueError) as exc:
        raise ResponseError(f"unexpected Track API answer ({exc})", source=source, status_code=status_code,
                            body=body or dump(payload), tracking_number=number) from None


def _parse_track_response(payload: Any, number: str, source: str, status_code: int,
                          body: str | None) -> TrackingResult:
    track = obj(obj(payload, "body").get("trackResponse"), "trackResponse")
    shipments = [obj(s, "shipment[]") for s in items(track.get("shipment"), "trackResponse.shipment")]
    packages = [obj(p, "package[]") for s in shipments for p in items(s.get("package", []), "package")]
    if not packages:
        warnings = [obj(w, "warnings[]") for s in shipments for w in items(s.get("warnings", []), "warnings")]
        if not warnings:
            raise Malformed("shipment without package or warnings")
        codes = [(str(w.get("code", "")), str(w.get("message", ""))) for w in warnings]
        return _from_codes(codes, number, source, status_code, body or dump(payload))
    package = next((p for p in packages if p.get("trackingNumber") == number), packages[0])
    return parse_package(package, number)


def parse_package(package: dict[str, Any], number: str) -> TrackingResult:
    activities = items(package.get("activity", []), "activity")
    events = [_event(a if type(a) is dict else obj(a, f"activity[{i}]")) for i, a in enumerate(activities)]
    delivered = _delivered_event(package)
    if delivered is not None and not any(e.status in FINAL for e in events):
        events.append(delivered)
    return TrackingResult(number, tuple(events), estimated_delivery=_estimate(package),
                          signed_by=_received_by(package))


def _event(activity: dict[str, Any]) -> CarrierEvent:
    status = activity.get("status")
    if type(status) is not dict:
        status = obj(status, "activity.status")
    kind = text(status.get("type"), "status.type", numbers=_INT)
    scan = text(status.get("code"), "status.code", numbers=_INT)
    code = text(status.get("statusCode"), "status.statusCode", numbers=_INT)
    raw = f"{kind}/{scan}/{code}" if code else f"{kind}/{scan}"
    description = (text(status.get("description"), "status.description", numbers=_INT)
                   or text(status.get("simplifiedTextDescription"), "status.simplifiedTextDescription", numbers=_INT))
    return CarrierEvent(_timestamp(activity), map_status(kind, scan, code), raw, description,
                        _location(activity.get("location")))


def _timestamp(activity: dict[str, Any]) -> datetime:
    day = _ymd(activity.get("date"))
    clock = _hms(activity.get("time"))
    if day is None or clock is None:
        raise Malformed(f"activity date/time {activity.get('date')!r} {activity.get('time')!r}", activity)
    gmt_date, gmt_time = activity.get("gmtDate"), activity.get("gmtTime")
    if gmt_date and gmt_time:  # most answers have neither: skip reading them (this runs once per event)
        gmt_day, gmt_clock = _ymd(gmt_date), _hms(gmt_time)
        if gmt_day is not None and gmt_clock is not None:
            return _combine(gmt_day, gmt_clock, UTC)
    offset = activity.get("gmtOffset")
    zone = (_offset(offset) if offset else None) or UTC
    moment = _combine(day, clock, zone)
    return moment if zone is UTC else moment.astimezone(UTC)


def _location(value: Any) -> str:
    if value is None:
        return ""
    if type(value) is not dict:
        value = obj(value, "activity.location")
    address = value.get("address") or {}
    if type(address) is not dict:
        address = obj(address, "location.address")
    city = text(address.get("city"), "address.city", numbers=_INT)
    if city.isupper():
        city = city.title()  # UPS sends "ADRIAN" and "Adrian" for the same place
    country = (text(address.get("countryCode"), "address.countryCode", numbers=_INT)
               or text(address.get("country"), "address.country", numbers=_INT))
    state = text(address.get("stateProvince"), "address.stateProvince", numbers=_INT)
    return ", ".join([p for p in (city, state, country) if p])


def _delivery_dates(package: dict[str, Any]) -> list[dict[str, Any]]:
    """deliveryDate[] entries that are objects (only shown, so anything else is skipped, not fatal)."""
    return [d for d in items(package.get("deliveryDate"), strict=False) if isinstance(d, dict)]


def _estimate(package: dict[str, Any]) -> date | None:
    dates = {d.get("type"): _ymd(d.get("date")) for d in _delivery_dates(package)}
    found = dates.get("RDD") or dates.get("SDD")
    try:
        return date(*found) if found else None
    except ValueError:
        return None


def _delivered_event(package: dict[str, Any]) -> CarrierEvent | None:
    day = next((_ymd(d.get("date")) for d in _delivery_dates(package) if d.get("type") == "DEL"), None)
    if day is None:
        return None
    times = obj(package.get("deliveryTime"), strict=False)
    clock = _hms(times.get("endTime")) if times.get("type") == "DEL" else None
    try:
        return CarrierEvent(_combine(day, clock or (0, 0, 0), UTC), S.DELIVERED, "DEL", "Delivered")
    except Malformed:
        return None


def _received_by(package: dict[str, Any]) -> str | None:
    info = obj(package.get("deliveryInformation"), strict=False)
    return text(info.get("receivedBy"), strict=False) or None


def _from_codes(codes: list[tuple[str, str]], number: str, source: str, status_code: int,
                body: str) -> TrackingResult:
    if any(code in NOT_FOUND_CODES for code, _ in codes):
        return TrackingResult(number, found=False)
    said = "; ".join(f"UPS {code}: {message}" for code, message in codes) or "error answer without a code"
    kind = AuthError if any(code in AUTH_CODES for code, _ in codes) else ResponseError
    raise kind(said, source=source, status_code=status_code, body=body, tracking_number=number)


# UPS's own date and time formats (read.aware_utc reads ISO 8601, which these are not).

def _ymd(value: Any) -> tuple[int, int, int] | None:
    digits = value.replace("-", "") if isinstance(value, str) else ""
    if len(digits) != 8 or not digits.isdigit():
        return None
    return int(digits[:4]), int(digits[4:6]), int(digits[6:])


def _hms(value: Any) -> tuple[int, int, int] | None:
    digits = value.replace(":", "").strip() if isinstance(value, str) else ""
    if not 1 <= len(digits) <= 6 or not digits.isdigit():
        return None
    digits = digits.zfill(6)  # gmtTime "74700" is 07:47:00
    return int(digits[:2]), int(digits[2:4]), int(digits[4:])


def _offset(value: Any) -> timezone | None:
    digits = value.replace(":", "").strip() if isinstance(value, str) else ""
    if len(digits) != 5 or digits[0] not in "+-" or not digits[1:].isdigit():
        return None
    minutes = int(digits[1:3]) * 60 + int(digits[3:])
    return timezone(timedelta(minutes=-minutes if digits[0] == "-" else minutes))


def _combine(day: tuple[int, int, int], clock: tuple[int, int, int], tz: timezone) -> datetime:
    try:
        return datetime(*day, *clock, tzinfo=tz)
    except ValueError:
        raise Malformed(f"impossible date/time {day} {clock}") from None


# ── The adapter ──────────────────────────────────────────────────────────────────────────────────────────


class UpsCourier:
    """One UPS developer app (client id + secret): tracks 1Z and other UPS numbers, one per request."""

    batch_size = 1

    def __init__(self, name: str = "ups", *, client_id: str, client_secret: str,
                 base_url: str = DEFAULT_BASE_URL, limits: Limits = DEFAULT_LIMITS,
                 retry: RetryPolicy = DEFAULT_RETRY, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.name = name
        self.concurrency = limits.concurrency
        self._client_id = client_id
        self._client_secret = client_secret
        client = make_client(base_url.rstrip("/"), transport=transport, headers={"transactionSrc": TRANSACTION_SRC})
        client.event_hooks = {"request": [_stamp_trans_id], "response": []}
        self.http = Http(name, client, limits, retry)
        self._token = OAuthToken(self._fetch_token)

    async def track(self, numbers: Sequence[str]) -> list[TrackingResult]:
        if not numbers:
            return []
        await self._token.get()  # a refused token fails the whole call here, asked for once
        outcomes = await asyncio.gather(*(self._track_one(n) for n in numbers), return_exceptions=True)
        results = []
        for number, outcome in zip(numbers, outcomes, strict=True):
            if isinstance(outcome, ResponseError):
                results.append(TrackingResult(number, found=False, error=outcome))
            elif isinstance(outcome, BaseException):
                raise outcome  # AuthError / TransientError: the whole call failed, the poller retries later
            else:
                results.append(outcome)
        return results

    def tracking_url(self, number: str) -> str:
        return PUBLIC_TRACKING_URL + quote(number, safe="")

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _track_one(self, number: str) -> TrackingResult:
        response = await with_token(self._token, lambda bearer: self._get(number, bearer))
        payload = parse_json(response, self.name, number)
        return parse_tracking(payload, number, self.name, status_code=response.status_code, body=response.text)

    async def _get(self, number: str, bearer: str) -> httpx.Response:
        response = await self.http.request("GET", TRACK_PATH + quote(number, safe=""), tracking_number=number,
                                           ok=frozenset({400, 404}), params=TRACK_QUERY,
                                           headers={"Authorization": f"Bearer {bearer}"})
        if response.status_code != 200:
            codes = [code for code, _ in error_codes(_json_or_none(response))]
            if any(code in AUTH_CODES for code in codes):  # an AuthError here makes with_token refresh once
                raise AuthError(f"credentials refused (UPS {', '.join(codes)})", source=self.name,
                                status_code=response.status_code, body=response.text, tracking_number=number)
        return response

    async def _fetch_token(self) -> tuple[str, float]:
        """UPS wants HTTP Basic credentials and refuses them with a 400 carrying its error codes."""
        basic = httpx.BasicAuth(self._client_id, self._client_secret)
        return await client_credentials(self.http, TOKEN_PATH, auth=basic, data={"grant_type": "client_credentials"},
                                        refused=frozenset({400}), refusal=self._refusal,
                                        default_lifetime=DEFAULT_TOKEN_LIFETIME)

    def _refusal(self, response: httpx.Response) -> str:
        payload = parse_json(response, self.name, secret=True)  # not JSON: a ResponseError, without the body
        said = ", ".join(f"UPS {c}: {m}" for c, m in error_codes(payload)) or "no error code"
        return f"token refused ({said}); check client_id/client_secret"


async def _stamp_trans_id(request: httpx.Request) -> None:
    request.headers["transId"] = uuid4().hex  # unique per HTTP attempt, 32 characters


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


# ── Registry factory (carriers/__init__.py) ──────────────────────────────────────────────────────────────

UPS_KEYS = frozenset({"client_id", "client_secret", "base_url", "concurrency", "per_second", "per_day"})


def courier_from_settings(name: str, section: Section, clock: Clock) -> UpsCourier:
    """A `[couriers.<name>]` section with ``type = "ups"``: client_id, client_secret (use ${ENV} references),
    optional base_url (``https://wwwcie.ups.com`` for UPS's test host) and limit overrides. `clock` is not
    used: token lifetimes are measured in real (monotonic) time."""
    section.check_keys(COMMON_KEYS | UPS_KEYS)
    credentials = {key: section.credential(key) for key in ("client_id", "client_secret")}
    return UpsCourier(name, **credentials, base_url=section.str("base_url", DEFAULT_BASE_URL),
                      limits=Limits.from_section(section, DEFAULT_LIMITS))
