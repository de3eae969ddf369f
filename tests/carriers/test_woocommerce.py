"""WooCommerce order feed: the published samples, the request, paging, throttling, refusals and bad data."""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import logging
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from carriers.base import AuthError, FeedBatch, Marketplace, ResponseError, ShipmentRecord, TransientError
from carriers.http import Limits, RetryPolicy
from carriers.woocommerce import DEFAULT_LIMITS, WooCommerceMarketplace, marketplace_from_settings
from carriers.woocommerce_orders import ORDER_STATUSES, Handling, parse_order, parse_page, parse_tracking_item
from tracker.settings import ConfigError, Section

FIXTURES = Path(__file__).parent.parent / "fixtures" / "woocommerce"
BASE = "https://shop.test"
ORDERS = f"{BASE}/wp-json/wc/v3/orders"
SINCE = datetime(2024, 5, 1, 9, 30, 15, 750000, tzinfo=UTC)
META_KEY = "_wc_shipment_tracking_items"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_bytes())


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class Sleeps:
    """Records the waits asked for instead of sleeping."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)

    @property
    def long(self) -> list[float]:
        """Retry waits, without the rate limiter's millisecond spacing."""
        return [w for w in self.waits if w >= 0.1]


def feed(sleeps: Sleeps | None = None, **kwargs: Any) -> WooCommerceMarketplace:
    kwargs.setdefault("limits", Limits(concurrency=1, per_second=1000))
    return WooCommerceMarketplace("acme-woo", consumer_key="ck_public", consumer_secret="cs_private",
                                  base_url=BASE, retry=RetryPolicy(sleep=sleeps or Sleeps()), **kwargs)


def read(market: WooCommerceMarketplace, since: datetime = SINCE) -> FeedBatch:
    async def go() -> FeedBatch:
        try:
            return await market.changes(since)
        finally:
            await market.aclose()

    return asyncio.run(go())


def order(oid: int, modified: str = "2024-05-01T10:00:00", status: str = "processing", **fields: Any) -> dict:
    """A small, valid order as the list returns it."""
    raw = {
        "id": oid, "number": str(oid), "status": status, "currency": "EUR",
        "date_created": "2024-05-01T11:00:00", "date_created_gmt": "2024-05-01T09:00:00",
        "date_modified": modified, "date_modified_gmt": modified, "total": "25.00", "customer_id": 7,
        "billing": {"first_name": "Ada", "last_name": "Lovelace", "email": "Ada@Example.com", "country": "GB",
                    "city": "London", "postcode": "SW1A 1AA"},
        "shipping": {"first_name": "Ada", "last_name": "Lovelace", "city": "London", "postcode": "SW1A 1AA",
                     "country": "GB"},
        "meta_data": [],
        "line_items": [{"id": oid * 10, "name": "Mug", "product_id": 5, "quantity": 1, "total": "25.00",
                        "sku": "MUG", "price": 25}],
        "coupon_lines": [],
    }
    raw.update(fields)
    return raw


def tracking(*items: dict, key: str = META_KEY) -> list[dict]:
    return [{"id": 1, "key": "_order_stock_reduced", "value": "yes"}, {"id": 2, "key": key, "value": list(items)}]


def item(number: str, provider: str = "ups", **fields: Any) -> dict:
    return {"tracking_provider": provider, "custom_tracking_provider": "", "custom_tracking_link": "",
            "tracking_number": number, "date_shipped": "1714550400", "tracking_id": "abc", **fields}


def page(orders: list, total_pages: int | None = None, total: int | None = None) -> httpx.Response:
    headers = {}
    if total_pages is not None:
        headers["X-WP-TotalPages"] = str(total_pages)
    if total is not None:
        headers["X-WP-Total"] = str(total)
    return httpx.Response(200, json=orders, headers=headers)


def serve(*responses: httpx.Response) -> respx.Route:
    """Answer page N with the N-th response, whatever else the query says."""
    def answer(request: httpx.Request) -> httpx.Response:
        return responses[int(request.url.params["page"]) - 1]

    return respx.get(ORDERS).mock(side_effect=answer)


# ── The published samples ────────────────────────────────────────────────────────────────────────────────


