"""Coupon sources: a derived code, a merchant's pool reserved in the database (raced by threads and by two
engines), and codes created in Shopify and WooCommerce against a local server (respx) serving their
published payloads. No network, no real sleeping."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session

import emails.coupons as coupons
from carriers.base import AuthError, TransientError
from carriers.http import Limits, RetryPolicy
from carriers.shopify import DEFAULT_API_VERSION
from emails.coupons import (
    WOO_COUPONS_PATH,
    CouponError,
    CouponRequest,
    CouponsExhausted,
    CouponSource,
    IssuedCoupon,
    LocalCoupons,
    PoolCoupons,
    ShopifyCoupons,
    WooCommerceCoupons,
    coupon_source_from_settings,
    derive_code,
    parse_discount,
    parse_pool,
)
from tests.doubles import Sleeps
from tests.factories import T0, add_order
from tracker.config import AccountSettings
from tracker.db import open_db
from tracker.models import Coupon, Email, EmailState
from tracker.settings import ConfigError, Section

FIXTURES = Path(__file__).parent.parent / "fixtures" / "coupons"
SECRET = b"test-secret"
KEY = "resell_coupon:order:1"
CODE = "THANKS-LESH-AVRW"  # derive_code(SECRET, KEY): the derivation emails/compose.py used before
SHOP = "https://my-shop.myshopify.com"
SHOP_ENDPOINT = f"{SHOP}/admin/api/{DEFAULT_API_VERSION}/graphql.json"
STORE = "https://shop.example.com"
WOO_ENDPOINT = f"{STORE}{WOO_COUPONS_PATH}"
TAKEN = {"field": ["basicCodeDiscount", "code"], "code": "TAKEN",
         "message": "Code must be unique. Please try a different code."}



def sample(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def request(**overrides: Any) -> CouponRequest:
    values: dict[str, Any] = {"key": KEY, "customer_email": "Ada@Example.com", "customer_external_id": "7001",
                              "discount": "10%", "valid_for": timedelta(days=30), "now": T0}
    return CouponRequest(**{**values, **overrides})


def issue(source: CouponSource, *requests: CouponRequest) -> IssuedCoupon:
    async def call() -> IssuedCoupon:
        try:
            results = [await source.issue(r) for r in requests or (request(),)]
            return results[-1]
        finally:
            await source.aclose()

    return asyncio.run(call())


def body(route: respx.Route, index: int = -1) -> Any:
    return json.loads(route.calls[index].request.content)


# ── Discount and the derived code ─────────────────────────────────────────────────────────────────────────


def test_derive_code_is_the_code_trackmail_always_derived_and_depends_on_secret_and_key() -> None:
    assert derive_code(SECRET, KEY) == CODE
    assert derive_code(SECRET, "resell_coupon:order:2") == "THANKS-SGHW-3PBB"
    assert derive_code(b"other", KEY) != CODE


@pytest.mark.parametrize("text, percent, value", [("10%", True, "10"), (" 12.5 % ", True, "12.5"),
                                                   ("5.00", False, "5.00"), ("20", False, "20")])
def test_discounts_are_a_percentage_or_an_amount(text: str, percent: bool, value: str) -> None:
    discount = parse_discount(text)
    assert (discount.percent, discount.value, discount.text) == (percent, Decimal(value), value)


@pytest.mark.parametrize("text", ["", "ten", "-5", "0%", "0", "101%", "5,00", "€5", "1e3"])
def test_bad_discounts_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="discount"):
        parse_discount(text)


def test_local_source_gives_the_derived_code_with_the_expiry_and_no_io() -> None:
    issued = issue(LocalCoupons(SECRET))
    assert issued == IssuedCoupon(CODE, "10%", T0 + timedelta(days=30), "local")
    assert issue(LocalCoupons(SECRET), request(key="resell_coupon:order:2")).code == "THANKS-SGHW-3PBB"
    assert isinstance(LocalCoupons(SECRET), CouponSource)


def test_a_bad_discount_is_a_coupon_error_not_a_crash() -> None:
    with pytest.raises(CouponError, match="'ten'"):
        issue(LocalCoupons(SECRET), request(discount="ten"))


def test_requests_need_an_aware_now_and_a_validity() -> None:
    with pytest.raises(ValueError, match="aware"):
        request(now=datetime(2026, 3, 2, 9))
    with pytest.raises(ValueError, match="valid_for"):
        request(valid_for=timedelta(0))


# ── Pool ──────────────────────────────────────────────────────────────────────────────────────────────────


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = open_db(database_url)
    yield engine
    engine.dispose()


def add_emails(engine: Engine, count: int) -> list[tuple[int, int]]:
    """(email id, customer id) of `count` queued coupon emails, one order each."""
    ids = []
    with Session(engine) as session:
        for n in range(count):
            order = add_order(session, number=f"#{1000 + n}")
            email = Email(idempotency_key=f"resell_coupon:order:{order.id}", message_id=f"<{n}@test>",
                          kind="resell_coupon", shop="demo", order_id=order.id, customer_id=order.customer_id,
                          to_address="ada@example.com", state=EmailState.QUEUED, created_at=T0, due_at=T0)
            session.add(email)
            session.flush()
            ids.append((email.id, order.customer_id))
        session.commit()
    return ids


def pool_request(email: tuple[int, int]) -> CouponRequest:
    return request(key=f"resell_coupon:order:{email[0]}", email_id=email[0], customer_id=email[1])


def write_pool(tmp_path: Path, count: int) -> Path:
    path = tmp_path / "codes.txt"
    path.write_text("".join(f"POOL{n:03d}\n" for n in range(count)))
    return path


def coupon_codes(engine: Engine) -> list[str]:
    with Session(engine) as session:
        return list(session.execute(select(Coupon.code).order_by(Coupon.id)).scalars())


def test_pool_file_comments_header_blanks_and_duplicates_are_ignored(tmp_path: Path, engine: Engine) -> None:
    path = tmp_path / "codes.csv"
    path.write_text("\ufeffcode,uses\n# uploaded 2026-03-01\n\nSPRING-1,1\n  SPRING-2 \nspring-1\n"
                    "SPRING-2,dup\n\"SPRING-3\",x\n   # indented comment\nCODE\n", encoding="utf-8")
    pool = PoolCoupons(path, engine)
    assert pool.codes() == ("SPRING-1", "SPRING-2", "SPRING-3", "CODE")
    assert pool.remaining() == 4
    assert parse_pool("code\n") == () and parse_pool("A\ncode\n") == ("A", "code")


def test_pool_gives_codes_in_file_order_and_reserves_them_in_the_coupon_table(tmp_path: Path,
                                                                              engine: Engine) -> None:
    first, second = add_emails(engine, 2)
    pool = PoolCoupons(write_pool(tmp_path, 3), engine)
    issued = issue(pool, pool_request(first))
    assert issued == IssuedCoupon("POOL000", "10%", T0 + timedelta(days=30), "pool")
    assert issue(pool, replace(pool_request(second), currency="EUR")).code == "POOL001"
    with Session(engine) as session:
        row = session.execute(select(Coupon).where(Coupon.email_id == second[0])).scalar_one()
    assert (row.code, row.customer_id, row.discount, row.expires_at, row.source, row.currency) == (
        "POOL001", second[1], "10%", T0 + timedelta(days=30), "pool", "EUR")
    assert pool.remaining() == 1


def test_pool_skips_codes_already_in_the_coupon_table(tmp_path: Path, engine: Engine) -> None:
    first, second = add_emails(engine, 2)
    with Session(engine) as session:
        session.add(Coupon(code="POOL000", email_id=first[0], customer_id=first[1], discount="10%",
                           created_at=T0, expires_at=T0))
        session.commit()
    pool = PoolCoupons(write_pool(tmp_path, 3), engine)
    assert pool.remaining() == 2
    assert issue(pool, pool_request(second)).code == "POOL001"


def test_reissuing_for_the_same_email_returns_its_code_and_uses_no_other(tmp_path: Path, engine: Engine) -> None:
    (email,) = add_emails(engine, 1)
    path = write_pool(tmp_path, 1)
    pool = PoolCoupons(path, engine)
    first = issue(pool, pool_request(email))
    again = issue(pool, pool_request(email), pool_request(email))  # the pool is used up by now
    assert again.code == first.code == "POOL000"
    path.unlink()  # and even without its file
    assert issue(pool, pool_request(email)) == first
    assert coupon_codes(engine) == ["POOL000"]


def test_concurrent_issues_for_one_email_reserve_one_code(tmp_path: Path, engine: Engine) -> None:
    (email,) = add_emails(engine, 1)
    pool = PoolCoupons(write_pool(tmp_path, 5), engine)

    async def race() -> list[IssuedCoupon]:
        return await asyncio.gather(*(pool.issue(pool_request(email)) for _ in range(8)))

    assert {issued.code for issued in asyncio.run(race())} == {"POOL000"}
    assert coupon_codes(engine) == ["POOL000"]


@pytest.fixture
def racing(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Widens the gap between choosing a code and inserting its row, so concurrent issues pick the same code,
    and counts the inserts the database refused."""
    counts = {"refused": 0}
    unused, insert = PoolCoupons._unused, coupons.insert_ignore

    def slow_unused(session: Session, chunk: list[str]) -> list[str]:
        free = unused(session, chunk)
        time.sleep(0.02)
        return free

    def counting_insert(*args: Any, **kwargs: Any) -> bool:
        done = insert(*args, **kwargs)
        counts["refused"] += not done
        return done

    monkeypatch.setattr(PoolCoupons, "_unused", staticmethod(slow_unused))
    monkeypatch.setattr(coupons, "insert_ignore", counting_insert)
    return counts


