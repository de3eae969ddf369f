"""The Shopify order feed (GraphQL Admin API) against a local server (respx) serving Shopify's published
payloads and orders shaped like ORDERS_QUERY's answers. No network, no real sleeping."""

from __future__ import annotations

import asyncio
import copy
import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from carriers.base import AuthError, FeedBatch, Marketplace, ResponseError, ShipmentRecord, TransientError
from carriers.http import Limits, RetryPolicy
from carriers.shopify import DEFAULT_API_VERSION, DEFAULT_LIMITS, ShopifyMarketplace, marketplace_from_settings
from carriers.shopify_orders import (
    FULFILLMENTS_PER_ORDER,
    LINES_PER_FOLLOW_UP,
    LINES_PER_ORDER,
    MAX_QUERY_COST,
    ORDER_COST,
    ORDER_LINES_QUERY,
    ORDERS_QUERY,
    PAGE_SIZE_THAT_FITS,
    TRACKING_PER_FULFILLMENT,
)
from tests.doubles import Sleeps
from tracker.settings import ConfigError, Section

FIXTURES = Path(__file__).parent.parent / "fixtures" / "shopify"
BASE = "https://my-shop.myshopify.com"
ENDPOINT = f"{BASE}/admin/api/{DEFAULT_API_VERSION}/graphql.json"
ACCOUNT = "acme-shop"
SINCE = datetime(2026, 11, 1, 10, 20, 30, tzinfo=UTC)
COST = {"cost": {"requestedQueryCost": 952, "actualQueryCost": 40,
                 "throttleStatus": {"maximumAvailable": 2000.0, "currentlyAvailable": 1960, "restoreRate": 100.0}}}