def test_the_published_orders_list_parses_to_both_orders():
    result = parse_page(fixture("woocommerce-v3-orders-list.json"), "acme-woo")
    assert result.problems == () and result.ids == ("727", "723")
    first, second = result.orders
    assert (first.external_id, first.number, first.currency, first.total) == ("727", "727", "USD", Decimal("29.35"))
    assert first.created_at == utc("2017-03-22T19:28:02") and first.updated_at == utc("2017-03-22T19:28:08")
    assert first.customer_id == "john.doe@example.com"  # customer_id 0: a guest, keyed by the billing email
    assert (first.customer_email, first.customer_name, first.customer_locale) == ("john.doe@example.com",
                                                                                  "John Doe", "en")
    assert first.marketing_consent is None  # core WooCommerce does not say
    assert [(line.key, line.title, line.quantity, line.unit_price, line.sku, line.product_id)
            for line in first.lines] == [
        ("315", "Woo Single #1", 2, Decimal("3.00"), "", "93"),
        ("316", "Ship Your Idea – Color: Black, Size: M Test", 1, Decimal("12.00"), "Bar3", "22")]
    assert (first.shipping_address.name, first.shipping_address.city, first.shipping_address.postcode,
            first.shipping_address.country) == ("John Doe", "San Francisco", "94103", "US")
    assert first.shipments == () and not first.cancelled and not first.refunded and first.discount_codes == ()
    assert (second.external_id, second.customer_id, second.customer_name, second.total) == (
        "723", "26", "João Silva", Decimal("39.00"))
    assert second.updated_at == utc("2017-03-21T19:54:51")
    assert second.shipping_address.country == "BR" and second.shipping_address.postcode == "12345-000"
    assert not second.refunded  # completed with two partial refunds (19.00 of 39.00) is not "refunded"
    assert [line.unit_price for line in second.lines] == [Decimal("9.00"), Decimal("20.00")]
    assert result.newest == utc("2017-03-22T19:28:08")


def test_the_published_shipment_tracking_item_parses():
    records, note = parse_tracking_item(fixture("woocommerce-shipment-tracking-item.json"), utc("2026-07-11T08:00"))
    assert note == ""
    assert records == (ShipmentRecord("9400111899560000000000", "USPS", utc("2026-07-10T00:00:00"),
                                      "https://tools.usps.com/tracking/9400111899560000000000"),)


@respx.mock
def test_a_local_store_serving_the_published_orders_on_two_pages_gives_the_orders_and_tracking_numbers():
    published = fixture("woocommerce-v3-orders-list.json")
    shipped = copy.deepcopy(published[1])
    shipped["meta_data"].append({"id": 13200, "key": META_KEY,
                                 "value": [fixture("woocommerce-shipment-tracking-item.json")]})
    route = serve(page([published[0]], total_pages=2, total=2), page([shipped], total_pages=2, total=2))
    batch = read(feed(page_size=1), datetime(2017, 3, 1, tzinfo=UTC))
    assert route.call_count == 2
    assert [o.external_id for o in batch.orders] == ["727", "723"]
    assert batch.orders[0].shipments == ()
    assert [(s.tracking_number, s.courier_name) for s in batch.orders[1].shipments] == [
        ("9400111899560000000000", "USPS")]
    assert batch.cursor == utc("2017-03-22T19:28:08") and batch.problems == ()
    assert [r.request.url.params["page"] for r in route.calls] == ["1", "2"]


def test_the_published_error_answer_is_a_response_error_naming_the_code():
    body = (FIXTURES / "woocommerce-v3-error-example.json").read_bytes()
    with respx.mock:
        respx.get(ORDERS).mock(return_value=httpx.Response(404, content=body,
                                                           headers={"content-type": "application/json"}))
        with pytest.raises(ResponseError) as caught:
            read(feed())
    error = caught.value
    assert error.status_code == 404 and error.source == "acme-woo"
    assert "woocommerce_rest_term_invalid: Resource doesn't exist." in str(error)


# ── The request ──────────────────────────────────────────────────────────────────────────────────────────


@respx.mock
def test_the_request_asks_for_orders_changed_after_since_in_utc_without_an_offset():
    route = respx.get(ORDERS).mock(return_value=page([], total_pages=0, total=0))
    batch = read(feed())
    request = route.calls.last.request
    assert dict(request.url.params) == {
        "modified_after": "2024-05-01T09:30:15",  # floored to the second: overlap, never a gap
        "dates_are_gmt": "true", "orderby": "modified", "order": "asc", "per_page": "100", "page": "1",
        "status": "any"}
    assert request.url.path == "/wp-json/wc/v3/orders" and request.url.scheme == "https"
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(b"ck_public:cs_private").decode()
    assert request.headers["Accept"] == "application/json" and "trackmail" in request.headers["User-Agent"]
    assert "cs_private" not in str(request.url)
    assert batch == FeedBatch((), SINCE)  # nothing changed: the cursor stays where it was