def outcomes(results: list[IssuedCoupon | BaseException]) -> tuple[list[str], list[BaseException]]:
    codes = [r.code for r in results if isinstance(r, IssuedCoupon)]
    return codes, [r for r in results if not isinstance(r, IssuedCoupon)]


def test_twenty_concurrent_issues_on_fifteen_codes_give_fifteen_distinct_codes(
        tmp_path: Path, engine: Engine, racing: dict[str, int]) -> None:
    emails = add_emails(engine, 20)
    path = write_pool(tmp_path, 15)
    pool = PoolCoupons(path, engine)

    async def race() -> list[Any]:
        return await asyncio.gather(*(pool.issue(pool_request(e)) for e in emails), return_exceptions=True)

    codes, failures = outcomes(asyncio.run(race()))
    assert sorted(codes) == [f"POOL{n:03d}" for n in range(15)]
    assert len(failures) == 5 and all(isinstance(f, CouponsExhausted) for f in failures)
    assert str(path) in str(failures[0]) and "all 15 codes" in str(failures[0])
    assert racing["refused"] > 0  # the race happened and the database settled it
    table = coupon_codes(engine)
    assert sorted(table) == sorted(codes) and len(set(table)) == len(table)
    assert pool.remaining() == 0


def test_two_daemons_on_one_database_never_share_a_code(tmp_path: Path, database_url: str, engine: Engine,
                                                         racing: dict[str, int]) -> None:
    emails = add_emails(engine, 20)
    path = write_pool(tmp_path, 15)
    other = open_db(database_url)  # a second daemon: its own engine, connections, pool object
    try:
        pools = (PoolCoupons(path, engine), PoolCoupons(path, other))

        async def race() -> list[Any]:
            return await asyncio.gather(*(pools[n % 2].issue(pool_request(e)) for n, e in enumerate(emails)),
                                        return_exceptions=True)

        codes, failures = outcomes(asyncio.run(race()))
    finally:
        other.dispose()
    assert len(codes) == len(set(codes)) == 15
    assert len(failures) == 5 and all(isinstance(f, CouponsExhausted) for f in failures)
    assert racing["refused"] > 0
    assert sorted(coupon_codes(engine)) == sorted(codes)


