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
known → ShipmentStatus.UNKNOWN. ``CarrierEvent.code`` keeps all three raw codes as ``type/code[/statusCode]``
(e.g. ``D/F4/011``) and the description is UPS's text. Decisions: a voided label (type MV, statusCode 007)
is an *exception* (the parcel will not travel under this number; the shop should look); clearance in
progress is an *exception* (held by customs); returning-to-sender is an *exception* until "returned".

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
import json
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import quote
from uuid import uuid4

import httpx

from carriers.base import AuthError, CarrierEvent, ResponseError, TrackingResult
from carriers.http import Http, Limits, OAuthToken, RetryPolicy, make_client, parse_json, token_shape, with_token
from tracker.status import ShipmentStatus

if TYPE_CHECKING:
    from tracker.clock import Clock
    from tracker.config import AccountSettings

S = ShipmentStatus

# ── UPS "Status/Description Codes" (activity status.statusCode) → canonical status ─────────────────────────
# Diff against UPS Track API appendix (karrio: modules/connectors/ups/vendors/Tracking-status-description-
# codes.html, where codes are written without leading zeros). Left out on purpose, because they say nothing
# about where the parcel is (the activity type then decides): 000 Status Not Available, 043 Voided Pickup,
# 088 Test, 114 Request Canceled, 127 Investigation Closed, 128 Investigation Canceled, 133 Return Label Left
# With Customer, 142 Claim Voided, 148/163 Package Information Unavailable, 155 Delivery Photo.
STATUS_CODES: dict[str, ShipmentStatus] = {
    "003": S.INFO_RECEIVED,  # Shipment Ready for UPS
    "005": S.IN_TRANSIT,  # On the Way
    "006": S.OUT_FOR_DELIVERY,  # Out for Delivery
    "007": S.EXCEPTION,  # Shipment Information Voided
    "010": S.IN_TRANSIT,  # On the Way
    "011": S.DELIVERED,  # Delivered
    "012": S.EXCEPTION,  # Clearance in Progress
    "013": S.EXCEPTION,  # Exception
    "014": S.IN_TRANSIT,  # Clearance Completed
    "016": S.IN_TRANSIT,  # In Warehouse
    "017": S.AVAILABLE_FOR_PICKUP,  # Held for Customer Pickup
    "018": S.IN_TRANSIT,  # Delivery Change Requested: Hold for Pickup
    "019": S.EXCEPTION,  # Held for Future Delivery
    "020": S.IN_TRANSIT,  # Held for Future Delivery Requested
    "021": S.OUT_FOR_DELIVERY,  # Out for Delivery
    "022": S.FAILED_ATTEMPT,  # First Attempt Made
    "023": S.FAILED_ATTEMPT,  # Second Delivery Attempted
    "024": S.FAILED_ATTEMPT,  # Final Attempt Made
    "025": S.IN_TRANSIT,  # On the Way
    "026": S.DELIVERED,  # Delivered by Local Post Office
    "027": S.IN_TRANSIT,  # Delivery Address Change Requested
    "028": S.IN_TRANSIT,  # Delivery Address Changed
    "029": S.EXCEPTION,  # Exception: Action Required
    "030": S.EXCEPTION,  # Local Post Office Exception
    "032": S.EXCEPTION,  # Adverse Weather May Cause Delay
    "033": S.EXCEPTION,  # Return to Sender Requested
    "034": S.RETURNED,  # Returned to Sender
    "035": S.EXCEPTION,  # Returning to Sender
    "036": S.EXCEPTION,  # Returning to Sender: In Transit
    "037": S.OUT_FOR_DELIVERY,  # Out for Delivery
    "038": S.IN_TRANSIT,  # Picked Up by UPS
    "039": S.IN_TRANSIT,  # On the Way
    "040": S.AVAILABLE_FOR_PICKUP,  # Ready for Customer Pickup
    "041": S.IN_TRANSIT,  # Service Upgrade Requested
    "042": S.IN_TRANSIT,  # Service Upgraded
    "044": S.IN_TRANSIT,  # On the Way to UPS
    "045": S.IN_TRANSIT,  # On the Way to UPS
    "046": S.EXCEPTION,  # Delay
    "047": S.IN_TRANSIT,  # On the Way
    "048": S.EXCEPTION,  # Delay
    "049": S.EXCEPTION,  # Delay: Action Required
    "050": S.EXCEPTION,  # Address Information Required
    "051": S.EXCEPTION,  # Delay: Emergency Situation or Severe Weather
    "052": S.EXCEPTION,  # Delay: Severe Weather
    "053": S.EXCEPTION,  # Delay: Severe Weather
    "054": S.IN_TRANSIT,  # Delivery Change Requested
    "055": S.IN_TRANSIT,  # Rescheduled Delivery (the new date arrives as deliveryDate RDD)
    "056": S.IN_TRANSIT,  # Service Upgrade Requested
    "057": S.IN_TRANSIT,  # On the Way to a Local UPS Access Point
    "058": S.EXCEPTION,  # Clearance Information Required
    "059": S.EXCEPTION,  # Damage Reported
    "060": S.FAILED_ATTEMPT,  # Delivery Attempted
    "061": S.FAILED_ATTEMPT,  # Delivery Attempted: Adult Signature Required
    "062": S.FAILED_ATTEMPT,  # Delivery Attempted: Funds Required
    "063": S.IN_TRANSIT,  # Delivery Change Completed
    "064": S.EXCEPTION,  # Delivery Refused
    "065": S.INFO_RECEIVED,  # Pickup Attempted (still with the shipper)
    "066": S.FAILED_ATTEMPT,  # Post Office Delivery Attempted
    "067": S.RETURNED,  # Returned to Sender by Post Office
    "068": S.EXCEPTION,  # Sent to Lost and Found
    "069": S.EXCEPTION,  # Unable to Deliver
    "070": S.IN_TRANSIT,  # Package not at UPS Access Point yet
    "071": S.IN_TRANSIT,  # Preparing for Delivery
    "072": S.OUT_FOR_DELIVERY,  # Loaded on Delivery Vehicle
    "073": S.IN_TRANSIT,  # In Transit to UPS Delivery Partner
    "074": S.IN_TRANSIT,  # UPS Delivery Partner has Shipment
    "075": S.IN_TRANSIT,  # Scheduled for Delivery
    "076": S.EXCEPTION,  # UPS Delivery Partner Exception
    "077": S.INFO_RECEIVED,  # Scheduled for Pickup Today
    "078": S.OUT_FOR_DELIVERY,  # Your Driver is Arriving Soon!
    "079": S.IN_TRANSIT,  # Order Processed: In Transit to UPS
    "080": S.INFO_RECEIVED,  # Order Processed: Ready for UPS
    "081": S.RETURNED,  # Returned - Damage Reported
    "082": S.IN_TRANSIT,  # Delivery Instructions Received
    "083": S.EXCEPTION,  # Held
    "084": S.IN_TRANSIT,  # Cleared
    "085": S.EXCEPTION,  # Held for COD Payment
    "086": S.EXCEPTION,  # Delay
    "087": S.IN_TRANSIT,  # On the Way
    "089": S.OUT_FOR_DELIVERY,  # Out for Delivery
    "090": S.EXCEPTION,  # Delay
    "091": S.OUT_FOR_DELIVERY,  # Out for Delivery
    "092": S.EXCEPTION,  # Customs Clearance in Progress
    "093": S.EXCEPTION,  # Premier Recovery In Progress
    "094": S.IN_TRANSIT,  # Premier Recovery Completed
    "095": S.IN_TRANSIT,  # Additional Attempt Requested
    "096": S.IN_TRANSIT,  # Address Change Confirmed
    "097": S.IN_TRANSIT,  # Address Change Requested
    "098": S.IN_TRANSIT,  # Deliver to Original Address Requested
    "099": S.IN_TRANSIT,  # Deliver to Original Address Confirmed
    "100": S.IN_TRANSIT,  # Hold at UPS Access Point Confirmed (ready = 017/040)
    "101": S.IN_TRANSIT,  # Hold at UPS Access Point Requested
    "102": S.IN_TRANSIT,  # Hold for Courier Requested
    "103": S.IN_TRANSIT,  # Hold for Courier Confirmed
    "104": S.EXCEPTION,  # Hold for Instructions Confirmed
    "105": S.IN_TRANSIT,  # Hold for Instructions Requested
    "106": S.IN_TRANSIT,  # Hold for Pickup Confirmed (ready = 017/040)
    "107": S.IN_TRANSIT,  # Hold for Pickup Requested
    "108": S.IN_TRANSIT,  # Hold for Pickup Today Confirmed
    "109": S.IN_TRANSIT,  # Hold for Pickup Today Requested
    "110": S.IN_TRANSIT,  # Refrigeration Confirmed
    "111": S.IN_TRANSIT,  # Refrigeration Requested
    "112": S.IN_TRANSIT,  # Re-Ice Confirmed
    "113": S.IN_TRANSIT,  # Re-Ice Requested
    "115": S.IN_TRANSIT,  # Reschedule Delivery Confirmed
    "116": S.IN_TRANSIT,  # Reschedule Delivery Requested
    "117": S.IN_TRANSIT,  # Return by Saturday Confirmed
    "118": S.EXCEPTION,  # Return to Sender Confirmed
    "119": S.EXCEPTION,  # Return to Sender Requested
    "120": S.IN_TRANSIT,  # Saturday Delivery Confirmed
    "121": S.IN_TRANSIT,  # Saturday Delivery Requested
    "122": S.IN_TRANSIT,  # Upgrade Confirmed
    "123": S.EXCEPTION,  # Pending Release From Non-UPS Broker
    "124": S.EXCEPTION,  # Clearance Information Needed
    "125": S.EXCEPTION,  # Clearance Information Needed
    "126": S.EXCEPTION,  # Pending Government Agency Release
    "129": S.EXCEPTION,  # Investigation Opened
    "130": S.EXCEPTION,  # Claim in Progress
    "131": S.INFO_RECEIVED,  # Final Pickup Attempted (still with the shipper)
    "132": S.EXCEPTION,  # Airport Security Delay
    "134": S.IN_TRANSIT,  # Cleared Import Customs
    "135": S.INFO_RECEIVED,  # Second Pickup Attempted (still with the shipper)
    "136": S.IN_TRANSIT,  # Delivery Rescheduled for Saturday
    "137": S.IN_TRANSIT,  # Transferred to UPS Delivery Partner
    "138": S.IN_TRANSIT,  # Awaiting Scheduled Departure
    "139": S.EXCEPTION,  # Security Access Required
    "140": S.EXCEPTION,  # Claim Paid - Claim Payment Has Been Processed.
    "141": S.EXCEPTION,  # Incomplete Documentation Received
    "143": S.DELIVERED,  # Delivered to Agent
    "144": S.AVAILABLE_FOR_PICKUP,  # Delivered to Post Office for Pickup
    "145": S.FAILED_ATTEMPT,  # Delivery Attempted
    "146": S.OUT_FOR_DELIVERY,  # Out for Delivery
    "147": S.EXCEPTION,  # Seized by Law Enforcement, No Longer in UPS possession
    "149": S.EXCEPTION,  # Prohibited Contents, Package Destroyed No Longer in UPS possession
    "153": S.IN_TRANSIT,  # Updated Delivery Time
    "154": S.IN_TRANSIT,  # Updated Delivery Date
    "156": S.DELIVERED,  # Commercial Inside Release
    "157": S.INFO_RECEIVED,  # Shipment Ready for UPS
    "158": S.IN_TRANSIT,  # On the Way
    "159": S.IN_TRANSIT,  # On the Way
    "160": S.IN_TRANSIT,  # We Have Your Package
    "161": S.AVAILABLE_FOR_PICKUP,  # Delivered to UPS Access Point
    "162": S.OUT_FOR_DELIVERY,  # Out for Delivery
    "164": S.IN_TRANSIT,  # On the Way
    "165": S.IN_TRANSIT,  # On the Way
    "166": S.INFO_RECEIVED,  # Shipment Ready for Roadie
    "167": S.IN_TRANSIT,  # Dropped off at UPS Store by Customer
    "168": S.IN_TRANSIT,  # Dropped off at Retail Location by Customer
    "169": S.IN_TRANSIT,  # Dropped off at a UPS Access Point by Customer
}

