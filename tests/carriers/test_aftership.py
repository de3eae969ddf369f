"""AfterShip (legacy v4) as the aggregator: samples, request shapes, the create-on-first-sight flow, errors."""

from __future__ import annotations

import asyncio
import copy
import json
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import pytest
import respx

from carriers.aftership import (
    DEFAULT_LIMITS,
    STATUS_CODES,
    AfterShipCourier,
    courier_from_settings,
    parse_tracking,
    parse_webhook,
)
from carriers.base import AuthError, ResponseError, TrackingResult, TransientError
from carriers.http import Limits, RetryPolicy
from tests.doubles import Sleeps
from tracker.settings import ConfigError, Section
from tracker.status import ShipmentStatus

FIXTURES = Path(__file__).parent.parent / "fixtures" / "aftership"
BASE = "https://api.aftership.com"
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
ACCOUNT = "as-main"


def load(name: str):
    return json.loads((FIXTURES / name).read_text())


DELIVERED = load("aftership-v4-get-tracking-delivered.json")
DELIVERED_NUMBER = "111111111111"



def courier(sleeps: Sleeps | None = None, **kwargs) -> AfterShipCourier:
    return AfterShipCourier(ACCOUNT, api_key="secret-key", limits=Limits(concurrency=2, per_second=1000),
                            retry=RetryPolicy(sleep=sleeps or Sleeps()), clock=lambda: NOW, **kwargs)


def track(c: AfterShipCourier, *batches: list[str]) -> list[list[TrackingResult]]:
    async def run():
        try:
            return [await c.track(numbers) for numbers in batches]
        finally:
            await c.aclose()

    return asyncio.run(run())


def tracking(number: str, *checkpoints: dict, slug: str = "fedex", **fields) -> dict:
    return {"tracking_number": number, "slug": slug, "tag": "InTransit", "checkpoints": list(checkpoints), **fields}


def checkpoint(tag: str = "InTransit", subtag: str | None = "InTransit_001", at: str = "2024-04-20T10:00:00+02:00",
               **fields) -> dict:
    return {"tag": tag, "subtag": subtag, "checkpoint_time": at, "message": f"{tag} scan", **fields}


def envelope(data: dict, code: int = 200) -> dict:
    return {"meta": {"code": code}, "data": data}


def listing(*trackings: dict, count: int | None = None) -> dict:
    return envelope({"page": 1, "limit": 200, "count": len(trackings) if count is None else count,
                     "trackings": list(trackings)})


MISSING = {"meta": {"code": 4004, "message": "Tracking does not exist.", "type": "NotFound"}, "data": {}}
EXISTS = {"meta": {"code": 4003, "message": "Tracking already exists.", "type": "BadRequest"}, "data": {}}
CREATED = {"meta": {"code": 201}, "data": {"tracking": {"tracking_number": "X", "tag": "Pending", "checkpoints": []}}}


# ── The samples ───────────────────────────────────────────────────────────────────────────────────────────


def test_the_delivered_sample_gives_fourteen_events_oldest_first_in_utc():
    result = parse_tracking(DELIVERED, DELIVERED_NUMBER, ACCOUNT)
    assert result.found and result.error is None
    assert len(result.events) == 14
    assert len({event.key for event in result.events}) == 14  # two scans share a time and place, not a code
    first, last = result.events[0], result.events[-1]
    assert (first.status, first.code, first.description, first.location) == (
        ShipmentStatus.INFO_RECEIVED, "InfoReceived_001", "Shipment information sent to FedEx", "")
    assert first.at == datetime(2018, 7, 23, 6, 21, 39, tzinfo=UTC)  # 01:21:39-05:00
    assert (last.status, last.code, last.location) == (ShipmentStatus.DELIVERED, "Delivered_001", "SAPPORO JP")
    assert last.at == datetime(2018, 7, 25, 1, 10, tzinfo=UTC)  # 10:10+09:00
    assert [e.status for e in result.events].count(ShipmentStatus.IN_TRANSIT) == 11
    assert result.events[-2].status is ShipmentStatus.OUT_FOR_DELIVERY
    assert result.events[1].location == "DONGGUAN CN"
    assert result.signed_by == "..KOSUTOKO"
    assert result.estimated_delivery == date(2022, 1, 5)  # latest_estimated_delivery: the other two are null


