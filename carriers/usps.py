"""USPS Tracking API v3 (REST, OAuth2). Web Tools TrackV2 (XML) was retired on 2026-01-25 and is not supported.

API facts relied on (carrier-samples README section 4a; USPS/api-examples README; the USPS tracking OpenAPI
spec 3.2.4 as vendored by karrio):
- Token: ``POST {base_url}/oauth2/v3/token`` with the JSON body ``{"client_id", "client_secret",
  "grant_type": "client_credentials"}``; the answer has ``access_token`` and ``expires_in`` (USPS's own
  example sends it as a string, "11111"). The token carries scope ``tracking``. Cached per account and
  refreshed 60 s before it expires, and once on a 401.
- Tracking: ``GET {base_url}/tracking/v3/tracking/{trackingNumber}?expand=DETAIL`` with ``Authorization:
  Bearer``. One number per request (batch_size 1). Production host ``https://apis.usps.com``; test host
  ``https://apis-tem.usps.com``.
- Limits: a quota per application, by default about 60 requests per hour across all v3 APIs, token calls
  included. DEFAULT_LIMITS (1 in flight, one call every 2 s, 1,400 a day ≈ 60/hour) keep under it over a day;
  bursts still meet the hourly quota, and its 429 carries a (often long) Retry-After: http.Http waits inline
  up to RetryPolicy.max_inline_wait, beyond that the TransientError (with retry_after) goes to the poller.
  Higher quotas come from USPS support: raise `per_day`/`per_second` in config then.
- Errors: ``{"apiVersion", "error": {"code", "message", "errors": [{"status", "code", "title", "detail"}]}}``,
  tracking codes as HTTP 400: 150001 status not yet available (→ not found, no error); 150002 number may be
  incorrect, 150003 no update yet for an item shipped from a Post Office, 150004 not available via this
  site, 150008 unavailable for the destination country, 150010 may belong to another shipper, 150011 pickup
  number, 150012 fraudulent postage (→ ResponseError for that number). Since 2026-04-01 tracking data is
  restricted by Mailer ID: 403 "The requested MID is not authorized…" → AuthError for that number.
- Events (``trackingEvents``, newest first): ``eventCode`` is mapped by STATUS_CODES; ``statusCategory``
  (STATUS_CATEGORIES) is used only when a payload has no events, timed by ``mailPieceIntakeDate``.
- Time: ``GMTTimestamp`` (UTC) when present; else ``eventTimestamp`` with its own offset if it carries one,
  else with ``GMTOffset``; else ``eventTimestamp`` is local time without offset and is taken AS UTC (an
  error of up to a few hours; USPS gives no zone name to do better).
- ``eventType``, ``status`` and ``mailClass`` may hold HTML (``<SUP>&#153;</SUP>``): tags are stripped and
  entities decoded in every description.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from typing import Any
from urllib.parse import quote

import httpx

from carriers.base import COMMON_KEYS, AuthError, CarrierEvent, ResponseError, TrackingResult
from carriers.http import Http, Limits, OAuthToken, RetryPolicy, client_credentials, make_client, parse_json, with_token
from carriers.read import Malformed, aware_utc, dump, iso_time, items, obj, text
from tracker.clock import Clock
from tracker.settings import Section
from tracker.status import ShipmentStatus

# Sources: [R] carrier-samples README 4a / the v3 sample payloads; [U] USPS "Customer Daily Extract" event
# table (01, 02, 53, 54 and the "Delivery Attempt: Action Needed" category); [C] community table of USPS
# PTR event codes (Perl USPS::WebTools::Tracking::Codes, the Pub 199 scan codes); [E] eHub's USPS table.
STATUS_CODES: dict[str, ShipmentStatus] = {
    "GX": ShipmentStatus.INFO_RECEIVED,  # Shipping Label Created, USPS Awaiting Item [R]
    "MA": ShipmentStatus.INFO_RECEIVED,  # Pre-Shipment Info Sent to USPS, USPS Awaiting Item [R]
    "89": ShipmentStatus.INFO_RECEIVED,  # Merchant Order Receipt Notification, USPS Awaiting Item [E]
    "03": ShipmentStatus.IN_TRANSIT,  # USPS in possession of item / Accepted / Picked Up (by carrier) [R]
    "PA": ShipmentStatus.IN_TRANSIT,  # Passive Acceptance, shown as "Shipment Acceptance" [C]
    "SF": ShipmentStatus.IN_TRANSIT,  # Departed Post Office [R]
    "10": ShipmentStatus.IN_TRANSIT,  # Arrived at USPS Regional (Origin) Facility / Processed [R]
    "T1": ShipmentStatus.IN_TRANSIT,  # Departed USPS Regional Facility [R]
    "TL": ShipmentStatus.IN_TRANSIT,  # In Transit to Next Facility [R]
    "A1": ShipmentStatus.IN_TRANSIT,  # Arrived at USPS Regional Facility [R]
    "EF": ShipmentStatus.IN_TRANSIT,  # Departed USPS Facility [R]
    "07": ShipmentStatus.IN_TRANSIT,  # Arrived at Post Office (Arrival at Unit) [R]
    "PC": ShipmentStatus.IN_TRANSIT,  # Sorting Complete [R]
    "06": ShipmentStatus.IN_TRANSIT,  # Forwarded [C]
    "42": ShipmentStatus.IN_TRANSIT,  # USPS Handoff to Shipping Partner [C]
    "80": ShipmentStatus.IN_TRANSIT,  # Picked Up by Shipping Partner [C]
    "81": ShipmentStatus.IN_TRANSIT,  # Arrived Shipping Partner Facility [C]
    "82": ShipmentStatus.IN_TRANSIT,  # Departed Shipping Partner Facility [C]
    "OF": ShipmentStatus.OUT_FOR_DELIVERY,  # Out for Delivery [R]
    "01": ShipmentStatus.DELIVERED,  # Delivered (sub-type in eventType, e.g. "Delivered, Parcel Locker") [R][U]
    "17": ShipmentStatus.DELIVERED,  # Picked Up By Agent [C]
    "43": ShipmentStatus.DELIVERED,  # Picked Up (at the Post Office) [C]
    "02": ShipmentStatus.FAILED_ATTEMPT,  # Notice Left [U]
    "52": ShipmentStatus.FAILED_ATTEMPT,  # Notice Left [C]
    "53": ShipmentStatus.FAILED_ATTEMPT,  # Notice Left (Receptacle Blocked) [U]
    "54": ShipmentStatus.FAILED_ATTEMPT,  # Notice Left (Receptacle Full / Item Oversized) [U]
    "55": ShipmentStatus.FAILED_ATTEMPT,  # Notice Left (No Secure Location Available) [C]
    "56": ShipmentStatus.FAILED_ATTEMPT,  # Notice Left (No Authorized Recipient Available) [C]
    "30": ShipmentStatus.FAILED_ATTEMPT,  # Delivery Attempted - No Access to Delivery Location [C]
    "51": ShipmentStatus.FAILED_ATTEMPT,  # Business Closed [C]
    "16": ShipmentStatus.AVAILABLE_FOR_PICKUP,  # Available for Pickup [C]
    "09": ShipmentStatus.RETURNED,  # Return to Sender [C]
    "21": ShipmentStatus.RETURNED,  # Return to Sender: No Such Number [C]
    "22": ShipmentStatus.RETURNED,  # Return to Sender: Insufficient Address [C]
    "23": ShipmentStatus.RETURNED,  # Return to Sender: Moved, Left No Address [C]
    "24": ShipmentStatus.RETURNED,  # Return to Sender: Forward Expired [C]
    "25": ShipmentStatus.RETURNED,  # Return to Sender: Addressee Unknown [C]
    "26": ShipmentStatus.RETURNED,  # Return to Sender: Vacant [C]
    "27": ShipmentStatus.RETURNED,  # Return to Sender: Unclaimed [C]
    "28": ShipmentStatus.RETURNED,  # Return to Sender: Deceased [C]
    "29": ShipmentStatus.RETURNED,  # Return to Sender: Other [C]
    "31": ShipmentStatus.RETURNED,  # Return to Sender: Not Picked Up [C]
    "04": ShipmentStatus.EXCEPTION,  # Refused [C]
    "05": ShipmentStatus.EXCEPTION,  # Undeliverable as Addressed [C]
    "08": ShipmentStatus.EXCEPTION,  # Missent [C]
    "11": ShipmentStatus.EXCEPTION,  # Dead Letter [C]
    "15": ShipmentStatus.EXCEPTION,  # Mis-shipped [C]
    "71": ShipmentStatus.EXCEPTION,  # Rescheduled to Next Delivery Day [C]
    "DX": ShipmentStatus.EXCEPTION,  # Delivery Status Not Updated [C]
}

# `statusCategory` (compared case-insensitively), used only for a payload without events.
STATUS_CATEGORIES: dict[str, ShipmentStatus] = {
    "Pre-Shipment": ShipmentStatus.INFO_RECEIVED,  # [R] "others include pre-shipment"
    "Accepted": ShipmentStatus.IN_TRANSIT,  # [R] observed
    "In Transit": ShipmentStatus.IN_TRANSIT,  # [R] observed
    "Moving Through Network": ShipmentStatus.IN_TRANSIT,  # [R] observed
    "Out for Delivery": ShipmentStatus.OUT_FOR_DELIVERY,  # [R]
    "Delivered": ShipmentStatus.DELIVERED,  # [R] observed
    "Available for Pickup": ShipmentStatus.AVAILABLE_FOR_PICKUP,  # [R]
    "Delivery Attempt": ShipmentStatus.FAILED_ATTEMPT,  # [U]
    "Delivery Attempt: Action Needed": ShipmentStatus.FAILED_ATTEMPT,  # [U]
    "Alert": ShipmentStatus.EXCEPTION,  # [R]
}
_CATEGORIES = {key.casefold(): status for key, status in STATUS_CATEGORIES.items()}

NOT_YET_AVAILABLE = "150001"
TRACKING_ERRORS: dict[str, str] = {  # USPS Error Inventory, sheet Tracking (all HTTP 400)
    "150002": "the tracking number may be incorrect",
    "150003": "no update yet for an item shipped from a Post Office",
    "150004": "status not available through this site",
    "150008": "tracking unavailable for the destination country",
    "150010": "the number may belong to another shipper",
    "150011": "a pickup number, not a tracking number",
    "150012": "fraudulent postage",
}
ESTIMATE_KEYS = ("expectedDeliveryTimeStamp", "expectedDeliveryDate", "predictedDeliveryDate",
                 "predictedDeliveryTimeStamp", "guaranteedDeliveryTimeStamp", "guaranteedDeliveryDate")
_TAG = re.compile(r"<[^>]*>")
_OFFSET = re.compile(r"^([+-])(\d{1,2}):?(\d{2})$")


def clean(said: str) -> str:
    """Plain text from USPS's HTML-bearing strings: tags dropped, entities decoded, spaces squeezed."""
    if "<" in said:  # most texts have no tag and no entity: skip the regex and the unescape for them
        said = _TAG.sub("", said)
    return " ".join(html.unescape(said).split() if "&" in said else said.split())