# 2-char scan codes (status.code), used only when statusCode is absent or not in STATUS_CODES. Only codes
# whose meaning UPS documents independently of the activity type (the same code can mean different things
# under different types, see UPS-API/api-documentation#7).
SCAN_CODES: dict[str, ShipmentStatus] = {
    "MP": S.INFO_RECEIVED,  # Shipper created a label, UPS has not received the package yet
    "XD": S.IN_TRANSIT,  # Drop-Off
    "OR": S.IN_TRANSIT,  # Origin Scan
    "AR": S.IN_TRANSIT,  # Arrived at Facility
    "DP": S.IN_TRANSIT,  # Departed from Facility
    "YP": S.IN_TRANSIT,  # Processing at UPS Facility
    "OT": S.OUT_FOR_DELIVERY,  # Out For Delivery Today
    "FS": S.DELIVERED,  # Delivered
    "F4": S.DELIVERED,  # Delivered
    "KB": S.DELIVERED,  # Delivered
    "SR": S.IN_TRANSIT,  # Your package was released by the customs agency
}

# Package activity types (status.type), the coarsest layer. Left out: DO/DD/W (freight only) and U (Track
# Alert only); NA "Not Available" is unknown by being absent.
ACTIVITY_TYPES: dict[str, ShipmentStatus] = {
    "D": S.DELIVERED,  # Delivered
    "I": S.IN_TRANSIT,  # In Transit, Out for Delivery (refined by code / statusCode)
    "M": S.INFO_RECEIVED,  # Billing Information Received (label created)
    "MV": S.EXCEPTION,  # Billing Information Voided
    "X": S.EXCEPTION,  # Exception (refined: failed attempts, pickup, returns)
    "P": S.IN_TRANSIT,  # Pickup
}

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