def test_the_401_sample_is_an_auth_error_and_is_not_retried():
    with respx.mock:
        route = respx.get(f"{BASE}/v4/trackings/fedex/{DELIVERED_NUMBER}").mock(
            return_value=httpx.Response(401, json=load("aftership-v4-error-401.json")))
        with pytest.raises(AuthError) as caught:
            track(courier(slug="fedex"), [DELIVERED_NUMBER])
    assert route.call_count == 1
    assert caught.value.source == ACCOUNT and caught.value.status_code == 401
    assert "Invalid API Key" in caught.value.excerpt and DELIVERED_NUMBER in str(caught.value)


def test_the_webhook_sample_is_one_in_transit_event_taken_as_utc():
    result = parse_webhook(load("aftership-webhook-tracking-update-trimmed.json"), ACCOUNT)
    assert result.tracking_number == "0000000000000000" and result.found
    (event,) = result.events
    assert (event.status, event.code) == (ShipmentStatus.IN_TRANSIT, "InTransit_001")
    assert event.description == "Departed Shipping Partner Facility, USPS Awaiting Item"
    assert event.at == datetime(2021, 1, 14, 0, 52, tzinfo=UTC)  # no offset in the payload: UTC


def test_a_webhook_msg_is_read_like_a_get():
    hook = load("aftership-webhook-tracking-update-trimmed.json")
    hook["msg"] = DELIVERED["data"]["tracking"]
    assert parse_webhook(hook, ACCOUNT) == parse_tracking(DELIVERED, DELIVERED_NUMBER, ACCOUNT)


@pytest.mark.parametrize("payload", [[], {"event": "tracking_update"}, {"msg": {"tag": "InTransit"}},
                                     {"msg": {"tracking_number": "1", "checkpoints": "none"}}])
def test_a_malformed_webhook_is_a_response_error(payload):
    with pytest.raises(ResponseError, match=ACCOUNT):
        parse_webhook(payload, ACCOUNT)


# ── Statuses ──────────────────────────────────────────────────────────────────────────────────────────────


def test_every_status_code_is_a_shipment_status():
    assert STATUS_CODES and all(isinstance(s, ShipmentStatus) for s in STATUS_CODES.values())
    assert ShipmentStatus.UNKNOWN not in STATUS_CODES.values()


@pytest.mark.parametrize(("tag", "subtag", "status"), [
    ("Exception", "Exception_011", ShipmentStatus.RETURNED),
    ("Exception", "Exception_010", ShipmentStatus.RETURNED),
    ("Exception", "Exception_004", ShipmentStatus.EXCEPTION),
    ("AttemptFail", "AttemptFail_002", ShipmentStatus.FAILED_ATTEMPT),
    ("AvailableForPickup", "AvailableForPickup_001", ShipmentStatus.AVAILABLE_FOR_PICKUP),
    ("OutForDelivery", "OutForDelivery_002", ShipmentStatus.AVAILABLE_FOR_PICKUP),
    ("InfoReceived", "InfoReceived_001", ShipmentStatus.INFO_RECEIVED),
    ("Delivered", "Delivered_002", ShipmentStatus.DELIVERED),
    ("Expired", "Expired_001", ShipmentStatus.EXPIRED),
    ("Pending", "Pending_001", ShipmentStatus.PENDING),
    ("InTransit", None, ShipmentStatus.IN_TRANSIT),  # no subtag: the tag is the code
    ("InTransit", "InTransit_042", ShipmentStatus.IN_TRANSIT),  # a new subtag: its tag decides
])
def test_subtags_refine_their_tag(tag, subtag, status):
    payload = envelope({"tracking": tracking("N1", checkpoint(tag, subtag))})
    (event,) = parse_tracking(payload, "N1", ACCOUNT).events
    assert event.status is status and event.code == (subtag or tag)


