"""DHL Unified Tracking: the recorded samples, the request DHL expects, its errors, and the text refinements."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
import respx

from carriers import dhl
from carriers.base import AuthError, Courier, ResponseError, TrackingResult, TransientError
from carriers.dhl import (
    COUNTRY_ZONES,
    DEFAULT_LIMITS,
    STATUS_CODES,
    TEXT_REFINEMENTS,
    DhlCourier,
    courier_from_settings,
    parse_not_found,
    parse_tracking,
    status_of,
)
from carriers.http import Limits, RetryPolicy
from tests.doubles import Sleeps
from tracker.settings import ConfigError, Section
from tracker.status import ShipmentStatus

S = ShipmentStatus
FIXTURES = Path(__file__).parent.parent / "fixtures" / "dhl"
BASE = "https://dhl.test"
URL = f"{BASE}/track/shipments"
PARCEL_DE = "470800204932"
EXPRESS = "7777777770"


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"dhl-unified-{name}.json").read_text(encoding="utf-8"))



def courier(sleeps: Sleeps | None = None, **kwargs) -> DhlCourier:
    kwargs.setdefault("limits", Limits(concurrency=4, per_second=1e6, per_day=None))  # never really waits
    return DhlCourier("dhl-eu", api_key="secret-key", base_url=BASE, retry=RetryPolicy(sleep=sleeps or Sleeps()),
                      **kwargs)


def track(numbers: list[str], sleeps: Sleeps | None = None, **kwargs) -> list[TrackingResult]:
    client = courier(sleeps, **kwargs)

    async def call() -> list[TrackingResult]:
        try:
            return await client.track(numbers)
        finally:
            await client.aclose()

    return asyncio.run(call())


def shipment(number: str = "123", events: list | None = None, **fields) -> dict:
    """A minimal DHL answer for one number."""
    body = {"id": number, "service": "parcel-de",
            "status": {"timestamp": "2024-05-02T10:00:00Z", "statusCode": "transit", "description": "In transit"},
            "events": events if events is not None else [
                {"timestamp": "2024-05-02T10:00:00Z", "statusCode": "transit", "description": "In transit"}]}
    body.update(fields)
    return body


def event(code: str = "transit", description: str = "", timestamp: str = "2024-05-02T10:00:00Z", **fields) -> dict:
    return {"timestamp": timestamp, "statusCode": code, "status": description, "description": description, **fields}


def one(payload: dict, number: str = "123") -> TrackingResult:
    return parse_tracking(payload, number, "dhl-eu")


# ── The recorded samples ────────────────────────────────────────────────────────────────────────────────────


def test_the_parcel_de_sample_is_delivered_after_ten_events_in_berlin_time():
    result = one(fixture("parcel-de-delivered"), PARCEL_DE)
    assert result.found and result.error is None
    assert len(result.events) == 10
    assert [e.status for e in result.events] == [
        S.DELIVERED, S.OUT_FOR_DELIVERY, *[S.IN_TRANSIT] * 6, S.INFO_RECEIVED, S.IN_TRANSIT]
    assert max(result.events, key=lambda e: e.at).status is S.DELIVERED
    delivered, loaded = result.events[0], result.events[1]
    # "2023-03-13T09:50:00" has no offset; origin and destination are DE, so it is Berlin time (CET, UTC+1).
    assert delivered.at == datetime(2023, 3, 13, 8, 50, tzinfo=UTC)
    assert delivered.code == "delivered" and delivered.description == "Die Sendung wurde zugestellt."
    assert delivered.location == "Deutschland"
    assert loaded.code == "transit" and loaded.description.startswith("Die Sendung wurde in das Zustellfahrzeug")
    assert loaded.location == ""
    assert result.estimated_delivery is None and result.signed_by is None


def test_the_express_spec_example_keeps_its_code_estimate_and_signature():
    result = one(fixture("express-spec-example"), EXPRESS)  # its id is a JSON number
    assert result.found and len(result.events) == 1
    only = result.events[0]
    # statusCode pre-transit wins over the filler text "DELIVERED": only transit/failure are refined.
    assert only.status is S.INFO_RECEIVED and only.code == "pre-transit" and only.description == "JESSICA"
    assert only.location == "Oderweg 2, AMSTERDAM, NL"
    assert only.at == datetime(2018, 3, 2, 6, 53, 47, tzinfo=UTC)  # offset-less, in NL (CET)
    assert result.estimated_delivery == date(2018, 8, 3)
    assert result.signed_by == "John"


def test_the_404_sample_is_not_found_without_an_error():
    assert parse_not_found(fixture("error-404"), "8264715546", "dhl-eu") == TrackingResult("8264715546", found=False)


@respx.mock
def test_a_404_over_http_is_not_found_and_is_not_retried():
    route = respx.get(URL).mock(return_value=httpx.Response(404, json=fixture("error-404")))
    sleeps = Sleeps()
    [result] = track(["8264715546"], sleeps)
    assert result == TrackingResult("8264715546", found=False)
    assert route.call_count == 1 and sleeps.waits == []


@respx.mock
def test_a_404_that_is_not_problem_json_is_a_response_error():
    respx.get(URL).mock(return_value=httpx.Response(404, text="<html>Not Found</html>",
                                                    headers={"content-type": "text/html"}))
    [result] = track(["123"])
    assert isinstance(result.error, ResponseError) and "Not Found" in str(result.error)


# ── The request ─────────────────────────────────────────────────────────────────────────────────────────────


@respx.mock
def test_the_request_carries_the_number_the_key_and_the_options():
    route = respx.get(URL).mock(return_value=httpx.Response(200, json={"shipments": [shipment("JJD01")]}))
    [result] = track(["JJD01"], service="parcel-de", language="de", requester_country_code="DE")
    assert result.found
    request = route.calls.last.request
    assert request.url.path == "/track/shipments"
    assert dict(request.url.params) == {"trackingNumber": "JJD01", "language": "de", "service": "parcel-de",
                                        "requesterCountryCode": "DE"}
    assert request.headers["DHL-API-Key"] == "secret-key"
    assert "authorization" not in request.headers
    assert request.headers["Accept"] == "application/json"


@respx.mock
def test_by_default_only_the_number_and_english_are_asked_for():
    route = respx.get(URL).mock(return_value=httpx.Response(200, json={"shipments": [shipment("1")]}))
    track(["1"])
    assert dict(route.calls.last.request.url.params) == {"trackingNumber": "1", "language": "en"}


def test_the_default_host_and_the_public_tracking_page():
    client = DhlCourier(api_key="k")
    try:
        assert str(client.http.client.base_url).rstrip("/") == "https://api-eu.dhl.com"
        assert client.batch_size == 1 and client.concurrency == 1
        assert isinstance(client, Courier)
        assert client.tracking_url("JJD 0001") == (
            "https://www.dhl.com/global-en/home/tracking/tracking-parcel.html?submit=1&tracking-id=JJD%200001")
    finally:
        asyncio.run(client.aclose())


@respx.mock
def test_several_numbers_are_one_request_each_and_answer_in_order():
    def answer(request: httpx.Request) -> httpx.Response:
        number = request.url.params["trackingNumber"]
        if number == "B":
            return httpx.Response(404, json=fixture("error-404"))
        return httpx.Response(200, json={"shipments": [shipment(number)]})

    route = respx.get(URL).mock(side_effect=answer)
    results = track(["A", "B", "C"])
    assert route.call_count == 3
    assert [r.tracking_number for r in results] == ["A", "B", "C"]
    assert [r.found for r in results] == [True, False, True]
    assert all(r.error is None for r in results)


def test_the_published_limits_are_the_default():
    assert DEFAULT_LIMITS == Limits(concurrency=1, per_second=1.0, per_day=250)


# ── Errors and retries ──────────────────────────────────────────────────────────────────────────────────────


@respx.mock
def test_a_429_waits_for_retry_after_then_succeeds():
    route = respx.get(URL).mock(side_effect=[
        httpx.Response(429, headers={"Retry-After": "7"}, json={"title": "Too many requests", "status": 429}),
        httpx.Response(200, json={"shipments": [shipment("123")]})])
    sleeps = Sleeps()
    [result] = track(["123"], sleeps)
    assert result.found and route.call_count == 2
    assert sleeps.waits == [7.0]


@respx.mock
def test_a_5xx_then_success_is_retried_with_backoff():
    respx.get(URL).mock(side_effect=[httpx.Response(503, text="busy"),
                                     httpx.Response(200, json={"shipments": [shipment("123")]})])
    sleeps = Sleeps()
    [result] = track(["123"], sleeps)
    assert result.found and sleeps.waits == [0.5]


@respx.mock
def test_a_quota_429_is_a_transient_error_for_that_number_with_its_retry_after():
    respx.get(URL).mock(return_value=httpx.Response(429, headers={"Retry-After": "3600"}, text="quota"))
    [result] = track(["123"])
    assert isinstance(result.error, TransientError) and not result.found
    assert result.error.retry_after == 3600 and result.error.tracking_number == "123"
    assert result.error.source == "dhl-eu"


@respx.mock
def test_a_401_is_an_auth_error_and_never_retried():
    route = respx.get(URL).mock(return_value=httpx.Response(
        401, json={"title": "Unauthorized", "status": 401, "detail": "Invalid API key"}))
    sleeps = Sleeps()
    with pytest.raises(AuthError) as caught:
        track(["A"], sleeps)
    assert caught.value.source == "dhl-eu" and caught.value.status_code == 401
    assert "Invalid API key" in caught.value.excerpt
    assert route.call_count == 1 and sleeps.waits == []


@respx.mock
def test_a_401_for_one_number_fails_the_whole_call_even_when_others_succeeded():
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.params["trackingNumber"] == "B":
            return httpx.Response(401, json={"title": "Unauthorized", "status": 401})
        return httpx.Response(200, json={"shipments": [shipment(request.url.params["trackingNumber"])]})

    respx.get(URL).mock(side_effect=answer)
    with pytest.raises(AuthError):  # a plain AuthError, not an ExceptionGroup, so the poller pauses the account
        track(["A", "B", "C"])


@respx.mock
def test_an_unexpected_4xx_is_a_response_error_for_that_number_only():
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.params["trackingNumber"] == "bad":
            return httpx.Response(400, json={"title": "Bad request", "detail": "invalid trackingNumber"})
        return httpx.Response(200, json={"shipments": [shipment(request.url.params["trackingNumber"])]})

    respx.get(URL).mock(side_effect=answer)
    good, bad = track(["good", "bad"])
    assert good.found and good.error is None
    assert isinstance(bad.error, ResponseError) and bad.error.status_code == 400 and not bad.found


@pytest.mark.parametrize("response", [
    httpx.Response(200, text="<!DOCTYPE html><title>Maintenance</title>", headers={"content-type": "text/html"}),
    httpx.Response(200, text='{"shipments": [{"id": "bad", "events": [', headers={"content-type": "application/json"}),
    httpx.Response(200, json=["not", "an", "object"]),
    httpx.Response(200, json={"shipments": "none"}),
    httpx.Response(200, json={"results": []}),
    httpx.Response(200, json={"shipments": [shipment("bad", events=[{"statusCode": "transit"}])]}),
    httpx.Response(200, json={"shipments": [shipment("bad", events=[event(timestamp="yesterday")])]}),
    httpx.Response(200, json={"shipments": [shipment("bad", events=[event(location="Bonn")])]}),
    httpx.Response(200, json={"shipments": [shipment("bad", events=["transit"])]}),
    httpx.Response(200, json={"shipments": [shipment("bad", events=[event(statusCode=7)])]}),
    httpx.Response(200, json={"shipments": [shipment("bad", estimatedTimeOfDelivery="soon")]}),
    httpx.Response(200, json={"shipments": [shipment("bad", details={"proofOfDelivery": {"signed": 42}})]}),
    httpx.Response(200, json={"shipments": ["bad"]}),
], ids=["html", "truncated", "list", "shipments-not-list", "no-shipments", "no-timestamp", "bad-timestamp",
        "location-not-object", "event-not-object", "code-not-string", "bad-estimate", "bad-signature",
        "shipment-not-object"])
@respx.mock
def test_a_malformed_answer_is_a_response_error_naming_account_and_number_and_spares_the_others(response):
    def answer(request: httpx.Request) -> httpx.Response:
        number = request.url.params["trackingNumber"]
        return response if number == "bad" else httpx.Response(200, json={"shipments": [shipment(number)]})

    respx.get(URL).mock(side_effect=answer)
    before, bad, after = track(["ok-1", "bad", "ok-2"])
    assert isinstance(bad.error, ResponseError) and not bad.found and not bad.events
    message = str(bad.error)
    assert "dhl-eu" in message and "tracking number bad" in message and bad.error.excerpt
    assert before.found and after.found and before.error is None and after.error is None


def test_an_empty_shipment_list_is_not_found():
    assert one({"shipments": []}) == TrackingResult("123", found=False)


# ── Status codes and text refinements ───────────────────────────────────────────────────────────────────────


def test_every_table_value_is_a_canonical_status_and_every_zone_exists():
    assert set(STATUS_CODES) == {"pre-transit", "transit", "delivered", "failure", "unknown"}
    assert all(isinstance(v, ShipmentStatus) for v in STATUS_CODES.values())
    assert all(isinstance(v, ShipmentStatus) for v in TEXT_REFINEMENTS.values())
    assert all(phrase == phrase.casefold() for phrase in TEXT_REFINEMENTS)
    for zone in COUNTRY_ZONES.values():
        ZoneInfo(zone)


def test_an_unknown_code_is_unknown_and_keeps_the_raw_code_and_text():
    payload = {"shipments": [shipment(events=[event("held-at-moon-base", "Held at the moon base")])]}
    [only] = one(payload).events
    assert only.status is S.UNKNOWN
    assert only.code == "held-at-moon-base" and only.description == "Held at the moon base"


def test_a_missing_code_is_unknown_never_in_transit():
    payload = {"shipments": [shipment(events=[{"timestamp": "2024-05-02T10:00:00Z", "description": "Something"}])]}
    [only] = one(payload).events
    assert only.status is S.UNKNOWN and only.code == ""


@pytest.mark.parametrize(("code", "text", "expected"), [
    ("transit", "Die Sendung wurde in das Zustellfahrzeug geladen. Die Zustellung erfolgt voraussichtlich heute.",
     S.OUT_FOR_DELIVERY),
    ("transit", "The shipment has been loaded onto the delivery vehicle", S.OUT_FOR_DELIVERY),
    ("transit", "Out for delivery", S.OUT_FOR_DELIVERY),
    ("transit", "Die Sendung liegt in der Packstation 119, Wernerwerkstr. 2b, 93049 Regensburg zur Abholung bereit.",
     S.AVAILABLE_FOR_PICKUP),
    ("transit", "Die Sendung liegt ab sofort in der Filiale zur Abholung bereit.", S.AVAILABLE_FOR_PICKUP),
    ("transit", "The shipment is ready for pick-up at the PACKSTATION 119", S.AVAILABLE_FOR_PICKUP),
    ("failure", "The shipment could not be delivered and is available for pick-up from the retail outlet",
     S.AVAILABLE_FOR_PICKUP),
    # Filiale / Packstation alone do not mean "ready for pickup":
    ("transit", "Die Sendung wurde vom Absender in der Filiale eingeliefert.", S.IN_TRANSIT),
    ("transit", "Die Sendung befindet sich auf dem Weg zur Packstation.", S.IN_TRANSIT),
    ("transit", "Die Sendung wird zur Abholung in die Filiale gebracht.", S.IN_TRANSIT),
    ("transit", "Die Sendung wurde zurückgestellt. Die Zustellung erfolgt vrs. am nächsten Werktag.", S.IN_TRANSIT),
    ("failure", "Die Sendung konnte nicht zugestellt werden.", S.EXCEPTION),
    ("failure", "", S.EXCEPTION),
    # only transit and failure are refined: the code decides for the others
    ("pre-transit", "DELIVERED", S.INFO_RECEIVED),
    ("delivered", "Out for delivery earlier today; now delivered", S.DELIVERED),
    ("unknown", "Out for delivery", S.UNKNOWN),
])
def test_texts_refine_transit_and_failure_only_where_they_leave_no_doubt(code, text, expected):
    assert status_of(code, text) is expected
    [only] = one({"shipments": [shipment(events=[event(code, text)])]}).events
    assert only.status is expected and only.code == code


def test_the_status_text_is_read_too_and_the_description_is_kept():
    raw = {"timestamp": "2024-05-02T10:00:00Z", "statusCode": "transit", "status": "Out for delivery",
           "description": "Your parcel is with the courier"}
    [only] = one({"shipments": [shipment(events=[raw])]}).events
    assert only.status is S.OUT_FOR_DELIVERY and only.description == "Your parcel is with the courier"


def test_without_events_the_current_status_is_the_one_event():
    payload = {"shipments": [shipment(events=[], status=event("pre-transit", "Label created"))]}
    [only] = one(payload).events
    assert only.status is S.INFO_RECEIVED and only.description == "Label created"


# ── Which shipment, when DHL answers with several ───────────────────────────────────────────────────────────


def test_the_shipment_with_the_number_as_id_and_the_latest_status_wins():
    older = shipment("123", service="express", status=event("transit", "old", "2024-05-01T10:00:00Z"),
                     events=[event("transit", "old", "2024-05-01T10:00:00Z")])
    newer = shipment("123", service="parcel-de", status=event("delivered", "new", "2024-05-03T10:00:00+02:00"),
                     events=[event("delivered", "new", "2024-05-03T10:00:00+02:00")])
    other = shipment("999", status=event("transit", "other", "2024-06-01T10:00:00Z"),
                     events=[event("transit", "other", "2024-06-01T10:00:00Z")])
    for order in ([older, newer, other], [other, newer, older]):
        [only] = one({"shipments": order}).events
        assert only.description == "new" and only.at == datetime(2024, 5, 3, 8, tzinfo=UTC)


def test_without_an_exact_id_the_latest_shipment_dhl_returned_is_used():
    # DHL also finds a parcel by piece id or reference: the shipment id may be "00123" for the number "123".
    first = shipment("00123", events=[event("transit", "first", "2024-05-01T10:00:00Z")], status=None)
    second = shipment("JKG-1", events=[event("transit", "second", "2024-05-02T10:00:00Z")], status=None)
    [only] = one({"shipments": [first, second]}).events
    assert only.description == "second"


def test_ids_are_compared_without_case_or_spaces():
    wanted = shipment("jjd 0001", events=[event("transit", "wanted", "2024-05-01T10:00:00Z")])
    newer = shipment("X", events=[event("transit", "newer", "2024-06-01T10:00:00Z")],
                     status=event("transit", "newer", "2024-06-01T10:00:00Z"))
    [only] = one({"shipments": [newer, wanted]}, "JJD0001").events
    assert only.description == "wanted"


# ── Timestamps ──────────────────────────────────────────────────────────────────────────────────────────────


def located(country: str | None = None) -> dict:
    return {"address": {"addressLocality": "Somewhere", **({"countryCode": country} if country else {})}}


@pytest.mark.parametrize(("stamp", "place", "origin", "destination", "expected"), [
    # an offset is used as given
    ("2024-07-01T10:00:00+02:00", None, "DE", "US", datetime(2024, 7, 1, 8, tzinfo=UTC)),
    ("2024-07-01T10:00:00Z", "DE", "DE", "DE", datetime(2024, 7, 1, 10, tzinfo=UTC)),
    # offset-less: the event's country (summer time in Berlin, UTC+2)
    ("2024-07-01T10:00:00", "DE", "NL", "US", datetime(2024, 7, 1, 8, tzinfo=UTC)),
    ("2024-01-15T10:00:00", "GB", None, None, datetime(2024, 1, 15, 10, tzinfo=UTC)),
    ("2024-01-15T10:00:00", "JP", None, None, datetime(2024, 1, 15, 1, tzinfo=UTC)),
    # offset-less, no country on the event: a domestic parcel's country
    ("2024-01-15T10:00:00", None, "NL", "NL", datetime(2024, 1, 15, 9, tzinfo=UTC)),
    # else UTC: an international parcel, or a country with several zones
    ("2024-01-15T10:00:00", None, "DE", "US", datetime(2024, 1, 15, 10, tzinfo=UTC)),
    ("2024-01-15T10:00:00", None, None, None, datetime(2024, 1, 15, 10, tzinfo=UTC)),
    ("2024-01-15T10:00:00", "US", "US", "US", datetime(2024, 1, 15, 10, tzinfo=UTC)),
    ("2024-01-15T10:00:00", "ES", "ES", "ES", datetime(2024, 1, 15, 10, tzinfo=UTC)),
])
def test_timestamps_become_utc(stamp, place, origin, destination, expected):
    raw = event(timestamp=stamp, description="x")
    if place:
        raw["location"] = located(place)
    sides = {side: {"address": {"countryCode": c}} for side, c in (("origin", origin), ("destination", destination))
             if c}
    [only] = one({"shipments": [shipment(events=[raw], **sides)]}).events
    assert only.at == expected and only.at.tzinfo is UTC


def test_estimates_come_from_the_time_frame_when_there_is_no_exact_time():
    frame = {"estimatedFrom": "2024-05-06T08:00:00+02:00", "estimatedThrough": "2024-05-07T00:30:00+02:00"}
    assert one({"shipments": [shipment(estimatedDeliveryTimeFrame=frame)]}).estimated_delivery == date(2024, 5, 7)
    exact = shipment(estimatedTimeOfDelivery="2024-05-05T23:30:00-05:00", estimatedDeliveryTimeFrame=frame)
    assert one({"shipments": [exact]}).estimated_delivery == date(2024, 5, 5)  # DHL's local date, not UTC's


@pytest.mark.parametrize(("proof", "expected"), [
    ({"signed": {"@type": "Person", "givenName": "Erika", "familyName": "Mustermann"}}, "Erika Mustermann"),
    ({"signed": {"name": "E. Mustermann", "givenName": "Erika"}}, "E. Mustermann"),
    ({"signee": "MUSTERMANN"}, "MUSTERMANN"),
    ({"signed": {}}, None),
    ({}, None),
])
def test_the_signature_names_who_signed(proof, expected):
    assert one({"shipments": [shipment(details={"proofOfDelivery": proof})]}).signed_by == expected


# ── Config ──────────────────────────────────────────────────────────────────────────────────────────────────


def section(**data) -> Section:
    return Section(Path("config.toml"), "couriers.dhl-eu", {"type": "dhl", **data})


def test_settings_read_every_key(monkeypatch):
    monkeypatch.setenv("DHL_KEY", "from-env")
    built = courier_from_settings("dhl-eu", section(api_key="${DHL_KEY}", base_url=BASE, service="express",
                                                    language="de", requester_country_code="nl", concurrency=2,
                                                    per_second=2, per_day=1000, shop="shop", lookback="7d"),
                                  lambda: datetime.now(UTC))
    try:
        assert built.name == "dhl-eu" and built.concurrency == 2
        assert built.http.limits == Limits(concurrency=2, per_second=2, per_day=1000)
        assert built.http.client.headers["DHL-API-Key"] == "from-env"
        assert str(built.http.client.base_url).rstrip("/") == BASE
        assert built._params == {"language": "de", "service": "express", "requesterCountryCode": "NL"}
    finally:
        asyncio.run(built.aclose())


def test_settings_default_to_the_published_limits_and_host():
    built = courier_from_settings("dhl-eu", section(api_key="k"), lambda: datetime.now(UTC))
    try:
        assert built.http.limits == DEFAULT_LIMITS and built.concurrency == 1
        assert str(built.http.client.base_url).rstrip("/") == dhl.DEFAULT_BASE_URL
        assert built._params == {"language": "en"}
    finally:
        asyncio.run(built.aclose())


@pytest.mark.parametrize(("data", "key", "problem"), [
    ({}, "api_key", "is required"),
    ({"api_key": "  "}, "api_key", "must not be empty"),
    ({"api_key": "k", "apikey": "k"}, "apikey", "did you mean 'api_key'"),
    ({"api_key": "k", "servce": "express"}, "servce", "unknown key"),
    ({"api_key": "k", "requester_country_code": "Germany"}, "requester_country_code", "two-letter"),
    ({"api_key": "k", "service": ""}, "service", "must not be empty"),
    ({"api_key": "k", "per_day": 0}, "per_day", "at least 1"),
])
def test_settings_name_the_key_that_is_wrong(data, key, problem):
    with pytest.raises(ConfigError) as caught:
        courier_from_settings("dhl-eu", section(**data), lambda: datetime.now(UTC))
    assert caught.value.key == f"couriers.dhl-eu.{key}" and problem in str(caught.value)


def test_a_missing_secret_names_the_key_not_the_value(monkeypatch):
    monkeypatch.delenv("DHL_MISSING", raising=False)
    with pytest.raises(ConfigError, match="couriers.dhl-eu.api_key: environment variable DHL_MISSING is not set"):
        courier_from_settings("dhl-eu", section(api_key="${DHL_MISSING}"), lambda: datetime.now(UTC))
