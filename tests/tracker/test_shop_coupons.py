"""Resell coupons created in the merchant's shop: MarketplaceCoupons over the Shopify and WooCommerce adapters,
against a local server (respx) serving their published payloads (tests/fixtures/coupons/README.md names each
source), and `[emails.coupons]`. No network, no real sleeping."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from sqlalchemy.engine import Engine

from carriers.http import Limits, RetryPolicy
from carriers.shopify import DEFAULT_API_VERSION, ShopifyMarketplace
from carriers.woocommerce import COUPONS_PATH, WooCommerceMarketplace
from emails.coupons import (
    CouponAuthError,
    CouponError,
    CouponSource,
    IssuedCoupon,
    LocalCoupons,
    PoolCoupons,
    TransientCouponError,
)
from tests.doubles import Sleeps
from tests.emails.test_coupons import CODE, KEY, SECRET, issue, request
from tests.factories import T0
from tracker.config import AccountSettings
from tracker.settings import ConfigError, Section
from tracker.shop_coupons import MarketplaceCoupons, coupon_source_from_settings

FIXTURES = Path(__file__).parent.parent / "fixtures" / "coupons"
SHOP = "https://my-shop.myshopify.com"
SHOP_ENDPOINT = f"{SHOP}/admin/api/{DEFAULT_API_VERSION}/graphql.json"
STORE = "https://shop.example.com"
WOO_ENDPOINT = f"{STORE}{COUPONS_PATH}"
TAKEN = {"field": ["basicCodeDiscount", "code"], "code": "TAKEN",
         "message": "Code must be unique. Please try a different code."}


def sample(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def body(route: respx.Route, index: int = -1) -> Any:
    return json.loads(route.calls[index].request.content)


@contextmanager
def held_for_good(match: str | None = None) -> Iterator[pytest.ExceptionInfo[CouponError]]:
    """A permanent CouponError: the email is held, neither retried later nor blamed on the credentials."""
    with pytest.raises(CouponError, match=match) as caught:
        yield caught
    assert type(caught.value) is CouponError, f"{caught.value!r} is not a permanent refusal"


# ── Shopify ───────────────────────────────────────────────────────────────────────────────────────────────


def shopify(sleeps: Sleeps | None = None) -> MarketplaceCoupons:
    shop = ShopifyMarketplace("acme-shop", base_url=SHOP, access_token="shpat_test",
                              retry=RetryPolicy(sleep=sleeps or Sleeps()), limits=Limits(per_second=1e9))
    return MarketplaceCoupons(shop, SECRET, "shopify")


def created(code: str = CODE) -> dict[str, Any]:
    """The published discountCodeBasicCreate answer, wrapped in its envelope, for our code."""
    data = sample("shopify-graphql-discountCodeBasicCreate-response.json")
    data["discountCodeBasicCreate"]["codeDiscountNode"]["codeDiscount"]["codes"]["nodes"][0]["code"] = code
    return {"data": data}


def refused(*errors: dict[str, Any]) -> dict[str, Any]:
    return {"data": {"discountCodeBasicCreate": {"codeDiscountNode": None, "userErrors": list(errors)}}}


@respx.mock
def test_shopify_request_has_the_published_shape_plus_single_use() -> None:
    route = respx.post(SHOP_ENDPOINT).mock(return_value=httpx.Response(200, json=created()))
    published = sample("shopify-graphql-discountCodeBasicCreate-variables.json")["input"]
    start = datetime(2024, 6, 21, tzinfo=UTC)
    issued = issue(shopify(), request(discount="20", now=start, valid_for=timedelta(days=92)))
    assert issued == IssuedCoupon(CODE, "20", datetime(2024, 9, 21, tzinfo=UTC), "shopify")
    sent = route.calls[0].request
    assert sent.headers["X-Shopify-Access-Token"] == "shpat_test"
    assert "discountCodeBasicCreate(basicCodeDiscount: $input)" in body(route)["query"]
    ours = body(route)["variables"]["input"]
    assert set(ours) == set(published) | {"usageLimit"}
    same = {k: v for k, v in published.items() if k not in ("title", "code", "customerGets")}
    assert {k: ours[k] for k in same} == same  # startsAt, endsAt, customerSelection, appliesOncePerCustomer
    assert ours["code"] == CODE and ours["usageLimit"] == 1 and KEY in ours["title"]
    assert ours["customerGets"]["items"] == published["customerGets"]["items"]
    amount, published_amount = ours["customerGets"]["value"]["discountAmount"], \
        published["customerGets"]["value"]["discountAmount"]
    assert set(amount) == set(published_amount) and amount["appliesOnEachItem"] is False
    assert Decimal(amount["amount"]) == Decimal(published_amount["amount"])


@respx.mock
@pytest.mark.parametrize("discount, fraction", [("10%", 0.1), ("12.5%", 0.125), ("100%", 1.0)])
def test_shopify_percentages_are_fractions(discount: str, fraction: float) -> None:
    route = respx.post(SHOP_ENDPOINT).mock(return_value=httpx.Response(200, json=created()))
    issue(shopify(), request(discount=discount))
    assert body(route)["variables"]["input"]["customerGets"]["value"] == {"percentage": fraction}
    variables = body(route)["variables"]["input"]
    assert (variables["startsAt"], variables["endsAt"]) == ("2026-03-02T09:00:00Z", "2026-04-01T09:00:00Z")


@respx.mock
def test_shopify_code_already_exists_after_a_lost_answer_is_success_with_the_same_code() -> None:
    route = respx.post(SHOP_ENDPOINT).mock(side_effect=[httpx.ReadTimeout("no answer"),
                                                        httpx.Response(200, json=refused(TAKEN))])
    sleeps = Sleeps()
    issued = issue(shopify(sleeps))
    assert issued.code == CODE and route.call_count == 2 and sleeps.waits == [0.5]
    assert body(route, 0)["variables"]["input"]["code"] == body(route, 1)["variables"]["input"]["code"] == CODE


@respx.mock
def test_shopify_code_already_exists_on_a_later_send_is_the_same_code() -> None:
    respx.post(SHOP_ENDPOINT).mock(side_effect=[httpx.Response(200, json=created()),
                                                httpx.Response(200, json=refused(TAKEN))])
    first = issue(shopify())
    assert issue(shopify()) == first


@respx.mock
@pytest.mark.parametrize("error", [
    {"field": ["basicCodeDiscount", "code"], "code": None, "message": "Code must be unique."},
    {"field": ["basicCodeDiscount", "code"], "code": "DUPLICATE", "message": "The input value is already present"},
])
def test_shopify_other_wordings_of_a_duplicate_code_are_success(error: dict[str, Any]) -> None:
    respx.post(SHOP_ENDPOINT).mock(return_value=httpx.Response(200, json=refused(error)))
    assert issue(shopify()).code == CODE


@respx.mock
@pytest.mark.parametrize("error", [
    {"field": ["basicCodeDiscount", "endsAt"], "code": "INVALID", "message": "Ends at needs to be after starts_at"},
    {"field": ["basicCodeDiscount", "customerGets", "value"], "code": "TAKEN", "message": "already taken"},
])
def test_shopify_other_user_errors_are_permanent_coupon_errors(error: dict[str, Any]) -> None:
    route = respx.post(SHOP_ENDPOINT).mock(return_value=httpx.Response(200, json=refused(error)))
    with held_for_good() as caught:
        issue(shopify())
    assert error["message"] in str(caught.value) and "acme-shop" in str(caught.value)
    assert route.call_count == 1


@respx.mock
def test_shopify_success_without_our_code_is_an_error() -> None:
    respx.post(SHOP_ENDPOINT).mock(return_value=httpx.Response(200, json=created("BUYNOW20")))
    with held_for_good(CODE):
        issue(shopify())


@respx.mock
def test_shopify_refused_token_is_an_auth_error_and_not_retried() -> None:
    route = respx.post(SHOP_ENDPOINT).mock(return_value=httpx.Response(
        401, json={"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}))
    with pytest.raises(CouponAuthError):
        issue(shopify())
    assert route.call_count == 1


@respx.mock
def test_shopify_missing_scope_is_an_auth_error_naming_write_discounts() -> None:
    denied = {"errors": [{"message": "Access denied for discountCodeBasicCreate field.",
                          "extensions": {"code": "ACCESS_DENIED"}}]}
    respx.post(SHOP_ENDPOINT).mock(return_value=httpx.Response(200, json=denied))
    with pytest.raises(CouponAuthError, match="write_discounts"):
        issue(shopify())


@respx.mock
def test_shopify_internal_error_in_the_body_is_transient() -> None:
    failed = {"errors": [{"message": "Internal error. Looks like something went wrong on our end.",
                          "extensions": {"code": "INTERNAL_SERVER_ERROR"}}]}
    respx.post(SHOP_ENDPOINT).mock(return_value=httpx.Response(200, json=failed))
    with pytest.raises(TransientCouponError, match="Internal error"):
        issue(shopify())


@respx.mock
def test_shopify_5xx_is_retried_with_backoff_then_succeeds() -> None:
    route = respx.post(SHOP_ENDPOINT).mock(side_effect=[httpx.Response(503), httpx.Response(502),
                                                        httpx.Response(200, json=created())])
    sleeps = Sleeps()
    assert issue(shopify(sleeps)).code == CODE
    assert route.call_count == 3 and sleeps.waits == [0.5, 1.0]


@respx.mock
def test_shopify_5xx_that_persists_is_transient() -> None:
    respx.post(SHOP_ENDPOINT).mock(return_value=httpx.Response(500, text="oops"))
    with pytest.raises(TransientCouponError):
        issue(shopify())


@respx.mock
def test_shopify_throttled_is_waited_out_with_the_published_cost_numbers() -> None:
    throttled = sample("shopify-graphql-error-throttled.json")
    route = respx.post(SHOP_ENDPOINT).mock(side_effect=[httpx.Response(200, json=throttled),
                                                        httpx.Response(200, json=created())])
    sleeps = Sleeps()
    assert issue(shopify(sleeps)).code == CODE
    assert route.call_count == 2 and sleeps.waits == [pytest.approx((752 - 666) / 50.0)]


@respx.mock
def test_shopify_throttled_every_time_is_transient() -> None:
    throttled = sample("shopify-graphql-error-throttled.json")
    respx.post(SHOP_ENDPOINT).mock(return_value=httpx.Response(200, json=throttled))
    with pytest.raises(TransientCouponError, match="throttled"):
        issue(shopify())


@respx.mock
def test_shopify_schema_errors_are_permanent() -> None:
    errors = {"errors": [{"message": "Variable $input of type DiscountCodeBasicInput! was provided invalid value "
                                     "for customerSelection (Field is not defined on DiscountCodeBasicInput)"}]}
    respx.post(SHOP_ENDPOINT).mock(return_value=httpx.Response(200, json=errors))
    with held_for_good("customerSelection"):
        issue(shopify())


# ── WooCommerce ───────────────────────────────────────────────────────────────────────────────────────────


def woo(sleeps: Sleeps | None = None, **kwargs: Any) -> MarketplaceCoupons:
    store = WooCommerceMarketplace("woo", consumer_key="ck_key", consumer_secret="cs_secret", base_url=STORE,
                                   retry=RetryPolicy(sleep=sleeps or Sleeps()), limits=Limits(per_second=1e9),
                                   **kwargs)
    return MarketplaceCoupons(store, SECRET, "woocommerce")


def woo_created(code: str = CODE) -> httpx.Response:
    answer = sample("woocommerce-v3-coupon-create-response.json")
    answer["code"] = code.lower()  # WooCommerce stores codes lower-cased
    return httpx.Response(201, json=answer)


DUPLICATE = {"code": "woocommerce_rest_coupon_code_already_exists", "message": "The coupon code already exists",
             "data": {"status": 400}}


@respx.mock
def test_woocommerce_request_has_the_published_shape_plus_single_use() -> None:
    route = respx.post(WOO_ENDPOINT).mock(return_value=woo_created())
    issued = issue(woo())
    assert issued == IssuedCoupon(CODE, "10%", T0 + timedelta(days=30), "woocommerce")
    sent = route.calls[0].request
    assert sent.headers["Authorization"] == "Basic " + base64.b64encode(b"ck_key:cs_secret").decode()
    published = sample("woocommerce-v3-coupon-create-request.json")
    ours = body(route)
    for key in ("discount_type", "amount", "individual_use"):  # "10%" is the published 10 percent coupon
        assert ours[key] == published[key]
    assert all(isinstance(ours[k], type(published[k])) for k in ("code", "discount_type", "amount", "individual_use"))
    assert ours["code"] == CODE and ours["usage_limit"] == 1 and ours["usage_limit_per_user"] == 1
    assert ours["date_expires_gmt"] == "2026-04-01T09:00:00"
    assert ours["email_restrictions"] == ["ada@example.com"]


@respx.mock
def test_woocommerce_amounts_are_fixed_cart_strings() -> None:
    route = respx.post(WOO_ENDPOINT).mock(return_value=woo_created())
    issue(woo(), request(discount="5.00"))
    assert (body(route)["discount_type"], body(route)["amount"]) == ("fixed_cart", "5.00")


@respx.mock
def test_woocommerce_code_already_exists_after_a_lost_answer_is_success_with_the_same_code() -> None:
    route = respx.post(WOO_ENDPOINT).mock(side_effect=[httpx.Response(504),
                                                       httpx.Response(400, json=DUPLICATE)])
    sleeps = Sleeps()
    assert issue(woo(sleeps)).code == CODE
    assert route.call_count == 2 and sleeps.waits == [0.5]
    assert body(route, 0)["code"] == body(route, 1)["code"] == CODE


@respx.mock
def test_woocommerce_other_refusals_are_coupon_errors_with_the_code() -> None:
    error = sample("woocommerce-v3-error-example.json")
    route = respx.post(WOO_ENDPOINT).mock(return_value=httpx.Response(404, json=error))
    with held_for_good("woocommerce_rest_term_invalid") as caught:
        issue(woo())
    assert caught.value.status_code == 404 and route.call_count == 1
    invalid = {"code": "rest_invalid_param", "message": "Invalid parameter(s): amount", "data": {"status": 400}}
    respx.post(WOO_ENDPOINT).mock(return_value=httpx.Response(400, json=invalid))
    with held_for_good("rest_invalid_param"):
        issue(woo())


@respx.mock
def test_woocommerce_refused_keys_are_an_auth_error() -> None:
    cannot = {"code": "woocommerce_rest_cannot_create", "message": "Sorry, you are not allowed to create resources.",
              "data": {"status": 401}}
    route = respx.post(WOO_ENDPOINT).mock(return_value=httpx.Response(401, json=cannot))
    with pytest.raises(CouponAuthError, match="Read/Write"):
        issue(woo())
    assert route.call_count == 1


@respx.mock
def test_woocommerce_5xx_that_persists_is_transient() -> None:
    route = respx.post(WOO_ENDPOINT).mock(return_value=httpx.Response(503))
    sleeps = Sleeps()
    with pytest.raises(TransientCouponError):
        issue(woo(sleeps))
    assert route.call_count == 3 and sleeps.waits == [0.5, 1.0]


@respx.mock
def test_woocommerce_redirect_is_not_followed_as_a_get() -> None:
    respx.post(WOO_ENDPOINT).mock(return_value=httpx.Response(301, headers={"Location": "https://www.shop.example.com/x"}))
    with held_for_good("www.shop.example.com"):
        issue(woo())


@respx.mock
def test_woocommerce_answer_for_another_code_is_an_error() -> None:
    respx.post(WOO_ENDPOINT).mock(return_value=woo_created("10off"))
    with held_for_good(CODE):
        issue(woo())


@respx.mock(using="httpcore")  # the keys are added below the client: mock below it too
def test_woocommerce_query_string_keys_never_show_in_errors(respx_mock) -> None:
    route = respx_mock.post(url__startswith=WOO_ENDPOINT).mock(
        return_value=httpx.Response(400, text="bad request for ?consumer_key=ck_key&consumer_secret=cs_secret"))
    with held_for_good() as caught:
        issue(woo(query_string_auth=True))
    sent = route.calls[0].request
    assert sent.url.params["consumer_key"] == "ck_key" and "Authorization" not in sent.headers
    assert "cs_secret" not in str(caught.value) and "ck_key" not in caught.value.excerpt


# ── Config ────────────────────────────────────────────────────────────────────────────────────────────────

CONFIG = Path("/etc/trackmail/config.toml")


def section(**data: Any) -> Section:
    return Section(CONFIG, "emails.coupons", data)


def account(name: str, kind: str, **data: Any) -> AccountSettings:
    return AccountSettings(name, kind, "main", Section(CONFIG, f"marketplaces.{name}", {"type": kind, **data}))


MARKETPLACES = {
    "acme": account("acme", "shopify", base_url=SHOP, access_token="shpat_x", api_version="2026-01"),
    "woo": account("woo", "woocommerce", base_url=STORE, consumer_key="ck_1", consumer_secret="cs_1",
                   query_string_auth=True),
    "file": account("file", "orderfile", path="orders.csv"),
}


def build(data: dict[str, Any], engine: Engine | None = None,
          marketplaces: dict[str, AccountSettings] = MARKETPLACES) -> CouponSource:
    source = coupon_source_from_settings(section(**data), SECRET, engine, marketplaces)  # type: ignore[arg-type]
    asyncio.run(source.aclose())
    return source


def test_no_table_means_local_codes() -> None:
    source = build({})
    assert isinstance(source, LocalCoupons) and source.secret == SECRET


def test_pool_file_is_relative_to_the_config_file(tmp_path: Path, engine: Engine) -> None:
    (tmp_path / "codes.txt").write_text("A1\nA2\n")
    source = coupon_source_from_settings(Section(tmp_path / "config.toml", "emails.coupons",
                                                 {"source": "pool", "pool_file": "codes.txt"}), SECRET, engine, {})
    assert isinstance(source, PoolCoupons) and source.path == tmp_path / "codes.txt" and source.remaining() == 2


def test_shopify_source_uses_the_named_accounts_credentials() -> None:
    source = build({"source": "shopify", "marketplace": "acme"})
    assert isinstance(source, MarketplaceCoupons) and isinstance(source.marketplace, ShopifyMarketplace)
    assert source.marketplace.name == "acme" and source.source == "shopify"
    assert source.marketplace.endpoint == "/admin/api/2026-01/graphql.json"
    assert source.marketplace.http.client.headers["X-Shopify-Access-Token"] == "shpat_x"


def test_woocommerce_source_is_found_when_it_is_the_only_such_account() -> None:
    source = build({"source": "woocommerce"})
    assert isinstance(source, MarketplaceCoupons) and isinstance(source.marketplace, WooCommerceMarketplace)
    assert source.marketplace.name == "woo" and source.marketplace._auth is None


def two_shopify_accounts() -> dict[str, AccountSettings]:
    return {**MARKETPLACES, "other": account("other", "shopify", base_url=SHOP, access_token="x")}


@pytest.mark.parametrize("data, key, problem", [
    ({"source": "coupon-api"}, "emails.coupons.source", "unknown coupon source 'coupon-api'"),
    ({"sorce": "pool"}, "emails.coupons.sorce", "did you mean 'source'"),
    ({"source": "pool"}, "emails.coupons.pool_file", "is required"),
    ({"source": "pool", "pool_file": "missing.txt"}, "emails.coupons.pool_file", "does not exist"),
    ({"source": "local", "pool_file": "codes.txt"}, "emails.coupons.pool_file", "not read when source = 'local'"),
    ({"source": "shopify", "pool_file": "x"}, "emails.coupons.pool_file", "not read"),
    ({"source": "pool", "pool_file": "x", "marketplace": "acme"}, "emails.coupons.marketplace", "not read"),
    ({"source": "shopify", "marketplace": "nope"}, "emails.coupons.marketplace", "names no"),
    ({"source": "shopify", "marketplace": "woo"}, "emails.coupons.marketplace", "is a woocommerce account"),
    ({"source": "shopify", "marketplace": 3}, "emails.coupons.marketplace", "must be a string"),
])
def test_config_mistakes_name_the_key(data: dict[str, Any], key: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem) as caught:
        build(data)
    assert caught.value.key == key and caught.value.file == str(CONFIG)


def test_an_ambiguous_or_missing_account_must_be_named() -> None:
    with pytest.raises(ConfigError, match=r"there are 2 \(acme, other\)") as caught:
        build({"source": "shopify"}, marketplaces=two_shopify_accounts())
    assert caught.value.key == "emails.coupons.marketplace"
    with pytest.raises(ConfigError, match="there is none"):
        build({"source": "woocommerce"}, marketplaces={})


def test_an_empty_pool_file_is_refused(tmp_path: Path, engine: Engine) -> None:
    (tmp_path / "codes.txt").write_text("code\n# none yet\n\n")
    with pytest.raises(ConfigError, match="holds no codes") as caught:
        coupon_source_from_settings(Section(tmp_path / "config.toml", "emails.coupons",
                                            {"source": "pool", "pool_file": "codes.txt"}), SECRET, engine, {})
    assert caught.value.key == "emails.coupons.pool_file"


@pytest.mark.parametrize("kind, bad, key, problem", [
    ("shopify", {"access_token": " "}, "marketplaces.shop.access_token", "is empty"),
    ("shopify", {"base_url": "my-shop.myshopify.com"}, "marketplaces.shop.base_url", "shop's address"),
    ("shopify", {"api_version": "2026-7"}, "marketplaces.shop.api_version", "must look like"),
    ("woocommerce", {"consumer_secret": ""}, "marketplaces.shop.consumer_secret", "must not be empty"),
    ("woocommerce", {"base_url": "http://shop.example.com"}, "marketplaces.shop.base_url", "https://"),
])
def test_bad_account_credentials_name_the_accounts_key(kind: str, bad: dict[str, Any], key: str,
                                                       problem: str) -> None:
    good = {"shopify": {"base_url": SHOP, "access_token": "x"},
            "woocommerce": {"base_url": STORE, "consumer_key": "ck", "consumer_secret": "cs"}}[kind]
    marketplaces = {"shop": account("shop", kind, **{**good, **bad})}
    with pytest.raises(ConfigError, match=problem) as caught:
        build({"source": kind, "marketplace": "shop"}, marketplaces=marketplaces)
    assert caught.value.key == key
