"""FedEx Track API (REST, OAuth2 client credentials): one courier account, one module.

API facts relied on (shared/carrier-samples/README.md section 3, FedEx developer portal, the FedEx OpenAPI
spec ``track.json``):

- Hosts: production ``https://apis.fedex.com`` (default), sandbox ``https://apis-sandbox.fedex.com``.
- Token: ``POST {base_url}/oauth/token``, form body ``grant_type=client_credentials&client_id=…&client_secret=…``;
  the answer carries ``access_token`` and ``expires_in`` (about 3600 s; 3600 is assumed when it is missing or
  unreadable). The token is cached per account (``http.OAuthToken``) and refreshed once on a 401/403
  (``http.with_token``).
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

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import quote

import httpx

from carriers.base import COMMON_KEYS, CarrierEvent, ResponseError, TrackingResult
from carriers.http import Http, Limits, OAuthToken, RetryPolicy, client_credentials, make_client, parse_json, with_token
from carriers.read import aware_utc, dump, text
from tracker.clock import Clock
from tracker.settings import Section
from tracker.status import ShipmentStatus

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
# Track capability: 100K requests/day per project, 1,400 per 10 s
# (https://developer.fedex.com/api/en-us/guides/ratelimits.html)
DEFAULT_LIMITS = Limits(concurrency=4, per_second=10.0, per_day=100_000)
DEFAULT_RETRY = RetryPolicy()
TRACKING_URL = "https://www.fedex.com/fedextrack/?trknbr={}"
_MALFORMED = (KeyError, TypeError, AttributeError, ValueError)  # a dict walk over a bad shape; read.Malformed


# ── Pure parsing ─────────────────────────────────────────────────────────────────────────────────────────────


def event_status(code: str, derived: str = "", exception_code: str = "") -> ShipmentStatus:
    key = code.strip().upper()
    if key == "DE" and exception_code.strip() in ATTEMPT_EXCEPTION_CODES:
        return S.FAILED_ATTEMPT
    if key in STATUS_CODES:
        return STATUS_CODES[key]
    return DERIVED_CODES.get(derived.strip().upper(), S.UNKNOWN)


# Texts are strict strings (read.text); times ISO 8601, one without an offset taken as UTC (read.aware_utc).


def _location(place: Any) -> str:
    place = place or {}
    parts = (text(place.get("city"), "city"), text(place.get("stateOrProvinceCode"), "stateOrProvinceCode"),
             text(place.get("countryCode"), "countryCode"))  # spelled out: a loop here costs 0.2 µs an event
    return ", ".join([part for part in parts if part])


def parse_event(scan: dict[str, Any]) -> CarrierEvent:
    code, exception_code = text(scan.get("eventType"), "eventType"), text(scan.get("exceptionCode"), "exceptionCode")
    description = text(scan.get("eventDescription"), "eventDescription")
    exception = text(scan.get("exceptionDescription"), "exceptionDescription")
    if exception:
        description = f"{description}: {exception}" if description else exception
    if exception_code:
        description = f"{description} ({exception_code})"
    status = event_status(code, text(scan.get("derivedStatusCode"), "derivedStatusCode"), exception_code)
    return CarrierEvent(aware_utc(scan.get("date"), "scanEvents[].date"), status, code, description,
                        _location(scan.get("scanLocation")))


def _dates(track: dict[str, Any]) -> dict[str, str]:
    """dateAndTimes as type → dateTime (the first of each type)."""
    found: dict[str, str] = {}
    for entry in track.get("dateAndTimes") or []:
        found.setdefault(text(entry.get("type"), "dateAndTimes[].type"),
                         text(entry.get("dateTime"), "dateAndTimes[].dateTime"))
    return found


def _estimated_delivery(track: dict[str, Any], dates: dict[str, str]) -> date | None:
    window = (track.get("estimatedDeliveryTimeWindow") or {}).get("window") or {}
    when = dates.get("ESTIMATED_DELIVERY") or text(window.get("ends"), "ends") or text(window.get("begins"), "begins")
    return datetime.fromisoformat(when).date() if when else None  # the local date: not converted to UTC


def _delivered_from_summary(track: dict[str, Any], dates: dict[str, str],
                            events: list[CarrierEvent]) -> CarrierEvent | None:
    """A delivered event from latestStatusDetail + ACTUAL_DELIVERY when no scan says delivered."""
    latest = track.get("latestStatusDetail") or {}
    code, derived = text(latest.get("code"), "code"), text(latest.get("derivedCode"), "derivedCode")
    if event_status(code, derived) is not S.DELIVERED or not dates.get("ACTUAL_DELIVERY"):
        return None
    if any(event.status is S.DELIVERED for event in events):
        return None
    description = text(latest.get("description"), "description") or text(latest.get("statusByLocale"), "statusByLocale")
    return CarrierEvent(aware_utc(dates["ACTUAL_DELIVERY"], "ACTUAL_DELIVERY"), S.DELIVERED, code or derived,
                        description, _location(latest.get("scanLocation")))


def parse_track_result(track: dict[str, Any], number: str) -> TrackingResult:
    """One `trackResults[]` entry that carries data (no error) → TrackingResult. Raises on a bad shape."""
    events = [parse_event(scan) for scan in track.get("scanEvents") or []]
    dates = _dates(track)
    summary = _delivered_from_summary(track, dates, events)
    if summary is not None:
        events.append(summary)
    details = track.get("deliveryDetails") or {}
    signer = text(details.get("receivedByName"), "receivedByName") or text(details.get("signedByName"), "signedByName")
    return TrackingResult(number, tuple(events), estimated_delivery=_estimated_delivery(track, dates),
                          signed_by=signer or None)


def _recency(result: TrackingResult, track: dict[str, Any]) -> datetime:
    if result.events:
        return max(event.at for event in result.events)
    times = [aware_utc(when, "dateAndTimes[].dateTime") for when in _dates(track).values() if when]
    return max(times, default=datetime.min.replace(tzinfo=UTC))


def _error_result(error: dict[str, Any], number: str, source: str) -> TrackingResult:
    code = text(error.get("code"), "error.code")
    if code in NOT_FOUND_CODES:
        return TrackingResult(number, found=False)
    message = f"FedEx error {code or '(no code)'}: {text(error.get('message'), 'error.message') or 'no message'}"
    failure = ResponseError(message, source=source, tracking_number=number, body=dump(error))
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
                                tracking_number=number, body=dump(entry))
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
        return _whole_failure(reason, numbers, source, body or dump(payload))
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
        """FedEx takes the credentials as form fields and refuses them with a 401 (an AuthError from Http)."""
        return await client_credentials(self.http, TOKEN_PATH, data=self._credentials,
                                        default_lifetime=DEFAULT_TOKEN_LIFETIME)

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


def courier_from_settings(name: str, section: Section, clock: Clock) -> FedExCourier:
    """`[couriers.<name>]` with type = "fedex": client_id, client_secret, optional base_url and limits.
    `clock` is not used: token lifetimes are measured in real (monotonic) time."""
    section.check_keys(COMMON_KEYS | {"client_id", "client_secret", "base_url", "concurrency", "per_second",
                                      "per_day"})
    hint = "copy it from your FedEx developer project"
    credentials = {key: section.credential(key, hint) for key in ("client_id", "client_secret")}
    return FedExCourier(name, **credentials, base_url=section.str("base_url", DEFAULT_BASE_URL),
                        limits=Limits.from_section(section, DEFAULT_LIMITS))