def test_an_unknown_tag_is_unknown_and_keeps_its_code():
    payload = envelope({"tracking": tracking("N1", checkpoint("Teleported", "Teleported_001", message="Beamed"))})
    (event,) = parse_tracking(payload, "N1", ACCOUNT).events
    assert (event.status, event.code, event.description) == (ShipmentStatus.UNKNOWN, "Teleported_001", "Beamed")


def test_a_pending_or_expired_tracking_without_checkpoints_is_not_known_yet():
    for tag in ("Pending", "Expired"):
        result = parse_tracking(envelope({"tracking": tracking("N1", tag=tag)}), "N1", ACCOUNT)
        assert result == TrackingResult("N1", found=False)


def test_locations_and_estimated_delivery_fields():
    payload = envelope({"tracking": tracking(
        "N1", checkpoint(city="BROOKLYN", state="NY", country_iso3="USA", location="BROOKLYN, NY"),
        expected_delivery="2024-04-22T18:00:00-04:00", aftership_estimated_delivery_date={
            "estimated_delivery_date": "2024-04-25"}, signed_by="  ")})
    result = parse_tracking(payload, "N1", ACCOUNT)
    assert result.events[0].location == "BROOKLYN, NY, USA"
    assert result.estimated_delivery == date(2024, 4, 22)  # the date as written, not shifted to UTC
    assert result.signed_by is None
    del payload["data"]["tracking"]["expected_delivery"]
    assert parse_tracking(payload, "N1", ACCOUNT).estimated_delivery == date(2024, 4, 25)


# ── Requests with a slug: GET per number, create on first sight ───────────────────────────────────────────


@respx.mock
def test_with_a_slug_each_number_is_read_with_the_api_key_header():
    route = respx.get(f"{BASE}/v4/trackings/fedex/{DELIVERED_NUMBER}").mock(
        return_value=httpx.Response(200, json=DELIVERED))
    (results,) = track(courier(slug="fedex"), [DELIVERED_NUMBER])
    request = route.calls.last.request
    assert request.headers["aftership-api-key"] == "secret-key"
    assert request.headers["accept"] == "application/json" and request.url.query == b""
    assert results[0].found and len(results[0].events) == 14


@respx.mock
def test_an_unknown_number_is_created_once_and_is_not_known_yet():
    get = respx.get(f"{BASE}/v4/trackings/fedex/NEW1").mock(return_value=httpx.Response(404, json=MISSING))
    post = respx.post(f"{BASE}/v4/trackings").mock(return_value=httpx.Response(201, json=CREATED))
    first, second = track(courier(slug="fedex"), ["NEW1", "NEW1"], ["NEW1"])
    assert first == [TrackingResult("NEW1", found=False)] * 2 and second == [TrackingResult("NEW1", found=False)]
    assert get.call_count == 2  # once per call
    assert post.call_count == 1  # never twice, even across calls of this instance
    request = post.calls.last.request
    assert json.loads(request.content) == {"tracking": {"tracking_number": "NEW1", "slug": "fedex"}}
    assert request.headers["aftership-api-key"] == "secret-key"
    assert request.headers["content-type"] == "application/json"


@respx.mock
def test_a_refused_creation_is_that_numbers_error_and_is_tried_again_next_time():
    respx.get(f"{BASE}/v4/trackings/fedex/BAD").mock(return_value=httpx.Response(404, json=MISSING))
    respx.get(f"{BASE}/v4/trackings/fedex/{DELIVERED_NUMBER}").mock(return_value=httpx.Response(200, json=DELIVERED))
    invalid = {"meta": {"code": 4005, "message": "The value of `tracking_number` is invalid.", "type": "BadRequest"},
               "data": {}}
    post = respx.post(f"{BASE}/v4/trackings").mock(return_value=httpx.Response(400, json=invalid))
    first, second = track(courier(slug="fedex"), ["BAD", DELIVERED_NUMBER], ["BAD"])
    bad, good = first
    assert isinstance(bad.error, ResponseError) and not bad.found
    assert "BAD" in str(bad.error) and ACCOUNT in str(bad.error) and "4005" in str(bad.error)
    assert good.found and good.error is None
    assert isinstance(second[0].error, ResponseError) and post.call_count == 2


