"""AfterShip Tracking API (legacy v4) as trackmail's aggregator: one account tracks the parcels of couriers
trackmail has no direct adapter for.

API facts relied on (carrier-samples README §5 and §12, the AfterShip v4 docs and its official SDKs):

- Host ``https://api.aftership.com``; every request carries the header ``aftership-api-key: <key>``.
- Read one: ``GET /v4/trackings/{slug}/{tracking_number}`` → 200 ``{"meta": {"code": 200}, "data": {"tracking":
  {…}}}``. A number AfterShip does not track yet → HTTP 404 with ``meta.code`` 4004 "Tracking does not exist".
- Read several by number, no slug needed: ``GET /v4/trackings?tracking_numbers=A,B&created_at_min=…&limit=200
  &page=N`` → ``data.trackings[]`` and ``data.count`` (``tracking_numbers`` is comma separated, per the official
  Node SDK's MultiTrackingsQueryParams). ``created_at_min`` defaults to 30 days ago, so we pass 90 days ago (AfterShip
  keeps 90 days of data); ``limit`` is at most 200 per page. Used when the account has no ``slug``.
- Create: ``POST /v4/trackings`` ``{"tracking": {"tracking_number": …, "slug": …}}``; ``slug`` is optional (AfterShip
  detects the courier). → 201 with a Pending tracking and no checkpoints: AfterShip fetches the courier's data
  asynchronously. ``meta.code`` 4003 "Tracking already exists" is fine.
- Flow ("create the tracking on first sight, then read it"): read; if AfterShip does not know the number, create it
  and answer found=False (not known yet); a later poll reads it. A number is created at most once per courier
  instance (and so at most once per `track` call), whatever AfterShip answers afterwards.
- Errors: envelope ``{"meta": {"code", "message", "type"}, "data": {}}``; 401 "Invalid API Key" → AuthError;
  408/429/5xx are retried by carriers.http; other 4xx are per-number ResponseErrors.
- No bulk read by slug+number: with a slug, one GET per number; without, one listing per batch of `BATCH_SIZE`.
- Limits: legacy v4 allows 10 requests/s per organisation, shared by everything using the key: we default to 5/s
  with 2 in flight, no daily cap.

Statuses: ``tag`` (9 delivery statuses) and ``subtag`` (``<Tag>_NNN``, a refinement of the tag) on the tracking and
on every checkpoint. Events come from the checkpoints only (oldest first, as AfterShip sends them); the tracking's own
tag summarises them, and its ``Expired`` is AfterShip's 30-day rule: trackmail applies its own `expire_after`. A
tracking with no checkpoints yet (``Pending``) is "not known yet". The event code is the checkpoint's ``subtag``
(its ``tag`` when there is none); a subtag missing from STATUS_CODES falls back to its tag, which AfterShip defines
as the parent status, and a tag missing from the table is UNKNOWN. ``raw_tag`` (the underlying courier's own code)
is not copied into the description, which customers read in emails.

Times: ``checkpoint_time`` is the courier's local time, usually with an offset, which we use; without one (seen in
webhook payloads) it is taken as UTC. Estimated delivery: ``expected_delivery`` (the courier's), else
``aftership_estimated_delivery_date.estimated_delivery_date``, else ``latest_estimated_delivery.datetime``; the
calendar date as written (no time-zone shift). Location: "City, State, ISO3" from the checkpoint's fields, else its
free-text ``location``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx

from carriers.aftership_codes import STATUS_CODES
from carriers.base import (
    COMMON_KEYS,
    AuthError,
    CarrierError,
    CarrierEvent,
    ResponseError,
    TrackingResult,
    TransientError,
)
from carriers.http import Http, Limits, RetryPolicy, make_client, parse_json
from carriers.read import Malformed, aware_utc, dump, loose_text
from tracker.clock import Clock, system_clock
from tracker.settings import Section
from tracker.status import ShipmentStatus

NAME = "aftership"
DEFAULT_BASE_URL = "https://api.aftership.com"
PUBLIC_TRACKING_URL = "https://track.aftership.com"
# No daily cap; legacy 10 req/s per org, GET /trackings/:id 5/s:
# https://www.aftership.com/docs/tracking/2025-01/quickstart/rate-limit
DEFAULT_LIMITS = Limits(concurrency=2, per_second=5.0, per_day=None)
DEFAULT_RETRY = RetryPolicy()
BATCH_SIZE = 50  # numbers per track() call: one listing (limit 200) without a slug, sequential GETs with one
PAGE_LIMIT = 200  # the v4 maximum page size
MAX_PAGES = 5
KEPT_FOR = timedelta(days=90)  # AfterShip keeps trackings this long; the listing's window
TRACKING_EXISTS, TRACKING_MISSING = 4003, 4004
READ_MYSELF = frozenset({400, 404, 409, 422})  # 4xx statuses whose meta.code we look at ourselves
KEYS = frozenset({"api_key", "slug", "base_url", "concurrency", "per_second", "per_day"})


# ── Pure parsing: dict walks, no I/O ──────────────────────────────────────────────────────────────────────


def _malformed(what: str, fragment: Any, source: str, number: str | None) -> ResponseError:
    return ResponseError(f"unexpected AfterShip payload: {what}", source=source, body=dump(fragment),
                         tracking_number=number)


def _meta(payload: Any) -> dict[str, Any]:
    meta = payload.get("meta") if isinstance(payload, dict) else None
    return meta if isinstance(meta, dict) else {}


def meta_code(payload: Any) -> int | None:
    """The envelope's ``meta.code`` (200, 4003, 4004…), or None if the payload is not an AfterShip envelope."""
    code = _meta(payload).get("code")
    return code if isinstance(code, int) and not isinstance(code, bool) else None