@respx.mock
def test_since_in_another_time_zone_is_sent_as_utc():
    route = respx.get(ORDERS).mock(return_value=page([], total_pages=0))
    local = datetime.fromisoformat("2024-05-01T11:30:15+02:00")
    read(feed(), local)
    assert route.calls.last.request.url.params["modified_after"] == "2024-05-01T09:30:15"


@respx.mock
def test_the_cursor_advances_to_the_newest_change_listed():
    serve(page([order(1, "2024-05-01T10:00:00"), order(2, "2024-05-01T12:34:56"),
                order(3, "2024-05-01T11:00:00")], total_pages=1))
    batch = read(feed())
    assert batch.cursor == utc("2024-05-01T12:34:56")
    assert [o.updated_at for o in batch.orders] == [utc("2024-05-01T10:00:00"), utc("2024-05-01T12:34:56"),
                                                    utc("2024-05-01T11:00:00")]


@respx.mock
def test_a_store_under_a_subdirectory_keeps_its_path():
    route = respx.get("https://example.org/shop/wp-json/wc/v3/orders").mock(return_value=page([], total_pages=0))
    market = WooCommerceMarketplace("w", consumer_key="ck", consumer_secret="cs", base_url="https://example.org/shop",
                                    limits=Limits(per_second=1000), retry=RetryPolicy(sleep=Sleeps()))
    read(market)
    assert route.called


@respx.mock(using="httpcore")  # the keys are added below the client: mock below it too
def test_query_string_auth_sends_the_keys_as_parameters_and_never_logs_them(caplog, respx_mock):
    route = respx_mock.get(ORDERS).mock(return_value=page([order(1)], total_pages=1))
    with caplog.at_level(logging.DEBUG):
        batch = read(feed(query_string_auth=True))
    request = route.calls.last.request
    assert request.url.params["consumer_key"] == "ck_public" and request.url.params["consumer_secret"] == "cs_private"
    assert "Authorization" not in request.headers
    assert request.url.params["modified_after"] == "2024-05-01T09:30:15"
    assert [o.external_id for o in batch.orders] == ["1"]
    assert "HTTP Request" in caplog.text  # httpx did log the request, without the keys
    assert "cs_private" not in caplog.text and "ck_public" not in caplog.text


@respx.mock
def test_a_page_echoing_the_url_does_not_put_the_keys_into_the_error():
    echo = "<html>Forbidden: /wp-json/wc/v3/orders?consumer_key=ck_public&consumer_secret=cs_private</html>"
    respx.get(ORDERS).mock(return_value=httpx.Response(406, text=echo, headers={"content-type": "text/html"}))
    with pytest.raises(ResponseError) as caught:
        read(feed(query_string_auth=True))
    assert "cs_private" not in str(caught.value) and "ck_public" not in str(caught.value)
    assert "cs_private" not in caught.value.excerpt and "***" in caught.value.excerpt


@respx.mock
def test_a_redirect_is_reported_with_the_address_but_not_its_query():
    location = "https://www.shop.test/wp-json/wc/v3/orders?consumer_key=ck_public&consumer_secret=cs_private"
    respx.get(ORDERS).mock(return_value=httpx.Response(301, headers={"Location": location}, text=location))
    with pytest.raises(ResponseError, match="redirected to https://www.shop.test/wp-json/wc/v3/orders: set base_url"
                       ) as caught:
        read(feed(query_string_auth=True))
    assert "cs_private" not in str(caught.value)


# ── Pages ────────────────────────────────────────────────────────────────────────────────────────────────


