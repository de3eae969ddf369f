"""FedEx Track API (REST, OAuth2 client credentials): one courier account, one module.

API facts relied on (shared/carrier-samples/README.md section 3, FedEx developer portal, the FedEx OpenAPI
spec ``track.json``):

- Hosts: production ``https://apis.fedex.com`` (default), sandbox ``https://apis-sandbox.fedex.com``.
- Token: ``POST {base_url}/oauth/token``, form body ``grant_type=client_credentials&client_id=…&client_secret=…``;
  the answer carries ``access_token`` and ``expires_in`` (about 3600 s; 3600 is assumed when it is missing).
  The token is cached per account (``http.OAuthToken``) and refreshed once on a 401/403 (``http.with_token``).
- Tracking: ``POST {base_url}/track/v1/trackingnumbers`` with ``Authorization: Bearer <token>`` and the JSON
  body ``{"includeDetailedScans": true, "trackingInfo": [{"trackingNumberInfo": {"trackingNumber": "…"}}]}``.
  **At most 30 numbers per request** (``BATCH_SIZE``); ``track`` splits longer lists and sends the chunks one
  after the other. Numbers are sent stripped and once each; the answer is matched back by number (ignoring
  case and spaces) and returned in the caller's order, whatever order FedEx answers in.
- Published limits: 1,400 transactions per 10 s per project; 100,000 requests a day for the tracking
  capability; over-limit → HTTP 429 ("Retry after 12:00AM GMT"). Defaults (``DEFAULT_LIMITS``): 4 in flight,
  10 requests a second, 100,000 a day.
- Request-level errors: ``{"transactionId", "errors": [{"code", "message"}]}`` with 400
  (``TRACKING.TRACKINGNUMBER.EMPTY`` …) → ResponseError, 401 ``NOT.AUTHORIZED.ERROR`` (token expired) or 403
  → one token refresh, then AuthError; 429/5xx → retried by ``http.Http``. Blank numbers are answered locally
  with a ResponseError and never sent, so one of them cannot get the whole batch refused.
- Per-number errors come inside a 200: ``output.completeTrackResults[].trackResults[].error``.
  ``TRACKING.TRACKINGNUMBER.NOTFOUND`` → ``found=False`` with no error (FedEx does not know the number yet);
  any other code → a ResponseError for that number only, even when the result also carries data (the
  published spec example does).
- Number reuse: one number may come back with several ``trackResults`` (``trackingNumberUniqueId`` differs).
  Results with an error are skipped when another has data; of the rest the MOST RECENT is kept: the one whose
  newest scan event is latest (else whose newest ``dateAndTimes`` entry is latest); on a tie the later one in
  FedEx's list. Its events alone are returned.
- Statuses: each ``scanEvents[].eventType`` goes through ``STATUS_CODES``. A ``DE`` (delivery exception) scan
  whose ``exceptionCode`` is in ``ATTEMPT_EXCEPTION_CODES`` is a failed delivery attempt. An eventType missing
  from the table falls back to FedEx's own ``derivedStatusCode`` through ``DERIVED_CODES``; if that is
  missing too, the event is UNKNOWN. The raw eventType is the event's code; its description is
  ``eventDescription`` plus ``exceptionDescription`` and ``exceptionCode`` when FedEx gives them.
- ``latestStatusDetail`` (``code``, else ``derivedCode``) only adds an event when it says delivered, no scan
  says so and ``dateAndTimes`` has ``ACTUAL_DELIVERY`` (the event's time): the delivery is never lost.
- Timestamps usually carry a UTC offset, which is used. One without an offset (FedEx writes
  ``2024-08-15T00:00:00`` on some pickup scans, meaning "that day") is treated as UTC: the payload names no
  time zone. All times are returned as aware UTC datetimes.
- ``estimated_delivery``: ``dateAndTimes[type=ESTIMATED_DELIVERY]``, else ``estimatedDeliveryTimeWindow.window``
  ``ends`` (else ``begins``): the calendar date as FedEx wrote it (local), not converted to UTC.
  ``signed_by``: ``deliveryDetails.receivedByName``, else ``signedByName``.
- Public tracking page: ``https://www.fedex.com/fedextrack/?trknbr=<n>``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

from carriers.base import CarrierEvent, ResponseError, TrackingResult
from carriers.http import Http, Limits, OAuthToken, RetryPolicy, make_client, parse_json, token_shape, with_token
from tracker.status import ShipmentStatus

if TYPE_CHECKING:
    from tracker.clock import Clock
    from tracker.config import AccountSettings

S = ShipmentStatus

# ── FedEx scan codes (scanEvents[].eventType, latestStatusDetail.code) → canonical status ────────────────────
# Source: FedEx "Tracking Status Codes" table (karrio modules/connectors/fedex/vendor/Tracking-Status-Codes.html)
# plus AE, seen in real responses. Codes that say nothing about where the parcel is are listed as UNKNOWN on
# purpose: they are kept in the history and never move a shipment.

STATUS_CODES: dict[str, ShipmentStatus] = {
    # Movement
    "AA": S.IN_TRANSIT,  # At Airport
    "AC": S.IN_TRANSIT,  # At Canada Post facility
    "AD": S.OUT_FOR_DELIVERY,  # At Delivery
    "AE": S.IN_TRANSIT,  # Shipment arriving early (not on the sheet; seen in real responses)
    "AF": S.IN_TRANSIT,  # At local FedEx Facility
    "AO": S.IN_TRANSIT,  # Shipment arriving On-time
    "AP": S.INFO_RECEIVED,  # At Pickup (courier at the shipper, parcel not yet picked up)
    "AR": S.IN_TRANSIT,  # Arrived at FedEx location
    "AX": S.IN_TRANSIT,  # At USPS facility
    "CA": S.EXCEPTION,  # Shipment Cancelled
    "CH": S.UNKNOWN,  # Location Changed (informational)
    "DD": S.EXCEPTION,  # Delivery Delay
    "DE": S.EXCEPTION,  # Delivery Exception (FAILED_ATTEMPT for ATTEMPT_EXCEPTION_CODES)
    "DL": S.DELIVERED,  # Delivered
    "DP": S.IN_TRANSIT,  # Departed
    "DR": S.UNKNOWN,  # Vehicle furnished but not used (freight, informational)
    "DS": S.UNKNOWN,  # Vehicle Dispatched (freight, informational)
    "DY": S.EXCEPTION,  # Delay
    "EA": S.IN_TRANSIT,  # Enroute to Airport; also "Export Approved" (regulatory): both in transit
    "ED": S.OUT_FOR_DELIVERY,  # Enroute to Delivery
    "EO": S.IN_TRANSIT,  # Enroute to Origin Airport
    "EP": S.INFO_RECEIVED,  # Enroute to Pickup (parcel not yet picked up)
    "FD": S.IN_TRANSIT,  # At FedEx Destination
    "HL": S.AVAILABLE_FOR_PICKUP,  # Hold at Location (held for the recipient to collect)
    "HP": S.AVAILABLE_FOR_PICKUP,  # Ready for Recipient Pickup
    "IT": S.IN_TRANSIT,  # In Transit
    "IX": S.IN_TRANSIT,  # In transit (see Details)
    "LO": S.IN_TRANSIT,  # Left Origin
    "OC": S.INFO_RECEIVED,  # Order Created ("Shipment information sent to FedEx": label created)
    "OD": S.OUT_FOR_DELIVERY,  # Out for Delivery ("On FedEx vehicle for delivery")
    "OF": S.IN_TRANSIT,  # At FedEx origin facility
    "OW": S.IN_TRANSIT,  # On the way (written "Ow" on the sheet; codes are compared upper-case)
    "OX": S.IN_TRANSIT,  # Shipment information sent to USPS (handed on for final delivery)
    "PD": S.EXCEPTION,  # Pickup Delay
    "PF": S.IN_TRANSIT,  # Plane in Flight
    "PL": S.IN_TRANSIT,  # Plane Landed
    "PM": S.UNKNOWN,  # In Progress (informational)
    "PU": S.IN_TRANSIT,  # Picked Up
    "PX": S.IN_TRANSIT,  # Picked up (see Details)
    "RR": S.UNKNOWN,  # CDO requested (recipient's delivery option, informational)
    "RM": S.UNKNOWN,  # CDO Modified
    "RC": S.UNKNOWN,  # CDO Cancelled
    "RS": S.RETURNED,  # Return to Shipper (will not reach the customer: final for us)
    "RP": S.UNKNOWN,  # Return label link emailed to return sender
    "LP": S.UNKNOWN,  # Return label link cancelled by shipment originator
    "RG": S.UNKNOWN,  # Return label link expiring soon
    "RD": S.UNKNOWN,  # Return label link expired
    "SE": S.EXCEPTION,  # Shipment Exception
    "SF": S.IN_TRANSIT,  # At Sort Facility
    "SP": S.UNKNOWN,  # Split Status (pieces of one shipment differ)
    "TR": S.IN_TRANSIT,  # Transfer
    # Regulatory
    "CC": S.IN_TRANSIT,  # Cleared Customs
    "CD": S.EXCEPTION,  # Clearance Delay
    "CP": S.IN_TRANSIT,  # Clearance in Progress
}

# FedEx's own summary codes (scanEvents[].derivedStatusCode, latestStatusDetail.derivedCode), used only when the
# eventType is not in STATUS_CODES. Those seen in the samples and the samples README.
DERIVED_CODES: dict[str, ShipmentStatus] = {
    "IN": S.INFO_RECEIVED,  # Initiated: label created (derived from OC)
    "PU": S.IN_TRANSIT,  # Picked up
    "IT": S.IN_TRANSIT,  # In transit (also derived for OD, AR, DP, AF, FD, HP …)
    "DL": S.DELIVERED,  # Delivered
    "DE": S.EXCEPTION,  # Delivery exception
    "DY": S.EXCEPTION,  # Delay
    "RL": S.EXCEPTION,  # Running Late
}

# `exceptionCode` of a DE scan that means the courier tried and could not deliver → FAILED_ATTEMPT.
ATTEMPT_EXCEPTION_CODES: dict[str, str] = {
    "08": "Customer not available or business closed",
}

NOT_FOUND_CODES = frozenset({"TRACKING.TRACKINGNUMBER.NOTFOUND"})

DEFAULT_BASE_URL = "https://apis.fedex.com"
SANDBOX_BASE_URL = "https://apis-sandbox.fedex.com"
TOKEN_PATH = "/oauth/token"
TRACK_PATH = "/track/v1/trackingnumbers"
BATCH_SIZE = 30
DEFAULT_TOKEN_LIFETIME = 3600.0
# Track capability: 100K requests/day per project, 1,400 per 10 s: https://developer.fedex.com/api/en-us/guides/ratelimits.html
DEFAULT_LIMITS = Limits(concurrency=4, per_second=10.0, per_day=100_000)
DEFAULT_RETRY = RetryPolicy()
TRACKING_URL = "https://www.fedex.com/fedextrack/?trknbr={}"
_MALFORMED = (KeyError, TypeError, AttributeError, ValueError)  # what a dict walk over a bad shape raises


# ── Pure parsing ─────────────────────────────────────────────────────────────────────────────────────────────


def event_status(code: str, derived: str = "", exception_code: str = "") -> ShipmentStatus:
    key = code.strip().upper()
    if key == "DE" and exception_code.strip() in ATTEMPT_EXCEPTION_CODES:
        return S.FAILED_ATTEMPT
    if key in STATUS_CODES:
        return STATUS_CODES[key]
    return DERIVED_CODES.get(derived.strip().upper(), S.UNKNOWN)


def parse_time(text: str) -> datetime:
    """An ISO 8601 time as aware UTC; without an offset it is taken as UTC (see the module docstring)."""
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value.strip()


def _location(place: Any) -> str:
    place = place or {}
    parts = (_text(place.get(key)) for key in ("city", "stateOrProvinceCode", "countryCode"))
    return ", ".join(part for part in parts if part)


def parse_event(scan: dict[str, Any]) -> CarrierEvent:
    code, exception_code = _text(scan.get("eventType")), _text(scan.get("exceptionCode"))
    description = _text(scan.get("eventDescription"))
    exception = _text(scan.get("exceptionDescription"))
    if exception:
        description = f"{description}: {exception}" if description else exception
    if exception_code:
        description = f"{description} ({exception_code})"
    status = event_status(code, _text(scan.get("derivedStatusCode")), exception_code)
    return CarrierEvent(parse_time(scan["date"]), status, code, description, _location(scan.get("scanLocation")))


def _dates(track: dict[str, Any]) -> dict[str, str]:
    """dateAndTimes as type → dateTime (the first of each type)."""
    found: dict[str, str] = {}
    for entry in track.get("dateAndTimes") or []:
        found.setdefault(_text(entry.get("type")), _text(entry.get("dateTime")))
    return found


def _estimated_delivery(track: dict[str, Any], dates: dict[str, str]) -> date | None:
    window = (track.get("estimatedDeliveryTimeWindow") or {}).get("window") or {}
    text = dates.get("ESTIMATED_DELIVERY") or _text(window.get("ends")) or _text(window.get("begins"))
    return datetime.fromisoformat(text).date() if text else None


def _delivered_from_summary(track: dict[str, Any], dates: dict[str, str],
                            events: list[CarrierEvent]) -> CarrierEvent | None:
    """A delivered event from latestStatusDetail + ACTUAL_DELIVERY when no scan says delivered."""
    latest = track.get("latestStatusDetail") or {}
    code = _text(latest.get("code"))
    if event_status(code, _text(latest.get("derivedCode"))) is not S.DELIVERED or not dates.get("ACTUAL_DELIVERY"):
        return None
    if any(event.status is S.DELIVERED for event in events):
        return None
    description = _text(latest.get("description")) or _text(latest.get("statusByLocale"))
    return CarrierEvent(parse_time(dates["ACTUAL_DELIVERY"]), S.DELIVERED, code or _text(latest.get("derivedCode")),
                        description, _location(latest.get("scanLocation")))


def parse_track_result(track: dict[str, Any], number: str) -> TrackingResult:
    """One `trackResults[]` entry that carries data (no error) → TrackingResult. Raises on a bad shape."""
    events = [parse_event(scan) for scan in track.get("scanEvents") or []]
    dates = _dates(track)
    summary = _delivered_from_summary(track, dates, events)
    if summary is not None:
        events.append(summary)
    details = track.get("deliveryDetails") or {}
    signed_by = _text(details.get("receivedByName")) or _text(details.get("signedByName"))
    return TrackingResult(number, tuple(events), estimated_delivery=_estimated_delivery(track, dates),
                          signed_by=signed_by or None)


def _recency(result: TrackingResult, track: dict[str, Any]) -> datetime:
    if result.events:
        return max(event.at for event in result.events)
    times = [parse_time(text) for text in _dates(track).values() if text]
    return max(times, default=datetime.min.replace(tzinfo=UTC))


def _error_result(error: dict[str, Any], number: str, source: str) -> TrackingResult:
    code = _text(error.get("code"))
    if code in NOT_FOUND_CODES:
        return TrackingResult(number, found=False)
    message = f"FedEx error {code or '(no code)'}: {_text(error.get('message')) or 'no message'}"
    failure = ResponseError(message, source=source, tracking_number=number, body=json.dumps(error))
    return TrackingResult(number, found=False, error=failure)


def parse_entry(entry: Any, number: str, source: str) -> TrackingResult:
    """One `completeTrackResults[]` entry → the result for `number` (see the module docstring on reuse)."""
    try:
        tracks = entry["trackResults"]
        if not isinstance(tracks, list) or not tracks:
            raise ValueError("trackResults is not a non-empty list")
        good = [track for track in tracks if not track.get("error")]
        if not good:
            return _error_result(tracks[0]["error"], number, source)
        parsed = [(parse_track_result(track, number), index, track) for index, track in enumerate(good)]
        return max(parsed, key=lambda item: (_recency(item[0], item[2]), item[1]))[0]
    except _MALFORMED as exc:
        failure = ResponseError(f"unexpected shape of FedEx's answer ({type(exc).__name__}: {exc})", source=source,
                                tracking_number=number, body=json.dumps(entry, default=str))
        return TrackingResult(number, found=False, error=failure)


def _key(number: str) -> str:
    return "".join(number.split()).upper()


def _entry_number(entry: Any) -> str:
    number = entry.get("trackingNumber")
    if not number:
        number = entry["trackResults"][0]["trackingNumberInfo"]["trackingNumber"]
    return _key(str(number))


def _whole_failure(message: str, numbers: Sequence[str], source: str, body: str,
                   status_code: int | None = None) -> list[TrackingResult]:
    """The same ResponseError for each number, each naming its number."""
    return [TrackingResult(n, found=False, error=ResponseError(message, source=source, status_code=status_code,
                                                                tracking_number=n, body=body))
            for n in numbers]


def parse_response(payload: Any, numbers: Sequence[str], source: str, body: str = "") -> list[TrackingResult]:
    """A whole answer → one result per number, in the order of `numbers`."""
    try:
        entries = payload["output"]["completeTrackResults"]
        if not isinstance(entries, list):
            raise TypeError("completeTrackResults is not a list")
    except _MALFORMED:
        errors = payload.get("errors") if isinstance(payload, dict) else None
        reason = "FedEx refused the request" if errors else "unexpected shape of FedEx's answer"
        return _whole_failure(reason, numbers, source, body or json.dumps(payload, default=str))
    by_number: dict[str, Any] = {}
    for entry in entries:
        try:
            by_number.setdefault(_entry_number(entry), entry)
        except (*_MALFORMED, IndexError):
            continue  # an entry we cannot attribute; the number it was for is reported as left out below
    results = []
    for number in numbers:
        entry = by_number.get(_key(number))
        if entry is None:
            results.extend(_whole_failure("FedEx's answer left this number out", [number], source, body))
        else:
            results.append(parse_entry(entry, number, source))
    return results


def parse_tracking(payload: Any, number: str, source: str) -> TrackingResult:
    return parse_response(payload, [number], source)[0]


# ── The adapter ──────────────────────────────────────────────────────────────────────────────────────────────


class FedExCourier:
    """A FedEx account. `track` takes any number of numbers and sends them 30 at a time."""

    batch_size = BATCH_SIZE

    def __init__(self, name: str = "fedex", *, client_id: str, client_secret: str,
                 base_url: str = DEFAULT_BASE_URL, limits: Limits = DEFAULT_LIMITS,
                 retry: RetryPolicy = DEFAULT_RETRY, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.name = name
        self.concurrency = limits.concurrency
        self._credentials = {"grant_type": "client_credentials", "client_id": client_id,
                             "client_secret": client_secret}
        self.http = Http(name, make_client(base_url.rstrip("/"), transport=transport), limits, retry)
        self._token = OAuthToken(self._fetch_token)

    async def _fetch_token(self) -> tuple[str, float]:
        response = await self.http.request("POST", TOKEN_PATH, data=self._credentials)
        payload = parse_json(response, self.name, secret=True)
        token = payload.get("access_token") if isinstance(payload, dict) else None
        if not isinstance(token, str) or not token:
            raise ResponseError(f"token answer without access_token ({token_shape(payload)})", source=self.name,
                                status_code=response.status_code)
        lifetime = payload.get("expires_in", DEFAULT_TOKEN_LIFETIME)
        try:
            return token, float(lifetime)
        except (TypeError, ValueError):  # the body holds the token: never put it in an error
            raise ResponseError(f"token answer with expires_in={lifetime!r}", source=self.name) from None

    async def _track_batch(self, numbers: list[str]) -> list[TrackingResult]:
        body = {"includeDetailedScans": True,
                "trackingInfo": [{"trackingNumberInfo": {"trackingNumber": n}} for n in numbers]}
        one = numbers[0] if len(numbers) == 1 else None

        async def call(token: str) -> httpx.Response:
            return await self.http.request("POST", TRACK_PATH, json=body, tracking_number=one,
                                           headers={"Authorization": f"Bearer {token}", "x-locale": "en_US"})

        response = await with_token(self._token, call)
        try:
            payload = parse_json(response, self.name, tracking_number=one)
        except ResponseError:  # an HTML page or a cut-off body: every number of the batch gets the error
            kind = response.headers.get("content-type", "unknown content type")
            return _whole_failure(f"expected JSON, got {kind}", numbers, self.name, response.text,
                                  response.status_code)
        return parse_response(payload, numbers, self.name, response.text)

    async def track(self, numbers: Sequence[str]) -> list[TrackingResult]:
        answers: dict[str, TrackingResult] = {}
        wanted: dict[str, str] = {}  # key → number as sent (stripped), once each
        for number in numbers:
            if _key(number):
                wanted.setdefault(_key(number), number.strip())
        sent = list(wanted.values())
        for start in range(0, len(sent), BATCH_SIZE):  # one chunk after the other: the poller sends ≤ 30
            for result in await self._track_batch(sent[start:start + BATCH_SIZE]):
                answers[_key(result.tracking_number)] = result
        results = []
        for number in numbers:
            answer = answers.get(_key(number))
            if answer is None:
                error = ResponseError(f"blank tracking number {number!r}, not sent to FedEx", source=self.name)
                answer = TrackingResult(number, found=False, error=error)
            # the poller matches answers on the number exactly as it asked
            results.append(answer if answer.tracking_number == number else replace(answer, tracking_number=number))
        return results

    def tracking_url(self, number: str) -> str:
        return TRACKING_URL.format(quote(number.strip(), safe=""))

    async def aclose(self) -> None:
        await self.http.aclose()


def courier_from_settings(account: AccountSettings, clock: Clock) -> FedExCourier:
    """`[couriers.<name>]` with type = "fedex": client_id, client_secret, optional base_url and limits.
    `clock` is not used: token lifetimes are measured in real (monotonic) time."""
    from carriers import COMMON_KEYS  # the registry imports the adapters first

    section = account.section
    section.check_keys(COMMON_KEYS | {"client_id", "client_secret", "base_url", "concurrency", "per_second",
                                      "per_day"})
    hint = "copy it from your FedEx developer project"
    credentials = {key: section.credential(key, hint) for key in ("client_id", "client_secret")}
    return FedExCourier(account.name, **credentials, base_url=section.str("base_url", DEFAULT_BASE_URL),
                        limits=Limits.from_section(section, DEFAULT_LIMITS))