def test_codes_appended_to_the_file_are_picked_up(tmp_path: Path, engine: Engine) -> None:
    first, second = add_emails(engine, 2)
    path = write_pool(tmp_path, 1)
    pool = PoolCoupons(path, engine)
    issue(pool, pool_request(first))
    with pytest.raises(CouponsExhausted, match="all 1 codes"):
        issue(pool, pool_request(second))
    with path.open("a") as file:
        file.write("FRESH-1\n")
    assert pool.remaining() == 1
    assert issue(pool, pool_request(second)).code == "FRESH-1"


def test_pool_needs_the_ids_that_reserve_the_code(tmp_path: Path, engine: Engine) -> None:
    with pytest.raises(ValueError, match="email_id"):
        issue(PoolCoupons(write_pool(tmp_path, 1), engine))


def test_a_missing_pool_file_is_a_coupon_error_naming_it(tmp_path: Path, engine: Engine) -> None:
    (email,) = add_emails(engine, 1)
    with pytest.raises(CouponError, match="gone.txt"):
        issue(PoolCoupons(tmp_path / "gone.txt", engine), pool_request(email))


# ── Shopify ───────────────────────────────────────────────────────────────────────────────────────────────


def shopify(sleeps: Sleeps | None = None) -> ShopifyCoupons:
    return ShopifyCoupons(SHOP, "shpat_test", secret=SECRET, name="acme-shop",
                          retry=RetryPolicy(sleep=sleeps or Sleeps()), limits=Limits(per_second=1e9))


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
    with pytest.raises(CouponError) as caught:
        issue(shopify())
    assert error["message"] in str(caught.value) and "acme-shop" in str(caught.value)
    assert route.call_count == 1


@respx.mock
def test_shopify_success_without_our_code_is_an_error() -> None:
    respx.post(SHOP_ENDPOINT).mock(return_value=httpx.Response(200, json=created("BUYNOW20")))
    with pytest.raises(CouponError, match=CODE):
        issue(shopify())