@respx.mock
def test_pages_are_followed_until_x_wp_totalpages():
    route = serve(page([order(1, "2024-05-01T10:00:00"), order(2, "2024-05-01T10:01:00")], 3, 5),
                  page([order(3, "2024-05-01T10:02:00"), order(4, "2024-05-01T10:03:00")], 3, 5),
                  page([order(5, "2024-05-01T10:04:00")], 3, 5))
    batch = read(feed(page_size=2))
    assert [r.request.url.params["page"] for r in route.calls] == ["1", "2", "3"]
    assert all(r.request.url.params["per_page"] == "2" for r in route.calls)
    assert [o.external_id for o in batch.orders] == ["1", "2", "3", "4", "5"]
    assert batch.cursor == utc("2024-05-01T10:04:00") and batch.problems == ()


@respx.mock
def test_an_empty_page_ends_the_read_whatever_the_header_says():
    route = serve(page([order(1), order(2)], total_pages=5), page([], total_pages=5))
    batch = read(feed(page_size=2))
    assert route.call_count == 2 and len(batch.orders) == 2


@respx.mock
def test_without_the_header_a_short_page_is_the_last():
    route = serve(page([order(1), order(2)]), page([order(3)]))
    batch = read(feed(page_size=2))
    assert route.call_count == 2 and [o.external_id for o in batch.orders] == ["1", "2", "3"]


@respx.mock
def test_a_store_that_ignores_page_is_not_read_forever():
    same = page([order(1, "2024-05-01T10:00:00"), order(2, "2024-05-01T10:05:00")], total_pages=40, total=80)
    route = respx.get(ORDERS).mock(return_value=same)
    batch = read(feed(page_size=2))
    assert route.call_count == 2
    assert [o.external_id for o in batch.orders] == ["1", "2"]
    assert len(batch.problems) == 1 and "page 2 repeated page 1" in batch.problems[0]
    assert "ignores `page`" in batch.problems[0] and batch.problems[0].startswith("acme-woo:")
    assert batch.cursor == utc("2024-05-01T10:05:00")  # everything up to here was read; the rest comes next time


@respx.mock
def test_an_order_changed_while_paging_is_kept_once_and_the_cursor_stops_at_the_first_page():
    # Order 1 was changed between the two requests: it moved to the end, and order 3 slid onto page 1 unseen.
    serve(page([order(1, "2024-05-01T10:00:00"), order(2, "2024-05-01T10:01:00")], 2, 4),
          page([order(4, "2024-05-01T10:03:00"), order(1, "2024-05-01T10:09:00", status="completed")], 2, 4))
    batch = read(feed(page_size=2))
    assert sorted(o.external_id for o in batch.orders) == ["1", "2", "4"]
    assert {o.external_id: o.updated_at for o in batch.orders}["1"] == utc("2024-05-01T10:09:00")  # latest wins
    assert batch.cursor == utc("2024-05-01T10:01:00")  # order 3 is read again next time


@respx.mock
def test_an_order_gone_while_paging_also_holds_the_cursor():
    serve(page([order(1, "2024-05-01T10:00:00"), order(2, "2024-05-01T10:01:00")], 2, 4),
          page([order(4, "2024-05-01T10:03:00")], 2, 3))
    batch = read(feed(page_size=2))
    assert batch.cursor == utc("2024-05-01T10:01:00")


@respx.mock
def test_orders_from_before_since_are_dropped_and_reported_when_the_store_does_not_filter():
    serve(page([order(1, "2023-01-01T00:00:00"), order(2, "2024-05-01T10:00:00")], total_pages=1))
    batch = read(feed())
    assert [o.external_id for o in batch.orders] == ["2"]
    assert len(batch.problems) == 1 and "does not filter by modified_after" in batch.problems[0]


# ── Throttling and refusals ──────────────────────────────────────────────────────────────────────────────


@respx.mock
def test_a_429_waits_for_retry_after_then_reads():
    route = respx.get(ORDERS).mock(side_effect=[httpx.Response(429, headers={"Retry-After": "7"}),
                                                page([order(1)], total_pages=1)])
    sleeps = Sleeps()
    batch = read(feed(sleeps))
    assert route.call_count == 2 and sleeps.long == [7.0] and len(batch.orders) == 1


@respx.mock
def test_the_hosts_503_with_retry_after_is_waited_out_then_retried():
    # WooCommerce core has no throttle of its own; hosts and WAFs answer 503 (or 429) with Retry-After.
    route = respx.get(ORDERS).mock(side_effect=[
        httpx.Response(503, headers={"Retry-After": "12"}, text="<html>Service Temporarily Unavailable</html>"),
        httpx.Response(502), page([order(1)], total_pages=1)])
    sleeps = Sleeps()
    batch = read(feed(sleeps))
    assert route.call_count == 3 and sleeps.long == [12.0, 1.0] and len(batch.orders) == 1