def _data(payload: Any, source: str, number: str | None) -> dict[str, Any]:
    """The envelope's ``data`` after checking ``meta``: a refused key is an AuthError even inside a 200."""
    code = meta_code(payload)
    if code is None:
        raise _malformed("no meta.code envelope", payload, source, number)
    if code in (401, 403):
        raise AuthError(f"API key refused ({_meta(payload).get('message')})", source=source, status_code=code,
                        body=json.dumps(payload, default=str), tracking_number=number)
    if not 200 <= code < 300:
        raise ResponseError(f"AfterShip answered meta.code {code}: {_meta(payload).get('message')}", source=source,
                            body=json.dumps(payload, default=str), tracking_number=number)
    data = payload.get("data")
    if not isinstance(data, dict):
        raise _malformed("data is not an object", payload, source, number)
    return data


def _when(value: Any, checkpoint: Any, source: str, number: str) -> datetime:
    if not isinstance(value, str):
        raise _malformed("checkpoint_time is not an ISO 8601 time", checkpoint, source, number)
    try:
        return aware_utc(value, "checkpoint_time")
    except Malformed:
        raise _malformed("checkpoint_time is not an ISO 8601 time", checkpoint, source, number) from None


def _location(checkpoint: dict[str, Any]) -> str:
    city, state, country = (loose_text(checkpoint.get(k)) for k in ("city", "state", "country_iso3"))
    if city or state:
        return ", ".join(part for part in (city, state, country) if part)
    return loose_text(checkpoint.get("location")) or loose_text(checkpoint.get("country_name")) or country


def parse_checkpoint(checkpoint: Any, number: str, source: str) -> CarrierEvent:
    if not isinstance(checkpoint, dict):
        raise _malformed("a checkpoint is not an object", checkpoint, source, number)
    tag, subtag = loose_text(checkpoint.get("tag")), loose_text(checkpoint.get("subtag"))
    code = subtag or tag
    if not code:
        raise _malformed("a checkpoint has neither tag nor subtag", checkpoint, source, number)
    status = STATUS_CODES.get(code) or STATUS_CODES.get(tag) or ShipmentStatus.UNKNOWN
    description = loose_text(checkpoint.get("message")) or loose_text(checkpoint.get("subtag_message")) or code
    at = _when(checkpoint.get("checkpoint_time"), checkpoint, source, number)
    return CarrierEvent(at=at, status=status, code=code, description=description, location=_location(checkpoint))


def _date(value: Any) -> date | None:
    if isinstance(value, str) and len(value) >= 10:
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            return None
    return None


def _estimated_delivery(tracking: dict[str, Any]) -> date | None:
    """Optional fields: a value of the wrong shape is ignored rather than failing the whole number."""
    aftership = tracking.get("aftership_estimated_delivery_date")
    latest = tracking.get("latest_estimated_delivery")
    aftership = aftership if isinstance(aftership, dict) else {}
    latest = latest if isinstance(latest, dict) else {}
    for value in (tracking.get("expected_delivery"), aftership.get("estimated_delivery_date"),
                  aftership.get("estimated_delivery_date_max"), latest.get("datetime"), latest.get("datetime_max")):
        found = _date(value)
        if found is not None:
            return found
    return None