@pytest.mark.parametrize("response", [
    httpx.Response(404, text="<html>Not Found</html>", headers={"content-type": "text/html"}),
    httpx.Response(404, json={"title": "Not Found", "status": 404}),
])
def test_a_404_that_is_not_aftership_is_an_error_not_a_creation(response):
    with respx.mock:
        respx.get(f"{BASE}/v4/trackings/fedex/N1").mock(return_value=response)
        post = respx.post(f"{BASE}/v4/trackings")
        (results,) = track(courier(slug="fedex"), ["N1"])
    assert isinstance(results[0].error, ResponseError) and "Not Found" in results[0].error.excerpt
    assert post.call_count == 0


@respx.mock
def test_meta_code_4004_means_unknown_whatever_the_http_status():
    respx.get(f"{BASE}/v4/trackings/fedex/N1").mock(return_value=httpx.Response(400, json=MISSING))
    post = respx.post(f"{BASE}/v4/trackings").mock(return_value=httpx.Response(201, json=CREATED))
    (results,) = track(courier(slug="fedex"), ["N1"])
    assert results == [TrackingResult("N1", found=False)] and post.call_count == 1


@respx.mock
def test_a_429_waits_for_retry_after_and_a_5xx_backs_off():
    respx.get(f"{BASE}/v4/trackings/fedex/A").mock(side_effect=[
        httpx.Response(429, headers={"Retry-After": "7"}, json={"meta": {"code": 429}, "data": {}}),
        httpx.Response(200, json=envelope({"tracking": tracking("A", checkpoint())}))])
    respx.get(f"{BASE}/v4/trackings/fedex/B").mock(side_effect=[
        httpx.Response(503), httpx.Response(200, json=envelope({"tracking": tracking("B", checkpoint())}))])
    sleeps = Sleeps()
    (results,) = track(courier(sleeps, slug="fedex"), ["A", "B"])
    assert [r.found for r in results] == [True, True]
    assert sleeps.waits == [7.0, 0.5]


@respx.mock
def test_retries_used_up_mid_batch_leave_earlier_answers_and_mark_the_rest():
    respx.get(f"{BASE}/v4/trackings/fedex/A").mock(
        return_value=httpx.Response(200, json=envelope({"tracking": tracking("A", checkpoint())})))
    respx.get(f"{BASE}/v4/trackings/fedex/B").mock(return_value=httpx.Response(500, text="down"))
    c = respx.get(f"{BASE}/v4/trackings/fedex/C")
    (results,) = track(courier(slug="fedex"), ["A", "B", "C"])
    assert results[0].found and results[0].error is None
    assert all(isinstance(r.error, TransientError) for r in results[1:])
    assert c.call_count == 0  # the service is down: no point asking for the rest


@respx.mock
def test_a_failure_before_any_answer_is_raised_for_the_whole_batch():
    respx.get(f"{BASE}/v4/trackings/fedex/A").mock(return_value=httpx.Response(502))
    with pytest.raises(TransientError):
        track(courier(slug="fedex"), ["A", "B"])