def _zone(offset: str) -> tzinfo:
    """USPS's GMTOffset ("-05:00", also "-7:00" and "+0530") as a zone; anything else is UTC. The one time
    format of USPS's own: timestamps themselves are ISO 8601 (carriers.read.aware_utc)."""
    match = _OFFSET.match(offset)
    if match is None:
        return UTC
    delta = timedelta(hours=int(match.group(2)), minutes=int(match.group(3)))
    return timezone(-delta if match.group(1) == "-" else delta)  # "+99:00" is a ValueError: a malformed answer


def _event_time(raw: dict[str, Any]) -> datetime:
    if gmt := text(raw.get("GMTTimestamp"), "GMTTimestamp"):
        return aware_utc(gmt, "GMTTimestamp")
    if local := text(raw.get("eventTimestamp"), "eventTimestamp"):
        moment = iso_time(local, "eventTimestamp")
        if moment.tzinfo is None:  # no offset of its own: GMTOffset says where (read only when needed)
            offset = text(raw.get("GMTOffset"), "GMTOffset")
            moment = moment.replace(tzinfo=_zone(offset) if offset else UTC)
        return moment.astimezone(UTC)
    raise Malformed("an event has neither GMTTimestamp nor eventTimestamp", raw)


def _location(data: dict[str, Any]) -> str:
    parts = (text(data.get("eventCity"), "eventCity"), text(data.get("eventState"), "eventState"),
             text(data.get("eventCountry"), "eventCountry"))  # spelled out: a loop here costs 0.2 µs an event
    return ", ".join([part for part in parts if part])