# ── Pure parsing ─────────────────────────────────────────────────────────────────────────────────────────


class _Malformed(ValueError):
    """The payload does not have the shape the Track API documents."""


def map_status(activity_type: str, scan_code: str, status_code: str) -> ShipmentStatus:
    """The canonical status of one UPS status object: the most specific known layer decides."""
    if status_code:
        found = STATUS_CODES.get(status_code.zfill(3) if status_code.isdigit() else status_code)
        if found is not None:
            return found
    return SCAN_CODES.get(scan_code) or ACTIVITY_TYPES.get(activity_type, S.UNKNOWN)


def parse_token(payload: Any, source: str, body: str | None = None) -> tuple[str, float]:
    """(access token, lifetime in seconds) from a token answer; `expires_in` may be a string or a number."""
    token = payload.get("access_token") if isinstance(payload, dict) else None
    if not isinstance(token, str) or not token:
        raise ResponseError(f"token answer without access_token ({token_shape(payload)})", source=source)
    return token, _lifetime(payload.get("expires_in"))


def error_codes(payload: Any) -> list[tuple[str, str]]:
    """(code, message) pairs of a UPS error envelope ``{"response":{"errors":[...]}}``; [] if none."""
    response = payload.get("response") if isinstance(payload, dict) else None
    errors = response.get("errors") if isinstance(response, dict) else None
    if not isinstance(errors, list):
        return []
    return [(str(e.get("code", "")), str(e.get("message", ""))) for e in errors if isinstance(e, dict)]


