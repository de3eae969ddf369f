"""The FedEx adapter: recorded payloads, request shape, OAuth, batching, retries and unreadable answers."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs

import httpx
import pytest
import respx

from carriers import fedex
from carriers.base import AuthError, Courier, ResponseError
from carriers.fedex import (
    ATTEMPT_EXCEPTION_CODES,
    DERIVED_CODES,
    STATUS_CODES,
    FedExCourier,
    courier_from_settings,
    parse_response,
    parse_track_result,
    parse_tracking,
)
from carriers.http import Limits, RetryPolicy
from tests.doubles import Sleeps
from tracker.settings import ConfigError, Section
from tracker.status import ShipmentState, ShipmentStatus, advance

S = ShipmentStatus
FIXTURES = Path(__file__).parent.parent / "fixtures" / "fedex"
BASE = "https://apis.fedex.com"
TOKEN_URL = f"{BASE}/oauth/token"
TRACK_URL = f"{BASE}/track/v1/trackingnumbers"
ACCOUNT = "fedex-acme"


def load(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def final_status(events) -> ShipmentStatus:
    """What the state machine makes of the events, from a shipment we know nothing about yet."""
    now = max(e.at for e in events) + timedelta(hours=1)
    return advance(ShipmentState(S.PENDING, None), events, set(), now, timedelta(days=3)).after.status



def courier(sleeps: Sleeps | None = None) -> FedExCourier:
    return FedExCourier(ACCOUNT, client_id="id-123", client_secret="s3cret", limits=Limits(per_second=1e9),
                        retry=RetryPolicy(sleep=sleeps or Sleeps()))


def track(numbers: list[str], client: FedExCourier | None = None, calls: int = 1) -> list:
    """Run `track` `calls` times on one courier; the results of the last call."""
    client = client or courier()

    async def run():
        try:
            for _ in range(calls):
                results = await client.track(numbers)
            return results
        finally:
            await client.aclose()

    return asyncio.run(run())


def token_route(*responses: httpx.Response) -> respx.Route:
    route = respx.post(TOKEN_URL)
    if responses:
        return route.mock(side_effect=list(responses))
    return route.mock(return_value=httpx.Response(200, json={"access_token": "tok-1", "token_type": "bearer",
                                                              "expires_in": 3599, "scope": "CXS"}))


def scan(code: str, at: str, derived: str = "", exception_code: str = "", city: str = "MEMPHIS") -> dict:
    return {"date": at, "eventType": code, "eventDescription": f"event {code}", "exceptionCode": exception_code,
            "exceptionDescription": "", "derivedStatusCode": derived,
            "scanLocation": {"city": city, "stateOrProvinceCode": "TN", "countryCode": "US"}}


def entry(number: str, *scans: dict, **extra) -> dict:
    result = {"trackingNumberInfo": {"trackingNumber": number}, "scanEvents": list(scans), **extra}
    return {"trackingNumber": number, "trackResults": [result]}


def answer(*entries: dict) -> dict:
    return {"transactionId": "t-1", "output": {"completeTrackResults": list(entries)}}


def echo(request: httpx.Request) -> httpx.Response:
    """FedEx answering every number asked, in REVERSED order, each with one in-transit scan."""
    asked = [i["trackingNumberInfo"]["trackingNumber"] for i in json.loads(request.content)["trackingInfo"]]
    entries = [entry(n, scan("AR", "2024-05-01T10:00:00-05:00")) for n in reversed(asked)]
    return httpx.Response(200, json=answer(*entries))


# ── The tables ───────────────────────────────────────────────────────────────────────────────────────────────


def test_every_table_value_is_a_canonical_status():
    for table in (STATUS_CODES, DERIVED_CODES):
        assert table and all(isinstance(status, ShipmentStatus) for status in table.values())
        assert all(code == code.strip().upper() for code in table)
        assert S.PENDING not in table.values() and S.EXPIRED not in table.values()  # ours, not FedEx's
    assert len(STATUS_CODES) == 54
    assert STATUS_CODES["OC"] is S.INFO_RECEIVED and STATUS_CODES["OD"] is S.OUT_FOR_DELIVERY
    assert STATUS_CODES["HP"] is S.AVAILABLE_FOR_PICKUP and STATUS_CODES["RS"] is S.RETURNED
    assert STATUS_CODES["CA"] is S.EXCEPTION and STATUS_CODES["DL"] is S.DELIVERED
    assert "08" in ATTEMPT_EXCEPTION_CODES


def test_an_unknown_code_is_kept_raw_and_maps_to_unknown():
    payload = answer(entry("111", {**scan("ZZ", "2024-05-01T10:00:00+02:00"), "eventDescription": "Teleported"}))
    (event,) = parse_tracking(payload, "111", ACCOUNT).events
    assert event.status is S.UNKNOWN
    assert (event.code, event.description, event.location) == ("ZZ", "Teleported", "MEMPHIS, TN, US")
    assert event.at == datetime(2024, 5, 1, 8, 0, tzinfo=UTC)


def test_an_unknown_event_type_falls_back_to_fedexs_derived_status_but_not_to_a_guess():
    payload = answer(entry("111", scan("QQ", "2024-05-01T10:00:00Z", derived="IT"),
                           scan("QR", "2024-05-01T11:00:00Z", derived="XX")))
    events = parse_tracking(payload, "111", ACCOUNT).events
    assert [(e.code, e.status) for e in events] == [("QQ", S.IN_TRANSIT), ("QR", S.UNKNOWN)]


def test_a_listed_informational_code_stays_unknown_whatever_fedex_derives():
    payload = answer(entry("111", scan("RR", "2024-05-01T10:00:00Z", derived="IT")))
    assert parse_tracking(payload, "111", ACCOUNT).events[0].status is S.UNKNOWN


def test_a_delivery_exception_is_a_failed_attempt_only_for_attempt_codes():
    payload = answer(entry("111", scan("DE", "2024-05-01T10:00:00Z", exception_code="08"),
                           scan("DE", "2024-05-01T11:00:00Z", exception_code="A47")))
    assert [e.status for e in parse_tracking(payload, "111", ACCOUNT).events] == [S.FAILED_ATTEMPT, S.EXCEPTION]


# ── The recorded samples ─────────────────────────────────────────────────────────────────────────────────────


def test_the_ground_sample_parses_to_17_events_ending_delivered():
    result = parse_tracking(load("fedex-track-v1-delivered-ground-17-events.json"), "738488882438", ACCOUNT)
    assert result.found and result.error is None
    assert len(result.events) == 17
    assert [e.code for e in result.events[-3:]] == ["AR", "OC", "PU"]  # newest first, as FedEx lists them
    assert final_status(result.events) is S.DELIVERED
    delivered = result.events[0]
    assert (delivered.status, delivered.location) == (S.DELIVERED, "Blue Point, NY, US")
    assert delivered.at == datetime(2024, 8, 20, 16, 41, 57, tzinfo=UTC)  # -04:00 honoured
    assert result.events[-2].status is S.INFO_RECEIVED and result.events[-2].location == "US"
    assert result.events[-1].at == datetime(2024, 8, 15, tzinfo=UTC)  # no offset in the payload: taken as UTC
    assert all(e.at.tzinfo is UTC for e in result.events)
    assert result.signed_by == "CREILLY"
    assert result.estimated_delivery is None  # no ESTIMATED_DELIVERY, empty estimatedDeliveryTimeWindow


def test_a_reused_number_keeps_the_most_recent_of_its_results():
    payload = load("fedex-track-v1-two-results-exception-then-delivered.json")
    result = parse_tracking(payload, "776094337676", ACCOUNT)
    assert len(result.events) == 8 and final_status(result.events) is S.DELIVERED
    assert result.signed_by == "D.HERRERA"
    statuses = [e.status for e in result.events]
    assert statuses.count(S.FAILED_ATTEMPT) == 1 and statuses.count(S.EXCEPTION) == 1
    attempt = next(e for e in result.events if e.status is S.FAILED_ATTEMPT)
    assert attempt.code == "DE" and "Customer not available or business closed (08)" in attempt.description

    payload["output"]["completeTrackResults"][0]["trackResults"].reverse()  # chosen by date, not position
    assert parse_tracking(payload, "776094337676", ACCOUNT) == result


def test_the_older_result_of_the_reused_number_shows_the_hold_for_pickup():
    payload = load("fedex-track-v1-two-results-exception-then-delivered.json")
    older = payload["output"]["completeTrackResults"][0]["trackResults"][0]
    result = parse_track_result(older, "776094337676")
    assert len(result.events) == 10 and result.signed_by is None
    by_code = {e.code: e.status for e in result.events}
    assert by_code["HP"] is S.AVAILABLE_FOR_PICKUP and by_code["DY"] is S.EXCEPTION and by_code["OC"] is S.INFO_RECEIVED
    assert final_status(result.events) is S.IN_TRANSIT  # an arrival scan came after the pickup notice


def test_the_spec_example_gives_an_error_for_one_number_and_not_found_for_the_other():
    payload = load("fedex-track-v1-spec-example-with-notfound.json")
    missing, failed = parse_response(payload, ["39936862321", "123456789012"], ACCOUNT)
    assert (missing.found, missing.error, missing.events) == (False, None, ())
    assert not failed.found and isinstance(failed.error, ResponseError)
    assert failed.error.tracking_number == "123456789012" and failed.error.source == ACCOUNT
    assert "TRACKING.TRACKINGNUMBER.EMPTY" in str(failed.error) and "parameterList" in failed.error.excerpt


def test_the_spec_example_data_fills_every_field():
    payload = load("fedex-track-v1-spec-example-with-notfound.json")
    result = parse_track_result(payload["output"]["completeTrackResults"][0]["trackResults"][0], "123456789012")
    (event,) = result.events
    assert (event.status, event.code, event.location) == (S.IN_TRANSIT, "PU", "SEATTLE, WA, US")
    assert event.description == "Picked Up: Package available for clearance (A25)"
    assert event.at == datetime(2018, 2, 2, 19, 1, tzinfo=UTC)
    assert result.estimated_delivery == date(2021, 10, 15)  # estimatedDeliveryTimeWindow.window.ends, local date
    assert result.signed_by == "Reciever"


def test_estimated_delivery_prefers_the_estimated_delivery_date():
    payload = answer(entry("111", scan("IT", "2024-05-01T10:00:00Z"),
                           dateAndTimes=[{"type": "ESTIMATED_DELIVERY", "dateTime": "2024-05-03T23:30:00-07:00"}],
                           estimatedDeliveryTimeWindow={"window": {"ends": "2024-05-09T00:00:00-06:00"}}))
    assert parse_tracking(payload, "111", ACCOUNT).estimated_delivery == date(2024, 5, 3)  # not shifted to UTC


def test_a_delivery_only_in_the_summary_becomes_an_event_at_the_actual_delivery_time():
    payload = answer(entry("111", scan("OD", "2024-05-01T08:00:00-04:00"),
                           latestStatusDetail={"code": "DL", "derivedCode": "DL", "description": "Delivered",
                                               "scanLocation": {"city": "Blue Point", "countryCode": "US"}},
                           dateAndTimes=[{"type": "ACTUAL_DELIVERY", "dateTime": "2024-05-01T12:41:57-04:00"}]))
    events = parse_tracking(payload, "111", ACCOUNT).events
    assert [(e.code, e.status) for e in events] == [("OD", S.OUT_FOR_DELIVERY), ("DL", S.DELIVERED)]
    assert events[1].at == datetime(2024, 5, 1, 16, 41, 57, tzinfo=UTC) and events[1].location == "Blue Point, US"


@respx.mock
def test_the_recorded_400_is_a_response_error_with_fedexs_code():
    token_route()
    body = (FIXTURES / "fedex-track-v1-error-400-empty-number.json").read_bytes()
    respx.post(TRACK_URL).mock(return_value=httpx.Response(400, content=body))
    with pytest.raises(ResponseError) as caught:
        track(["738488882438"])
    error = caught.value
    assert error.status_code == 400 and error.source == ACCOUNT and error.tracking_number == "738488882438"
    assert "TRACKING.TRACKINGNUMBER.EMPTY" in error.excerpt


@respx.mock
def test_the_recorded_401_refreshes_the_token_once_then_is_an_auth_error():
    tokens = token_route()
    body = (FIXTURES / "fedex-track-v1-error-401-token-expired.json").read_bytes()
    route = respx.post(TRACK_URL).mock(return_value=httpx.Response(401, content=body))
    with pytest.raises(AuthError) as caught:
        track(["738488882438"])
    assert tokens.call_count == 2 and route.call_count == 2
    assert "NOT.AUTHORIZED.ERROR" in caught.value.excerpt and caught.value.source == ACCOUNT


# ── Requests, tokens, batches ────────────────────────────────────────────────────────────────────────────────


@respx.mock
def test_the_token_and_track_requests_have_fedexs_shape():
    tokens = token_route()
    body = (FIXTURES / "fedex-track-v1-delivered-ground-17-events.json").read_bytes()
    route = respx.post(TRACK_URL).mock(return_value=httpx.Response(200, content=body))
    (result,) = track(["738488882438"])
    assert len(result.events) == 17

    token_request = tokens.calls.last.request
    assert token_request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert parse_qs(token_request.content.decode()) == {"grant_type": ["client_credentials"],
                                                        "client_id": ["id-123"], "client_secret": ["s3cret"]}
    assert "authorization" not in token_request.headers

    request = route.calls.last.request
    assert str(request.url) == TRACK_URL and request.method == "POST"
    assert request.headers["authorization"] == "Bearer tok-1"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-locale"] == "en_US"
    assert json.loads(request.content) == {"includeDetailedScans": True, "trackingInfo": [
        {"trackingNumberInfo": {"trackingNumber": "738488882438"}}]}


@respx.mock
def test_the_token_is_fetched_once_for_two_track_calls():
    tokens = token_route()
    route = respx.post(TRACK_URL).mock(side_effect=echo)
    track(["111"], calls=2)
    assert tokens.call_count == 1 and route.call_count == 2


@respx.mock
def test_a_401_refreshes_the_token_once_and_then_succeeds():
    tokens = token_route(httpx.Response(200, json={"access_token": "stale", "expires_in": 3600}),
                         httpx.Response(200, json={"access_token": "fresh", "expires_in": 3600}))
    expired = httpx.Response(401, content=(FIXTURES / "fedex-track-v1-error-401-token-expired.json").read_bytes())
    route = respx.post(TRACK_URL).mock(side_effect=[expired, echo])
    (result,) = track(["111"])
    assert result.found and result.events
    assert tokens.call_count == 2
    assert [c.request.headers["authorization"] for c in route.calls] == ["Bearer stale", "Bearer fresh"]


@respx.mock
def test_refused_credentials_are_an_auth_error():
    token_route(*[httpx.Response(401, json={"errors": [{"code": "NOT.AUTHORIZED.ERROR",
                                                        "message": "The given client credentials were not valid."}]})
                  ] * 2)
    route = respx.post(TRACK_URL).mock(side_effect=echo)
    with pytest.raises(AuthError, match="credentials"):
        track(["111"])
    assert route.call_count == 0


@respx.mock
def test_31_numbers_go_in_two_requests_and_come_back_in_the_callers_order():
    token_route()
    route = respx.post(TRACK_URL).mock(side_effect=echo)  # FedEx answers each batch in reversed order
    numbers = [f"7000000000{i:02d}" for i in range(31)]
    results = track(numbers)
    sizes = [len(json.loads(c.request.content)["trackingInfo"]) for c in route.calls]
    assert sizes == [30, 1]
    assert [r.tracking_number for r in results] == numbers
    assert all(r.found and r.error is None and len(r.events) == 1 for r in results)


@respx.mock
def test_numbers_are_matched_whatever_their_spacing_and_blank_ones_are_never_sent():
    token_route()
    route = respx.post(TRACK_URL).mock(side_effect=echo)
    results = track([" 111 ", "  ", "222", "111"])
    assert json.loads(route.calls.last.request.content)["trackingInfo"] == [
        {"trackingNumberInfo": {"trackingNumber": "111"}}, {"trackingNumberInfo": {"trackingNumber": "222"}}]
    assert [r.tracking_number for r in results] == [" 111 ", "  ", "222", "111"]
    assert results[0].found and results[2].found and results[3].found
    assert isinstance(results[1].error, ResponseError) and ACCOUNT in str(results[1].error)


@respx.mock
def test_a_429_waits_for_retry_after_then_succeeds():
    token_route()
    respx.post(TRACK_URL).mock(side_effect=[httpx.Response(429, headers={"Retry-After": "7"}), echo])
    sleeps = Sleeps()
    (result,) = track(["111"], courier(sleeps))
    assert result.found and sleeps.waits == [7.0]


@respx.mock
def test_a_5xx_is_retried_then_succeeds():
    token_route()
    route = respx.post(TRACK_URL).mock(side_effect=[httpx.Response(503, json={"errors": []}), echo])
    sleeps = Sleeps()
    (result,) = track(["111"], courier(sleeps))
    assert result.found and route.call_count == 2 and sleeps.waits == [0.5]


@respx.mock
def test_not_found_is_not_an_error():
    token_route()
    not_found = {"trackingNumber": "999", "trackResults": [{
        "trackingNumberInfo": {"trackingNumber": "999", "trackingNumberUniqueId": "", "carrierCode": ""},
        "error": {"code": "TRACKING.TRACKINGNUMBER.NOTFOUND", "message": "Tracking number cannot be found."}}]}
    respx.post(TRACK_URL).mock(return_value=httpx.Response(200, json=answer(not_found)))
    (result,) = track(["999"])
    assert (result.found, result.error, result.events) == (False, None, ())


# ── Unreadable answers ───────────────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("response, expected", [
    (httpx.Response(200, text="<!DOCTYPE html><title>Maintenance</title>", headers={"content-type": "text/html"}),
     "expected JSON, got text/html"),
    (httpx.Response(200, text='{"output": {"completeTrackResults": [{"trackingNu',
                    headers={"content-type": "application/json"}), "expected JSON"),
    (httpx.Response(200, json={"output": []}), "unexpected shape"),
    (httpx.Response(200, json=["not", "an", "object"]), "unexpected shape"),
    (httpx.Response(200, json={"errors": [{"code": "SYSTEM.UNAVAILABLE", "message": "later"}]}), "refused"),
])
@respx.mock
def test_an_unreadable_answer_is_a_response_error_for_every_number(response, expected):
    token_route()
    respx.post(TRACK_URL).mock(return_value=response)
    results = track(["111", "222"])
    for number, result in zip(["111", "222"], results, strict=True):
        assert not result.found and isinstance(result.error, ResponseError)
        assert expected in str(result.error)
        assert result.error.source == ACCOUNT and result.error.tracking_number == number
        assert result.error.excerpt


@pytest.mark.parametrize("broken", [
    {"trackResults": "nope"},
    {"trackResults": []},
    {"trackResults": [{"scanEvents": "nope"}]},
    {"trackResults": [{"scanEvents": [{"eventType": "DL"}]}]},  # no date
    {"trackResults": [{"scanEvents": [{"eventType": "DL", "date": "yesterday"}]}]},
    {"trackResults": [{"scanEvents": [{"eventType": 12, "date": "2024-05-01T10:00:00Z"}]}]},
    {"trackResults": [{"scanEvents": [], "deliveryDetails": ["x"]}]},
    {"trackResults": [{"error": "oops"}, {"error": {"code": "X"}}]},
])
@respx.mock
def test_a_malformed_entry_fails_only_its_own_number(broken):
    token_route()
    good = entry("111", scan("DL", "2024-05-01T10:00:00Z"))
    respx.post(TRACK_URL).mock(return_value=httpx.Response(200, json=answer({"trackingNumber": "222", **broken},
                                                                            good)))
    first, second = track(["111", "222"])
    assert first.found and first.error is None and first.events[0].status is S.DELIVERED
    assert not second.found and isinstance(second.error, ResponseError)
    assert second.error.tracking_number == "222" and second.error.source == ACCOUNT and second.error.excerpt


@respx.mock
def test_a_number_left_out_of_the_answer_gets_an_error_and_the_others_their_result():
    token_route()
    respx.post(TRACK_URL).mock(return_value=httpx.Response(200, json=answer(
        entry("111", scan("PU", "2024-05-01T10:00:00Z")), {"trackResults": None})))
    first, second = track(["111", "222"])
    assert first.found and first.events[0].status is S.IN_TRANSIT
    assert isinstance(second.error, ResponseError) and "left this number out" in str(second.error)


@respx.mock
def test_a_per_number_error_code_fails_only_that_number():
    token_route()
    failing = {"trackingNumber": "222", "trackResults": [{"error": {"code": "TRACKING.SYSTEM.ERROR",
                                                                   "message": "try later"}}]}
    respx.post(TRACK_URL).mock(return_value=httpx.Response(200, json=answer(
        failing, entry("111", scan("OD", "2024-05-01T10:00:00Z")))))
    first, second = track(["111", "222"])
    assert first.events[0].status is S.OUT_FOR_DELIVERY
    assert "TRACKING.SYSTEM.ERROR" in str(second.error) and second.error.tracking_number == "222"


@respx.mock
def test_a_token_answer_without_a_token_is_a_response_error():
    token_route(httpx.Response(200, json={"token_type": "bearer"}))
    with pytest.raises(ResponseError, match="access_token"):
        track(["111"])


# ── The adapter as the daemon sees it ────────────────────────────────────────────────────────────────────────


def test_the_adapter_follows_the_courier_protocol():
    client = FedExCourier(ACCOUNT, client_id="a", client_secret="b")
    try:
        assert isinstance(client, Courier)
        assert (client.name, client.batch_size, client.concurrency) == (ACCOUNT, 30, 4)
        assert client.tracking_url("738488882438") == "https://www.fedex.com/fedextrack/?trknbr=738488882438"
        assert fedex.DEFAULT_LIMITS == Limits(concurrency=4, per_second=10.0, per_day=100_000)
        assert str(client.http.client.base_url).rstrip("/") == BASE
    finally:
        asyncio.run(client.aclose())


def section(**data) -> Section:
    return Section(Path("config.toml"), "couriers.fedex", {"type": "fedex", **data})


def test_settings_give_credentials_base_url_and_limits(monkeypatch):
    monkeypatch.setenv("FEDEX_SECRET", "from-env")
    client = courier_from_settings("fedex", section(client_id="cid", client_secret="${FEDEX_SECRET}", concurrency=2,
                                                    per_second=3, base_url="https://apis-sandbox.fedex.com/"),
                                   lambda: datetime.now(UTC))
    try:
        assert client.name == "fedex" and client.concurrency == 2
        assert client.http.limits == Limits(concurrency=2, per_second=3, per_day=100_000)
        assert client._credentials["client_secret"] == "from-env"
        assert str(client.http.client.base_url).rstrip("/") == "https://apis-sandbox.fedex.com"
    finally:
        asyncio.run(client.aclose())


def test_settings_default_the_limits_to_fedexs_published_ones_and_let_each_be_overridden():
    for data, expected in [({}, fedex.DEFAULT_LIMITS), ({"per_day": 5000}, Limits(4, 10.0, 5000))]:
        client = courier_from_settings("fedex", section(client_id="cid", client_secret="s", **data),
                                       lambda: datetime.now(UTC))
        try:
            assert client.http.limits == expected and client.name == "fedex"
            assert str(client.http.client.base_url).rstrip("/") == BASE
        finally:
            asyncio.run(client.aclose())


def test_settings_refuse_an_unknown_key():
    with pytest.raises(ConfigError, match=r"couriers\.fedex\.client_secert: unknown key; did you mean 'client_secret'"):
        courier_from_settings("fedex", section(client_id="cid", client_secert="x"), lambda: datetime.now(UTC))


@pytest.mark.parametrize("data, key", [({"client_id": "cid"}, "client_secret"),
                                       ({"client_secret": "s"}, "client_id"),
                                       ({"client_id": " ", "client_secret": "s"}, "client_id")])
def test_settings_name_a_missing_credential(data, key):
    with pytest.raises(ConfigError) as caught:
        courier_from_settings("fedex", section(**data), lambda: datetime.now(UTC))
    assert caught.value.key == f"couriers.fedex.{key}"