def sample(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def shop(sleeps: Sleeps | None = None, **kwargs: Any) -> ShopifyMarketplace:
    return ShopifyMarketplace(ACCOUNT, base_url=BASE, access_token="shpat_test", limits=Limits(1, 1e9),
                              retry=RetryPolicy(sleep=sleeps or Sleeps()), **kwargs)


def changes(market: ShopifyMarketplace, since: datetime = SINCE) -> FeedBatch:
    async def call() -> FeedBatch:
        try:
            return await market.changes(since)
        finally:
            await market.aclose()

    return asyncio.run(call())


def order(number: int, updated: str = "2026-11-02T09:00:00Z", **overrides: Any) -> dict[str, Any]:
    """An Order node as ORDERS_QUERY selects it."""
    node = {
        "id": f"gid://shopify/Order/{5_000_000 + number}", "name": f"#{number}",
        "createdAt": "2026-11-01T08:00:00Z", "updatedAt": updated, "cancelledAt": None,
        "displayFinancialStatus": "PAID", "currencyCode": "EUR", "discountCodes": [],
        "email": f"buyer{number}@example.com", "customerLocale": "de", "customerAcceptsMarketing": False,
        "totalPriceSet": {"shopMoney": {"amount": "64.00", "currencyCode": "EUR"}},
        "customer": {"id": f"gid://shopify/Customer/{700 + number}", "firstName": "Anna", "lastName": "Müller",
                     "locale": "de", "defaultEmailAddress": {"emailAddress": f"anna{number}@example.com",
                                                             "marketingState": "NOT_SUBSCRIBED"}},
        "shippingAddress": {"name": "Anna Müller", "city": "Berlin", "zip": "10115", "countryCodeV2": "DE"},
        "lineItems": {"pageInfo": {"hasNextPage": False, "endCursor": None}, "nodes": [line(number * 10 + 1)]},
        "fulfillments": [],
    }
    node.update(overrides)
    return node


def line(key: int, price: str = "32.00", quantity: int = 2) -> dict[str, Any]:
    return {"id": f"gid://shopify/LineItem/{key}", "name": "Ceramic Mug - Sand", "title": "Ceramic Mug",
            "quantity": quantity, "sku": "MUG-1", "originalUnitPriceSet": {"shopMoney": {"amount": price}},
            "image": {"url": "https://cdn.shopify.com/mug.jpg"},
            "product": {"id": "gid://shopify/Product/42", "onlineStoreUrl": "https://my-shop.com/products/mug"}}


def fulfillment(*numbers: str, company: str | None = "UPS", status: str = "SUCCESS",
                created: str = "2026-11-02T08:30:00Z") -> dict[str, Any]:
    return {"createdAt": created, "status": status,
            "trackingInfo": [{"company": company, "number": n, "url": f"https://track.example/{n}"} for n in numbers]}


def page(*nodes: Any, after: str | None = None) -> httpx.Response:
    info = {"hasNextPage": after is not None, "endCursor": after}
    return httpx.Response(200, json={"data": {"orders": {"pageInfo": info, "nodes": list(nodes)}},
                                     "extensions": COST})


def sent(route: respx.Route, index: int = 0) -> dict[str, Any]:
    return json.loads(route.calls[index].request.content)


# ── The query ─────────────────────────────────────────────────────────────────────────────────────────────


def test_the_query_asks_for_what_the_parser_reads_within_the_single_query_cost_limit() -> None:
    assert "sortKey: UPDATED_AT" in ORDERS_QUERY and "pageInfo { hasNextPage endCursor }" in ORDERS_QUERY
    assert f"lineItems(first: {LINES_PER_ORDER})" in ORDERS_QUERY
    assert f"fulfillments(first: {FULFILLMENTS_PER_ORDER})" in ORDERS_QUERY
    assert f"trackingInfo(first: {TRACKING_PER_FULFILLMENT})" in ORDERS_QUERY
    assert f"lineItems(first: {LINES_PER_FOLLOW_UP}, after: $after)" in ORDER_LINES_QUERY
    for name in ("cancelledAt", "displayFinancialStatus", "discountCodes", "customerLocale", "countryCodeV2",
                 "defaultEmailAddress { emailAddress marketingState }", "originalUnitPriceSet", "onlineStoreUrl"):
        assert name in ORDERS_QUERY
    assert 1 <= PAGE_SIZE_THAT_FITS and 3 + PAGE_SIZE_THAT_FITS * ORDER_COST <= MAX_QUERY_COST
    assert 3 + 3 + LINES_PER_FOLLOW_UP * 5 <= MAX_QUERY_COST


def test_the_adapter_follows_the_marketplace_protocol() -> None:
    market = shop()
    try:
        assert isinstance(market, Marketplace) and market.name == ACCOUNT
    finally:
        asyncio.run(market.aclose())


@respx.mock
def test_request_shape_token_header_and_the_since_filter() -> None:
    route = respx.post(ENDPOINT).mock(return_value=page())
    since = datetime(2026, 11, 1, 11, 20, 30, 987_654, tzinfo=timezone(timedelta(hours=1)))
    changes(shop(), since)
    request = route.calls[0].request
    assert request.headers["X-Shopify-Access-Token"] == "shpat_test"
    assert request.headers["Content-Type"] == "application/json"
    body = sent(route)
    assert body["query"] == ORDERS_QUERY
    # UTC, floored to whole seconds: nothing updated after `since` can fall outside the filter.
    assert body["variables"] == {"first": PAGE_SIZE_THAT_FITS, "after": None,
                                 "query": "updated_at:>'2026-11-01T10:20:30Z'"}


def test_a_naive_since_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        changes(shop(), datetime(2026, 11, 1))


# ── Paging and the cursor ─────────────────────────────────────────────────────────────────────────────────


@respx.mock
def test_every_page_is_read_and_the_cursor_is_the_newest_updated_at() -> None:
    route = respx.post(ENDPOINT).mock(side_effect=[
        page(order(1, "2026-11-02T09:00:00Z"), order(2, "2026-11-02T09:05:00Z"), after="c1"),
        page(order(3, "2026-11-02T11:00:00Z"), after="c2"),
        page(order(4, "2026-11-02T10:00:00Z")),
    ])
    batch = changes(shop())
    assert [o.number for o in batch.orders] == ["#1", "#2", "#3", "#4"]
    assert [sent(route, i)["variables"]["after"] for i in range(3)] == [None, "c1", "c2"]
    assert {sent(route, i)["variables"]["query"] for i in range(3)} == {"updated_at:>'2026-11-01T10:20:30Z'"}
    assert batch.cursor == datetime(2026, 11, 2, 11, 0, tzinfo=UTC)
    assert batch.problems == ()


@respx.mock
def test_nothing_changed_keeps_since_as_the_cursor() -> None:
    respx.post(ENDPOINT).mock(return_value=page())
    batch = changes(shop())
    assert batch.orders == () and batch.cursor == SINCE


@respx.mock
def test_a_cursor_that_does_not_advance_is_refused_instead_of_looping() -> None:
    respx.post(ENDPOINT).mock(side_effect=[page(order(1), after="same"), page(order(2), after="same")])
    with pytest.raises(ResponseError, match=f"{ACCOUNT}.*does not advance"):
        changes(shop())


@respx.mock
def test_an_updated_order_comes_back_with_its_new_shipment_and_the_next_read_starts_from_it() -> None:
    route = respx.post(ENDPOINT).mock(side_effect=[
        page(order(1, "2026-11-02T09:00:00Z")),
        page(order(1, "2026-11-03T07:00:00Z", fulfillments=[fulfillment("1Z999AA10123456784")])),
    ])
    first = changes(shop())
    assert first.orders[0].shipments == ()
    second = changes(shop(), first.cursor)
    assert sent(route, 1)["variables"]["query"] == "updated_at:>'2026-11-02T09:00:00Z'"
    assert second.orders[0].external_id == first.orders[0].external_id
    assert [s.tracking_number for s in second.orders[0].shipments] == ["1Z999AA10123456784"]
    assert second.cursor == datetime(2026, 11, 3, 7, 0, tzinfo=UTC)


# ── What an order says ────────────────────────────────────────────────────────────────────────────────────


@respx.mock
def test_an_order_is_read_field_by_field_and_big_ids_stay_exact() -> None:
    node = order(1, id="gid://shopify/Order/820982911946154508", name="#1001", discountCodes=["WELCOME10"],
                 totalPriceSet={"shopMoney": {"amount": "123.45", "currencyCode": "EUR"}},
                 lineItems={"nodes": [line(9007199254740993, "61.725", 2)]})
    node["customer"]["defaultEmailAddress"]["marketingState"] = "SUBSCRIBED"
    respx.post(ENDPOINT).mock(return_value=page(node))
    (record,) = changes(shop()).orders
    assert record.external_id == "820982911946154508" and record.number == "#1001"
    assert record.created_at == datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
    assert record.updated_at == datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    assert (record.currency, record.total) == ("EUR", Decimal("123.45"))
    assert (record.customer_id, record.customer_email, record.customer_name) == (
        "701", "buyer1@example.com", "Anna Müller")
    assert record.customer_locale == "de" and record.marketing_consent is True
    assert record.discount_codes == ("WELCOME10",)
    assert (record.cancelled, record.refunded, record.shipments) == (False, False, ())
    assert (record.shipping_address.country, record.shipping_address.city,
            record.shipping_address.postcode, record.shipping_address.name) == ("DE", "Berlin", "10115", "Anna Müller")
    (item,) = record.lines
    assert item.key == "9007199254740993"  # 2^53 + 1: a float would have made it ...992
    assert (item.title, item.quantity, item.unit_price, item.sku) == ("Ceramic Mug - Sand", 2, Decimal("61.725"),
                                                                      "MUG-1")
    assert (item.product_id, item.image_url, item.product_url) == (
        "42", "https://cdn.shopify.com/mug.jpg", "https://my-shop.com/products/mug")


@respx.mock
def test_the_customers_email_stands_in_and_a_guest_gets_a_customer_id_of_their_own() -> None:
    registered = order(1, email=None)
    guest = order(2, customer=None, email="Guest@Example.com", customerLocale=None, customerAcceptsMarketing=True)
    anonymous = order(3, customer=None, email=None, shippingAddress=None, customerAcceptsMarketing=None)
    respx.post(ENDPOINT).mock(return_value=page(registered, guest, anonymous))
    first, second, third = changes(shop()).orders
    assert first.customer_email == "anna1@example.com"
    assert (second.customer_id, second.customer_email, second.customer_name) == (
        "guest:guest@example.com", "Guest@Example.com", "Anna Müller")
    assert second.customer_locale == "en" and second.marketing_consent is True  # accepted at checkout
    assert (third.customer_id, third.customer_email, third.customer_name) == ("order:5000003", "", "")
    assert third.marketing_consent is None  # Shopify does not say: the [emails] consent policy decides
    assert third.shipping_address.country == ""


@pytest.mark.parametrize("state, consent", [("SUBSCRIBED", True), ("NOT_SUBSCRIBED", False),
                                            ("UNSUBSCRIBED", False), ("PENDING", False), ("INVALID", False)])
@respx.mock
def test_the_customers_current_marketing_state_outranks_the_checkout_box(state: str, consent: bool) -> None:
    node = order(1, customerAcceptsMarketing=True)
    node["customer"]["defaultEmailAddress"]["marketingState"] = state
    respx.post(ENDPOINT).mock(return_value=page(node))
    assert changes(shop()).orders[0].marketing_consent is consent


@respx.mock
def test_cancelled_and_fully_refunded_orders_say_so() -> None:
    respx.post(ENDPOINT).mock(return_value=page(
        order(1, cancelledAt="2026-11-02T08:59:00Z", displayFinancialStatus="REFUNDED"),
        order(2, displayFinancialStatus="PARTIALLY_REFUNDED"),
        order(3, displayFinancialStatus=None),
    ))
    cancelled, partial, unknown = changes(shop()).orders
    assert cancelled.cancelled and cancelled.refunded
    assert not partial.cancelled and not partial.refunded
    assert not unknown.refunded


@respx.mock
def test_every_tracking_number_is_a_shipment_and_cancelled_fulfillments_are_left_out() -> None:
    node = order(1, fulfillments=[
        fulfillment("1Z999AA10123456784", "1Z999AA10123456785", created="2026-11-02T08:30:00+01:00"),
        fulfillment("1Z0000000000000000", status="CANCELLED"),
        fulfillment("JJD000390007", company=None, created="2026-11-02T08:45:00Z"),
        fulfillment("1Z999AA10123456784"),  # listed twice: stored once
        {"createdAt": "2026-11-02T08:50:00Z", "status": "SUCCESS", "trackingInfo": []},  # no number yet
    ])
    respx.post(ENDPOINT).mock(return_value=page(node))
    (record,) = changes(shop()).orders
    at = datetime(2026, 11, 2, 7, 30, tzinfo=UTC)
    assert record.shipments == (
        ShipmentRecord("1Z999AA10123456784", "UPS", at, "https://track.example/1Z999AA10123456784"),
        ShipmentRecord("1Z999AA10123456785", "UPS", at, "https://track.example/1Z999AA10123456785"),
        ShipmentRecord("JJD000390007", "", datetime(2026, 11, 2, 8, 45, tzinfo=UTC),
                       "https://track.example/JJD000390007"),
    )


@respx.mock
def test_an_order_with_many_lines_gets_the_rest_from_follow_up_queries() -> None:
    node = order(1, lineItems={"pageInfo": {"hasNextPage": True, "endCursor": "L1"},
                               "nodes": [line(100 + i) for i in range(LINES_PER_ORDER)]})
    rest = [{"data": {"order": {"lineItems": {"pageInfo": {"hasNextPage": True, "endCursor": "L2"},
                                              "nodes": [line(200)]}}}},
            {"data": {"order": {"lineItems": {"pageInfo": {"hasNextPage": False, "endCursor": "L3"},
                                              "nodes": [line(300), {"quantity": 1, "title": "Gift wrap",
                                                                    "originalUnitPriceSet": {"shopMoney": {
                                                                        "amount": "0.00"}}}]}}}}]

    def answer(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        return page(node) if body["query"] == ORDERS_QUERY else httpx.Response(200, json=rest.pop(0))

    route = respx.post(ENDPOINT).mock(side_effect=answer)
    (record,) = changes(shop()).orders
    assert [sent(route, i)["variables"] for i in (1, 2)] == [
        {"id": "gid://shopify/Order/5000001", "after": "L1"}, {"id": "gid://shopify/Order/5000001", "after": "L2"}]
    assert sent(route, 1)["query"] == ORDER_LINES_QUERY
    keys = [item.key for item in record.lines]
    assert keys == [str(100 + i) for i in range(LINES_PER_ORDER)] + ["200", "300", "position-13"]
    assert record.lines[-1].title == "Gift wrap"


@respx.mock
def test_an_order_whose_remaining_lines_cannot_be_read_is_a_problem_and_the_others_stay() -> None:
    long = order(1, lineItems={"pageInfo": {"hasNextPage": True, "endCursor": "L1"}, "nodes": [line(11)]})

    def answer(request: httpx.Request) -> httpx.Response:
        if json.loads(request.content)["query"] == ORDERS_QUERY:
            return page(long, order(2))
        return httpx.Response(200, json={"data": {"order": None}})

    respx.post(ENDPOINT).mock(side_effect=answer)
    batch = changes(shop())
    assert [o.number for o in batch.orders] == ["#2"]
    assert batch.problems == (f"{ACCOUNT}: order #1 (gid://shopify/Order/5000001) skipped: "
                              "it is gone (order(id:) answered null)",)


# ── Unreadable orders and pages ───────────────────────────────────────────────────────────────────────────


@respx.mock
def test_an_unreadable_order_is_named_in_problems_and_the_others_are_imported() -> None:
    comma = order(2, totalPriceSet={"shopMoney": {"amount": "64,00", "currencyCode": "EUR"}})
    as_float = order(3, totalPriceSet={"shopMoney": {"amount": 64.0, "currencyCode": "EUR"}})
    no_id = order(4, id=None)
    no_quantity = order(5, lineItems={"nodes": [{**line(51), "quantity": None}]})
    bad_time = order(6, updatedAt="yesterday")
    respx.post(ENDPOINT).mock(return_value=page(order(1), comma, as_float, no_id, "garbage", no_quantity,
                                                bad_time, order(7)))
    batch = changes(shop())
    assert [o.number for o in batch.orders] == ["#1", "#7"]
    assert len(batch.problems) == 6
    expected = [("#2 (gid://shopify/Order/5000002)", "'64,00' is not an amount"),
                ("#3 (gid://shopify/Order/5000003)", "not a decimal string"),
                ("#4", "is not an order GID"), ("number 5 of its page", "not an object"),
                ("#5 (gid://shopify/Order/5000005)", "line 1 has no quantity"),
                ("#6 (gid://shopify/Order/5000006)", "'yesterday' is not an ISO 8601 time")]
    for problem, (who, what) in zip(batch.problems, expected, strict=True):
        assert problem.startswith(f"{ACCOUNT}: order {who} skipped") and what in problem


@pytest.mark.parametrize("response, what", [
    (httpx.Response(200, text="<!DOCTYPE html><title>Shop unavailable</title>",
                    headers={"content-type": "text/html"}), "expected JSON, got text/html"),
    (httpx.Response(200, text='{"data": {"orders": {"nodes": [{"id": "gid://shop',
                    headers={"content-type": "application/json"}), "expected JSON"),
    (httpx.Response(200, json={"data": {"orders": []}}), "data.orders is not a connection"),
    (httpx.Response(200, json={"data": {"shop": {}}}), "data.orders is not a connection"),
    (httpx.Response(200, json={"data": None}), "no data"),
    (httpx.Response(200, json=[{"orders": []}]), "expected a JSON object"),
    (httpx.Response(200, json={"data": {"orders": {"pageInfo": {"hasNextPage": True}, "nodes": []}}}),
     "no endCursor"),
])
@respx.mock
def test_a_malformed_page_is_a_response_error_naming_the_account(response: httpx.Response, what: str) -> None:
    respx.post(ENDPOINT).mock(return_value=response)
    with pytest.raises(ResponseError, match=what) as caught:
        changes(shop())
    assert caught.value.source == ACCOUNT and str(caught.value).startswith(f"{ACCOUNT}: ")


@respx.mock
def test_other_graphql_errors_are_response_errors_with_shopifys_message() -> None:
    body = {"errors": [{"message": "Field 'defaultEmailAddress' doesn't exist on type 'Customer'",
                        "locations": [{"line": 8, "column": 28}]}]}
    respx.post(ENDPOINT).mock(return_value=httpx.Response(200, json=body))
    with pytest.raises(ResponseError, match="GraphQL error: Field 'defaultEmailAddress' doesn't exist"):
        changes(shop())


@respx.mock
def test_shopifys_internal_error_is_transient() -> None:
    body = {"errors": [{"message": "Internal error. Looks like something went wrong on our end.",
                        "extensions": {"code": "INTERNAL_SERVER_ERROR", "requestId": "1b355a21"}}]}
    respx.post(ENDPOINT).mock(return_value=httpx.Response(200, json=body))
    with pytest.raises(TransientError, match="Internal error"):
        changes(shop())


# ── Auth, throttling, cost ────────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("response", [
    httpx.Response(401, json={"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"
                              }),
    httpx.Response(403, json={"errors": "Forbidden"}),
    httpx.Response(200, json={"errors": [{"message": "Access denied for orders field. Required access: "
                                                     "`read_orders` access scope.",
                                          "extensions": {"code": "ACCESS_DENIED"}}]}),
])
@respx.mock
def test_refused_credentials_are_an_auth_error_and_never_retried(response: httpx.Response) -> None:
    route = respx.post(ENDPOINT).mock(return_value=response)
    with pytest.raises(AuthError) as caught:
        changes(shop())
    assert caught.value.source == ACCOUNT and route.call_count == 1