def parse_tracking(payload: Any, number: str, source: str, *, status_code: int = 200,
                   body: str | None = None) -> TrackingResult:
    """One inquiry's answer (a trackResponse or an error envelope) → TrackingResult. Raises ResponseError for
    an unexpected shape or a per-number error code, AuthError for a credentials code."""
    try:
        if isinstance(payload, dict) and "response" in payload and "trackResponse" not in payload:
            return _from_codes(error_codes(payload), number, source, status_code, body or _dump(payload))
        return _parse_track_response(payload, number, source, status_code, body)
    except (_Malformed, KeyError, TypeError, AttributeError, IndexError, ValueError) as exc:
        raise ResponseError(f"unexpected Track API answer ({exc})", source=source, status_code=status_code,
                            body=body or _dump(payload), tracking_number=number) from None


def _parse_track_response(payload: Any, number: str, source: str, status_code: int,
                          body: str | None) -> TrackingResult:
    track = _dict(_dict(payload, "body").get("trackResponse"), "trackResponse")
    shipments = [_dict(s, "shipment[]") for s in _list(track.get("shipment"), "trackResponse.shipment")]
    packages = [_dict(p, "package[]") for s in shipments for p in _list(s.get("package", []), "package")]
    if not packages:
        warnings = [_dict(w, "warnings[]") for s in shipments for w in _list(s.get("warnings", []), "warnings")]
        if not warnings:
            raise _Malformed("shipment without package or warnings")
        codes = [(str(w.get("code", "")), str(w.get("message", ""))) for w in warnings]
        return _from_codes(codes, number, source, status_code, body or _dump(payload))
    package = next((p for p in packages if p.get("trackingNumber") == number), packages[0])
    return parse_package(package, number)