@pytest.mark.parametrize("response", [
    httpx.Response(200, text="<!DOCTYPE html><title>Maintenance</title>", headers={"content-type": "text/html"}),
    httpx.Response(200, text='{"meta": {"code": 200}, "data": {"tracking": {"checkp'),
    httpx.Response(200, json={"meta": {"code": 200}, "data": {"tracking": []}}),
    httpx.Response(200, json={"data": {"tracking": {}}}),
    httpx.Response(200, json=envelope({"tracking": tracking("A", checkpoint(at="yesterday"))})),
    httpx.Response(200, json=envelope({"tracking": tracking("A", checkpoint(tag=None, subtag=None))})),
    httpx.Response(200, json=envelope({"tracking": {"tracking_number": "A", "tag": "InTransit"}})),
    httpx.Response(200, json=envelope({"tracking": tracking("A", "not a checkpoint")})),
])
def test_a_malformed_body_fails_its_number_only(response):
    with respx.mock:
        respx.get(f"{BASE}/v4/trackings/fedex/A").mock(return_value=response)
        respx.get(f"{BASE}/v4/trackings/fedex/B").mock(
            return_value=httpx.Response(200, json=envelope({"tracking": tracking("B", checkpoint())})))
        (results,) = track(courier(slug="fedex"), ["A", "B"])
    bad, good = results
    assert isinstance(bad.error, ResponseError) and not bad.found
    assert bad.error.source == ACCOUNT and bad.error.tracking_number == "A" and bad.error.excerpt
    assert good.found and good.error is None


@respx.mock
def test_an_auth_error_in_the_envelope_of_a_200_is_an_auth_error():
    respx.get(f"{BASE}/v4/trackings/fedex/A").mock(return_value=httpx.Response(200, json={
        "meta": {"code": 401, "message": "Invalid API Key.", "type": "Unauthorized"}, "data": {}}))
    with pytest.raises(AuthError):
        track(courier(slug="fedex"), ["A"])


# ── Requests without a slug: one listing per batch ────────────────────────────────────────────────────────


@respx.mock
def test_without_a_slug_a_batch_is_one_listing_and_unknown_numbers_are_created_without_a_slug():
    delivered = DELIVERED["data"]["tracking"]
    route = respx.get(f"{BASE}/v4/trackings").mock(return_value=httpx.Response(200, json=listing(
        tracking("RA123456789US", checkpoint(), slug="usps"), delivered)))
    post = respx.post(f"{BASE}/v4/trackings").mock(return_value=httpx.Response(400, json=EXISTS))
    (results,) = track(courier(), [DELIVERED_NUMBER, "NEW1", "RA123456789US"])
    assert route.call_count == 1
    params = route.calls.last.request.url.params
    assert params["tracking_numbers"] == f"{DELIVERED_NUMBER},NEW1,RA123456789US"
    assert params["created_at_min"] == "2024-02-01T12:00:00+00:00"  # 90 days before NOW
    assert (params["limit"], params["page"]) == ("200", "1")
    assert route.calls.last.request.headers["aftership-api-key"] == "secret-key"
    assert [r.tracking_number for r in results] == [DELIVERED_NUMBER, "NEW1", "RA123456789US"]
    assert len(results[0].events) == 14 and results[2].found
    assert results[1] == TrackingResult("NEW1", found=False)  # 4003 already exists is fine
    assert json.loads(post.calls.last.request.content) == {"tracking": {"tracking_number": "NEW1"}}
    assert post.call_count == 1


def test_a_number_tracked_under_two_slugs_takes_the_one_with_data():
    rich = tracking("N1", checkpoint(), checkpoint(subtag="InTransit_003"), slug="dpd")
    for order in ((tracking("n1", slug="dhl", tag="Pending"), rich), (rich, tracking("n1", slug="dhl", tag="Pending"))):
        with respx.mock:
            respx.get(f"{BASE}/v4/trackings").mock(return_value=httpx.Response(200, json=listing(*order)))
            (results,) = track(courier(), ["N1"])
        assert len(results[0].events) == 2


@respx.mock
def test_a_listing_of_more_than_one_page_is_followed():
    route = respx.get(f"{BASE}/v4/trackings").mock(side_effect=[
        httpx.Response(200, json=listing(tracking("A", checkpoint()), count=250)),
        httpx.Response(200, json=listing(tracking("B", checkpoint()), count=250))])
    (results,) = track(courier(), ["A", "B"])
    assert [r.found for r in results] == [True, True]
    assert [call.request.url.params["page"] for call in route.calls] == ["1", "2"]


