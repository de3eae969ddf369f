"""Coupon sources: a derived code and a merchant's pool reserved in the database (raced by threads and by two
engines). Codes created in the shops: tests/tracker/test_shop_coupons.py."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session

import emails.coupons as coupons
from emails.coupons import (
    CouponError,
    CouponRequest,
    CouponsExhausted,
    CouponSource,
    IssuedCoupon,
    LocalCoupons,
    PoolCoupons,
    derive_code,
    parse_pool,
)
from emails.discount import parse_discount
from tests.factories import T0, add_order
from tracker.db import open_db
from tracker.models import Coupon, Email, EmailState

SECRET = b"test-secret"
KEY = "resell_coupon:order:1"
CODE = "THANKS-LESH-AVRW"  # derive_code(SECRET, KEY): the derivation emails/compose.py used before



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
