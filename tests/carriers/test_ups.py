"""UPS Track API adapter: the published samples, the request UPS expects, tokens, retries, and every way an
answer can be wrong."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
import respx

from carriers import ups
from carriers.base import AuthError, Courier, ResponseError, TrackingResult, TransientError
from carriers.http import Limits, RetryPolicy
from carriers.ups import (
    ACTIVITY_TYPES,
    SCAN_CODES,
    STATUS_CODES,
    TRACK_QUERY,
    UpsCourier,
    courier_from_settings,
    map_status,
    parse_token,
    parse_tracking,
)
from tests.doubles import Sleeps
from tracker.settings import ConfigError, Section
from tracker.status import ShipmentStatus as S

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "ups"
BASE = "https://onlinetools.ups.com"
TOKEN_URL = f"{BASE}/security/v1/oauth/token"
ACCOUNT = "ups-test"
DELIVERED_12 = "1ZR760R60332160282"
POSTMAN = "1Z1442YY7229014688"


def sample(name: str) -> dict:
    return json.loads((FIXTURES / f"ups-track-v1-{name}.json").read_text())


def sample_text(name: str) -> str:
    return (FIXTURES / f"ups-track-v1-{name}.json").read_text()



def make_courier(sleeps: Sleeps | None = None) -> UpsCourier:
    return UpsCourier(ACCOUNT, client_id="cid", client_secret="s3cret", limits=Limits(concurrency=2, per_second=1000),
                      retry=RetryPolicy(sleep=sleeps or Sleeps()))


def run(courier: UpsCourier, *batches: list[str]) -> list[list[TrackingResult]]:
    async def scenario():
        try:
            return [await courier.track(batch) for batch in batches]
        finally:
            await courier.aclose()

    return asyncio.run(scenario())


def tokens(*values: str) -> respx.Route:
    answers = [httpx.Response(200, json={"token_type": "Bearer", "access_token": v, "expires_in": "14399",
                                         "status": "approved"}) for v in values]
    return respx.post(TOKEN_URL).mock(side_effect=answers)


def details(number: str, *answers: httpx.Response) -> respx.Route:
    route = respx.get(f"{BASE}/api/track/v1/details/{number}")
    return route.mock(side_effect=list(answers)) if len(answers) > 1 else route.mock(return_value=answers[0])


def ok(name: str) -> httpx.Response:
    return httpx.Response(200, text=sample_text(name), headers={"content-type": "application/json"})


def latest(result: TrackingResult):
    return max(result.events, key=lambda e: e.at)


def package(*activities: dict, **fields) -> dict:
    return {"trackResponse": {"shipment": [{"package": [{"trackingNumber": "1ZX", "activity": list(activities),
                                                         **fields}]}]}}


def activity(kind="I", code="AR", status_code=None, day="20240301", at="101500", **extra) -> dict:
    status = {"type": kind, "code": code, "description": "Arrived at Facility"}
    if status_code is not None:
        status["statusCode"] = status_code
    return {"status": status, "date": day, "time": at, **extra}


# ── The published samples ─────────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(("name", "number", "count", "status"), [
    ("delivered-12-events", DELIVERED_12, 12, S.DELIVERED),
    ("delivered-postman-example", POSTMAN, 2, S.DELIVERED),
    ("all-fields-schema-example", "1Z023E2X0214323462", 1, S.INFO_RECEIVED),  # statusCode 003 beats type X
])
def test_each_tracking_sample_parses_to_its_status_and_event_count(name, number, count, status):
    result = parse_tracking(sample(name), number, ACCOUNT)
    assert result.found and result.error is None
    assert len(result.events) == count
    assert latest(result).status == status
    assert all(e.at.tzinfo is UTC for e in result.events)


def test_the_12_event_sample_keeps_codes_places_and_times():
    result = parse_tracking(sample("delivered-12-events"), DELIVERED_12, ACCOUNT)
    assert [e.status for e in result.events] == [S.DELIVERED, S.OUT_FOR_DELIVERY] + [S.IN_TRANSIT] * 9 + [
        S.INFO_RECEIVED]
    first, last = result.events[0], result.events[-1]
    assert first.at == datetime(2021, 10, 21, 14, 33, 16, tzinfo=UTC)  # local time taken as UTC (no gmt fields)
    assert (first.code, first.description, first.location) == ("D/FS", "Delivered", "Adrian, MI, US")
    assert result.events[1].location == "Adrian, MI, US"  # "ADRIAN" and "Adrian" are one place
    assert result.events[4].location == "Maumee, OH, US"
    assert (last.code, last.location) == ("M/MP", "US")
    assert last.description == "Shipper created a label, UPS has not received the package yet."
    assert result.estimated_delivery is None and result.signed_by is None


def test_the_postman_sample_keeps_the_three_raw_codes():
    result = parse_tracking(sample("delivered-postman-example"), POSTMAN, ACCOUNT)
    assert [(e.code, e.status, e.description) for e in result.events] == [
        ("D/F4/011", S.DELIVERED, "DELIVERED"), ("M/MP/003", S.INFO_RECEIVED,
                                                  "Shipper created a label, UPS has not received the package yet.")]
    assert result.events[0].location == "Paramus, NJ, US"
    assert len(result.events) == 2  # the DEL delivery date adds nothing: an activity already says delivered


def test_the_all_fields_sample_fills_signed_by_and_ignores_placeholder_dates():
    result = parse_tracking(sample("all-fields-schema-example"), "1Z023E2X0214323462", ACCOUNT)
    (event,) = result.events
    assert (event.code, event.location) == ("X/SR/003", "Wayne, NJ, US")
    assert event.at == datetime(2021, 2, 10, 7, 13, 56, tzinfo=UTC)
    assert result.signed_by == "163000"  # the spec's placeholder value, taken as given
    assert result.estimated_delivery is None  # deliveryDate {"date": "string", "type": "string"}


def test_the_not_found_warning_means_not_known_yet():
    assert parse_tracking(sample("warning-not-found"), "1Z0", ACCOUNT) == TrackingResult("1Z0", found=False)


def test_the_error_samples_give_typed_errors():
    with pytest.raises(ResponseError, match="TV1002: Invalid inquiry number") as caught:
        parse_tracking(sample("error-invalid-inquiry"), "1Zshort", ACCOUNT, status_code=400)
    assert caught.value.tracking_number == "1Zshort" and caught.value.source == ACCOUNT
    assert caught.value.status_code == 400 and "TV1002" in caught.value.excerpt
    with pytest.raises(AuthError, match="250003: Invalid Access License number"):
        parse_tracking(sample("error-auth"), "1Z0", ACCOUNT, status_code=401)


# ── Requests, tokens, retries ──────────────────────────────────────────────────────────────────────────────


@respx.mock
def test_the_requests_have_the_shape_ups_documents():
    token = tokens("tok-1")
    track = details(POSTMAN, ok("delivered-postman-example"))
    run(make_courier(), [POSTMAN], [POSTMAN])

    sent = token.calls.last.request
    assert sent.method == "POST"
    assert sent.headers["Authorization"] == "Basic " + base64.b64encode(b"cid:s3cret").decode()
    assert sent.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert sent.content == b"grant_type=client_credentials"

    assert track.call_count == 2
    first, second = (call.request for call in track.calls)
    assert first.url.path == f"/api/track/v1/details/{POSTMAN}"
    assert dict(first.url.params) == TRACK_QUERY == {"locale": "en_US", "returnSignature": "false",
                                                     "returnMilestones": "false", "returnPOD": "false"}
    assert first.headers["Authorization"] == "Bearer tok-1"
    assert first.headers["transactionSrc"] == "trackmail"
    assert first.headers["Accept"] == "application/json"
    assert len(first.headers["transId"]) == 32 and int(first.headers["transId"], 16) >= 0
    assert first.headers["transId"] != second.headers["transId"]


@respx.mock
def test_one_token_serves_many_calls():
    token = tokens("tok-1", "tok-2")
    details(POSTMAN, ok("delivered-postman-example"))
    results = run(make_courier(), [POSTMAN], [POSTMAN])
    assert token.call_count == 1
    assert all(batch[0].found for batch in results)


@respx.mock
def test_a_401_refreshes_the_token_once_then_succeeds():
    token = tokens("stale", "fresh")
    track = details(POSTMAN, httpx.Response(401, text=sample_text("error-auth")), ok("delivered-postman-example"))
    [[result]] = run(make_courier(), [POSTMAN])
    assert latest(result).status == S.DELIVERED
    assert token.call_count == 2
    assert [c.request.headers["Authorization"] for c in track.calls] == ["Bearer stale", "Bearer fresh"]


@respx.mock
def test_refused_credentials_fail_the_call_after_one_refresh():
    token = tokens("a", "b", "c")
    track = details(POSTMAN, httpx.Response(401, text=sample_text("error-auth")))
    with pytest.raises(AuthError) as caught:
        run(make_courier(), [POSTMAN])
    assert (token.call_count, track.call_count) == (2, 2)
    assert caught.value.source == ACCOUNT and "250003" in caught.value.excerpt


@respx.mock
def test_an_auth_code_inside_a_400_is_an_auth_error_too():
    token = tokens("a", "b")
    details(POSTMAN, httpx.Response(400, text=sample_text("error-auth")))
    with pytest.raises(AuthError, match="250003"):
        run(make_courier(), [POSTMAN])
    assert token.call_count == 2


@respx.mock
@pytest.mark.parametrize("answer", [
    httpx.Response(401, json={"response": {"errors": [{"code": "250002", "message": "Invalid Authentication"}]}}),
    httpx.Response(400, json={"response": {"errors": [{"code": "10401", "message": "ClientId is Invalid"}]}}),
])
def test_a_refused_token_is_an_auth_error_asked_for_once(answer):
    token = respx.post(TOKEN_URL).mock(return_value=answer)
    track = details(POSTMAN, ok("delivered-postman-example"))
    with pytest.raises(AuthError) as caught:
        run(make_courier(), [POSTMAN])
    assert (token.call_count, track.call_count) == (1, 0)
    assert caught.value.source == ACCOUNT and caught.value.status_code == answer.status_code


def test_the_token_lifetime_is_read_leniently():
    assert parse_token({"access_token": "t", "expires_in": "14399"}, ACCOUNT) == ("t", 14399.0)
    assert parse_token({"access_token": "t", "expires_in": 3600}, ACCOUNT) == ("t", 3600.0)
    for odd in ("soon", None, "", -5, True, [1]):
        assert parse_token({"access_token": "t", "expires_in": odd}, ACCOUNT) == ("t", ups.DEFAULT_TOKEN_LIFETIME)
    for bad in ({"expires_in": "14399"}, {"access_token": ""}, ["t"], "t"):
        with pytest.raises(ResponseError, match="without access_token"):
            parse_token(bad, ACCOUNT)


@respx.mock
def test_numbers_go_one_per_request_and_keep_their_order():
    tokens("tok")
    routes = [details(DELIVERED_12, ok("delivered-12-events")), details("1ZNOTYET", ok("warning-not-found")),
              details(POSTMAN, ok("delivered-postman-example"))]
    courier = make_courier()
    assert courier.batch_size == 1
    [results] = run(courier, [DELIVERED_12, "1ZNOTYET", POSTMAN])
    assert [r.tracking_number for r in results] == [DELIVERED_12, "1ZNOTYET", POSTMAN]
    assert [len(r.events) for r in results] == [12, 0, 2]
    assert [r.found for r in results] == [True, False, True]
    assert [route.call_count for route in routes] == [1, 1, 1]


@respx.mock
def test_a_429_waits_for_retry_after_then_succeeds():
    tokens("tok")
    track = details(POSTMAN, httpx.Response(429, headers={"Retry-After": "7"}), ok("delivered-postman-example"))
    sleeps = Sleeps()
    [[result]] = run(make_courier(sleeps), [POSTMAN])
    assert sleeps.waits == [7.0]
    assert track.call_count == 2 and result.found
    first, second = (c.request.headers["transId"] for c in track.calls)
    assert first != second  # every attempt is its own transaction


@respx.mock
def test_a_5xx_is_retried_with_backoff_then_succeeds():
    tokens("tok")
    details(POSTMAN, httpx.Response(503, text="<html>busy</html>"), ok("delivered-postman-example"))
    sleeps = Sleeps()
    [[result]] = run(make_courier(sleeps), [POSTMAN])
    assert sleeps.waits == [0.5] and latest(result).status == S.DELIVERED


@respx.mock
def test_a_service_that_stays_down_fails_the_whole_call():
    tokens("tok")
    details(POSTMAN, httpx.Response(503, text="unavailable"))
    with pytest.raises(TransientError, match="HTTP 503"):
        run(make_courier(), [POSTMAN])


# ── Wrong answers ────────────────────────────────────────────────────────────────────────────────────────

MALFORMED = {
    "html page": httpx.Response(200, text="<!DOCTYPE html><title>UPS maintenance</title>",
                                headers={"content-type": "text/html"}),
    "truncated json": httpx.Response(200, text=sample_text("delivered-postman-example")[:700],
                                     headers={"content-type": "application/json"}),
    "a list": httpx.Response(200, json=[1, 2]),
    "no trackResponse": httpx.Response(200, json={"unexpected": True}),
    "shipment not a list": httpx.Response(200, json={"trackResponse": {"shipment": {"package": []}}}),
    "no shipment": httpx.Response(200, json={"trackResponse": {"shipment": []}}),
    "empty shipment": httpx.Response(200, json={"trackResponse": {"shipment": [{}]}}),
    "activity not an object": httpx.Response(200, json=package("D")),
    "status a string": httpx.Response(200, json=package({"status": "D", "date": "20240301", "time": "101500"})),
    "no date": httpx.Response(200, json=package({"status": {"type": "D"}, "time": "101500"})),
    "impossible date": httpx.Response(200, json=package(activity(day="20241340"))),
    "code a list": httpx.Response(200, json=package(activity(code=["AR"]))),
    "address a string": httpx.Response(200, json=package(activity(location={"address": "Adrian"}))),
    "404 html": httpx.Response(404, text="<html>Not Found</html>", headers={"content-type": "text/html"}),
    "invalid number (400)": httpx.Response(400, text=sample_text("error-invalid-inquiry")),
    "invalid number (warning)": httpx.Response(200, json={"trackResponse": {"shipment": [
        {"warnings": [{"code": "TV1002", "message": "Invalid inquiry number"}]}]}}),
}


@respx.mock
@pytest.mark.parametrize("answer", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_wrong_answer_is_a_response_error_for_that_number_only(answer):
    tokens("tok")
    details("1ZBAD", answer)
    details(POSTMAN, ok("delivered-postman-example"))
    [[bad, good]] = run(make_courier(), ["1ZBAD", POSTMAN])
    assert not bad.found and isinstance(bad.error, ResponseError)
    message = str(bad.error)
    assert ACCOUNT in message and "1ZBAD" in message and bad.error.excerpt
    assert good.error is None and latest(good).status == S.DELIVERED


@respx.mock
@pytest.mark.parametrize("answer", [
    ok("warning-not-found"),
    httpx.Response(404, json={"response": {"errors": [{"code": "TW0001",
                                                        "message": "Tracking Information Not Found"}]}}),
], ids=["warning in a 200", "error in a 404"])
def test_not_found_keeps_the_shipment_pending_without_an_error(answer):
    tokens("tok")
    details("1ZNOTYET", answer)
    [[result]] = run(make_courier(), ["1ZNOTYET"])
    assert result == TrackingResult("1ZNOTYET", found=False)


def test_an_unknown_code_maps_to_unknown_and_keeps_the_raw_codes():
    payload = package(activity(kind="ZZ", code="Q9", status_code="999"), activity(kind="NA", code=""))
    first, second = parse_tracking(payload, "1ZX", ACCOUNT).events
    assert (first.status, first.code, first.description) == (S.UNKNOWN, "ZZ/Q9/999", "Arrived at Facility")
    assert (second.status, second.code) == (S.UNKNOWN, "NA/")


def test_the_most_specific_known_layer_decides():
    assert map_status("X", "48", "022") == S.FAILED_ATTEMPT  # statusCode refines type X
    assert map_status("D", "", "11") == S.DELIVERED  # statusCode sent without its leading zero
    assert map_status("I", "OT", "") == S.OUT_FOR_DELIVERY  # scan code refines type I
    assert map_status("I", "ZZ", "999") == S.IN_TRANSIT  # unknown codes fall back to UPS's own activity type
    assert map_status("MV", "", "") == S.EXCEPTION  # voided label: documented decision
    assert map_status("P", "", "") == S.IN_TRANSIT
    assert map_status("", "", "") == S.UNKNOWN


@pytest.mark.parametrize(("codes", "status"), [
    (("006", "021", "072"), S.OUT_FOR_DELIVERY),
    (("017", "040"), S.AVAILABLE_FOR_PICKUP),
    (("022", "023", "024"), S.FAILED_ATTEMPT),
    (("034",), S.RETURNED),
    (("011", "026"), S.DELIVERED),
    (("012", "013", "046", "048", "086", "090", "007"), S.EXCEPTION),
    (("003",), S.INFO_RECEIVED),
    (("005", "038"), S.IN_TRANSIT),
])
def test_the_documented_status_codes_map_as_agreed(codes, status):
    assert {code: STATUS_CODES[code] for code in codes} == dict.fromkeys(codes, status)


def test_every_table_value_is_a_canonical_status_and_unknown_is_never_a_mapping():
    for table in (STATUS_CODES, SCAN_CODES, ACTIVITY_TYPES):
        assert table and all(isinstance(status, S) for status in table.values())
        assert S.UNKNOWN not in table.values()
    assert all(len(code) == 3 and code.isdigit() for code in STATUS_CODES)
    assert set(ACTIVITY_TYPES) == {"D", "I", "M", "MV", "X", "P"}


# ── Times, estimates, signatures ─────────────────────────────────────────────────────────────────────────


def test_times_use_the_gmt_fields_then_the_offset_then_are_taken_as_utc():
    payload = package(
        activity(day="20210210", at="071356", gmtDate="20210210", gmtTime="74700", gmtOffset="-05:00"),
        activity(day="20210210", at="071356", gmtDate="20210210", gmtTime="12:13:56"),
        activity(day="20210210", at="071356", gmtOffset="-05:00"),
        activity(day="20210210", at="071356", gmtOffset="+0530"),
        activity(day="20210210", at="071356", gmtOffset="local"),
    )
    times = [e.at for e in parse_tracking(payload, "1ZX", ACCOUNT).events]
    assert times == [datetime(2021, 2, 10, 7, 47, tzinfo=UTC), datetime(2021, 2, 10, 12, 13, 56, tzinfo=UTC),
                     datetime(2021, 2, 10, 12, 13, 56, tzinfo=UTC), datetime(2021, 2, 10, 1, 43, 56, tzinfo=UTC),
                     datetime(2021, 2, 10, 7, 13, 56, tzinfo=UTC)]
    assert all(t.tzinfo is UTC for t in times)
    local = datetime(2021, 2, 10, 7, 13, 56, tzinfo=timezone(timedelta(hours=-5)))
    assert times[2] == local


def test_the_rescheduled_date_beats_the_scheduled_one():
    both = package(activity(), deliveryDate=[{"type": "SDD", "date": "20240305"}, {"type": "RDD", "date": "20240307"}])
    only = package(activity(), deliveryDate=[{"type": "SDD", "date": "20240305"}])
    odd = package(activity(), deliveryDate=[{"type": "SDD", "date": "20241399"}, "junk"])
    assert parse_tracking(both, "1ZX", ACCOUNT).estimated_delivery == date(2024, 3, 7)
    assert parse_tracking(only, "1ZX", ACCOUNT).estimated_delivery == date(2024, 3, 5)
    assert parse_tracking(odd, "1ZX", ACCOUNT).estimated_delivery is None


def test_a_delivered_date_without_a_delivered_activity_adds_a_delivered_event():
    payload = package(activity(kind="I", code="OT", day="20240306", at="081000"),
                      deliveryDate=[{"type": "DEL", "date": "20240306"}],
                      deliveryTime={"type": "DEL", "endTime": "143316"},
                      deliveryInformation={"receivedBy": "  PATEL ", "location": "Front Door"})
    result = parse_tracking(payload, "1ZX", ACCOUNT)
    assert [(e.code, e.status) for e in result.events] == [("I/OT", S.OUT_FOR_DELIVERY), ("DEL", S.DELIVERED)]
    assert latest(result).at == datetime(2024, 3, 6, 14, 33, 16, tzinfo=UTC)
    assert result.signed_by == "PATEL"
    blank = package(activity(), deliveryInformation={"receivedBy": ""})
    assert parse_tracking(blank, "1ZX", ACCOUNT).signed_by is None


def test_the_package_matching_the_number_is_chosen():
    payload = {"trackResponse": {"shipment": [{"package": [
        {"trackingNumber": "1ZOTHER", "activity": [activity(kind="D", code="FS")]},
        {"trackingNumber": "1ZMINE", "activity": [activity(kind="I", code="OT")]},
    ]}]}}
    assert [e.code for e in parse_tracking(payload, "1ZMINE", ACCOUNT).events] == ["I/OT"]
    assert [e.code for e in parse_tracking(payload, "1ZNEITHER", ACCOUNT).events] == ["D/FS"]


def test_parsing_is_a_plain_dict_walk():
    payload = sample("delivered-12-events")
    start = time.perf_counter()
    for _ in range(1000):
        parse_tracking(payload, DELIVERED_12, ACCOUNT)
    assert time.perf_counter() - start < 1.0  # about 50 µs each here; karrio takes 1.4 ms


# ── The adapter and its config ───────────────────────────────────────────────────────────────────────────


def test_the_courier_follows_the_protocol_and_links_to_the_public_page():
    courier = make_courier()
    try:
        assert isinstance(courier, Courier)
        assert (courier.name, courier.batch_size, courier.concurrency) == (ACCOUNT, 1, 2)
        assert courier.tracking_url("1Z 999") == "https://www.ups.com/track?loc=en_US&tracknum=1Z%20999"
        assert asyncio.run(courier.track([])) == []
    finally:
        asyncio.run(courier.aclose())


def section(**data) -> Section:
    return Section(Path("config.toml"), "couriers.ups", {"type": "ups", "shop": "main", **data})


def test_courier_from_settings_reads_its_keys(monkeypatch):
    monkeypatch.setenv("UPS_SECRET", "from-env")
    courier = courier_from_settings("ups", section(client_id="cid", client_secret="${UPS_SECRET}",
                                                   base_url="https://wwwcie.ups.com/", concurrency=3, per_day=500),
                                    lambda: datetime.now(UTC))
    try:
        assert courier._client_secret == "from-env" and courier._client_id == "cid"
        assert str(courier.http.client.base_url) == "https://wwwcie.ups.com"
        assert courier.concurrency == 3 and courier.http.limits == Limits(3, 5.0, 500)
    finally:
        asyncio.run(courier.aclose())
    default = courier_from_settings("ups", section(client_id="cid", client_secret="x"), lambda: datetime.now(UTC))
    try:
        assert str(default.http.client.base_url) == BASE and default.http.limits == ups.DEFAULT_LIMITS
    finally:
        asyncio.run(default.aclose())


@pytest.mark.parametrize(("data", "key", "problem"), [
    ({"client_secret": "x"}, "couriers.ups.client_id", "is required"),
    ({"client_id": "cid"}, "couriers.ups.client_secret", "is required"),
    ({"client_id": " ", "client_secret": "x"}, "couriers.ups.client_id", "must not be empty"),
    ({"client_id": "cid", "client_secret": "x", "client_sekret": "y"}, "couriers.ups.client_sekret", "unknown key"),
    ({"client_id": "cid", "client_secret": "x", "api_key": "y"}, "couriers.ups.api_key", "unknown key"),
    ({"client_id": "cid", "client_secret": "x", "per_second": "fast"}, "couriers.ups.per_second", "number"),
])
def test_courier_from_settings_names_what_is_wrong(data, key, problem):
    with pytest.raises(ConfigError) as caught:
        courier_from_settings("ups", section(**data), lambda: datetime.now(UTC))
    assert caught.value.key == key and problem in caught.value.problem