def parse_tracking_object(tracking: Any, number: str, source: str) -> TrackingResult:
    """One AfterShip Tracking object (``data.tracking``, a listing entry, a webhook's ``msg``). Raises
    ResponseError when it is malformed; no checkpoints yet → found=False."""
    if not isinstance(tracking, dict):
        raise _malformed("the tracking is not an object", tracking, source, number)
    if "checkpoints" not in tracking:
        raise _malformed("the tracking has no checkpoints field", tracking, source, number)
    checkpoints = tracking["checkpoints"] if tracking["checkpoints"] is not None else []
    if not isinstance(checkpoints, list):
        raise _malformed("checkpoints is not a list", tracking, source, number)
    events = tuple(parse_checkpoint(checkpoint, number, source) for checkpoint in checkpoints)
    if not events:
        return TrackingResult(number, found=False)
    return TrackingResult(number, events, estimated_delivery=_estimated_delivery(tracking),
                          signed_by=loose_text(tracking.get("signed_by")) or None)


def parse_tracking(payload: Any, number: str, source: str) -> TrackingResult:
    """The body of ``GET /v4/trackings/{slug}/{number}``."""
    return parse_tracking_object(_data(payload, source, number).get("tracking"), number, source)


def parse_webhook(payload: Any, source: str = NAME) -> TrackingResult:
    """A webhook body (already verified and JSON-decoded): ``msg`` is the same Tracking object as a GET returns.
    Raises ResponseError when the envelope or the tracking is malformed."""
    message = payload.get("msg") if isinstance(payload, dict) else None
    number = message.get("tracking_number") if isinstance(message, dict) else None
    if not isinstance(number, str) or not number.strip():
        raise _malformed("webhook without msg.tracking_number", payload, source, None)
    return parse_tracking_object(message, number, source)


def parse_list_page(payload: Any, source: str, label: str) -> tuple[list[Any], int]:
    """``data.trackings`` of one listing page and ``data.count`` (all matches, every page). `label` names the
    numbers asked for, for errors."""
    data = _data(payload, source, label)
    trackings, count = data.get("trackings"), data.get("count", 0)
    if not isinstance(trackings, list) or not isinstance(count, int):
        raise _malformed("data.trackings is not a list or data.count not a number", data, source, label)
    return trackings, count


def _key(number: str) -> str:
    return "".join(number.split()).upper()


def _richness(tracking: dict[str, Any] | None) -> tuple[int, str]:
    if tracking is None:
        return (-1, "")
    checkpoints = tracking.get("checkpoints")
    return (len(checkpoints) if isinstance(checkpoints, list) else 0, str(tracking.get("last_updated_at") or ""))


def parse_list(trackings: Sequence[Any], numbers: Sequence[str], source: str) -> dict[str, TrackingResult]:
    """Results for the numbers the listing holds (absent: AfterShip does not track them). A number tracked under
    several slugs takes the tracking with the most checkpoints, then the latest update. A malformed tracking only
    fails its own number; an entry without a readable tracking_number fails the listing."""
    wanted = {_key(number): number for number in numbers}
    best: dict[str, dict[str, Any]] = {}
    for entry in trackings:
        listed = entry.get("tracking_number") if isinstance(entry, dict) else None
        if not isinstance(listed, str):
            raise _malformed("a listed tracking has no tracking_number", entry, source, ", ".join(numbers))
        number = wanted.get(_key(listed))
        if number is not None and _richness(entry) > _richness(best.get(number)):
            best[number] = entry
    results: dict[str, TrackingResult] = {}
    for number, entry in best.items():
        try:
            results[number] = parse_tracking_object(entry, number, source)
        except ResponseError as exc:
            results[number] = TrackingResult(number, found=False, error=exc)
    return results


def _refused(response: httpx.Response, source: str, number: str) -> ResponseError:
    payload = parse_json(response, source, number)
    meta = _meta(payload)
    return ResponseError(f"request refused: meta.code {meta.get('code')} {meta.get('message')!r}", source=source,
                         status_code=response.status_code, body=response.text, tracking_number=number)


# ── The adapter ───────────────────────────────────────────────────────────────────────────────────────────