@respx.mock
def test_a_long_retry_after_goes_back_to_the_sync_job():
    respx.get(ORDERS).mock(return_value=httpx.Response(429, headers={"Retry-After": "3600"}))
    with pytest.raises(TransientError) as caught:
        read(feed())
    assert caught.value.retry_after == 3600 and caught.value.source == "acme-woo"


@respx.mock
def test_wrong_keys_are_an_auth_error_with_the_code_and_are_not_retried():
    body = {"code": "woocommerce_rest_authentication_error", "message": "Consumer key is invalid.",
            "data": {"status": 401}}
    route = respx.get(ORDERS).mock(return_value=httpx.Response(401, json=body))
    with pytest.raises(AuthError) as caught:
        read(feed())
    assert route.call_count == 1
    message = str(caught.value)
    assert "acme-woo" in message and "woocommerce_rest_authentication_error" in message
    assert "Consumer key is invalid." in message and "HTTP 401" in message


@respx.mock
def test_cannot_view_on_401_suggests_query_string_auth():
    body = {"code": "woocommerce_rest_cannot_view", "message": "Sorry, you cannot list resources.",
            "data": {"status": 401}}
    respx.get(ORDERS).mock(return_value=httpx.Response(401, json=body))
    with pytest.raises(AuthError, match="woocommerce_rest_cannot_view.*query_string_auth = true"):
        read(feed())


@respx.mock
def test_a_key_without_read_access_is_an_auth_error():
    body = {"code": "woocommerce_rest_cannot_view", "message": "Sorry, you cannot list resources.",
            "data": {"status": 403}}
    respx.get(ORDERS).mock(return_value=httpx.Response(403, json=body))
    with pytest.raises(AuthError, match="Read access"):
        read(feed())


@respx.mock
def test_a_firewall_page_on_403_is_an_auth_error_that_says_it_is_not_woocommerce():
    respx.get(ORDERS).mock(return_value=httpx.Response(403, text="<html><h1>Access denied</h1></html>",
                                                       headers={"content-type": "text/html"}))
    with pytest.raises(AuthError, match="not a WooCommerce answer.*Access denied"):
        read(feed())


@pytest.mark.parametrize("response", [
    httpx.Response(404, json={"code": "rest_no_route", "message": "No route was found matching the URL and "
                              "request method.", "data": {"status": 404}}),
    httpx.Response(404, text="<html>Not Found</html>", headers={"content-type": "text/html"}),
])
def test_no_api_at_base_url_points_at_the_store_address(response):
    with respx.mock:
        respx.get(ORDERS).mock(return_value=response)
        with pytest.raises(ResponseError, match="no WooCommerce REST API v3 at base_url") as caught:
            read(feed())
    assert caught.value.status_code == 404 and not isinstance(caught.value, AuthError)


@respx.mock
def test_a_store_older_than_5_8_says_so():
    body = {"code": "rest_invalid_param", "message": "Invalid parameter(s): orderby",
            "data": {"status": 400, "params": {"orderby": "orderby is not one of date, id, include, title, slug."}}}
    respx.get(ORDERS).mock(return_value=httpx.Response(400, json=body))
    with pytest.raises(ResponseError, match="rest_invalid_param.*WooCommerce 5.8 or newer"):
        read(feed())


# ── Malformed pages and orders ───────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(("response", "words"), [
    (httpx.Response(200, text="<!DOCTYPE html><title>Maintenance</title>", headers={"content-type": "text/html"}),
     "expected JSON, got text/html"),
    (httpx.Response(200, text='[{"id": 727, "number": "7', headers={"content-type": "application/json"}),
     "expected JSON"),
    (httpx.Response(200, json={"orders": []}), "expected a JSON list of orders, got dict"),
])
def test_an_unreadable_page_is_a_response_error_naming_the_account(response, words):
    with respx.mock:
        respx.get(ORDERS).mock(return_value=response)
        with pytest.raises(ResponseError, match=words) as caught:
            read(feed())
    assert caught.value.source == "acme-woo" and str(caught.value).startswith("acme-woo: ")