@respx.mock
def test_throttled_waits_until_the_bucket_holds_the_requested_cost_then_asks_again() -> None:
    throttled = httpx.Response(200, content=(FIXTURES / "shopify-graphql-error-throttled.json").read_bytes(),
                               headers={"content-type": "application/json"})
    route = respx.post(ENDPOINT).mock(side_effect=[throttled, page(order(1))])
    sleeps = Sleeps()
    batch = changes(shop(sleeps))
    assert [o.number for o in batch.orders] == ["#1"] and route.call_count == 2
    assert sleeps.waits == [pytest.approx((752 - 666) / 50.0)]  # 1.72 s, read from the published answer


@respx.mock
def test_throttled_too_often_goes_back_to_the_poller_with_retry_after() -> None:
    body = sample("shopify-graphql-error-throttled.json")
    route = respx.post(ENDPOINT).mock(return_value=httpx.Response(200, json=body))
    sleeps = Sleeps()
    with pytest.raises(TransientError, match="throttled") as caught:
        changes(shop(sleeps))
    assert route.call_count == 3 and len(sleeps.waits) == 2
    assert caught.value.retry_after == pytest.approx(1.72) and caught.value.source == ACCOUNT


@respx.mock
def test_throttled_without_cost_numbers_waits_a_second() -> None:
    bare = httpx.Response(200, json={"errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}]})
    respx.post(ENDPOINT).mock(side_effect=[bare, page()])
    sleeps = Sleeps()
    changes(shop(sleeps))
    assert sleeps.waits == [1.0]


@respx.mock
def test_a_429_waits_for_retry_after_then_reads_on() -> None:
    route = respx.post(ENDPOINT).mock(side_effect=[httpx.Response(429, headers={"Retry-After": "7"}),
                                                   httpx.Response(503), page(order(1))])
    sleeps = Sleeps()
    assert [o.number for o in changes(shop(sleeps)).orders] == ["#1"]
    assert route.call_count == 3 and sleeps.waits == [7.0, 1.0]


@respx.mock
def test_a_page_too_costly_for_shopify_is_asked_again_smaller_and_stays_smaller() -> None:
    too_costly = httpx.Response(200, json={"errors": [{
        "message": "Query cost is 2003, which exceeds the single query max cost limit (1000).",
        "extensions": {"code": "MAX_COST_EXCEEDED", "cost": 2003, "maxCost": 1000}}]})
    route = respx.post(ENDPOINT).mock(side_effect=[too_costly, page(order(1), after="c1"), page(order(2))])
    batch = changes(shop())
    firsts = [sent(route, i)["variables"]["first"] for i in range(3)]
    assert firsts == [PAGE_SIZE_THAT_FITS, PAGE_SIZE_THAT_FITS * 1000 // 2003, PAGE_SIZE_THAT_FITS * 1000 // 2003]
    assert [o.number for o in batch.orders] == ["#1", "#2"]


@respx.mock
def test_a_single_order_still_too_costly_is_a_response_error() -> None:
    too_costly = httpx.Response(200, json={"errors": [{"message": "Query cost is 1200",
                                                       "extensions": {"code": "MAX_COST_EXCEEDED"}}]})
    respx.post(ENDPOINT).mock(return_value=too_costly)
    with pytest.raises(ResponseError, match="too costly"):
        changes(shop(page_size=1))


# ── The published samples, served by a local server ──────────────────────────────────────────────────────


def served(name: str) -> httpx.Response:
    """A shopify.dev example is the `data` member only: wrapped as the HTTP body Shopify sends."""
    return httpx.Response(200, json={"data": sample(name), "extensions": COST})


@respx.mock
def test_published_order_details_give_their_orders() -> None:
    respx.post(ENDPOINT).mock(return_value=served("shopify-graphql-orders-details.json"))
    batch = changes(shop())
    assert [o.number for o in batch.orders] == ["#2006", "#2002", "#2009", "#2003"]
    assert [o.external_id for o in batch.orders] == ["199007853", "212949620", "294238686", "316002265"]
    for record in batch.orders:
        assert (record.currency, record.total, record.customer_email) == ("CAD", Decimal("2000.0"),
                                                                          "bob@example.com")
        assert record.created_at == record.updated_at == datetime(2024, 1, 1, tzinfo=UTC)  # no updatedAt there
        assert (record.lines, record.shipments, record.cancelled, record.refunded) == ((), (), False, False)
        assert record.customer_id == "guest:bob@example.com" and record.shipping_address.country == ""
        assert record.marketing_consent is None
    # The example's one line item was selected without a price: that order cannot be imported.
    (problem,) = batch.problems
    assert "#2000 (gid://shopify/Order/158040885)" in problem and "line 1's unit price is missing" in problem
    assert batch.cursor == datetime(2024, 1, 1, tzinfo=UTC)


@respx.mock
def test_published_pages_are_followed_and_id_only_orders_are_named_as_problems() -> None:
    first = sample("shopify-graphql-orders-first10-pageinfo.json")
    route = respx.post(ENDPOINT).mock(side_effect=[served("shopify-graphql-orders-first10-pageinfo.json"),
                                                   served("shopify-graphql-orders-updated-at-filter.json")])
    batch = changes(shop())
    assert sent(route, 1)["variables"]["after"] == first["orders"]["pageInfo"]["endCursor"]
    assert route.call_count == 2  # the second example has no pageInfo: nothing follows it
    assert batch.orders == () and batch.cursor == SINCE and len(batch.problems) == 20
    ids = [edge["node"]["id"] for edge in first["orders"]["edges"]]
    ids += [edge["node"]["id"] for edge in sample("shopify-graphql-orders-updated-at-filter.json")["orders"]["edges"]]
    for problem, gid in zip(batch.problems, ids, strict=True):
        assert problem.startswith(f"{ACCOUNT}: order {gid} skipped")
    assert "createdAt is missing" in batch.problems[0]  # first10 selects only the id
    assert "totalPriceSet is missing" in batch.problems[10]  # the filter example selects id and updatedAt


@respx.mock
def test_the_published_fulfillment_on_a_published_order_gives_its_tracking_number() -> None:
    details = sample("shopify-graphql-orders-details.json")
    node = copy.deepcopy(details["orders"]["edges"][1]["node"])  # #2006, no line items
    node["fulfillments"] = [sample("shopify-graphql-fulfillment-tracking-info.json")["fulfillment"]]
    cancelled = copy.deepcopy(node["fulfillments"][0]) | {"status": "CANCELLED"}
    cancelled["trackingInfo"] = [{"company": "UPS", "number": "1Z0000000000000000", "url": None}]
    node["fulfillments"].append(cancelled)
    respx.post(ENDPOINT).mock(return_value=httpx.Response(200, json={"data": {"orders": {"edges": [{"node": node}]}}}))
    (record,) = changes(shop()).orders
    assert record.number == "#2006"
    # The example has no createdAt: the shipment is dated by its order.
    assert record.shipments == (ShipmentRecord(
        "1Z1234512345123456", "UPS", datetime(2024, 1, 1, tzinfo=UTC),
        "https://www.ups.com/WebTracking?loc=en_US&requester=ST&trackNums=1Z1234512345123456"),)


@respx.mock
def test_the_published_answer_with_a_cost_extension_gives_its_data() -> None:
    respx.post(ENDPOINT).mock(return_value=httpx.Response(
        200, content=(FIXTURES / "shopify-graphql-response-with-cost-extension.json").read_bytes()))
    market = shop()

    async def call() -> dict[str, Any]:
        try:
            return await market.graphql("{ product(id: $id) { id title handle } }", {})
        finally:
            await market.aclose()

    assert asyncio.run(call()) == {"product": {"id": "gid://shopify/Product/7608002183224", "title": "Aera",
                                               "handle": "aera-helmet"}}


# ── Config ────────────────────────────────────────────────────────────────────────────────────────────────


def account(**keys: Any) -> Section:
    data = {"type": "shopify", "shop": "main", **keys}
    return Section(Path("config.toml"), f"marketplaces.{ACCOUNT}", data)


def build(**keys: Any) -> ShopifyMarketplace:
    market = marketplace_from_settings(ACCOUNT, account(**keys), lambda: SINCE)
    asyncio.run(market.aclose())
    return market


def test_settings_are_read_with_the_token_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOPIFY_TOKEN", "shpat_from_env")
    market = build(base_url="https://my-shop.myshopify.com/", access_token="${SHOPIFY_TOKEN}",
                   api_version="2026-10", page_size=5, per_second=4)
    assert market.endpoint == "/admin/api/2026-10/graphql.json" and market.page_size == 5
    assert market.http.client.headers["X-Shopify-Access-Token"] == "shpat_from_env"
    assert str(market.http.client.base_url) == "https://my-shop.myshopify.com"
    assert market.http.limits == Limits(concurrency=1, per_second=4, per_day=None)


def test_defaults_are_the_published_limits_and_a_page_that_fits() -> None:
    market = build(base_url=BASE, access_token="shpat_x")
    assert market.http.limits == DEFAULT_LIMITS == Limits(concurrency=1, per_second=2.0)
    assert market.endpoint == f"/admin/api/{DEFAULT_API_VERSION}/graphql.json"
    assert market.page_size == PAGE_SIZE_THAT_FITS


@pytest.mark.parametrize("keys, key, problem", [
    ({"base_url": BASE}, "access_token", "is required"),
    ({"access_token": "shpat_x"}, "base_url", "is required"),
    ({"base_url": BASE, "access_token": " "}, "access_token", "is empty"),
    ({"base_url": "my-shop.myshopify.com", "access_token": "x"}, "base_url", "shop's address"),
    ({"base_url": BASE, "access_token": "x", "acess_token": "y"}, "acess_token", "did you mean 'access_token'"),
    ({"base_url": BASE, "access_token": "x", "api_version": "2026-7"}, "api_version", "must look like"),
    ({"base_url": BASE, "access_token": "x", "page_size": 251}, "page_size", "at most 250"),
    ({"base_url": BASE, "access_token": "x", "page_size": 0}, "page_size", "at least 1"),
])
def test_settings_mistakes_name_the_key(keys: dict[str, Any], key: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem) as caught:
        marketplace_from_settings(ACCOUNT, account(**keys), lambda: SINCE)
    assert caught.value.key == f"marketplaces.{ACCOUNT}.{key}"