def parse_event(raw: Any) -> CarrierEvent:
    if type(raw) is not dict:  # checked inline: read.obj's Mapping check costs 0.15 µs, and this runs per event
        raw = obj(raw, "trackingEvents[]")
    code = text(raw.get("eventCode"), "eventCode")
    return CarrierEvent(_event_time(raw), STATUS_CODES.get(code.upper(), ShipmentStatus.UNKNOWN), code,
                        clean(text(raw.get("eventType"), "eventType")), _location(raw))


def _category_event(payload: dict[str, Any]) -> tuple[CarrierEvent, ...]:
    """The one event a payload without `trackingEvents` implies, if it says when (intake date)."""
    def read(key: str) -> str:  # each field read only when needed, as strictly as an event's
        return text(payload.get(key), key)

    category = read("statusCategory")
    stamp = read("mailPieceIntakeDate") or read("approximateIntakeDate")
    if not category or not stamp:
        return ()
    said = clean(read("status") or read("statusSummary") or category)
    if mail_class := clean(read("mailClass")):
        said = f"{said} ({mail_class})"
    status = _CATEGORIES.get(category.casefold(), ShipmentStatus.UNKNOWN)
    return (CarrierEvent(at=aware_utc(stamp, "mailPieceIntakeDate"), status=status, code=category, description=said),)