@respx.mock
def test_shopify_refused_token_is_an_auth_error_and_not_retried() -> None:
    route = respx.post(SHOP_ENDPOINT).mock(return_value=httpx.Response(
        401, json={"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}))
    with pytest.raises(AuthError):
        issue(shopify())
    assert route.call_count == 1


@respx.mock
def test_shopify_missing_scope_is_an_auth_error_naming_write_discounts() -> None:
    denied = {"errors": [{"message": "Access denied for discountCodeBasicCreate field.",
                          "extensions": {"code": "ACCESS_DENIED"}}]}
    respx.post(SHOP_ENDPOINT).mock(return_value=httpx.Response(200, json=denied))
    with pytest.raises(AuthError, match="write_discounts"):
        issue(shopify())


@respx.mock
def test_shopify_internal_error_in_the_body_is_transient() -> None:
    failed = {"errors": [{"message": "Internal error. Looks like something went wrong on our end.",
                          "extensions": {"code": "INTERNAL_SERVER_ERROR"}}]}
    respx.post(SHOP_ENDPOINT).mock(return_value=httpx.Response(200, json=failed))
    with pytest.raises(TransientError, match="Internal error"):
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
    with pytest.raises(TransientError):
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
    with pytest.raises(TransientError, match="throttled"):
        issue(shopify())


@respx.mock
def test_shopify_schema_errors_are_permanent() -> None:
    errors = {"errors": [{"message": "Variable $input of type DiscountCodeBasicInput! was provided invalid value "
                                     "for customerSelection (Field is not defined on DiscountCodeBasicInput)"}]}
    respx.post(SHOP_ENDPOINT).mock(return_value=httpx.Response(200, json=errors))
    with pytest.raises(CouponError, match="customerSelection"):
        issue(shopify())


# ── WooCommerce ───────────────────────────────────────────────────────────────────────────────────────────


def woo(sleeps: Sleeps | None = None, **kwargs: Any) -> WooCommerceCoupons:
    return WooCommerceCoupons(STORE, "ck_key", "cs_secret", secret=SECRET, name="woo",
                              retry=RetryPolicy(sleep=sleeps or Sleeps()), limits=Limits(per_second=1e9), **kwargs)


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
    with pytest.raises(CouponError, match="woocommerce_rest_term_invalid") as caught:
        issue(woo())
    assert caught.value.status_code == 404 and route.call_count == 1
    invalid = {"code": "rest_invalid_param", "message": "Invalid parameter(s): amount", "data": {"status": 400}}
    respx.post(WOO_ENDPOINT).mock(return_value=httpx.Response(400, json=invalid))
    with pytest.raises(CouponError, match="rest_invalid_param"):
        issue(woo())


@respx.mock
def test_woocommerce_refused_keys_are_an_auth_error() -> None:
    cannot = {"code": "woocommerce_rest_cannot_create", "message": "Sorry, you are not allowed to create resources.",
              "data": {"status": 401}}
    route = respx.post(WOO_ENDPOINT).mock(return_value=httpx.Response(401, json=cannot))
    with pytest.raises(AuthError, match="Read/Write"):
        issue(woo())
    assert route.call_count == 1


@respx.mock
def test_woocommerce_5xx_that_persists_is_transient() -> None:
    route = respx.post(WOO_ENDPOINT).mock(return_value=httpx.Response(503))
    sleeps = Sleeps()
    with pytest.raises(TransientError):
        issue(woo(sleeps))
    assert route.call_count == 3 and sleeps.waits == [0.5, 1.0]


@respx.mock
def test_woocommerce_redirect_is_not_followed_as_a_get() -> None:
    respx.post(WOO_ENDPOINT).mock(return_value=httpx.Response(301, headers={"Location": "https://www.shop.example.com/x"}))
    with pytest.raises(CouponError, match="www.shop.example.com"):
        issue(woo())


@respx.mock
def test_woocommerce_answer_for_another_code_is_an_error() -> None:
    respx.post(WOO_ENDPOINT).mock(return_value=woo_created("10off"))
    with pytest.raises(CouponError, match=CODE):
        issue(woo())


@respx.mock(using="httpcore")  # the keys are added below the client: mock below it too
def test_woocommerce_query_string_keys_never_show_in_errors(respx_mock) -> None:
    route = respx_mock.post(url__startswith=WOO_ENDPOINT).mock(
        return_value=httpx.Response(400, text="bad request for ?consumer_key=ck_key&consumer_secret=cs_secret"))
    with pytest.raises(CouponError) as caught:
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
    assert isinstance(source, ShopifyCoupons) and source.name == "acme"
    assert source.endpoint == "/admin/api/2026-01/graphql.json"
    assert source.http.client.headers["X-Shopify-Access-Token"] == "shpat_x"


def test_woocommerce_source_is_found_when_it_is_the_only_such_account() -> None:
    source = build({"source": "woocommerce"})
    assert isinstance(source, WooCommerceCoupons) and source.name == "woo" and source._auth is None


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
    ("shopify", {"access_token": " "}, "marketplaces.shop.access_token", "must not be empty"),
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