@respx.mock
def test_one_bad_order_among_good_ones_is_a_problem_and_the_others_are_imported():
    serve(page([order(1), order(2, total="twelve"), "not an order", order(3), order(4, id=None, number="4"),
                order(5, billing={"first_name": "No", "last_name": "Mail"})], total_pages=1))
    batch = read(feed())
    assert [o.external_id for o in batch.orders] == ["1", "3"]
    assert len(batch.problems) == 4
    assert "acme-woo: order #2 (id 2): total 'twelve' is not an amount; the order was not imported" in batch.problems
    assert any("entry 3 of the page is str" in p for p in batch.problems)
    assert any("order #4: id is missing" in p for p in batch.problems)
    assert any("order #5 (id 5): billing email is missing" in p for p in batch.problems)


@pytest.mark.parametrize(("fields", "words"), [
    ({"date_created_gmt": "yesterday"}, "date_created_gmt 'yesterday' is not an ISO 8601 time"),
    ({"currency": ""}, "currency is missing"),
    ({"line_items": [{"id": 1, "name": "Mug", "quantity": "two", "total": "2.00"}]}, "quantity 'two'"),
    ({"line_items": [{"id": 1, "name": "Mug", "quantity": 1}]}, "line item 1 has no price"),
    ({"line_items": {"id": 1}}, "line_items is not a list"),
    ({"billing": "Ada"}, "billing is str, expected an object"),
    ({"billing": {"email": "nobody"}}, "billing email 'nobody' is not an address"),
])
def test_what_makes_an_order_unreadable_is_named(fields, words):
    result = parse_page([order(9, **fields)], "acme-woo")
    assert result.orders == () and len(result.problems) == 1 and words in result.problems[0]
    assert result.ids == ("9",) and result.newest == utc("2024-05-01T10:00:00")  # still moves the cursor


def test_big_integer_ids_stay_exact():
    big = 2**60 + 1
    record, _ = parse_order(order(big, customer_id=big + 2))
    assert record.external_id == "1152921504606846977" and record.number == str(big)
    assert record.customer_id == "1152921504606846979" and record.lines[0].key == str(big * 10)


# ── Statuses: updated, cancelled, refunded, unpaid ───────────────────────────────────────────────────────


@respx.mock
def test_statuses_decide_what_is_imported_cancelled_or_refunded():
    statuses = ["processing", "on-hold", "completed", "cancelled", "refunded", "trash", "shipped", "pending",
                "failed", "checkout-draft"]
    serve(page([order(i, f"2024-05-01T10:{i:02d}:00", status=s) for i, s in enumerate(statuses, 1)],
               total_pages=1))
    batch = read(feed())
    by_id = {o.external_id: o for o in batch.orders}
    assert sorted(by_id, key=int) == ["1", "2", "3", "4", "5", "6", "7"]  # unpaid ones are left out, quietly
    assert [by_id[i].cancelled for i in "1234567"] == [False, False, False, True, False, True, False]
    assert [by_id[i].refunded for i in "1234567"] == [False, False, False, False, True, False, False]
    assert batch.problems == ()
    assert batch.cursor == utc("2024-05-01T10:10:00")  # the left-out draft was the newest change


@respx.mock
def test_an_updated_order_comes_back_with_its_new_state():
    serve(page([order(1, "2024-05-01T10:00:00", status="processing")], total_pages=1))
    first = read(feed())
    respx.routes.clear()
    serve(page([order(1, "2024-05-02T08:00:00", status="cancelled", total="0.00")], total_pages=1))
    again = read(feed(), first.cursor)
    assert first.orders[0].cancelled is False and again.orders[0].cancelled is True
    assert again.orders[0].updated_at == utc("2024-05-02T08:00:00") and again.orders[0].total == Decimal("0.00")


def test_every_status_in_the_table_maps_to_a_handling():
    assert all(isinstance(handling, Handling) for handling in ORDER_STATUSES.values())
    assert {"pending", "processing", "on-hold", "completed", "cancelled", "refunded", "failed", "trash",
            "checkout-draft"} <= set(ORDER_STATUSES)
    assert {s for s, h in ORDER_STATUSES.items() if h is Handling.SKIP} == {"pending", "failed", "checkout-draft"}


# ── Shipments ────────────────────────────────────────────────────────────────────────────────────────────