@pytest.mark.parametrize("response", [
    httpx.Response(200, text="<html>Bad gateway</html>", headers={"content-type": "text/html"}),
    httpx.Response(200, text='{"meta": {"code": 200}, "data": {"trackings": [{"trac'),
    httpx.Response(200, json=envelope({"trackings": {"A": {}}})),
    httpx.Response(200, json=listing({"slug": "ups"})),
])
def test_an_unreadable_listing_fails_every_number_of_the_batch_by_name(response):
    with respx.mock:
        respx.get(f"{BASE}/v4/trackings").mock(return_value=response)
        post = respx.post(f"{BASE}/v4/trackings")
        (results,) = track(courier(), ["A", "B"])
    assert post.call_count == 0
    for result in results:
        assert isinstance(result.error, ResponseError) and not result.found
        assert ACCOUNT in str(result.error) and "A, B" in str(result.error)


@respx.mock
def test_a_malformed_listed_tracking_fails_only_its_number():
    broken = tracking("A", checkpoint(at=None))
    respx.get(f"{BASE}/v4/trackings").mock(return_value=httpx.Response(200, json=listing(
        broken, tracking("B", checkpoint()))))
    (results,) = track(courier(), ["A", "B"])
    assert isinstance(results[0].error, ResponseError) and results[0].error.tracking_number == "A"
    assert results[1].found and results[1].error is None


# ── Public page, config ───────────────────────────────────────────────────────────────────────────────────


def test_tracking_urls():
    plain, slugged = courier(), courier(slug="royal-mail")
    try:
        assert plain.tracking_url("RA 1/2") == "https://track.aftership.com/RA%201%2F2"
        assert slugged.tracking_url("RA123") == "https://track.aftership.com/royal-mail/RA123"
        assert (plain.name, plain.batch_size, plain.concurrency) == (ACCOUNT, 50, 2)
    finally:
        asyncio.run(plain.aclose())
        asyncio.run(slugged.aclose())


def section(**keys) -> Section:
    return Section(Path("config.toml"), "couriers.as-main", {"type": "aftership", **keys})


def test_courier_from_settings_reads_its_keys(monkeypatch):
    monkeypatch.setenv("AS_KEY", "from-env")
    built = courier_from_settings("as-main", section(api_key="${AS_KEY}", slug="royal-mail",
                                                     base_url="https://as.test", per_second=2.5), lambda: NOW)
    try:
        assert built.name == "as-main" and built.slug == "royal-mail"
        assert built.http.client.headers["aftership-api-key"] == "from-env"
        assert str(built.http.client.base_url) == "https://as.test"
        assert built.http.limits == Limits(concurrency=2, per_second=2.5, per_day=None)
    finally:
        asyncio.run(built.aclose())
    default = courier_from_settings("as-main", section(api_key="k"), lambda: NOW)
    try:
        assert default.slug is None and default.http.limits == DEFAULT_LIMITS
        assert str(default.http.client.base_url) == f"{BASE}"
    finally:
        asyncio.run(default.aclose())


@pytest.mark.parametrize(("keys", "key", "problem"), [
    ({}, "couriers.as-main.api_key", "is required"),
    ({"api_key": " "}, "couriers.as-main.api_key", "must not be empty"),
    ({"api_key": "k", "slugg": "ups"}, "couriers.as-main.slugg", "did you mean 'slug'"),
    ({"api_key": "k", "per_second": "fast"}, "couriers.as-main.per_second", "must be a number"),
])
def test_courier_from_settings_names_the_bad_key(keys, key, problem):
    with pytest.raises(ConfigError) as caught:
        courier_from_settings("as-main", section(**keys), lambda: NOW)
    assert caught.value.key == key and problem in caught.value.problem


def test_parsing_does_not_touch_its_input():
    before = copy.deepcopy(DELIVERED)
    parse_tracking(DELIVERED, DELIVERED_NUMBER, ACCOUNT)
    assert DELIVERED == before