def parse_package(package: dict[str, Any], number: str) -> TrackingResult:
    activities = _list(package.get("activity", []), "activity")
    events = [_event(_dict(a, f"activity[{i}]")) for i, a in enumerate(activities)]
    delivered = _delivered_event(package)
    if delivered is not None and not any(e.status in FINAL for e in events):
        events.append(delivered)
    return TrackingResult(number, tuple(events), estimated_delivery=_estimate(package),
                          signed_by=_received_by(package))


def _event(activity: dict[str, Any]) -> CarrierEvent:
    status = _dict(activity.get("status"), "activity.status")
    kind, scan, code = _text(status.get("type")), _text(status.get("code")), _text(status.get("statusCode"))
    raw = f"{kind}/{scan}/{code}" if code else f"{kind}/{scan}"
    description = _text(status.get("description")) or _text(status.get("simplifiedTextDescription"))
    return CarrierEvent(_timestamp(activity), map_status(kind, scan, code), raw, description,
                        _location(activity.get("location")))


def _timestamp(activity: dict[str, Any]) -> datetime:
    day = _ymd(activity.get("date"))
    clock = _hms(activity.get("time"))
    if day is None or clock is None:
        raise _Malformed(f"activity date/time {activity.get('date')!r} {activity.get('time')!r}")
    gmt_day, gmt_clock = _ymd(activity.get("gmtDate")), _hms(activity.get("gmtTime"))
    if gmt_day is not None and gmt_clock is not None:
        return _combine(gmt_day, gmt_clock, UTC)
    return _combine(day, clock, _offset(activity.get("gmtOffset")) or UTC).astimezone(UTC)


def _location(value: Any) -> str:
    if value is None:
        return ""
    address = _dict(_dict(value, "activity.location").get("address") or {}, "location.address")
    city = _text(address.get("city"))
    if city.isupper():
        city = city.title()  # UPS sends "ADRIAN" and "Adrian" for the same place
    country = _text(address.get("countryCode")) or _text(address.get("country"))
    return ", ".join(p for p in (city, _text(address.get("stateProvince")), country) if p)


def _estimate(package: dict[str, Any]) -> date | None:
    dates = {d.get("type"): _ymd(d.get("date")) for d in _loose_list(package.get("deliveryDate"))}
    found = dates.get("RDD") or dates.get("SDD")
    try:
        return date(*found) if found else None
    except ValueError:
        return None


def _delivered_event(package: dict[str, Any]) -> CarrierEvent | None:
    day = next((_ymd(d.get("date")) for d in _loose_list(package.get("deliveryDate")) if d.get("type") == "DEL"),
               None)
    if day is None:
        return None
    times = package.get("deliveryTime")
    clock = _hms(times.get("endTime")) if isinstance(times, dict) and times.get("type") == "DEL" else None
    try:
        return CarrierEvent(_combine(day, clock or (0, 0, 0), UTC), S.DELIVERED, "DEL", "Delivered")
    except _Malformed:
        return None


def _received_by(package: dict[str, Any]) -> str | None:
    info = package.get("deliveryInformation")
    name = info.get("receivedBy") if isinstance(info, dict) else None
    return (name.strip() or None) if isinstance(name, str) else None