def _estimate(payload: dict[str, Any]) -> date | None:
    """The first expected/predicted/guaranteed date given; a malformed estimate is skipped, not fatal."""
    for key in ESTIMATE_KEYS:
        value = payload.get(key)
        if isinstance(value, str) and len(value) >= 10:
            try:
                return date.fromisoformat(value[:10])
            except ValueError:
                continue
    return None


def parse_tracking(payload: Any, number: str, source: str, *, body: str | None = None) -> TrackingResult:
    """A `expand=DETAIL` tracking payload → TrackingResult; ResponseError if it is not that shape."""
    try:
        if not isinstance(payload, dict) or not {"trackingNumber", "trackingEvents", "statusCategory"} & set(payload):
            raise Malformed("not a USPS tracking object", payload)
        raw_events = items(payload.get("trackingEvents") or [], "trackingEvents")
        events = tuple([parse_event(raw) for raw in raw_events]) or _category_event(payload)
        signers = [(e.at, name) for e, raw in zip(events, raw_events, strict=False)
                   if e.status is ShipmentStatus.DELIVERED and (name := text(raw.get("name"), "name"))]
    except (Malformed, ValueError, TypeError, OverflowError) as exc:  # e.g. GMTOffset "+99:00"
        raise ResponseError(f"unexpected tracking payload: {exc}", source=source, tracking_number=number,
                            body=body if body is not None else dump(payload)) from None
    return TrackingResult(number, events, found=True, estimated_delivery=_estimate(payload),
                          signed_by=max(signers)[1] if signers else None)


def _error_entries(payload: Any) -> list[tuple[str, str]]:
    """(code, text) pairs of an error envelope; tolerant of any shape."""
    error = obj(payload, strict=False).get("error")
    if not isinstance(error, dict):
        return []
    entries = []
    for entry in items(error.get("errors"), strict=False):
        if isinstance(entry, dict):
            said = next((str(entry[k]) for k in ("title", "detail") if entry.get(k)), "")
            entries.append((str(entry.get("code") or ""), clean(said)))
    message = clean(str(error.get("message") or ""))
    return entries or [(str(error.get("code") or ""), message)]


def parse_error(payload: Any, number: str, source: str, *, status_code: int, body: str) -> TrackingResult:
    """An error envelope about one number: 150001 → not known yet; anything else → ResponseError."""
    entries = _error_entries(payload)
    if any(code == NOT_YET_AVAILABLE for code, _ in entries):
        return TrackingResult(number, found=False)
    code, text = next((e for e in entries if e[0] in TRACKING_ERRORS), entries[0] if entries else ("", ""))
    meaning = TRACKING_ERRORS.get(code, "tracking request refused")
    message = f"USPS error {code or '(no code)'} ({meaning})" + (f": {text}" if text else "")
    error = ResponseError(message, source=source, status_code=status_code, body=body, tracking_number=number)
    return TrackingResult(number, found=False, error=error)