def test_several_tracking_items_give_several_shipments_and_none_gives_none():
    raw = order(1, meta_data=tracking(
        item("1Z999AA10123456784"),
        item("00340434161094042557", "", custom_tracking_provider="DHL Paket",
             custom_tracking_link="https://www.dhl.de/track?n=00340434161094042557", date_shipped=1714636800),
        item("LX123456785DE, LX123456794DE", "deutsche-post", date_shipped="2024-05-03"),
        item("1Z999AA10123456784")))  # the same number twice is one parcel
    record, notes = parse_order(raw)
    assert notes == ()
    assert [(s.tracking_number, s.courier_name, s.shipped_at, s.tracking_url) for s in record.shipments] == [
        ("1Z999AA10123456784", "ups", utc("2024-05-01T08:00:00"), ""),
        ("00340434161094042557", "DHL Paket", utc("2024-05-02T08:00:00"),
         "https://www.dhl.de/track?n=00340434161094042557"),
        ("LX123456785DE", "deutsche-post", utc("2024-05-03T00:00:00"), ""),
        ("LX123456794DE", "deutsche-post", utc("2024-05-03T00:00:00"), "")]
    assert parse_order(order(2))[0].shipments == ()
    assert parse_order(order(3, meta_data=None))[0].shipments == ()


def test_a_missing_ship_date_is_the_orders_last_change():
    record, _ = parse_order(order(1, "2024-05-04T16:20:00", meta_data=tracking(item("1Z1", date_shipped=""))))
    assert record.shipments[0].shipped_at == utc("2024-05-04T16:20:00")


def test_a_custom_meta_key_is_read():
    raw = order(1, meta_data=tracking(item("AB1"), key="_aftership_tracking_items"))
    assert parse_order(raw)[0].shipments == ()
    assert [s.tracking_number for s in parse_order(raw, "_aftership_tracking_items")[0].shipments] == ["AB1"]


def test_a_php_array_with_gaps_is_read_as_a_list():
    meta = [{"id": 2, "key": META_KEY, "value": {"0": item("A1"), "2": item("A3")}}]
    record, notes = parse_order(order(1, meta_data=meta))
    assert [s.tracking_number for s in record.shipments] == ["A1", "A3"] and notes == ()


@respx.mock
def test_malformed_tracking_meta_is_a_problem_and_the_order_is_still_imported():
    serve(page([
        order(1, meta_data=[{"id": 2, "key": META_KEY, "value": "1Z999AA10123456784"}]),
        order(2, meta_data=tracking(item("GOOD1"), {"tracking_provider": "ups", "tracking_number": ""}, "junk")),
        order(3, meta_data=tracking(item("LATE1", date_shipped="soon"))),
    ], total_pages=1))
    batch = read(feed())
    by_id = {o.external_id: o for o in batch.orders}
    assert sorted(by_id) == ["1", "2", "3"]
    assert by_id["1"].shipments == ()
    assert [s.tracking_number for s in by_id["2"].shipments] == ["GOOD1"]
    assert by_id["3"].shipments[0].shipped_at == by_id["3"].updated_at
    assert batch.problems == (
        f"acme-woo: order #1 (id 1): meta {META_KEY} is str, not a list of tracking items; its shipments were "
        "left out; the order was imported without it",
        f"acme-woo: order #2 (id 2): {META_KEY} item 2: a tracking item has no tracking_number; that shipment was "
        "left out; the order was imported without it",
        f"acme-woo: order #2 (id 2): {META_KEY} item 3: a tracking item is str, not an object; that shipment was "
        "left out; the order was imported without it",
        f"acme-woo: order #3 (id 3): {META_KEY} item 1: date_shipped 'soon' is unreadable; the order's last change "
        "time was used; the order was imported without it",
    )


# ── Customers, lines, money ──────────────────────────────────────────────────────────────────────────────


def test_a_guest_is_keyed_by_the_lower_cased_billing_email_and_a_customer_by_id():
    assert parse_order(order(1, customer_id=0))[0].customer_id == "ada@example.com"
    record, _ = parse_order(order(1, customer_id=42))
    assert record.customer_id == "42" and record.customer_email == "Ada@Example.com"


def test_an_order_without_shipping_takes_the_billing_address():
    record, _ = parse_order(order(1, shipping={"first_name": "", "last_name": "", "city": "", "country": ""}))
    assert (record.shipping_address.name, record.shipping_address.city, record.shipping_address.country) == (
        "Ada Lovelace", "London", "GB")


