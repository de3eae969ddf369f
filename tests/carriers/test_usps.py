"""USPS Tracking API v3: the published samples parse, requests have the documented shape, tokens are cached
and refreshed, quota answers and per-number errors land where the poller expects them."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import pytest
import respx

from carriers import usps
from carriers.base import AuthError, ResponseError, TrackingResult, TransientError
from carriers.http import Limits, RetryPolicy
from carriers.usps import STATUS_CATEGORIES, STATUS_CODES, UspsCourier, parse_error, parse_tracking
from tests.doubles import Sleeps
from tracker.budget import budget_of
from tracker.settings import ConfigError, Section
from tracker.status import ShipmentStatus

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "usps"
BASE = "https://usps.test"
TOKEN_URL = f"{BASE}/oauth2/v3/token"
DELIVERED_NUMBER = "9400109104250532908587"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


DELIVERED = fixture("usps-v3-tracking-detail-delivered.json")
README_EXAMPLE = fixture("usps-v3-tracking-detail-readme-example.json")
NOT_YET = fixture("usps-v3-error-400-status-not-available.json")
QUOTA = fixture("usps-v3-error-429-quota.json")



def make_courier(sleeps: Sleeps | None = None) -> UspsCourier:
    return UspsCourier("usps-main", client_id="app-id", client_secret="app-secret", base_url=BASE,
                       limits=Limits(concurrency=1, per_second=1000, per_day=None),
                       retry=RetryPolicy(sleep=sleeps or Sleeps()))


def track(numbers: list[str], courier: UspsCourier | None = None, rounds: int = 1) -> list[TrackingResult]:
    """Run `track` `rounds` times on one courier (to see its token cache); returns the last answer."""
    courier = courier or make_courier()

    async def run() -> list[TrackingResult]:
        try:
            results: list[TrackingResult] = []
            for _ in range(rounds):
                results = await courier.track(numbers)
            return results
        finally:
            await courier.aclose()

    return asyncio.run(run())


def token_route(*tokens: str, expires_in: str | int = "28799") -> respx.Route:
    answers = [httpx.Response(200, json={"access_token": t, "token_type": "Bearer", "expires_in": expires_in,
                                         "status": "approved", "scope": "tracking"}) for t in tokens or ("tok-1",)]
    return respx.post(TOKEN_URL).mock(side_effect=answers)


def tracking_route(number: str, *answers: httpx.Response) -> respx.Route:
    route = respx.get(f"{BASE}/tracking/v3/tracking/{number}", params={"expand": "DETAIL"})
    return route.mock(side_effect=list(answers)) if len(answers) > 1 else route.mock(return_value=answers[0])


def ok(body: str) -> httpx.Response:
    return httpx.Response(200, text=body, headers={"content-type": "application/json"})


def usps_error(status: int, code: str, title: str) -> httpx.Response:
    """An error in the documented USPS envelope (README 4a); only 150001 has a published sample."""
    body = {"apiVersion": "/tracking/v3", "error": {"code": str(status), "message": title,
                                                      "errors": [{"title": title, "detail": "", "code": code}]}}
    return httpx.Response(status, json=body)


# --- the published samples -------------------------------------------------------------------------------


def test_the_delivered_sample_has_12_events_from_label_created_to_delivered():
    result = parse_tracking(json.loads(DELIVERED), DELIVERED_NUMBER, "usps-main")
    assert result.found and result.error is None and len(result.events) == 12
    assert [e.code for e in result.events] == ["01", "OF", "07", "A1", "TL", "TL", "TL", "T1", "10", "SF", "03",
                                              "GX"]
    newest, oldest = result.events[0], result.events[-1]
    assert newest.status is ShipmentStatus.DELIVERED and newest.description == "Delivered, Parcel Locker"
    assert newest.at == datetime(2024, 11, 22, 18, 58, 40, tzinfo=UTC)  # GMTTimestamp, not the local 13:58
    assert newest.location == "HERNANDO, FL"
    assert result.events[1].status is ShipmentStatus.OUT_FOR_DELIVERY
    assert all(e.status is ShipmentStatus.IN_TRANSIT for e in result.events[2:11])
    assert oldest.status is ShipmentStatus.INFO_RECEIVED and oldest.location == "SPRINGFIELD GARDENS, NY"
    assert result.events[3].location == "JACKSONVILLE FL DISTRIBUTION CENTER" and result.events[4].location == ""
    assert all(e.at.tzinfo is UTC for e in result.events)
    assert result.estimated_delivery is None and result.signed_by is None


def test_the_usps_readme_example_is_one_acceptance_event():
    result = parse_tracking(json.loads(README_EXAMPLE), "XXXXXXXXXXXXXXXXXXXX", "usps-main")
    assert [(e.code, e.status, e.description, e.location) for e in result.events] == [
        ("03", ShipmentStatus.IN_TRANSIT, "USPS in possession of item", "RICHMOND, VA")]
    assert result.events[0].at == datetime(2023, 8, 2, 7, 31, tzinfo=UTC)  # the timestamp's own "Z"


@respx.mock
def test_the_status_not_yet_available_sample_means_not_known_yet():
    token_route()
    tracking_route("9400100000000000000000", httpx.Response(400, text=NOT_YET))
    [result] = track(["9400100000000000000000"])
    assert result == TrackingResult("9400100000000000000000", found=False)


def test_the_not_yet_available_envelope_is_read_by_parse_error():
    result = parse_error(json.loads(NOT_YET), "N1", "usps-main", status_code=400, body=NOT_YET)
    assert not result.found and result.error is None


@respx.mock
def test_the_quota_sample_with_a_short_retry_after_is_waited_for_inline():
    token_route()
    route = tracking_route(DELIVERED_NUMBER, httpx.Response(429, text=QUOTA, headers={"Retry-After": "5"}),
                           ok(DELIVERED))
    sleeps = Sleeps()
    [result] = track([DELIVERED_NUMBER], make_courier(sleeps))
    assert route.call_count == 2 and sleeps.waits == [5.0]
    assert result.events[0].status is ShipmentStatus.DELIVERED


@respx.mock
def test_the_quota_sample_with_a_long_retry_after_goes_back_to_the_poller():
    token_route()
    route = tracking_route(DELIVERED_NUMBER, httpx.Response(429, text=QUOTA, headers={"Retry-After": "3600"}))
    sleeps = Sleeps()
    with pytest.raises(TransientError) as caught:
        track([DELIVERED_NUMBER], make_courier(sleeps))
    assert route.call_count == 1 and sleeps.waits == []
    error = caught.value
    assert error.retry_after == 3600 and error.status_code == 429 and error.source == "usps-main"
    assert error.tracking_number == DELIVERED_NUMBER and "Exceeded quota limit" in error.excerpt


# --- request shape, token cache and refresh ----------------------------------------------------------------


@respx.mock
def test_requests_have_the_documented_shape():
    token = token_route()
    route = tracking_route(DELIVERED_NUMBER, ok(DELIVERED))
    track([DELIVERED_NUMBER])
    sent = token.calls.last.request
    assert sent.method == "POST" and sent.url == TOKEN_URL
    assert sent.headers["content-type"] == "application/json" and "authorization" not in sent.headers
    assert json.loads(sent.content) == {"client_id": "app-id", "client_secret": "app-secret",
                                        "grant_type": "client_credentials"}
    got = route.calls.last.request
    assert got.method == "GET" and got.url.path == f"/tracking/v3/tracking/{DELIVERED_NUMBER}"
    assert dict(got.url.params) == {"expand": "DETAIL"}
    assert got.headers["authorization"] == "Bearer tok-1" and got.headers["accept"] == "application/json"


def test_the_defaults_are_the_production_host_and_the_published_quota():
    courier = UspsCourier(client_id="a", client_secret="b")
    try:
        assert str(courier.http.client.base_url).rstrip("/") == "https://apis.usps.com"
        assert courier.batch_size == 1 and courier.concurrency == 1
        assert usps.DEFAULT_LIMITS == Limits(concurrency=1, per_second=0.5, per_day=1400)
        assert courier.tracking_url("9400 1") == "https://tools.usps.com/go/TrackConfirmAction?tLabels=9400%201"
    finally:
        asyncio.run(courier.aclose())


@respx.mock
def test_one_token_serves_several_calls_until_it_expires():
    token = token_route("tok-1", "tok-2")
    tracking_route(DELIVERED_NUMBER, ok(DELIVERED))
    track([DELIVERED_NUMBER, DELIVERED_NUMBER], rounds=2)
    assert token.call_count == 1


@pytest.mark.parametrize(("expires_in", "lifetime"), [("28799", 28799.0), (3600, 3600.0), (None, 900.0),
                                                    ("soon", 900.0)])
@respx.mock
def test_the_token_lifetime_comes_from_expires_in(expires_in, lifetime):
    respx.post(TOKEN_URL).mock(return_value=httpx.Response(200, json={"access_token": "tok", "expires_in": expires_in}))
    courier = make_courier()

    async def fetch():
        try:
            return await courier._fetch_token()
        finally:
            await courier.aclose()

    assert asyncio.run(fetch()) == ("tok", lifetime)
    assert usps.DEFAULT_TOKEN_LIFETIME == 900.0


@respx.mock
def test_a_401_refreshes_the_token_once_then_succeeds():
    token = token_route("stale", "fresh")
    route = tracking_route(DELIVERED_NUMBER, httpx.Response(401, json={"error": "invalid_token"}), ok(DELIVERED))
    [result] = track([DELIVERED_NUMBER])
    assert result.events[0].status is ShipmentStatus.DELIVERED
    assert token.call_count == 2
    assert [c.request.headers["authorization"] for c in route.calls] == ["Bearer stale", "Bearer fresh"]


@respx.mock
def test_a_second_401_after_the_refresh_is_raised_for_the_whole_call():
    token = token_route("a", "b")
    route = tracking_route(DELIVERED_NUMBER, httpx.Response(401, text="expired"))
    with pytest.raises(AuthError) as caught:
        track([DELIVERED_NUMBER])
    assert token.call_count == 2 and route.call_count == 2 and caught.value.source == "usps-main"


@pytest.mark.parametrize("status", [400, 401])
@respx.mock
def test_refused_client_credentials_are_an_auth_error_asked_once(status):
    token = respx.post(TOKEN_URL).mock(return_value=httpx.Response(status, json={"error": "invalid_client"}))
    route = tracking_route(DELIVERED_NUMBER, ok(DELIVERED))
    with pytest.raises(AuthError) as caught:
        track([DELIVERED_NUMBER])
    assert token.call_count == 1 and route.call_count == 0
    assert caught.value.status_code == status and "invalid_client" in caught.value.excerpt


@respx.mock
def test_a_token_answer_without_a_token_is_a_response_error():
    respx.post(TOKEN_URL).mock(return_value=httpx.Response(200, json={"status": "approved"}))
    with pytest.raises(ResponseError, match="usps-main: token answer without access_token"):
        track([DELIVERED_NUMBER])


@respx.mock
def test_each_number_is_its_own_request_answered_in_order():
    token_route()
    first = tracking_route("N1", ok(README_EXAMPLE))
    second = tracking_route("N2", httpx.Response(400, text=NOT_YET))
    third = tracking_route(DELIVERED_NUMBER, ok(DELIVERED))
    results = track(["N1", "N2", DELIVERED_NUMBER])
    assert [r.tracking_number for r in results] == ["N1", "N2", DELIVERED_NUMBER]
    assert [r.found for r in results] == [True, False, True]
    assert first.call_count == second.call_count == third.call_count == 1


@respx.mock
def test_a_5xx_is_retried_with_backoff():
    token_route()
    route = tracking_route(DELIVERED_NUMBER, httpx.Response(503), ok(DELIVERED))
    sleeps = Sleeps()
    [result] = track([DELIVERED_NUMBER], make_courier(sleeps))
    assert route.call_count == 2 and sleeps.waits == [0.5] and len(result.events) == 12


# --- per-number errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["150002", "150003", "150004", "150008", "150010", "150011", "150012"])
@respx.mock
def test_a_usps_tracking_error_code_is_a_response_error_for_that_number_only(code):
    token_route()
    tracking_route("BAD1", usps_error(400, code, f"{code[-1]}: Something about <SUP>&reg;</SUP> this item"))
    tracking_route(DELIVERED_NUMBER, ok(DELIVERED))
    bad, good = track(["BAD1", DELIVERED_NUMBER])
    assert not bad.found and isinstance(bad.error, ResponseError)
    message = str(bad.error).split("; response:")[0]  # the excerpt after it is the raw body
    assert code in message and usps.TRACKING_ERRORS[code] in message and "®" in message and "<SUP>" not in message
    assert "usps-main" in message and "BAD1" in message and bad.error.status_code == 400
    assert good.found and good.error is None and len(good.events) == 12


@respx.mock
def test_an_unauthorised_mailer_id_is_an_auth_error_for_that_number_without_a_token_refresh():
    token = token_route("tok-1", "tok-2")
    mid = tracking_route("OTHER", usps_error(403, "", "The requested MID is not authorized to access this data."))
    tracking_route(DELIVERED_NUMBER, ok(DELIVERED))
    other, good = track(["OTHER", DELIVERED_NUMBER])
    assert isinstance(other.error, AuthError) and not other.found
    assert "Mailer ID (MID) must be authorised for tracking" in str(other.error)
    assert other.error.tracking_number == "OTHER" and "not authorized" in other.error.excerpt
    assert mid.call_count == 1 and token.call_count == 1
    assert good.found and good.error is None


@respx.mock
def test_any_other_403_stops_the_whole_call():
    token_route()
    tracking_route(DELIVERED_NUMBER, httpx.Response(403, json={"error": {"message": "Access denied"}}))
    with pytest.raises(AuthError, match="Tracking API product"):
        track([DELIVERED_NUMBER])


@pytest.mark.parametrize(("body", "content_type"), [
    ("<!DOCTYPE html><html><title>Service Maintenance</title></html>", "text/html"),
    ('{"trackingNumber": "N1", "trackingEvents": [{"eventType": "Deliv', "application/json"),
    ("[]", "application/json"),
    ('{"unexpected": true}', "application/json"),
    ('{"trackingNumber": "N1", "trackingEvents": "none"}', "application/json"),
    ('{"trackingNumber": "N1", "trackingEvents": [42]}', "application/json"),
    ('{"trackingNumber": "N1", "trackingEvents": [{"eventCode": "01", "eventType": "Delivered"}]}',
     "application/json"),
    ('{"trackingNumber": "N1", "trackingEvents": [{"eventCode": 1, "eventTimestamp": "2024-01-01T10:00:00"}]}',
     "application/json"),
    ('{"trackingNumber": "N1", "trackingEvents": [{"eventCode": "01", "eventTimestamp": "yesterday"}]}',
     "application/json"),
    ('{"trackingNumber": "N1", "trackingEvents": [{"eventTimestamp": "2024-01-01T10:00:00", "GMTOffset": "+99:00"}]}',
     "application/json"),
])
@respx.mock
def test_a_malformed_answer_is_a_response_error_for_that_number_only(body, content_type):
    token_route()
    tracking_route("N1", httpx.Response(200, text=body, headers={"content-type": content_type}))
    tracking_route(DELIVERED_NUMBER, ok(DELIVERED))
    bad, good = track(["N1", DELIVERED_NUMBER])
    assert isinstance(bad.error, ResponseError) and not bad.found
    assert bad.error.source == "usps-main" and bad.error.tracking_number == "N1"
    assert "usps-main" in str(bad.error) and "N1" in str(bad.error) and bad.error.excerpt
    assert good.found and good.error is None and len(good.events) == 12


@respx.mock
def test_a_404_with_no_usps_code_is_a_response_error_for_that_number():
    token_route()
    tracking_route("N1", httpx.Response(404, json={"apiVersion": "/tracking/v3",
                                                    "error": {"code": "404", "message": "Resource not found"}}))
    [result] = track(["N1"])
    assert isinstance(result.error, ResponseError) and "Resource not found" in str(result.error)


# --- statuses, times, descriptions -------------------------------------------------------------------------


def detail(*events: dict, **fields) -> dict:
    return {"trackingNumber": "N1", "trackingEvents": list(events), **fields}


def event(code: str = "OF", **fields) -> dict:
    return {"eventType": "Out for Delivery", "eventTimestamp": "2024-11-22T09:10:00", "eventCity": "HERNANDO",
            "eventState": "FL", "eventCountry": None, "eventCode": code, **fields}


def test_an_unknown_event_code_is_kept_raw_with_the_unknown_status():
    [unknown] = parse_tracking(detail(event("ZZ", eventType="Something New")), "N1", "usps-main").events
    assert unknown.status is ShipmentStatus.UNKNOWN and unknown.code == "ZZ"
    assert unknown.description == "Something New"


@pytest.mark.parametrize(("code", "status"), [
    ("02", ShipmentStatus.FAILED_ATTEMPT), ("53", ShipmentStatus.FAILED_ATTEMPT),
    ("16", ShipmentStatus.AVAILABLE_FOR_PICKUP), ("09", ShipmentStatus.RETURNED), ("29", ShipmentStatus.RETURNED),
    ("05", ShipmentStatus.EXCEPTION), ("MA", ShipmentStatus.INFO_RECEIVED), ("PC", ShipmentStatus.IN_TRANSIT),
])
def test_event_codes_map_through_the_table(code, status):
    [parsed] = parse_tracking(detail(event(code)), "N1", "usps-main").events
    assert parsed.status is status and parsed.code == code


def test_every_table_value_is_a_canonical_status_and_unknown_is_never_a_mapping():
    for table in (STATUS_CODES, STATUS_CATEGORIES):
        assert table and all(isinstance(status, ShipmentStatus) for status in table.values())
        assert ShipmentStatus.UNKNOWN not in table.values() and ShipmentStatus.PENDING not in table.values()


def test_times_use_gmt_then_the_offset_then_utc():
    gmt, offset, bare = parse_tracking(detail(
        event(GMTTimestamp="2024-11-22T14:10:45Z", GMTOffset="-05:00"),
        event(GMTOffset="-7:00"),
        event(),
    ), "N1", "usps-main").events
    assert gmt.at == datetime(2024, 11, 22, 14, 10, 45, tzinfo=UTC)
    assert offset.at == datetime(2024, 11, 22, 16, 10, tzinfo=UTC)
    assert bare.at == datetime(2024, 11, 22, 9, 10, tzinfo=UTC)  # local without offset: taken as UTC


def test_a_timestamp_with_its_own_offset_never_reads_gmt_offset():
    [own] = parse_tracking(detail(event(eventTimestamp="2024-11-22T09:10:00-05:00", GMTOffset="+99:00")),
                           "N1", "usps-main").events
    assert own.at == datetime(2024, 11, 22, 14, 10, tzinfo=UTC)


def test_html_in_usps_text_is_stripped_from_descriptions():
    [parsed] = parse_tracking(detail(event(eventType="Delivered to Informed Delivery<SUP>&reg;</SUP> box")),
                              "N1", "usps-main").events
    assert parsed.description == "Delivered to Informed Delivery® box"


@pytest.mark.parametrize(("category", "status"), sorted(STATUS_CATEGORIES.items()))
def test_the_status_category_speaks_only_when_there_are_no_events(category, status):
    payload = detail(status="Item status", statusCategory=category.upper(), mailPieceIntakeDate="2024-11-15 11:09:19",
                     mailClass="USPS Ground Advantage<SUP>&#153;</SUP>")
    [only] = parse_tracking(payload, "N1", "usps-main").events
    assert only.status is status and only.code == category.upper()
    assert only.at == datetime(2024, 11, 15, 11, 9, 19, tzinfo=UTC)
    assert only.description == "Item status (USPS Ground Advantage™)"
    with_events = parse_tracking({**payload, "trackingEvents": [event("GX")]}, "N1", "usps-main")
    assert [e.code for e in with_events.events] == ["GX"]


def test_a_status_category_without_events_or_intake_date_adds_no_event_and_an_unknown_one_stays_unknown():
    assert parse_tracking(detail(statusCategory="Delivered"), "N1", "usps-main").events == ()
    [odd] = parse_tracking(detail(statusCategory="Teleported", mailPieceIntakeDate="2024-11-15T11:09:19"),
                           "N1", "usps-main").events
    assert odd.status is ShipmentStatus.UNKNOWN and odd.code == "Teleported"


def test_the_expected_delivery_date_and_the_signer_are_kept():
    payload = detail(event("01", eventType="Delivered, Left with Individual", name="J SMITH",
                           GMTTimestamp="2024-11-22T18:58:40Z"), event("OF"),
                     expectedDeliveryTimeStamp="2024-11-22T00:00:00", predictedDeliveryDate="2024-11-25")
    result = parse_tracking(payload, "N1", "usps-main")
    assert result.estimated_delivery == date(2024, 11, 22) and result.signed_by == "J SMITH"
    predicted = parse_tracking(detail(expectedDeliveryTimeStamp="soon", predictedDeliveryDate="2024-11-25"),
                               "N1", "usps-main")
    assert predicted.estimated_delivery == date(2024, 11, 25)


def test_an_error_envelope_inside_a_200_is_read_as_an_error():
    [result] = asyncio.run(_one_answer(httpx.Response(200, text=NOT_YET)))
    assert not result.found and result.error is None


async def _one_answer(answer: httpx.Response) -> list[TrackingResult]:
    with respx.mock:
        token_route()
        tracking_route("N1", answer)
        courier = make_courier()
        try:
            return await courier.track(["N1"])
        finally:
            await courier.aclose()


# --- configuration -----------------------------------------------------------------------------------------


def section(**data) -> Section:
    return Section(Path("config.toml"), "couriers.usps-main", {"type": "usps", **data})


@respx.mock
def test_courier_from_settings_reads_its_keys_and_resolves_secrets(monkeypatch):
    monkeypatch.setenv("USPS_SECRET", "from-env")
    courier = usps.courier_from_settings("usps-main", section(client_id="cid", client_secret="${USPS_SECRET}",
                                                              base_url=f"{BASE}/", per_second=2.0, per_day=500),
                                         clock=None)
    assert courier.name == "usps-main" and courier.concurrency == 1
    assert courier.http.limits == Limits(concurrency=1, per_second=2.0, per_day=500)
    token = token_route()
    tracking_route(DELIVERED_NUMBER, ok(DELIVERED))
    track([DELIVERED_NUMBER], courier)
    assert json.loads(token.calls.last.request.content)["client_secret"] == "from-env"


def test_courier_from_settings_defaults_to_the_published_limits():
    courier = usps.courier_from_settings("usps-main", section(client_id="cid", client_secret="sec"), clock=None)
    try:
        assert courier.http.limits == usps.DEFAULT_LIMITS
        assert budget_of(courier).per_day == usps.DEFAULT_LIMITS.per_day  # the poller's shared day budget sees it
        assert str(courier.http.client.base_url).rstrip("/") == usps.DEFAULT_BASE_URL
    finally:
        asyncio.run(courier.aclose())


def test_courier_from_settings_rejects_unknown_keys():
    with pytest.raises(ConfigError, match=r"couriers\.usps-main\.client_secrt: unknown key; did you mean"):
        usps.courier_from_settings("usps-main", section(client_id="cid", client_secrt="x"), clock=None)


@pytest.mark.parametrize(("data", "key"), [
    ({"client_id": "cid"}, "client_secret"),
    ({"client_secret": "sec"}, "client_id"),
    ({"client_id": " ", "client_secret": "sec"}, "client_id"),
])
def test_courier_from_settings_names_a_missing_credential(data, key):
    with pytest.raises(ConfigError) as caught:
        usps.courier_from_settings("usps-main", section(**data), clock=None)
    assert caught.value.key == f"couriers.usps-main.{key}"