class AfterShipCourier:
    """One AfterShip account. With `slug`, every number is read and created for that courier; without, AfterShip
    detects the courier and numbers are read by listing."""

    batch_size = BATCH_SIZE

    def __init__(self, name: str = NAME, *, api_key: str, slug: str | None = None,
                 base_url: str = DEFAULT_BASE_URL, limits: Limits = DEFAULT_LIMITS, retry: RetryPolicy = DEFAULT_RETRY,
                 transport: httpx.AsyncBaseTransport | None = None, clock: Clock = system_clock) -> None:
        self.name = name
        self.slug = slug or None
        self.concurrency = limits.concurrency
        self._clock = clock
        self._created: set[str] = set()  # numbers this instance has asked AfterShip to track
        client = make_client(base_url.rstrip("/"), transport=transport, headers={"aftership-api-key": api_key})
        self.http = Http(name, client, limits, retry)

    def tracking_url(self, number: str) -> str:
        path = quote(number, safe="")
        if self.slug:
            path = f"{quote(self.slug, safe='')}/{path}"
        return f"{PUBLIC_TRACKING_URL}/{path}"

    async def track(self, numbers: Sequence[str]) -> list[TrackingResult]:
        """One result per number, in order. An AuthError or TransientError before anything was learned is raised
        (the poller keeps the batch as it is); after that, the numbers not yet answered carry it."""
        wanted = list(dict.fromkeys(numbers))
        results: dict[str, TrackingResult] = {}
        try:
            if self.slug is None:
                results.update(await self._read_listed(wanted))
            for number in wanted:
                if number not in results:
                    results[number] = await self._settle(number)
        except (AuthError, TransientError) as exc:
            if not results:
                raise
            for number in wanted:
                results.setdefault(number, TrackingResult(number, found=False, error=exc))
        return [results[number] for number in numbers]

    async def _settle(self, number: str) -> TrackingResult:
        """Read one number (with a slug) or create it (listing said unknown); a refusal stays with the number."""
        try:
            return await (self._read(number) if self.slug else self._create(number))
        except ResponseError as exc:
            return TrackingResult(number, found=False, error=exc)

    async def _read(self, number: str) -> TrackingResult:
        path = f"/v4/trackings/{quote(self.slug or '', safe='')}/{quote(number, safe='')}"
        response = await self.http.request("GET", path, tracking_number=number, ok=READ_MYSELF)
        if response.status_code < 400:
            return parse_tracking(parse_json(response, self.name, number), number, self.name)
        payload = parse_json(response, self.name, number)
        code = meta_code(payload)
        if code == TRACKING_MISSING or (response.status_code == 404 and code is not None):
            return await self._create(number)
        raise _refused(response, self.name, number)

    async def _read_listed(self, numbers: list[str]) -> dict[str, TrackingResult]:
        label = ", ".join(numbers)
        since = (self._clock() - KEPT_FOR).astimezone(UTC).isoformat(timespec="seconds")
        trackings: list[Any] = []
        try:
            for page in range(1, MAX_PAGES + 1):
                params = {"tracking_numbers": ",".join(numbers), "created_at_min": since, "limit": PAGE_LIMIT,
                          "page": page}
                response = await self.http.request("GET", "/v4/trackings", params=params, tracking_number=label)
                found, count = parse_list_page(parse_json(response, self.name, label), self.name, label)
                trackings += found
                if not found or page * PAGE_LIMIT >= count:
                    break
            return parse_list(trackings, numbers, self.name)
        except ResponseError as exc:  # the listing as a whole is unreadable: every number carries it
            return {number: TrackingResult(number, found=False, error=exc) for number in numbers}

    async def _create(self, number: str) -> TrackingResult:
        """Ask AfterShip to track `number` (once per instance); it has no data yet either way."""
        if number in self._created:
            return TrackingResult(number, found=False)
        self._created.add(number)
        tracking = {"tracking_number": number, **({"slug": self.slug} if self.slug else {})}
        try:
            response = await self.http.request("POST", "/v4/trackings", json={"tracking": tracking},
                                               tracking_number=number, ok=READ_MYSELF)
            if response.status_code >= 400 and meta_code(parse_json(response, self.name, number)) != TRACKING_EXISTS:
                raise _refused(response, self.name, number)
        except CarrierError:
            self._created.discard(number)  # let a later poll try again
            raise
        return TrackingResult(number, found=False)

    async def aclose(self) -> None:
        await self.http.aclose()


def courier_from_settings(name: str, section: Section, clock: Clock) -> AfterShipCourier:
    """``[couriers.<name>]`` with ``type = "aftership"``: ``api_key`` (required), ``slug`` (optional courier code),
    ``base_url``, and the limit overrides ``concurrency``, ``per_second``, ``per_day``."""
    section.check_keys(COMMON_KEYS | KEYS)
    api_key = section.credential("api_key")
    return AfterShipCourier(
        name,
        api_key=api_key,
        slug=section.str("slug", "").strip() or None,
        base_url=section.str("base_url", DEFAULT_BASE_URL),
        limits=Limits.from_section(section, DEFAULT_LIMITS),
        clock=clock,
    )