def test_money_is_decimal_and_a_float_price_is_rounded_to_the_line_totals_decimals():
    lines = [
        {"id": 1, "name": "Third", "product_id": 0, "quantity": 3, "total": "10.00", "price": 3.3333333333333335,
         "sku": None, "image": {"id": 9, "src": "https://shop.test/mug.jpg"}},
        {"id": 2, "name": "No price", "product_id": 8, "quantity": 4, "total": "10.00"},
        {"id": 3, "name": "Yen", "product_id": 8, "quantity": 1, "total": "1500", "price": 1500},
        {"id": 4, "name": "Tom &amp; Jerry", "product_id": 8, "quantity": 2, "total": "0.20", "price": 0.1},
    ]
    record, _ = parse_order(order(1, line_items=lines, total="1529.85",
                                  coupon_lines=[{"id": 5, "code": "spring10", "discount": "1.00"}]))
    assert record.total == Decimal("1529.85") and isinstance(record.total, Decimal)
    assert [line.unit_price for line in record.lines] == [Decimal("3.33"), Decimal("2.50"), Decimal("1500"),
                                                          Decimal("0.10")]
    assert all(isinstance(line.unit_price, Decimal) for line in record.lines)
    first = record.lines[0]
    assert (first.sku, first.product_id, first.image_url) == ("", "", "https://shop.test/mug.jpg")
    assert record.lines[3].title == "Tom & Jerry"
    assert record.discount_codes == ("spring10",)


# ── Settings ─────────────────────────────────────────────────────────────────────────────────────────────


def account(**data: Any) -> Section:
    values = {"type": "woocommerce", "base_url": "https://shop.example.com", "consumer_key": "ck_abc",
              "consumer_secret": "cs_def", **data}
    values = {k: v for k, v in values.items() if v is not None}
    return Section(Path("config.toml"), "marketplaces.woo", values)


def build(**data: Any) -> WooCommerceMarketplace:
    async def make() -> WooCommerceMarketplace:
        market = marketplace_from_settings("woo", account(**data), lambda: SINCE)
        await market.aclose()
        return market

    return asyncio.run(make())


def test_settings_build_the_feed_with_gentle_defaults():
    market = build()
    assert isinstance(market, Marketplace)
    assert market.name == "woo" and market.page_size == 100 and market.tracking_meta_key == META_KEY
    assert market.query_string_auth is False
    assert market.http.limits == DEFAULT_LIMITS == Limits(concurrency=1, per_second=2.0)
    assert str(market.http.client.base_url) == "https://shop.example.com"


def test_settings_read_every_key():
    market = build(page_size=50, tracking_meta_key="_my_tracking", query_string_auth=True, concurrency=2,
                   per_second=0.5, per_day=5000, lookback="7d", shop="main")
    assert (market.page_size, market.tracking_meta_key, market.query_string_auth) == (50, "_my_tracking", True)
    assert market.http.limits == Limits(concurrency=2, per_second=0.5, per_day=5000)


@pytest.mark.parametrize(("data", "key", "words"), [
    ({"consumer_secret": None}, "marketplaces.woo.consumer_secret", "is required"),
    ({"consumer_key": "  "}, "marketplaces.woo.consumer_key", "must not be empty"),
    ({"base_url": None}, "marketplaces.woo.base_url", "is required"),
    ({"base_url": "http://shop.example.com"}, "marketplaces.woo.base_url", "https://"),
    ({"base_url": "https://shop.example.com/wp-json/wc/v3"}, "marketplaces.woo.base_url", "without /wp-json"),
    ({"page_size": 250}, "marketplaces.woo.page_size", "at most 100"),
    ({"page_size": 0}, "marketplaces.woo.page_size", "at least 1"),
    ({"query_string_auth": "yes"}, "marketplaces.woo.query_string_auth", "true or false"),
    ({"tracking_meta_key": ""}, "marketplaces.woo.tracking_meta_key", "must not be empty"),
    ({"consumer_sercet": "x"}, "marketplaces.woo.consumer_sercet", "did you mean 'consumer_secret'"),
])
def test_settings_name_the_key_that_is_wrong(data, key, words):
    with pytest.raises(ConfigError) as caught:
        build(**data)
    assert caught.value.key == key and words in str(caught.value)
    assert "cs_def" not in str(caught.value)