DEFAULT_BASE_URL = "https://apis.usps.com"
# v3 default quota 60 requests/hour per application (429 "Quota limit exceeded"), so ≈1,440/day less token calls
DEFAULT_LIMITS = Limits(concurrency=1, per_second=0.5, per_day=1400)
DEFAULT_RETRY = RetryPolicy()
DEFAULT_TOKEN_LIFETIME = 900.0  # seconds, if a token answer lacks a usable expires_in
TOKEN_PATH = "/oauth2/v3/token"
_REFUSED = "USPS refused the client credentials; check client_id/client_secret in config.toml"
_READ_STATUSES = frozenset({400, 403, 404})  # answers this module reads itself (403 is not a stale token)
_MID_HINT = ("USPS refused tracking data: the Mailer ID (MID) must be authorised for tracking (your own MID, "
             "a merchant authorisation, or an IP agreement; see usps.com/business/api-access.htm)")


class UspsCourier:
    """One USPS developer-portal app (client_id/client_secret) tracking one number per request."""

    batch_size = 1

    def __init__(self, name: str = "usps", *, client_id: str, client_secret: str, base_url: str = DEFAULT_BASE_URL,
                 limits: Limits = DEFAULT_LIMITS, retry: RetryPolicy = DEFAULT_RETRY,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.name = name
        self.concurrency = limits.concurrency
        self._credentials = {"client_id": client_id, "client_secret": client_secret,
                             "grant_type": "client_credentials"}
        self.http = Http(name, make_client(base_url, transport=transport), limits, retry)
        self._token = OAuthToken(self._fetch_token)

    async def _fetch_token(self) -> tuple[str, float]:
        """USPS takes the credentials as a JSON body and refuses them with a 400."""
        return await client_credentials(self.http, TOKEN_PATH, json=self._credentials, refused=frozenset({400}),
                                        refusal=_REFUSED, default_lifetime=DEFAULT_TOKEN_LIFETIME)

    async def track(self, numbers: Sequence[str]) -> list[TrackingResult]:
        return [await self._track_one(number) for number in numbers]

    async def _track_one(self, number: str) -> TrackingResult:
        await self._token.get()  # a refused or broken token is the account's failure: raised, not per number
        path = f"/tracking/v3/tracking/{quote(number, safe='')}"

        async def call(bearer: str) -> httpx.Response:
            return await self.http.request("GET", path, tracking_number=number, ok=_READ_STATUSES,
                                            params={"expand": "DETAIL"}, headers={"Authorization": f"Bearer {bearer}"})

        try:
            response = await with_token(self._token, call)
            return self._read(response, number)
        except ResponseError as exc:
            return TrackingResult(number, found=False, error=exc)

    def _read(self, response: httpx.Response, number: str) -> TrackingResult:
        code = response.status_code
        if code == 403:
            if "MID" in response.text:
                error = AuthError(_MID_HINT, source=self.name, status_code=403, body=response.text,
                                  tracking_number=number)
                return TrackingResult(number, found=False, error=error)
            raise AuthError("USPS refused access; the app needs the Tracking API product (scope tracking)",
                            source=self.name, status_code=403, body=response.text, tracking_number=number)
        payload = parse_json(response, self.name, number)
        if code >= 400 or (isinstance(payload, dict) and "error" in payload and "trackingEvents" not in payload):
            return parse_error(payload, number, self.name, status_code=code, body=response.text)
        return parse_tracking(payload, number, self.name, body=response.text)

    def tracking_url(self, number: str) -> str:
        return f"https://tools.usps.com/go/TrackConfirmAction?tLabels={quote(number, safe='')}"

    async def aclose(self) -> None:
        await self.http.aclose()


def courier_from_settings(name: str, section: Section, clock: Clock) -> UspsCourier:
    """`[couriers.<name>]` with type = "usps": client_id, client_secret, optional base_url and limits.
    `clock` is unused: token lifetimes are real time."""
    section.check_keys(COMMON_KEYS | {"client_id", "client_secret", "base_url", "concurrency", "per_second",
                                      "per_day"})
    credentials = {key: section.credential(key) for key in ("client_id", "client_secret")}
    limits = Limits.from_section(section, DEFAULT_LIMITS)
    return UspsCourier(name, base_url=section.str("base_url", DEFAULT_BASE_URL).rstrip("/"),
                       limits=limits, **credentials)