def _from_codes(codes: list[tuple[str, str]], number: str, source: str, status_code: int,
                body: str) -> TrackingResult:
    if any(code in NOT_FOUND_CODES for code, _ in codes):
        return TrackingResult(number, found=False)
    said = "; ".join(f"UPS {code}: {message}" for code, message in codes) or "error answer without a code"
    kind = AuthError if any(code in AUTH_CODES for code, _ in codes) else ResponseError
    raise kind(said, source=source, status_code=status_code, body=body, tracking_number=number)


# Small, strict readers: a wrong type is a _Malformed naming what was expected.

def _dict(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Malformed(f"{what} is {type(value).__name__}, expected an object")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise _Malformed(f"{what} is {type(value).__name__}, expected a list")
    return value


def _loose_list(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise _Malformed(f"expected text, got {type(value).__name__}")


def _ymd(value: Any) -> tuple[int, int, int] | None:
    text = value.replace("-", "") if isinstance(value, str) else ""
    if len(text) != 8 or not text.isdigit():
        return None
    return int(text[:4]), int(text[4:6]), int(text[6:])


def _hms(value: Any) -> tuple[int, int, int] | None:
    text = value.replace(":", "").strip() if isinstance(value, str) else ""
    if not 1 <= len(text) <= 6 or not text.isdigit():
        return None
    text = text.zfill(6)  # gmtTime "74700" is 07:47:00
    return int(text[:2]), int(text[2:4]), int(text[4:])


def _offset(value: Any) -> timezone | None:
    text = value.replace(":", "").strip() if isinstance(value, str) else ""
    if len(text) != 5 or text[0] not in "+-" or not text[1:].isdigit():
        return None
    minutes = int(text[1:3]) * 60 + int(text[3:])
    return timezone(timedelta(minutes=-minutes if text[0] == "-" else minutes))


def _combine(day: tuple[int, int, int], clock: tuple[int, int, int], tz: timezone) -> datetime:
    try:
        return datetime(*day, *clock, tzinfo=tz)
    except ValueError:
        raise _Malformed(f"impossible date/time {day} {clock}") from None


def _lifetime(value: Any) -> float:
    try:
        seconds = float(value) if not isinstance(value, bool) else 0.0
    except (TypeError, ValueError):
        return DEFAULT_TOKEN_LIFETIME
    return seconds if seconds > 0 else DEFAULT_TOKEN_LIFETIME


def _dump(payload: Any) -> str:
    try:
        return json.dumps(payload, ensure_ascii=False)[:2000]
    except (TypeError, ValueError):
        return repr(payload)[:2000]


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
        response = await self.http.request("POST", TOKEN_PATH, ok=frozenset({400}),
                                           auth=httpx.BasicAuth(self._client_id, self._client_secret),
                                           data={"grant_type": "client_credentials"})
        payload = parse_json(response, self.name, secret=True)
        if response.status_code == 400:
            said = ", ".join(f"UPS {c}: {m}" for c, m in error_codes(payload)) or "no error code"
            raise AuthError(f"token refused ({said}); check client_id/client_secret", source=self.name,
                            status_code=400, body=response.text)
        return parse_token(payload, self.name)


async def _stamp_trans_id(request: httpx.Request) -> None:
    request.headers["transId"] = uuid4().hex  # unique per HTTP attempt, 32 characters


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


# ── Registry factory (carriers/__init__.py) ──────────────────────────────────────────────────────────────

UPS_KEYS = frozenset({"client_id", "client_secret", "base_url", "concurrency", "per_second", "per_day"})


def courier_from_settings(account: AccountSettings, clock: Clock) -> UpsCourier:
    """A `[couriers.<name>]` section with ``type = "ups"``: client_id, client_secret (use ${ENV} references),
    optional base_url (``https://wwwcie.ups.com`` for UPS's test host) and limit overrides."""
    from carriers import COMMON_KEYS  # the registry imports this module first

    section = account.section
    section.check_keys(COMMON_KEYS | UPS_KEYS)
    credentials = {key: section.credential(key) for key in ("client_id", "client_secret")}
    return UpsCourier(account.name, **credentials, base_url=section.str("base_url", DEFAULT_BASE_URL),
                      limits=Limits.from_section(section, DEFAULT_LIMITS))
